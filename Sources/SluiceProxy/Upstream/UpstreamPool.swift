import Logging
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
    /// The idle sweep (see the extension on the idle timeout below) and how often it runs.
    fileprivate var idleTimer = SweepTimer()
    fileprivate var idleInterval = TimeAmount.seconds(1)
    /// At most this many idle connections are kept per endpoint; more are closed.
    let maxIdlePerEndpoint: Int
    /// At most this many connects to one endpoint are in progress on this loop, and at most
    /// the backend's share of `maxConnections` are open (in use, idle or connecting); further
    /// requests wait for a connection to come back or a slot to free (see `ConnectionWaiter`).
    let maxConnectingPerEndpoint: Int

    /// For what a backend does wrong that no request's outcome shows (`release`).
    let logger: Logger

    init(eventLoop: EventLoop, spare: SpareBuffer = SpareBuffer(), maxIdlePerEndpoint: Int = 128,
         maxConnectingPerEndpoint: Int = 64, logger: Logger = Logger(label: "sluice")) {
        self.eventLoop = eventLoop
        self.logger = logger
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

    /// Opens a new connection to `address`, an endpoint of `backend`, on this loop.
    func connect(_ address: SocketAddress, of backend: BackendRuntime) -> EventLoopFuture<UpstreamConnection>.Isolated {
        let endpoint = self.endpoint(address)
        endpoint.connecting += 1
        watchIdle(endpoint, timeout: backend.idleTimeout)
        let spare = NIOLoopBound(self.spare, eventLoop: eventLoop)
        let pending = ClientBootstrap(group: eventLoop)
            .connectTimeout(backend.connectTimeout)
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

    /// Returns a connection whose last exchange ended cleanly; it idles until leased again (or,
    /// when bytes came behind its response, is closed: `UpstreamHandler.spoiled`).
    ///
    /// An HTTP/2 stream is single-use: its connection lets it go (`HTTP2BackendConnection.release`:
    /// a stream that carried its exchange to the end is not reset).
    func release(_ conn: UpstreamConnection) {
        conn.handler.delegate = nil
        if let stream = conn.stream {
            stream.connection.release(stream)
            return
        }
        guard conn.channel.isActive else { return }
        if conn.handler.spoiled {
            // The exchange it served succeeded; the bytes after it are the backend's fault
            // (a body longer than its framing said, a response nobody asked for), as nginx
            // warns "upstream sent more data than specified".
            logger.warning("backend sent bytes after the end of a response; connection closed",
                           metadata: ["endpoint": "\(conn.address.endpointText)"])
            conn.channel.close(promise: nil)
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
        conn.idleSince = nil
        endpoint.connections.append(conn)
        if !idleTimer.scheduled { scheduleIdleSweep() }
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
        let connections = http2.values.joined()
        http2.removeAll()
        for connection in connections { connection.channel.close(promise: nil) }
    }

    // MARK: HTTP/2 backends (`protocol: h2`)

    /// HTTP/2 connections per endpoint on this loop (`HTTP2BackendConnection`); each request is
    /// a stream on one of them. A request goes on the first connection with a stream to spare
    /// under the backend's SETTINGS_MAX_CONCURRENT_STREAMS; when every one is full, a new
    /// connection is opened (as Envoy does), up to the loop's share of the backend's
    /// `max_connections`; beyond that, the least busy connection takes it and NIOHTTP2 holds
    /// its HEADERS until a stream ends. A connection that drains (the backend's GOAWAY, a
    /// connection error, its stream IDs used up) takes no new stream, and closes once its last
    /// stream has ended; one with no stream for the backend's `idleTimeout` closes (the sweep below).
    private var http2: [SocketAddress: [HTTP2BackendConnection]] = [:]
    /// Connects in progress, each with the streams promised to it, so that concurrent requests
    /// share a connection (as many as a backend allows before its SETTINGS say otherwise).
    private var http2Connecting: [SocketAddress: [PendingHTTP2Connection]] = [:]

    private final class PendingHTTP2Connection {
        let channel: EventLoopFuture<Channel>
        var promised = 1
        init(_ channel: EventLoopFuture<Channel>) { self.channel = channel }
    }

    /// A new stream to `address` (prior-knowledge HTTP/2), with at most `limit` connections to
    /// it from this loop, as an `UpstreamConnection` that speaks HTTP/1-style parts (its handler
    /// converts them to frames).
    func openStream(to address: SocketAddress, of backend: BackendRuntime, limit: Int) -> EventLoopFuture<UpstreamConnection>.Isolated {
        let connections = http2[address] ?? []
        if let ready = connections.first(where: { $0.usable && $0.hasRoom }) { return stream(on: ready, to: address) }
        let pending = http2Connecting[address] ?? []
        let usable = connections.filter(\.usable)
        let atLimit = usable.count + pending.count >= limit
        let channel: EventLoopFuture<Channel>
        if let joined = pending.first(where: { $0.promised < HTTP2BackendConnection.assumedMaxConcurrentStreams })
            ?? (atLimit && usable.isEmpty ? pending.first : nil) {
            joined.promised += 1
            channel = joined.channel
        } else if atLimit, let busy = usable.min(by: { $0.openStreams < $1.openStreams }) {
            return stream(on: busy, to: address)
        } else {
            watchIdle(endpoint(address), timeout: backend.idleTimeout)
            channel = http2Connect(address, timeout: backend.connectTimeout)
        }
        return channel.assumeIsolated().flatMapThrowing { [unowned(unsafe) self] channel in
            let connection = try channel.pipeline.syncOperations.handler(type: HTTP2BackendConnection.self)
            return UpstreamConnection(stream: connection.makeStream(), endpoint: self.endpoint(address))
        }
    }

    private func stream(on connection: HTTP2BackendConnection, to address: SocketAddress) -> EventLoopFuture<UpstreamConnection>.Isolated {
        let conn = UpstreamConnection(stream: connection.makeStream(), endpoint: endpoint(address))
        return eventLoop.assumeIsolated().makeSucceededFuture(conn).assumeIsolated()
    }

    /// A new connection to `address`, added to the endpoint's connections once it is up.
    private func http2Connect(_ address: SocketAddress, timeout: TimeAmount) -> EventLoopFuture<Channel> {
        let future = ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connect(to: address)
            .flatMapThrowing { channel in
                // The backend's blocks are checked as they become responses, and their bodies
                // against their content-length, by the stream (`HTTP2StreamParts.response`).
                var configuration = NIOHTTP2Handler.ConnectionConfiguration()
                configuration.headerBlockValidation = .disabled
                configuration.contentLengthValidation = .disabled
                // Below NIOHTTP2's handler: the error closer (after a GOAWAY for an error, the
                // connection closes) and one flush per tick.
                let pipeline = channel.pipeline.syncOperations
                try pipeline.addHTTP2ConnectionHandlers(prefaceBytes: 24)
                try pipeline.addHandler(NIOHTTP2Handler(mode: .client, connectionConfiguration: configuration,
                                                        streamConfiguration: .init()), name: "http2")
                try pipeline.addHandler(HTTP2BackendConnection(channel: channel), name: "connection")
                return channel
            }
        let pending = PendingHTTP2Connection(future)
        http2Connecting[address, default: []].append(pending)
        future.assumeIsolated().whenComplete { [unowned(unsafe) self] result in
            self.http2Connecting[address]?.removeAll { $0 === pending }
            if self.http2Connecting[address]?.isEmpty == true { self.http2Connecting[address] = nil }
            guard case .success(let channel) = result,
                  let connection = try? channel.pipeline.syncOperations.handler(type: HTTP2BackendConnection.self) else { return }
            self.http2[address, default: []].append(connection)
            if !self.idleTimer.scheduled { self.scheduleIdleSweep() }
            channel.closeFuture.assumeIsolated().whenComplete { [unowned(unsafe) self] _ in
                self.http2[address]?.removeAll { $0 === connection }
                if self.http2[address]?.isEmpty == true { self.http2[address] = nil }
            }
        }
        return future
    }
}

@available(*, unavailable)
extension UpstreamPool: Sendable {}

// MARK: The idle timeout (`idleTimeout` of a backend)
//
// A connection that has carried no request for its backend's `idleTimeout` is closed: an
// HTTP/1.1 connection idling in the pool, an HTTP/2 connection with no stream. One sweep per
// loop does it, every quarter of the shortest timeout seen (at most a second apart, at least
// 10 ms), and only while the pool holds such connections; a connection's clock starts at the
// first sweep that finds it idle (`idleSince`), so the hot path stores a nil and reads no clock.
// That sweep comes within one interval of the connection's last use, so closing once
// `idleTimeout` less one interval has passed since then closes it after between three quarters
// of the timeout and all of it: never later, which is what matters when it is set below the
// backend's own keep-alive timeout (the backend must not close a connection just as a request
// goes out on it).
extension UpstreamPool {
    /// Connections to `endpoint` close after `timeout` idle (the latest connect's backend sets it).
    fileprivate func watchIdle(_ endpoint: Endpoint, timeout: TimeAmount) {
        endpoint.idleTimeout = timeout
        idleInterval = min(idleInterval, max(.nanoseconds(timeout.nanoseconds / 4), .milliseconds(10)))
    }

    fileprivate func scheduleIdleSweep() {
        idleTimer.schedule(on: eventLoop, in: idleInterval) { [self] in self.sweepIdle() }
    }

    private func sweepIdle() {
        idleTimer.fired()
        let now = NIODeadline.now()
        /// Whether a connection idle since `since` (nil: not yet seen idle) has idled long enough.
        func expired(_ since: inout NIODeadline?, timeout: TimeAmount) -> Bool {
            guard let started = since else {
                since = now
                return false
            }
            return now - started >= timeout - idleInterval
        }
        var expiredHTTP1: [UpstreamConnection] = []
        var stillIdle = false
        for endpoint in endpoints.values where !endpoint.connections.isEmpty {
            let timeout = endpoint.idleTimeout
            endpoint.connections.removeAll { conn in
                guard expired(&conn.idleSince, timeout: timeout) else { return false }
                expiredHTTP1.append(conn)
                return true
            }
            stillIdle = stillIdle || !endpoint.connections.isEmpty
        }
        var expiredHTTP2: [HTTP2BackendConnection] = []
        for (address, connections) in http2 {
            let timeout = endpoint(address).idleTimeout
            for connection in connections {
                guard connection.openStreams == 0, connection.usable else { continue }
                if expired(&connection.idleSince, timeout: timeout) { expiredHTTP2.append(connection) }
            }
        }
        // Closed after the walk: a close may come back here (`forget`, the close future).
        for conn in expiredHTTP1 { conn.channel.close(promise: nil) }
        for connection in expiredHTTP2 { connection.closeIdle() }
        if stillIdle || !http2.isEmpty { scheduleIdleSweep() }
    }
}

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
        /// The `idleTimeout` of the backend whose connect to this endpoint came last.
        var idleTimeout = TimeAmount(BackendSpec.defaultIdleTimeout)
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
