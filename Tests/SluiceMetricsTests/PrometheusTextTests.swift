import Testing
import SluiceMetrics

/// The small fixture: two versions of `checkout` (registered out of order), one of them also
/// the shadow of a mirror, plus the snapshot gauges.
func fixture() -> (ShardCopy, [SeriesKey], ProxyGauges) {
    let registry = SeriesRegistry()
    let v2 = registry.id(for: SeriesKey(route: "checkout", backend: "checkout-v2", version: "v2"))
    let v1 = registry.id(for: SeriesKey(route: "checkout", backend: "checkout-v1", version: "v1"))
    let a = StatShard(), b = StatShard()
    a.recordRequest(series: v1, code: 200, seconds: 0.5, now: at(1))
    b.recordRequest(series: v1, code: 503, seconds: 2.5, now: at(2))
    a.adjustInflight(series: v1, by: 1)
    b.recordUpstreamError(series: v1, reason: .connect)
    a.recordMirror(series: v2, result: .sent)
    a.recordMirror(series: v2, result: .completed)
    a.recordMirrorResponse(series: v2, code: 200)
    for _ in 0..<4 { b.recordUnrouted() }
    let gauges = ProxyGauges(
        weights: [(route: "checkout", backend: "checkout-v2", weight: 10),
                  (route: "checkout", backend: "checkout-v1", weight: 90)],
        active: [(route: "api", backend: "api-green", active: false),
                 (route: "api", backend: "api-blue", active: true)],
        generation: 3, reloadsOK: 2, reloadsError: 1)
    return (ShardCopy.merged([a.copy(), b.copy()]), registry.allKeys, gauges)
}

@Suite struct PrometheusTextTests {
    @Test func rendersTheFixtureExactly() {
        let (stats, keys, gauges) = fixture()
        let v1 = #"route="checkout",backend="checkout-v1",version="v1""#
        let v2 = #"route="checkout",backend="checkout-v2",version="v2""#
        let expected = """
        # HELP sluice_requests_total Requests answered, by route, backend, version and status code (primary traffic only).
        # TYPE sluice_requests_total counter
        sluice_requests_total{\(v1),code="200"} 1
        sluice_requests_total{\(v1),code="503"} 1
        # HELP sluice_request_duration_seconds Time from request head in to response end, in seconds.
        # TYPE sluice_request_duration_seconds histogram
        sluice_request_duration_seconds_bucket{\(v1),le="0.0005"} 0
        sluice_request_duration_seconds_bucket{\(v1),le="0.001"} 0
        sluice_request_duration_seconds_bucket{\(v1),le="0.0025"} 0
        sluice_request_duration_seconds_bucket{\(v1),le="0.005"} 0
        sluice_request_duration_seconds_bucket{\(v1),le="0.01"} 0
        sluice_request_duration_seconds_bucket{\(v1),le="0.025"} 0
        sluice_request_duration_seconds_bucket{\(v1),le="0.05"} 0
        sluice_request_duration_seconds_bucket{\(v1),le="0.1"} 0
        sluice_request_duration_seconds_bucket{\(v1),le="0.25"} 0
        sluice_request_duration_seconds_bucket{\(v1),le="0.5"} 1
        sluice_request_duration_seconds_bucket{\(v1),le="1"} 1
        sluice_request_duration_seconds_bucket{\(v1),le="2.5"} 2
        sluice_request_duration_seconds_bucket{\(v1),le="5"} 2
        sluice_request_duration_seconds_bucket{\(v1),le="10"} 2
        sluice_request_duration_seconds_bucket{\(v1),le="+Inf"} 2
        sluice_request_duration_seconds_sum{\(v1)} 3
        sluice_request_duration_seconds_count{\(v1)} 2
        sluice_request_duration_seconds_bucket{\(v2),le="0.0005"} 0
        sluice_request_duration_seconds_bucket{\(v2),le="0.001"} 0
        sluice_request_duration_seconds_bucket{\(v2),le="0.0025"} 0
        sluice_request_duration_seconds_bucket{\(v2),le="0.005"} 0
        sluice_request_duration_seconds_bucket{\(v2),le="0.01"} 0
        sluice_request_duration_seconds_bucket{\(v2),le="0.025"} 0
        sluice_request_duration_seconds_bucket{\(v2),le="0.05"} 0
        sluice_request_duration_seconds_bucket{\(v2),le="0.1"} 0
        sluice_request_duration_seconds_bucket{\(v2),le="0.25"} 0
        sluice_request_duration_seconds_bucket{\(v2),le="0.5"} 0
        sluice_request_duration_seconds_bucket{\(v2),le="1"} 0
        sluice_request_duration_seconds_bucket{\(v2),le="2.5"} 0
        sluice_request_duration_seconds_bucket{\(v2),le="5"} 0
        sluice_request_duration_seconds_bucket{\(v2),le="10"} 0
        sluice_request_duration_seconds_bucket{\(v2),le="+Inf"} 0
        sluice_request_duration_seconds_sum{\(v2)} 0
        sluice_request_duration_seconds_count{\(v2)} 0
        # HELP sluice_upstream_errors_total Upstream exchanges that failed, by reason (connect, timeout, reset, protocol).
        # TYPE sluice_upstream_errors_total counter
        sluice_upstream_errors_total{\(v1),reason="connect"} 1
        # HELP sluice_inflight_requests Requests being served now.
        # TYPE sluice_inflight_requests gauge
        sluice_inflight_requests{\(v1)} 1
        sluice_inflight_requests{\(v2)} 0
        # HELP sluice_mirror_requests_total Shadow (mirror) requests, by result (sent, completed, failed, dropped).
        # TYPE sluice_mirror_requests_total counter
        sluice_mirror_requests_total{\(v2),result="completed"} 1
        sluice_mirror_requests_total{\(v2),result="sent"} 1
        # HELP sluice_mirror_responses_total Responses of shadow (mirror) backends, by status code; never counted in sluice_requests_total.
        # TYPE sluice_mirror_responses_total counter
        sluice_mirror_responses_total{\(v2),code="200"} 1
        # HELP sluice_route_weight Effective weight of each backend of a split route, live changes included.
        # TYPE sluice_route_weight gauge
        sluice_route_weight{route="checkout",backend="checkout-v1"} 90
        sluice_route_weight{route="checkout",backend="checkout-v2"} 10
        # HELP sluice_active_backend 1 for the backend a blue-green route sends its traffic to, 0 for the other.
        # TYPE sluice_active_backend gauge
        sluice_active_backend{route="api",backend="api-blue"} 1
        sluice_active_backend{route="api",backend="api-green"} 0
        # HELP sluice_config_generation Generation of the configuration being served.
        # TYPE sluice_config_generation gauge
        sluice_config_generation 3
        # HELP sluice_config_reloads_total Configuration reloads, by result (ok, error).
        # TYPE sluice_config_reloads_total counter
        sluice_config_reloads_total{result="error"} 1
        sluice_config_reloads_total{result="ok"} 2
        # HELP sluice_unrouted_requests_total Requests that no route matched (answered 404).
        # TYPE sluice_unrouted_requests_total counter
        sluice_unrouted_requests_total 4

        """
        let rendered = PrometheusText.render(stats, keys: keys, gauges: gauges)
        #expect(rendered == expected)
        if rendered != expected {
            for (r, e) in zip(rendered.split(separator: "\n"), expected.split(separator: "\n")) where r != e {
                Issue.record("first difference:\n got: \(r)\nwant: \(e)")
                break
            }
        }
    }

