/// Finds one parameter in a raw query string without building a dictionary of all of them.
///
/// The query is read as `application/x-www-form-urlencoded` (WHATWG URL §5.1), which is what
/// servers and frameworks do with `?a=1&b=2`:
/// - pairs are split on `&`; empty pairs are skipped;
/// - the name is everything before the first `=`, the value everything after; a pair without
///   `=` is a name with the empty value;
/// - names and values are percent-decoded and `+` is a space; a `%` not followed by two hex
///   digits stays as it is; invalid UTF-8 after decoding becomes U+FFFD;
/// - names are case-sensitive, and the first pair with the name wins (as Envoy's query
///   parameter matcher and Go's `Values.Get` do).
enum QueryString {
    /// The decoded value of the first parameter whose decoded name is `name`.
    static func value(named name: String, in query: Substring) -> Substring? {
        query.withUTF8Bytes { bytes in
            let found = name.withUTF8Bytes { name in valueRange(named: name, in: bytes) }
            guard let found else { return nil }
            if bytes[found].contains(where: { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "+") }) {
                return Substring(decoded(bytes, found))
            }
            return query.utf8Slice(found)
        }
    }

    /// The raw (still encoded) byte range of the value of the first parameter called `name`.
    static func valueRange(named name: UnsafeBufferPointer<UInt8>, in bytes: UnsafeBufferPointer<UInt8>) -> Range<Int>? {
        let end = bytes.count
        var pairStart = 0
        while pairStart < end {
            var pairEnd = pairStart
            var equals = -1
            while pairEnd < end, bytes[pairEnd] != UInt8(ascii: "&") {
                if equals < 0, bytes[pairEnd] == UInt8(ascii: "=") { equals = pairEnd }
                pairEnd += 1
            }
            if pairStart < pairEnd, decodedEquals(bytes, pairStart..<(equals < 0 ? pairEnd : equals), name) {
                return equals < 0 ? pairEnd..<pairEnd : (equals + 1)..<pairEnd
            }
            pairStart = pairEnd + 1
        }
        return nil
    }

    /// Whether `bytes[range]`, decoded, is exactly `expected`; decodes on the fly.
    static func decodedEquals(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>,
                              _ expected: UnsafeBufferPointer<UInt8>) -> Bool {
        var index = range.lowerBound
        var matched = 0
        while index < range.upperBound {
            guard matched < expected.count else { return false }
            let (byte, next) = decodedByte(bytes, at: index, end: range.upperBound)
            if byte != expected[matched] { return false }
            index = next
            matched += 1
        }
        return matched == expected.count
    }

    /// `bytes[range]` decoded.
    static func decoded(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(range.count)
        var index = range.lowerBound
        while index < range.upperBound {
            let (byte, next) = decodedByte(bytes, at: index, end: range.upperBound)
            out.append(byte)
            index = next
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The decoded byte at `index` and the index after its encoding.
    private static func decodedByte(_ bytes: UnsafeBufferPointer<UInt8>, at index: Int, end: Int) -> (UInt8, Int) {
        let byte = bytes[index]
        if byte == UInt8(ascii: "+") { return (UInt8(ascii: " "), index + 1) }
        if byte == UInt8(ascii: "%"), index + 2 < end,
           let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2]) {
            return (high << 4 | low, index + 3)
        }
        return (byte, index + 1)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
