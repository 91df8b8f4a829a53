import Foundation
import Testing
import SluiceConfig
import SluiceMetrics
@testable import SluiceProxy

/// A running proxy with its admin socket, built from YAML (`${B0}`… are backend addresses).
private struct AdminEnv: Sendable {
    let app: RunningProxy
    let backends: [TestBackend]
    let dir: String
    let port: Int
    var socket: String { dir + "/a.sock" }

    static func start(_ versions: [TestBackend.Options], yaml: String) async throws -> AdminEnv {
        var started: [TestBackend] = []
        for options in versions { started.append(try await TestBackend.start(options: options)) }
        let dir = "/tmp/sluice-m-\(UInt32.random(in: 0..<UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var text = "admin: { socket: ./a.sock }\n" + yaml
        for (i, b) in started.enumerated() { text = text.replacingOccurrences(of: "${B\(i)}", with: b.address) }
        let path = dir + "/sluice.yaml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        var config = try ConfigLoader.load(path: path)
        config.listeners = [ListenerSpec(address: SocketAddressSpec(host: "127.0.0.1", port: 0))]
        let app = try await RunningProxy.start(config, threads: 1, watchFile: false)
        return AdminEnv(app: app, backends: started, dir: dir, port: app.server.boundAddresses.first!.port!)
    }

    func stop() async {
        await app.stop(drainTimeout: .milliseconds(100))
        for b in backends { await b.stop() }
        try? FileManager.default.removeItem(atPath: dir)
    }

    func metrics() throws -> String {
        let r = try TestAdminClient.request(socket: socket, "GET", "/metrics")
        #expect(r.status == 200)
        return r.body
    }

    /// The value of the sample whose line starts with `prefix` (name and labels), nil if absent.
    static func sample(_ text: String, _ prefix: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(prefix + " ") {
            return Double(line.dropFirst(prefix.count + 1))
        }
        return nil
    }
}

private func withEnv(_ versions: [TestBackend.Options], _ yaml: String,
                     _ body: @escaping @Sendable (AdminEnv) throws -> Void) async throws {
    let env = try await AdminEnv.start(versions, yaml: yaml)
    do { try await onThread { try body(env) } } catch {
        await env.stop()
        throw error
    }
    await env.stop()
}

extension EndToEnd {
@Suite struct MetricsEndToEnd {
    static let twoVersions = """
        listen: ["127.0.0.1:1"]
        backends:
          b1: { version: v1, endpoints: ["${B0}"] }
          b2: { version: v2, endpoints: ["${B1}"] }
          gone: { version: v3, endpoints: ["127.0.0.1:DEAD"] }
        routes:
          - name: web
            rules:
              - when: { headers: { x-v: "2" } }
                backend: b2
              - when: { headers: { x-v: "3" } }
                backend: gone
            backend: b1
            mirror: { backend: b2, percent: 100 }
        """

