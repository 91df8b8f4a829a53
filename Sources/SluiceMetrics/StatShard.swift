import Foundation

// MARK: - Design
//
// Why shards. Every event loop owns one `StatShard` and is the only thread that ever touches
// it, so recording a request is a handful of plain integer increments: no lock, no atomic, no
// cache line bouncing between cores. All storage is preallocated per series the first time a
// loop sees that series (or up front with `prepare(seriesCount:)`); after that the request
// path never allocates. The sliding window is a fixed ring of `SlidingWindow.sliceCount` slots
// per series; the slot for a timestamp is found by index arithmetic and is cleared in place
// when it is reused for a newer slice.
//
// How merging works. A scrape (`/metrics`, `/status`) submits `copy()` to every loop, so each
// copy is taken on the shard's own loop, and merges the copies with `ShardCopy.merged`:
// cumulative counters, histogram buckets, sums and in-flight gauges are added series by series;
// window slots are merged slice by slice (the same slice in two shards is added, a slot holding
// an older slice than the other shard's same slot is stale and dropped). `copy()` copies every
// buffer, so the shard's own buffers stay uniquely referenced and the next request after a
// scrape does not pay a copy-on-write. All figures are indexed by the series id of
// `SeriesRegistry`.
//
// What a reload does. Nothing, to the figures: series ids are stable and never removed or
// reused, so a reload neither resets nor renumbers a counter, and Prometheus sees monotonic
// counters across reloads. A series that the new configuration no longer routes to (a backend
// removed by a reload) keeps its last cumulative values, and keeps being exported with them,
// until the process restarts; its window simply ages out after a minute. Only a restart resets
// counters (which Prometheus' `rate()` handles as a counter reset).

/// Fixed histogram bucket bounds (seconds) of `sluice_request_duration_seconds`.
public let durationBuckets: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/// The index in `SeriesStats.buckets` of a duration: the first bucket whose upper bound is
/// `>= seconds` (Prometheus `le` semantics: a value equal to a bound is in that bucket), or
/// `durationBuckets.count` (+Inf) past the last bound. Negative and NaN durations count as 0.
@inline(__always)
public func durationBucketIndex(_ seconds: Double) -> Int {
    let value = seconds >= 0 ? seconds : 0
    var index = 0
    let bounds = durationBuckets
    while index < bounds.count, value > bounds[index] { index += 1 }
    return index
}

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

/// One status code's count (`SeriesStats.codes`).
struct CodeCount: Sendable, Equatable {
    var code: Int
    var count: UInt64
}

/// The figures of one series.
public struct SeriesStats: Sendable, Equatable {
    /// Requests per status code (primary traffic only).
    public var codes: [Int: UInt64] {
        get { Dictionary(uniqueKeysWithValues: codeCounts.lazy.map { ($0.code, $0.count) }) }
        set { codeCounts = newValue.sorted { $0.key < $1.key }.map { CodeCount(code: $0.key, count: $0.value) } }
    }
    /// The storage of `codes`: a series sees a handful of distinct codes, and a short scan
    /// finds one without hashing (a dictionary update was ~130 instructions per request).
    private var codeCounts: [CodeCount] = []
    /// Non-cumulative counts per bucket of `durationBuckets`, plus one for +Inf.
    public var buckets: [UInt64] = Array(repeating: 0, count: durationBuckets.count + 1)
    public var durationSum: Double = 0
    public var count: UInt64 = 0
    public var upstreamErrors: [UInt64] = Array(repeating: 0, count: UpstreamErrorReason.allCases.count)
    public var mirror: [UInt64] = Array(repeating: 0, count: MirrorResult.allCases.count)
    /// Responses of this series' backend when it answered as a shadow (mirror), per status
    /// code. Kept apart from `codes`, so shadow traffic never shows as primary traffic.
    public var mirrorCodes: [Int: UInt64] = Dictionary(minimumCapacity: 4)
    public var inflight: Int = 0
    /// Upgraded connections (WebSocket tunnels) open now, on the version their handshake chose.
    public var tunnels: Int = 0
    /// gRPC calls answered with a non-zero `grpc-status`.
    public var grpcErrors: UInt64 = 0
    /// The last minute of primary requests (see `SlidingWindow`).
    public var window = SeriesWindow()

    public init() {}

    public mutating func merge(_ other: SeriesStats) {
        for other in other.codeCounts { count(code: other.code, other.count) }
        for i in buckets.indices { buckets[i] += other.buckets[i] }
        durationSum += other.durationSum
        count += other.count
        for i in upstreamErrors.indices { upstreamErrors[i] += other.upstreamErrors[i] }
        for i in mirror.indices { mirror[i] += other.mirror[i] }
        mirrorCodes.merge(other.mirrorCodes, uniquingKeysWith: +)
        inflight += other.inflight
        tunnels += other.tunnels
        grpcErrors += other.grpcErrors
        window.merge(other.window)
    }

    /// A copy that shares no buffer with `self` (so the original stays uniquely referenced).
    func detached() -> SeriesStats {
        var copy = self
        copy.codeCounts = codeCounts.map { $0 }
        copy.buckets = buckets.map { $0 }
        copy.upstreamErrors = upstreamErrors.map { $0 }
        copy.mirror = mirror.map { $0 }
        copy.mirrorCodes = mirrorCodes.mapValues { $0 }
        copy.window = window.detached()
        return copy
    }

