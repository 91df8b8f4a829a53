import Foundation
import Testing
import SluiceConfig
import SluiceProxy
import SluiceRouting

extension EndToEnd {
@Suite struct Forwarding {
    @Test func getIsForwardedWithForwardedHeadersAndTraceContext() async throws {
        try await Harness.with(backends: [.init(version: "v1")]) { h in
            let c = try h.client()
            let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            let r = try c.request("GET", "/hello?x=1", host: "shop.example.com:8080",
                                  headers: [("traceparent", tp), ("tracestate", "vendor=1"), ("X-Forwarded-For", "10.1.1.1")])
            #expect(r.status == 200)
            #expect(r.json["version"] as? String == "v1")
            #expect(r.json["path"] as? String == "/hello")
            #expect(r.json["query"] as? String == "x=1")
            let h = r.echoedHeaders
            #expect(h["x-forwarded-for"] == "10.1.1.1, 127.0.0.1")
            #expect(h["x-forwarded-proto"] == "http")
            #expect(h["x-forwarded-host"] == "shop.example.com:8080")
            #expect(h["host"] == "shop.example.com:8080")
            #expect(h["traceparent"] == tp)
            #expect(h["tracestate"] == "vendor=1")
        }
    }

    @Test func hopByHopHeadersAreRemovedBothWays() async throws {
        try await Harness.with(backends: [.init(version: "v1")]) { h in
            let c = try h.client()
            let r = try c.request("GET", "/", headers: [
                ("Connection", "keep-alive, X-Hop"), ("X-Hop", "secret"), ("Keep-Alive", "timeout=5"),
                ("TE", "trailers"), ("Proxy-Authorization", "Basic eA=="), ("Proxy-Connection", "keep-alive"),
                ("X-End-To-End", "kept"),
            ])
            #expect(r.status == 200)
            let seen = r.echoedHeaders
            for name in ["connection", "x-hop", "keep-alive", "te", "proxy-authorization", "proxy-connection"] {
                #expect(seen[name] == nil, "\(name) reached the backend")
            }
            #expect(seen["x-end-to-end"] == "kept")
            #expect(r.header("keep-alive") == nil)
        }
    }

    @Test func largeBodyIsEchoedByteForByte() async throws {
        try await Harness.with(backends: [.init(version: "v1")]) { h in
            let c = try h.client()
            var body = [UInt8](repeating: 0, count: 4 << 20)
            var rng = SystemRandomNumberGenerator()
            for i in stride(from: 0, to: body.count, by: 8) {
                withUnsafeBytes(of: rng.next() as UInt64) { body.replaceSubrange(i..<i + 8, with: $0) }
            }
            let r = try c.request("POST", "/echo", body: body)
            #expect(r.status == 200)
            #expect(r.body.count == body.count)
            #expect(r.body == body)
        }
    }

    @Test func chunkedUploadIsForwarded() async throws {
        try await Harness.with(backends: [.init(version: "v1")]) { h in
            let c = try h.client()
            let chunks = ["hello ", "chunked ", String(repeating: "x", count: 70_000)]
            var text = "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            for chunk in chunks { text += String(chunk.utf8.count, radix: 16) + "\r\n" + chunk + "\r\n" }
            text += "0\r\n\r\n"
            try c.send(text)
            let r = try c.readResponse()
            #expect(r.status == 200)
            #expect(r.bodyString == chunks.joined())
            // The connection is still usable afterwards.
            let again = try c.request("GET", "/after")
            #expect(again.status == 200)
            #expect(again.json["path"] as? String == "/after")
        }
    }

