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

    private struct Entry {
        let deadline: NIODeadline
        let request: DownstreamHandler.RequestState
        let owner: DownstreamHandler
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
        entries.append(Entry(deadline: deadline, request: request, owner: owner))
        timer.schedule(on: eventLoop, in: Self.resolution) { [self] in self.sweep() }
    }

    private func sweep() {
        timer.fired()
        let now = NIODeadline.now()
        var due: [Entry] = []
        entries.removeAll { entry in
            guard entry.request.deadline == entry.deadline, entry.owner.request === entry.request else {
                return true // disarmed, re-armed, or the request is over
            }
            if entry.deadline <= now {
                due.append(entry)
                return true
            }
            return false
        }
        if !entries.isEmpty { timer.schedule(on: eventLoop, in: Self.resolution) { [self] in self.sweep() } }
        for entry in due {
            entry.request.deadline = nil
            entry.owner.deadlinePassed()
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
