import Foundation

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
    ///
    /// Pair by pair: each pair's end is found with `memchr` (a browser's Cookie line can run to
    /// kilobytes of analytics cookies), and only a pair that starts with `name` is looked into.
    /// `name` is a token (RFC 9110 §5.6.2; the config refuses anything else), so it holds no
    /// `=`, `;` or whitespace.
    static func valueRange(named name: UnsafeBufferPointer<UInt8>, in bytes: UnsafeBufferPointer<UInt8>) -> Range<Int>? {
        // Pairs with an empty name are skipped, so an empty name is never found.
        guard !name.isEmpty, let base = bytes.baseAddress else { return nil }
        let end = bytes.count
        var pairStart = 0
        while pairStart < end {
            let pairEnd = memchr(base + pairStart, Int32(UInt8(ascii: ";")), end - pairStart)
                .map { UnsafePointer($0.assumingMemoryBound(to: UInt8.self)) - base } ?? end
            var at = pairStart
            while at < pairEnd, ASCII.isWhitespace(bytes[at]) { at += 1 }
            if pairEnd - at >= name.count, ASCII.equal(bytes, at..<(at + name.count), name) {
                at += name.count
                while at < pairEnd, ASCII.isWhitespace(bytes[at]) { at += 1 }
                // The name alone is the name with the empty value; a longer name is another cookie.
                if at == pairEnd { return pairEnd..<pairEnd }
                if bytes[at] == UInt8(ascii: "=") { return unquoted(bytes, trimmed(bytes, (at + 1)..<pairEnd)) }
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
