import Foundation

/// A metric family the proxy adds to the exposition beyond the built-in ones (the hook for
/// gauges such as open tunnels): rendered after the built-ins, samples sorted by labels.
public struct MetricFamily: Sendable {
    public enum Kind: String, Sendable {
        case counter, gauge, untyped
    }

    public struct Sample: Sendable {
        public var labels: [(name: String, value: String)]
        public var value: Double

        public init(labels: [(name: String, value: String)] = [], value: Double) {
            self.labels = labels
            self.value = value
        }
    }

    public var name: String
    public var help: String
    public var kind: Kind
    public var samples: [Sample]

    public init(name: String, help: String, kind: Kind, samples: [Sample]) {
        self.name = name
        self.help = help
        self.kind = kind
        self.samples = samples
    }
}

/// What the proxy knows from its current snapshot and reload history, for the gauges of the
/// exposition that are not per-loop statistics.
public struct ProxyGauges: Sendable {
    /// `sluice_route_weight{route,backend}`: the effective weights (live changes included).
    public var weights: [(route: String, backend: String, weight: Int)]
    /// `sluice_active_backend{route,backend}`: 1 for active, 0 otherwise.
    public var active: [(route: String, backend: String, active: Bool)]
    /// `sluice_config_generation`.
    public var generation: Int
    /// `sluice_config_reloads_total{result="ok"}` and `{result="error"}`.
    public var reloadsOK: UInt64
    public var reloadsError: UInt64
    /// Further families (e.g. open tunnels), rendered after the built-in ones.
    public var extra: [MetricFamily]

    public init(
        weights: [(route: String, backend: String, weight: Int)] = [],
        active: [(route: String, backend: String, active: Bool)] = [],
        generation: Int = 0, reloadsOK: UInt64 = 0, reloadsError: UInt64 = 0,
        extra: [MetricFamily] = []
    ) {
        self.weights = weights
        self.active = active
        self.generation = generation
        self.reloadsOK = reloadsOK
        self.reloadsError = reloadsError
        self.extra = extra
    }
}

