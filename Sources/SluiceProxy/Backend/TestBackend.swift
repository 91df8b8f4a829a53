import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix

/// `sluice backend`: the small app the demo, the tests and the load tests put behind the proxy.
///
/// It answers with its version and echoes the request as JSON. A few paths do more:
/// - `/echo...`       streams the request body back as the response body;
/// - `/bytes/N`       streams N bytes (the pattern `i % 251`) with backpressure;
/// - `/status/N`      answers with status N;
/// - `?delay_ms=N`    waits N ms before answering (on top of `--latency`);
/// - `/grpc/CODE`     answers 200 `application/grpc` with trailers `grpc-status: CODE`;
/// - `Upgrade: websocket` (GET) answers 101, sends `hello from VERSION\n`, then echoes every
///   byte it receives (a byte tunnel, enough to test the proxy's upgrade path end to end).
/// `--error-rate F` answers that share of requests with 503. `--plain` answers `ok` instead of the
/// JSON echo (a cheap backend for benchmarks). Requests are recorded (`received`) only for tests.
public final class TestBackend: Sendable {
    public struct Options: Sendable {
        public var version: String
        public var latency: Duration
        public var errorRate: Double
        /// Serve HTTP/2 with prior knowledge instead of HTTP/1.1 (a gRPC-style backend).
        public var h2c: Bool
        /// Answer `ok` instead of the JSON echo, and record nothing: a backend whose own cost is
        /// negligible (the JSON echo costs ~70 µs of CPU a request, which a benchmark's shadow
        /// would otherwise spend on the core the load generator runs on).
        public var plain: Bool
        /// Keep every request in `received` (for tests). Off for the command line: a backend
        /// left running (`sluice backend`, `sluice demo`) would grow by every request it served.
        public var record: Bool

        public init(version: String, latency: Duration = .zero, errorRate: Double = 0, h2c: Bool = false,
                    plain: Bool = false, record: Bool = true) {
            self.version = version
            self.latency = latency
            self.errorRate = errorRate
            self.h2c = h2c
            self.plain = plain
            self.record = record
        }
    }

    /// One request as the backend saw it.
    public struct Received: Sendable {
        public var method: String
        public var uri: String
        public var headers: [(String, String)]
        public var bodyBytes: Int
    }

    public let options: Options
    private let channel: Channel
    private let ownedGroup: MultiThreadedEventLoopGroup?
    private let log: NIOLockedValueBox<[Received]>

    public var port: Int { channel.localAddress?.port ?? 0 }
    public var address: String { "127.0.0.1:\(port)" }

    /// Every request received so far, in arrival order of completion.
    public var received: [Received] { log.withLockedValue { $0 } }

    public static func start(host: String = "127.0.0.1", port: Int = 0, options: Options,
                             group: EventLoopGroup? = nil) async throws -> TestBackend {
        let owned = group == nil ? MultiThreadedEventLoopGroup(numberOfThreads: 1) : nil
        let log = NIOLockedValueBox<[Received]>([])
        let channel = try await ServerBootstrap(group: group ?? owned!)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if options.h2c {
                        _ = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                            mode: .server, connectionConfiguration: .init(), streamConfiguration: .init()
                        ) { stream in
                            stream.eventLoop.makeCompletedFuture {
                                try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ServerCodec())
                                try stream.pipeline.syncOperations.addHandler(BackendHandler(options: options, log: log))
                            }
                        }
                    } else {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                        try channel.pipeline.syncOperations.addHandler(BackendHandler(options: options, log: log))
                    }
                }
            }
            .bind(host: host, port: port).get()
        return TestBackend(options: options, channel: channel, group: owned, log: log)
    }

    private init(options: Options, channel: Channel, group: MultiThreadedEventLoopGroup?, log: NIOLockedValueBox<[Received]>) {
        self.options = options
        self.channel = channel
        self.ownedGroup = group
        self.log = log
    }

    public func stop() async {
        try? await channel.close()
        try? await ownedGroup?.shutdownGracefully()
    }

    /// Blocks until the listener closes (for `sluice backend`).
    public func wait() async throws { try await channel.closeFuture.get() }
}

