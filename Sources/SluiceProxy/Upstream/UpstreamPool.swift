import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import SluiceConfig

/// Keep-alive connections to backend endpoints, owned by ONE event loop.
///
/// Every request runs on its client connection's loop and leases upstream connections from
/// that loop's pool only, so a request never hops threads and the pool needs no lock
/// (the design of Envoy's per-worker connection pools).
final class UpstreamPool {
    let eventLoop: EventLoop
    /// The loop's reusable head buffer, shared by its upstream and client connections.
    let spare: SpareBuffer
    /// Per endpoint: idle connections (most recently used last), counts, waiting requests.
    private var endpoints: [SocketAddress: Endpoint] = [:]
    /// The endpoint looked up last: most loops send most requests to one or a few endpoints,
    /// and comparing two addresses is much cheaper than hashing one.
    private var lastEndpoint: Endpoint?
    /// The endpoint a request leased from last, by its backend (identity) and endpoint index:
    /// cheaper again than comparing addresses, which copies each address's boxed storage.
    /// (Held strongly: an identity is only compared while its object lives.)
    private var lastLeaseBackend: BackendRuntime?
    private var lastLeaseIndex = 0
    private var lastLeaseEndpoint: Endpoint?
    /// At most this many idle connections are kept per endpoint; more are closed.
    let maxIdlePerEndpoint: Int
    /// At most this many connects to one endpoint are in progress on this loop, and at most
    /// the backend's share of `maxConnections` are open (in use, idle or connecting); further
    /// requests wait for a connection to come back or a slot to free (see `ConnectionWaiter`).
    let maxConnectingPerEndpoint: Int

    init(eventLoop: EventLoop, spare: SpareBuffer = SpareBuffer(), maxIdlePerEndpoint: Int = 128,
         maxConnectingPerEndpoint: Int = 64) {
        self.eventLoop = eventLoop
        self.spare = spare
        self.maxIdlePerEndpoint = maxIdlePerEndpoint
        self.maxConnectingPerEndpoint = maxConnectingPerEndpoint
    }

    // MARK: Waiting for a connection
    //
    // A burst of new clients (a deploy, a reconnect storm) would otherwise open one upstream
    // connection each, all at once: thousands of connects, more than the backend's accept
    // queue holds (the kernel caps it at somaxconn), so SYNs are dropped and retried only after
    // a second — a 504 at the default 1 s connect timeout for a few percent of them
    // (loadtest/connections_5000.py found it). So a loop opens at most its share of the
    // backend's `maxConnections` to an endpoint, `maxConnectingPerEndpoint` at a time (the
    // circuit-breaker limits of Envoy and HAProxy's `maxconn` play the same part). A request
    // that finds no idle connection and no free slot waits, first come first served, for
    // whichever comes first: a connection released to the pool, or a slot (a connect finished,
    // a connection closed). It waits at most its connect timeout, then gets a 504.

    /// Whether a new connect to `address` may start now, with at most `limit` connections open
    /// to it from this loop (the limit is remembered for slots freed later).
    func mayConnect(_ address: SocketAddress, limit: Int) -> Bool {
        let endpoint = self.endpoint(address)
        endpoint.limit = limit
        return hasSlot(endpoint)
    }

    private func hasSlot(_ endpoint: Endpoint) -> Bool {
        endpoint.connecting < maxConnectingPerEndpoint && endpoint.open + endpoint.connecting < endpoint.limit
    }

    /// Queues `waiter` for the next connection or connect slot to `address`.
    func wait(_ waiter: ConnectionWaiter, for address: SocketAddress) {
        endpoint(address).enqueue(waiter)
    }

    /// Hands free slots to the requests still waiting, oldest first.
    private func offerSlots(_ endpoint: Endpoint) {
        while hasSlot(endpoint), let next = endpoint.nextWaiter() {
            _ = next.connectSlotFreed()
        }
    }

    /// An idle, open connection to `address`, if the pool has one.
    func takeIdle(_ address: SocketAddress) -> UpstreamConnection? {
        takeIdle(from: endpoint(address))
    }

