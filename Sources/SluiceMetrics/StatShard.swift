/// Fixed histogram bucket bounds (seconds) of `sluice_request_duration_seconds`.
public let durationBuckets: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/// `reason` label values of `sluice_upstream_errors_total`, indexed by `UpstreamErrorReason`.
public enum UpstreamErrorReason: Int, CaseIterable, Sendable {
    case connect, timeout, reset, `protocol`
    public var label: String {
        switch self {
        case .connect: "connect"
        case .timeout: "timeout"
        case .reset: "reset"
        case .protocol: "protocol"
        }
    }
}

/// `result` label values of `sluice_mirror_requests_total`.
public enum MirrorResult: Int, CaseIterable, Sendable {
    case sent, completed, failed, dropped
    public var label: String {
        switch self {
        case .sent: "sent"
        case .completed: "completed"
        case .failed: "failed"
        case .dropped: "dropped"
        }
    }
}

/// The figures of one series.
public struct SeriesStats: Sendable, Equatable {
    /// Requests per status code.
    public var codes: [Int: UInt64] = [:]
    /// Non-cumulative counts per bucket of `durationBuckets`, plus one for +Inf.
    public var buckets: [UInt64] = Array(repeating: 0, count: durationBuckets.count + 1)
    public var durationSum: Double = 0
    public var count: UInt64 = 0
    public var upstreamErrors: [UInt64] = Array(repeating: 0, count: UpstreamErrorReason.allCases.count)
    public var mirror: [UInt64] = Array(repeating: 0, count: MirrorResult.allCases.count)
    public var inflight: Int = 0

    public init() {}

    public mutating func merge(_ other: SeriesStats) {
        codes.merge(other.codes, uniquingKeysWith: +)
        for i in buckets.indices { buckets[i] += other.buckets[i] }
        durationSum += other.durationSum
        count += other.count
        for i in upstreamErrors.indices { upstreamErrors[i] += other.upstreamErrors[i] }
        for i in mirror.indices { mirror[i] += other.mirror[i] }
        inflight += other.inflight
    }
}

/// The statistics one event loop records. Confined to that loop: recording takes no lock and
/// touches no atomic; a scrape asks each loop for a copy and merges them (`StatsView`).
public final class StatShard {
    public private(set) var series: [SeriesStats] = []
    public private(set) var unrouted: UInt64 = 0

    public init() {}

    @inline(__always)
    private func ensure(_ id: Int) {
        if id >= series.count {
            series.append(contentsOf: repeatElement(SeriesStats(), count: id + 1 - series.count))
        }
    }

    /// The single place a finished request is counted: status, duration, histogram.
    public func recordRequest(series id: Int, code: Int, seconds: Double) {
        ensure(id)
        series[id].codes[code, default: 0] += 1
        var bucket = durationBuckets.count
        for (i, bound) in durationBuckets.enumerated() where seconds <= bound {
            bucket = i
            break
        }
        series[id].buckets[bucket] += 1
        series[id].durationSum += seconds
        series[id].count += 1
    }

    public func recordUpstreamError(series id: Int, reason: UpstreamErrorReason) {
        ensure(id)
        series[id].upstreamErrors[reason.rawValue] += 1
    }

    public func recordMirror(series id: Int, result: MirrorResult) {
        ensure(id)
        series[id].mirror[result.rawValue] += 1
    }

    public func adjustInflight(series id: Int, by delta: Int) {
        ensure(id)
        series[id].inflight += delta
    }

    public func recordUnrouted() { unrouted += 1 }

    /// A copy of this shard's figures, taken on its own loop.
    public func copy() -> ShardCopy { ShardCopy(series: series, unrouted: unrouted) }
}

/// A value copy of one shard, safe to hand to another thread.
public struct ShardCopy: Sendable {
    public var series: [SeriesStats]
    public var unrouted: UInt64

    public init(series: [SeriesStats] = [], unrouted: UInt64 = 0) {
        self.series = series
        self.unrouted = unrouted
    }

    /// Sums shards series by series.
    public static func merged(_ shards: [ShardCopy]) -> ShardCopy {
        var out = ShardCopy()
        for shard in shards {
            out.unrouted += shard.unrouted
            for (id, stats) in shard.series.enumerated() {
                if id >= out.series.count {
                    out.series.append(contentsOf: repeatElement(SeriesStats(), count: id + 1 - out.series.count))
                }
                out.series[id].merge(stats)
            }
        }
        return out
    }
}
