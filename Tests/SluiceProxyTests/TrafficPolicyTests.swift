import Foundation
import Testing
import SluiceProxy
import SluiceRouting

/// End-to-end tests of the traffic policies (SPEC "Config file", "Semantics that users rely on"):
/// weighted splits, sticky buckets, A/B rules, route matching and blue-green, each driven through
/// a real proxy in front of real test backends.
///
/// Statistical assertions are bounded so that a correct proxy fails with probability < 1e-6:
/// for N independent draws with share p the count has sd = sqrt(N p (1-p)), and a two-sided
/// bound of 5.0 sd has tail probability ≈ 5.7e-7 (normal approximation; N p ≥ 500 here).
/// "Both outcomes appear in N fair draws" fails with probability 2 * 2^-N (N ≥ 100 → < 1e-29).

/// The version that served a response: the test backend's `x-backend-version` header, or its
/// JSON echo.
fileprivate func servedBy(_ r: RawHTTPClient.Response) -> String {
    r.header("x-backend-version") ?? (r.json["version"] as? String) ?? "status \(r.status)"
}

/// A one-shot request on a fresh connection (for requests whose connection may be closed).
fileprivate func once(_ h: Harness, _ method: String = "GET", _ target: String, host: String = "test.local",
                      headers: [(String, String)] = []) throws -> RawHTTPClient.Response {
    let c = try h.client()
    defer { c.close() }
    return try c.request(method, target, host: host, headers: headers)
}

/// Sends `requests` GETs over `connections` keep-alive connections; counts the serving versions.
fileprivate func tally(_ h: Harness, requests: Int, connections: Int, target: String) throws -> [String: Int] {
    var counts: [String: Int] = [:]
    for _ in 0..<connections {
        let c = try h.client()
        defer { c.close() }
        for i in 0..<(requests / connections) {
            let r = try c.request("GET", "\(target)?i=\(i)")
            let version = r.status == 200 ? servedBy(r) : "status \(r.status)"
            counts[version, default: 0] += 1
        }
    }
    return counts
}

extension EndToEnd {
@Suite struct TrafficPolicy {
    // MARK: Weighted split

    @Test func weightedSplitDrawsEachRequestWithTheConfiguredShare() async throws {
        try await Harness.withTwoVersions(route: """
            split: { a: 90, b: 10 }
            """) { h in
            // N = 6000, p = 0.1 (b's share): sd = sqrt(6000 * 0.1 * 0.9) = sqrt(540) = 23.24
            // requests = 0.387 pp; 5 sd = 116.2 requests = 1.94 pp. That is tighter than the
            // spec's ±2 pp (120 requests), so the 5-sigma bound is the binding one; both are
            // asserted. (At N = 5000, 5 sd would be 2.12 pp, looser than ±2 pp: hence N = 6000.)
            let n = 6000
            let p = 0.1
            let sd = (Double(n) * p * (1 - p)).squareRoot()
            let bound = 5.0 * sd
            // Three keep-alive connections, 2000 requests each.
            let counts = try tally(h, requests: n, connections: 3, target: "/w")
            let v1 = counts["v1", default: 0], v2 = counts["v2", default: 0]
            #expect(v1 + v2 == n, "unexpected outcomes: \(counts)")
            let deviation = abs(Double(v2) - Double(n) * p)
            #expect(deviation <= bound, "v2 got \(v2) of \(n); expected \(Int(Double(n) * p)) ± \(bound) (5 sd)")
            let share = Double(v2) / Double(n)
            #expect(abs(share - p) <= 0.02, "v2 share \(share) is not within ±2 pp of \(p)")
            // What the clients saw is what the backends got.
            #expect(h.backends[0].received.count == v1)
            #expect(h.backends[1].received.count == v2)
        }
    }

    @Test func zeroWeightBackendGetsNothing() async throws {
        try await Harness.withTwoVersions(route: """
            split: { a: 1, b: 0 }
            """) { h in
            let c = try h.client()
            for _ in 0..<500 {
                let r = try c.request("GET", "/z")
                #expect(r.status == 200)
                #expect(servedBy(r) == "v1")
            }
            #expect(h.backends[0].received.count == 500)
            #expect(h.backends[1].received.isEmpty)
        }
    }

