import Testing
@testable import SluiceRouting

@Suite("Sticky buckets")
struct StickyTests {
    @Test func hashPrimitivesMatchPublishedVectors() {
        // FNV-1a 64 test vectors (Fowler/Noll/Vo reference set).
        #expect(StickyHash.fnv1a64("".utf8) == 0xcbf2_9ce4_8422_2325)
        #expect(StickyHash.fnv1a64("a".utf8) == 0xaf63_dc4c_8601_ec8c)
        #expect(StickyHash.fnv1a64("foobar".utf8) == 0x8594_4171_f739_67e8)
        // splitmix64 seeded with 0 outputs mix64(0x9e3779b97f4a7c15) first (Vigna's reference).
        #expect(StickyHash.mix64(0x9e37_79b9_7f4a_7c15) == 0xe220_a839_7b1d_cdaf)
    }

    /// Pinned values of the documented algorithm (computed independently, in Python). If one of
    /// these changes, every sticky user of every deployment moves: that is a breaking change.
    @Test func bucketsArePinned() {
        #expect(StickyHash.bucket(route: "checkout", key: "alice") == 1488)
        #expect(StickyHash.bucket(route: "checkout", key: "bob") == 869)
        #expect(StickyHash.bucket(route: "checkout", key: "") == 9087)
        #expect(StickyHash.bucket(route: "api", key: "alice") == 7223)
        #expect(StickyHash.bucket(route: "checkout", key: "0123456789abcdef") == 3124)
        #expect(StickyHash.bucket(route: "checkout", key: "\u{E9}") == 9103)
        // The NUL separator keeps ("ab", "c") and ("a", "bc") apart.
        #expect(StickyHash.bucket(route: "ab", key: "c") == 794)
        #expect(StickyHash.bucket(route: "a", key: "bc") == 4094)
    }

    @Test func routeSeedFollowsTheName() {
        var route = Route(name: "checkout", target: .backend(v1))
        #expect(route.stickyBucket(key: "alice") == 1488)
        route.name = "api"
        #expect(route.stickyBucket(key: "alice") == 7223)
        #expect(route.stickyBucket(key: "alice"[...]) == StickyHash.bucket(route: "api", key: "alice"))
    }

    /// 10,000 keys over a 75/25 split: the canary count of a correct hash behaves like
    /// Binomial(10000, 0.25): mean 2500, variance npq = 1875. Bernstein's inequality,
    /// P(|X - np| >= t) <= 2 exp(-t² / (2 (npq + t/3))), with t = 240 gives
    /// 57600 / (2 (1875 + 80)) = 14.73 and 2 e^-14.73 = 8.0e-7 < 1e-6 (the exact binomial tail
    /// is 3.3e-8). So a correct implementation lands in (2260, 2740) but for a 1-in-a-million key set.
    @Test func distributionFollowsTheWeights() {
        let split = Split(backends: [v1, v2], weights: [75, 25])
        var canary = 0
        for key in userKeys(10_000) where split.backend(forBucket: StickyHash.bucket(route: "checkout", key: key)) == v2 {
            canary += 1
        }
        #expect(abs(canary - 2500) < 240, "canary got \(canary) of 10000 keys")
    }

