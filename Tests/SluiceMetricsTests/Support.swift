import SluiceMetrics

/// Monotonic nanoseconds for an injected clock.
func at(_ seconds: Double) -> UInt64 { UInt64((seconds * 1_000_000_000).rounded()) }

/// Non-cumulative bucket counts for `durations`.
func bucketCounts(_ durations: [Double]) -> [UInt64] {
    var counts = [UInt64](repeating: 0, count: durationBuckets.count + 1)
    for d in durations { counts[durationBucketIndex(d)] += 1 }
    return counts
}