    @Test func zeroWeightFirstBackendGetsNothingEitherUnderSticky() async throws {
        // A 0-weight backend owns no sticky bucket, wherever it is listed.
        try await Harness.withTwoVersions(route: """
            split: { a: 0, b: 3 }
            sticky: { header: x-user-id }
            """) { h in
            let c = try h.client()
            for i in 0..<300 {
                let r = try c.request("GET", "/z", headers: i % 2 == 0 ? [("X-User-Id", "u\(i)")] : [])
                #expect(servedBy(r) == "v2")
            }
            #expect(h.backends[0].received.isEmpty)
        }
    }

    // MARK: Sticky

    @Test func stickyCookieKeepsOneUserOnOneVersion() async throws {
        try await Harness.withTwoVersions(route: """
            split: { a: 50, b: 50 }
            sticky: { cookie: uid }
            """) { h in
            let table = h.proxy.store.load().table
            let split = Split(backends: [table.backendID(named: "a")!, table.backendID(named: "b")!], weights: [50, 50])
            let version = [table.backendID(named: "a")!: "v1", table.backendID(named: "b")!: "v2"]
            let c = try h.client()
            for user in ["alice", "bob", "carol", "dave"] {
                let expected = version[split.backend(forBucket: StickyHash.bucket(route: "web", key: user))]!
                for i in 0..<100 {
                    // The cookie among others, in varying positions.
                    let cookie = i % 2 == 0 ? "uid=\(user)" : "theme=dark; uid=\(user); lang=en"
                    let r = try c.request("GET", "/s", headers: [("Cookie", cookie)])
                    #expect(r.status == 200)
                    #expect(servedBy(r) == expected, "\(user), request \(i)")
                    // Without `assign` the proxy never sets the cookie.
                    #expect(r.header("set-cookie") == nil)
                }
            }
            // Without the cookie each request draws: 200 fair draws show both versions
            // (all-equal probability 2 * 2^-200).
            var seen = Set<String>()
            for _ in 0..<200 { seen.insert(servedBy(try c.request("GET", "/s"))) }
            #expect(seen == ["v1", "v2"])
        }
    }

    @Test func stickyAssignSetsTheCookieAndTheCookieSticks() async throws {
        try await Harness.withTwoVersions(route: """
            split: { a: 50, b: 50 }
            sticky: { cookie: uid, assign: true }
            """) { h in
            let table = h.proxy.store.load().table
            let split = Split(backends: [table.backendID(named: "a")!, table.backendID(named: "b")!], weights: [50, 50])
            let version = [table.backendID(named: "a")!: "v1", table.backendID(named: "b")!: "v2"]
            let pattern = try NSRegularExpression(
                pattern: "^uid=([^;\\s]+); Path=/; Max-Age=([1-9][0-9]*); HttpOnly; SameSite=Lax$")
            let c = try h.client()
            var assigned: [(id: String, version: String)] = []
            for i in 0..<20 {
                let r = try c.request("GET", "/first?i=\(i)")
                #expect(r.status == 200)
                let cookies = r.headers("set-cookie")
                #expect(cookies.count == 1, "Set-Cookie: \(cookies)")
                guard let value = cookies.first,
                      let m = pattern.firstMatch(in: value, range: NSRange(value.startIndex..., in: value)),
                      let idRange = Range(m.range(at: 1), in: value) else {
                    Issue.record("Set-Cookie '\(cookies.first ?? "<none>")' does not have the promised form")
                    continue
                }
                let id = String(value[idRange])
                // The first request already went where the assigned id's bucket points.
                let expected = version[split.backend(forBucket: StickyHash.bucket(route: "web", key: id))]!
                #expect(servedBy(r) == expected, "assigned \(id)")
                assigned.append((id, servedBy(r)))
            }
            #expect(Set(assigned.map(\.id)).count == assigned.count, "assigned ids repeat: \(assigned.map(\.id))")
            // Sending the cookie back always lands where the first request did, and sets nothing.
            guard let first = assigned.first else { return }
            for i in 0..<50 {
                let r = try c.request("GET", "/again?i=\(i)", headers: [("Cookie", "uid=\(first.id)")])
                #expect(servedBy(r) == first.version)
                #expect(r.header("set-cookie") == nil)
            }
        }
    }

