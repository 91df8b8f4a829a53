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
        // A stream that ends with its head declares no body (`aDeclaredLengthIsDigitsThatAgree`).
        if declaresLength { fields.append(("content-length", endStream ? "0" : "12")) }
        let ours = try HTTP2StreamParts.request(block(fields), endStream: endStream).head
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
        let ours = try HTTP2StreamParts.request(block(fields), endStream: true).head
        #expect(lines(ours) == ["host: b.example"])
        #expect(lines(ours) == (try nioLines(fields, endStream: true)).1)
    }

    @Test func withoutAuthorityTheHostFieldStandsAlone() throws {
        // RFC 9113 §8.3.1: `:authority` may be absent when `Host` is given (NIO's codec refused this).
        let ours = try HTTP2StreamParts.request(block([(":method", "GET"), (":scheme", "http"), (":path", "/x"),
                                                       ("host", "b.example")]), endStream: true).head
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
            try HTTP2StreamParts.request(block(fields), endStream: true).head
        }
    }

    @Test func aBlockWithoutMethodOrPathIsRefused() {
        #expect(throws: HTTP2StreamParts.MalformedRequest(field: ":path")) {
            try HTTP2StreamParts.request(block([(":method", "GET"), (":scheme", "http")]), endStream: false).head
        }
        #expect(throws: HTTP2StreamParts.MalformedRequest(field: ":method")) {
            try HTTP2StreamParts.request(block([(":method", "CONNECT"), (":authority", "a:443")]), endStream: false).head
        }
        #expect(throws: HTTP2StreamParts.MalformedRequest(field: ":method")) {
            try HTTP2StreamParts.request(block([(":scheme", "http"), (":path", "/")]), endStream: true).head
        }
    }

    @Test func trailersAreTheRegularFields() throws {
        let trailers = try HTTP2StreamParts.trailers(block([("grpc-status", "0"), ("grpc-message", "ok")]))
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

    // MARK: Towards an HTTP/2 backend: `StreamUpstreamHandler` against NIO's client codec

    private typealias Recording = HTTP1CodecHandlerTests.RecordingDelegate

    /// An embedded channel whose only handler is an `HTTP2BackendConnection`, and a stream on it
    /// leased by a recording delegate.
    private func streamHandler() throws -> (EmbeddedChannel, StreamUpstreamHandler, Recording) {
        let channel = EmbeddedChannel()
        try channel.connect(to: .init(ipAddress: "127.0.0.1", port: 1)).wait()
        let connection = HTTP2BackendConnection(channel: channel)
        try channel.pipeline.syncOperations.addHandler(connection)
        let handler = connection.makeStream()
        let delegate = Recording()
        handler.delegate = delegate
        return (channel, handler, delegate)
    }

    /// The frames NIO's client codec writes for `parts`, and ours.
    private func requestFrames(_ parts: [HTTPClientRequestPart]) throws -> (ours: [String], nio: [String]) {
        let nio = EmbeddedChannel(handler: HTTP2FramePayloadToHTTP1ClientCodec(httpProtocol: .http))
        defer { _ = try? nio.finish() }
        // Written, then flushed once, as the exchange does (`attach`: head, buffered parts, flush).
        for part in parts { nio.write(part, promise: nil) }
        nio.flush()
        var nioFrames: [String] = []
        while let frame = try nio.readOutbound(as: HTTP2Frame.FramePayload.self) { nioFrames.append(describe(frame)) }

        let (channel, handler, _) = try streamHandler()
        defer { _ = try? channel.finish() }
        for part in parts { handler.send(part) }
        handler.flush()
        var ours: [String] = []
        while let frame = try channel.readOutbound(as: HTTP2Frame.self) {
            #expect(frame.streamID == 1)
            ours.append(describe(frame.payload))
        }
        return (ours, nioFrames)
    }

    @Test func requestFramesMatchNIOsClientCodec() throws {
        let head = HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: .POST, uri: "/svc/Method", headers: [
            "Host": "grpc.example:50051", "Content-Type": "application/grpc", "Connection": "keep-alive",
            "Keep-Alive": "timeout=5", "Transfer-Encoding": "chunked", "X-Forwarded-For": "10.0.0.1",
        ]))
        let get = HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/a?b=c",
                                                             headers: ["host": "a.example", "accept": "*/*"]))
        let body = HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(string: "payload")))
        var trailers = HTTPHeaders()
        trailers.add(name: "Grpc-Timeout", value: "1S")
        for parts in [[get, .end(nil)], [head, body, .end(nil)], [head, body, body, .end(trailers)], [head, .end(trailers)]] {
            let frames = try requestFrames(parts)
            #expect(frames.ours == frames.nio)
        }
        // One frame for a request without a body: HEADERS with END_STREAM.
        #expect(try requestFrames([get, .end(nil)]).ours.count == 1)
    }

    /// The parts NIO's client codec reads from `frames` (after a request with `method`), and
    /// what our handler reports to its delegate for the same frames.
    private func responseParts(_ frames: [HTTP2Frame.FramePayload], method: HTTPMethod) throws -> (ours: [Recording.Call], nio: [Recording.Call]) {
        let head = HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: method, uri: "/", headers: ["host": "a"]))
        let nio = EmbeddedChannel(handler: HTTP2FramePayloadToHTTP1ClientCodec(httpProtocol: .http))
        defer { _ = try? nio.finish() }
        try nio.writeOutbound(head)
        for frame in frames { try nio.writeInbound(frame) }
        var nioCalls: [Recording.Call] = []
        while let part = try nio.readInbound(as: HTTPClientResponsePart.self) {
            switch part {
            case .head(let h): nioCalls.append(.head(status: Int(h.status.code), fields: h.headers.map { "\($0.name): \($0.value)" }))
            case .body(let b): nioCalls.append(.body(String(buffer: b)))
            case .end(let t): nioCalls.append(.end(trailers: t.map { $0.map { "\($0.name): \($0.value)" } }))
            }
        }

        let (channel, handler, delegate) = try streamHandler()
        defer { _ = try? channel.finish() }
        handler.send(head)
        handler.flush()
        for frame in frames { try channel.writeInbound(HTTP2Frame(streamID: 1, payload: frame)) }
        return (delegate.calls, nioCalls)
    }

    @Test(arguments: [HTTPMethod.GET, .HEAD, .POST])
    func responsePartsMatchNIOsClientCodec(method: HTTPMethod) throws {
        let ok = HPACKHeaders([(":status", "200"), ("content-type", "application/grpc")])
        let sized = HPACKHeaders([(":status", "200"), ("content-length", "4")])
        let noContent = HPACKHeaders([(":status", "204"), ("x-a", "1")])
        let early = HPACKHeaders([(":status", "103"), ("link", "</a.css>; rel=preload")])
        let trailers = HPACKHeaders([("grpc-status", "0"), ("grpc-message", "ok")])
        let data = { (text: String, end: Bool) in HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(ByteBuffer(string: text)), endStream: end)) }
        let cases: [[HTTP2Frame.FramePayload]] = [
            [.headers(.init(headers: ok)), data("abcd", false), .headers(.init(headers: trailers, endStream: true))],
            [.headers(.init(headers: ok, endStream: true))],
            [.headers(.init(headers: sized)), data("abcd", true)],
            [.headers(.init(headers: ok)), data("ab", false), data("", true)],
            [.headers(.init(headers: noContent, endStream: true))],
            [.headers(.init(headers: early)), .headers(.init(headers: ok)), data("x", true)],
        ]
        for frames in cases {
            let parts = try responseParts(frames, method: method)
            let carriesContent = frames.contains {
                if case .data(let data) = $0, case .byteBuffer(let bytes) = data.data { bytes.readableBytes > 0 } else { false }
            }
            if method == .HEAD && carriesContent {
                // Content in a response to HEAD: NIO's codec passes it on; NIOHTTP2's
                // content-length check refused it, and the stream's own check does now.
                #expect(parts.ours.last == .failed(.protocolError), "\(frames.map(describe))")
                #expect(Array(parts.ours.dropLast()) == Array(parts.nio.prefix(parts.ours.count - 1)), "\(frames.map(describe))")
            } else {
                #expect(parts.ours == parts.nio, "\(frames.map(describe))")
            }
        }
    }

    /// Stream IDs run out after 2^30 streams on a connection (31 bits, odd for a client, never
    /// reused: RFC 9113 §5.1.1). The connection that gives out the last one takes no new
    /// stream: one made on it meanwhile is refused before anything is sent (its request goes
    /// again on a new connection), and the connection is no longer offered.
    @Test func aConnectionThatGaveItsLastStreamIDTakesNoMore() throws {
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish() }
        try channel.connect(to: .init(ipAddress: "127.0.0.1", port: 1)).wait()
        let connection = HTTP2BackendConnection(channel: channel, firstStreamID: HTTP2StreamID(Int32.max - 2))
        try channel.pipeline.syncOperations.addHandler(connection)
        let get = HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: ["host": "a"]))
        var ids: [HTTP2StreamID] = []
        var delegates: [Recording] = []
        var streams: [StreamUpstreamHandler] = []
        #expect(connection.usable)
        for _ in 0..<3 {
            let stream = connection.makeStream()
            let delegate = Recording()
            stream.delegate = delegate
            stream.send(get)
            stream.send(.end(nil))
            stream.flush()
            while let frame = try channel.readOutbound(as: HTTP2Frame.self) { ids.append(frame.streamID) }
            streams.append(stream)
            delegates.append(delegate)
        }
        #expect(ids == [HTTP2StreamID(Int32.max - 2), HTTP2StreamID(Int32.max)])
        #expect(!connection.usable)
        channel.embeddedEventLoop.run()
        #expect(delegates[2].calls == [.failed(.reset)])
        #expect(streams[2].refused)
        #expect(delegates[0].calls.isEmpty && delegates[1].calls.isEmpty)
    }

    @Test func aResponseWithoutAValidStatusFailsTheExchange() throws {
        for block in [HPACKHeaders([("content-type", "text/plain")]), HPACKHeaders([(":status", "abc")])] {
            let (channel, handler, delegate) = try streamHandler()
            defer { _ = try? channel.finish() }
            handler.send(.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: ["host": "a"])))
            handler.flush()
            try channel.writeInbound(HTTP2Frame(streamID: 1, payload: .headers(.init(headers: block))))
            #expect(delegate.calls == [.failed(.protocolError)])
        }
    }

    /// A request the header pass made becomes the same block straight from its bytes as from
    /// its fields made strings (`fieldList`), whatever the client's spelling: absolute-form
    /// targets, fields `Connection` names, framing, the proxy's and the exchange's own fields.
    @Test(arguments: [
        "GET /p?q=1 HTTP/1.1\r\nHost: Shop.Example:8080\r\nAccept: */*\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n",
        "GET http://abs.example/x HTTP/1.1\r\nHost: ignored\r\nUser-Agent: t\r\n\r\n",
        "POST /u HTTP/1.1\r\nHOST: h\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\n"
            + "Transfer-Encoding: chunked\r\nContent-Type: application/grpc\r\nTraceParent: 00-a-b-01\r\n\r\n",
        "PUT /l HTTP/1.1\r\nhost: h\r\nContent-Length: 3\r\ncontent-length: 3\r\nX-Very-Long-Field-Name-Beyond-Fifteen: v\r\n\r\n",
        "GET / HTTP/1.0\r\nAccept: x\r\n\r\n",
    ])
    func aForwardedRequestsBlockIsItsFieldListsBlock(raw: String) throws {
        var parser = HTTP1Parser(kind: .request, maxHeadBytes: 8192)
        var buffer = ByteBuffer(string: raw)
        guard case .requestHead(let head)? = try parser.next(from: &buffer) else {
            Issue.record("no request head")
            return
        }
        let authority = head.uri.hasPrefix("http://") ? "abs.example" : nil
        let request = HeaderRewrite.forwardRequest(head, clientAddress: "127.0.0.1", scheme: "http", authority: authority)
        #expect(request.problem == nil)
        request.extra = [("Upgrade", "websocket"), ("X-Extra", "1")]
        let expected = HTTP2StreamParts.requestHeaders(method: request.method, uri: request.uri, fields: request.fieldList)
        let block = HTTP2StreamParts.requestHeaders(request)
        #expect(block.map { "\($0.name): \($0.value)" } == expected.map { "\($0.name): \($0.value)" })
        #expect(block.contains { $0.name == "x-forwarded-proto" })
    }

    /// The body length a request declares, which its DATA must then add up to: digits only; the
    /// same in every `content-length` field; 0 when the head ends the stream. Anything else is
    /// malformed (RFC 9113 §8.1.1), as NIOHTTP2's check (off on client connections) made it.
    @Test func aDeclaredLengthIsDigitsThatAgree() throws {
        let base = [(":method", "POST"), (":scheme", "http"), (":path", "/")]
        func declared(_ values: [String], endStream: Bool = false) throws -> Int? {
            try HTTP2StreamParts.request(block(base + values.map { ("content-length", $0) }), endStream: endStream).declaredLength
        }
        #expect(try declared([]) == nil)
        #expect(try declared(["12"]) == 12)
        #expect(try declared(["7", "7"]) == 7)
        #expect(try declared(["007"]) == 7)
        #expect(try declared(["0"], endStream: true) == 0)
        #expect(try declared(["123456789012345678"]) == 123_456_789_012_345_678)
        for bad in [["+5"], ["-1"], ["5, 5"], [" 5"], [""], ["0x10"], ["5", "6"], ["007", "7"], ["1234567890123456789"]] {
            #expect(throws: HTTP2StreamParts.MalformedRequest(field: "content-length"), "\(bad)") { try declared(bad) }
        }
        #expect(throws: HTTP2StreamParts.MalformedRequest(field: "content-length")) { try declared(["3"], endStream: true) }
    }

    /// The body length a backend's response allows: its `content-length` (digits, the same in
    /// every field), 0 for a response to HEAD and for a 204 or 304 whatever they declare (RFC
    /// 9110 §6.4.1), no bound without the field or for a 1xx head. A head that ends the stream
    /// while declaring a body is malformed (RFC 9113 §8.1.1), as NIOHTTP2's check (off on
    /// backend connections) made it.
    @Test func aResponseAllowsTheBodyItDeclares() throws {
        func allowed(_ status: String, _ values: [String], method: HTTPMethod = .GET, endStream: Bool = false) throws -> Int? {
            try HTTP2StreamParts.response(block([(":status", status)] + values.map { ("content-length", $0) }),
                                          endStream: endStream, requestMethod: method).declaredLength
        }
        #expect(try allowed("200", []) == nil)
        #expect(try allowed("200", ["12"]) == 12)
        #expect(try allowed("200", ["7", "7"]) == 7)
        #expect(try allowed("200", ["0"], endStream: true) == 0)
        #expect(try allowed("200", ["5"], method: .HEAD) == 0)
        #expect(try allowed("200", [], method: .HEAD) == 0)
        #expect(try allowed("200", ["5"], method: .HEAD, endStream: true) == 0)
        #expect(try allowed("304", ["5"], endStream: true) == 0)
        #expect(try allowed("204", []) == 0)
        #expect(try allowed("103", ["5"]) == nil)
        for bad in [["+5"], ["-1"], ["5, 5"], [""], ["5", "6"], ["1234567890123456789"]] {
            #expect(throws: HTTP2StreamParts.MalformedResponse(), "\(bad)") { try allowed("200", bad) }
            #expect(throws: HTTP2StreamParts.MalformedResponse(), "\(bad)") { try allowed("200", bad, method: .HEAD) }
        }
        #expect(throws: HTTP2StreamParts.MalformedResponse()) { try allowed("200", ["3"], endStream: true) }
    }

    @Test func aDeclaredLengthTakesDataUpToItAndNoFurther() {
        var length = HTTP2StreamParts.BodyLength(5)
        #expect(!length.isComplete)
        // (bytes, ends the stream) -> accepted: 3 of 5; 6 of 5 refused; an end at 4 of 5
        // refused; the last 2 with the end.
        let taken = [(3, false), (3, false), (1, true), (2, true)].map { length.take($0.0, endsStream: $0.1) }
        #expect(taken == [true, false, false, true])
        #expect(length.isComplete)
        var empty = HTTP2StreamParts.BodyLength(0)
        #expect(empty.isComplete)
        let beyondEmpty = empty.take(1, endsStream: false)
        #expect(!beyondEmpty)
        var unbounded = HTTP2StreamParts.BodyLength()
        let anything = [unbounded.take(1 << 20, endsStream: false), unbounded.take(0, endsStream: true)]
        #expect(anything == [true, true])
        #expect(unbounded.isComplete)
    }

    @Test func statusValuesAreTheirDigits() {
        for code: UInt in [100, 101, 103, 200, 204, 304, 404, 499, 500, 599, 999, 99, 1000, 0] {
            #expect(HTTP2StreamParts.statusValue(code) == String(code))
        }
    }

    @Test func withoutAHostTheRequestHasNoAuthority() {
        let block = HTTP2StreamParts.requestHeaders(method: .GET, uri: "/", fields: [("accept", "*/*")])
        #expect(block.map(\.name) == [":path", ":method", ":scheme", "accept"])
    }
}
