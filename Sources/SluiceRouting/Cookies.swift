/// Finds one cookie in `Cookie` request headers without parsing the rest.
///
/// The grammar is RFC 6265 §4.2.1, `cookie-pair *( ";" SP cookie-pair )`, read leniently as
/// §5.4 invites user agents' output to be read:
/// - every `Cookie` line is searched, in the order sent (HTTP/2 splits cookies over lines,
///   RFC 9113 §8.2.3), and the first pair with the name wins (§5.4: earlier cookies are the more
///   specific ones);
/// - spaces and tabs around names and values are ignored, so `a=1;b=2` and `a = 1 ;  b=2` work;
/// - a value wrapped in one pair of DQUOTEs (§4.1.1 `cookie-value`) is returned without them;
/// - a pair without `=` is a name with the empty value (as Go's `net/http` reads it), and a pair
///   with an empty name is skipped;
/// - names are case-sensitive and whole: `beta2=1` is not the cookie `beta`.
enum CookieHeader {
    /// `body` applied to the bytes of the first cookie called `name` in the request's `Cookie`
    /// fields; nil when there is none. Read in place: neither the lines nor the value are copied.
    static func value<F: RequestFacts, T>(named name: String, in facts: F,
                                          _ body: (UnsafeBufferPointer<UInt8>) -> T) -> T? {
        name.withUTF8Bytes { name in
            facts.firstHeaderValue("cookie") { line in
                valueRange(named: name, in: line).map { body(UnsafeBufferPointer(rebasing: line[$0])) }
            }
        }
    }

    /// The byte range of the value of the first cookie called `name` in `bytes`.
    static func valueRange(named name: UnsafeBufferPointer<UInt8>, in bytes: UnsafeBufferPointer<UInt8>) -> Range<Int>? {
        let end = bytes.count
        var pairStart = 0
        while pairStart < end {
            var pairEnd = pairStart
            var equals = -1
            while pairEnd < end, bytes[pairEnd] != UInt8(ascii: ";") {
                if equals < 0, bytes[pairEnd] == UInt8(ascii: "=") { equals = pairEnd }
                pairEnd += 1
            }
            let nameRange = trimmed(bytes, pairStart..<(equals < 0 ? pairEnd : equals))
            if !nameRange.isEmpty, ASCII.equal(bytes, nameRange, name) {
                guard equals >= 0 else { return pairEnd..<pairEnd }
                return unquoted(bytes, trimmed(bytes, (equals + 1)..<pairEnd))
            }
            pairStart = pairEnd + 1
        }
        return nil
    }

    /// `range` without leading and trailing spaces and tabs.
    private static func trimmed(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> Range<Int> {
        var lower = range.lowerBound
        var upper = range.upperBound
        while lower < upper, ASCII.isWhitespace(bytes[lower]) { lower += 1 }
        while lower < upper, ASCII.isWhitespace(bytes[upper - 1]) { upper -= 1 }
        return lower..<upper
    }

    /// `range` without one enclosing pair of DQUOTEs, if it has one.
    private static func unquoted(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> Range<Int> {
        guard range.count >= 2, bytes[range.lowerBound] == UInt8(ascii: "\""),
              bytes[range.upperBound - 1] == UInt8(ascii: "\"") else { return range }
        return (range.lowerBound + 1)..<(range.upperBound - 1)
    }
}
