import Foundation
import Testing
@testable import SluiceProxy

/// The Python script with the real WebSocket client and server (`websockets` package).
private let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("Scripts/ws_check.py").path

/// Whether `python3` with the `websockets` package is here (CI installs it; see .ci/run).
private let haveWebsockets: Bool = {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["python3", "-c", "import websockets"]
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    guard (try? p.run()) != nil else { return false }
    p.waitUntilExit()
    return p.terminationStatus == 0
}()

extension EndToEnd {
@Suite(.enabled(if: haveWebsockets, "needs python3 with the websockets package"))
struct RealWebSocketClient {
    @Test func echoBothWaysTenMebibytesAndCloseCodesThroughSluice() async throws {
        let port = try unusedPort()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-ws-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        // Output goes to files, not pipes: nothing can block on a full pipe nobody reads.
        let serverLog = dir.appendingPathComponent("server.log")
        _ = FileManager.default.createFile(atPath: serverLog.path, contents: nil)
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        server.arguments = ["python3", script, "serve", String(port), "v1"]
        server.standardOutput = try FileHandle(forWritingTo: serverLog)
        server.standardError = FileHandle.nullDevice
        try server.run()
        // No waitUntilExit here: it spins the run loop of the thread that launched the process,
        // and this defer may run on another cooperative thread.
        defer { kill(server.processIdentifier, SIGKILL) }  // SIGTERM may be inherited as ignored
        var ready = false
        for _ in 0..<400 where !ready {
            ready = (try? String(contentsOf: serverLog, encoding: .utf8))?.contains("READY") ?? false
            if !ready { usleep(50_000) }
        }
        #expect(ready, "the websockets server did not start")

        try await Harness.withYAML(backends: [], config: """
            listen: ["127.0.0.1:1"]
            backends:
              ws: { version: v1, endpoints: ["127.0.0.1:\(port)"] }
            routes:
              - name: chat
                backend: ws
            """) { h in
            let clientLog = dir.appendingPathComponent("client.log")
            _ = FileManager.default.createFile(atPath: clientLog.path, contents: nil)
            let client = Process()
            client.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            client.arguments = ["python3", script, "check", String(h.port)]
            client.standardOutput = try FileHandle(forWritingTo: clientLog)
            client.standardError = client.standardOutput
            try client.run()
            client.waitUntilExit()
            let text = (try? String(contentsOf: clientLog, encoding: .utf8)) ?? ""
            #expect(client.terminationStatus == 0, "\(text)")
            #expect(text.contains("GREETING hello from v1"))
            #expect(text.contains("OK echo"))
            #expect(text.contains("CLOSE 4001"))
        }
    }
}
}