/// The per-connection handler of `TestBackend`.
final class BackendHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private enum Mode {
        case grpc(Int)
        case json
        case echo
        case bytes(Int)
        case status(Int)
    }

    private let options: TestBackend.Options
    private let log: NIOLockedValueBox<[Received]>
    typealias Received = TestBackend.Received
    private var head: HTTPRequestHead?
    private var mode = Mode.json
    private var bodyBytes = 0
    private var readPending = false
    /// Bytes still to stream for `/bytes/N`, and how many went out already.
    private var remaining = 0
    private var streamed = 0
    private var keepAlive = true

    init(options: TestBackend.Options, log: NIOLockedValueBox<[Received]>) {
        self.options = options
        self.log = log
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            self.bodyBytes = 0
            self.keepAlive = head.isKeepAlive
            let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? "/"
            if path.hasPrefix("/echo") {
                mode = .echo
                var headers = HTTPHeaders()
                headers.add(name: "x-backend-version", value: options.version)
                if let length = head.headers.first(name: "content-length") {
                    headers.add(name: "content-length", value: length)
                }
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))), promise: nil)
            } else if path.hasPrefix("/bytes/"), let n = Int(path.dropFirst("/bytes/".count)) {
                mode = .bytes(n)
            } else if path.hasPrefix("/grpc/"), let n = Int(path.dropFirst("/grpc/".count)) {
                mode = .grpc(n)
            } else if path.hasPrefix("/status/"), let n = Int(path.dropFirst("/status/".count)) {
                mode = .status(n)
            } else {
                mode = .json
            }
        case .body(let body):
            bodyBytes += body.readableBytes
            if case .echo = mode { context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
        case .end:
            guard let head else { return }
            if head.headers.first(name: "upgrade")?.lowercased() == "websocket" {
                upgrade(context: context, head: head)
                return
            }
            if options.record && !options.plain {
                log.withLockedValue {
                    $0.append(Received(method: head.method.rawValue, uri: head.uri,
                                       headers: head.headers.map { ($0.name, $0.value) }, bodyBytes: bodyBytes))
                }
            }
            var delay = options.latency
            if let q = head.uri.split(separator: "?", maxSplits: 1).dropFirst().first {
                for pair in q.split(separator: "&") where pair.hasPrefix("delay_ms=") {
                    delay += .milliseconds(Int(pair.dropFirst("delay_ms=".count)) ?? 0)
                }
            }
            if delay > .zero {
                context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount.nanoseconds(Int64(delay.components.seconds) * 1_000_000_000 + delay.components.attoseconds / 1_000_000_000)) {
                    self.respond(context: context, head: head)
                }
            } else {
                respond(context: context, head: head)
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
        context.fireChannelReadComplete()
    }

    private func respond(context: ChannelHandlerContext, head: HTTPRequestHead) {
        switch mode {
        case .echo:
            finish(context: context)
            return
        case .bytes(let n):
            var headers = HTTPHeaders()
            headers.add(name: "content-length", value: String(n))
            headers.add(name: "x-backend-version", value: options.version)
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))), promise: nil)
            remaining = n
            streamed = 0
            pump(context: context)
            return
        case .status(let code):
            reply(context: context, head: head, status: HTTPResponseStatus(statusCode: code))
        case .grpc(let code):
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: "application/grpc")
            headers.add(name: "x-backend-version", value: options.version)
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: [0, 0, 0, 0, 0])))), promise: nil)
            var trailers = HTTPHeaders()
            trailers.add(name: "grpc-status", value: String(code))
            trailers.add(name: "grpc-message", value: code == 0 ? "ok" : "failed")
            self.head = nil
            context.writeAndFlush(wrapOutboundOut(.end(trailers)), promise: nil)
        case .json:
            if options.errorRate > 0, Double.random(in: 0..<1) < options.errorRate {
                reply(context: context, head: head, status: .serviceUnavailable)
            } else {
                reply(context: context, head: head, status: .ok)
            }
        }
    }

    /// Answers the handshake with 101 and turns the connection into a greeting + echo tunnel.
    private func upgrade(context: ChannelHandlerContext, head: HTTPRequestHead) {
        var headers = HTTPHeaders()
        headers.add(name: "upgrade", value: "websocket")
        headers.add(name: "connection", value: "Upgrade")
        headers.add(name: "x-backend-version", value: options.version)
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .switchingProtocols, headers: headers))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        let version = options.version
        let sync = context.pipeline.syncOperations
        do {
            try sync.addHandler(EchoHandler())
            _ = sync.removeHandler(try sync.handler(type: HTTPServerPipelineHandler.self))
            _ = sync.removeHandler(try sync.handler(type: HTTPServerProtocolErrorHandler.self))
            _ = sync.removeHandler(try sync.handler(type: NIOHTTPResponseHeadersValidator.self))
            _ = sync.removeHandler(try sync.handler(type: HTTPResponseEncoder.self))
            _ = sync.removeHandler(try sync.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self))
            _ = sync.removeHandler(context: context)
            // Written once the HTTP handlers are gone, so it leaves as raw bytes.
            context.channel.writeAndFlush(context.channel.allocator.buffer(string: "hello from \(version)\n"), promise: nil)
        } catch {
            context.close(promise: nil)
        }
    }

    private func reply(context: ChannelHandlerContext, head: HTTPRequestHead, status: HTTPResponseStatus) {
        let json = options.plain ? "ok\n" : Self.json(version: options.version, head: head, bodyBytes: bodyBytes,
                                                      status: Int(status.code), peerPort: context.channel.remoteAddress?.port ?? 0)
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: options.plain ? "text/plain" : "application/json")
        headers.add(name: "content-length", value: String(json.utf8.count))
        headers.add(name: "x-backend-version", value: options.version)
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        if head.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: json)))), promise: nil)
        }
        finish(context: context)
    }

    private func finish(context: ChannelHandlerContext) {
        let keepAlive = self.keepAlive
        self.head = nil
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive { done.assumeIsolated().whenComplete { _ in context.close(promise: nil) } }
    }

    /// Streams `/bytes/N` while the client keeps up.
    private func pump(context: ChannelHandlerContext) {
        while remaining > 0 && context.channel.isWritable {
            let n = min(remaining, 65_536)
            var buffer = context.channel.allocator.buffer(capacity: n)
            let offset = streamed
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: n) { ptr in
                for i in 0..<n { ptr[i] = UInt8(truncatingIfNeeded: (offset + i) % 251) }
                return n
            }
            remaining -= n
            streamed += n
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        context.flush()
        if remaining == 0, head != nil { finish(context: context) }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            if remaining > 0 { pump(context: context) }
            if readPending {
                readPending = false
                context.read()
            }
        }
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if !context.channel.isWritable {
            readPending = true
        } else {
            context.read()
        }
    }

    static func json(version: String, head: HTTPRequestHead, bodyBytes: Int, status: Int, peerPort: Int) -> String {
        let parts = head.uri.split(separator: "?", maxSplits: 1)
        var headers: [String: String] = [:]
        for (name, value) in head.headers {
            let key = name.lowercased()
            headers[key] = headers[key].map { "\($0), \(value)" } ?? value
        }
        let object: [String: Any] = [
            "version": version,
            "status": status,
            "method": head.method.rawValue,
            "path": parts.first.map(String.init) ?? "/",
            "query": parts.count > 1 ? String(parts[1]) : "",
            "headers": headers,
            "bodyBytes": bodyBytes,
            // The client's port: equal across requests when they share one (pooled) connection.
            "peerPort": peerPort,
        ]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return (String(data: data, encoding: .utf8) ?? "{}") + "\n"
    }
}

@available(*, unavailable)
extension BackendHandler: Sendable {}

extension BackendHandler: RemovableChannelHandler {}

/// After an upgrade: every byte echoed back.
final class EchoHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.write(data, promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) { context.flush() }
}

@available(*, unavailable)
extension EchoHandler: Sendable {}