/// The Prometheus text exposition format 0.0.4 of Sluice's metrics.
///
/// Families come in the order of SPEC "Metrics" (then `extra`); within a family, series are
/// sorted by `route`, `backend`, `version`, then by the remaining label (`code` numerically,
/// `reason`/`result` alphabetically), so the output is deterministic.
///
/// Which series appear: every registered series (every key of `keys`) has a complete histogram
/// and an in-flight gauge, zero or not; labelled counters (`code`, `reason`, `result`) appear
/// only once they have counted something; `sluice_config_reloads_total` always has both
/// results; a family without any sample is left out. A series a reload removed keeps its
/// last values (ids are never removed; see `StatShard`).
public enum PrometheusText {
    /// The `Content-Type` of the exposition.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// Renders the merged statistics. `keys` are the registry's keys indexed by series id
    /// (`SeriesRegistry.allKeys`, read after the merge so that every id has its key; figures
    /// of ids past `keys` are skipped).
    public static func render(_ stats: ShardCopy, keys: [SeriesKey], gauges: ProxyGauges = ProxyGauges()) -> String {
        var out = Writer()
        let empty = SeriesStats()
        let order = keys.indices.sorted { a, b in
            let x = keys[a], y = keys[b]
            if x.route != y.route { return x.route < y.route }
            if x.backend != y.backend { return x.backend < y.backend }
            return x.version < y.version
        }
        let rows: [(key: SeriesKey, stats: SeriesStats)] = order.map { id in
            (keys[id], id < stats.series.count ? stats.series[id] : empty)
        }
        func base(_ key: SeriesKey) -> [(String, String)] {
            [("route", key.route), ("backend", key.backend), ("version", key.version)]
        }

        // sluice_requests_total
        out.family("sluice_requests_total", "counter",
                   "Requests answered, by route, backend, version and status code (primary traffic only).",
                   samples: rows.flatMap { row in
                       row.stats.codes.keys.sorted().compactMap { code in
                           let n = row.stats.codes[code] ?? 0
                           return n == 0 ? nil : Line(base(row.key) + [("code", String(code))], uint: n)
                       }
                   })

        // sluice_request_duration_seconds
        var histogram: [Line] = []
        for row in rows {
            var cumulative: UInt64 = 0
            for (i, bound) in durationBuckets.enumerated() {
                cumulative += row.stats.buckets[i]
                histogram.append(Line(suffix: "_bucket", base(row.key) + [("le", formatDouble(bound))], uint: cumulative))
            }
            cumulative += row.stats.buckets[durationBuckets.count]
            histogram.append(Line(suffix: "_bucket", base(row.key) + [("le", "+Inf")], uint: cumulative))
            histogram.append(Line(suffix: "_sum", base(row.key), text: formatDouble(row.stats.durationSum)))
            histogram.append(Line(suffix: "_count", base(row.key), uint: row.stats.count))
        }
        out.family("sluice_request_duration_seconds", "histogram",
                   "Time from request head in to response end, in seconds.", samples: histogram)

        // sluice_upstream_errors_total
        let reasons = UpstreamErrorReason.allCases.sorted { $0.label < $1.label }
        out.family("sluice_upstream_errors_total", "counter",
                   "Upstream exchanges that failed, by reason (connect, timeout, reset, protocol).",
                   samples: rows.flatMap { row in
                       reasons.compactMap { reason in
                           let n = row.stats.upstreamErrors[reason.rawValue]
                           return n == 0 ? nil : Line(base(row.key) + [("reason", reason.label)], uint: n)
                       }
                   })

        // sluice_inflight_requests
        out.family("sluice_inflight_requests", "gauge", "Requests being served now.",
                   samples: rows.map { Line(base($0.key), text: String($0.stats.inflight)) })

        // sluice_grpc_errors_total (calls whose grpc-status trailer was not 0)
        out.family("sluice_grpc_errors_total", "counter",
                   "gRPC calls answered with a non-zero grpc-status (their HTTP status is usually 200).",
                   samples: rows.compactMap { $0.stats.grpcErrors == 0 ? nil : Line(base($0.key), uint: $0.stats.grpcErrors) })

        // sluice_open_tunnels (upgraded connections stay on the version their handshake chose)
        out.family("sluice_open_tunnels", "gauge",
                   "Upgraded connections (WebSocket tunnels) open now, by the version their handshake was routed to.",
                   samples: rows.compactMap { $0.stats.tunnels == 0 ? nil : Line(base($0.key), text: String($0.stats.tunnels)) })

        // sluice_mirror_requests_total
        let results = MirrorResult.allCases.sorted { $0.label < $1.label }
        out.family("sluice_mirror_requests_total", "counter",
                   "Shadow (mirror) requests, by result (sent, completed, failed, dropped).",
                   samples: rows.flatMap { row in
                       results.compactMap { result in
                           let n = row.stats.mirror[result.rawValue]
                           return n == 0 ? nil : Line(base(row.key) + [("result", result.label)], uint: n)
                       }
                   })

        // sluice_mirror_responses_total
        out.family("sluice_mirror_responses_total", "counter",
                   "Responses of shadow (mirror) backends, by status code; never counted in sluice_requests_total.",
                   samples: rows.flatMap { row in
                       row.stats.mirrorCodes.keys.sorted().compactMap { code in
                           let n = row.stats.mirrorCodes[code] ?? 0
                           return n == 0 ? nil : Line(base(row.key) + [("code", String(code))], uint: n)
                       }
                   })

        // sluice_route_weight
        out.family("sluice_route_weight", "gauge",
                   "Effective weight of each backend of a split route, live changes included.",
                   samples: sortedUnique(gauges.weights.map {
                       Line([("route", $0.route), ("backend", $0.backend)], text: String($0.weight))
                   }))

        // sluice_active_backend
        out.family("sluice_active_backend", "gauge",
                   "1 for the backend a blue-green route sends its traffic to, 0 for the other.",
                   samples: sortedUnique(gauges.active.map {
                       Line([("route", $0.route), ("backend", $0.backend)], text: $0.active ? "1" : "0")
                   }))

        // sluice_config_generation
        out.family("sluice_config_generation", "gauge", "Generation of the configuration being served.",
                   samples: [Line([], text: String(gauges.generation))])

        // sluice_config_reloads_total
        out.family("sluice_config_reloads_total", "counter", "Configuration reloads, by result (ok, error).",
                   samples: [Line([("result", "error")], uint: gauges.reloadsError),
                             Line([("result", "ok")], uint: gauges.reloadsOK)])

        // sluice_unrouted_requests_total
        out.family("sluice_unrouted_requests_total", "counter",
                   "Requests that no route matched (answered 404).",
                   samples: [Line([], uint: stats.unrouted)])

        for family in gauges.extra {
            out.family(family.name, family.kind.rawValue, family.help,
                       samples: sortedUnique(family.samples.map { Line($0.labels.map { ($0.name, $0.value) },
                                                                         text: formatDouble($0.value)) }))
        }
        return out.text
    }

