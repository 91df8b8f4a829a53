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
    private var sweepScheduled = false

    init(eventLoop: EventLoop) {
        self.eventLoop = eventLoop
    }

    func add(_ connection: HTTP1ServerHandler, timeout: TimeAmount) {
        connections[ObjectIdentifier(connection)] = connection
        interval = min(interval, max(.nanoseconds(timeout.nanoseconds / 4), .milliseconds(10)))
        scheduleSweep()
    }

    func remove(_ connection: HTTP1ServerHandler) {
        connections[ObjectIdentifier(connection)] = nil
    }

    private func scheduleSweep() {
        guard !sweepScheduled else { return }
        sweepScheduled = true
        eventLoop.assumeIsolated().scheduleTask(in: interval) { [self] in
            self.sweep()
        }
    }

    private func sweep() {
        sweepScheduled = false
        let now = NIODeadline.now()
        var idle: [HTTP1ServerHandler] = []
        for connection in connections.values where connection.isIdle(at: now) {
            idle.append(connection)
        }
        for connection in idle { connection.closeIdle() }
        if !connections.isEmpty { scheduleSweep() }
    }
}

@available(*, unavailable)
extension IdleConnections: Sendable {}
