import ArgumentParser
import Foundation
import SluiceConfig
import SluiceProxy

/// `sluice demo`: two built-in app versions and the proxy in front of them, in one process.
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start two built-in app versions (v1, v2) and the proxy with a canary, an A/B rule, a blue-green route and a shadow.")

    @Option(name: .long, help: "Port of the proxy on 127.0.0.1.") var port: Int = 8080
    @Option(name: .long, help: "Port of v1; v2 gets the next one.") var backendPort: Int = 9101

    static func configText(port: Int, v1: Int, v2: Int, socket: String) -> String {
        """
        # The configuration `sluice demo` runs (written to a temporary directory).
        listen: ["127.0.0.1:\(port)"]
        admin: { socket: "\(socket)" }
        backends:
          app-v1: { version: v1, endpoints: ["127.0.0.1:\(v1)"] }
          app-v2: { version: v2, endpoints: ["127.0.0.1:\(v2)"] }
        routes:
          - name: api                      # blue-green: everything to v1, x-preview to v2
            match: { pathPrefix: /api }
            blueGreen: { active: app-v1, preview: app-v2, previewHeader: x-preview }
          - name: search                   # shadow: v1 answers, v2 gets a copy of every GET
            match: { pathPrefix: /search }
            backend: app-v1
            mirror: { backend: app-v2, percent: 100 }
          - name: web                      # A/B rule first, then a sticky 90/10 canary
            rules:
              - when: { headers: { x-experiment: new-checkout } }
                backend: app-v2
            split: { app-v1: 90, app-v2: 10 }
            sticky: { cookie: uid, assign: true }

        """
    }

    func run() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-demo-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("sluice.yaml").path
        let socket = dir.appendingPathComponent("sluice.sock").path
        try Self.configText(port: port, v1: backendPort, v2: backendPort + 1, socket: socket)
            .write(toFile: path, atomically: true, encoding: .utf8)
        let configuration = try loadConfigOrExit(path)
        if let note = raiseOpenFileLimit() { printError("sluice demo: \(note)") }

        var backends: [TestBackend] = []
        let app: RunningProxy
        do {
            for (i, version) in ["v1", "v2"].enumerated() {
                backends.append(try await TestBackend.start(port: backendPort + i, options: .init(version: version, record: false)))
            }
            app = try await RunningProxy.start(configuration, threads: ProcessInfo.processInfo.activeProcessorCount)
        } catch {
            printError("sluice demo: \(error) (is another demo running? try --port and --backend-port)")
            for b in backends { await b.stop() }
            throw ExitCode(2)
        }
        let base = "http://127.0.0.1:\(port)"
        let banner = """
        Sluice demo: proxy on \(base), app v1 on 127.0.0.1:\(backendPort), v2 on 127.0.0.1:\(backendPort + 1)
        Config: \(path)

        Try:
          curl -s \(base)/                                      # 90/10 canary: mostly v1
          for i in $(seq 20); do curl -s \(base)/ | grep -o '"version":"v[12]"'; done
          curl -si \(base)/ | grep -i set-cookie                 # sticky: you get a uid cookie
          curl -s -b uid=alice \(base)/                         # same uid -> same version, every time
          curl -s -H 'x-experiment: new-checkout' \(base)/      # A/B rule: always v2
          curl -s \(base)/api/orders                            # blue-green: active (v1)
          curl -s -H 'x-preview: 1' \(base)/api/orders          # preview header: v2
          curl -s \(base)/search?q=shoes                        # v1 answers; v2 gets a shadow copy

        Live control and per-version figures (admin socket \(socket)):
          sluice ctl --socket \(socket) status                  # routes, weights, p50/p95/p99 per version
          sluice ctl --socket \(socket) weights web app-v1=50 app-v2=50
          sluice ctl --socket \(socket) switch api              # blue-green: v2 becomes active
          sluice ctl --socket \(socket) metrics                 # Prometheus text

        Press Ctrl-C to stop.

        """
        FileHandle.standardOutput.write(Data(banner.utf8))
        await waitForTermination()
        await app.stop(drainTimeout: .seconds(5))
        for b in backends { await b.stop() }
    }
}
