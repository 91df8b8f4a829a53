import Foundation
import Testing
import SluiceMetrics

private let promtool = "/usr/bin/promtool"

/// Lints the exposition with `promtool check metrics` (Debian package `prometheus`); skipped
/// where promtool is not installed.
@Suite(.enabled(if: FileManager.default.isExecutableFile(atPath: promtool), "needs \(promtool)"))
struct PromtoolTests {
    func check(_ text: String) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: promtool)
        process.arguments = ["check", "metrics"]
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        try process.run()
        input.fileHandleForWriting.write(Data(text.utf8))
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test func fixturePassesPromtool() throws {
        let (stats, keys, gauges) = fixture()
        let result = try check(PrometheusText.render(stats, keys: keys, gauges: gauges))
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "\(result.output)")
    }

    @Test func everyFamilyWithOddLabelsPassesPromtool() throws {
        let registry = SeriesRegistry()
        let odd = registry.id(for: SeriesKey(route: "we\"ird\\", backend: "b\nx", version: "ü"))
        let plain = registry.id(for: SeriesKey(route: "r", backend: "b", version: "v"))
        let shard = StatShard()
        for (i, code) in [200, 201, 404, 500, 502, 503, 504].enumerated() {
            shard.recordRequest(series: odd, code: code, seconds: Double(i) * 1.7, now: 0)
            shard.recordRequest(series: plain, code: code, seconds: 0.0001 * Double(i), now: 0)
        }
        for reason in UpstreamErrorReason.allCases { shard.recordUpstreamError(series: odd, reason: reason) }
        for result in MirrorResult.allCases { shard.recordMirror(series: plain, result: result) }
        shard.recordMirrorResponse(series: plain, code: 500)
        shard.adjustInflight(series: odd, by: 5)
        shard.recordUnrouted()
        let gauges = ProxyGauges(
            weights: [(route: "r", backend: "b", weight: 100)],
            active: [(route: "bg", backend: "blue", active: true), (route: "bg", backend: "green", active: false)],
            generation: 12, reloadsOK: 11, reloadsError: 3,
            extra: [MetricFamily(name: "sluice_open_tunnels", help: "Open tunnels by route.", kind: .gauge,
                                 samples: [.init(labels: [(name: "route", value: "r")], value: 1)])])
        let text = PrometheusText.render(shard.copy(), keys: registry.allKeys, gauges: gauges)
        let result = try check(text)
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "\(result.output)")
    }

    @Test func promtoolRejectsBrokenText() throws {
        // Guards the harness itself: a malformed exposition must fail.
        let result = try check("sluice_requests_total{route=\"unterminated} 1\n")
        #expect(result.status != 0)
    }
}
