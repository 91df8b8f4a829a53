import Foundation
import Testing
import SluiceConfig
import SluiceProxy
import SluiceRouting

extension EndToEnd {
@Suite struct Shutdown {
    /// SIGTERM's path: stop accepting, let the in-flight request finish, then close.
    @Test func inFlightRequestFinishesDuringDrain() async throws {
        try await Harness.with(backends: [.init(version: "v1")]) { h in
            let c = try h.client()
            try c.send("GET /slow?delay_ms=400 HTTP/1.1\r\nHost: t\r\n\r\n")
            // Poll (bounded) until the request is in flight in the proxy.
            var inflight = 0
            for _ in 0..<200 {
                inflight = try h.statistics().series.first?.inflight ?? 0
                if inflight == 1 { break }
                usleep(5_000)
            }
            #expect(inflight == 1)
            let drained = DispatchSemaphore(value: 0)
            let proxy = h.proxy
            Task {
                await proxy.shutdown(drainTimeout: .seconds(5))
                drained.signal()
            }
            let r = try c.readResponse()
            #expect(r.status == 200)
            #expect(r.header("connection")?.lowercased() == "close")
            #expect(c.waitForClose())
            #expect(drained.wait(timeout: .now() + 10) == .success)
            // New connections are refused once the listener is closed.
            #expect(throws: (any Error).self) { _ = try RawHTTPClient(port: h.port) }
        }
    }
}
}
