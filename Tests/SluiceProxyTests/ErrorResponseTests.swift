import Foundation
import Testing
import SluiceMetrics
import SluiceConfig
import SluiceProxy
import SluiceRouting

extension EndToEnd {
/// Every proxy-made error: its status, its one-line plain-text body, and the connection state after it.
@Suite struct ErrorResponses {
    @Test func refusedUpstreamIs502() async throws {
        let dead = try deadPort()
        try await Harness.with(
            backends: [.init(version: "v1")],
            specs: { _ in [Harness.spec("gone", "v1", ["127.0.0.1:\(dead)"])] }
        ) { h in
            let c = try h.client()
            let r = try c.request("GET", "/")
            #expect(r.status == 502)
            #expect(r.header("content-type")?.hasPrefix("text/plain") == true)
            #expect(r.bodyString.contains("connect"))
            #expect(r.bodyString.contains("gone"))
            // The client connection stays usable.
            let again = try c.request("GET", "/")
            #expect(again.status == 502)
            let stats = try h.statistics()
            #expect(stats.series.first?.codes[502] == 2)
            #expect(stats.series.first?.upstreamErrors[0] == 2)
        }
    }

    /// A backend with two endpoints, the first refusing connections: every request is served
    /// by the other. A refused connect reached no backend, so its request — a POST with a body
    /// too — goes to the next endpoint (nginx's `proxy_next_upstream error`), and the refusing
    /// endpoint is then passed over for its cool-down (`EndpointCooldown`, 1 s at first)
    /// instead of costing every other request a failed connect. Before, round-robin sent every
    /// other request to it: 502.
    @Test func aRefusingEndpointIsPassedOverAndItsRequestsGoToTheOther() async throws {
        let dead = try deadPort()
        try await Harness.with(
            backends: [.init(version: "v1")],
            specs: { started in [Harness.spec("pair", "v1", ["127.0.0.1:\(dead)", started[0].address])] }
        ) { h in
            let c = try h.client()
            let start = Date()
            // Round-robin starts at the first endpoint: the dead one.
            let body = [UInt8](repeating: 0x61, count: 10_000)
            let post = try c.request("POST", "/upload", body: body)
            #expect(post.status == 200)
            #expect((post.json["bodyBytes"] as? NSNumber)?.intValue == body.count)
            for i in 0..<40 {
                let r = try c.request("GET", "/r\(i)")
                #expect(r.status == 200, "request \(i): \(r.status) \(r.bodyString)")
            }
            #expect(h.backends[0].received.count == 41)
            // One failed connect, and one more for each cool-down that ended during the run
            // (1 s, then 2 s, ...): a slow machine may see a second or third.
            let seconds = Date().timeIntervalSince(start)
            let failed = try h.statistics().series.first?.upstreamErrors[0] ?? 0
            #expect(failed >= 1 && failed <= 1 + Int(seconds.rounded(.up)), "\(failed) failed connects in \(seconds) s")
            #expect(try h.statistics().series.first?.codes[200] == 41)
        }
    }

    /// A backend with two endpoints, the first closing every connection as a request arrives
    /// (an instance going away mid-request): each GET it drops is sent again to the other
    /// endpoint and answered 200 (nginx's `proxy_next_upstream error`); a POST is not sent
    /// again (the backend may have acted on it), so those it drops get a 502. Before, every
    /// request that reached the first endpoint got a 502.
    @Test func anIdempotentRequestWhoseConnectionIsResetGoesToAnotherEndpoint() async throws {
        let dropping = try RawBackend()
        let served = dropping.serve { accept in
            for _ in 0..<40 {
                guard let connection = accept() else { return }
                _ = try? connection.readLine() // the request has arrived
                connection.close()
            }
        }
        try await expectRetriedElsewhere(failingEndpoint: dropping.port, methods: ["GET", "DELETE"], requests: 8,
                                         reason: .reset, postStatus: 502)
        _ = served
    }

