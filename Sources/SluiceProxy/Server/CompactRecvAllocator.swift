import NIOCore

/// How big the next receive buffer of a connection is: NIO's `AdaptiveRecvByteBufferAllocator`
/// policy (powers of two; double after a read that filled the buffer, halve after two reads in
/// a row that fit in half), with its state in 13 bytes instead of 33.
///
/// Why: a channel keeps its allocator as an existential, and a value over three words lives in
/// a heap box; the first `record` on each connection copies the shared box, so every
/// connection held one more allocation (~64 B with malloc's header; 0.6 MiB at 10,000 idle
/// connections, benchmark scenario 5). This one fits the existential's inline buffer.
struct CompactRecvAllocator: RecvByteBufferAllocator {
    private let minimum: UInt32
    private let maximum: UInt32
    private var next: UInt32
    private var decreaseNow = false

    /// `minimum` and `initial` round down, `maximum` up, to powers of two (as NIO's does).
    init(minimum: Int, initial: Int, maximum: Int) {
        precondition(0 < minimum && minimum <= initial && initial <= maximum && maximum <= 1 << 30)
        func floorPowerOf2(_ n: Int) -> UInt32 { UInt32(1) << UInt32(Int.bitWidth - 1 - n.leadingZeroBitCount) }
        self.minimum = floorPowerOf2(minimum)
        self.next = floorPowerOf2(initial)
        let floorMaximum = floorPowerOf2(maximum)
        self.maximum = Int(floorMaximum) == maximum ? floorMaximum : floorMaximum << 1
    }

    func nextBufferSize() -> Int? { Int(next) }

    func buffer(allocator: ByteBufferAllocator) -> ByteBuffer {
        allocator.buffer(capacity: Int(next))
    }

    mutating func record(actualReadBytes: Int) -> Bool {
        let half = next >> 1
        if actualReadBytes <= Int(half) && half >= minimum {
            if decreaseNow { next = half }
            decreaseNow.toggle()
            return false
        }
        decreaseNow = false
        guard actualReadBytes >= Int(next), next << 1 <= maximum else { return false }
        next <<= 1
        return true
    }
}
