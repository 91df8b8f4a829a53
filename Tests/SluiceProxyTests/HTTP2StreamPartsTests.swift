import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP1
import NIOHTTP2
import Testing
@testable import SluiceProxy

/// The conversions between an HTTP/2 stream's frames and the exchange's parts, checked against
/// what NIO's `HTTP2FramePayloadToHTTP1ServerCodec` (which they replace) makes of the same input.
struct HTTP2StreamPartsTests {
    private func block(_ fields: [(String, String)]) -> HPACKHeaders { HPACKHeaders(fields) }

    private func lines(_ head: RequestHead) -> [String] {
        head.fields.fields.map { "\(head.fields.name($0)): \(head.fields.value($0))" }
    }

    /// NIO's codec's request head for the same block, as `name: value` lines.
    private func nioLines(_ fields: [(String, String)], endStream: Bool) throws -> (HTTPRequestHead, [String]) {
        let channel = EmbeddedChannel(handler: HTTP2FramePayloadToHTTP1ServerCodec())
        defer { _ = try? channel.finish() }
        try channel.writeInbound(HTTP2Frame.FramePayload.headers(.init(headers: block(fields), endStream: endStream)))
        guard case .head(let head)? = try channel.readInbound(as: HTTPServerRequestPart.self) else {
            throw HTTP2StreamParts.MalformedRequest(field: "no head from NIO's codec")
        }
        return (head, head.headers.map { "\($0.name): \($0.value)" })
    }

    @Test(arguments: [
        ("GET", true, false), ("GET", false, false), ("POST", true, false), ("POST", false, false),
        ("PUT", false, true), ("DELETE", true, false), ("HEAD", true, false), ("PATCH", true, true),
    ])
    func requestHeadsMatchNIOsCodec(method: String, endStream: Bool, declaresLength: Bool) throws {
        var fields = [(":method", method), (":scheme", "http"), (":authority", "shop.example.com:8080"),
                      (":path", "/a/b?c=d"), ("accept", "*/*"), ("cookie", "a=1"), ("cookie", "b=2")]
        if declaresLength { fields.append(("content-length", "12")) }
        let ours = try HTTP2StreamParts.requestHead(block(fields), endStream: endStream)
        let (nio, nioFields) = try nioLines(fields, endStream: endStream)
        #expect(ours.method == nio.method)
        #expect(ours.uri == nio.uri)
        #expect(ours.version == nio.version)
        #expect(lines(ours) == nioFields)
        // Names are classified as the parser would (the header pass acts on the kinds).
        let kinds = ours.fields.fields.map(\.kind)
        #expect(kinds.first == .host)
    }

    @Test func aHostFieldIsKeptAndAuthorityThenAddsNothing() throws {
        let fields = [(":method", "GET"), (":scheme", "http"), (":authority", "a.example"), (":path", "/"),
                      ("host", "b.example")]
        let ours = try HTTP2StreamParts.requestHead(block(fields), endStream: true)
        #expect(lines(ours) == ["host: b.example"])
        #expect(lines(ours) == (try nioLines(fields, endStream: true)).1)
    }

    @Test func withoutAuthorityTheHostFieldStandsAlone() throws {
        // RFC 9113 §8.3.1: `:authority` may be absent when `Host` is given (NIO's codec refused this).
        let ours = try HTTP2StreamParts.requestHead(block([(":method", "GET"), (":scheme", "http"), (":path", "/x"),
                                                           ("host", "b.example")]), endStream: true)
        #expect(lines(ours) == ["host: b.example"])
        #expect(ours.uri == "/x")
    }

    @Test(arguments: [
        (":path", "/a b"), (":path", "/a\tb"), (":path", "/a\u{7F}"), (":method", "GE T"),
        (":authority", "a.example\r\nx: y"), (":scheme", "ht tp"),
    ])
    func pseudoHeaderValuesThatWouldBreakARequestLineAreRefused(name: String, value: String) {
        var fields = [(":method", "GET"), (":scheme", "http"), (":authority", "a.example"), (":path", "/ok")]
        fields[fields.firstIndex { $0.0 == name }!].1 = value
        #expect(throws: HTTP2StreamParts.MalformedRequest(field: name)) {
            try HTTP2StreamParts.requestHead(block(fields), endStream: true)
        }
    }

    @Test func aBlockWithoutMethodOrPathIsRefused() {
        #expect(throws: HTTP2StreamParts.MalformedRequest(field: ":path")) {
            try HTTP2StreamParts.requestHead(block([(":method", "CONNECT"), (":authority", "a:443")]), endStream: false)
        }
        #expect(throws: HTTP2StreamParts.MalformedRequest(field: ":method")) {
            try HTTP2StreamParts.requestHead(block([(":scheme", "http"), (":path", "/")]), endStream: true)
        }
    }

    @Test func trailersAreTheRegularFields() {
        let trailers = HTTP2StreamParts.trailers(block([("grpc-status", "0"), ("grpc-message", "ok")]))
        #expect(trailers.map { "\($0.name): \($0.value)" } == ["grpc-status: 0", "grpc-message: ok"])
    }

    /// Response parts the proxy makes itself become the frames NIO's codec wrote for them.
    @Test func responsePartsMatchNIOsCodec() throws {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "text/plain")
        headers.add(name: "Connection", value: "close")
        headers.add(name: "Content-Length", value: "3")
        var trailers = HTTPHeaders()
        trailers.add(name: "Grpc-Status", value: "0")
        let parts: [HTTPServerResponsePart] = [
            .head(HTTPResponseHead(version: .http1_1, status: .notFound, headers: headers)),
            .body(.byteBuffer(ByteBuffer(string: "no\n"))), .end(trailers), .end(nil),
        ]
        for part in parts {
            let channel = EmbeddedChannel(handler: HTTP2FramePayloadToHTTP1ServerCodec())
            defer { _ = try? channel.finish() }
            try channel.writeOutbound(part)
            let read = try channel.readOutbound(as: HTTP2Frame.FramePayload.self)
            let nio = try #require(read)
            let ours = HTTP2StreamParts.payload(part, allocator: ByteBufferAllocator())
            #expect(describe(ours) == describe(nio))
        }
    }

    private func describe(_ payload: HTTP2Frame.FramePayload) -> String {
        switch payload {
        case .headers(let h):
            return "HEADERS end=\(h.endStream) " + h.headers.map { "\($0.name): \($0.value)" }.joined(separator: ", ")
        case .data(let d):
            guard case .byteBuffer(let bytes) = d.data else { return "DATA file" }
            return "DATA end=\(d.endStream) \(String(buffer: bytes))"
        default:
            return "other"
        }
    }
}