    /// A backend with two endpoints, the first taking every request and never answering (a hung
    /// instance): a GET or HEAD whose response head does not come within the backend's
    /// `timeout` is sent once more, to the other endpoint, and answered 200 (nginx's
    /// `proxy_next_upstream timeout`); a POST is not sent again (the backend may be acting on
    /// it), so those that reach the hung endpoint get a 504. Before, every request that reached
    /// it got a 504.
    @Test func anIdempotentRequestThatTimesOutGoesToAnotherEndpoint() async throws {
        let hung = try RawBackend()
        let testDone = DispatchSemaphore(value: 0)
        let served = hung.serve { accept in
            var held: [RawHTTPClient] = []
            for _ in 0..<16 {
                guard let connection = accept() else { break }
                _ = try? connection.readLine() // the request has arrived; it is never answered
                held.append(connection)
            }
            testDone.wait()
            for connection in held { connection.close() }
        }
        defer { testDone.signal() }
        try await expectRetriedElsewhere(failingEndpoint: hung.port, timeout: .milliseconds(300), methods: ["GET", "HEAD"],
                                         requests: 6, reason: .timeout, postStatus: 504)
        _ = served
    }

    /// A backend whose first endpoint (`failingEndpoint`, on loopback) fails every request and
    /// whose second is a test backend: `requests` idempotent requests, alternating `methods`,
    /// are all answered 200, at least two of them after meeting the failing endpoint first
    /// (counted as `reason`; round-robin alternates); POSTs that meet it get `postStatus`, and
    /// none reaches the backend twice.
    private func expectRetriedElsewhere(failingEndpoint port: Int, timeout: Duration = .seconds(30), methods: [String],
                                        requests: Int, reason: UpstreamErrorReason, postStatus: Int) async throws {
        try await Harness.with(
            backends: [.init(version: "v1")],
            specs: { started in [Harness.spec("pair", "v1", ["127.0.0.1:\(port)", started[0].address], timeout: timeout)] }
        ) { h in
            for i in 0..<requests {
                let r = try h.client().request(methods[i % methods.count], "/g\(i)")
                #expect(r.status == 200, "request \(i): \(r.status) \(r.bodyString)")
            }
            let retried = try h.statistics().series.first?.upstreamErrors[reason.rawValue] ?? 0
            #expect(retried >= 2, "only \(retried) requests met the failing endpoint")
            let posts = try (0..<4).map { i in try h.client().request("POST", "/p\(i)").status }
            #expect(posts.contains(postStatus) && posts.allSatisfy { $0 == 200 || $0 == postStatus }, "\(posts)")
            #expect(h.backends[0].received.filter { $0.method == "POST" }.count == posts.filter { $0 == 200 }.count)
        }
    }

    @Test func noEndpointIs503() async throws {
        try await Harness.with(
            backends: [.init(version: "v1")],
            specs: { _ in [Harness.spec("empty", "v1", [])] }
        ) { h in
            let r = try h.client().request("GET", "/")
            #expect(r.status == 503)
            #expect(r.bodyString.contains("no endpoint"))
        }
    }

    @Test func slowUpstreamIs504() async throws {
        try await Harness.with(
            backends: [.init(version: "v1")],
            specs: { b in [Harness.spec("slow", "v1", [b[0].address], timeout: .milliseconds(200))] }
        ) { h in
            let c = try h.client()
            let r = try c.request("GET", "/?delay_ms=2000")
            #expect(r.status == 504)
            #expect(r.bodyString.contains("timeout"))
            // The next request on the same client connection is served normally.
            let ok = try c.request("GET", "/fast")
            #expect(ok.status == 200)
        }
    }

    @Test func noRouteIs404() async throws {
        try await Harness.with(
            backends: [.init(version: "v1")],
            routes: [Route(name: "api", match: RouteMatch(pathPrefix: "/api"), target: .backend(BackendID(0)))]
        ) { h in
            let c = try h.client()
            let r = try c.request("GET", "/nothing-here")
            #expect(r.status == 404)
            #expect(r.bodyString == "no route for GET /nothing-here\n")
            let ok = try c.request("GET", "/api/x")
            #expect(ok.status == 200)
            let stats = try h.statistics()
            #expect(stats.unrouted == 1)
        }
    }

    @Test func contentLengthWithTransferEncodingIs400AndCloses() async throws {
        try await Harness.with(backends: [.init(version: "v1")]) { h in
            let c = try h.client()
            try c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
            let r = try c.readResponse()
            #expect(r.status == 400)
            #expect(r.bodyString.contains("Content-Length") || r.bodyString.contains("malformed"))
            #expect(c.waitForClose())
            #expect(h.backends[0].received.isEmpty)
        }
    }

