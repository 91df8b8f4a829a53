import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing
import SluiceConfig
import SluiceMetrics
import SluiceRouting
@testable import SluiceProxy

/// Handler tests on `EmbeddedChannel`: bytes in, exact bytes out, no sockets. They cover the
/// answers the proxy makes itself (no upstream involved) and the one-pass header rewrite.
@Suite struct DownstreamHandlerTests {
    /// The production downstream pipeline on an embedded channel, with one route (`/api` → b0).
    static func makeChannel() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        let backends = [BackendSpec(name: "b0", version: "v1", endpoints: [])]
        let table = RouteTable(
            routes: [Route(name: "api", match: RouteMatch(pathPrefix: "/api"), target: .backend(BackendID(0)))],
            backendNames: ["b0"])
        let config = Configuration(path: "/x.yaml", listeners: [], statePath: "/x.json", backends: backends, table: table)
        let store = SnapshotStore(try Snapshot(generation: 1, configuration: config, table: table, registry: SeriesRegistry()))
        try SluiceServer.configureDownstream(channel, loop: LoopContext(eventLoop: channel.embeddedEventLoop),
                                             store: store, maxHeaderBytes: 1024, idle: .seconds(60))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 40000)).wait()
        return channel
    }

    /// Everything the channel wrote, as one string.
    static func written(_ channel: EmbeddedChannel) throws -> String {
        var out = ""
        while var buffer = try channel.readOutbound(as: ByteBuffer.self) {
            out += buffer.readString(length: buffer.readableBytes) ?? ""
        }
        return out
    }

    @Test func noRouteIsAnExact404AndTheConnectionStaysOpen() throws {
        let channel = try Self.makeChannel()
        try channel.writeInbound(ByteBuffer(string: "GET /nothing?x=1 HTTP/1.1\r\nHost: a\r\n\r\n"))
        #expect(try Self.written(channel) == """
            HTTP/1.1 404 Not Found\r
            content-type: text/plain; charset=utf-8\r
            content-length: 26\r
            \r
            no route for GET /nothing

            """)
        #expect(channel.isActive)
        _ = try? channel.finish()
    }

    @Test func noEndpointIsAnExact503() throws {
        let channel = try Self.makeChannel()
        try channel.writeInbound(ByteBuffer(string: "GET /api/x HTTP/1.1\r\nHost: a\r\n\r\n"))
        #expect(try Self.written(channel) == """
            HTTP/1.1 503 Service Unavailable\r
            content-type: text/plain; charset=utf-8\r
            content-length: 39\r
            \r
            no endpoint available for backend 'b0'

            """)
        _ = try? channel.finish()
    }

    @Test func smugglingShapedRequestIs400AndCloses() throws {
        let channel = try Self.makeChannel()
        try channel.writeInbound(ByteBuffer(string:
            "POST /api HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"))
        let out = try Self.written(channel)
        #expect(out.hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
        #expect(out.contains("connection: close\r\n"))
        // llhttp refuses this head itself (before the proxy's own check runs): either way 400 + close.
        #expect(out.contains("\r\n\r\nmalformed request: "))
        #expect(!channel.isActive)
    }

    @Test func oversizedHeadIs431AndCloses() throws {
        let channel = try Self.makeChannel()
        let big = String(repeating: "v", count: 2000)
        _ = try? channel.writeInbound(ByteBuffer(string: "GET /api HTTP/1.1\r\nHost: a\r\nX-Big: \(big)\r\n\r\n"))
        let out = try Self.written(channel)
        #expect(out.hasPrefix("HTTP/1.1 431 Request Header Fields Too Large\r\n"))
        #expect(out.hasSuffix("request header fields too large\n"))
        #expect(!channel.isActive)
    }

    @Test func forwardRequestRewritesInOnePass() {
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: "shop.example.com")
        headers.add(name: "Connection", value: "keep-alive, X-Hop")
        headers.add(name: "X-Hop", value: "1")
        headers.add(name: "Keep-Alive", value: "timeout=5")
        headers.add(name: "TE", value: "trailers")
        headers.add(name: "X-Forwarded-For", value: "10.0.0.1")
        headers.add(name: "X-Forwarded-Proto", value: "https")
        headers.add(name: "Expect", value: "100-continue")
        headers.add(name: "Transfer-Encoding", value: "chunked")
        headers.add(name: "traceparent", value: "00-abc-def-01")
        let head = RequestHead(HTTPRequestHead(version: .http1_1, method: .POST, uri: "/a", headers: headers))
        let out = HeaderRewrite.forwardRequest(head, clientAddress: "127.0.0.1", scheme: "http")
        #expect(out.problem == nil)
        #expect(out.expectsContinue)
        #expect(out.chunked)
        let upstream = out
        #expect(upstream.httpHead.headers.map { "\($0.name): \($0.value)" } == [
            "Host: shop.example.com", "traceparent: 00-abc-def-01", "transfer-encoding: chunked",
            "x-forwarded-for: 10.0.0.1, 127.0.0.1", "x-forwarded-proto: http", "x-forwarded-host: shop.example.com",
        ])
        // On the wire to an HTTP/1.1 backend: kept lines as the client sent them, then the proxy's.
        var bytes = ByteBuffer()
        #expect(HTTP1Writer.writeRequestHead(upstream, into: &bytes) == .chunked)
        #expect(String(buffer: bytes) == "POST /a HTTP/1.1\r\nHost: shop.example.com\r\ntraceparent: 00-abc-def-01\r\n"
            + "transfer-encoding: chunked\r\nx-forwarded-for: 10.0.0.1, 127.0.0.1\r\nx-forwarded-proto: http\r\n"
            + "x-forwarded-host: shop.example.com\r\n\r\n")
    }

    /// Kept lines already written as `name: value` with CRLF are copied on in runs
    /// (`FieldRun`); the bytes are those of writing each field: other lines are normalised
    /// (one space after the colon, no trailing whitespace, CRLF), dropped ones break a run.
    @Test func keptFieldLinesGoOutNormalisedWhetherCopiedInRunsOrOneByOne() throws {
        func parse(_ raw: String, _ kind: HTTP1Parser.Kind) throws -> HTTP1Parser.Event? {
            var parser = HTTP1Parser(kind: kind, maxHeadBytes: 8192)
            var buffer = ByteBuffer(string: raw)
            return try parser.next(from: &buffer)
        }
        guard case .requestHead(let request)? = try parse(
            "GET /p HTTP/1.1\r\nHost: h\r\nA: 1\r\nB:  2 \r\nC: 3\nKeep-Alive: x\r\nD: 4\r\nTE: trailers\r\nE: 5\r\nF:\t6\r\nG:\r\nH: \r\n\r\n",
            .request) else { Issue.record("no request head"); return }
        var bytes = ByteBuffer()
        _ = HTTP1Writer.writeRequestHead(HeaderRewrite.forwardRequest(request, clientAddress: "127.0.0.1", scheme: "http"),
                                         into: &bytes)
        #expect(String(buffer: bytes) == "GET /p HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\nF: 6\r\n"
            + "G: \r\nH: \r\nx-forwarded-for: 127.0.0.1\r\nx-forwarded-proto: http\r\nx-forwarded-host: h\r\n\r\n")
        guard case .responseHead(let response)? = try parse(
            "HTTP/1.1 200 OK\r\nServer: s\r\nDate: d\r\nConnection: keep-alive\r\nX:  y\r\nContent-Length: 2\r\nZ: z\r\n\r\nok",
            .response) else { Issue.record("no response head"); return }
        bytes.clear()
        _ = HTTP1Writer.writeResponseHead(response, version: .http1_1, forwarded: HeaderRewrite.forwardResponse(response),
                                          extra: [], bodySuppressed: false, into: &bytes)
        #expect(String(buffer: bytes) == "HTTP/1.1 200 OK\r\nServer: s\r\nDate: d\r\nX: y\r\nContent-Length: 2\r\nZ: z\r\n\r\n")
    }

    @Test func forwardResponseDropsHopByHopAndReportsFraming() {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Length", value: "2")
        headers.add(name: "Connection", value: "close, X-Private")
        headers.add(name: "X-Private", value: "1")
        headers.add(name: "Keep-Alive", value: "timeout=5")
        headers.add(name: "Set-Cookie", value: "a=b")
        let head = ResponseHead(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))
        let out = HeaderRewrite.forwardResponse(head)
        #expect(out.framed)
        #expect(!out.keepAlive)
        // For an HTTP/2 client: `:status`, the kept fields with lower-case names, then the
        // proxy's own without the connection-specific ones HTTP/2 forbids.
        let block = HTTP2StreamParts.responseHeaders(head, forwarded: out, extra: [("Connection", "close"), ("Set-Cookie", "s=1")])
        #expect(block.map { "\($0.name): \($0.value)" } == [":status: 200", "content-length: 2", "set-cookie: a=b", "set-cookie: s=1"])
        // The same fields written for an HTTP/1.1 client: kept lines as they came, then extras.
        var bytes = ByteBuffer()
        let framing = HTTP1Writer.writeResponseHead(head, version: .http1_1, forwarded: out, extra: [("connection", "close")],
                                                    bodySuppressed: false, into: &bytes)
        #expect(framing == .raw)
        #expect(String(buffer: bytes) == "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nSet-Cookie: a=b\r\nconnection: close\r\n\r\n")
        var unframed = HTTPHeaders()
        unframed.add(name: "Content-Type", value: "text/plain")
        let plain = HeaderRewrite.forwardResponse(ResponseHead(HTTPResponseHead(version: .http1_1, status: .ok, headers: unframed)))
        #expect(plain.framed == false)
        #expect(plain.keepAlive)
        #expect(HeaderRewrite.forwardResponse(ResponseHead(HTTPResponseHead(version: .http1_0, status: .ok, headers: unframed))).keepAlive == false)
    }

    /// RFC 9112 §3.2.2: an absolute-form target is cut to origin-form and its authority returned.
    @Test func absoluteFormTargetsBecomeOriginFormWithTheirAuthority() {
        func cut(_ target: String) -> (String?, String) {
            let absolute = DownstreamHandler.absoluteForm(target)
            return (absolute?.authority, absolute?.target ?? target)
        }
        #expect(cut("http://shop.example.com/a/b?c=1") == ("shop.example.com", "/a/b?c=1"))
        #expect(cut("HTTPS://Shop.Example.com:8443") == ("Shop.Example.com:8443", "/"))
        #expect(cut("Http://h?q") == ("h", "/?q"))
        #expect(cut("/plain/path") == (nil, "/plain/path"))
        #expect(cut("*") == (nil, "*"))
        #expect(cut("http:///no-host") == (nil, "http:///no-host"))
        #expect(cut("httpx://h/") == (nil, "httpx://h/"))
    }
}
