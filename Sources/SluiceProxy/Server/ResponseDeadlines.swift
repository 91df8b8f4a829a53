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
    private var sweepScheduled = false

    init(eventLoop: EventLoop) {
        self.eventLoop = eventLoop
    }

    /// Arms `request`'s response deadline; `owner.deadlinePassed()` runs when it passes while
    /// still armed (`request.deadline` unchanged) and `request` is still the owner's.
    func arm(_ request: DownstreamHandler.RequestState, owner: DownstreamHandler, in timeout: TimeAmount) {
        let deadline = NIODeadline.now() + timeout
        request.deadline = deadline
        entries.append(Entry(deadline: deadline, request: request, owner: owner))
        scheduleSweep()
    }

    private func scheduleSweep() {
        guard !sweepScheduled else { return }
        sweepScheduled = true
        eventLoop.assumeIsolated().scheduleTask(in: Self.resolution) { [self] in
            self.sweep()
        }
    }

    private func sweep() {
        sweepScheduled = false
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
        if !entries.isEmpty { scheduleSweep() }
        for entry in due {
            entry.request.deadline = nil
            entry.owner.deadlinePassed()
        }
    }
}

@available(*, unavailable)
extension ResponseDeadlines: Sendable {}
