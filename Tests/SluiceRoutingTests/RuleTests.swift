import Testing
@testable import SluiceRouting

@Suite("A/B rules and conditions")
struct RuleTests {
    func regex(_ pattern: String) -> ValueMatcher {
        .regex(try! CompiledRegex(pattern))
    }

    /// A one-rule route: `condition` → v2, otherwise v1.
    func holds(_ condition: Condition, _ f: StaticRequestFacts) -> Bool {
        let t = table(Route(name: "r", rules: [Rule(conditions: [condition], target: .backend(v2))],
                            target: .backend(v1)))
        return t.decideWithoutDrawing(f)?.backend == v2
    }

    func get(_ target: String = "/", _ headers: (String, String)...) -> StaticRequestFacts {
        facts("GET", target, headers)
    }

    @Test func headerConditions() {
        let exact = Condition(subject: .header("x-experiment"), value: .exact("new-checkout"))
        #expect(holds(exact, get("/", ("X-Experiment", "new-checkout"))))
        #expect(holds(exact, get("/", ("x-experiment", "old"), ("X-EXPERIMENT", "new-checkout"))), "any value")
        #expect(!holds(exact, get("/", ("x-experiment", "New-Checkout"))), "values are case-sensitive")
        #expect(!holds(exact, get("/", ("x-experiment", "new-checkout2"))))
        #expect(!holds(exact, get("/")))

        let mixedCaseName = Condition(subject: .header("X-Experiment"), value: .exact("on"))
        #expect(holds(mixedCaseName, get("/", ("x-experiment", "on"))), "a config name is lowercased")

        let re = Condition(subject: .header("user-agent"), value: regex("Mobile"))
        #expect(holds(re, get("/", ("user-agent", "Mozilla/5.0 (iPhone) Mobile/15E148"))), "searched, not anchored")
        #expect(!holds(re, get("/", ("user-agent", "curl/8"))))

        let present = Condition(subject: .header("x-debug"), value: .present)
        #expect(holds(present, get("/", ("x-debug", ""))))
        #expect(!holds(present, get("/", ("x-debugging", "1"))))
    }

    @Test func cookieConditions() {
        let exact = Condition(subject: .cookie("beta"), value: .exact("1"))
        #expect(holds(exact, get("/", ("cookie", "session=x; beta=1"))))
        #expect(holds(exact, get("/", ("cookie", "session=x"), ("Cookie", "beta=1"))))
        #expect(!holds(exact, get("/", ("cookie", "beta2=1"))))
        #expect(!holds(exact, get("/", ("cookie", "Beta=1"))), "cookie names are case-sensitive")
        #expect(!holds(exact, get("/", ("cookie", "beta=0; beta=1"))), "the first occurrence wins")

        let anchored = Condition(subject: .cookie("beta"), value: regex("^(1|true)$"))
        #expect(holds(anchored, get("/", ("cookie", "beta=true"))))
        #expect(holds(anchored, get("/", ("cookie", "beta=\"1\""))))
        #expect(!holds(anchored, get("/", ("cookie", "beta=truely"))))
        let unanchored = Condition(subject: .cookie("beta"), value: regex("1|true"))
        #expect(holds(unanchored, get("/", ("cookie", "beta=truely"))))

        let present = Condition(subject: .cookie("beta"), value: .present)
        #expect(holds(present, get("/", ("cookie", "beta"))))
        #expect(holds(present, get("/", ("cookie", "beta="))))
        #expect(!holds(present, get("/", ("cookie", "alpha=1"))))
        #expect(!holds(present, get("/")))
    }