    @inline(__always)
    private mutating func count(code: Int, _ n: UInt64) {
        for i in codeCounts.indices where codeCounts[i].code == code {
            codeCounts[i].count += n
            return
        }
        // Kept in code order, so equal counts compare equal whatever order they came in.
        let at = codeCounts.firstIndex { $0.code > code } ?? codeCounts.endIndex
        codeCounts.insert(CodeCount(code: code, count: n), at: at)
    }

    /// One finished primary request (one exclusive access to the shard's array per request).
    @inline(__always)
    mutating func recordRequest(code: Int, seconds: Double, now: UInt64) {
        let bucket = durationBucketIndex(seconds)
        count(code: code, 1)
        buckets[bucket] += 1
        durationSum += seconds >= 0 ? seconds : 0
        count += 1
        window.record(now: now, isError: code >= 500 && code <= 599, bucket: bucket)
    }
}

/// The statistics one event loop records. Confined to that loop: recording takes no lock and
/// touches no atomic; a scrape asks each loop for a `copy()` and merges them
/// (`ShardCopy.merged`). See the design notes at the top of this file.
///
/// `now` parameters are monotonic nanoseconds (`NIODeadline.now().uptimeNanoseconds`,
/// `DispatchTime.now().uptimeNanoseconds`: the same clock); tests inject their own.
public final class StatShard {
    // Loop confinement makes overlapping accesses impossible, so the runtime exclusivity
    // check (a thread-local access set, the largest cost of a recording) is switched off.
    @exclusivity(unchecked) public private(set) var series: [SeriesStats] = []
    @exclusivity(unchecked) public private(set) var unrouted: UInt64 = 0

    public init() {}

    /// Preallocates storage for series ids `0..<seriesCount`, so that not even the first
    /// request of a series allocates. Optional; call it on the shard's loop.
    public func prepare(seriesCount: Int) {
        ensure(seriesCount - 1)
    }

    @inline(__always)
    private func ensure(_ id: Int) {
        if id >= series.count { grow(to: id + 1) }
    }

    @inline(never)
    private func grow(to count: Int) {
        series.reserveCapacity(count)
        // One fresh value per series (not `repeatElement`, whose elements would share buffers
        // and copy-on-write on their first request).
        while series.count < count { series.append(SeriesStats()) }
    }

    /// The single place a finished (primary) request is counted: status code, duration
    /// histogram and sum, and the sliding window of `now`.
    public func recordRequest(
        series id: Int, code: Int, seconds: Double,
        now: UInt64 = DispatchTime.now().uptimeNanoseconds
    ) {
        ensure(id)
        series[id].recordRequest(code: code, seconds: seconds, now: now)
    }

    /// A gRPC call that ended with a non-zero `grpc-status` (its HTTP status is usually 200):
    /// counted in `sluice_grpc_errors_total` and as an error in the one-minute window, so a
    /// canary's error rate sees it. Recorded in addition to `recordRequest`.
    public func recordGRPCError(series id: Int, now: UInt64 = DispatchTime.now().uptimeNanoseconds) {
        ensure(id)
        series[id].grpcErrors += 1
        series[id].window.countError(now: now)
    }

    public func recordUpstreamError(series id: Int, reason: UpstreamErrorReason) {
        ensure(id)
        series[id].upstreamErrors[reason.rawValue] += 1
    }

    public func recordMirror(series id: Int, result: MirrorResult) {
        ensure(id)
        series[id].mirror[result.rawValue] += 1
    }

    /// Counts a shadow backend's response code (`sluice_mirror_responses_total`); never touches
    /// the primary figures (`codes`, histogram, window) of any series.
    public func recordMirrorResponse(series id: Int, code: Int) {
        ensure(id)
        series[id].mirrorCodes[code, default: 0] += 1
    }

    public func adjustInflight(series id: Int, by delta: Int) {
        ensure(id)
        series[id].inflight += delta
    }

    public func adjustTunnels(series id: Int, by delta: Int) {
        ensure(id)
        series[id].tunnels += delta
    }

    public func recordUnrouted() { unrouted += 1 }

    /// A copy of this shard's figures, taken on its own loop. It shares no buffer with the
    /// shard, so recording after a copy never triggers a copy-on-write.
    public func copy() -> ShardCopy {
        ShardCopy(series: series.map { $0.detached() }, unrouted: unrouted)
    }
}

/// A value copy of one shard, or of several merged, safe to hand to another thread.
public struct ShardCopy: Sendable {
    public var series: [SeriesStats]
    public var unrouted: UInt64

    public init(series: [SeriesStats] = [], unrouted: UInt64 = 0) {
        self.series = series
        self.unrouted = unrouted
    }

    /// Sums shards series by series (window slices: same slice added, stale slices dropped).
    public static func merged(_ shards: [ShardCopy]) -> ShardCopy {
        var out = ShardCopy()
        for shard in shards {
            out.unrouted += shard.unrouted
            for (id, stats) in shard.series.enumerated() {
                while id >= out.series.count { out.series.append(SeriesStats()) }
                out.series[id].merge(stats)
            }
        }
        return out
    }

    /// The last minute of series `id` as of `now` (same clock as the recording `now`); zeros
    /// for an id without figures. `inflight` is the current gauge.
    public func window(series id: Int, now: UInt64 = DispatchTime.now().uptimeNanoseconds) -> WindowStats {
        guard series.indices.contains(id) else { return WindowStats() }
        var stats = series[id].window.stats(now: now)
        stats.inflight = series[id].inflight
        return stats
    }

    /// `window(series:now:)` of every series, indexed by series id.
    public func windows(now: UInt64 = DispatchTime.now().uptimeNanoseconds) -> [WindowStats] {
        series.indices.map { window(series: $0, now: now) }
    }
}
