extension Split {
    /// A split's weights as ranges, computed once when the weights are set.
    struct Layout: Sendable, Equatable {
        /// The sum of the weights: a random draw is taken in `0..<total`.
        var total: Int
        /// `cumulative[i]` = weights[0] + ... + weights[i]: backend i owns the draws
        /// `cumulative[i-1] ..< cumulative[i]`.
        var cumulative: [Int]
        /// `bucketEnds[i]` = floor(10000 * cumulative[i] / total): backend i owns the sticky
        /// buckets `bucketEnds[i-1] ..< bucketEnds[i]`.
        var bucketEnds: [Int]

        /// Defensive where the config and `settingWeights` already validate: a negative weight
        /// counts as 0, a sum that would overflow saturates, and weights or backends beyond the
        /// shorter of the two lists are ignored.
        init(backends: [BackendID], weights: [Int]) {
            let count = min(backends.count, weights.count)
            var running = 0
            var cumulative: [Int] = []
            cumulative.reserveCapacity(count)
            for index in 0..<count {
                let (sum, overflow) = running.addingReportingOverflow(max(0, weights[index]))
                running = overflow ? Int.max : sum
                cumulative.append(running)
            }
            let total = running
            self.total = total
            self.cumulative = cumulative
            self.bucketEnds = cumulative.map { total > 0 ? Layout.bucketEnd(cumulative: $0, total: total) : 0 }
        }

        /// floor(10000 * cumulative / total), exact for any `Int` weights (0 <= cumulative <= total).
        private static func bucketEnd(cumulative: Int, total: Int) -> Int {
            let product = UInt(cumulative).multipliedFullWidth(by: UInt(StickyHash.bucketCount))
            return Int(UInt(total).dividingFullWidth(product).quotient)
        }
    }

    /// The sum of the weights: a random draw is taken in `0..<total`.
    public var total: Int { layout.total }

    /// The backend whose draw range holds `draw` (0 <= draw < `total`): backend i owns
    /// `cumulative[i-1] ..< cumulative[i]`, so a 0-weight backend owns nothing.
    func pick(draw: Int) -> BackendID {
        for index in layout.cumulative.indices where draw < layout.cumulative[index] {
            return backends[index]
        }
        return lastWeighted
    }

    /// One uniform draw in `0..<total` (`Int.random(in:using:)`: no modulo bias) and its backend.
    /// A split whose weights sum to 0 (never built by the config) answers its first backend
    /// without drawing.
    func pick<R: RandomNumberGenerator>(random: inout R) -> BackendID {
        guard total > 0 else { return backends[0] }
        return pick(draw: Int.random(in: 0..<total, using: &random))
    }

    /// The backend owning sticky `bucket` (0..<10000).
    ///
    /// The 10,000 buckets are laid out over the backends in their listed order: backend i owns
    /// `[floor(10000 * cum(i-1) / total), floor(10000 * cum(i) / total))`, where cum(i) is the sum
    /// of the weights of backends 0...i. A 0-weight backend owns no bucket. Because only the
    /// boundaries move when weights change, raising the LAST backend's weight in a two-version
    /// split only moves buckets into it, and lowering it only moves buckets out — so a canary
    /// ramp never bounces a user between versions. A bucket outside 0..<10000 is clamped.
    public func backend(forBucket bucket: Int) -> BackendID {
        let bucket = min(max(bucket, 0), StickyHash.bucketCount - 1)
        for index in layout.bucketEnds.indices where bucket < layout.bucketEnds[index] {
            return backends[index]
        }
        return lastWeighted
    }

    /// The last backend with a positive weight (or the first backend when none has one).
    private var lastWeighted: BackendID {
        for index in layout.cumulative.indices.reversed()
        where index == 0 || layout.cumulative[index] > layout.cumulative[index - 1] {
            return backends[index]
        }
        return backends[0]
    }
}
