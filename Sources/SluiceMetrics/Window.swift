import Foundation

/// The geometry of the sliding window behind `/status` ("versions figures cover the last
/// minute"): a ring of `sliceCount` slices of `sliceNanos` each, per series and per shard.
///
/// Slice `e` holds the requests recorded with `now` in `[e * sliceNanos, (e + 1) * sliceNanos)`.
/// A query at `now` counts the slice of `now` and the `sliceCount - 1` before it, so a request
/// recorded less than 55 s ago always counts, one recorded 60 s ago or more never does, and one
/// in between counts until its 5 s slice leaves the window.
public enum SlidingWindow {
    public static let sliceCount = 12
    public static let sliceNanos: UInt64 = 5_000_000_000
    /// The span covered by the window: 60 s.
    public static let spanNanos: UInt64 = UInt64(sliceCount) * sliceNanos
    /// Counters per slice: requests, 5xx responses, then one per duration bucket (+Inf last).
    static let stride = 2 + durationBuckets.count + 1
}

/// The ring of time slices of one series (see `SlidingWindow`).
public struct SeriesWindow: Sendable, Equatable {
    /// Per slot: `epoch + 1` of the slice it holds; 0 for a slot never used.
    public private(set) var stamps: [UInt64]
    /// Per slot, `SlidingWindow.stride` counters: requests, 5xx, non-cumulative bucket counts.
    public private(set) var counts: [UInt64]

    public init() {
        stamps = Array(repeating: 0, count: SlidingWindow.sliceCount)
        counts = Array(repeating: 0, count: SlidingWindow.sliceCount * SlidingWindow.stride)
    }

    /// Counts one request in the slice of `now`. No allocation: index arithmetic on the ring,
    /// and a reused slot is cleared in place.
    @inline(__always)
    mutating func record(now: UInt64, isError: Bool, bucket: Int) {
        let epoch = now / SlidingWindow.sliceNanos
        let slot = Int(epoch % UInt64(SlidingWindow.sliceCount))
        let stamp = epoch + 1
        let base = slot * SlidingWindow.stride
        if stamps[slot] != stamp {
            // The slot holds a newer slice than this (a timestamp over a minute late): the
            // request stays in the cumulative figures but is too old for the window.
            if stamps[slot] > stamp { return }
            for i in base..<(base + SlidingWindow.stride) { counts[i] = 0 }
            stamps[slot] = stamp
        }
        counts[base] += 1
        if isError { counts[base + 1] += 1 }
        counts[base + 2 + bucket] += 1
    }

    /// Marks one more error in the slice of `now` (a request already counted by `record`).
    mutating func countError(now: UInt64) {
        let epoch = now / SlidingWindow.sliceNanos
        let slot = Int(epoch % UInt64(SlidingWindow.sliceCount))
        guard stamps[slot] == epoch + 1 else { return }
        counts[slot * SlidingWindow.stride + 1] += 1
    }

    /// Slot by slot: the same slice is added; the older of two different slices is dropped.
    public mutating func merge(_ other: SeriesWindow) {
        for slot in 0..<SlidingWindow.sliceCount where other.stamps[slot] != 0 {
            let base = slot * SlidingWindow.stride
            if other.stamps[slot] == stamps[slot] {
                for i in base..<(base + SlidingWindow.stride) { counts[i] += other.counts[i] }
            } else if other.stamps[slot] > stamps[slot] {
                stamps[slot] = other.stamps[slot]
                for i in base..<(base + SlidingWindow.stride) { counts[i] = other.counts[i] }
            }
        }
    }

    /// The sum of the slices no older than the window as of `now`. Slices newer than `now` (a
    /// loop that recorded after the caller read its clock) count too.
    public func stats(now: UInt64) -> WindowStats {
        let current = now / SlidingWindow.sliceNanos
        var out = WindowStats()
        for slot in 0..<SlidingWindow.sliceCount where stamps[slot] != 0 {
            let epoch = stamps[slot] - 1
            guard epoch + UInt64(SlidingWindow.sliceCount) > current else { continue }
            let base = slot * SlidingWindow.stride
            out.requests += counts[base]
            out.errors += counts[base + 1]
            for b in out.buckets.indices { out.buckets[b] += counts[base + 2 + b] }
        }
        return out
    }

    func detached() -> SeriesWindow {
        var copy = self
        copy.stamps = stamps.map { $0 }
        copy.counts = counts.map { $0 }
        return copy
    }
}

/// One series' figures over the last minute, for `/status` `versions` rows.
public struct WindowStats: Sendable, Equatable {
    public var requests: UInt64 = 0
    /// Responses with a 5xx status (proxy-made 502/503/504 included).
    public var errors: UInt64 = 0
    /// Non-cumulative counts per bucket of `durationBuckets`, plus one for +Inf.
    public var buckets: [UInt64] = Array(repeating: 0, count: durationBuckets.count + 1)
    /// The current in-flight gauge (not windowed).
    public var inflight: Int = 0

    public init() {}

    /// `errors / requests`; 0 without requests.
    public var errorRate: Double { requests == 0 ? 0 : Double(errors) / Double(requests) }
    /// Median duration in seconds, estimated from the buckets; 0 without requests.
    public var p50: Double { quantile(0.5) }
    public var p95: Double { quantile(0.95) }
    public var p99: Double { quantile(0.99) }

    /// The `q` quantile (0...1) in seconds (see `histogramQuantile`); 0 without requests.
    public func quantile(_ q: Double) -> Double {
        histogramQuantile(q, bounds: durationBuckets, counts: buckets) ?? 0
    }
}

/// Estimates the `q` quantile of a histogram the way Prometheus' `histogram_quantile` does:
/// find the bucket holding rank `q * total`, and interpolate linearly between its lower bound
/// (0 for the first bucket) and its upper bound. A rank in the +Inf bucket gives the highest
/// finite bound. `counts` are non-cumulative, one per bound plus +Inf last. Nil when empty.
public func histogramQuantile(_ q: Double, bounds: [Double], counts: [UInt64]) -> Double? {
    precondition(counts.count == bounds.count + 1, "one count per bound plus +Inf")
    let total = counts.reduce(0, +)
    guard total > 0, !bounds.isEmpty, !q.isNaN else { return nil }
    let rank = min(max(q, 0), 1) * Double(total)
    var below: UInt64 = 0
    for (i, n) in counts.enumerated() {
        let cumulative = below + n
        if n > 0, Double(cumulative) >= rank {
            guard i < bounds.count else { return bounds[bounds.count - 1] }
            let lower = i == 0 ? 0 : bounds[i - 1]
            let upper = bounds[i]
            return lower + (upper - lower) * (rank - Double(below)) / Double(n)
        }
        below = cumulative
    }
    return bounds[bounds.count - 1]
}