    @Test func emptyProxyStillHasTheAlwaysOnFamilies() {
        let rendered = PrometheusText.render(ShardCopy(), keys: [])
        #expect(rendered == """
        # HELP sluice_config_generation Generation of the configuration being served.
        # TYPE sluice_config_generation gauge
        sluice_config_generation 0
        # HELP sluice_config_reloads_total Configuration reloads, by result (ok, error).
        # TYPE sluice_config_reloads_total counter
        sluice_config_reloads_total{result="error"} 0
        sluice_config_reloads_total{result="ok"} 0
        # HELP sluice_unrouted_requests_total Requests that no route matched (answered 404).
        # TYPE sluice_unrouted_requests_total counter
        sluice_unrouted_requests_total 0

        """)
    }

    @Test func infBucketEqualsCountAndBucketsAreCumulative() {
        let shard = StatShard()
        var seed: UInt64 = 42
        for _ in 0..<1000 {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            let seconds = Double(seed >> 11) / Double(1 << 53) * 20  // 0 ..< 20 s
            shard.recordRequest(series: 0, code: 200, seconds: seconds, now: 0)
        }
        let text = PrometheusText.render(shard.copy(), keys: [SeriesKey(route: "r", backend: "b", version: "v")])
        let buckets = text.split(separator: "\n").filter { $0.hasPrefix("sluice_request_duration_seconds_bucket") }
        let values = buckets.compactMap { UInt64($0.split(separator: " ").last ?? "") }
        #expect(values.count == durationBuckets.count + 1)
        #expect(zip(values, values.dropFirst()).allSatisfy { $0 <= $1 })
        #expect(buckets.last?.contains(#"le="+Inf""#) == true)
        #expect(values.last == 1000)
        #expect(text.contains(#"sluice_request_duration_seconds_count{route="r",backend="b",version="v"} 1000"#))
    }

    @Test func labelValuesAreEscaped() {
        #expect(PrometheusText.escapeLabelValue(#"a\b"c"# + "\nd") == #"a\\b\"c\nd"#)
        #expect(PrometheusText.escapeLabelValue("plain-v1.2") == "plain-v1.2")
        #expect(PrometheusText.escapeLabelValue("é\u{1F600}") == "é\u{1F600}")
        let shard = StatShard()
        shard.recordRequest(series: 0, code: 200, seconds: 0.1, now: 0)
        let key = SeriesKey(route: "we\"ird", backend: #"back\slash"#, version: "multi\nline")
        let text = PrometheusText.render(shard.copy(), keys: [key])
        #expect(text.contains(#"sluice_requests_total{route="we\"ird",backend="back\\slash",version="multi\nline",code="200"} 1"#))
        #expect(!text.contains("multi\nline"))
    }

    @Test func helpIsEscaped() {
        #expect(PrometheusText.escapeHelp("a\\b\nc \"q\"") == #"a\\b\nc "q""#)
    }

    @Test func floatsAreFormattedForPrometheus() {
        #expect(PrometheusText.formatDouble(0.0005) == "0.0005")
        #expect(PrometheusText.formatDouble(1) == "1")
        #expect(PrometheusText.formatDouble(10) == "10")
        #expect(PrometheusText.formatDouble(2.5) == "2.5")
        #expect(PrometheusText.formatDouble(0) == "0")
        #expect(PrometheusText.formatDouble(-3) == "-3")
        #expect(PrometheusText.formatDouble(1e-7) == "1e-07")
        #expect(PrometheusText.formatDouble(1e20) == "1e+20")
        #expect(PrometheusText.formatDouble(.infinity) == "+Inf")
        #expect(PrometheusText.formatDouble(-.infinity) == "-Inf")
        #expect(PrometheusText.formatDouble(.nan) == "NaN")
        for bound in durationBuckets {
            #expect(Double(PrometheusText.formatDouble(bound)) == bound)
        }
    }

    @Test func orderIsDeterministicAndSortedByLabels() {
        let keys = [SeriesKey(route: "b", backend: "x", version: "1"),
                    SeriesKey(route: "a", backend: "y", version: "2"),
                    SeriesKey(route: "a", backend: "x", version: "3")]
        let shard = StatShard()
        for id in keys.indices {
            for code in [503, 200, 404] { shard.recordRequest(series: id, code: code, seconds: 0.1, now: 0) }
        }
        let text = PrometheusText.render(shard.copy(), keys: keys)
        let lines = text.split(separator: "\n").filter { $0.hasPrefix("sluice_requests_total{") }
        #expect(lines.map { String($0.prefix(while: { $0 != "}" })) } == [
            #"sluice_requests_total{route="a",backend="x",version="3",code="200""#,
            #"sluice_requests_total{route="a",backend="x",version="3",code="404""#,
            #"sluice_requests_total{route="a",backend="x",version="3",code="503""#,
            #"sluice_requests_total{route="a",backend="y",version="2",code="200""#,
            #"sluice_requests_total{route="a",backend="y",version="2",code="404""#,
            #"sluice_requests_total{route="a",backend="y",version="2",code="503""#,
            #"sluice_requests_total{route="b",backend="x",version="1",code="200""#,
            #"sluice_requests_total{route="b",backend="x",version="1",code="404""#,
            #"sluice_requests_total{route="b",backend="x",version="1",code="503""#,
        ])
        #expect(PrometheusText.render(shard.copy(), keys: keys) == text)
    }

    @Test func seriesWithoutKeysAreSkipped() {
        let shard = StatShard()
        shard.recordRequest(series: 3, code: 200, seconds: 0.1, now: 0)
        let text = PrometheusText.render(shard.copy(), keys: [SeriesKey(route: "r", backend: "b", version: "v")])
        #expect(!text.contains("sluice_requests_total{"))
        #expect(text.contains(#"sluice_request_duration_seconds_count{route="r",backend="b",version="v"} 0"#))
    }

    @Test func extraFamiliesAndDuplicateGauges() {
        let gauges = ProxyGauges(
            weights: [(route: "r", backend: "b", weight: 1), (route: "r", backend: "b", weight: 7)],
            extra: [MetricFamily(name: "sluice_open_tunnels", help: "Open tunnels.", kind: .gauge, samples: [
                .init(labels: [(name: "route", value: "z")], value: 2),
                .init(labels: [(name: "route", value: "a")], value: 0.5),
            ])])
        let text = PrometheusText.render(ShardCopy(), keys: [], gauges: gauges)
        #expect(text.contains("sluice_route_weight{route=\"r\",backend=\"b\"} 7\n# HELP sluice_config_generation"))
        #expect(text.hasSuffix("""
        # HELP sluice_open_tunnels Open tunnels.
        # TYPE sluice_open_tunnels gauge
        sluice_open_tunnels{route="a"} 0.5
        sluice_open_tunnels{route="z"} 2

        """))
    }
}
