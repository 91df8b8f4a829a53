import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP1
import NIOHTTP2
import Testing
@testable import SluiceProxy

/// The checks of the header blocks a peer sends (`HTTP2StreamParts`: a client's request heads
/// and trailers, a backend's response heads and trailers), which replace NIOHTTP2's validation:
/// each block is given to both, and their verdicts must agree (but for CONNECT, which the proxy
/// refuses in every form, and for `:path`, which NIOHTTP2 checked only for emptiness).
struct HTTP2ReceivedBlockTests {
    private static let head = [(":method", "GET"), (":scheme", "http"), (":authority", "a.example"), (":path", "/")]

    /// HEADERS frames on stream 1, one per block, the last ending the stream.
    private func headersFrames(_ blocks: [[(String, String)]], into bytes: inout ByteBuffer) {
        for (index, fields) in blocks.enumerated() {
            bytes.writeBytes(RawHTTP2.headers(stream: 1, fields, endStream: index == blocks.count - 1))
        }
    }

    /// How many HEADERS frames NIOHTTP2's handler passed on after `bytes` came in.
    private func headersPassed(_ channel: EmbeddedChannel, after bytes: ByteBuffer) -> Int {
        _ = try? channel.writeInbound(bytes)
        var heads = 0
        for _ in 0..<16 {
            guard let frame = try? channel.readInbound(as: HTTP2Frame.self) else { break }
            if case .headers = frame.payload { heads += 1 }
        }
        return heads
    }

    /// Whether NIOHTTP2's server handler (validation on) lets a request's HEADERS frames through.
    private func nioAccepts(_ blocks: [[(String, String)]]) throws -> Bool {
        let channel = EmbeddedChannel(handler: NIOHTTP2Handler(mode: .server))
        defer { _ = try? channel.finish() }
        var bytes = ByteBuffer(bytes: RawHTTP2.clientPreface + RawHTTP2.emptySettings)
        headersFrames(blocks, into: &bytes)
        return headersPassed(channel, after: bytes) == blocks.count
    }

    /// Whether NIOHTTP2's client handler (validation on) lets a response's HEADERS frames
    /// through, after it sent a GET on stream 1.
    private func nioAcceptsResponse(_ blocks: [[(String, String)]]) throws -> Bool {
        let channel = EmbeddedChannel(handler: NIOHTTP2Handler(mode: .client))
        defer { _ = try? channel.finish() }
        channel.pipeline.fireChannelActive()
        try channel.writeOutbound(HTTP2Frame(streamID: 1, payload: .headers(.init(headers: HPACKHeaders(Self.head), endStream: true))))
        var bytes = ByteBuffer(bytes: RawHTTP2.emptySettings) // the server's
        headersFrames(blocks, into: &bytes)
        return headersPassed(channel, after: bytes) == blocks.count
    }

    private func oursAcceptsResponse(_ blocks: [[(String, String)]]) -> Bool {
        do {
            var final = false
            for (index, block) in blocks.enumerated() {
                if final {
                    _ = try HTTP2StreamParts.trailers(HPACKHeaders(block))
                } else {
                    let head = try HTTP2StreamParts.response(HPACKHeaders(block), endStream: index == blocks.count - 1,
                                                             requestMethod: .GET).head
                    final = !HTTP2StreamParts.isInformational(head)
                }
            }
            return true
        } catch {
            return false
        }
    }

    private func oursAccepts(_ blocks: [[(String, String)]]) -> Bool {
        do {
            _ = try HTTP2StreamParts.request(HPACKHeaders(blocks[0]), endStream: blocks.count == 1).head
            for trailers in blocks.dropFirst() { _ = try HTTP2StreamParts.clientTrailers(HPACKHeaders(trailers)) }
            return true
        } catch {
            return false
        }
    }

    private static func replacing(_ name: String, with field: (String, String)) -> [(String, String)] {
        head.map { $0.0 == name ? field : $0 }
    }