    @Test func stickyAssignTreatsAnEmptyCookieAsAbsentAndRulesToOneBackendAssignNothing() async throws {
        try await Harness.withTwoVersions(route: """
            rules:
              - when: { headers: { x-force: b } }
                backend: b
            split: { a: 50, b: 50 }
            sticky: { cookie: uid, assign: true }
            """) { h in
            let c = try h.client()
            // `uid=` carries no identity: the proxy assigns one.
            let empty = try c.request("GET", "/", headers: [("Cookie", "uid=")])
            let assigned = empty.header("set-cookie") ?? ""
            #expect(assigned.hasPrefix("uid="), "Set-Cookie: \(assigned)")
            #expect(!assigned.hasPrefix("uid=;"), "Set-Cookie: \(assigned)")
            // A rule naming one backend consults no bucket, so it assigns no cookie.
            let forced = try c.request("GET", "/", headers: [("x-force", "b")])
            #expect(servedBy(forced) == "v2")
            #expect(forced.header("set-cookie") == nil)
            // The cookie in a second Cookie header line still counts.
            let table = h.proxy.store.load().table
            let split = Split(backends: [table.backendID(named: "a")!, table.backendID(named: "b")!], weights: [50, 50])
            let version = [table.backendID(named: "a")!: "v1", table.backendID(named: "b")!: "v2"]
            for user in ["u1", "u2", "u3", "u4", "u5", "u6"] {
                let expected = version[split.backend(forBucket: StickyHash.bucket(route: "web", key: user))]!
                let r = try c.request("GET", "/", headers: [("Cookie", "theme=dark"), ("Cookie", "uid=\(user)")])
                #expect(servedBy(r) == expected, "\(user)")
                #expect(r.header("set-cookie") == nil)
            }
        }
    }

    @Test func stickyAssignHonoursMaxAge() async throws {
        try await Harness.withTwoVersions(route: """
            split: { a: 50, b: 50 }
            sticky: { cookie: sid, assign: true, maxAge: 2h }
            """) { h in
            let r = try once(h, "GET", "/")
            let value = r.header("set-cookie") ?? ""
            #expect(value.hasPrefix("sid="))
            #expect(value.hasSuffix("; Path=/; Max-Age=7200; HttpOnly; SameSite=Lax"), "Set-Cookie: \(value)")
        }
    }

    @Test func stickyHeaderKeepsOneUserOnOneVersion() async throws {
        try await Harness.withTwoVersions(route: """
            split: { a: 50, b: 50 }
            sticky: { header: x-user-id }
            """) { h in
            let table = h.proxy.store.load().table
            let split = Split(backends: [table.backendID(named: "a")!, table.backendID(named: "b")!], weights: [50, 50])
            let version = [table.backendID(named: "a")!: "v1", table.backendID(named: "b")!: "v2"]
            let c = try h.client()
            var versionsSeen = Set<String>()
            for u in 0..<20 {
                let user = "user-\(u)"
                let expected = version[split.backend(forBucket: StickyHash.bucket(route: "web", key: user))]!
                versionsSeen.insert(expected)
                for i in 0..<20 {
                    // Header names are case-insensitive.
                    let name = i % 2 == 0 ? "x-user-id" : "X-User-ID"
                    let r = try c.request("GET", "/h", headers: [(name, user)])
                    #expect(servedBy(r) == expected, "\(user), request \(i)")
                    #expect(r.header("set-cookie") == nil)
                }
            }
            var seen = Set<String>()
            for _ in 0..<200 { seen.insert(servedBy(try c.request("GET", "/h"))) }
            #expect(seen == ["v1", "v2"])
        }
    }

