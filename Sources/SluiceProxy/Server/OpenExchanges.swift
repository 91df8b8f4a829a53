import NIOCore

/// The downstream exchanges open on one event loop: one `DownstreamHandler` per HTTP/1.1
/// connection, and one `HTTP2ClientConnection` per HTTP/2 connection (which counts its streams;
/// a table entry per stream cost ~900 instructions a request).
///
/// One table serves two jobs. A shutdown asks every exchange to finish and then closes what is
/// left (`SluiceServer.shutdown`). And the idle timeout closes an HTTP/1.1 connection that has
/// sent nothing for `server.idleTimeout` while no request is in progress on it, and an HTTP/2
/// connection that has had no stream open for as long (the same timeout bounds how long a
/// client may leave output unread: `HTTP1ServerHandler.isIdle`, `HTTP2ClientConnection`): one sweep per
/// loop (every quarter of the timeout, at most once a second) instead of an `IdleStateHandler`
/// per connection, which was one more pipeline stage for every read and write and held a
/// scheduled task (closure, promise, timer-heap entry) per open connection.
///
/// An entry is the handler itself (16 bytes a slot), not its `Channel` existential (48).
final class OpenExchanges {
    private let eventLoop: EventLoop
    private var exchanges: [ObjectIdentifier: DownstreamHandler] = [:]
    private var http2Connections: [ObjectIdentifier: HTTP2ClientConnection] = [:]
    private var interval = TimeAmount.seconds(1)
    private var timer = SweepTimer()

    init(eventLoop: EventLoop) {
        self.eventLoop = eventLoop
    }

    /// HTTP/1.1 exchanges and HTTP/2 connections open (a shutdown waits for none).
    var count: Int { exchanges.count + http2Connections.count }

    /// Every open HTTP/1.1 exchange (for a shutdown).
    var all: Dictionary<ObjectIdentifier, DownstreamHandler>.Values { exchanges.values }

    func add(_ exchange: DownstreamHandler) {
        exchanges[ObjectIdentifier(exchange)] = exchange
    }

    func remove(_ exchange: DownstreamHandler) {
        exchanges[ObjectIdentifier(exchange)] = nil
    }

    /// Every open HTTP/2 connection (for a shutdown).
    var allHTTP2: Dictionary<ObjectIdentifier, HTTP2ClientConnection>.Values { http2Connections.values }

    func add(_ connection: HTTP2ClientConnection, idleTimeout: TimeAmount) {
        http2Connections[ObjectIdentifier(connection)] = connection
        watchIdle(timeout: idleTimeout)
    }

    func remove(_ connection: HTTP2ClientConnection) {
        http2Connections[ObjectIdentifier(connection)] = nil
    }

    /// A connection with this idle timeout is open: the sweep runs (the shortest
    /// timeout seen sets its pace).
    func watchIdle(timeout: TimeAmount) {
        interval = min(interval, max(.nanoseconds(timeout.nanoseconds / 4), .milliseconds(10)))
        timer.schedule(on: eventLoop, in: interval) { [self] in self.sweep() }
    }

    private func sweep() {
        timer.fired()
        let now = NIODeadline.now()
        var watched = false
        var idle: [HTTP1ServerHandler] = []
        for exchange in exchanges.values {
            guard let connection = exchange.http1 else { continue }
            watched = true
            if connection.isIdle(at: now) { idle.append(connection) }
        }
        for connection in idle { connection.closeIdle() }
        // A copy: a connection closed here leaves the table.
        for connection in Array(http2Connections.values) { connection.checkTimeouts(at: now) }
        if watched || !http2Connections.isEmpty { timer.schedule(on: eventLoop, in: interval) { [self] in self.sweep() } }
    }
}

@available(*, unavailable)
extension OpenExchanges: Sendable {}
