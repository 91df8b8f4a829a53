import Foundation

/// The three forms a header, cookie or query condition takes: an exact string, `{regex: RE}`,
/// or `{present: true}`.
///
/// Exact values compare byte for byte (no Unicode normalisation: header bytes are not text).
public enum ValueMatcher: Sendable {
    case exact(String)
    case regex(CompiledRegex)
    case present

    public func matches(_ value: String) -> Bool {
        switch self {
        case .exact(let expected): return ASCII.equal(value, expected)
        case .regex(let re): return re.matches(value)
        case .present: return true
        }
    }
}

/// A regular expression compiled once at config load. It is searched in the value, so it is
/// anchored only where the pattern says so (`^...$`).
///
/// The most common rule pattern is a whole-value choice between words — `^(1|true)$`,
/// `^beta$`, `^(?:canary|b)$`. Such a pattern is also kept as its list of literals and, for a
/// value of printable ASCII (where `$` cannot match before a line terminator), decided by
/// comparing strings: the same answer as the regex engine (tested against it) for ~1% of the
/// cost of a search through `NSRegularExpression` and ICU.
///
/// A class, immutable: a condition's matcher is copied as rules are evaluated, and a copy of a
/// struct of three references was three reference-count updates (atomic, ~8 ns each on a
/// current Xeon) where one object's is one.
public final class CompiledRegex: Sendable {
    public let pattern: String
    private let regex: NSRegularExpression
    /// The pattern's alternatives when it is `^word$`, `^(w1|w2|...)$` or `^(?:w1|...)$` with
    /// words of `[A-Za-z0-9_-]`; nil otherwise.
    let literals: [String]?

    public init(_ pattern: String) throws {
        self.pattern = pattern
        self.regex = try NSRegularExpression(pattern: pattern)
        self.literals = Self.literalAlternatives(pattern)
    }

    public func matches(_ value: String) -> Bool {
        if let literals, value.utf8.allSatisfy(Self.isPrintableASCII) {
            return literals.contains { ASCII.equal(value[...], $0) }
        }
        let range = NSRange(value.startIndex..<value.endIndex, in: value)
        return regex.firstMatch(in: value, options: [], range: range) != nil
    }

    /// `matches(_:)` for UTF-8 bytes (a header or cookie value in place): a `String` is made
    /// only when the regex engine has to run.
    func matches(_ value: UnsafeBufferPointer<UInt8>) -> Bool {
        if let literals, value.allSatisfy(Self.isPrintableASCII) {
            return literals.contains { $0.withUTF8Bytes { ASCII.equal(value, 0..<value.count, $0) } }
        }
        return matches(String(decoding: value, as: UTF8.self))
    }

    @inline(__always)
    private static func isPrintableASCII(_ byte: UInt8) -> Bool { byte >= 0x20 && byte < 0x7F }

    /// The words of an anchored alternation of plain words, or nil for any other pattern.
    static func literalAlternatives(_ pattern: String) -> [String]? {
        guard pattern.hasPrefix("^"), pattern.hasSuffix("$"), pattern.utf8.count >= 2 else { return nil }
        var body = pattern.dropFirst().dropLast()
        var grouped = false
        if body.hasPrefix("(?:"), body.hasSuffix(")") {
            body = body.dropFirst(3).dropLast()
            grouped = true
        } else if body.hasPrefix("("), body.hasSuffix(")") {
            body = body.dropFirst().dropLast()
            grouped = true
        }
        let words = body.split(separator: "|", omittingEmptySubsequences: false)
        // `^a|b$` is (^a) or (b$), not a whole-value choice: alternatives need the group.
        guard grouped || words.count == 1 else { return nil }
        func plain(_ word: Substring) -> Bool {
            !word.isEmpty && word.utf8.allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                     UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"):
                    return true
                default:
                    return false
                }
            }
        }
        guard words.allSatisfy(plain) else { return nil }
        return words.map(String.init)
    }
}