    @Test func stickyRampFollowsThePureCoreAndOnlyMovesUsersIntoTheCanary() async throws {
        // The same route name across restarts at rising canary weights: every user lands exactly
        // where `StickyHash.bucket` + `Split.backend(forBucket:)` say, and the canary's user set
        // only grows.
        let users = (0..<200).map { "user-\($0)" }
        let stages = [5, 25, 50, 90]
        let canaries = LockedBox<[Int: Set<String>]>([:])
        for weight in stages {
            try await Harness.withYAML(backends: [.init(version: "v1"), .init(version: "v2")], config: """
                listen: ["127.0.0.1:1"]
                backends:
                  stable: { version: v1, endpoints: ["${B0}"] }
                  canary: { version: v2, endpoints: ["${B1}"] }
                routes:
                  - name: checkout
                    split: { stable: \(100 - weight), canary: \(weight) }
                    sticky: { cookie: uid }
                """) { h in
                let table = h.proxy.store.load().table
                let stable = table.backendID(named: "stable")!, canary = table.backendID(named: "canary")!
                let split = Split(backends: [stable, canary], weights: [100 - weight, weight])
                let c = try h.client()
                var inCanary = Set<String>()
                for user in users {
                    let expected = split.backend(forBucket: StickyHash.bucket(route: "checkout", key: user)) == canary ? "v2" : "v1"
                    let r = try c.request("GET", "/checkout", headers: [("Cookie", "uid=\(user)")])
                    #expect(r.status == 200)
                    #expect(servedBy(r) == expected, "\(user) at canary weight \(weight)")
                    if servedBy(r) == "v2" { inCanary.insert(user) }
                }
                canaries.withLock { $0[weight] = inCanary }
            }
        }
        let byWeight = canaries.withLock { $0 }
        for (lower, higher) in zip(stages, stages.dropFirst()) {
            let moved = byWeight[lower, default: []].subtracting(byWeight[higher, default: []])
            #expect(moved.isEmpty, "raising the canary \(lower) → \(higher) moved users out of it: \(moved.sorted())")
        }
    }

    // MARK: A/B rules

    @Test func abRulesRouteByHeaderCookieQueryAndPresence() async throws {
        try await Harness.withTwoVersions(route: """
            rules:
              - when: { headers: { x-experiment: new-checkout } }
                backend: b
              - when: { cookies: { beta: { regex: "^(1|true)$" } } }
                backend: b
              - when: { query: { variant: b } }
                backend: b
              - when: { headers: { x-canary: { present: true } } }
                backend: b
              - when: { headers: { x-both: "1" }, query: { both: "1" } }
                backend: b
            backend: a
            """) { h in
            let c = try h.client()
            func via(_ target: String, _ headers: [(String, String)] = []) throws -> String {
                let r = try c.request("GET", target, headers: headers)
                #expect(r.status == 200)
                return servedBy(r)
            }
            // Nothing matches: the route's own target.
            #expect(try via("/") == "v1")
            // Header, exact value; the name is case-insensitive.
            #expect(try via("/", [("x-experiment", "new-checkout")]) == "v2")
            #expect(try via("/", [("X-Experiment", "new-checkout")]) == "v2")
            #expect(try via("/", [("x-experiment", "old-checkout")]) == "v1")
            #expect(try via("/", [("x-experiment", "new-checkout-2")]) == "v1")
            // Cookie, regex.
            #expect(try via("/", [("Cookie", "beta=1")]) == "v2")
            #expect(try via("/", [("Cookie", "beta=true")]) == "v2")
            #expect(try via("/", [("Cookie", "a=x; beta=true; c=y")]) == "v2")
            #expect(try via("/", [("Cookie", "beta=10")]) == "v1")
            #expect(try via("/", [("Cookie", "beta=0")]) == "v1")
            #expect(try via("/", [("Cookie", "notbeta=1")]) == "v1")
            // Cookie names are case-sensitive.
            #expect(try via("/", [("Cookie", "Beta=1")]) == "v1")
            // Query, exact value; names are case-sensitive.
            #expect(try via("/p?variant=b") == "v2")
            #expect(try via("/p?x=1&variant=b&y=2") == "v2")
            #expect(try via("/p?variant=a") == "v1")
            #expect(try via("/p?variant=bb") == "v1")
            #expect(try via("/p?Variant=b") == "v1")
            // Presence: any value, even an empty one.
            #expect(try via("/", [("x-canary", "anything")]) == "v2")
            #expect(try via("/", [("X-Canary", "")]) == "v2")
            // All conditions of one rule must hold (AND).
            #expect(try via("/?both=1", [("x-both", "1")]) == "v2")
            #expect(try via("/?both=1") == "v1")
            #expect(try via("/", [("x-both", "1")]) == "v1")
        }
    }

