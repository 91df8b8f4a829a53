import Testing
@testable import SluiceRouting

@Suite("Cookie header scanning")
struct CookieTests {
    func value(_ name: String, _ lines: String...) -> String? {
        let facts = StaticRequestFacts(headers: lines.map { (name: "Cookie", value: $0) })
        return CookieHeader.value(named: name, in: facts) { String(decoding: $0, as: UTF8.self) }
    }

    @Test func wellFormedPairs() {
        #expect(value("a", "a=b; c=d") == "b")
        #expect(value("c", "a=b; c=d") == "d")
        #expect(value("e", "a=b; c=d") == nil)
        #expect(value("a") == nil)
        #expect(value("a", "") == nil)
    }

    @Test func whitespaceIsTolerated() {
        #expect(value("c", "a=b;c=d") == "d")
        #expect(value("c", "a=b ;   c = d  ") == "d")
        #expect(value("a", "  a\t=\tb ; c=d") == "b")
        #expect(value("c", "a=b;;  ;c=d;") == "d")
        #expect(value("v", "v=two words") == "two words")
    }

    @Test func quotedValuesLoseOnePairOfQuotes() {
        #expect(value("a", "a=\"b\"") == "b")
        #expect(value("a", "a=\"\"") == "")
        #expect(value("a", "a=\"") == "\"")
        #expect(value("a", "a=\"b") == "\"b")
        #expect(value("a", "a=\"\"b\"\"") == "\"b\"")
    }

    @Test func valuesMayContainEquals() {
        #expect(value("token", "token=abc==; x=1") == "abc==")
    }

    @Test func nameWithoutValueIsEmpty() {
        #expect(value("flag", "a=1; flag; b=2") == "")
        #expect(value("flag", "flag") == "")
        #expect(value("flag", "flag=") == "")
        #expect(value("", "=x; a=1") == nil, "an empty name is skipped")
    }

    @Test func namesAreWholeAndCaseSensitive() {
        #expect(value("beta", "beta2=1; beta=2") == "2")
        #expect(value("beta", "xbeta=1") == nil)
        #expect(value("beta", "beta2=1") == nil)
        #expect(value("beta2", "beta=1") == nil)
        #expect(value("Beta", "beta=1") == nil)
        #expect(value("beta", "Beta=1; beta=2") == "2")
        #expect(value("a", "a b=1; a=2") == "2", "the pair's name is `a b`")
        #expect(value("beta", "beta x") == nil)
    }

    @Test func aLongLineIsSearchedToItsEnd() {
        let analytics = (0..<200).map { "_ga\($0)=GA1.2.\($0 * 7919)" }.joined(separator: "; ")
        #expect(value("uid", analytics + "; uid=alice") == "alice")
        #expect(value("uid", analytics) == nil)
        #expect(value("_ga199", analytics) == "GA1.2.\(199 * 7919)")
    }

    @Test func everyLineIsSearchedAndTheFirstOccurrenceWins() {
        #expect(value("b", "a=1", "b=2") == "2")
        #expect(value("a", "a=1; a=2") == "1")
        #expect(value("a", "x=0", "a=1", "a=2") == "1")
        #expect(value("a", "a=first", "a=second") == "first")
    }

    @Test func nonASCIIValuesSliceExactly() {
        #expect(value("n", "n=caf\u{E9}; m=\u{1F600}") == "caf\u{E9}")
        #expect(value("m", "n=caf\u{E9}; m=\"\u{1F600}\"") == "\u{1F600}")
        #expect(value("q", "q=\"\u{301}\"") == "\u{301}")
    }
}