    /// An idle, open connection to endpoint `index` of `backend`, if the pool has one.
    func takeIdle(backend: BackendRuntime, index: Int) -> UpstreamConnection? {
        if lastLeaseBackend === backend, lastLeaseIndex == index, let endpoint = lastLeaseEndpoint {
            return takeIdle(from: endpoint)
        }
        let endpoint = self.endpoint(backend.endpoints[index])
        lastLeaseBackend = backend
        lastLeaseIndex = index
        lastLeaseEndpoint = endpoint
        return takeIdle(from: endpoint)
    }

    private func takeIdle(from endpoint: Endpoint) -> UpstreamConnection? {
        while let conn = endpoint.connections.popLast() {
            if conn.channel.isActive { return conn }
        }
        return nil
    }

    private func endpoint(_ address: SocketAddress) -> Endpoint {
        if let last = lastEndpoint, last.address == address { return last }
        if let endpoint = endpoints[address] {
            lastEndpoint = endpoint
            return endpoint
        }
        // Kept as long as the pool, which lives as long as its loop (an address's record is
        // never dropped): immortal, like the loop's context (`Immortal`).
        let endpoint = Endpoint(address)
        Immortal.mark(endpoint)
        endpoints[address] = endpoint
        lastEndpoint = endpoint
        return endpoint
    }

