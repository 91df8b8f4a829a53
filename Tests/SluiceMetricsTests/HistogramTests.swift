import Testing
import SluiceMetrics

@Suite struct HistogramTests {
    @Test func bucketsAreExactlyTheSpecList() {
        #expect(durationBuckets == [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10])
    }

    @Test func valueEqualToABoundGoesInThatBucket() {
        for (i, bound) in durationBuckets.enumerated() {
            #expect(durationBucketIndex(bound) == i, "le=\(bound)")
            #expect(durationBucketIndex(bound.nextUp) == i + 1, "just above \(bound)")
            #expect(durationBucketIndex(bound.nextDown) == i, "just below \(bound)")
        }
    }

    @Test func zeroNegativeNaNAndInfinity() {
        #expect(durationBucketIndex(0) == 0)
        #expect(durationBucketIndex(-1) == 0)
        #expect(durationBucketIndex(.nan) == 0)
        #expect(durationBucketIndex(10.000001) == durationBuckets.count)
        #expect(durationBucketIndex(.infinity) == durationBuckets.count)
    }

    @Test func shardRecordsBucketSumAndCount() {
        let shard = StatShard()
        for d in [0.0005, 0.0005, 0.001, 10, 11, 3600] {
            shard.recordRequest(series: 0, code: 200, seconds: d, now: 0)
        }
        let s = shard.copy().series[0]
        #expect(s.buckets[0] == 2)
        #expect(s.buckets[1] == 1)
        #expect(s.buckets[13] == 1)
        #expect(s.buckets[14] == 2)
        #expect(s.count == 6)
        #expect(s.buckets.reduce(0, +) == s.count)
        #expect(abs(s.durationSum - 3621.002) < 1e-9)
    }

    @Test func emptyHistogramHasNoQuantile() {
        #expect(histogramQuantile(0.5, bounds: durationBuckets, counts: bucketCounts([])) == nil)
        #expect(WindowStats().p99 == 0)
        #expect(WindowStats().errorRate == 0)
    }

    @Test func quantileInterpolatesWithinOneBucket() throws {
        let counts = bucketCounts(Array(repeating: 0.02, count: 100)) // all in (0.01, 0.025]
        let p50 = try #require(histogramQuantile(0.5, bounds: durationBuckets, counts: counts))
        let p99 = try #require(histogramQuantile(0.99, bounds: durationBuckets, counts: counts))
        #expect(abs(p50 - 0.0175) < 1e-12)
        #expect(abs(p99 - 0.02485) < 1e-12)
    }

    @Test func firstBucketInterpolatesFromZero() throws {
        let counts = bucketCounts(Array(repeating: 0.0001, count: 10))
        let p50 = try #require(histogramQuantile(0.5, bounds: durationBuckets, counts: counts))
        #expect(abs(p50 - 0.00025) < 1e-12)
    }

    @Test func infBucketGivesTheHighestFiniteBound() {
        let counts = bucketCounts(Array(repeating: 30, count: 5))
        #expect(histogramQuantile(0.5, bounds: durationBuckets, counts: counts) == 10)
        #expect(histogramQuantile(0.99, bounds: durationBuckets, counts: counts) == 10)
        // p50 among the finite values, p99 in +Inf.
        let mixed = bucketCounts(Array(repeating: 0.3, count: 98) + [30, 30])
        #expect(histogramQuantile(0.99, bounds: durationBuckets, counts: mixed) == 10)
    }

    @Test func uniformDistribution() throws {
        // 1000 values 0.001, 0.002, ..., 1.000: uniform on (0, 1].
        let values = (1...1000).map { Double($0) / 1000 }
        let counts = bucketCounts(values)
        let p50 = try #require(histogramQuantile(0.5, bounds: durationBuckets, counts: counts))
        let p95 = try #require(histogramQuantile(0.95, bounds: durationBuckets, counts: counts))
        let p99 = try #require(histogramQuantile(0.99, bounds: durationBuckets, counts: counts))
        #expect(abs(p50 - 0.5) < 1e-9)
        #expect(abs(p95 - 0.95) < 1e-9)
        #expect(abs(p99 - 0.99) < 1e-9)
    }

    @Test func bimodalDistribution() throws {
        // 50 fast (<= 0.5 ms), 50 slow in (0.1, 0.25].
        let counts = bucketCounts(Array(repeating: 0.0004, count: 50) + Array(repeating: 0.2, count: 50))
        let p50 = try #require(histogramQuantile(0.5, bounds: durationBuckets, counts: counts))
        let p99 = try #require(histogramQuantile(0.99, bounds: durationBuckets, counts: counts))
        #expect(abs(p50 - 0.0005) < 1e-12)  // rank 50 is the top of the first bucket
        #expect(abs(p99 - 0.247) < 1e-12)   // 0.1 + 0.15 * 49/50
    }

    @Test func quantileEdges() {
        let counts = bucketCounts([0.003, 0.004])  // both in (0.0025, 0.005]
        #expect(histogramQuantile(0, bounds: durationBuckets, counts: counts) == 0.0025)
        #expect(histogramQuantile(1, bounds: durationBuckets, counts: counts) == 0.005)
        #expect(histogramQuantile(.nan, bounds: durationBuckets, counts: counts) == nil)
    }
}
