import NIOCore

/// The deadlines of one event loop's requests, checked by one sweep: the response timeout, and
/// the connect timeout of a request waiting in the pool for a connection.
///
/// A response timeout is armed when a request goes upstream and disarmed when the response
/// head arrives — on every request, and almost never fires. A scheduled task per request cost
/// about 6,000 instructions (task, closure and promise allocation, heap insertion, the cancel
/// and its callbacks); here arming is an array append and disarming clears a field. One task
/// sweeps every `resolution` while anything is armed (nothing is scheduled on an idle loop),
/// so a deadline fires at most `resolution` late.
final class ResponseDeadlines {
    static let resolution = TimeAmount.milliseconds(10)

    /// The request is named, not held: a finished request (and with it its head, which holds
    /// the client connection's receive buffer) is freed at once rather than at the next sweep,
    /// so the buffer is unique again, and reused, by the next read. An entry counts only while
    /// its owner's current request is that object with that same deadline: an address reused
    /// by a later request cannot carry the same armed deadline, and if it did, that deadline
    /// has passed all the same.
    private struct Entry {
        let deadline: NIODeadline
        let request: ObjectIdentifier
        let owner: DownstreamHandler

        /// The request this entry was armed for, when it is still in progress and armed.
        var armedRequest: DownstreamHandler.RequestState? {
            guard let current = owner.request, ObjectIdentifier(current) == request,
                  current.deadline == deadline else { return nil }
            return current
        }
    }

    private let eventLoop: EventLoop
    private var entries: [Entry] = []
    private var timer = SweepTimer()

    init(eventLoop: EventLoop) {
        self.eventLoop = eventLoop
    }

    /// Arms `request`'s response deadline; `owner.deadlinePassed()` runs when it passes while
    /// still armed (`request.deadline` unchanged) and `request` is still the owner's.
    func arm(_ request: DownstreamHandler.RequestState, owner: DownstreamHandler, in timeout: TimeAmount) {
        let deadline = NIODeadline.now() + timeout
        request.deadline = deadline
        entries.append(Entry(deadline: deadline, request: ObjectIdentifier(request), owner: owner))
        timer.schedule(on: eventLoop, in: Self.resolution) { [self] in self.sweep() }
    }

    private func sweep() {
        timer.fired()
        let now = NIODeadline.now()
        var due: [(DownstreamHandler.RequestState, DownstreamHandler)] = []
        entries.removeAll { entry in
            guard let request = entry.armedRequest else {
                return true // disarmed, re-armed, or the request is over
            }
            if entry.deadline <= now {
                due.append((request, entry.owner))
                return true
            }
            return false
        }
        if !entries.isEmpty { timer.schedule(on: eventLoop, in: Self.resolution) { [self] in self.sweep() } }
        for (request, owner) in due {
            request.deadline = nil
            owner.deadlinePassed()
        }
    }
}

@available(*, unavailable)
extension ResponseDeadlines: Sendable {}

/// The one-shot task of a per-loop sweep: scheduled when the sweep has work and none is pending
/// (nothing runs on an idle loop), re-armed by the sweep while work remains.
struct SweepTimer {
    private var scheduled = false

    mutating func schedule(on loop: EventLoop, in delay: TimeAmount, _ sweep: @escaping () -> Void) {
        guard !scheduled else { return }
        scheduled = true
        loop.assumeIsolated().scheduleTask(in: delay, sweep)
    }

    /// The task ran (call first thing in the sweep).
    mutating func fired() { scheduled = false }
}