    @Test func malformedRequestLineIs400AndCloses() async throws {
        try await Harness.with(backends: [.init(version: "v1")]) { h in
            let c = try h.client()
            try c.send("GARBAGE\r\n\r\n")
            let r = try c.readResponse()
            #expect(r.status == 400)
            #expect(r.bodyString.hasPrefix("malformed request"))
            #expect(c.waitForClose())
        }
    }

    @Test func missingHostIs400() async throws {
        try await Harness.with(backends: [.init(version: "v1")]) { h in
            let c = try h.client()
            try c.send("GET / HTTP/1.1\r\n\r\n")
            let r = try c.readResponse()
            #expect(r.status == 400)
            #expect(r.bodyString.contains("Host"))
        }
    }

    @Test func oversizedHeadersAre431() async throws {
        try await Harness.with(backends: [.init(version: "v1")]) { h in
            let c = try h.client()
            let big = String(repeating: "a", count: 70_000)
            try c.send("GET / HTTP/1.1\r\nHost: t\r\nX-Big: \(big)\r\n\r\n")
            let r = try c.readResponse()
            #expect(r.status == 431)
            #expect(r.bodyString.contains("too large"))
            #expect(c.waitForClose())
        }
    }

    @Test func headersJustUnderTheLimitPass() async throws {
        try await Harness.with(backends: [.init(version: "v1")]) { h in
            let c = try h.client()
            let r = try c.request("GET", "/", headers: [("X-Big", String(repeating: "a", count: 60_000))])
            #expect(r.status == 200)
        }
    }

    /// `server.idleTimeout`: a keep-alive connection that sends nothing is closed by the proxy
    /// (the read times out after 10 s, so a proxy that never closes fails), while a request
    /// that takes longer than the idle timeout upstream is still answered on its connection.
    @Test func idleConnectionsAreClosedButSlowRequestsAreNot() async throws {
        try await Harness.with(
            backends: [.init(version: "v1")],
            server: ServerSettings(idleTimeout: .milliseconds(300))
        ) { h in
            let slow = try h.client()
            let r = try slow.request("GET", "/?delay_ms=900")
            #expect(r.status == 200)
            let idle = try h.client()
            #expect(try idle.request("GET", "/").status == 200)
            let started = Date()
            #expect(idle.waitForClose())
            #expect(Date().timeIntervalSince(started) < 5)
        }
    }

