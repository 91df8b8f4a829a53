import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import NIOSSL
import SluiceConfig

/// What a listener speaks. Every kind ends in the same `DownstreamHandler` per request (per
/// HTTP/2 stream), so routing, forwarding and recording are one code path for all of them.
enum ListenerKind: Sendable {
    /// HTTP/1.1 in clear text.
    case http1
    /// HTTP/2 with prior knowledge in clear text (`h2c: true`).
    case h2c
    /// TLS 1.2+; ALPN picks `h2` or `http/1.1`. The context is read per new connection, so a
    /// reload that brings a new certificate applies to new connections only.
    case tls(TLSContextBox)

    init(_ spec: ListenerSpec) throws {
        if let tls = spec.tls {
            self = .tls(TLSContextBox(try Self.makeContext(tls)))
        } else {
            self = spec.h2c ? .h2c : .http1
        }
    }

    /// The server TLS context for a certificate and key: TLS 1.2+, ALPN h2 and http/1.1.
    static func makeContext(_ tls: TLSSpec) throws -> NIOSSLContext {
            let chain: [NIOSSLCertificate]
            let key: NIOSSLPrivateKey
            do { chain = try NIOSSLCertificate.fromPEMFile(tls.cert) } catch {
                throw TLSFileError(description: "\(tls.cert): not a readable PEM certificate chain (\(error))")
            }
            do { key = try NIOSSLPrivateKey(file: tls.key, format: .pem) } catch {
                throw TLSFileError(description: "\(tls.key): not a readable PEM private key (\(error))")
            }
            var configuration = TLSConfiguration.makeServerConfiguration(
                certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
            configuration.minimumTLSVersion = .tlsv12
            configuration.applicationProtocols = ["h2", "http/1.1"]
            return try NIOSSLContext(configuration: configuration)
    }

    var scheme: String {
        if case .tls = self { return "https" }
        return "http"
    }
}

/// The TLS context a listener hands to each new connection; replaced by a reload.
final class TLSContextBox: Sendable {
    private let context: NIOLockedValueBox<NIOSSLContext>
    init(_ context: NIOSSLContext) { self.context = NIOLockedValueBox(context) }
    var current: NIOSSLContext { context.withLockedValue { $0 } }
    func replace(_ new: NIOSSLContext) { context.withLockedValue { $0 = new } }
}

/// A certificate or key that cannot be used, naming the file.
struct TLSFileError: Error, CustomStringConvertible {
    let description: String
}

extension SluiceServer {
    /// Builds the TLS contexts of `listeners` (matched to the running ones by address) and, only
    /// if every one builds, swaps them in: new connections get the new certificates, open ones
    /// keep theirs. Throws naming the file at fault; nothing changes then.
    public func reloadTLS(_ listeners: [ListenerSpec]) throws {
        let boxes = tlsBoxes.withLockedValue { $0 }
        var next: [(TLSContextBox, NIOSSLContext)] = []
        for listener in listeners {
            guard let tls = listener.tls, let box = boxes[listener.address.description] else { continue }
            next.append((box, try ListenerKind.makeContext(tls)))
        }
        for (box, context) in next { box.replace(context) }
    }

