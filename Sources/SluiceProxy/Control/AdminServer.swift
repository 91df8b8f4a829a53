import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import SluiceConfig

/// The admin API (SPEC "Admin API"): HTTP/1.1 + JSON on a unix socket (mode 0600) and, when
/// configured, on a TCP address. It runs on its own single event loop, so a slow admin call
/// never delays a proxied request, and polls the config file for changes once a second.
public final class AdminServer: Sendable {
    let control: ControlPlane
    private let group: MultiThreadedEventLoopGroup
    private let channels: NIOLockedValueBox<[Channel]>

    public init(control: ControlPlane) {
        self.control = control
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.channels = NIOLockedValueBox([])
    }

    /// Binds the socket (and the TCP address) of `spec`, and starts watching the config file.
    /// Returns warnings for the log (an `admin.http` address others can reach).
    @discardableResult
    public func start(_ spec: AdminSpec?, watchFile: Bool = true) async throws -> [String] {
        var warnings: [String] = []
        if let path = spec?.socket {
            let channel: Channel
            // Only the owner may change routing: the socket is created 0600 (a umask for the
            // bind; a chmod after it would leave the socket open to others for a moment).
            let umaskBefore = umask(0o177)
            do {
                channel = try await bootstrap().bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).get()
                umask(umaskBefore)
            } catch {
                umask(umaskBefore)
                throw ServerError.bind(address: path, underlying: "\(error)")
            }
            chmod(path, 0o600)
            channels.withLockedValue { $0.append(channel) }
        }
        if let http = spec?.http {
            do {
                let channel = try await bootstrap().bind(host: http.host, port: http.port).get()
                channels.withLockedValue { $0.append(channel) }
                if let address = channel.localAddress, !Self.isLoopback(address) {
                    warnings.append("warning: the admin API listens on \(http), which is not a loopback address: "
                                    + "anyone who can reach it can change weights and switch routes")
                }
            } catch {
                throw ServerError.bind(address: http.description, underlying: "\(error)")
            }
        }
        if watchFile {
            let control = self.control
            let loop = group.next()
            loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in
                control.reloadIfFileChanged()
            }
        }
        return warnings
    }

    /// Whether `address` is on the loopback interface (127.0.0.0/8, ::1).
    static func isLoopback(_ address: SocketAddress) -> Bool {
        switch address {
        case .v4(let v4): UInt32(bigEndian: v4.address.sin_addr.s_addr) >> 24 == 127
        case .v6: address.ipAddress == "::1"
        case .unixDomainSocket: true
        }
    }

    /// The TCP address bound for `admin.http`, if any (port resolved when 0).
    public var httpAddress: SocketAddress? {
        channels.withLockedValue { $0.compactMap(\.localAddress).first { $0.port != nil } }
    }

    public func stop() async {
        let list = channels.withLockedValue { l in defer { l.removeAll() }; return l }
        for c in list { try? await c.close() }
        try? await group.shutdownGracefully()
    }

    private func bootstrap() -> ServerBootstrap {
        let control = self.control
        return ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(AdminHandler(control: control))
                }
            }
    }
}