    /// A backend response with both `Content-Length` and `Transfer-Encoding` (RFC 9112 §6.3:
    /// "ought to be handled as an error"; a proxy that forwards it "MUST first remove the received
    /// Content-Length") is refused with a 502, as nginx does: forwarded with its length and the
    /// decoded body, a body longer than the length would be read by an HTTP/1.1 client as the
    /// start of its next response (here "hello" against a length of 3). An HTTP/2 client gets
    /// the same 502.
    @Test(arguments: [false, true])
    func aBackendResponseWithBothFramingsIs502(h2: Bool) async throws {
        let backend = try RawBackend()
        let served = backend.serve { accept in
            guard let c = accept() else { return }
            while let line = try? c.readLine(), !line.isEmpty {}
            try? c.send("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
            _ = c.waitForClose()
        }
        let config = """
            listen: ["127.0.0.1:1"]
            backends:
              raw: { version: v1, endpoints: ["127.0.0.1:\(backend.port)"] }
            routes:
              - name: web
                backend: raw
            """
        let listener = ListenerSpec(address: SocketAddressSpec(host: "127.0.0.1", port: 0), h2c: h2)
        try await Harness.withYAML(backends: [], config: config, listener: listener) { h in
            if h2 {
                #expect(try h.client().http2Status(get: "/both") == "502")
            } else {
                let c = try h.client()
                let r = try c.request("GET", "/both")
                #expect(r.status == 502, "\(r.status) \(r.header("content-length") ?? "-") \(String(decoding: r.body, as: UTF8.self))")
            }
            let stats = try h.statistics()
            #expect(stats.series.first?.upstreamErrors[UpstreamErrorReason.protocol.rawValue] == 1)
        }
        #expect(served.wait(timeout: .now() + 15) == .success)
    }

    /// Bytes a backend sends after the end of a response, in the same read (a response nobody
    /// asked for), make its connection unusable: it is closed, not handed to the next request.
    /// Here the only connection the pool may open (`maxConnections: 1`) carries a second
    /// response right behind the first while another request waits for the connection; that
    /// request used to take the connection at once and get the unasked-for response ("poison")
    /// as its own. Now it gets a new connection and its own answer, and the fault is logged.
    @Test func bytesAfterAResponseAreNotTheNextRequestsResponse() async throws {
        _ = TestLog.install
        let backend = try RawBackend()
        let secondWaiting = DispatchSemaphore(value: 0)
        let served = backend.serve { accept in
            guard let first = accept() else { return }
            while let line = try? first.readLine(), !line.isEmpty {}
            _ = secondWaiting.wait(timeout: .now() + 10)
            try? first.send("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst"
                + "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\npoison")
            guard let second = accept() else { return }
            while let line = try? second.readLine(), !line.isEmpty {}
            try? second.send("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond")
            _ = first.waitForClose()
            _ = second.waitForClose()
        }
        let config = """
            listen: ["127.0.0.1:1"]
            backends:
              raw: { version: v1, endpoints: ["127.0.0.1:\(backend.port)"], maxConnections: 1, connectTimeout: 5s }
            routes:
              - name: web
                backend: raw
            """
        try await Harness.withYAML(backends: [], config: config) { h in
            let a = try h.client(), b = try h.client()
            try a.send("GET /first HTTP/1.1\r\nHost: t\r\n\r\n")
            #expect(waitUntil(timeout: 5) { (try? h.statistics().series.first?.inflight) == 1 })
            try b.send("GET /second HTTP/1.1\r\nHost: t\r\n\r\n")
            #expect(waitUntil(timeout: 5) { (try? h.statistics().series.first?.inflight) == 2 })
            secondWaiting.signal()
            let first = String(decoding: try a.readResponse().body, as: UTF8.self)
            let second = String(decoding: try b.readResponse().body, as: UTF8.self)
            #expect(first == "first")
            #expect(second == "second")
        }
        #expect(TestLog.contains("warning backend sent bytes after the end of a response", "endpoint=127.0.0.1:\(backend.port)"))
        #expect(served.wait(timeout: .now() + 15) == .success)
    }

    /// `readTimeout`: a backend that sends a response head and part of its body, then nothing,
    /// fails the exchange after the read timeout (the client gets the part and then the
    /// close, the only honest signal once the head is out; recorded as an upstream timeout);
    /// it used to hold the client and the upstream connection for good (the client's read
    /// below times out after 10 s). A backend that trickles its body a few bytes at a time,
    /// each gap shorter than the timeout, is not cut off however long the whole takes.
    @Test func aBackendThatStallsMidBodyIsCutOffAfterTheReadTimeout() async throws {
        let backend = try RawBackend()
        let served = backend.serve { accept in
            for path in ["/stall", "/trickle"] {
                guard let c = accept() else { return }
                let request = (try? c.readLine()) ?? ""
                while let line = try? c.readLine(), !line.isEmpty {}
                guard request.contains(path) else { return }
                try? c.send("HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\nhalf ")
                if path == "/stall" {
                    _ = c.waitForClose()
                } else {
                    for _ in 0..<15 { // 15 bytes, 150 ms apart: 2.25 s, gaps a quarter of the timeout
                        usleep(150_000)
                        try? c.send("x")
                    }
                    _ = c.waitForClose()
                }
            }
        }
        let config = """
            listen: ["127.0.0.1:1"]
            backends:
              raw: { version: v1, endpoints: ["127.0.0.1:\(backend.port)"], readTimeout: 600ms }
            routes:
              - name: web
                backend: raw
            """
        try await Harness.withYAML(backends: [], config: config) { h in
            let stalled = try RawHTTPClient(port: h.port, timeout: 10)
            try stalled.send("GET /stall HTTP/1.1\r\nHost: t\r\n\r\n")
            var received: [UInt8] = []
            while let byte = try? stalled.readBytes(1) { received += byte }
            let text = String(decoding: received, as: UTF8.self)
            #expect(text.hasPrefix("HTTP/1.1 200"), "\(text)")
            #expect(text.hasSuffix("\r\n\r\nhalf "), "\(text)")
            let stats = try h.statistics()
            #expect(stats.series.first?.upstreamErrors[UpstreamErrorReason.timeout.rawValue] == 1)
            #expect(stats.series.first?.inflight == 0)
            let trickled = try h.client().request("GET", "/trickle")
            #expect(trickled.status == 200)
            #expect(trickled.bodyString == "half " + String(repeating: "x", count: 15))
        }
        #expect(served.wait(timeout: .now() + 15) == .success)
    }

    /// The read timeout counts the backend's silence, not the client's: a client that pauses
    /// for five read timeouts while the proxy holds the backend back (its reads paused until
    /// the client drains) still gets the whole body.
    @Test func aSlowClientDoesNotTripTheBackendReadTimeout() async throws {
        try await Harness.withYAML(backends: [.init(version: "v1")], config: """
            listen: ["127.0.0.1:1"]
            backends:
              a: { version: v1, endpoints: ["${B0}"], readTimeout: 200ms }
            routes:
              - name: web
                backend: a
            """) { h in
            // 32 MiB: more than every socket buffer between the backend and the client holds, so
            // the pause does stop the proxy's reads from the backend.
            let size = 32 << 20
            let c = try RawHTTPClient(port: h.port, timeout: 10, receiveBuffer: 65_536)
            try c.send("GET /bytes/\(size) HTTP/1.1\r\nHost: t\r\n\r\n")
            usleep(1_000_000) // the client's pause: part of the scenario, not a wait for a result
            let r = try c.readResponse()
            #expect(r.status == 200)
            #expect(r.body.count == size)
            #expect(try h.statistics().series.first?.upstreamErrors[UpstreamErrorReason.timeout.rawValue] == 0)
        }
    }

    /// A client that stops reading a response: once the proxy has held more than NIO's
    /// high-water mark of it for `server.idleTimeout` (the channel unwritable that long), the
    /// connection is closed, and with it the upstream exchange (recorded 499). It used to be
    /// held for good, with an upstream connection under it (a slow-read attack needs no more).
    /// A client that keeps reading through the same small buffer is not cut off (the first
    /// request below: its channel turns writable again each time it has taken NIO's low-water
    /// mark).
    @Test func aClientThatStopsReadingIsClosedAfterTheIdleTimeout() async throws {
        try await Harness.with(
            backends: [.init(version: "v1")],
            server: ServerSettings(idleTimeout: .milliseconds(300))
        ) { h in
            // 8 MiB: far more than the client's 64 KiB receive buffer, the proxy's send buffer
            // and NIO's high-water mark together.
            let size = 8 << 20
            let reader = try RawHTTPClient(port: h.port, timeout: 10, receiveBuffer: 65_536)
            let read = try reader.request("GET", "/bytes/\(size)")
            #expect(read.body.count == size)
            let stalled = try RawHTTPClient(port: h.port, timeout: 10, receiveBuffer: 65_536)
            try stalled.send("GET /bytes/\(size) HTTP/1.1\r\nHost: t\r\n\r\n")
            // In flight first (bounded polls), then ended by the proxy within 5 s.
            func waitForInflight(_ wanted: Int) throws -> Bool {
                for _ in 0..<500 {
                    if try h.statistics().series.first?.inflight ?? 0 == wanted { return true }
                    usleep(10_000)
                }
                return false
            }
            #expect(try waitForInflight(1))
            #expect(try waitForInflight(0), "the stalled exchange is still in flight")
            #expect(try h.statistics().series.first?.codes[499] == 1)
            #expect(try h.client().request("GET", "/after").status == 200)
        }
    }

    /// A request head must arrive whole within `server.idleTimeout` of its first byte: a client
    /// that dribbles one (a byte every 100 ms, each of which used to restart the idle timeout,
    /// so the connection was held for as long as the client liked: slowloris) gets a 408 and
    /// the connection closes. The dribble stops at the first byte the proxy sends, or after
    /// 40 bytes (4 s) when it never does.
    @Test func aRequestHeadDribbledSlowerThanTheIdleTimeoutGets408() async throws {
        try await Harness.with(
            backends: [.init(version: "v1")],
            server: ServerSettings(idleTimeout: .milliseconds(300))
        ) { h in
            let c = try h.client()
            try c.send("GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ")
            var dribbled = 0
            while dribbled < 40, !c.hasInput() {
                guard (try? c.send("a")) != nil else { break }
                dribbled += 1
                usleep(100_000)
            }
            #expect(dribbled < 40, "the proxy waited for the whole dribble")
            let r = try c.readResponse()
            #expect(r.status == 408)
            #expect(r.header("connection")?.lowercased() == "close")
            #expect(c.waitForClose())
            #expect(h.backends[0].received.isEmpty)
        }
    }
}
}