    @Test func rampingTheCanaryUpOnlyMovesUsersIn() throws {
        let keys = userKeys(10_000)
        let buckets = keys.map { StickyHash.bucket(route: "checkout", key: $0) }
        var t = table(Route(name: "checkout", target: .split(Split(backends: [v1, v2], weights: [95, 5])),
                            sticky: Sticky(key: .cookie("uid"))))
        func assignment(_ t: RouteTable) -> [BackendID] {
            keys.map { t.decideWithoutDrawing(facts("GET", "/", [("cookie", "uid=\($0)")]))!.backend }
        }
        var previous = assignment(t)
        #expect(previous == buckets.map { Split(backends: [v1, v2], weights: [95, 5]).backend(forBucket: $0) })
        var inCanary = previous.filter { $0 == v2 }.count
        for canary in [10, 25, 50, 100] {
            t = try t.settingWeights(routeNamed: "checkout", weights: ["checkout-v1": 100 - canary, "checkout-v2": canary])
            let now = assignment(t)
            for (before, after) in zip(previous, now) where before == v2 {
                #expect(after == v2, "a key left the canary when it grew to \(canary)")
            }
            let count = now.filter { $0 == v2 }.count
            #expect(count >= inCanary)
            previous = now
            inCanary = count
        }
        #expect(inCanary == 10_000)
        for canary in [50, 25, 10, 5, 0] {
            t = try t.settingWeights(routeNamed: "checkout", weights: ["checkout-v1": 100 - canary, "checkout-v2": canary])
            let now = assignment(t)
            for (before, after) in zip(previous, now) where before == v1 {
                #expect(after == v1, "a key entered the canary when it shrank to \(canary)")
            }
            previous = now
        }
        #expect(previous.allSatisfy { $0 == v1 })
    }

    /// With more than two backends the inner boundaries move too (60/30/10 → 60/30/40 shrinks
    /// v1's share from 60% to 46%), but the last backend's range only grows from the top down,
    /// so nobody leaves it; lowering it only shrinks it, so nobody enters it.
    @Test func theLastOfThreeOnlyGainsWhenRaisedAndOnlyLosesWhenLowered() {
        let low = Split(backends: [v1, v2, v3], weights: [60, 30, 10])
        let high = Split(backends: [v1, v2, v3], weights: [60, 30, 40])
        var moved = 0
        for bucket in 0..<StickyHash.bucketCount {
            let before = low.backend(forBucket: bucket), after = high.backend(forBucket: bucket)
            #expect(before != v3 || after == v3, "raising: bucket \(bucket) left the last backend")
            if before != after { moved += 1 }
        }
        #expect(moved > 0)
    }

    @Test func cookieAndHeaderKeysStickWithoutDrawing() {
        let split = Split(backends: [v1, v2], weights: [50, 50])
        let byCookie = table(Route(name: "checkout", target: .split(split), sticky: Sticky(key: .cookie("uid"))))
        let byHeader = table(Route(name: "checkout", target: .split(split), sticky: Sticky(key: .header("X-User-ID"))))
        for key in userKeys(200) {
            let expected = split.backend(forBucket: StickyHash.bucket(route: "checkout", key: key))
            #expect(byCookie.decideWithoutDrawing(facts("GET", "/", [("Cookie", "a=1; uid=\(key)")]))?.backend == expected)
            #expect(byCookie.decideWithoutDrawing(facts("GET", "/", [("cookie", "uid=\"\(key)\"")]))?.backend == expected)
            #expect(byHeader.decideWithoutDrawing(facts("GET", "/", [("x-user-id", key), ("X-User-Id", "other")]))?.backend == expected)
        }
    }

    @Test func missingOrEmptyKeyDrawsAtRandom() {
        let t = table(Route(name: "checkout", target: .split(Split(backends: [v1, v2], weights: [50, 50])),
                            sticky: Sticky(key: .cookie("uid"))))
        let low = FixedRandom.drawing(0, of: 100), high = FixedRandom.drawing(99, of: 100)
        #expect(t.decide(facts(), drawing: [low])?.backend == v1)
        #expect(t.decide(facts(), drawing: [high])?.backend == v2)
        #expect(t.decide(facts("GET", "/", [("cookie", "uid=")]), drawing: [high])?.backend == v2)
        #expect(t.decide(facts("GET", "/", [("cookie", "UID=alice")]), drawing: [high])?.assignCookie == nil)
        let byHeader = table(Route(name: "checkout", target: .split(Split(backends: [v1, v2], weights: [50, 50])),
                                   sticky: Sticky(key: .header("x-user-id"), assign: true)))
        #expect(byHeader.decide(facts(), drawing: [low])?.assignCookie == nil, "a header key is never assigned")
        // The key is the FIRST cookie called uid / the first value of the header: when that one
        // is empty, a later one does not stand in for it.
        // (Both draws are tried: a request routed by alice's bucket would get one backend for both.)
        for (table, request) in [(t, facts("GET", "/", [("cookie", "uid="), ("cookie", "uid=alice")])),
                                 (t, facts("GET", "/", [("cookie", "uid=; uid=alice")])),
                                 (byHeader, facts("GET", "/", [("x-user-id", ""), ("x-user-id", "alice")]))] {
            #expect(table.decide(request, drawing: [low])?.backend == v1)
            #expect(table.decide(request, drawing: [high])?.backend == v2)
        }
    }