/// One admin connection: collects a request (bodies up to 1 MiB) and answers it.
final class AdminHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let control: ControlPlane
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()
    private var tooLarge = false

    init(control: ControlPlane) { self.control = control }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body.clear()
            tooLarge = false
        case .body(var b):
            if body.readableBytes + b.readableBytes > 1 << 20 { tooLarge = true } else { body.writeBuffer(&b) }
        case .end:
            guard let head else { return }
            self.head = nil
            if tooLarge {
                respond(context: context, head: head, status: 413, json: ["error": "request body over 1 MiB"])
                return
            }
            handle(context: context, head: head, body: Data(body.readableBytesView))
        }
    }

    private func handle(context: ChannelHandlerContext, head: HTTPRequestHead, body: Data) {
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? "/"
        let parts = path.split(separator: "/").map(String.init)
        switch (head.method, parts.count, parts.first) {
        case (.GET, 1, "healthz"):
            // Draining (SIGTERM): 503, so a load balancer checking it stops sending traffic
            // here while the requests in flight finish.
            if control.server.isDraining {
                respond(context: context, head: head, status: 503, json: ["status": "draining"])
            } else {
                respond(context: context, head: head, status: 200, json: ["status": "serving"])
            }
        case (.GET, 1, "status"):
            let control = self.control
            control.server.statisticsFuture().and(control.server.coolingEndpoints())
                .hop(to: context.eventLoop).assumeIsolated().whenComplete { result in
                    let none: (primary: Set<String>, shadow: Set<String>) = ([], [])
                    let (stats, cooling) = (try? result.get()) ?? (.init(), none)
                    self.respond(context: context, head: head, status: 200,
                                 json: StatusReport.json(view: control.view, stats: stats, keys: control.server.registry.allKeys,
                                                         server: control.server, cooling: cooling))
                }
        case (.GET, 1, "metrics"):
            let control = self.control
            control.server.statisticsFuture().hop(to: context.eventLoop).assumeIsolated().whenComplete { result in
                let stats = (try? result.get()) ?? .init()
                let text = MetricsReport.text(view: control.view, stats: stats, keys: control.server.registry.allKeys,
                                              server: control.server)
                self.respond(context: context, head: head, status: 200, text: text,
                             contentType: "text/plain; version=0.0.4; charset=utf-8")
            }
        case (.POST, 1, "reload"):
            switch control.reload() {
            case .success(let generation): respond(context: context, head: head, status: 200, json: ["generation": generation])
            case .failure(let f): respond(context: context, head: head, status: f.status, json: ["error": f.description])
            }
        case (.PUT, 3, "routes") where parts[2] == "weights":
            // JSONDecoder refuses booleans, strings and fractions as Int: exactly the rule wanted.
            guard let weights = try? JSONDecoder().decode([String: Int].self, from: body), !weights.isEmpty else {
                respond(context: context, head: head, status: 400,
                        json: ["error": "body must be a JSON object of integer weights, e.g. {\"checkout-v1\":90,\"checkout-v2\":10}"])
                return
            }
            switch control.setWeights(route: parts[1], weights: weights) {
            case .success: respond(context: context, head: head, status: 200, json: ["route": parts[1], "weights": weights])
            case .failure(let f): respond(context: context, head: head, status: f.status, json: ["error": f.description])
            }
        case (.POST, 3, "routes") where parts[2] == "switch":
            var to: String? = nil
            if !body.isEmpty {
                guard let object = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any],
                      object.keys.allSatisfy({ $0 == "active" }), object.isEmpty || object["active"] is String else {
                    respond(context: context, head: head, status: 400, json: ["error": "body must be {\"active\":\"BACKEND\"} or empty"])
                    return
                }
                to = object["active"] as? String
            }
            switch control.switchRoute(route: parts[1], to: to) {
            case .success(let active): respond(context: context, head: head, status: 200, json: ["route": parts[1], "active": active])
            case .failure(let f): respond(context: context, head: head, status: f.status, json: ["error": f.description])
            }
        default:
            respond(context: context, head: head, status: 404, json: ["error": "no such endpoint: \(head.method.rawValue) \(path)"])
        }
    }

    private func respond(context: ChannelHandlerContext, head: HTTPRequestHead, status: Int, json: [String: Any]) {
        let data = (try? JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])) ?? Data("{}".utf8)
        respond(context: context, head: head, status: status, text: String(decoding: data, as: UTF8.self) + "\n",
                contentType: "application/json")
    }

    private func respond(context: ChannelHandlerContext, head: HTTPRequestHead, status: Int, text: String, contentType: String) {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: contentType)
        headers.add(name: "content-length", value: String(text.utf8.count))
        if !head.isKeepAlive { headers.add(name: "connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: HTTPResponseStatus(statusCode: status),
                                                             headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: text)))), promise: nil)
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !head.isKeepAlive { done.assumeIsolated().whenComplete { _ in context.close(promise: nil) } }
    }
}

@available(*, unavailable)
extension AdminHandler: Sendable {}
