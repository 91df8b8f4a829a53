import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing
@testable import SluiceProxy

/// The writing half of the proxy's HTTP/1.1 codec (`HTTP1Writer`: exact bytes and the framing it
/// decides) and the backend-side handler that owns both halves (`HTTP1UpstreamHandler` on an
/// `EmbeddedChannel`: request parts in, exact bytes out; response bytes in, delegate calls out).
@Suite struct HTTP1CodecHandlerTests {
    // MARK: Helpers

    static func headers(_ fields: [(String, String)]) -> HTTPHeaders {
        HTTPHeaders(fields)
    }

    /// What `HTTP1Writer.writeResponseHead` wrote, and the framing it returned.
    static func responseHead(_ status: HTTPResponseStatus, version: HTTPVersion = .http1_1,
                             _ fields: [(String, String)], bodySuppressed: Bool = false) -> (String, BodyFraming) {
        var buffer = ByteBuffer()
        let framing = HTTP1Writer.writeResponseHead(HTTPResponseHead(version: version, status: status, headers: headers(fields)),
                                                    bodySuppressed: bodySuppressed, into: &buffer)
        return (String(buffer: buffer), framing)
    }

    /// What `HTTP1Writer.writeRequestHead` wrote, and the framing it returned.
    static func requestHead(_ method: HTTPMethod, _ uri: String, version: HTTPVersion = .http1_1,
                            _ fields: [(String, String)]) -> (String, BodyFraming) {
        var buffer = ByteBuffer()
        let framing = HTTP1Writer.writeRequestHead(HTTPRequestHead(version: version, method: method, uri: uri, headers: headers(fields)),
                                                   into: &buffer)
        return (String(buffer: buffer), framing)
    }

    /// Records what the upstream handler reports, like the `DownstreamHandler` it stands in for.
    final class RecordingDelegate: UpstreamDelegate {
        enum Call: Equatable {
            case head(status: Int, fields: [String])
            case body(String)
            case end(trailers: [String]?)
            case failed(UpstreamFailure)
            case writability(Bool)
        }

        var calls: [Call] = []
        var readCompletes = 0
        var downstreamIsWritable = true
        /// Like a finished exchange handing its connection back: the delegate lets go at the end.
        var releasesOnEnd = false
        weak var handler: UpstreamHandler?

        func upstreamResponseHead(_ head: ResponseHead) {
            calls.append(.head(status: Int(head.status.code), fields: head.fields.headers.map { "\($0.name): \($0.value)" }))
        }

        func upstreamResponseBody(_ body: ByteBuffer) {
            calls.append(.body(String(buffer: body)))
        }

        func upstreamResponseEnd(_ trailers: HTTPHeaders?) {
            calls.append(.end(trailers: trailers.map { $0.map { "\($0.name): \($0.value)" } }))
            if releasesOnEnd { handler?.delegate = nil }
        }

        func upstreamReadComplete() { readCompletes += 1 }
        func upstreamFailed(_ reason: UpstreamFailure) { calls.append(.failed(reason)) }
        func upstreamWritabilityChanged(isWritable: Bool) { calls.append(.writability(isWritable)) }
    }

    /// Counts the reads that reach the front of the pipeline (past the handler's read gate).
    final class ReadCounter: ChannelOutboundHandler {
        typealias OutboundIn = ByteBuffer
        var reads = 0
        func read(context: ChannelHandlerContext) {
            reads += 1
            context.read()
        }
    }