    private static func without(_ name: String) -> [(String, String)] { head.filter { $0.0 != name } }

    /// Request heads: (what the case is, the block, whether it is well-formed).
    static let heads: [(String, [(String, String)], Bool)] = [
        ("plain", head, true),
        ("regular fields", head + [("accept", "*/*"), ("cookie", "a=1"), ("cookie", "b=2")], true),
        ("token characters", head + [("x_y", "1"), ("a!#$%&'*+-.^`|~9", "1")], true),
        ("value with spaces and obs-text", head + [("x", " padded "), ("y", "caf\u{E9}\t")], true),
        ("te: trailers", head + [("te", "trailers")], true),
        ("Host without :authority", without(":authority") + [("host", "b.example")], true),
        ("neither :authority nor Host", without(":authority"), true),
        ("upper-case name", head + [("Accept", "*/*")], false),
        ("upper-case pseudo-header", replacing(":path", with: (":Path", "/")), false),
        ("name with a space", head + [("a b", "1")], false),
        ("name with a colon inside", head + [("a:b", "1")], false),
        ("empty name", head + [("", "1")], false),
        ("pseudo-header after a regular field", [(":method", "GET"), (":scheme", "http"), ("accept", "*/*"), (":path", "/")], false),
        ("repeated :path", head + [(":path", "/b")], false),
        ("repeated :method", [(":method", "GET")] + head, false),
        ("unknown pseudo-header", head + [(":foo", "1")], false),
        (":status in a request", head + [(":status", "200")], false),
        (":protocol (no extended CONNECT)", head + [(":protocol", "websocket")], false),
        ("no :scheme", without(":scheme"), false),
        ("no :method", without(":method"), false),
        ("no :path", without(":path"), false),
        ("empty :path", replacing(":path", with: (":path", "")), false),
        ("space in :path", replacing(":path", with: (":path", "/a b")), false),
        ("DEL in :method", replacing(":method", with: (":method", "G\u{7F}")), false),
        ("connection", head + [("connection", "keep-alive")], false),
        ("keep-alive", head + [("keep-alive", "5")], false),
        ("proxy-connection", head + [("proxy-connection", "close")], false),
        ("transfer-encoding", head + [("transfer-encoding", "chunked")], false),
        ("upgrade", head + [("upgrade", "h2c")], false),
        ("te other than trailers", head + [("te", "gzip")], false),
        ("NUL in a value", head + [("x", "a\u{0}b")], false),
        ("CR in a value", head + [("x", "a\rb")], false),
        ("LF in a value", head + [("x", "a\nx-injected: 1")], false),
        ("CONNECT with :scheme and :path", replacing(":method", with: (":method", "CONNECT")), false),
    ]

    @Test(arguments: heads)
    func requestHeadsAreJudgedAsNIOHTTP2Did(name: String, fields: [(String, String)], wellFormed: Bool) throws {
        #expect(try nioAccepts([fields]) == wellFormed, "NIOHTTP2 on \(name)")
        #expect(oursAccepts([fields]) == wellFormed, "Sluice on \(name)")
    }

    /// NIOHTTP2 let a CONNECT with `:authority` alone through (RFC 9113 §8.5), to a stream the
    /// proxy then reset for want of `:path`; now refused at once, the same for the client.
    @Test func connectIsRefused() throws {
        let connect = [(":method", "CONNECT"), (":authority", "a.example:443")]
        #expect(try nioAccepts([connect]))
        #expect(!oursAccepts([connect]))
    }

    /// `:path` is an absolute path (and query), or `*` for OPTIONS (RFC 9113 §8.3.1), which
    /// NIOHTTP2 did not check: an absolute URI there was taken for HTTP/1.1's absolute-form.
    @Test(arguments: [("/a?b=c", "GET", true), ("*", "OPTIONS", true), ("*", "GET", false),
                      ("http://b.example/x", "GET", false), ("a/b", "GET", false), ("?q", "GET", false)])
    func pathIsAnAbsolutePathOrAnAsteriskForOptions(path: String, method: String, wellFormed: Bool) throws {
        let fields = [(":method", method), (":scheme", "http"), (":authority", "a.example"), (":path", path)]
        #expect(try nioAccepts([fields]))
        #expect(oursAccepts([fields]) == wellFormed)
    }

