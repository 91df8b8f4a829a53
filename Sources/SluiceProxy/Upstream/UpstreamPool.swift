import NIOCore
import NIOHTTP1
import NIOPosix

/// Keep-alive connections to backend endpoints, owned by ONE event loop.
///
/// Every request runs on its client connection's loop and leases upstream connections from
/// that loop's pool only, so a request never hops threads and the pool needs no lock
/// (the design of Envoy's per-worker connection pools).
final class UpstreamPool {
    let eventLoop: EventLoop
    /// Idle connections per endpoint, most recently used last.
    private var idle: [SocketAddress: [UpstreamConnection]] = [:]
    /// At most this many idle connections are kept per endpoint; more are closed.
    let maxIdlePerEndpoint: Int

    init(eventLoop: EventLoop, maxIdlePerEndpoint: Int = 128) {
        self.eventLoop = eventLoop
        self.maxIdlePerEndpoint = maxIdlePerEndpoint
    }

    /// An idle, open connection to `address`, if the pool has one.
    func takeIdle(_ address: SocketAddress) -> UpstreamConnection? {
        while var list = idle[address], let conn = list.popLast() {
            idle[address] = list
            if conn.channel.isActive { return conn }
        }
        return nil
    }

    /// Opens a new connection on this loop.
    func connect(_ address: SocketAddress, timeout: TimeAmount) -> EventLoopFuture<UpstreamConnection>.Isolated {
        ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                do {
                    var encoderConfig = HTTPRequestEncoder.Configuration()
                    // Framing is decided by the proxy from the client's own framing.
                    encoderConfig.automaticallySetFramingHeaders = false
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(HTTPRequestEncoder(configuration: encoderConfig))
                    try sync.addHandler(ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .forwardBytes)))
                    try sync.addHandler(UpstreamHandler())
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
            .connect(to: address)
            .assumeIsolated()
            .flatMapThrowing { [unowned(unsafe) self] channel in
                let handler = try channel.pipeline.syncOperations.handler(type: UpstreamHandler.self)
                handler.pool = self
                handler.address = address
                return UpstreamConnection(channel: channel, handler: handler, address: address)
            }
    }

    /// Returns a connection whose last exchange ended cleanly; it idles until leased again.
    func release(_ conn: UpstreamConnection) {
        conn.handler.delegate = nil
        guard conn.channel.isActive else { return }
        var list = idle[conn.address, default: []]
        guard list.count < maxIdlePerEndpoint else {
            conn.channel.close(promise: nil)
            return
        }
        list.append(conn)
        idle[conn.address] = list
    }

    /// A connection closed: if it was idling here, drop it.
    func forget(_ handler: UpstreamHandler, address: SocketAddress) {
        guard var list = idle[address], let i = list.firstIndex(where: { $0.handler === handler }) else { return }
        list.remove(at: i)
        idle[address] = list
    }

    /// Closes every idle connection (shutdown, or endpoints dropped by a reload).
    func closeAll() {
        let all = idle.values.flatMap { $0 }
        idle.removeAll()
        for conn in all { conn.channel.close(promise: nil) }
    }
}

@available(*, unavailable)
extension UpstreamPool: Sendable {}
