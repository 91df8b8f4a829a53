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
public struct CompiledRegex: Sendable {
    public let pattern: String
    private let regex: NSRegularExpression

    public init(_ pattern: String) throws {
        self.pattern = pattern
        self.regex = try NSRegularExpression(pattern: pattern)
    }

    public func matches(_ value: String) -> Bool {
        let range = NSRange(value.startIndex..<value.endIndex, in: value)
        return regex.firstMatch(in: value, options: [], range: range) != nil
    }
}
