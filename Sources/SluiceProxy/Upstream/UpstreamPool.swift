import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix

/// Keep-alive connections to backend endpoints, owned by ONE event loop.
///
/// Every request runs on its client connection's loop and leases upstream connections from
/// that loop's pool only, so a request never hops threads and the pool needs no lock
/// (the design of Envoy's per-worker connection pools).
final class UpstreamPool {
    let eventLoop: EventLoop
    /// Idle connections per endpoint, most recently used last.
    private var idle: [SocketAddress: EndpointIdle] = [:]
    /// The endpoint looked up last: most loops send most requests to one or a few endpoints,
    /// and comparing two addresses is much cheaper than hashing one.
    private var lastEndpoint: EndpointIdle?
    /// At most this many idle connections are kept per endpoint; more are closed.
    let maxIdlePerEndpoint: Int

    init(eventLoop: EventLoop, maxIdlePerEndpoint: Int = 128) {
        self.eventLoop = eventLoop
        self.maxIdlePerEndpoint = maxIdlePerEndpoint
    }

    /// An idle, open connection to `address`, if the pool has one.
    func takeIdle(_ address: SocketAddress) -> UpstreamConnection? {
        let endpoint = self.endpoint(address)
        while let conn = endpoint.connections.popLast() {
            if conn.channel.isActive { return conn }
        }
        return nil
    }

    private func endpoint(_ address: SocketAddress) -> EndpointIdle {
        if let last = lastEndpoint, last.address == address { return last }
        let endpoint = idle[address] ?? EndpointIdle(address)
        idle[address] = endpoint
        lastEndpoint = endpoint
        return endpoint
    }

    /// Opens a new connection on this loop.
    func connect(_ address: SocketAddress, timeout: TimeAmount) -> EventLoopFuture<UpstreamConnection>.Isolated {
        ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(HTTP1UpstreamHandler())
                }
            }
            .connect(to: address)
            .assumeIsolated()
            .flatMapThrowing { [unowned(unsafe) self] channel in
                let handler = try channel.pipeline.syncOperations.handler(type: HTTP1UpstreamHandler.self)
                handler.pool = self
                handler.address = address
                return UpstreamConnection(channel: channel, handler: handler, address: address)
            }
    }

    /// Returns a connection whose last exchange ended cleanly; it idles until leased again.
    /// (An HTTP/2 stream is single-use: it is closed instead.)
    func release(_ conn: UpstreamConnection) {
        conn.handler.delegate = nil
        guard conn.channel.isActive, !conn.isStream else {
            if conn.isStream { conn.channel.close(promise: nil) }
            return
        }
        let endpoint = self.endpoint(conn.address)
        guard endpoint.connections.count < maxIdlePerEndpoint else {
            conn.channel.close(promise: nil)
            return
        }
        endpoint.connections.append(conn)
    }

    /// A connection closed: if it was idling here, drop it.
    func forget(_ handler: UpstreamHandler, address: SocketAddress) {
        guard let endpoint = idle[address],
              let i = endpoint.connections.firstIndex(where: { $0.handler === handler }) else { return }
        endpoint.connections.remove(at: i)
    }

    /// Closes every idle connection (shutdown, or endpoints dropped by a reload).
    func closeAll() {
        let all = idle.values.flatMap(\.connections)
        idle.removeAll()
        lastEndpoint = nil
        for conn in all { conn.channel.close(promise: nil) }
        let parents = http2.values
        http2.removeAll()
        for parent in parents { parent.channel.close(promise: nil) }
    }

    // MARK: HTTP/2 backends (`protocol: h2`)

    /// One HTTP/2 connection per endpoint on this loop; each request is a stream on it.
    private final class HTTP2Parent: Sendable {
        let channel: Channel
        let multiplexer: NIOHTTP2Handler.StreamMultiplexer
        init(channel: Channel, multiplexer: NIOHTTP2Handler.StreamMultiplexer) {
            self.channel = channel
            self.multiplexer = multiplexer
        }
    }

    private var http2: [SocketAddress: HTTP2Parent] = [:]
    /// Connects in progress, so that concurrent requests share one connection.
    private var http2Connecting: [SocketAddress: EventLoopFuture<HTTP2Parent>] = [:]

    /// A new stream to `address` (prior-knowledge HTTP/2), on this loop's connection to it, as an
    /// `UpstreamConnection` that speaks HTTP/1-style parts (the stream's codec converts them).
    func openStream(to address: SocketAddress, timeout: TimeAmount) -> EventLoopFuture<UpstreamConnection>.Isolated {
        parent(address, timeout: timeout).flatMap { parent in
            parent.multiplexer.createStreamChannel { stream in
                stream.eventLoop.makeCompletedFuture {
                    try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ClientCodec(httpProtocol: .http))
                    try stream.pipeline.syncOperations.addHandler(StreamUpstreamHandler())
                }
            }
        }
        .assumeIsolated()
        .flatMapThrowing { stream in
            let handler = try stream.pipeline.syncOperations.handler(type: StreamUpstreamHandler.self)
            return UpstreamConnection(channel: stream, handler: handler, address: address, isStream: true)
        }
    }

    private func parent(_ address: SocketAddress, timeout: TimeAmount) -> EventLoopFuture<HTTP2Parent> {
        if let parent = http2[address], parent.channel.isActive {
            return eventLoop.makeSucceededFuture(parent)
        }
        if let pending = http2Connecting[address] { return pending }
        let future = ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connect(to: address)
            .flatMapThrowing { channel -> HTTP2Parent in
                let multiplexer = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                    mode: .client, connectionConfiguration: .init(), streamConfiguration: .init()
                ) { $0.eventLoop.makeSucceededVoidFuture() }
                return HTTP2Parent(channel: channel, multiplexer: multiplexer)
            }
        http2Connecting[address] = future
        future.assumeIsolated().whenComplete { [unowned(unsafe) self] result in
            self.http2Connecting[address] = nil
            if case .success(let parent) = result {
                self.http2[address] = parent
                parent.channel.closeFuture.assumeIsolated().whenComplete { [unowned(unsafe) self] _ in
                    if self.http2[address] === parent { self.http2[address] = nil }
                }
            }
        }
        return future
    }
}

@available(*, unavailable)
extension UpstreamPool: Sendable {}

/// One endpoint's idle connections (a class, so taking and returning one mutates in place).
private final class EndpointIdle {
    let address: SocketAddress
    var connections: [UpstreamConnection] = []
    init(_ address: SocketAddress) { self.address = address }
}
