import Testing
import SluiceMetrics

@Suite struct ShardTests {
    @Test func mergeSumsSeriesBySeries() {
        let a = StatShard(), b = StatShard()
        a.recordRequest(series: 0, code: 200, seconds: 0.001, now: at(10))
        a.recordRequest(series: 2, code: 503, seconds: 5, now: at(10))
        a.recordUpstreamError(series: 2, reason: .timeout)
        a.adjustInflight(series: 0, by: 3)
        a.recordUnrouted()
        b.recordRequest(series: 0, code: 200, seconds: 0.002, now: at(12))
        b.recordRequest(series: 0, code: 404, seconds: 0.002, now: at(12))
        b.recordMirror(series: 1, result: .sent)
        b.adjustInflight(series: 0, by: -1)
        b.recordUnrouted()
        b.recordUnrouted()

        let m = ShardCopy.merged([a.copy(), b.copy()])
        #expect(m.series.count == 3)
        #expect(m.unrouted == 3)
        #expect(m.series[0].codes == [200: 2, 404: 1])
        #expect(m.series[0].count == 3)
        #expect(m.series[0].buckets[1] == 1 && m.series[0].buckets[2] == 2)
        #expect(abs(m.series[0].durationSum - 0.005) < 1e-12)
        #expect(m.series[0].inflight == 2)
        #expect(m.series[1].mirror[MirrorResult.sent.rawValue] == 1)
        #expect(m.series[2].upstreamErrors[UpstreamErrorReason.timeout.rawValue] == 1)
        #expect(m.series[2].codes == [503: 1])
        #expect(m.window(series: 0, now: at(12)).requests == 3)
        #expect(m.window(series: 2, now: at(12)).errors == 1)
        #expect(ShardCopy.merged([]).series.isEmpty)
    }

    /// Status codes are counted exactly however many distinct ones a series sees, and the
    /// same counts compare equal whatever order the codes first came in.
    @Test func statusCodesCountInAnyOrder() {
        let a = StatShard(), b = StatShard()
        let codes = [200, 404, 200, 503, 101, 200, 599, 404, 302, 200, 100, 499]
        for code in codes { a.recordRequest(series: 0, code: code, seconds: 0.001, now: at(10)) }
        for code in codes.reversed() { b.recordRequest(series: 0, code: code, seconds: 0.001, now: at(10)) }
        let expected = Dictionary(codes.map { ($0, UInt64(1)) }, uniquingKeysWith: +)
        #expect(a.series[0].codes == expected)
        #expect(a.series[0].codes[200] == 4 && a.series[0].codes[404] == 2)
        #expect(a.series[0] == b.series[0])
        #expect(ShardCopy.merged([a.copy(), b.copy()]).series[0].codes == expected.mapValues { $0 * 2 })
    }

    @Test func mergeDropsStaleSlicesAndAddsTheSameSlice() {
        let a = StatShard(), b = StatShard()
        a.recordRequest(series: 0, code: 500, seconds: 0.001, now: at(1))   // slot 0, first minute
        a.recordRequest(series: 0, code: 200, seconds: 0.001, now: at(30))
        b.recordRequest(series: 0, code: 200, seconds: 0.001, now: at(61))  // slot 0, next minute
        b.recordRequest(series: 0, code: 200, seconds: 0.001, now: at(62))
        for order in [[a.copy(), b.copy()], [b.copy(), a.copy()]] {
            let m = ShardCopy.merged(order)
            #expect(m.series[0].count == 4)
            let w = m.window(series: 0, now: at(62))
            #expect(w.requests == 3)  // 30 s (slot 6) + 61 s + 62 s; the 1 s slice is stale
            #expect(w.errors == 0)
        }
        let c = StatShard()
        c.recordRequest(series: 0, code: 200, seconds: 0.001, now: at(31))
        let same = ShardCopy.merged([a.copy(), c.copy()]).window(series: 0, now: at(34))
        #expect(same.requests == 3)
    }

    @Test func copyIsIsolatedFromLaterRecording() {
        let shard = StatShard()
        shard.recordRequest(series: 0, code: 200, seconds: 0.01, now: at(1))
        let copy = shard.copy()
        shard.recordRequest(series: 0, code: 200, seconds: 0.01, now: at(1))
        shard.recordMirrorResponse(series: 0, code: 200)
        #expect(copy.series[0].count == 1)
        #expect(copy.series[0].codes[200] == 1)
        #expect(copy.series[0].mirrorCodes.isEmpty)
        #expect(copy.window(series: 0, now: at(1)).requests == 1)
        #expect(shard.copy().series[0].count == 2)
    }

    @Test func mirrorResponsesNeverPolluteThePrimaryFigures() {
        let shard = StatShard()
        shard.recordRequest(series: 0, code: 200, seconds: 0.01, now: at(1))
        shard.recordMirror(series: 1, result: .sent)
        shard.recordMirrorResponse(series: 1, code: 500)
        shard.recordMirrorResponse(series: 1, code: 500)
        shard.recordMirrorResponse(series: 0, code: 404)  // a backend that is both primary and shadow
        shard.recordMirror(series: 1, result: .completed)
        let c = shard.copy()
        #expect(c.series[1].mirrorCodes == [500: 2])
        #expect(c.series[1].codes.isEmpty)
        #expect(c.series[1].count == 0)
        #expect(c.window(series: 1, now: at(1)).requests == 0)
        #expect(c.series[0].codes == [200: 1])
        #expect(c.series[0].mirrorCodes == [404: 1])
        #expect(c.window(series: 0, now: at(1)).errors == 0)
        let m = ShardCopy.merged([c, c])
        #expect(m.series[1].mirrorCodes == [500: 4])
    }

    @Test func prepareCreatesEmptySeries() {
        let shard = StatShard()
        shard.prepare(seriesCount: 4)
        #expect(shard.series.count == 4)
        #expect(shard.series.allSatisfy { $0 == SeriesStats() })
        shard.prepare(seriesCount: 0)
        #expect(shard.series.count == 4)
    }

    @Test func registryIdsAreStable() {
        let registry = SeriesRegistry()
        let v1 = SeriesKey(route: "r", backend: "b1", version: "v1")
        let v2 = SeriesKey(route: "r", backend: "b2", version: "v2")
        #expect(registry.id(for: v1) == 0)
        #expect(registry.id(for: v2) == 1)
        #expect(registry.id(for: v1) == 0)
        #expect(registry.allKeys == [v1, v2])
    }
}