    /// A chunked body whose framing lines arrive cut over several reads (TCP segments may cut
    /// them anywhere): the proxy reads on until each line is whole. It used to hold its next
    /// read as if the unparsed piece were a pipelined request, and the upload stalled until the
    /// response timeout (found as an intermittent failure of a write-through test).
    @Test func chunkFramingCutAcrossReadsKeepsTheUploadGoing() async throws {
        try await Harness.with(backends: [.init(version: "v1")]) { h in
            let c = try RawHTTPClient(port: h.port, timeout: 5)
            // Each piece ends inside a chunk-size line or a chunk's closing CRLF.
            let pieces = ["POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5", "\r\nhello\r", "\n1",
                          "0\r\n0123456789abcdef\r\n", "0", "\r\n\r\n"]
            for piece in pieces {
                try c.send(piece)
                // Time for the proxy to read the piece by itself (were two read together, the
                // test would cover less, not fail).
                usleep(50_000)
            }
            let r = try c.readResponse()
            #expect(r.status == 200)
            #expect(r.bodyString == "hello0123456789abcdef")
        }
    }

    @Test func largeDownloadIsStreamed() async throws {
        try await Harness.with(backends: [.init(version: "v1")]) { h in
            let c = try h.client()
            let n = 8 << 20
            let r = try c.request("GET", "/bytes/\(n)")
            #expect(r.status == 200)
            #expect(r.body.count == n)
            var ok = true
            for i in stride(from: 0, to: n, by: 4099) where r.body[i] != UInt8(i % 251) { ok = false }
            #expect(ok)
        }
    }

    @Test func headHasNoBodyAndKeepsTheConnectionUsable() async throws {
        try await Harness.with(backends: [.init(version: "v1")]) { h in
            let c = try h.client()
            let head = try c.request("HEAD", "/thing")
            #expect(head.status == 200)
            #expect(head.body.isEmpty)
            #expect(head.header("content-length") != nil)
            let get = try c.request("GET", "/thing")
            #expect(get.status == 200)
            #expect(get.header("content-length") == String(get.body.count))
        }
    }

    @Test func sequentialRequestsReuseOneUpstreamConnection() async throws {
        try await Harness.with(backends: [.init(version: "v1")]) { h in
            let c = try h.client()
            var peers = Set<Int>()
            for i in 0..<10 {
                let r = try c.request("GET", "/n/\(i)")
                #expect(r.status == 200)
                peers.insert(r.json["peerPort"] as? Int ?? -1)
            }
            #expect(peers.count == 1)
            // A second client connection, after the first is done, reuses the pooled one too.
            let c2 = try h.client()
            let r = try c2.request("GET", "/again")
            #expect(peers.contains(r.json["peerPort"] as? Int ?? -2))
        }
    }

    /// `maxConnections: 1`: four clients at once share ONE upstream connection, taking turns
    /// (each waits for the connection to come back to the pool) instead of opening four.
    @Test func maxConnectionsMakesRequestsWaitForAConnection() async throws {
        try await Harness.with(
            backends: [.init(version: "v1")],
            specs: { b in
                var spec = Harness.spec("one", "v1", [b[0].address], connectTimeout: .seconds(5))
                spec.maxConnections = 1
                return [spec]
            }
        ) { h in
            let clients = try (0..<4).map { _ in try h.client() }
            for (i, c) in clients.enumerated() {
                try c.send("GET /turn/\(i)?delay_ms=100 HTTP/1.1\r\nHost: t\r\n\r\n")
            }
            let responses = try clients.map { try $0.readResponse() }
            #expect(responses.map(\.status) == [200, 200, 200, 200])
            #expect(Set(responses.map { $0.json["peerPort"] as? Int ?? -1 }).count == 1)
        }
    }

    /// A request that waits for a connection longer than the connect timeout gets a 504 naming
    /// the wait; the request holding the connection is unaffected.
    @Test func waitingLongerThanTheConnectTimeoutIs504() async throws {
        try await Harness.with(
            backends: [.init(version: "v1")],
            specs: { b in
                var spec = Harness.spec("one", "v1", [b[0].address], connectTimeout: .milliseconds(300))
                spec.maxConnections = 1
                return [spec]
            }
        ) { h in
            let holder = try h.client()
            try holder.send("GET /slow?delay_ms=1500 HTTP/1.1\r\nHost: t\r\n\r\n")
            // The holder's request must be upstream before the second one arrives.
            let stats = waitUntil(timeout: 5) { (try? h.statistics().series.first?.inflight) == 1 }
            #expect(stats)
            let waiter = try h.client()
            let r = try waiter.request("GET", "/waits")
            #expect(r.status == 504)
            #expect(r.bodyString.contains("no connection became free"))
            #expect(try holder.readResponse().status == 200)
        }
    }