    @Test func queryConditions() {
        let exact = Condition(subject: .query("variant"), value: .exact("b"))
        #expect(holds(exact, get("/?variant=b")))
        #expect(holds(exact, get("/p?x=1&variant=%62")))
        #expect(!holds(exact, get("/?Variant=b")), "query names are case-sensitive")
        #expect(!holds(exact, get("/?variant=B")))
        #expect(!holds(exact, get("/?variant=a&variant=b")), "the first occurrence wins")
        #expect(!holds(exact, get("/")))

        let re = Condition(subject: .query("q"), value: regex("^shoes( |$)"))
        #expect(holds(re, get("/?q=shoes+red")))
        #expect(!holds(re, get("/?q=red+shoes")))

        let present = Condition(subject: .query("debug"), value: .present)
        #expect(holds(present, get("/?debug")))
        #expect(holds(present, get("/?a=1&debug=")))
        #expect(!holds(present, get("/?debugging=1")))
        #expect(!holds(present, get("/?")))
    }

    @Test func allConditionsOfARuleMustHold() {
        let rule = Rule(conditions: [Condition(subject: .header("x-experiment"), value: .exact("new")),
                                     Condition(subject: .cookie("beta"), value: .present),
                                     Condition(subject: .query("variant"), value: .exact("b"))],
                        target: .backend(v2))
        let t = table(Route(name: "r", rules: [rule], target: .backend(v1)))
        #expect(t.decideWithoutDrawing(get("/?variant=b", ("x-experiment", "new"), ("cookie", "beta=1")))?.backend == v2)
        #expect(t.decideWithoutDrawing(get("/?variant=a", ("x-experiment", "new"), ("cookie", "beta=1")))?.backend == v1)
        #expect(t.decideWithoutDrawing(get("/?variant=b", ("cookie", "beta=1")))?.backend == v1)
        #expect(t.decideWithoutDrawing(get("/?variant=b", ("x-experiment", "new")))?.backend == v1)
    }

    @Test func firstMatchingRuleWins() {
        let t = table(Route(name: "r", rules: [
            Rule(conditions: [Condition(subject: .header("x-a"), value: .present)], target: .backend(v2)),
            Rule(conditions: [Condition(subject: .header("x-b"), value: .present)], target: .backend(v3)),
            Rule(conditions: [], target: .backend(shadow)),
        ], target: .backend(v1)))
        let both = t.decideWithoutDrawing(get("/", ("x-b", "1"), ("x-a", "1")))
        #expect(both?.backend == v2)
        #expect(both?.rule == 0)
        #expect(t.decideWithoutDrawing(get("/", ("x-b", "1")))?.rule == 1)
        let rest = t.decideWithoutDrawing(get("/"))
        #expect(rest?.backend == shadow, "a rule without conditions always holds")
        #expect(rest?.rule == 2)
        let noRules = table(Route(name: "r", target: .backend(v1))).decideWithoutDrawing(get("/"))
        #expect(noRules?.rule == nil)
    }

    @Test func ruleCarriesItsOwnSplit() {
        let t = table(Route(name: "r", rules: [
            Rule(conditions: [Condition(subject: .cookie("beta"), value: .present)],
                 target: .split(Split(backends: [v2, v3], weights: [1, 3]))),
        ], target: .split(Split(backends: [v1, v2], weights: [99, 1]))))
        let beta = get("/", ("cookie", "beta=1"))
        #expect(t.decide(beta, drawing: [FixedRandom.drawing(0, of: 4)])?.backend == v2)
        #expect(t.decide(beta, drawing: [FixedRandom.drawing(1, of: 4)])?.backend == v3)
        #expect(t.decide(beta, drawing: [FixedRandom.drawing(3, of: 4)])?.backend == v3)
        #expect(t.decide(get("/"), drawing: [FixedRandom.drawing(98, of: 100)])?.backend == v1)
        #expect(t.decide(get("/"), drawing: [FixedRandom.drawing(99, of: 100)])?.backend == v2)
    }

    @Test func valueMatcherOnStrings() throws {
        #expect(ValueMatcher.exact("a").matches("a"))
        #expect(!ValueMatcher.exact("caf\u{E9}").matches("cafe\u{301}"), "exact compares bytes")
        #expect(ValueMatcher.present.matches(""))
        #expect(try ValueMatcher.regex(CompiledRegex("b+")).matches("abbbc"))
        #expect(throws: (any Error).self) { try CompiledRegex("(") }
    }
}
