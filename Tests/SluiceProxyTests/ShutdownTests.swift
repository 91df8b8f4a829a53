import Foundation
import Testing
import SluiceConfig
import SluiceProxy
import SluiceRouting

extension EndToEnd {
@Suite struct Shutdown {
    /// SIGTERM's path: stop accepting, let the in-flight request finish, then close.
    /// Once one request is in flight in the proxy (polled, bounded), starts a shutdown with a
    /// 5 s drain; the semaphore is signalled when it has finished.
    private static func drainOnceInFlight(_ h: Harness) throws -> DispatchSemaphore {
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
        return drained
    }

    @Test func inFlightRequestFinishesDuringDrain() async throws {
        try await Harness.with(backends: [.init(version: "v1")]) { h in
            let c = try h.client()
            try c.send("GET /slow?delay_ms=400 HTTP/1.1\r\nHost: t\r\n\r\n")
            let drained = try Self.drainOnceInFlight(h)
            let r = try c.readResponse()
            #expect(r.status == 200)
            #expect(r.header("connection")?.lowercased() == "close")
            #expect(c.waitForClose())
            #expect(drained.wait(timeout: .now() + 10) == .success)
            // New connections are refused once the listener is closed.
            #expect(throws: (any Error).self) { _ = try RawHTTPClient(port: h.port) }
        }
    }

    /// The same over HTTP/2: the connection gets GOAWAY(NO_ERROR) naming its last stream at
    /// once, so the client opens no new stream there (one opened anyway, a higher ID, is
    /// refused and never reaches a backend); the stream in flight is answered in full, then
    /// the connection closes. A connection with no stream open is closed at once. Without the
    /// GOAWAY the client could keep opening streams through the whole drain.
    @Test func anHTTP2ConnectionIsToldToGoAwayAndFinishesItsStream() async throws {
        try await Harness.with(backends: [.init(version: "v1")],
                               listener: ListenerSpec(address: SocketAddressSpec(host: "127.0.0.1", port: 0), h2c: true)) { h in
            let fields = [(":method", "GET"), (":scheme", "http"), (":authority", "a")]
            let idle = try RawHTTPClient(port: h.port, timeout: 5)
            try idle.send(RawHTTP2.clientPreface + RawHTTP2.emptySettings)
            let c = try RawHTTPClient(port: h.port, timeout: 5)
            try c.send(RawHTTP2.clientPreface + RawHTTP2.emptySettings)
            try c.send(RawHTTP2.headers(stream: 1, fields + [(":path", "/slow?delay_ms=400")]))
            let drained = try Self.drainOnceInFlight(h)
            var goAway: (lastStream: UInt32, code: UInt32)?
            var ended = false
            var late: UInt8?
            for _ in 0..<64 where !ended {
                let header = try c.readBytes(9)
                let payload = try c.readBytes(Int(header[0]) << 16 | Int(header[1]) << 8 | Int(header[2]))
                switch (header[3], header[8]) {
                case (0x07, 0) where payload.count >= 8:
                    #expect(goAway == nil || goAway?.lastStream == 1, "a later GOAWAY names a higher stream")
                    goAway = (payload[0..<4].reduce(0) { $0 << 8 | UInt32($1) }, payload[4..<8].reduce(0) { $0 << 8 | UInt32($1) })
                    if late == nil {
                        late = 3
                        try c.send(RawHTTP2.headers(stream: 3, fields + [(":path", "/late")]))
                    }
                case (0x00, 1), (0x01, 1):
                    #expect(goAway != nil, "the response came before the GOAWAY")
                    ended = header[4] & 0x01 != 0
                default:
                    break
                }
            }
            #expect(goAway?.lastStream == 1)
            #expect(goAway?.code == 0)
            #expect(ended)
            #expect(c.waitForClose())
            #expect(idle.waitForClose())
            #expect(drained.wait(timeout: .now() + 10) == .success)
            #expect(h.backends[0].received.map(\.uri) == ["/slow?delay_ms=400"])
        }
    }
}
}
