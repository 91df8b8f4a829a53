import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2
import Testing
@testable import SluiceProxy

/// The checks of a client's header blocks (`HTTP2StreamParts.requestHead`, `clientTrailers`),
/// which replace NIOHTTP2's validation on client connections: each block is given to both, and
/// their verdicts must agree (but for CONNECT, which the proxy refuses in every form).
struct HTTP2ClientBlockTests {
    private static let head = [(":method", "GET"), (":scheme", "http"), (":authority", "a.example"), (":path", "/")]

    /// Whether NIOHTTP2's server handler (validation on) lets the HEADERS frames of `blocks`
    /// through on stream 1: the request head, then trailers if given (each a frame of its own,
    /// the last ending the stream).
    private func nioAccepts(_ blocks: [[(String, String)]]) throws -> Bool {
        let channel = EmbeddedChannel(handler: NIOHTTP2Handler(mode: .server))
        defer { _ = try? channel.finish() }
        var bytes = ByteBuffer(string: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        bytes.writeBytes([0, 0, 0, 0x04, 0, 0, 0, 0, 0]) // SETTINGS, empty
        for (index, fields) in blocks.enumerated() {
            // Literal fields without indexing, lengths in one byte, no Huffman code: the bytes
            // exactly as given (NIO's encoder would lower-case the names).
            var block = ByteBuffer()
            for (name, value) in fields {
                precondition(name.utf8.count < 127 && value.utf8.count < 127)
                block.writeBytes([0x00, UInt8(name.utf8.count)] + Array(name.utf8) + [UInt8(value.utf8.count)] + Array(value.utf8))
            }
            let flags: UInt8 = index == blocks.count - 1 ? 0x05 : 0x04 // END_HEADERS (+ END_STREAM)
            let length = block.readableBytes
            bytes.writeBytes([UInt8(length >> 16), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF), 0x01, flags, 0, 0, 0, 1])
            bytes.writeBuffer(&block)
        }
        _ = try? channel.writeInbound(bytes)
        var heads = 0
        for _ in 0..<16 {
            guard let frame = try? channel.readInbound(as: HTTP2Frame.self) else { break }
            if case .headers = frame.payload { heads += 1 }
        }
        return heads == blocks.count
    }

    private func oursAccepts(_ blocks: [[(String, String)]]) -> Bool {
        do {
            _ = try HTTP2StreamParts.requestHead(HPACKHeaders(blocks[0]), endStream: blocks.count == 1)
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
}