    @Test func assignedCookieSticksToTheVersionItWasRoutedTo() throws {
        let split = Split(backends: [v1, v2], weights: [70, 30])
        let t = table(Route(name: "checkout", target: .split(split),
                            sticky: Sticky(key: .cookie("uid"), assign: true, maxAge: 3600)))
        var random = SplitMix64(seed: 1)
        var seen: Set<BackendID> = []
        for _ in 0..<200 {
            let first = try #require(t.decide(facts(), random: &random))
            let cookie = try #require(first.assignCookie)
            #expect(cookie.name == "uid")
            #expect(cookie.maxAge == 3600)
            #expect(cookie.value.utf8.count == 16)
            #expect(cookie.value.allSatisfy { $0.isHexDigit && !$0.isUppercase })
            #expect(split.backend(forBucket: StickyHash.bucket(route: "checkout", key: cookie.value)) == first.backend)
            let next = try #require(t.decideWithoutDrawing(facts("GET", "/", [("cookie", "uid=\(cookie.value)")])))
            #expect(next.backend == first.backend)
            #expect(next.assignCookie == nil)
            seen.insert(first.backend)
        }
        #expect(seen == [v1, v2])
    }

    @Test func assignedIdIsTheHexOfOneDraw() {
        let t = table(Route(name: "checkout", target: .split(Split(backends: [v1, v2], weights: [1, 1])),
                            sticky: Sticky(key: .cookie("uid"), assign: true)))
        let decision = t.decide(facts(), drawing: [0x0123_4567_89ab_cdef])
        #expect(decision?.assignCookie == CookieAssignment(name: "uid", value: "0123456789abcdef", maxAge: 2_592_000))
        #expect(decision?.backend == BackendID(StickyHash.bucket(route: "checkout", key: "0123456789abcdef") < 5000 ? 0 : 1))
        #expect(t.decide(facts(), drawing: [0])?.assignCookie?.value == "0000000000000000")
        #expect(decision?.assignCookie?.headerValue == "uid=0123456789abcdef; Path=/; Max-Age=2592000; HttpOnly; SameSite=Lax")
    }

    @Test func stickyAppliesToSplitsInsideRules() {
        let ruleSplit = Split(backends: [v2, v3], weights: [50, 50])
        let t = table(Route(name: "checkout",
                            rules: [Rule(conditions: [Condition(subject: .header("x-beta"), value: .present)],
                                         target: .split(ruleSplit))],
                            target: .backend(v1), sticky: Sticky(key: .cookie("uid"), assign: true)))
        for key in userKeys(100) {
            let expected = ruleSplit.backend(forBucket: StickyHash.bucket(route: "checkout", key: key))
            let d = t.decideWithoutDrawing(facts("GET", "/", [("x-beta", "1"), ("cookie", "uid=\(key)")]))
            #expect(d?.backend == expected)
            #expect(d?.rule == 0)
        }
        // A rule or target that names one backend needs no bucket: nothing is assigned or drawn.
        #expect(t.decideWithoutDrawing(facts())?.assignCookie == nil)
        // Without the cookie, the rule's split assigns one.
        let assigned = t.decide(facts("GET", "/", [("x-beta", "")]), drawing: [42])
        #expect(assigned?.assignCookie?.value == "000000000000002a")
    }
}