    /// An absolute-form request target (RFC 9112 §3.2.2): its host replaces the Host field for
    /// routing and for the backend, which receives the origin-form target.
    @Test func absoluteFormTargetIsRoutedByItsHostAndForwardedInOriginForm() async throws {
        try await Harness.with(
            backends: [.init(version: "v1"), .init(version: "v2")],
            routes: [
                Route(name: "shop", match: RouteMatch(host: .exact("shop.example.com")), target: .backend(BackendID(1))),
                Route(name: "rest", target: .backend(BackendID(0))),
            ]
        ) { h in
            let c = try h.client()
            try c.send("GET http://shop.example.com/cart?x=1 HTTP/1.1\r\nHost: elsewhere.test\r\n\r\n")
            let r = try c.readResponse()
            #expect(r.status == 200)
            #expect(r.json["version"] as? String == "v2")
            #expect(r.json["path"] as? String == "/cart")
            #expect(r.json["query"] as? String == "x=1")
            #expect(r.echoedHeaders["host"] == "shop.example.com")
            #expect(r.echoedHeaders["x-forwarded-host"] == "shop.example.com")
        }
    }

    @Test func roundRobinOverEndpoints() async throws {
        try await Harness.with(
            backends: [.init(version: "v1"), .init(version: "v1")],
            specs: { b in [Harness.spec("app", "v1", [b[0].address, b[1].address])] }
        ) { h in
            let c = try h.client()
            for i in 0..<10 { _ = try c.request("GET", "/rr/\(i)") }
            #expect(h.backends[0].received.count == 5)
            #expect(h.backends[1].received.count == 5)
        }
    }

    @Test func expectContinueIsAnswered() async throws {
        try await Harness.with(backends: [.init(version: "v1")]) { h in
            let c = try h.client()
            try c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
            // The interim response arrives before we send the body.
            let interim = try c.readInterim()
            #expect(interim.hasPrefix("HTTP/1.1 100"))
            try c.send("hello")
            let r = try c.readResponse()
            #expect(r.status == 200)
            #expect(r.bodyString == "hello")
        }
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        try await Harness.with(backends: [.init(version: "v1")]) { h in
            let c = try h.client()
            try c.send("GET /one?delay_ms=50 HTTP/1.1\r\nHost: t\r\n\r\nGET /two HTTP/1.1\r\nHost: t\r\n\r\n")
            let a = try c.readResponse()
            let b = try c.readResponse()
            #expect(a.json["path"] as? String == "/one")
            #expect(b.json["path"] as? String == "/two")
        }
    }

    @Test func http10ClientGetsAnHTTP10AnswerAndTheCloseItExpects() async throws {
        try await Harness.with(backends: [.init(version: "v1")]) { h in
            let c = try h.client()
            try c.send("GET /old HTTP/1.0\r\nHost: t\r\n\r\n")
            let r = try c.readResponse()
            #expect(r.rawHead.hasPrefix("HTTP/1.0 200 OK\r\n"))
            #expect(r.json["path"] as? String == "/old")
            #expect(c.waitForClose())
        }
    }

    @Test func connectionCloseIsHonoured() async throws {
        try await Harness.with(backends: [.init(version: "v1")]) { h in
            let c = try h.client()
            let r = try c.request("GET", "/", headers: [("Connection", "close")])
            #expect(r.status == 200)
            #expect(r.header("connection")?.lowercased() == "close")
            #expect(c.waitForClose())
        }
    }
}
}

