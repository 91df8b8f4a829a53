import Testing
@testable import SluiceProxy

/// `Immortal`: what marking an object means, checked on this toolchain's runtime — if a future
/// runtime made the mark a no-op, the proxy would lose its speed-up silently; this says so.
@Suite struct ImmortalTests {
    final class Probe {
        let onDeinit: () -> Void
        init(onDeinit: @escaping () -> Void) { self.onDeinit = onDeinit }
        deinit { onDeinit() }
    }

    final class Flag { var raised = false }

    @Test func aMarkedObjectOutlivesItsLastReferenceAndAnUnmarkedOneDoesNot() {
        let freed = Flag(), freedMarked = Flag()
        weak var plain: Probe?
        weak var marked: Probe?
        do {
            let a = Probe { freed.raised = true }
            let b = Probe { freedMarked.raised = true }
            Immortal.mark(b)
            plain = a
            marked = b
        }
        #expect(freed.raised && plain == nil, "an ordinary object goes with its last reference")
        #expect(!freedMarked.raised && marked != nil, "a marked object is never freed")
    }
}