    func bootstrap(_ kind: ListenerKind, settings: ServerSettings) -> ServerBootstrap {
        let store = self.store
        let contexts = self.contexts
        let idle = TimeAmount(settings.idleTimeout)
        let maxHeaderBytes = settings.maxHeaderBytes
        return ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            // Nagle off: set on the listening socket (a TCP-level option: `tcpOption`, not
            // `socketOption`, which would set SOL_SOCKET's option 1, SO_DEBUG, refused without
            // CAP_NET_ADMIN), and accepted sockets inherit it: no setsockopt per connection.
            .serverChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            // Per connection, the least work (a new connection cost 120k instructions, a
            // keep-alive request 25k): the receive allocator set synchronously here, not as a
            // child channel option (NIO applies those through a chain of futures, ~6k
            // instructions each), and the loop's cached succeeded future returned instead of
            // `makeCompletedFuture` (a new future, and `Result` metadata looked up, each call).
            .childChannelInitializer { channel in
                let loop = contexts[ObjectIdentifier(channel.eventLoop)]!
                switch kind {
                case .http1:
                    return SluiceServer.completed(channel) {
                        try channel.syncOptions?.setOption(.recvAllocator, value: Self.receiveAllocator)
                        try SluiceServer.configureDownstream(channel, loop: loop.value, store: store, maxHeaderBytes: maxHeaderBytes,
                                                             idle: idle, writesThrough: true)
                    }
                case .h2c:
                    return SluiceServer.completed(channel) {
                        try channel.syncOptions?.setOption(.recvAllocator, value: Self.receiveAllocator)
                        try SluiceServer.configureHTTP2(channel, contexts: contexts, store: store, scheme: "http",
                                                maxHeaderBytes: maxHeaderBytes, idle: idle)
                    }
                case .tls(let box):
                    do {
                        try channel.syncOptions?.setOption(.recvAllocator, value: Self.receiveAllocator)
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: box.current))
                        try channel.pipeline.syncOperations.addHandler(TLSHandshakeDeadline(timeout: idle))
                    } catch {
                        return channel.eventLoop.makeFailedFuture(error)
                    }
                    return channel.configureHTTP2SecureUpgrade(
                        h2ChannelConfigurator: { channel in
                            SluiceServer.completed(channel) {
                                try SluiceServer.configureHTTP2(channel, contexts: contexts, store: store, scheme: "https",
                                                        maxHeaderBytes: maxHeaderBytes, idle: idle)
                            }
                        },
                        http1ChannelConfigurator: { channel in
                            SluiceServer.completed(channel) {
                                try SluiceServer.configureDownstream(channel, loop: contexts[ObjectIdentifier(channel.eventLoop)]!.value,
                                                             store: store, maxHeaderBytes: maxHeaderBytes, idle: idle, scheme: "https")
                            }
                        })
                }
            }
    }

    /// Client connections' receive buffers: 512 bytes to start (a request head), growing with
    /// what the client sends.
    static let receiveAllocator = CompactRecvAllocator(minimum: 64, initial: 512, maximum: 65_536)

    /// Runs `configure` on a new channel; its outcome as a future (the loop's cached one when
    /// it succeeded).
    static func completed(_ channel: Channel, _ configure: () throws -> Void) -> EventLoopFuture<Void> {
        do {
            try configure()
            return channel.eventLoop.makeSucceededVoidFuture()
        } catch {
            return channel.eventLoop.makeFailedFuture(error)
        }
    }

    /// The HTTP/1.1 downstream pipeline, in order (see `DownstreamHandler`, `HTTP1ServerHandler`).
    /// `writesThrough`: the codec is the channel's only handler (a cleartext listener), so it
    /// may write to the socket itself (`SocketWriteThrough`).
    static func configureDownstream(_ channel: Channel, loop: LoopContext, store: SnapshotStore,
                                    maxHeaderBytes: Int, idle: TimeAmount, scheme: String = "http",
                                    writesThrough: Bool = false) throws {
        try channel.pipeline.syncOperations.addHandler(
            HTTP1ServerHandler(exchange: DownstreamHandler(loop: loop, store: store, scheme: scheme),
                               maxHeaderBytes: maxHeaderBytes, idleTimeout: idle, socket: writesThrough ? channel : nil))
    }

    /// HTTP/2: one `DownstreamHandler` per stream, held by the connection's
    /// `HTTP2ClientConnection` after NIOHTTP2's handler (no stream channels: NIOHTTP2's
    /// multiplexer is not used), so every stream is routed and recorded exactly like an
    /// HTTP/1.1 request. Stream flow control gives backpressure per stream; concurrent streams
    /// and header list size are capped.
    static func configureHTTP2(_ channel: Channel, contexts: [ObjectIdentifier: NIOLoopBound<LoopContext>],
                               store: SnapshotStore, scheme: String, maxHeaderBytes: Int, idle: TimeAmount) throws {
        var connection = NIOHTTP2Handler.ConnectionConfiguration()
        connection.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: 256),
            HTTP2Setting(parameter: .maxHeaderListSize, value: maxHeaderBytes),
        ]
        connection.maximumRecentlyResetStreams = 64
        // The client's blocks are checked as they become requests (`HTTP2StreamParts`), and
        // each request's DATA against its content-length (`DownstreamHandler.receiveFrame`); the
        // responses are framed by their backends' (an HTTP/1.1 backend's by the parser, an HTTP/2
        // backend's by NIOHTTP2's check, still on for backend connections).
        connection.headerBlockValidation = .disabled
        connection.contentLengthValidation = .disabled
        // Streams run on their connection's loop: its context is looked up once.
        let loop = contexts[ObjectIdentifier(channel.eventLoop)]!
        // Below NIOHTTP2's handler: the error closer and one flush per tick.
        try channel.pipeline.syncOperations.addHTTP2ConnectionHandlers()
        try channel.pipeline.syncOperations.addHandler(
            NIOHTTP2Handler(mode: .server, connectionConfiguration: connection, streamConfiguration: .init()),
            name: "http2")
        try channel.pipeline.syncOperations.addHandler(
            HTTP2ClientConnection(loop: loop.value, store: store, scheme: scheme, idleTimeout: idle,
                                  clientAddress: channel.remoteAddress?.forwardedFor ?? "unknown"),
            name: "connection")
    }
}

/// Loads every TLS listener's certificate and key the way `run` would, for `sluice check`.
public enum TLSCheck {
    /// One message per listener whose certificate or key cannot be used, naming the file.
    public static func problems(_ listeners: [ListenerSpec]) -> [String] {
        listeners.compactMap { listener in
            guard let tls = listener.tls else { return nil }
            do {
                _ = try ListenerKind.makeContext(tls)
                return nil
            } catch {
                return "listener \(listener.address): \(error)"
            }
        }
    }
}
