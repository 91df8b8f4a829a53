import Testing
import SluiceMetrics

@Suite struct WindowTests {
    @Test func geometryCoversOneMinute() {
        #expect(SlidingWindow.spanNanos == 60_000_000_000)
    }

    @Test func requestsErrorsAndRate() {
        let shard = StatShard()
        for code in [200, 200, 201, 404, 500, 503, 599, 600] {
            shard.recordRequest(series: 0, code: code, seconds: 0.01, now: at(100))
        }
        let w = shard.copy().window(series: 0, now: at(101))
        #expect(w.requests == 8)
        #expect(w.errors == 3)
        #expect(w.errorRate == 3.0 / 8.0)
        #expect(abs(w.p50 - 0.0075) < 1e-12)  // all in (0.005, 0.01]
    }

    @Test func slicesOlderThanSixtySecondsDropOut() {
        let shard = StatShard()
        shard.recordRequest(series: 0, code: 200, seconds: 0.01, now: at(0))
        let copy = shard.copy()
        #expect(copy.window(series: 0, now: at(0)).requests == 1)
        #expect(copy.window(series: 0, now: at(54.9)).requests == 1)
        #expect(copy.window(series: 0, now: at(59.999)).requests == 1)
        #expect(copy.window(series: 0, now: at(60)).requests == 0)
        #expect(copy.window(series: 0, now: at(3600)).requests == 0)
        // The cumulative figures never age.
        #expect(copy.series[0].count == 1)
    }

    @Test func anythingUnderFiftyFiveSecondsOldCounts() {
        let shard = StatShard()
        shard.recordRequest(series: 0, code: 200, seconds: 0.01, now: at(4.99))
        #expect(shard.copy().window(series: 0, now: at(59.98)).requests == 1)
        #expect(shard.copy().window(series: 0, now: at(60)).requests == 0)
    }

    @Test func reusedSlotIsClearedInPlace() {
        let shard = StatShard()
        shard.recordRequest(series: 0, code: 500, seconds: 3, now: at(1))
        shard.recordRequest(series: 0, code: 200, seconds: 0.001, now: at(61))  // same slot, next minute
        let w = shard.copy().window(series: 0, now: at(61))
        #expect(w.requests == 1)
        #expect(w.errors == 0)
        #expect(w.buckets.reduce(0, +) == 1)
        #expect(shard.copy().series[0].count == 2)
    }

    @Test func lateTimestampOlderThanTheSlotIsLeftOutOfTheWindowOnly() {
        let shard = StatShard()
        shard.recordRequest(series: 0, code: 200, seconds: 0.001, now: at(60))
        shard.recordRequest(series: 0, code: 500, seconds: 0.001, now: at(0))   // same slot, a minute older
        let copy = shard.copy()
        #expect(copy.window(series: 0, now: at(60)).requests == 1)
        #expect(copy.window(series: 0, now: at(60)).errors == 0)
        #expect(copy.series[0].codes[500] == 1)
    }

    @Test func slicesNewerThanTheQueryCount() {
        let shard = StatShard()
        shard.recordRequest(series: 0, code: 200, seconds: 0.001, now: at(70))
        #expect(shard.copy().window(series: 0, now: at(65)).requests == 1)
    }

    @Test func slowPeriodShowsInP99AndThenAgesOut() {
        let shard = StatShard()
        func second(_ t: Int) {
            for _ in 0..<10 { shard.recordRequest(series: 0, code: 200, seconds: 0.004, now: at(Double(t) + 0.5)) }
            if (100..<110).contains(t) {
                for _ in 0..<5 { shard.recordRequest(series: 0, code: 200, seconds: 3, now: at(Double(t) + 0.5)) }
            }
        }
        for t in 0..<30 { second(t) }
        let before = shard.copy().window(series: 0, now: at(30))
        #expect(before.p99 <= 0.005)
        #expect(before.p99 > 0.0025)

        for t in 30..<110 { second(t) }
        let during = shard.copy().window(series: 0, now: at(110))
        // Slices 55 s ... 110 s: 550 fast, 50 slow; rank 594 is in (2.5, 5].
        #expect(during.requests == 600)
        #expect(abs(during.p99 - (2.5 + 2.5 * 44 / 50)) < 1e-9)
        #expect(during.p50 <= 0.005)

        for t in 110..<175 { second(t) }
        let after = shard.copy().window(series: 0, now: at(175))
        #expect(after.requests == 550)
        #expect(after.p99 <= 0.005)
        #expect(shard.copy().series[0].buckets[12] == 50)  // still in the cumulative histogram
    }

    @Test func defaultClockRecordsNow() {
        let shard = StatShard()
        shard.recordRequest(series: 0, code: 200, seconds: 0.1)
        let w = shard.copy().window(series: 0)
        #expect(w.requests == 1)
    }

    @Test func unknownSeriesHasAnEmptyWindow() {
        #expect(ShardCopy().window(series: 7, now: 0) == WindowStats())
        #expect(ShardCopy().windows(now: 0).isEmpty)
    }

    @Test func windowCarriesTheInflightGauge() {
        let shard = StatShard()
        shard.adjustInflight(series: 1, by: 2)
        let windows = shard.copy().windows(now: at(5))
        #expect(windows.count == 2)
        #expect(windows[1].inflight == 2)
        #expect(windows[1].requests == 0)
    }
}
