import Foundation
import Testing

extension EndToEnd {
/// `backends.<name>.idleTimeout`: a pooled connection that carries no request for that long is
/// closed by the proxy (an HTTP/1.1 connection idling in the pool; an HTTP/2 connection with no
/// stream, after a GOAWAY), after between three quarters of the timeout and all of it; the next
/// request opens a new connection. The backends are raw sockets, which see the close as it
/// happens and time it from their last byte.
@Suite struct UpstreamIdleTimeout {
    static func config(port: Int, idleTimeout: String, h2: Bool = false) -> String {
        """
        listen: ["127.0.0.1:1"]
        backends:
          app: { version: v1, endpoints: ["127.0.0.1:\(port)"], idleTimeout: \(idleTimeout)\(h2 ? ", protocol: h2" : "") }
        routes:
          - name: all
            backend: app
        """
    }

    /// What a raw backend saw of one connection after answering on it.
    struct Closed: Sendable {
        /// Seconds from its answer to the proxy's close (nil: still open after 10 s).
        var after: Double?
        /// HTTP/2: the GOAWAY frames that came first, as (last stream ID, error code).
        var goAways: [[UInt32]] = []
    }

    /// Reads an HTTP/1.1 request head (false on a read failure, or after 100 lines).
    static func readHead(_ connection: RawHTTPClient) -> Bool {
        for _ in 0..<100 {
            guard let line = try? connection.readLine() else { return false }
            if line.isEmpty { return true }
        }
        return false
    }

    static func answer(_ connection: String) -> String {
        "HTTP/1.1 200 OK\r\nContent-Length: \(connection.utf8.count)\r\nx-connection: \(connection)\r\n\r\n\(connection)"
    }

    /// Waits (at most the connection's 10 s read timeout) for the proxy to close a connection
    /// that `answered` at `since`; `frames`: reads HTTP/2 frames meanwhile, keeping GOAWAYs.
    static func awaitClose(_ connection: RawHTTPClient, since: DispatchTime, frames: Bool) -> Closed {
        var closed = Closed()
        if frames {
            for _ in 0..<16 {
                guard let frame = try? connection.readFrame() else { break }
                if frame.type == 0x7 {
                    closed.goAways.append([frame.payload.prefix(4).reduce(0) { $0 << 8 | UInt32($1) } & 0x7FFF_FFFF,
                                           frame.payload.dropFirst(4).prefix(4).reduce(0) { $0 << 8 | UInt32($1) }])
                }
            }
        }
        if connection.waitForClose() {
            closed.after = Double(DispatchTime.now().uptimeNanoseconds - since.uptimeNanoseconds) / 1e9
        }
        return closed
    }

    /// An HTTP/1.1 connection back in the pool is closed once idle for the timeout (400 ms
    /// here: closed after 300 to 400 ms, within a few sweeps' lateness), and the next request
    /// gets a new one. Without the timeout the proxy kept it until the backend closed it.
    @Test func anIdleHTTP1BackendConnectionIsClosedAfterTheTimeout() async throws {
        let backend = try RawBackend()
        let firstClosed = LockedBox<Closed?>(nil)
        let served = backend.serve { accept in
            guard let first = accept(), Self.readHead(first), (try? first.send(Self.answer("first"))) != nil else { return }
            firstClosed.withLock { $0 = Self.awaitClose(first, since: .now(), frames: false) }
            guard let second = accept(), Self.readHead(second) else { return }
            try? second.send(Self.answer("second"))
            _ = second.waitForClose()
        }
        try await Harness.withYAML(backends: [], config: Self.config(port: backend.port, idleTimeout: "400ms")) { h in
            let c = try h.client()
            let r = try c.request("GET", "/one")
            #expect(r.status == 200)
            #expect(r.header("x-connection") == "first")
            #expect(waitUntil(timeout: 12) { firstClosed.withLock { $0 != nil } })
            let after = firstClosed.withLock { $0?.after }
            #expect(after.map { $0 >= 0.3 && $0 < 3 } == true, "closed after \(String(describing: after)) s")
            let next = try c.request("GET", "/two")
            #expect(next.status == 200)
            #expect(next.header("x-connection") == "second")
        }
        #expect(served.wait(timeout: .now() + 15) == .success)
    }

    /// An HTTP/2 backend connection with no stream open is closed once idle for the timeout,
    /// with a GOAWAY (NO_ERROR, last stream ID 0) before the close; the next request opens a
    /// new connection.
    @Test func anIdleHTTP2BackendConnectionGoesAwayAfterTheTimeout() async throws {
        let backend = try RawBackend()
        let firstClosed = LockedBox<Closed?>(nil)
        let served = backend.serve { accept in
            guard let first = accept(), first.awaitRequest(),
                  (try? first.send(EndToEnd.HTTP2AndTLS.answer(on: "first"))) != nil else { return }
            firstClosed.withLock { $0 = Self.awaitClose(first, since: .now(), frames: true) }
            guard let second = accept(), second.awaitRequest() else { return }
            try? second.send(EndToEnd.HTTP2AndTLS.answer(on: "second"))
            _ = second.waitForClose()
        }
        try await Harness.withYAML(backends: [], config: Self.config(port: backend.port, idleTimeout: "400ms", h2: true)) { h in
            let c = try h.client()
            let r = try c.request("GET", "/one")
            #expect(r.status == 200)
            #expect(r.header("x-connection") == "first")
            #expect(waitUntil(timeout: 12) { firstClosed.withLock { $0 != nil } })
            let closed = firstClosed.withLock { $0 }
            #expect(closed?.after.map { $0 >= 0.3 && $0 < 3 } == true, "closed after \(String(describing: closed?.after)) s")
            #expect(closed?.goAways == [[0, 0]])
            let next = try c.request("GET", "/two")
            #expect(next.status == 200)
            #expect(next.header("x-connection") == "second")
        }
        #expect(served.wait(timeout: .now() + 15) == .success)
    }

    /// A connection in use is not idle, however long its response takes: an answer 1 s after
    /// its request, with a 200 ms idle timeout, reaches the client, over HTTP/1.1 and over an
    /// HTTP/2 backend connection (whose one stream stays open meanwhile).
    @Test(arguments: [false, true])
    func aResponseSlowerThanTheIdleTimeoutArrives(h2: Bool) async throws {
        try await Harness.withYAML(backends: [.init(version: "v1", h2c: h2)], config: """
            listen: ["127.0.0.1:1"]
            backends:
              app: { version: v1, endpoints: ["${B0}"], idleTimeout: 200ms\(h2 ? ", protocol: h2" : "") }
            routes:
              - name: all
                backend: app
            """) { h in
            let c = try h.client()
            for i in 0..<2 {
                let r = try c.request("GET", "/slow/\(i)?delay_ms=1000")
                #expect(r.status == 200)
                #expect(r.json["version"] as? String == "v1")
            }
            #expect(h.backends[0].received.count == 2)
        }
    }
}
}
