import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOPosix
import Testing
import SluiceMetrics
@testable import SluiceProxy

/// End-to-end tests of shadow mirroring (SPEC "Mirror (shadow)"): which requests are copied,
/// what a copy looks like, that the primary never waits for the shadow, and drop counting.
///
/// Fire-and-forget effects are awaited by bounded polling (never by a sleep used as an
/// assertion). Statistical bounds: N draws with share p have sd = sqrt(N p (1-p)); a two-sided
/// 5.0 sd bound has tail probability ≈ 5.7e-7.

/// Polls `condition` every 5 ms, at most `limit` times (default 10 s); true once it holds.
@discardableResult
fileprivate func poll(_ limit: Int = 2000, _ condition: () throws -> Bool) rethrows -> Bool {
    for _ in 0..<limit {
        if try condition() { return true }
        usleep(5_000)
    }
    return try condition()
}

fileprivate func lowercased(_ headers: [(String, String)]) -> [String: String] {
    Dictionary(headers.map { ($0.0.lowercased(), $0.1) }, uniquingKeysWith: { a, b in "\(a), \(b)" })
}

extension Harness {
    /// The mirror counters of the series (route, backend), zero when it recorded nothing yet.
    func mirrorCounts(route: String, backend: String) throws -> [MirrorResult: UInt64] {
        guard let id = proxy.registry.allKeys.firstIndex(where: { $0.route == route && $0.backend == backend }) else {
            Issue.record("no series for route \(route), backend \(backend): \(proxy.registry.allKeys)")
            return [:]
        }
        let stats = try statistics()
        var out: [MirrorResult: UInt64] = [:]
        for result in MirrorResult.allCases {
            out[result] = id < stats.series.count ? stats.series[id].mirror[result.rawValue] : 0
        }
        return out
    }

    /// Waits (bounded) until every copy sent on the series has completed or failed.
    func waitForMirrorsSettled(route: String, backend: String, limit: Int = 2000) throws -> [MirrorResult: UInt64] {
        var counts: [MirrorResult: UInt64] = [:]
        try poll(limit) {
            counts = try mirrorCounts(route: route, backend: backend)
            return counts[.completed, default: 0] + counts[.failed, default: 0] == counts[.sent, default: 0]
        }
        return counts
    }
}

/// A backend that records every request with its complete body, so a test can compare the
/// shadow copy's bytes with what the client sent (the test backend only counts body bytes).
final class CaptureBackend: @unchecked Sendable {
    struct Request: Sendable {
        var method: String
        var uri: String
        var headers: [(String, String)]
        var body: [UInt8]
    }

    private let lock = NSLock()
    private var log: [Request] = []
    private var channel: Channel?
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    var requests: [Request] { lock.lock(); defer { lock.unlock() }; return log }
    var address: String { "127.0.0.1:\(channel?.localAddress?.port ?? 0)" }

    fileprivate func record(_ r: Request) { lock.lock(); log.append(r); lock.unlock() }

    static func start() async throws -> CaptureBackend {
        let backend = CaptureBackend()
        backend.channel = try await ServerBootstrap(group: backend.group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(CaptureHandler(backend: backend))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return backend
    }

    func stop() async {
        try? await channel?.close()
        try? await group.shutdownGracefully()
    }
}

fileprivate final class CaptureHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let backend: CaptureBackend
    var head: HTTPRequestHead?
    var body: [UInt8] = []

    init(backend: CaptureBackend) { self.backend = backend }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body = []
        case .body(var b):
            body += b.readBytes(length: b.readableBytes) ?? []
        case .end:
            guard let head else { return }
            backend.record(.init(method: head.method.rawValue, uri: head.uri,
                                 headers: head.headers.map { ($0.name, $0.value) }, body: body))
            var headers = HTTPHeaders()
            headers.add(name: "content-length", value: "2")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: "ok")))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            self.head = nil
        }
    }
}