    @Test func firstMatchingRuleWinsAndARuleMayCarryItsOwnSplit() async throws {
        try await Harness.withYAML(backends: [.init(version: "v1"), .init(version: "v2"), .init(version: "v3")], config: """
            listen: ["127.0.0.1:1"]
            backends:
              a: { version: v1, endpoints: ["${B0}"] }
              b: { version: v2, endpoints: ["${B1}"] }
              c: { version: v3, endpoints: ["${B2}"] }
            routes:
              - name: web
                rules:
                  - when: { headers: { x-group: gold } }
                    backend: c
                  - when: { headers: { x-group: { present: true } } }
                    backend: b
                  - when: { query: { mix: "1" } }
                    split: { b: 1, c: 1 }
                backend: a
            """) { h in
            let c = try h.client()
            func via(_ target: String, _ headers: [(String, String)] = []) throws -> String {
                servedBy(try c.request("GET", target, headers: headers))
            }
            // Both the first and the second rule fit: the first wins.
            #expect(try via("/", [("x-group", "gold")]) == "v3")
            #expect(try via("/", [("x-group", "silver")]) == "v2")
            // The first two rules fit before the third, whatever the query says.
            #expect(try via("/?mix=1", [("x-group", "gold")]) == "v3")
            #expect(try via("/?mix=1", [("x-group", "silver")]) == "v2")
            #expect(try via("/") == "v1")
            // The rule's own split: only its backends, each drawn (200 fair draws show both:
            // failure probability 2 * 2^-200).
            var seen: [String: Int] = [:]
            for i in 0..<200 { seen[try via("/?mix=1&i=\(i)"), default: 0] += 1 }
            #expect(Set(seen.keys) == ["v2", "v3"], "rule split outcomes: \(seen)")
        }
    }

    // MARK: Route matching

    @Test func routesMatchByHostPathPrefixAndMethod() async throws {
        try await Harness.withYAML(backends: [.init(version: "v1"), .init(version: "v2"), .init(version: "v3")], config: """
            listen: ["127.0.0.1:1"]
            backends:
              a: { version: v1, endpoints: ["${B0}"] }
              b: { version: v2, endpoints: ["${B1}"] }
              c: { version: v3, endpoints: ["${B2}"] }
            routes:
              - name: health
                match: { path: /healthz }
                backend: c
              - name: shop
                match: { host: shop.example.com }
                backend: a
              - name: wild
                match: { host: "*.example.com" }
                backend: b
              - name: api
                match: { pathPrefix: /api, methods: [GET, POST] }
                backend: c
            """) { (h: Harness) throws in
            func via(_ target: String, method: String = "GET", host: String) throws -> String {
                let r = try once(h, method, target, host: host)
                return r.status == 200 ? servedBy(r) : "status \(r.status)"
            }
            // Exact host: the port of the Host header is ignored, letters compare case-insensitively.
            #expect(try via("/x", host: "shop.example.com") == "v1")
            #expect(try via("/x", host: "shop.example.com:8080") == "v1")
            #expect(try via("/x", host: "SHOP.Example.COM") == "v1")
            // Leading wildcard: one or more labels, never the bare domain.
            #expect(try via("/x", host: "www.example.com") == "v2")
            #expect(try via("/x", host: "a.b.example.com:8443") == "v2")
            #expect(try via("/x", host: "example.com") == "status 404")
            #expect(try via("/x", host: "shop.example.org") == "status 404")
            // Exact path (before the host routes: first route wins).
            #expect(try via("/healthz", host: "shop.example.com") == "v3")
            #expect(try via("/healthz/x", host: "other.test") == "status 404")
            // Path prefix (a plain string prefix) and methods.
            #expect(try via("/api", host: "other.test") == "v3")
            #expect(try via("/api/users?id=1", host: "other.test") == "v3")
            #expect(try via("/api/users", method: "POST", host: "other.test") == "v3")
            #expect(try via("/api/users", method: "DELETE", host: "other.test") == "status 404")
            #expect(try via("/ap", host: "other.test") == "status 404")
            #expect(try via("/v1/api", host: "other.test") == "status 404")
        }
    }

