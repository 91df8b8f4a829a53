#if canImport(Glibc)
import Glibc
#endif
import Foundation
import NIOConcurrencyHelpers
import Testing
@testable import SluiceProxy

/// The stand-in service manager (`Scripts/listen_fds.py`).
private let listenFDs = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("Scripts/listen_fds.py").path

extension EndToEnd {
/// Restarting the executable while a service manager holds its listening socket (socket
/// activation: `InheritedListeners`). The manager here is a small script that follows
/// systemd's protocol and restarts the way systemd does: SIGTERM, wait for the exit, start
/// again.
@Suite struct Restarts {
    /// A client opens a fresh connection for every request, without pause, through a restart:
    /// every request is answered 200 — connections made while no process listens wait in the
    /// kernel's accept queue for the next one, and those the stopping process had accepted
    /// but not yet read are served before it exits (`HTTP1ServerHandler`'s drain). Before,
    /// the executable ignored the passed socket and could not bind its address (held by the
    /// manager), so it did not start.
    @Test func aRestartWithTheSocketHeldByTheServiceManagerLosesNoRequest() async throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") else { return }
        let backend = try await TestBackend.start(options: .init(version: "v1", record: false))
        let dir = NSTemporaryDirectory() + "sluice-restart-\(UUID().uuidString)"
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let backendAddress = backend.address
            try await onThread {
                let port = try unusedPort()
                let config = dir + "/sluice.yaml", status = dir + "/status", log = dir + "/run.log"
                try """
                listen: ["127.0.0.1:\(port)"]
                backends:
                  app: { version: v1, endpoints: ["\(backendAddress)"] }
                routes:
                  - name: web
                    backend: app
                """.write(toFile: config, atomically: true, encoding: .utf8)
                _ = FileManager.default.createFile(atPath: log, contents: nil)
                let manager = Process()
                manager.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
                manager.arguments = [listenFDs, String(port), status, try ChildProxy.executable(),
                                     "run", "--config", config, "--threads", "1"]
                let logHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
                manager.standardOutput = logHandle
                manager.standardError = logHandle
                try manager.run()
                defer {
                    manager.terminate()
                    _ = waitUntil(timeout: 10) { !manager.isRunning }
                }
                func started() -> [String] {
                    ((try? String(contentsOfFile: status, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
                }
                func logText() -> String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
                #expect(waitUntil(timeout: 20) { (try? Self.request(port: port)) == 200 }, "not serving; log:\n\(logText())")

                // Two clients; five restarts, each once both have made progress. (Without the
                // drain's grace for connections not read yet, 4 runs of 6 lost requests here.)
                let loads = [Load(port: port), Load(port: port)]
                for load in loads { Thread { load.run() }.start() }
                defer { for load in loads { load.stop() } }
                let restarts = 5
                for restart in 1...restarts {
                    let before = loads.map(\.done)
                    #expect(waitUntil(timeout: 20) { zip(loads, before).allSatisfy { $0.done >= $1 + 50 } })
                    _ = Glibc.kill(manager.processIdentifier, SIGUSR1)
                    #expect(waitUntil(timeout: 20) { started().count == restart + 1 }, "no restart; log:\n\(logText())")
                }
                let atLastRestart = loads.map(\.done)
                #expect(waitUntil(timeout: 20) { zip(loads, atLastRestart).allSatisfy { $0.done >= $1 + 50 } })
                for load in loads { load.stop() }
                #expect(loads.allSatisfy { $0.waitStopped(timeout: 20) })

                let failures = loads.flatMap(\.failures)
                #expect(failures.isEmpty, "\(failures.prefix(5)); log:\n\(logText())")
                let pids = started()
                #expect(pids.count == restarts + 1 && Set(pids).count == pids.count, "\(pids)")
                #expect(logText().components(separatedBy: "uses the socket the service manager passed").count == restarts + 2,
                        "log:\n\(logText())")
            }
        } catch {
            await backend.stop()
            try? FileManager.default.removeItem(atPath: dir)
            throw error
        }
        await backend.stop()
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// One request on a fresh connection; its status.
    static func request(port: Int) throws -> Int {
        let client = try RawHTTPClient(port: port, timeout: 10)
        defer { client.close() }
        return try client.request("GET", "/r", headers: [("connection", "close")]).status
    }

    /// Requests one after another on fresh connections until stopped (at most 100,000).
    final class Load: @unchecked Sendable {
        private let port: Int
        private let state = NIOLockedValueBox((done: 0, failures: [String](), stop: false, stopped: false))

        init(port: Int) { self.port = port }

        var done: Int { state.withLockedValue { $0.done } }
        var failures: [String] { state.withLockedValue { $0.failures } }
        func stop() { state.withLockedValue { $0.stop = true } }

        func waitStopped(timeout: Double) -> Bool {
            waitUntil(timeout: timeout) { state.withLockedValue { $0.stopped } }
        }

        func run() {
            for i in 0..<100_000 where !state.withLockedValue({ $0.stop }) {
                let outcome: String?
                do {
                    let status = try Restarts.request(port: port)
                    outcome = status == 200 ? nil : "request \(i): status \(status)"
                } catch {
                    outcome = "request \(i): \(error)"
                }
                state.withLockedValue {
                    $0.done += 1
                    if let outcome { $0.failures.append(outcome) }
                }
            }
            state.withLockedValue { $0.stopped = true }
        }
    }
}
}