    static let trailers: [(String, [(String, String)], Bool)] = [
        ("gRPC status", [("grpc-status", "0"), ("grpc-message", "ok")], true),
        ("te other than trailers (a request head's rule only)", [("te", "gzip")], true),
        ("pseudo-header", [(":path", "/")], false),
        ("upper-case name", [("Grpc-Status", "0")], false),
        ("connection-specific", [("connection", "close")], false),
        ("transfer-encoding", [("transfer-encoding", "chunked")], false),
        ("CR in a value", [("x", "a\rb")], false),
    ]

    @Test(arguments: trailers)
    func trailersAreJudgedAsNIOHTTP2Did(name: String, fields: [(String, String)], wellFormed: Bool) throws {
        let blocks = [Self.head, fields]
        #expect(try nioAccepts(blocks) == wellFormed, "NIOHTTP2 on \(name)")
        #expect(oursAccepts(blocks) == wellFormed, "Sluice on \(name)")
    }

    static let responses: [(String, [(String, String)], Bool)] = [
        ("plain", [(":status", "200"), ("content-type", "text/plain"), ("set-cookie", "a=1")], true),
        ("interim, then final", [(":status", "103"), ("link", "</a>; rel=preload")], true),
        ("te in a response (a request head's rule only)", [(":status", "200"), ("te", "gzip")], true),
        ("value with spaces and obs-text", [(":status", "200"), ("x", " caf\u{E9} ")], true),
        ("no :status", [("content-type", "text/plain")], false),
        ("repeated :status", [(":status", "200"), (":status", "204")], false),
        (":status after a regular field", [("content-type", "text/plain"), (":status", "200")], false),
        ("request pseudo-header", [(":status", "200"), (":path", "/")], false),
        ("upper-case name", [(":status", "200"), ("Content-Type", "text/plain")], false),
        ("name with a space", [(":status", "200"), ("a b", "1")], false),
        ("connection", [(":status", "200"), ("connection", "close")], false),
        ("keep-alive", [(":status", "200"), ("keep-alive", "timeout=5")], false),
        ("transfer-encoding", [(":status", "200"), ("transfer-encoding", "chunked")], false),
        ("upgrade", [(":status", "200"), ("upgrade", "h2c")], false),
        ("proxy-connection", [(":status", "200"), ("proxy-connection", "close")], false),
        ("CR in a value", [(":status", "200"), ("location", "/a\r\nset-cookie: x=1")], false),
        ("NUL in a value", [(":status", "200"), ("x", "a\u{0}")], false),
        ("space in :status", [(":status", "20 0")], false),
    ]

    @Test(arguments: responses)
    func responseHeadsAreJudgedAsNIOHTTP2Did(name: String, fields: [(String, String)], wellFormed: Bool) throws {
        // A 1xx head is followed by the final one (a stream cannot end on it).
        let blocks = fields.first?.1.hasPrefix("1") == true ? [fields, [(":status", "200")]] : [fields]
        #expect(try nioAcceptsResponse(blocks) == wellFormed, "NIOHTTP2 on \(name)")
        #expect(oursAcceptsResponse(blocks) == wellFormed, "Sluice on \(name)")
    }

    @Test(arguments: trailers)
    func backendTrailersAreJudgedAsNIOHTTP2Did(name: String, fields: [(String, String)], wellFormed: Bool) throws {
        let blocks = [[(":status", "200")], fields]
        #expect(try nioAcceptsResponse(blocks) == wellFormed, "NIOHTTP2 on \(name)")
        #expect(oursAcceptsResponse(blocks) == wellFormed, "Sluice on \(name)")
    }
}