    @Test func noMatchingRouteIsA404WithATextBody() async throws {
        try await Harness.withYAML(backends: [.init(version: "v1")], config: """
            listen: ["127.0.0.1:1"]
            backends:
              a: { version: v1, endpoints: ["${B0}"] }
            routes:
              - name: api
                match: { pathPrefix: /api }
                backend: a
            """) { h in
            let c = try h.client()
            let r = try c.request("GET", "/nothing/here?q=1")
            #expect(r.status == 404)
            #expect(r.header("content-type")?.hasPrefix("text/plain") == true)
            #expect(!r.body.isEmpty)
            #expect(r.bodyString.lowercased().contains("no route"), "404 body: \(r.bodyString)")
            #expect(r.header("x-backend-version") == nil)
            #expect(h.backends[0].received.isEmpty)
            // The connection stays usable after a bodyless 404.
            let ok = try c.request("GET", "/api/x")
            #expect(ok.status == 200)
            #expect(try h.statistics().unrouted == 1)
        }
    }

    // MARK: Blue-green

    @Test func blueGreenSendsAllToActiveAndPreviewHeaderToPreview() async throws {
        try await Harness.withYAML(backends: [.init(version: "v1"), .init(version: "v2")], config: """
            listen: ["127.0.0.1:1"]
            backends:
              blue: { version: v1, endpoints: ["${B0}"] }
              green: { version: v2, endpoints: ["${B1}"] }
            routes:
              - name: custom
                match: { pathPrefix: /custom }
                blueGreen: { active: green, preview: blue, previewHeader: X-Try-Next }
              - name: api
                blueGreen: { active: blue, preview: green }
            """) { h in
            let c = try h.client()
            for i in 0..<100 {
                let r = try c.request("GET", "/api/\(i)")
                #expect(r.status == 200)
                #expect(servedBy(r) == "v1")
            }
            #expect(h.backends[1].received.isEmpty)
            // The default preview header, any value (and any case of the name).
            for value in ["anything", "1", "true", "no"] {
                #expect(servedBy(try c.request("GET", "/api", headers: [("x-preview", value)])) == "v2")
            }
            #expect(servedBy(try c.request("GET", "/api", headers: [("X-Preview", "x")])) == "v2")
            // "Any value" includes an empty one: the header is there.
            #expect(servedBy(try c.request("GET", "/api", headers: [("x-preview", "")])) == "v2")
            // Header absent again: active.
            #expect(servedBy(try c.request("GET", "/api")) == "v1")
            // Another header does not count.
            #expect(servedBy(try c.request("GET", "/api", headers: [("x-preview-not", "1")])) == "v1")
            // A configured preview header (written in mixed case) on a route whose active is green.
            #expect(servedBy(try c.request("GET", "/custom")) == "v2")
            #expect(servedBy(try c.request("GET", "/custom", headers: [("x-try-next", "y")])) == "v1")
            #expect(servedBy(try c.request("GET", "/custom", headers: [("x-preview", "y")])) == "v2")
        }
    }
}
}

/// A value shared between a test and the bodies it runs on other threads.
final class LockedBox<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: T
    init(_ value: T) { self.value = value }
    func withLock<R>(_ body: (inout T) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