fileprivate func randomBytes(_ n: Int) -> [UInt8] {
    var rng = SystemRandomNumberGenerator()
    return (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
}

extension EndToEnd {
@Suite struct Shadow {
    @Test func everyGetIsCopiedExactlyOnceWithMarkerStrippedAndHopByHopRemoved() async throws {
        try await Harness.withShadow(route: """
            mirror:
              backend: shadow
              percent: 100
              stripHeaders: [authorization, cookie, idempotency-key, X-Api-Key]
            """) { h in
            let n = 50
            let c = try h.client()
            for i in 0..<n {
                let r = try c.request("GET", "/g/\(i)?q=\(i)", headers: [
                    ("Authorization", "Bearer secret"), ("Cookie", "session=abc"), ("Idempotency-Key", "k\(i)"),
                    ("x-api-key", "key"),
                    ("X-Trace", "t\(i)"), ("Connection", "keep-alive, X-Hop"), ("X-Hop", "hop"),
                    ("Keep-Alive", "timeout=5"), ("TE", "trailers"), ("Proxy-Authorization", "Basic eA=="),
                ])
                #expect(r.status == 200)
                #expect(r.header("x-backend-version") == "v1", "the client is answered by the primary")
                #expect(r.header("x-sluice-shadow") == nil)
            }
            let counts = try h.waitForMirrorsSettled(route: "web", backend: "shadow")
            #expect(counts[.sent] == UInt64(n))
            #expect(counts[.completed] == UInt64(n))
            #expect(counts[.dropped] == 0)
            let copies = h.backends[1].received
            #expect(copies.count == n, "the shadow received \(copies.count) copies of \(n) GETs")
            #expect(Set(copies.map(\.uri)) == Set((0..<n).map { "/g/\($0)?q=\($0)" }))
            for copy in copies {
                let headers = lowercased(copy.headers)
                #expect(copy.method == "GET")
                #expect(headers["x-sluice-shadow"] == "1")
                for stripped in ["authorization", "cookie", "idempotency-key", "x-api-key"] {
                    #expect(headers[stripped] == nil, "\(stripped) reached the shadow")
                }
                for hop in ["x-hop", "keep-alive", "te", "proxy-authorization"] {
                    #expect(headers[hop] == nil, "hop-by-hop \(hop) reached the shadow")
                }
                #expect(headers["connection"].map { !$0.lowercased().contains("x-hop") } ?? true)
                #expect(headers["x-trace"]?.hasPrefix("t") == true)
            }
            // The primary got its headers intact (stripping is for the copy only) and no marker.
            let primary = h.backends[0].received
            #expect(primary.count == n)
            for (i, r) in primary.enumerated() {
                let headers = lowercased(r.headers)
                #expect(headers["x-sluice-shadow"] == nil)
                #expect(headers["authorization"] == "Bearer secret")
                #expect(headers["idempotency-key"] == "k\(i)")
            }
        }
    }

    /// A shadow backend that speaks HTTP/2 (`protocol: h2`, a gRPC service) gets its copies on
    /// HTTP/2 streams, as the primary's requests would go: they were sent as HTTP/1.1, which
    /// such a backend cannot read, and every copy failed.
    @Test func anHTTP2ShadowGetsItsCopiesOverHTTP2() async throws {
        try await Harness.withYAML(backends: [.init(version: "v1"), .init(version: "v2", h2c: true)], config: """
            listen: ["127.0.0.1:1"]
            backends:
              primary: { version: v1, endpoints: ["${B0}"] }
              shadow: { version: v2, endpoints: ["${B1}"], protocol: h2 }
            routes:
              - name: web
                backend: primary
                mirror: { backend: shadow, percent: 100 }
            """) { h in
            let c = try h.client()
            for i in 0..<5 {
                let r = try c.request("GET", "/copy/\(i)")
                #expect(r.status == 200)
                #expect(r.json["version"] as? String == "v1")
            }
            let counts = try h.waitForMirrorsSettled(route: "web", backend: "shadow")
            #expect(counts[.sent] == 5)
            #expect(counts[.completed] == 5, "\(counts)")
            #expect(counts[.failed] == 0)
            #expect(h.backends[1].received.map(\.uri).sorted() == (0..<5).map { "/copy/\($0)" })
        }
    }

    @Test func writesAreNotMirroredByDefault() async throws {
        try await Harness.withShadow(route: """
            mirror: { backend: shadow, percent: 100 }
            """) { h in
            let c = try h.client()
            for method in ["POST", "PUT", "PATCH", "DELETE"] {
                for _ in 0..<5 {
                    let r = try c.request(method, "/w", body: Array("payload".utf8))
                    #expect(r.status == 200)
                    #expect(r.json["bodyBytes"] as? Int == 7)
                }
            }
            // Safe methods are copied: HEAD and OPTIONS as well as GET.
            #expect(try c.request("HEAD", "/h").status == 200)
            #expect(try c.request("OPTIONS", "/o").status == 200)
            #expect(try c.request("GET", "/g").status == 200)
            // Every copy is counted `sent` when its request ends, before the primary answers it;
            // so once the clients have their answers the counters are final.
            let counts = try h.waitForMirrorsSettled(route: "web", backend: "shadow")
            #expect(counts[.sent] == 3)
            #expect(counts[.completed] == 3, "a HEAD or OPTIONS copy was not read to its end: \(counts)")
            #expect(counts[.dropped] == 0)
            let methods = h.backends[1].received.map(\.method).sorted()
            #expect(methods == ["GET", "HEAD", "OPTIONS"])
            // The shadow's (pooled) connections stay usable after a HEAD copy.
            for _ in 0..<5 {
                #expect(try c.request("HEAD", "/h2").status == 200)
                #expect(try c.request("GET", "/g2").status == 200)
            }
            let after = try h.waitForMirrorsSettled(route: "web", backend: "shadow")
            #expect(after[.sent] == 13)
            #expect(after[.completed] == 13, "\(after)")
            #expect(h.backends[1].received.count == 13)
        }
    }

    @Test func listedWritesAreMirroredWithTheBodyByteForByte() async throws {
        let capture = try await CaptureBackend.start()
        do {
            try await Harness.withYAML(backends: [.init(version: "v1")], config: """
                listen: ["127.0.0.1:1"]
                backends:
                  primary: { version: v1, endpoints: ["${B0}"] }
                  shadow: { version: v2, endpoints: ["\(capture.address)"] }
                routes:
                  - name: web
                    backend: primary
                    mirror: { backend: shadow, percent: 100, methods: [POST] }
                """) { h in
                let c = try h.client()
                var sent: [[UInt8]] = []
                for size in [1, 1000, 65_537, 300_000] {
                    let body = randomBytes(size)
                    sent.append(body)
                    let r = try c.request("POST", "/orders?size=\(size)", headers: [("Content-Type", "application/octet-stream")], body: body)
                    #expect(r.status == 200)
                    #expect(r.json["bodyBytes"] as? Int == size)
                }
                // A chunked body is mirrored too (the copy keeps valid framing).
                let chunked = randomBytes(5000)
                sent.append(chunked)
                var raw = Array("POST /orders?size=chunked HTTP/1.1\r\nHost: test.local\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)
                for start in stride(from: 0, to: chunked.count, by: 1500) {
                    let piece = chunked[start..<min(start + 1500, chunked.count)]
                    raw += Array("\(String(piece.count, radix: 16))\r\n".utf8) + piece + Array("\r\n".utf8)
                }
                raw += Array("0\r\n\r\n".utf8)
                try c.send(raw)
                let r = try c.readResponse()
                #expect(r.status == 200)
                #expect(r.json["bodyBytes"] as? Int == chunked.count)
                // GET is no longer listed: not mirrored.
                #expect(try c.request("GET", "/g").status == 200)

                let counts = try h.waitForMirrorsSettled(route: "web", backend: "shadow")
                #expect(counts[.sent] == 5)
                #expect(counts[.completed] == 5)
                let copies = capture.requests
                #expect(copies.count == 5)
                for (i, body) in sent.enumerated() {
                    let uri = i < 4 ? "/orders?size=\(body.count)" : "/orders?size=chunked"
                    guard let copy = copies.first(where: { $0.uri == uri }) else {
                        Issue.record("no copy of \(uri)")
                        continue
                    }
                    #expect(copy.method == "POST")
                    #expect(copy.body.count == body.count, "\(uri): copy has \(copy.body.count) bytes")
                    #expect(copy.body == body, "\(uri): the copy's body differs from the client's")
                    #expect(lowercased(copy.headers)["x-sluice-shadow"] == "1")
                    #expect(lowercased(copy.headers)["content-type"] == "application/octet-stream" || i == 4)
                }
            }
        } catch {
            await capture.stop()
            throw error
        }
        await capture.stop()
    }

    @Test func bodiesOverMaxBodyBytesAreNotMirroredButCounted() async throws {
        try await Harness.withShadow(route: """
            mirror: { backend: shadow, percent: 100, methods: [POST], maxBodyBytes: 1024 }
            """) { h in
            let c = try h.client()
            // At the limit: mirrored. Over it (declared length): not mirrored.
            let atLimit = try c.request("POST", "/at", body: randomBytes(1024))
            #expect(atLimit.status == 200)
            let over = try c.request("POST", "/over", body: randomBytes(1025))
            #expect(over.status == 200)
            #expect(over.json["bodyBytes"] as? Int == 1025, "the primary still gets the whole body")
            // Over the limit without a declared length (chunked): abandoned as it grows.
            var raw = Array("POST /over-chunked HTTP/1.1\r\nHost: test.local\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)
            for _ in 0..<3 { raw += Array("320\r\n".utf8) + randomBytes(800) + Array("\r\n".utf8) }
            raw += Array("0\r\n\r\n".utf8)
            try c.send(raw)
            let chunked = try c.readResponse()
            #expect(chunked.status == 200)
            #expect(chunked.json["bodyBytes"] as? Int == 2400)

            let counts = try h.waitForMirrorsSettled(route: "web", backend: "shadow")
            #expect(counts[.sent] == 1)
            #expect(counts[.dropped] == 2)
            let copies = h.backends[1].received
            #expect(copies.map(\.uri) == ["/at"])
            #expect(copies.first?.bodyBytes == 1024)
        }
    }

    @Test func percentMirrorsTheConfiguredShare() async throws {
        try await Harness.withShadow(route: """
            mirror: { backend: shadow, percent: 50 }
            """) { h in
            // N = 4000, p = 0.5: sd = sqrt(4000 * 0.25) = 31.6 copies; 5 sd = 158.1 copies
            // (3.95 pp), tail probability ≈ 5.7e-7.
            let n = 4000
            let p = 0.5
            let bound = 5.0 * (Double(n) * p * (1 - p)).squareRoot()
            for _ in 0..<2 {
                let c = try h.client()
                for i in 0..<(n / 2) {
                    let r = try c.request("GET", "/p?i=\(i)")
                    #expect(r.status == 200)
                }
                c.close()
            }
            let counts = try h.waitForMirrorsSettled(route: "web", backend: "shadow")
            let copies = h.backends[1].received.count
            #expect(UInt64(copies) == counts[.sent], "copies received vs counted sent: \(counts)")
            // The percent draw picks `sent + dropped` requests: a copy drawn while the loop's 64
            // shadow slots are busy is dropped (and counted), which a loaded machine can cause
            // even with one sequential client, so the draw is judged on both. Without drops
            // (the usual case) this is exactly the number of copies the shadow received.
            let drawn = counts[.sent, default: 0] + counts[.dropped, default: 0]
            #expect(abs(Double(drawn) - Double(n) * p) <= bound,
                    "\(drawn) of \(n) requests drawn (\(copies) received, \(counts)); expected \(Int(Double(n) * p)) ± \(bound) (5 sd)")
            #expect(h.backends[0].received.count == n)
        }
    }

    @Test func aSlowShadowDoesNotSlowThePrimary() async throws {
        try await Harness.withShadow(shadow: .init(version: "v2", latency: .seconds(2)), route: """
            mirror: { backend: shadow, percent: 100 }
            """) { h in
            let c = try h.client()
            let start = ContinuousClock.now
            for i in 0..<20 {
                let r = try c.request("GET", "/fast?i=\(i)")
                #expect(r.status == 200)
                #expect(r.header("x-backend-version") == "v1")
            }
            let elapsed = ContinuousClock.now - start
            // Had any primary waited for its 2 s shadow, the 20 would take at least 2 s (40 s
            // if each waited). This is functional, not a benchmark: the bound is the shadow's
            // latency itself.
            #expect(elapsed < .seconds(2), "20 primaries took \(elapsed) behind a 2 s shadow")
            // And the copies did go out.
            let counts = try h.mirrorCounts(route: "web", backend: "shadow")
            #expect(counts[.sent] == 20)
        }
    }

    @Test func aDeadOrFailingShadowDoesNotChangeThePrimary() async throws {
        let dead = try deadPort()
        try await Harness.withYAML(backends: [.init(version: "v1"), .init(version: "v3", errorRate: 1.0)], config: """
            listen: ["127.0.0.1:1"]
            backends:
              primary: { version: v1, endpoints: ["${B0}"] }
              dead: { version: v2, endpoints: ["127.0.0.1:\(dead)"] }
              failing: { version: v3, endpoints: ["${B1}"] }
            routes:
              - name: toDead
                match: { pathPrefix: /dead }
                backend: primary
                mirror: { backend: dead, percent: 100 }
              - name: toFailing
                backend: primary
                mirror: { backend: failing, percent: 100 }
            """) { h in
            let c = try h.client()
            for i in 0..<20 {
                let r = try c.request("GET", "/dead/\(i)")
                #expect(r.status == 200)
                #expect(r.header("x-backend-version") == "v1")
                #expect(r.json["version"] as? String == "v1")
            }
            for i in 0..<20 {
                let r = try c.request("GET", "/other/\(i)")
                #expect(r.status == 200, "a shadow answering 503 changed the client's status")
                #expect(r.json["version"] as? String == "v1")
            }
            // The refused copy is counted failed, and the shadow then cools down: the copies
            // after it are dropped without a connect (the 20 requests take far less than the
            // 1 s + 2 s + 4 s + 8 s of back-off a fifth attempt would need). The 503 copies
            // were answered (completed).
            let deadCounts = try h.waitForMirrorsSettled(route: "toDead", backend: "dead")
            let sent = deadCounts[.sent] ?? 0
            #expect(sent >= 1 && sent <= 4, "\(deadCounts)")
            #expect(deadCounts[.failed] == sent)
            #expect(sent + (deadCounts[.dropped] ?? 0) == 20, "\(deadCounts)")
            let failingCounts = try h.waitForMirrorsSettled(route: "toFailing", backend: "failing")
            #expect(failingCounts[.sent] == 20)
            #expect(failingCounts[.completed] == 20, "\(failingCounts)")
            #expect(h.backends[1].received.count == 20)
            #expect(h.backends[0].received.count == 40)
        }
    }

    @Test func percentZeroMirrorsNothing() async throws {
        try await Harness.withShadow(route: """
            mirror: { backend: shadow, percent: 0 }
            """) { h in
            let c = try h.client()
            for _ in 0..<200 { #expect(try c.request("GET", "/").status == 200) }
            let counts = try h.mirrorCounts(route: "web", backend: "shadow")
            #expect(counts[.sent] == 0)
            #expect(h.backends[1].received.isEmpty)
        }
    }

    @Test func failedCopiesFreeTheirInFlightSlot() async throws {
        // Timed-out copies must give their slot back: after 2 × 64 failed copies, sent in
        // batches that each fit the limit, nothing has been dropped. Refused copies give theirs
        // back too, and the refusing shadow then cools down: its later copies are dropped
        // without a connect, and none is left in flight.
        let dead = try deadPort()
        try await Harness.withYAML(backends: [.init(version: "v1"), .init(version: "v2", latency: .seconds(5))], config: """
            listen: ["127.0.0.1:1"]
            backends:
              primary: { version: v1, endpoints: ["${B0}"] }
              dead: { version: v2, endpoints: ["127.0.0.1:\(dead)"] }
              slow: { version: v2, endpoints: ["${B1}"], timeout: 200ms }
            routes:
              - name: toDead
                match: { pathPrefix: /dead }
                backend: primary
                mirror: { backend: dead, percent: 100 }
              - name: toSlow
                backend: primary
                mirror: { backend: slow, percent: 100 }
            """) { h in
            let c = try h.client()
            for batch in 0..<4 {
                for i in 0..<32 {
                    #expect(try c.request("GET", "/slow/\(batch)/\(i)").status == 200)
                }
                let counts = try h.waitForMirrorsSettled(route: "toSlow", backend: "slow")
                #expect(counts[.sent] == UInt64(32 * (batch + 1)), "batch \(batch): \(counts)")
                #expect(counts[.failed] == UInt64(32 * (batch + 1)), "batch \(batch): \(counts)")
                #expect(counts[.dropped] == 0, "batch \(batch): \(counts)")
            }
            for i in 0..<128 {
                #expect(try c.request("GET", "/dead/\(i)").status == 200)
            }
            let dead = try h.waitForMirrorsSettled(route: "toDead", backend: "dead")
            let sent = dead[.sent] ?? 0
            #expect(sent >= 1 && dead[.failed] == sent, "\(dead)")
            #expect(sent + (dead[.dropped] ?? 0) == 128, "\(dead)")
        }
    }

    @Test func copiesBeyondTheInFlightLimitAreDroppedAndCounted() async throws {
        // The shadow holds every copy for 10 s, so none completes while the 100 requests run:
        // with the harness's single event loop at most 64 copies can be in flight, and the rest
        // must be dropped. (10 s rather than 2 s keeps the assertion independent of how fast this
        // machine gets through 100 requests; the test does not wait for the shadow.)
        try await Harness.withShadow(shadow: .init(version: "v2", latency: .seconds(10)), route: """
            mirror: { backend: shadow, percent: 100 }
            """) { h in
            let c = try h.client()
            let start = ContinuousClock.now
            for i in 0..<100 {
                let r = try c.request("GET", "/d?i=\(i)")
                #expect(r.status == 200)
            }
            let elapsed = ContinuousClock.now - start
            #expect(elapsed < .seconds(10), "100 primaries took \(elapsed)")
            let counts = try h.mirrorCounts(route: "web", backend: "shadow")
            let sent = counts[.sent, default: 0], dropped = counts[.dropped, default: 0]
            #expect(sent + dropped == 100, "\(counts)")
            #expect(sent <= 64, "\(counts)")
            #expect(dropped >= 100 - 64, "\(counts)")
            // Nothing can have completed yet, so exactly the limit went out.
            #expect(sent == 64, "\(counts)")
            #expect(counts[.completed, default: 0] == 0)
        }
    }
}
}

/// The cool-down of endpoints that refuse connections, primary and shadow (pure logic, injected clock).
@Suite struct EndpointCooldownTests {
    @Test func refusedEndpointsAreSkippedWithDoublingBackOff() throws {
        let a = try SocketAddress(ipAddress: "127.0.0.1", port: 1)
        let b = try SocketAddress(ipAddress: "127.0.0.1", port: 2)
        let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000_000)
        var cooldown = EndpointCooldown()
        #expect(cooldown.isEmpty && !cooldown.skips(a, now: t0))
        cooldown.connectFailed(a, now: t0)
        #expect(cooldown.skips(a, now: t0) && cooldown.skips(a, now: t0 + .milliseconds(999)))
        #expect(!cooldown.skips(a, now: t0 + .seconds(1)))
        #expect(!cooldown.skips(b, now: t0))
        // Each further failure doubles the wait: 2 s, 4 s, ... up to 30 s.
        var now = t0 + .seconds(1)
        for expected in [2, 4, 8, 16, 30, 30] {
            cooldown.connectFailed(a, now: now)
            #expect(cooldown.skips(a, now: now + .seconds(Int64(expected)) - .nanoseconds(1)), "\(expected) s")
            #expect(!cooldown.skips(a, now: now + .seconds(Int64(expected))), "\(expected) s")
            now = now + .seconds(Int64(expected))
        }
        // A successful connect forgets the endpoint: the next failure starts again at 1 s.
        cooldown.connected(a)
        #expect(cooldown.isEmpty && !cooldown.skips(a, now: now))
        cooldown.connectFailed(a, now: now)
        #expect(!cooldown.skips(a, now: now + .seconds(1)))
    }

    @Test func endpointsLongPastTheirCoolDownAreForgotten() throws {
        let a = try SocketAddress(ipAddress: "127.0.0.1", port: 1)
        let b = try SocketAddress(ipAddress: "127.0.0.1", port: 2)
        let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000_000)
        var cooldown = EndpointCooldown()
        cooldown.connectFailed(a, now: t0)                    // cooling down until t0 + 1 s
        cooldown.connectFailed(b, now: t0 + .seconds(20))     // until t0 + 21 s
        // a's cool-down ended at t0 + 1 s; it is kept for `longest` (30 s) after that.
        cooldown.prune(now: t0 + .seconds(31) - .nanoseconds(1))
        cooldown.connectFailed(a, now: t0 + .seconds(31) - .nanoseconds(1))
        #expect(cooldown.skips(a, now: t0 + .seconds(32)), "still remembered: the back-off doubled to 2 s")
        cooldown.connected(a)
        cooldown.connectFailed(a, now: t0)
        cooldown.prune(now: t0 + .seconds(31))
        #expect(!cooldown.isEmpty, "b ended at t0 + 21 s and is kept until t0 + 51 s")
        cooldown.prune(now: t0 + .seconds(51))
        #expect(cooldown.isEmpty)
        // Forgotten means a new failure starts again at 1 s.
        cooldown.connectFailed(a, now: t0 + .seconds(60))
        #expect(!cooldown.skips(a, now: t0 + .seconds(61)))
    }

    /// A retry that goes elsewhere passes over the endpoint it failed on and those cooling
    /// down, whatever the round-robin position; nil when that is every endpoint (the caller
    /// then asks again without the cool-down, then without either).
    @Test func aRetryPassesOverTheFailedEndpointAndThoseCoolingDown() throws {
        let loop = LoopContext(eventLoop: EmbeddedEventLoop())
        let backend = try BackendRuntime(Harness.spec("b", "v1", ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]))
        let (a, b) = (backend.endpoints[0], backend.endpoints[1])
        var cooldown = EndpointCooldown()
        cooldown.connectFailed(b, now: .now())
        // Whatever the round-robin position, the only endpoint left is the third.
        for _ in 0..<6 {
            #expect(loop.nextEndpoint(of: backend, index: 0, generation: 1, avoiding: cooldown, except: a) == 2)
        }
        let two = try BackendRuntime(Harness.spec("b", "v1", ["127.0.0.1:1", "127.0.0.1:2"]))
        #expect(loop.nextEndpoint(of: two, index: 1, generation: 1, avoiding: cooldown, except: a) == nil)
        for _ in 0..<4 {
            #expect(loop.nextEndpoint(of: two, index: 1, generation: 1, avoiding: EndpointCooldown(), except: a) == 1)
        }
    }
}

