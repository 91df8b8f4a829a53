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
    ///
    /// The owner is held by a count taken at `arm` and given back when the entry is dropped
    /// (`Unmanaged`), and read without counting while the entry holds it
    /// (`_withUnsafeGuaranteedRef`, `Unmanaged`'s own way to do that): an entry holding a strong
    /// reference was copied out at each look, two more retains and releases per request. Every
    /// entry leaves the array once, in `sweep`, and gives its count back there.
    private struct Entry {
        let deadline: NIODeadline
        let request: ObjectIdentifier
        let owner: Unmanaged<DownstreamHandler>

        /// Whether the owner's current request is the one this entry was armed for, still armed
        /// (the owner read without counting: the entry holds its count).
        var isArmed: Bool {
            owner._withUnsafeGuaranteedRef { owner in
                guard let current = owner.request else { return false }
                return ObjectIdentifier(current) == request && current.deadline == deadline
            }
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
        entries.append(Entry(deadline: deadline, request: ObjectIdentifier(request), owner: .passRetained(owner)))
        timer.schedule(on: eventLoop, in: Self.resolution) { [self] in self.sweep() }
    }

    private func sweep() {
        timer.fired()
        let now = NIODeadline.now()
        var due: [(DownstreamHandler.RequestState, Unmanaged<DownstreamHandler>)] = []
        var kept = 0
        for index in entries.indices {
            let entry = entries[index]
            // Disarmed, re-armed, or the request is over: dropped (and its count given back);
            // passed: dropped, its owner told below (the count is given back after that).
            if !entry.isArmed {
                entry.owner.release()
            } else if entry.deadline <= now {
                due.append((entry.owner._withUnsafeGuaranteedRef { $0.request! }, entry.owner))
            } else {
                entries[kept] = entry
                kept += 1
            }
        }
        entries.removeLast(entries.count - kept)
        if !entries.isEmpty { timer.schedule(on: eventLoop, in: Self.resolution) { [self] in self.sweep() } }
        for (request, owner) in due {
            request.deadline = nil
            owner.takeRetainedValue().deadlinePassed()
        }
    }
}

@available(*, unavailable)
extension ResponseDeadlines: Sendable {}

/// The one-shot task of a per-loop sweep: scheduled when the sweep has work and none is pending
/// (nothing runs on an idle loop), re-armed by the sweep while work remains.
struct SweepTimer {
    private(set) var scheduled = false

    mutating func schedule(on loop: EventLoop, in delay: TimeAmount, _ sweep: @escaping () -> Void) {
        guard !scheduled else { return }
        scheduled = true
        loop.assumeIsolated().scheduleTask(in: delay, sweep)
    }

    /// The task ran (call first thing in the sweep).
    mutating func fired() { scheduled = false }
}
