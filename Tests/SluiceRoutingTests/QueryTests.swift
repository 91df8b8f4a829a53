import Testing
@testable import SluiceRouting

@Suite("Query string scanning")
struct QueryTests {
    func value(_ name: String, _ query: String) -> String? {
        QueryString.value(named: name, in: query[...]).map(String.init)
    }

    @Test func plainPairs() {
        #expect(value("a", "a=1&b=2") == "1")
        #expect(value("b", "a=1&b=2") == "2")
        #expect(value("c", "a=1&b=2") == nil)
        #expect(value("a", "") == nil)
        #expect(value("a", "&&a=1&") == "1")
        #expect(value("a", "a=1=2") == "1=2")
    }

    @Test func percentDecodingAndPlus() {
        #expect(value("q", "q=hello+world") == "hello world")
        #expect(value("q", "q=a%20b%2Bc") == "a b+c")
        #expect(value("q", "q=%C3%A9t%c3%a9") == "\u{E9}t\u{E9}")
        #expect(value("my key", "my+key=1") == "1")
        #expect(value("my key", "my%20key=2") == "2")
        #expect(value("a&b", "a%26b=3&a=4") == "3")
        #expect(value("a=b", "a%3Db=5") == "5")
        #expect(value("q", "q=%zz%4") == "%zz%4", "invalid escapes stay")
        #expect(value("q", "q=100%") == "100%")
        #expect(value("q", "q=%FF") == "\u{FFFD}", "invalid UTF-8 becomes U+FFFD")
        #expect(value("ab", "a%=1&ab=2") == "2")
    }

    @Test func missingEqualsIsTheEmptyValue() {
        #expect(value("debug", "debug") == "")
        #expect(value("debug", "a=1&debug&b=2") == "")
        #expect(value("debug", "debug=") == "")
    }

    @Test func repeatedNamesFirstWins() {
        #expect(value("v", "v=1&v=2") == "1")
        #expect(value("v", "v&v=2") == "")
    }

    @Test func namesAreWholeAndCaseSensitive() {
        #expect(value("variant", "Variant=a&variant=b") == "b")
        #expect(value("variant", "variants=a") == nil)
        #expect(value("variants", "variant=a") == nil)
        #expect(value("Variant", "variant=a") == nil)
    }

    func decodedEquals(_ raw: String, _ expected: String) -> Bool {
        raw.withUTF8Bytes { raw in
            expected.withUTF8Bytes { QueryString.decodedEquals(raw, 0..<raw.count, $0) }
        }
    }

    @Test func decodedEqualsIsExact() {
        #expect(decodedEquals("a%62", "ab"))
        #expect(!decodedEquals("a%62", "a"))
        #expect(!decodedEquals("a", "ab"))
        #expect(decodedEquals("", ""))
        #expect(decodedEquals("%", "%"))
        #expect(decodedEquals("%4", "%4"))
    }

    @Test func slicesOfASubstringQuery() {
        // The query is a slice of the target; offsets are relative to the slice.
        let f = StaticRequestFacts(target: "/p/\u{E9}?x=\u{1F600}&y=2")
        let query = f.query!
        #expect(QueryString.value(named: "x", in: query) == "\u{1F600}")
        #expect(QueryString.value(named: "y", in: query) == "2")
    }
}
