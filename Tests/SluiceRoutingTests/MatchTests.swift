import Testing
@testable import SluiceRouting

@Suite("Route matching")
struct MatchTests {
    func route(_ name: String, _ match: RouteMatch, _ backend: BackendID) -> Route {
        Route(name: name, match: match, target: .backend(backend))
    }

    func matches(_ pattern: HostPattern, _ authority: String?) -> Bool {
        let t = table(route("r", RouteMatch(host: pattern), v1))
        return t.decideWithoutDrawing(facts(host: authority)) != nil
    }

    @Test func exactHostIgnoresPortAndCase() {
        #expect(matches(.exact("shop.example.com"), "shop.example.com"))
        #expect(matches(.exact("shop.example.com"), "shop.example.com:8080"))
        #expect(matches(.exact("shop.example.com"), "Shop.EXAMPLE.com:443"))
        #expect(matches(.exact("shop.example.com"), "shop.example.com."))
        #expect(!matches(.exact("shop.example.com"), "shop.example.co"))
        #expect(!matches(.exact("shop.example.com"), "xshop.example.com"))
        #expect(!matches(.exact("shop.example.com"), "shop.example.com.evil"))
        #expect(!matches(.exact("shop.example.com"), nil))
        #expect(!matches(.exact("shop.example.com"), ""))
    }

    @Test func wildcardHostNeedsAtLeastOneLabel() {
        let star = HostPattern.wildcard(suffix: ".example.com")
        #expect(matches(star, "a.example.com"))
        #expect(matches(star, "a.b.example.com:8443"))
        #expect(matches(star, "API.Example.COM"))
        #expect(!matches(star, "example.com"))
        #expect(!matches(star, ".example.com"))
        #expect(!matches(star, "badexample.com"))
        #expect(!matches(star, "a.example.com.evil"))
        #expect(!matches(star, nil))
    }

    @Test func ipv6LiteralKeepsBracketsAndDropsPort() {
        #expect(matches(.exact("[::1]"), "[::1]:8080"))
        #expect(matches(.exact("[::1]"), "[::1]"))
        #expect(matches(.exact("::1"), "[::1]:8080"))
        #expect(matches(.exact("[2001:db8::1]"), "[2001:DB8::1]:443"))
        #expect(!matches(.exact("[::1]"), "[::2]:8080"))
        #expect(!matches(.exact("::"), "[::1]"))
        #expect(matches(.exact("127.0.0.1"), "127.0.0.1:8080"))
    }

    @Test func pathIsExactAndPathPrefixIsAStringPrefix() {
        let t = table(route("exact", RouteMatch(path: "/health"), v1),
                      route("prefix", RouteMatch(pathPrefix: "/api"), v2))
        #expect(t.decideWithoutDrawing(facts("GET", "/health"))?.backend == v1)
        #expect(t.decideWithoutDrawing(facts("GET", "/health?full=1"))?.backend == v1)
        #expect(t.decideWithoutDrawing(facts("GET", "/health/")) == nil)
        #expect(t.decideWithoutDrawing(facts("GET", "/Health")) == nil)
        #expect(t.decideWithoutDrawing(facts("GET", "/api"))?.backend == v2)
        #expect(t.decideWithoutDrawing(facts("GET", "/api/v1/users?x=/health"))?.backend == v2)
        #expect(t.decideWithoutDrawing(facts("GET", "/apix"))?.backend == v2)
        #expect(t.decideWithoutDrawing(facts("GET", "/ap")) == nil)
        #expect(t.decideWithoutDrawing(facts("GET", "/API")) == nil)
    }

    @Test func pathComparesBytesNotUnicodeEquivalence() {
        // "é" precomposed vs "e" + combining acute: equal as Swift Strings, different paths.
        let t = table(route("r", RouteMatch(path: "/caf\u{E9}"), v1))
        #expect(t.decideWithoutDrawing(facts("GET", "/caf\u{E9}")) != nil)
        #expect(t.decideWithoutDrawing(facts("GET", "/cafe\u{301}")) == nil)
    }

    @Test func methods() {
        let t = table(route("writes", RouteMatch(methods: ["POST", "PUT"]), v2))
        #expect(t.decideWithoutDrawing(facts("POST"))?.backend == v2)
        #expect(t.decideWithoutDrawing(facts("PUT"))?.backend == v2)
        #expect(t.decideWithoutDrawing(facts("GET")) == nil)
        #expect(t.decideWithoutDrawing(facts("post")) == nil, "methods are case-sensitive (RFC 9110 §9.1)")
    }

    @Test func allFieldsMustFit() {
        let t = table(route("r", RouteMatch(host: .exact("shop.example.com"), pathPrefix: "/checkout",
                                            methods: ["GET"]), v1))
        #expect(t.decideWithoutDrawing(facts("GET", "/checkout/cart"))?.backend == v1)
        #expect(t.decideWithoutDrawing(facts("POST", "/checkout/cart")) == nil)
        #expect(t.decideWithoutDrawing(facts("GET", "/cart")) == nil)
        #expect(t.decideWithoutDrawing(facts("GET", "/checkout", host: "other.example.com")) == nil)
    }

    @Test func firstMatchingRouteWinsAndNoMatchIsNil() {
        let t = table(route("api", RouteMatch(pathPrefix: "/api"), v2),
                      route("api-v1", RouteMatch(pathPrefix: "/api/v1"), v3),
                      route("default", RouteMatch(), v1))
        let api = t.decideWithoutDrawing(facts("GET", "/api/v1/x"))
        #expect(api?.route == RouteID(0))
        #expect(api?.backend == v2)
        #expect(t.decideWithoutDrawing(facts("DELETE", "/other", host: nil)) == Decision(route: RouteID(2), backend: v1))
        #expect(table(route("api", RouteMatch(pathPrefix: "/api"), v2)).decideWithoutDrawing(facts("GET", "/")) == nil)
        #expect(RouteTable(routes: [], backendNames: []).decideWithoutDrawing(facts()) == nil)
    }
}
