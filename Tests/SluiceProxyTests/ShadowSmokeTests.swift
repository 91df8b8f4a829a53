import Foundation
import Testing
import SluiceProxy

extension EndToEnd {
@Suite struct ShadowSmoke {
    /// `sluice backend --plain` (the benchmark's shadow): `ok`, its version, nothing recorded.
    @Test func plainBackendAnswersOkAndRecordsNothing() async throws {
        let backend = try await TestBackend.start(options: .init(version: "shadow", plain: true))
        let c = try RawHTTPClient(port: backend.port)
        for _ in 0..<3 {
            let r = try c.request("GET", "/anything?x=1")
            #expect(r.status == 200)
            #expect(r.bodyString == "ok\n")
            #expect(r.header("x-backend-version") == "shadow")
            #expect(r.header("content-type") == "text/plain")
        }
        #expect(backend.received.isEmpty)
        await backend.stop()
    }

    /// The command line's backend (`sluice backend`, `sluice demo`) echoes as usual but keeps no
    /// request: one left running would otherwise grow by every request it served (the soak's
    /// busiest backend reached 2.6 GiB in ten minutes).
    @Test func aBackendThatDoesNotRecordStillEchoes() async throws {
        let backend = try await TestBackend.start(options: .init(version: "v1", record: false))
        let c = try RawHTTPClient(port: backend.port)
        for i in 0..<3 {
            let r = try c.request("GET", "/kept/\(i)")
            #expect(r.status == 200)
            #expect(r.json["path"] as? String == "/kept/\(i)")
        }
        #expect(backend.received.isEmpty)
        await backend.stop()
    }

    @Test func getIsCopiedToTheShadowWithMarkerAndStrippedHeaders() async throws {
        try await Harness.withShadow(route: """
            mirror: { backend: shadow, percent: 100, stripHeaders: [authorization] }
            """) { h in
            let c = try h.client()
            let r = try c.request("GET", "/s?q=1", headers: [("Authorization", "Bearer x"), ("X-Keep", "1")])
            #expect(r.status == 200)
            #expect(r.json["version"] as? String == "v1")
            #expect(r.header("x-sluice-shadow") == nil)
            // Bounded wait for the fire-and-forget copy.
            var copies: [TestBackend.Received] = []
            for _ in 0..<400 {
                copies = h.backends[1].received
                if !copies.isEmpty { break }
                usleep(5_000)
            }
            #expect(copies.count == 1)
            let headers = Dictionary(copies.first?.headers.map { ($0.0.lowercased(), $0.1) } ?? [], uniquingKeysWith: { a, _ in a })
            #expect(headers["x-sluice-shadow"] == "1")
            #expect(headers["authorization"] == nil)
            #expect(headers["x-keep"] == "1")
            #expect(copies.first?.uri == "/s?q=1")
            // The primary never saw the marker.
            let primary = Dictionary(h.backends[0].received.first?.headers.map { ($0.0.lowercased(), $0.1) } ?? [], uniquingKeysWith: { a, _ in a })
            #expect(primary["x-sluice-shadow"] == nil)
            #expect(primary["authorization"] == "Bearer x")
        }
    }
}
}
