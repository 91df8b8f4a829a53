import NIOCore
import Testing
@testable import SluiceProxy

/// `CompactRecvAllocator` must size receive buffers exactly as NIO's adaptive allocator does
/// (the policy is NIO's; only the storage differs), and must fit an existential's inline buffer
/// (its reason to exist).
@Suite struct CompactRecvAllocatorTests {
    @Test func fitsAnExistentialInlineBuffer() {
        #expect(MemoryLayout<CompactRecvAllocator>.size <= 3 * MemoryLayout<Int>.size)
        #expect(MemoryLayout<AdaptiveRecvByteBufferAllocator>.size > 3 * MemoryLayout<Int>.size)
    }

    @Test(arguments: [(64, 512, 65_536), (64, 2048, 65_536), (2, 3, 100), (100, 1000, 5000), (512, 512, 512)])
    func sizesLikeNIOsAdaptiveAllocator(minimum: Int, initial: Int, maximum: Int) {
        var compact = CompactRecvAllocator(minimum: minimum, initial: initial, maximum: maximum)
        var adaptive = AdaptiveRecvByteBufferAllocator(minimum: minimum, initial: initial, maximum: maximum)
        // A fixed sequence of reads: runs of full reads (growth), of tiny reads (shrinking), and
        // mixed ones, so every branch is taken many times.
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func nextRandom() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state >> 33
        }
        for step in 0..<20_000 {
            let size = compact.nextBufferSize() ?? 0
            #expect(size == adaptive.nextBufferSize(), "step \(step)")
            let read: Int
            switch (step / 50) % 3 {
            case 0: read = size                                  // the buffer filled up
            case 1: read = Int(nextRandom() % UInt64(max(1, size / 2 + 1)))  // fits in half
            default: read = Int(nextRandom() % UInt64(2 * max(1, size)))
            }
            let grew = compact.record(actualReadBytes: read)
            #expect(grew == adaptive.record(actualReadBytes: read), "step \(step), read \(read)")
        }
        #expect(compact.nextBufferSize() == adaptive.nextBufferSize())
    }
}