    /// Opens a new connection on this loop.
    func connect(_ address: SocketAddress, timeout: TimeAmount) -> EventLoopFuture<UpstreamConnection>.Isolated {
        let endpoint = self.endpoint(address)
        endpoint.connecting += 1
        let spare = NIOLoopBound(self.spare, eventLoop: eventLoop)
        let pending = ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                SluiceServer.completed(channel) {
                    try channel.pipeline.syncOperations.addHandler(HTTP1UpstreamHandler(spare: spare.value, socket: channel))
                }
            }
            .connect(to: address)
            .assumeIsolated()
            .flatMapThrowing { [unowned(unsafe) self] channel in
                let handler = try channel.pipeline.syncOperations.handler(type: HTTP1UpstreamHandler.self)
                if channel.isActive {
                    // Counted open until the handler reports the close (`forget`).
                    handler.pool = self
                    endpoint.open += 1
                }
                handler.address = address
                return UpstreamConnection(channel: channel, handler: handler, endpoint: endpoint)
            }
        pending.whenComplete { [unowned(unsafe) self] _ in
            endpoint.connecting -= 1
            self.offerSlots(endpoint)
        }
        return pending
    }

    /// Returns a connection whose last exchange ended cleanly; it idles until leased again.
    ///
    /// An HTTP/2 stream is single-use. One that carried its exchange to the end (END_STREAM sent
    /// and received) closes by itself; closing its channel here as well reset it (RST_STREAM
    /// CANCEL, the stream not being closed yet while its last frame is delivered), once per
    /// request, and servers count resets against the connection: NIO's sends GOAWAY after 200,
    /// and "rapid reset" defences (CVE-2023-44487) do the like. Only a stream no request used is
    /// closed.
    func release(_ conn: UpstreamConnection) {
        conn.handler.delegate = nil
        guard conn.channel.isActive, !conn.isStream else {
            if conn.isStream && conn.requestsServed == 0 { conn.channel.close(promise: nil) }
            return
        }
        let endpoint = conn.endpoint
        while let waiter = endpoint.nextWaiter() {
            if waiter.takeConnection(conn) { return }
        }
        guard endpoint.connections.count < maxIdlePerEndpoint else {
            conn.channel.close(promise: nil)
            return
        }
        endpoint.connections.append(conn)
    }

    /// A connection closed: if it was idling here, drop it.
    func forget(_ handler: UpstreamHandler, address: SocketAddress) {
        guard let endpoint = endpoints[address] else { return }
        endpoint.open -= 1
        if let i = endpoint.connections.firstIndex(where: { $0.handler === handler }) {
            endpoint.connections.remove(at: i)
        }
        offerSlots(endpoint)
    }

    /// Closes every idle connection (shutdown, or endpoints dropped by a reload).
    func closeAll() {
        // The endpoints stay: their open/connecting counts and waiting requests still hold.
        var all: [UpstreamConnection] = []
        for endpoint in endpoints.values {
            all.append(contentsOf: endpoint.connections)
            endpoint.connections.removeAll()
        }
        for conn in all { conn.channel.close(promise: nil) }
        let parents = http2.values
        http2.removeAll()
        for parent in parents { parent.channel.close(promise: nil) }
    }

    // MARK: HTTP/2 backends (`protocol: h2`)

    /// One HTTP/2 connection per endpoint on this loop; each request is a stream on it.
    ///
    /// A backend that sends GOAWAY (a graceful restart, or its defence against many reset
    /// streams: NIO's servers answer more than 200 resets in 30 s so, and every request a client
    /// cancels resets its stream) takes no new stream on that connection (RFC 9113 §6.8); nor
    /// does a connection NIOHTTP2 itself gave up on (a connection error: for one, a frame for a
    /// stream reset more than 32 resets ago, which many clients leaving at once cause). The
    /// next request opens a new connection; the old one is closed once its last stream has
    /// ended, or at once when NIOHTTP2 has sent GOAWAY for an error (RFC 9113 §5.4.1). Sluice
    /// used to keep opening streams on it, and they waited for their response timeout.
    ///
    /// Streams above the last stream ID of the backend's GOAWAY were never processed: NIOHTTP2
    /// closes them once the GOAWAY frame has passed `GoAwayWatcher`, and their requests go
    /// again on a new connection (`UpstreamHandler.refused`).
    ///
    /// `openStreams`, `draining` and `goAwayLastStreamID` are only touched on the pool's event loop.
    final class HTTP2Parent: @unchecked Sendable {
        let channel: Channel
        let multiplexer: NIOHTTP2Handler.StreamMultiplexer
        /// Streams opened on this connection and not closed yet.
        private var openStreams = 0
        /// The backend sent GOAWAY, or the connection hit an error.
        private(set) var draining = false
        /// The lowest last stream ID of the backend's GOAWAYs (`maxID` before any).
        private(set) var goAwayLastStreamID = HTTP2StreamID.maxID

        init(channel: Channel, multiplexer: NIOHTTP2Handler.StreamMultiplexer) {
            self.channel = channel
            self.multiplexer = multiplexer
        }

        /// Whether a new stream may go here.
        var usable: Bool { !draining && channel.isActive }

        func streamOpened(_ stream: Channel) {
            openStreams += 1
            stream.closeFuture.assumeIsolated().whenComplete { _ in
                self.openStreams -= 1
                self.closeIfDrained()
            }
        }

        /// The backend's GOAWAY: streams above `lastStreamID` were not processed.
        func goAway(lastStreamID: HTTP2StreamID) {
            goAwayLastStreamID = min(goAwayLastStreamID, lastStreamID)
            drain()
        }

        /// No new stream goes here; the connection closes once its last stream has ended.
        func drain() {
            draining = true
            closeIfDrained()
        }

        private func closeIfDrained() {
            if draining && openStreams == 0 { channel.close(promise: nil) }
        }
    }

    /// Drains its connection when the backend sends GOAWAY (NIOHTTP2 passes the connection's
    /// own frames, stream 0, on down the connection's pipeline) or when an error reaches the end
    /// of the connection's pipeline. NIOHTTP2 answers a connection error with a GOAWAY of its
    /// own and reports it here, but leaves the connection open, where every new stream would
    /// only meet another GOAWAY: `HTTP2ConnectionErrorCloser` closes it once that GOAWAY is out.
    /// A stream's error is reported here the same way, and so is an error that sent no GOAWAY
    /// (a frame of Sluice's that NIOHTTP2 could not encode); those drain the connection: the
    /// streams under way finish, the next request opens a new connection.
    private final class GoAwayWatcher: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = HTTP2Frame
        private let parent: HTTP2Parent

        init(_ parent: HTTP2Parent) { self.parent = parent }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            if case .goAway(let lastStreamID, _, _) = unwrapInboundIn(data).payload { parent.goAway(lastStreamID: lastStreamID) }
            context.fireChannelRead(data)
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) {
            parent.drain()
        }
    }

    private var http2: [SocketAddress: HTTP2Parent] = [:]
    /// Connects in progress, so that concurrent requests share one connection.
    private var http2Connecting: [SocketAddress: EventLoopFuture<HTTP2Parent>] = [:]

    /// A new stream to `address` (prior-knowledge HTTP/2), on this loop's connection to it, as an
    /// `UpstreamConnection` that speaks HTTP/1-style parts (its handler converts them to frames).
    func openStream(to address: SocketAddress, timeout: TimeAmount) -> EventLoopFuture<UpstreamConnection>.Isolated {
        parent(address, timeout: timeout).flatMap { parent in
            parent.multiplexer.createStreamChannel { stream in
                SluiceServer.completed(stream) {
                    // Named: NIO would format a name for it, "handler0", per stream.
                    try stream.pipeline.syncOperations.addHandler(StreamUpstreamHandler(backend: parent), name: "upstream")
                    parent.streamOpened(stream)
                }
            }
        }
        .assumeIsolated()
        .flatMapThrowing { [unowned(unsafe) self] stream in
            let handler = try stream.pipeline.syncOperations.handler(type: StreamUpstreamHandler.self)
            return UpstreamConnection(channel: stream, handler: handler, endpoint: self.endpoint(address), isStream: true)
        }
    }

    private func parent(_ address: SocketAddress, timeout: TimeAmount) -> EventLoopFuture<HTTP2Parent> {
        if let parent = http2[address], parent.usable {
            return eventLoop.makeSucceededFuture(parent)
        }
        if let pending = http2Connecting[address] { return pending }
        let future = ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connect(to: address)
            .flatMapThrowing { channel -> HTTP2Parent in
                // The backend's blocks are checked as they become responses (`HTTP2StreamParts`).
                var connection = NIOHTTP2Handler.ConnectionConfiguration()
                connection.headerBlockValidation = .disabled
                // Below NIOHTTP2's handler: the error closer (after a GOAWAY for an error, the
                // connection closes) and one flush per tick.
                try channel.pipeline.syncOperations.addHTTP2ConnectionHandlers(prefaceBytes: 24)
                let multiplexer = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                    mode: .client, connectionConfiguration: connection, streamConfiguration: .init()
                ) { $0.eventLoop.makeSucceededVoidFuture() }
                let parent = HTTP2Parent(channel: channel, multiplexer: multiplexer)
                try channel.pipeline.syncOperations.addHandler(GoAwayWatcher(parent), name: "goaway")
                return parent
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

extension UpstreamPool {
    /// One endpoint's idle connections, connects in flight and waiting requests (a class, so
    /// taking and returning one mutates in place). A pool keeps each of its endpoints as long as
    /// it lives.
    final class Endpoint {
        let address: SocketAddress
        var connections: [UpstreamConnection] = []
        var connecting = 0
        /// Connections open (in use or idle), counted from connect to close.
        var open = 0
        /// This loop's share of the backend's `maxConnections`, as last asked for.
        var limit = BackendSpec.defaultMaxConnections
        /// Waiting requests, oldest first from `waitersHead` (a FIFO without shifting the array).
        private var waiters: [WeakWaiter] = []
        private var waitersHead = 0
        init(_ address: SocketAddress) { self.address = address }

        fileprivate func enqueue(_ waiter: ConnectionWaiter) {
            waiters.append(WeakWaiter(waiter))
        }

        /// The first queued waiter that still exists (a request whose client left is dropped).
        fileprivate func nextWaiter() -> ConnectionWaiter? {
            while waitersHead < waiters.count {
                let first = waiters[waitersHead].waiter
                waitersHead += 1
                if waitersHead == waiters.count {
                    waiters.removeAll(keepingCapacity: true)
                    waitersHead = 0
                }
                if let first { return first }
            }
            return nil
        }
    }
}

/// A request waiting for a connection to an endpoint (see `UpstreamPool.wait`).
protocol ConnectionWaiter: AnyObject {
    /// A connection came back to the pool: take it (true), or decline when no longer waiting.
    func takeConnection(_ conn: UpstreamConnection) -> Bool
    /// A connect slot freed: start a connect (true), or decline when no longer waiting.
    func connectSlotFreed() -> Bool
}

private struct WeakWaiter {
    weak var waiter: ConnectionWaiter?
    init(_ waiter: ConnectionWaiter) { self.waiter = waiter }
}
