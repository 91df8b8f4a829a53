import Testing
@testable import SluiceRouting

@Suite("Weighted split")
struct SplitTests {
    @Test func drawHelperProducesTheRequestedDraw() {
        for total in [1, 2, 3, 7, 100, 10_000, 1_000_003] {
            for draw in Set([0, 1, total / 2, total - 2, total - 1]) where draw >= 0 && draw < total {
                var random = FixedRandom([FixedRandom.drawing(draw, of: total)])
                #expect(Int.random(in: 0..<total, using: &random) == draw)
            }
        }
    }

    @Test func layoutPrecomputesCumulativeWeights() {
        let split = Split(backends: [v1, v2, v3], weights: [5, 0, 15])
        #expect(split.total == 20)
        #expect(split.layout.cumulative == [5, 5, 20])
        #expect(split.layout.bucketEnds == [2500, 2500, 10_000])
        var changed = split
        changed.weights = [1, 1, 2]
        #expect(changed.total == 4)
        #expect(changed.layout.bucketEnds == [2500, 5000, 10_000])
    }

    /// For every backend with weight w and cumulative end c: draw c-1 is its own, draw c the next's.
    @Test(arguments: [[95, 5], [1, 1], [0, 10], [10, 0], [3, 0, 7], [1, 2, 3, 4], [0, 0, 1], [50, 0, 0, 50], [1]])
    func everyDrawBoundary(weights: [Int]) {
        let backends = weights.indices.map(BackendID.init)
        let split = Split(backends: backends, weights: weights)
        var lower = 0
        for (index, weight) in weights.enumerated() {
            let upper = lower + weight
            if weight > 0 {
                #expect(split.pick(draw: lower) == backends[index])
                #expect(split.pick(draw: upper - 1) == backends[index])
            }
            if upper < split.total {
                #expect(split.pick(draw: upper) != backends[index], "draw \(upper) is past backend \(index)")
            }
            lower = upper
        }
        for draw in 0..<split.total {
            #expect(weights[split.pick(draw: draw).index] > 0, "a 0-weight backend is never chosen")
        }
    }

    @Test func decideDrawsOncePerRequestThroughTheGenerator() {
        let t = table(Route(name: "checkout", target: .split(Split(backends: [v1, v2], weights: [95, 5]))))
        #expect(t.decide(facts(), drawing: [FixedRandom.drawing(0, of: 100)])?.backend == v1)
        #expect(t.decide(facts(), drawing: [FixedRandom.drawing(94, of: 100)])?.backend == v1)
        #expect(t.decide(facts(), drawing: [FixedRandom.drawing(95, of: 100)])?.backend == v2)
        #expect(t.decide(facts(), drawing: [FixedRandom.drawing(99, of: 100)])?.backend == v2)
    }

    @Test func zeroWeightBackendIsNeverChosenByManyDraws() {
        let t = table(Route(name: "r", target: .split(Split(backends: [v1, v2, v3], weights: [1, 0, 1]))))
        var random = SplitMix64(seed: 7)
        for _ in 0..<5_000 {
            #expect(t.decide(facts(), random: &random)?.backend != v2)
        }
    }

    /// 10,000 independent draws at 10%: the count is Binomial(10000, 0.1), mean 1000,
    /// variance npq = 900. Bernstein: P(|X - np| >= t) <= 2 exp(-t² / (2 (npq + t/3))); with
    /// t = 170: 28900 / (2 (900 + 56.7)) = 15.10, 2 e^-15.10 = 5.5e-7 < 1e-6. (The seed is fixed,
    /// so this either always passes or always fails; the bound is what a correct draw allows.)
    @Test func randomDrawsFollowTheWeights() {
        let t = table(Route(name: "r", target: .split(Split(backends: [v1, v2], weights: [90, 10]))))
        var random = SplitMix64(seed: 42)
        var canary = 0
        for _ in 0..<10_000 where t.decide(facts(), random: &random)?.backend == v2 {
            canary += 1
        }
        #expect(abs(canary - 1000) < 170, "canary got \(canary) of 10000")
    }

    @Test func bucketLayoutBoundaries() {
        // 1:2 over 10000 buckets: floor(10000/3) = 3333, so v1 owns [0, 3333) and v2 [3333, 10000).
        let thirds = Split(backends: [v1, v2], weights: [1, 2])
        #expect(thirds.backend(forBucket: 0) == v1)
        #expect(thirds.backend(forBucket: 3332) == v1)
        #expect(thirds.backend(forBucket: 3333) == v2)
        #expect(thirds.backend(forBucket: 9999) == v2)

        // 95/5: v1 [0, 9500), v2 [9500, 10000).
        let canary = Split(backends: [v1, v2], weights: [95, 5])
        #expect(canary.backend(forBucket: 9499) == v1)
        #expect(canary.backend(forBucket: 9500) == v2)

        // 1/0/1/1: ends floor(10000/3)=3333, 3333, floor(20000/3)=6666, 10000.
        let gaps = Split(backends: [v1, v2, v3, shadow], weights: [1, 0, 1, 1])
        #expect(gaps.backend(forBucket: 3332) == v1)
        #expect(gaps.backend(forBucket: 3333) == v3)
        #expect(gaps.backend(forBucket: 6665) == v3)
        #expect(gaps.backend(forBucket: 6666) == shadow)
        #expect(gaps.backend(forBucket: 9999) == shadow)
        for bucket in 0..<StickyHash.bucketCount {
            #expect(gaps.backend(forBucket: bucket) != v2)
        }

        // A 0-weight LAST backend owns nothing either.
        let lastZero = Split(backends: [v1, v2], weights: [7, 0])
        #expect(lastZero.backend(forBucket: 9999) == v1)
        #expect(lastZero.pick(draw: 6) == v1)

        // Out-of-range buckets are clamped.
        #expect(canary.backend(forBucket: -5) == v1)
        #expect(canary.backend(forBucket: 10_000) == v2)
    }

    @Test func bucketLayoutIsExactForHugeWeights() {
        let huge = Split(backends: [v1, v2], weights: [Int.max / 2, Int.max / 2])
        #expect(huge.layout.bucketEnds == [5000, 10_000])
        #expect(huge.backend(forBucket: 4999) == v1)
        #expect(huge.backend(forBucket: 5000) == v2)
    }

    @Test func bucketOwnershipMatchesTheWeightsExactly() {
        let split = Split(backends: [v1, v2, v3], weights: [3, 5, 2])
        var owned = [0, 0, 0]
        for bucket in 0..<StickyHash.bucketCount { owned[split.backend(forBucket: bucket).index] += 1 }
        #expect(owned == [3000, 5000, 2000])
    }
}