    @Test func countsPerCodeAndVersionAreExactAndTheHistogramAddsUp() async throws {
        let dead = try deadPort()
        let yaml = Self.twoVersions.replacingOccurrences(of: "DEAD", with: "\(dead)")
        try await withEnv([.init(version: "v1"), .init(version: "v2", errorRate: 1)], yaml) { env in
            let c = try RawHTTPClient(port: env.port)
            for _ in 0..<30 { #expect(try c.request("GET", "/").status == 200) }
            for _ in 0..<20 { #expect(try c.request("GET", "/", headers: [("x-v", "2")]).status == 503) }
            for _ in 0..<4 { #expect(try c.request("GET", "/", headers: [("x-v", "3")]).status == 502) }
            // Bounded wait for the 54 shadow copies to settle.
            var text = ""
            for _ in 0..<400 {
                text = try env.metrics()
                if AdminEnv.sample(text, #"sluice_mirror_requests_total{route="web",backend="b2",version="v2",result="completed"}"#) == 54 { break }
                usleep(5_000)
            }
            #expect(AdminEnv.sample(text, #"sluice_requests_total{route="web",backend="b1",version="v1",code="200"}"#) == 30)
            #expect(AdminEnv.sample(text, #"sluice_requests_total{route="web",backend="b2",version="v2",code="503"}"#) == 20)
            #expect(AdminEnv.sample(text, #"sluice_requests_total{route="web",backend="gone",version="v3",code="502"}"#) == 4)
            #expect(AdminEnv.sample(text, #"sluice_upstream_errors_total{route="web",backend="gone",version="v3",reason="connect"}"#) == 4)
            #expect(AdminEnv.sample(text, #"sluice_request_duration_seconds_count{route="web",backend="b1",version="v1"}"#) == 30)
            #expect(AdminEnv.sample(text, #"sluice_request_duration_seconds_bucket{route="web",backend="b1",version="v1",le="+Inf"}"#) == 30)
            #expect(AdminEnv.sample(text, #"sluice_request_duration_seconds_count{route="web",backend="b2",version="v2"}"#) == 20)
            // Shadow traffic has its own series: 54 copies, 54 shadow answers, and the primary
            // series of b2 counts only the 20 requests routed to it.
            #expect(AdminEnv.sample(text, #"sluice_mirror_requests_total{route="web",backend="b2",version="v2",result="sent"}"#) == 54)
            #expect(AdminEnv.sample(text, #"sluice_mirror_responses_total{route="web",backend="b2",version="v2",code="503"}"#) == 54)
            #expect(AdminEnv.sample(text, #"sluice_requests_total{route="web",backend="b2",version="v2",code="200"}"#) == nil)
            #expect(AdminEnv.sample(text, "sluice_config_generation") == 1)

            // Counters survive a reload.
            let reload = try TestAdminClient.request(socket: env.socket, "POST", "/reload")
            #expect(reload.status == 200)
            let after = try env.metrics()
            #expect(AdminEnv.sample(after, #"sluice_requests_total{route="web",backend="b1",version="v1",code="200"}"#) == 30)
            #expect(AdminEnv.sample(after, "sluice_config_generation") == 2)
            #expect(AdminEnv.sample(after, #"sluice_config_reloads_total{result="ok"}"#) == 1)

            // The real exposition passes promtool's lint where promtool is installed.
            if FileManager.default.isExecutableFile(atPath: "/usr/bin/promtool") {
                let p = Process()
                p.executableURL = URL(fileURLWithPath: "/usr/bin/promtool")
                p.arguments = ["check", "metrics"]
                let input = Pipe(), output = Pipe()
                p.standardInput = input
                p.standardOutput = output
                p.standardError = output
                try p.run()
                input.fileHandleForWriting.write(Data(after.utf8))
                try input.fileHandleForWriting.close()
                p.waitUntilExit()
                let lint = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                #expect(p.terminationStatus == 0, "promtool: \(lint)")
            }
        }
    }

    @Test func statusShowsWindowedFiguresPerVersion() async throws {
        try await withEnv([.init(version: "v1"), .init(version: "v2", latency: .milliseconds(300))], """
            listen: ["127.0.0.1:1"]
            backends:
              b1: { version: v1, endpoints: ["${B0}"] }
              b2: { version: v2, endpoints: ["${B1}"] }
            routes:
              - name: web
                rules:
                  - when: { headers: { x-v: "2" } }
                    backend: b2
                split: { b1: 100, b2: 0 }
            """) { env in
            let c = try RawHTTPClient(port: env.port)
            for _ in 0..<10 { _ = try c.request("GET", "/") }
            for _ in 0..<3 { _ = try c.request("GET", "/", headers: [("x-v", "2")]) }
            let status = try TestAdminClient.request(socket: env.socket, "GET", "/status").json
            let route = (status["routes"] as? [[String: Any]])?.first ?? [:]
            let versions = route["versions"] as? [[String: Any]] ?? []
            let v1 = versions.first { $0["version"] as? String == "v1" } ?? [:]
            let v2 = versions.first { $0["version"] as? String == "v2" } ?? [:]
            #expect(v1["requests"] as? Int == 10)
            #expect(v2["requests"] as? Int == 3)
            #expect(v1["weight"] as? Int == 100)
            #expect(v2["weight"] as? Int == 0)
            // The slow version's p99 sits in the 0.25–0.5 s bucket; the fast one's far below.
            #expect((v2["p99"] as? Double ?? 0) >= 0.25)
            #expect((v1["p99"] as? Double ?? 1) < 0.25)
            #expect(status["generation"] as? Int == 1)
        }
    }
}
}