    /// An active embedded channel whose last handler is an `HTTP1UpstreamHandler` leased by a
    /// recording delegate (returned too: the handler holds it weakly).
    static func makeChannel(extra: ChannelHandler? = nil) throws -> (EmbeddedChannel, HTTP1UpstreamHandler, RecordingDelegate) {
        let channel = EmbeddedChannel()
        if let extra { try channel.pipeline.syncOperations.addHandler(extra) }
        let handler = HTTP1UpstreamHandler()
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8080)).wait()
        let delegate = RecordingDelegate()
        delegate.handler = handler
        handler.delegate = delegate
        return (channel, handler, delegate)
    }

    /// Every flushed outbound buffer, in order.
    static func outbound(_ channel: EmbeddedChannel) throws -> [String] {
        var out: [String] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) {
            out.append(String(buffer: buffer))
        }
        return out
    }

    static func request(_ method: HTTPMethod, _ uri: String, _ fields: [(String, String)]) -> HTTPClientRequestPart {
        .head(HTTPRequestHead(version: .http1_1, method: method, uri: uri, headers: headers(fields)))
    }

    static func body(_ text: String) -> HTTPClientRequestPart {
        .body(.byteBuffer(ByteBuffer(string: text)))
    }

    // MARK: HTTP1Writer: response heads

    /// A 200 with Content-Length: status line with reason phrase, fields as given (case and
    /// order kept), and the body goes out raw.
    /// The loop's spare head buffer is reused only once nothing else holds it: a buffer the
    /// channel still has (not written out yet) is never written over.
    @Test func spareBufferIsReusedOnlyWhenUnshared() {
        let spare = SpareBuffer()
        #expect(spare.take() == nil)
        var first = ByteBuffer(string: "first head")
        spare.keep(first)
        // Still held here (as a channel would while the write is pending): the taken buffer
        // must not share its bytes.
        var taken = spare.take()!
        #expect(taken.readableBytes == 0)
        taken.writeString("second head, longer than the first")
        #expect(String(buffer: first) == "first head")
        // Released everywhere else: the same storage comes back, cleared.
        spare.keep(taken)
        taken = ByteBuffer()
        let capacity = spare.take().map(\.capacity)
        #expect(capacity ?? 0 >= "second head, longer than the first".utf8.count)
        // A buffer that grew past the limit is not kept.
        spare.keep(ByteBuffer(repeating: 0, count: SpareBuffer.maxKept + 1))
        #expect(spare.take() == nil)
        first.clear()
    }

    @Test func responseHeadWithContentLength() {
        let (bytes, framing) = Self.responseHead(.ok, [("content-type", "text/plain"), ("Content-Length", "2"), ("X-A", "1")])
        #expect(bytes == "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nContent-Length: 2\r\nX-A: 1\r\n\r\n")
        #expect(framing == .raw)
    }

    /// HTTP/1.1 without Content-Length: the proxy declares `transfer-encoding: chunked` itself
    /// (last), dropping whatever Transfer-Encoding the head carried.
    @Test func responseHeadWithoutLengthIsChunkedOnHTTP11() {
        let (bytes, framing) = Self.responseHead(.ok, [("x-a", "1")])
        #expect(bytes == "HTTP/1.1 200 OK\r\nx-a: 1\r\ntransfer-encoding: chunked\r\n\r\n")
        #expect(framing == .chunked)

        let (restated, restatedFraming) = Self.responseHead(.notFound, [("Transfer-Encoding", "gzip, chunked"), ("x-b", "2")])
        #expect(restated == "HTTP/1.1 404 Not Found\r\nx-b: 2\r\ntransfer-encoding: chunked\r\n\r\n")
        #expect(restatedFraming == .chunked)

        // With a length, a Transfer-Encoding field is dropped and the body is raw.
        let (both, bothFraming) = Self.responseHead(.ok, [("Transfer-Encoding", "chunked"), ("content-length", "3")])
        #expect(both == "HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n")
        #expect(bothFraming == .raw)
    }

    /// HTTP/1.0 has no chunked coding: without a length, the body runs until the close (raw).
    @Test func responseHeadWithoutLengthIsRawOnHTTP10() {
        let (bytes, framing) = Self.responseHead(.ok, version: .http1_0, [("x-a", "1"), ("transfer-encoding", "chunked")])
        #expect(bytes == "HTTP/1.0 200 OK\r\nx-a: 1\r\n\r\n")
        #expect(framing == .raw)
    }

    /// 204, 304 and 1xx carry no framing fields and no body.
    @Test func responseHeadWithoutBody() {
        let (noContent, noContentFraming) = Self.responseHead(.noContent, [("content-length", "5"), ("x-a", "1")])
        #expect(noContent == "HTTP/1.1 204 No Content\r\nx-a: 1\r\n\r\n")
        #expect(noContentFraming == .none)

        let (notModified, notModifiedFraming) = Self.responseHead(.notModified, [("ETag", "\"v1\""), ("Content-Length", "100")])
        #expect(notModified == "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n")
        #expect(notModifiedFraming == .none)

        let (switching, switchingFraming) = Self.responseHead(.switchingProtocols, [("upgrade", "websocket"), ("connection", "upgrade")])
        #expect(switching == "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n")
        #expect(switchingFraming == .none)

        let (interim, interimFraming) = Self.responseHead(.continue, [])
        #expect(interim == "HTTP/1.1 100 Continue\r\n\r\n")
        #expect(interimFraming == .none)
    }

    /// A response to HEAD: the fields still describe a GET's body (length kept, chunked still
    /// declared), but no body is framed.
    @Test func responseHeadWithBodySuppressed() {
        let (bytes, framing) = Self.responseHead(.ok, [("content-length", "10")], bodySuppressed: true)
        #expect(bytes == "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n")
        #expect(framing == .none)

        let (unframed, unframedFraming) = Self.responseHead(.ok, [], bodySuppressed: true)
        #expect(unframed == "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        #expect(unframedFraming == .none)
    }

    /// The head is appended to what the buffer already holds.
    @Test func responseHeadAppends() {
        var buffer = ByteBuffer(string: "earlier")
        _ = HTTP1Writer.writeResponseHead(HTTPResponseHead(version: .http1_1, status: .ok, headers: ["content-length": "0"]),
                                          bodySuppressed: false, into: &buffer)
        #expect(String(buffer: buffer) == "earlierHTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
    }

    // MARK: HTTP1Writer: request heads

    /// A request without framing fields has no body; the line is always HTTP/1.1.
    @Test func requestHeadWithoutBody() {
        let (bytes, framing) = Self.requestHead(.GET, "/x?y=1", [("host", "backend"), ("x-forwarded-for", "10.0.0.1")])
        #expect(bytes == "GET /x?y=1 HTTP/1.1\r\nhost: backend\r\nx-forwarded-for: 10.0.0.1\r\n\r\n")
        #expect(framing == .none)

        let (old, oldFraming) = Self.requestHead(.RAW(value: "PURGE"), "/", version: .http1_0, [])
        #expect(old == "PURGE / HTTP/1.1\r\n\r\n")
        #expect(oldFraming == .none)
    }

    /// Content-Length: the body goes out raw.
    @Test func requestHeadWithContentLength() {
        let (bytes, framing) = Self.requestHead(.POST, "/submit", [("host", "b"), ("Content-Length", "5")])
        #expect(bytes == "POST /submit HTTP/1.1\r\nhost: b\r\nContent-Length: 5\r\n\r\n")
        #expect(framing == .raw)
    }

    /// Transfer-Encoding: the body is chunked, whatever order the fields come in.
    @Test func requestHeadWithTransferEncoding() {
        let (bytes, framing) = Self.requestHead(.PUT, "/up", [("host", "b"), ("transfer-encoding", "chunked")])
        #expect(bytes == "PUT /up HTTP/1.1\r\nhost: b\r\ntransfer-encoding: chunked\r\n\r\n")
        #expect(framing == .chunked)

        #expect(Self.requestHead(.POST, "/", [("Transfer-Encoding", "chunked"), ("content-length", "3")]).1 == .chunked)
        #expect(Self.requestHead(.POST, "/", [("content-length", "3"), ("TRANSFER-ENCODING", "chunked")]).1 == .chunked)
    }

    // MARK: HTTP1Writer: chunks

    /// Chunk sizes in lowercase hexadecimal without leading zeros.
    @Test func chunkHeaders() {
        let cases: [(Int, String)] = [
            (1, "1\r\n"), (15, "f\r\n"), (16, "10\r\n"), (255, "ff\r\n"), (4096, "1000\r\n"),
            (0, "0\r\n"), (10, "a\r\n"), (0xABCDEF, "abcdef\r\n"), (65_537, "10001\r\n"),
        ]
        for (size, expected) in cases {
            var buffer = ByteBuffer()
            HTTP1Writer.writeChunkHeader(size: size, into: &buffer)
            #expect(String(buffer: buffer) == expected, "size \(size)")
        }
    }

    /// The last chunk: `0`, the trailer fields if any, and the empty line.
    @Test func lastChunk() {
        var plain = ByteBuffer()
        HTTP1Writer.writeLastChunk(trailers: nil, into: &plain)
        #expect(String(buffer: plain) == "0\r\n\r\n")

        var withTrailers = ByteBuffer()
        HTTP1Writer.writeLastChunk(trailers: ["grpc-status": "0", "X-Checksum": "abc"], into: &withTrailers)
        #expect(String(buffer: withTrailers) == "0\r\ngrpc-status: 0\r\nX-Checksum: abc\r\n\r\n")

        var empty = ByteBuffer()
        HTTP1Writer.writeLastChunk(trailers: HTTPHeaders(), into: &empty)
        #expect(String(buffer: empty) == "0\r\n\r\n")
    }

    // MARK: HTTP1UpstreamHandler: requests out

    /// Head, Content-Length body and end are held until `flush`, then written as one buffer.
    @Test func requestWithContentLengthIsOneWrite() throws {
        let (channel, handler, delegate) = try Self.makeChannel()
        handler.send(Self.request(.POST, "/submit", [("host", "backend"), ("content-length", "5")]))
        handler.send(Self.body("hello"))
        handler.send(.end(nil))
        #expect(try Self.outbound(channel) == [])
        handler.flush()
        #expect(try Self.outbound(channel) == ["POST /submit HTTP/1.1\r\nhost: backend\r\ncontent-length: 5\r\n\r\nhello"])
        handler.flush()
        #expect(try Self.outbound(channel) == [])
        #expect(delegate.calls == [])
        _ = try? channel.finish()
    }

    /// With `transfer-encoding: chunked` each body part is framed (empty parts are dropped, as
    /// an empty chunk would end the body) and the end carries the trailers.
    @Test func chunkedRequestIsFramed() throws {
        let (channel, handler, _) = try Self.makeChannel()
        handler.send(Self.request(.POST, "/up", [("host", "b"), ("transfer-encoding", "chunked")]))
        handler.send(Self.body("hello"))
        handler.send(Self.body(""))
        handler.send(Self.body(" world!"))
        handler.send(.end(["x-checksum": "abc"]))
        handler.flush()
        #expect(try Self.outbound(channel).joined() == "POST /up HTTP/1.1\r\nhost: b\r\ntransfer-encoding: chunked\r\n\r\n"
            + "5\r\nhello\r\n7\r\n world!\r\n0\r\nx-checksum: abc\r\n\r\n")

        // The next request on the connection starts with fresh framing.
        handler.send(Self.request(.GET, "/next", [("host", "b")]))
        handler.send(.end(nil))
        handler.flush()
        #expect(try Self.outbound(channel) == ["GET /next HTTP/1.1\r\nhost: b\r\n\r\n"])
        _ = try? channel.finish()
    }

    /// A chunked body flushed part by part: each flush writes what was framed so far.
    @Test func chunkedRequestFlushedPerPart() throws {
        let (channel, handler, _) = try Self.makeChannel()
        handler.send(Self.request(.POST, "/s", [("transfer-encoding", "chunked")]))
        handler.flush()
        #expect(try Self.outbound(channel) == ["POST /s HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n"])
        handler.send(Self.body("abc"))
        handler.flush()
        #expect(try Self.outbound(channel) == ["3\r\nabc\r\n"])
        handler.send(.end(nil))
        handler.flush()
        #expect(try Self.outbound(channel) == ["0\r\n\r\n"])
        _ = try? channel.finish()
    }

    /// Body parts larger than the coalescing limit are written as they are (no copy), after the
    /// pending bytes and before the rest; the bytes on the wire are the same.
    @Test func largeBodyPartsAreNotCoalesced() throws {
        let big = String(repeating: "b", count: 4097)
        let (channel, handler, _) = try Self.makeChannel()
        handler.send(Self.request(.POST, "/raw", [("content-length", "4097")]))
        handler.send(Self.body(big))
        handler.send(.end(nil))
        handler.flush()
        #expect(try Self.outbound(channel) == ["POST /raw HTTP/1.1\r\ncontent-length: 4097\r\n\r\n", big])

        handler.send(Self.request(.POST, "/chunked", [("transfer-encoding", "chunked")]))
        handler.send(Self.body(big))
        handler.send(.end(nil))
        handler.flush()
        #expect(try Self.outbound(channel) == [
            "POST /chunked HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n1001\r\n", big, "\r\n0\r\n\r\n",
        ])
        _ = try? channel.finish()
    }

    /// A request without framing fields sends no body bytes, whatever parts are handed over.
    @Test func bodylessRequestDropsBodyParts() throws {
        let (channel, handler, _) = try Self.makeChannel()
        handler.send(Self.request(.GET, "/", [("host", "b")]))
        handler.send(Self.body("ignored"))
        handler.send(.end(nil))
        handler.flush()
        #expect(try Self.outbound(channel) == ["GET / HTTP/1.1\r\nhost: b\r\n\r\n"])
        _ = try? channel.finish()
    }

    // MARK: HTTP1UpstreamHandler: responses in

    /// A response in one read: head, body, end, then one read-complete.
    @Test func responseInOneRead() throws {
        let (channel, handler, delegate) = try Self.makeChannel()
        handler.send(Self.request(.GET, "/", [("host", "b")]))
        handler.send(.end(nil))
        handler.flush()
        #expect(try Self.outbound(channel) == ["GET / HTTP/1.1\r\nhost: b\r\n\r\n"])
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"))
        #expect(delegate.calls == [.head(status: 200, fields: ["content-length: 2"]), .body("ok"), .end(trailers: nil)])
        #expect(delegate.readCompletes == 1)
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil)
        #expect(channel.isActive)
        _ = try? channel.finish()
    }

    /// A head split across reads is reported once complete; a body split across reads comes as
    /// one part per read.
    @Test func responseSplitAcrossReads() throws {
        let (channel, _, delegate) = try Self.makeChannel()
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\ncontent-le"))
        #expect(delegate.calls == [])
        try channel.writeInbound(ByteBuffer(string: "ngth: 2\r\n\r\nok"))
        #expect(delegate.calls == [.head(status: 200, fields: ["content-length: 2"]), .body("ok"), .end(trailers: nil)])
        #expect(delegate.readCompletes == 2)

        delegate.calls = []
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 201 Created\r\ncontent-length: 5\r\n\r\nhe"))
        try channel.writeInbound(ByteBuffer(string: "l"))
        try channel.writeInbound(ByteBuffer(string: "lo"))
        #expect(delegate.calls == [
            .head(status: 201, fields: ["content-length: 5"]), .body("he"), .body("l"), .body("lo"), .end(trailers: nil),
        ])
        _ = try? channel.finish()
    }

    /// A chunked response with trailers, and a second response pipelined in the same read.
    @Test func chunkedAndPipelinedResponses() throws {
        let (channel, _, delegate) = try Self.makeChannel()
        try channel.writeInbound(ByteBuffer(string:
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\ngrpc-status: 0\r\n\r\n"
            + "HTTP/1.1 404 Not Found\r\ncontent-length: 1\r\n\r\nx"))
        #expect(delegate.calls == [
            .head(status: 200, fields: ["transfer-encoding: chunked"]), .body("abc"), .end(trailers: ["grpc-status: 0"]),
            .head(status: 404, fields: ["content-length: 1"]), .body("x"), .end(trailers: nil),
        ])
        _ = try? channel.finish()
    }

    /// A request sent as HEAD makes its response bodiless despite Content-Length; the next
    /// request (GET) reads a body again.
    @Test func responseToHEADHasNoBody() throws {
        let (channel, handler, delegate) = try Self.makeChannel()
        handler.send(Self.request(.HEAD, "/", [("host", "b")]))
        handler.send(.end(nil))
        handler.flush()
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n"))
        #expect(delegate.calls == [.head(status: 200, fields: ["content-length: 10"]), .end(trailers: nil)])

        delegate.calls = []
        handler.send(Self.request(.GET, "/", [("host", "b")]))
        handler.send(.end(nil))
        handler.flush()
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n0123456789"))
        #expect(delegate.calls == [.head(status: 200, fields: ["content-length: 10"]), .body("0123456789"), .end(trailers: nil)])
        _ = try? channel.finish()
    }

    /// A 100 Continue before the final response is not reported.
    @Test func interimResponseIsSkipped() throws {
        let (channel, _, delegate) = try Self.makeChannel()
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 100 Continue\r\n\r\n"))
        #expect(delegate.calls == [])
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"))
        #expect(delegate.calls == [.head(status: 200, fields: ["content-length: 0"]), .end(trailers: nil)])
        _ = try? channel.finish()
    }

    /// A body delimited by the close ends when the channel goes inactive; a delegate that let go
    /// at the end hears nothing more.
    @Test func responseUntilCloseEndsOnClose() throws {
        let (channel, _, delegate) = try Self.makeChannel()
        delegate.releasesOnEnd = true
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\nserver: t\r\n\r\nabc"))
        try channel.writeInbound(ByteBuffer(string: "def"))
        #expect(delegate.calls == [.head(status: 200, fields: ["server: t"]), .body("abc"), .body("def")])
        try channel.close().wait()
        #expect(delegate.calls == [.head(status: 200, fields: ["server: t"]), .body("abc"), .body("def"), .end(trailers: nil)])
    }

    /// A backend that closes in the middle of a framed body: the exchange fails with `reset`.
    @Test func closeMidBodyIsReset() throws {
        let (channel, _, delegate) = try Self.makeChannel()
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhe"))
        try channel.close().wait()
        #expect(delegate.calls == [.head(status: 200, fields: ["content-length: 5"]), .body("he"), .failed(.reset)])
    }

    /// A malformed status line: the delegate hears `protocolError` once (not also `reset` when
    /// the channel then closes) and the connection is closed.
    @Test func malformedStatusLineIsProtocolError() throws {
        let (channel, handler, delegate) = try Self.makeChannel()
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 2x0 OK\r\ncontent-length: 0\r\n\r\n"))
        #expect(delegate.calls == [.failed(.protocolError)])
        #expect(handler.delegate == nil)
        #expect(!channel.isActive)
    }

    /// A framing error after the head (a bad chunk size): head, then `protocolError`, then closed.
    @Test func malformedChunkIsProtocolError() throws {
        let (channel, _, delegate) = try Self.makeChannel()
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n"))
        #expect(delegate.calls == [.head(status: 200, fields: ["transfer-encoding: chunked"]), .failed(.protocolError)])
        #expect(!channel.isActive)
    }

    /// Bytes arriving while no request leases the connection make it unusable: it is closed.
    @Test func bytesWithoutDelegateClose() throws {
        let (channel, handler, delegate) = try Self.makeChannel()
        handler.delegate = nil
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"))
        #expect(delegate.calls == [])
        #expect(!channel.isActive)
    }

    /// A 101: head and end, then the bytes after it are kept and handed on, in order, when the
    /// handler leaves the pipeline (they belong to the tunnel).
    @Test func switchingProtocolsKeepsTunnelBytes() throws {
        let (channel, handler, delegate) = try Self.makeChannel()
        try channel.writeInbound(ByteBuffer(string:
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\r\nHELLO"))
        #expect(delegate.calls == [
            .head(status: 101, fields: ["upgrade: websocket", "connection: Upgrade"]), .end(trailers: nil),
        ])
        try channel.writeInbound(ByteBuffer(string: " WORLD"))
        #expect(delegate.calls.count == 2)
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil)
        try channel.pipeline.syncOperations.removeHandler(handler).wait()
        #expect(try channel.readInbound(as: ByteBuffer.self).map { String(buffer: $0) } == "HELLO WORLD")
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil)
        _ = try? channel.finish()
    }

    /// Backpressure: reads wait while the downstream side cannot take more, and resume once told.
    @Test func readsWaitForTheDownstream() throws {
        let counter = ReadCounter()
        let (channel, handler, delegate) = try Self.makeChannel(extra: counter)
        let before = counter.reads
        channel.read()
        #expect(counter.reads == before + 1)
        delegate.downstreamIsWritable = false
        channel.read()
        #expect(counter.reads == before + 1)
        handler.resumeReading()
        #expect(counter.reads == before + 2)
        handler.resumeReading()
        #expect(counter.reads == before + 2)
        _ = try? channel.finish()
    }

    /// The upstream channel's writability is passed to the delegate.
    @Test func writabilityIsReported() throws {
        let (channel, _, delegate) = try Self.makeChannel()
        channel.isWritable = false
        channel.pipeline.fireChannelWritabilityChanged()
        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        #expect(delegate.calls == [.writability(false), .writability(true)])
        _ = try? channel.finish()
    }
}