    /// A label value escaped for the text format: backslash, double quote and line feed.
    public static func escapeLabelValue(_ value: String) -> String {
        guard value.contains(where: { $0 == "\\" || $0 == "\"" || $0 == "\n" }) else { return value }
        var out = ""
        out.reserveCapacity(value.utf8.count + 4)
        for ch in value.unicodeScalars {
            switch ch {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(ch)
            }
        }
        return out
    }

    /// HELP text escaped for the text format: backslash and line feed.
    public static func escapeHelp(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n")
    }

    /// A sample value or `le` bound as Prometheus parses it, independent of locale: integral
    /// values without a fraction (`1`, `10`), others in the shortest round-trip form
    /// (`0.0005`, `2.5`, `1e-07`), and `+Inf`, `-Inf`, `NaN`.
    public static func formatDouble(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return value.description
    }

    // MARK: Building the text

    struct Line {
        var suffix: String = ""
        var labels: [(String, String)]
        var value: String

        init(suffix: String = "", _ labels: [(String, String)], text: String) {
            self.suffix = suffix
            self.labels = labels
            self.value = text
        }

        init(suffix: String = "", _ labels: [(String, String)], uint: UInt64) {
            self.init(suffix: suffix, labels, text: String(uint))
        }

        static func labelsLess(_ a: Line, _ b: Line) -> Bool {
            for (x, y) in zip(a.labels, b.labels) {
                if x.0 != y.0 { return x.0 < y.0 }
                if x.1 != y.1 { return x.1 < y.1 }
            }
            return a.labels.count < b.labels.count
        }

        static func sameLabels(_ a: Line, _ b: Line) -> Bool {
            a.labels.count == b.labels.count && zip(a.labels, b.labels).allSatisfy { $0 == $1 }
        }
    }

    /// Sorted by labels; of lines with the same labels, the last given wins.
    static func sortedUnique(_ lines: [Line]) -> [Line] {
        let sorted = lines.enumerated().sorted { a, b in
            if Line.labelsLess(a.element, b.element) { return true }
            if Line.labelsLess(b.element, a.element) { return false }
            return a.offset < b.offset
        }.map(\.element)
        var out: [Line] = []
        for line in sorted {
            if let last = out.last, Line.sameLabels(last, line) {
                out[out.count - 1] = line
            } else {
                out.append(line)
            }
        }
        return out
    }

    struct Writer {
        var text = ""

        mutating func family(_ name: String, _ type: String, _ help: String, samples: [Line]) {
            guard !samples.isEmpty else { return }
            text += "# HELP \(name) \(PrometheusText.escapeHelp(help))\n"
            text += "# TYPE \(name) \(type)\n"
            for sample in samples {
                text += name
                text += sample.suffix
                if !sample.labels.isEmpty {
                    text += "{"
                    for (i, label) in sample.labels.enumerated() {
                        if i > 0 { text += "," }
                        text += label.0
                        text += "=\""
                        text += PrometheusText.escapeLabelValue(label.1)
                        text += "\""
                    }
                    text += "}"
                }
                text += " "
                text += sample.value
                text += "\n"
            }
        }
    }
}
