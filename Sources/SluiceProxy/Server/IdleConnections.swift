import NIOCore

/// The HTTP/1.1 client connections of one event loop, closed when they sit idle.
///
/// A connection is idle when it has sent nothing for `server.idleTimeout` and no request is in
/// progress on it. One sweep per loop (every quarter of the timeout, at most once a second)
/// replaces an `IdleStateHandler` per connection: that handler was one more pipeline stage
/// for every read and write, and held a scheduled task (closure, promise, timer-heap entry)
/// per open connection — a tenth of the memory an idle connection cost.
final class IdleConnections {
    private let eventLoop: EventLoop
    private var connections: [ObjectIdentifier: HTTP1ServerHandler] = [:]
    private var interval = TimeAmount.seconds(1)
    private var timer = SweepTimer()

    init(eventLoop: EventLoop) {
        self.eventLoop = eventLoop
    }

    func add(_ connection: HTTP1ServerHandler, timeout: TimeAmount) {
        connections[ObjectIdentifier(connection)] = connection
        interval = min(interval, max(.nanoseconds(timeout.nanoseconds / 4), .milliseconds(10)))
        timer.schedule(on: eventLoop, in: interval) { [self] in self.sweep() }
    }

    func remove(_ connection: HTTP1ServerHandler) {
        connections[ObjectIdentifier(connection)] = nil
    }

    private func sweep() {
        timer.fired()
        let now = NIODeadline.now()
        var idle: [HTTP1ServerHandler] = []
        for connection in connections.values where connection.isIdle(at: now) {
            idle.append(connection)
        }
        for connection in idle { connection.closeIdle() }
        if !connections.isEmpty { timer.schedule(on: eventLoop, in: interval) { [self] in self.sweep() } }
    }
}

@available(*, unavailable)
extension IdleConnections: Sendable {}
