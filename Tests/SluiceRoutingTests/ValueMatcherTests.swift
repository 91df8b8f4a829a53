import Foundation
import Testing
@testable import SluiceRouting

/// The literal fast path of `CompiledRegex` must give exactly the regex engine's answers.
@Suite("Regex conditions: the literal-alternatives fast path")
struct ValueMatcherTests {
    /// Which patterns become literal lists, and which stay with the regex engine.
    @Test func onlyWholeValueChoicesBetweenPlainWordsAreLiterals() {
        #expect(CompiledRegex.literalAlternatives("^(1|true)$") == ["1", "true"])
        #expect(CompiledRegex.literalAlternatives("^(?:canary|b-2|x_y)$") == ["canary", "b-2", "x_y"])
        #expect(CompiledRegex.literalAlternatives("^beta$") == ["beta"])
        for pattern in ["^a|b$", "(1|true)", "^(1|true)", "1|true$", "^(a.b)$", "^(a|)$", "^()$", "^$",
                        "^(a|b)|(c)$", "^(a|(b))$", "^[ab]$", "^a+$", "^(?i:a)$", "^a b$"] {
            #expect(CompiledRegex.literalAlternatives(pattern) == nil, "\(pattern)")
        }
    }

    /// Every pattern × value gives the same answer as `NSRegularExpression` itself, including
    /// values the fast path must leave to the engine (a trailing newline, which `$` accepts),
    /// whether the value comes as a `String` or as its UTF-8 bytes.
    @Test func fastPathAgreesWithTheRegexEngine() throws {
        let patterns = ["^(1|true)$", "^(?:canary|b-2|x_y)$", "^beta$", "^(A|a)$", "^a|b$"]
        let values = ["", "1", "true", "True", "TRUE", "1 ", " 1", "11", "true\n", "true\r\n", "truex", "xtrue",
                      "canary", "b-2", "b_2", "x_y", "beta", "beta\n", "Beta", "A", "a", "ab", "b", "ba", "zb", "é"]
        for pattern in patterns {
            let compiled = try CompiledRegex(pattern)
            let engine = try NSRegularExpression(pattern: pattern)
            for value in values {
                let expected = engine.firstMatch(in: value, range: NSRange(value.startIndex..<value.endIndex, in: value)) != nil
                #expect(compiled.matches(value) == expected, "\(pattern) on \(value.debugDescription)")
                // The same value as bytes in place (how header and cookie values are matched).
                var bytes = value
                #expect(bytes.withUTF8 { compiled.matches($0) } == expected, "\(pattern) on bytes of \(value.debugDescription)")
            }
        }
    }
}
