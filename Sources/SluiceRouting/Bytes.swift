/// Byte-level helpers for protocol text, which is ASCII where it matters (RFC 9110 §5.6).
///
/// The matchers scan UTF-8 bytes in place (`withUTF8Bytes`): no per-request copies, no
/// Unicode-aware comparisons (a header or path is bytes, not text to normalise).
enum ASCII {
    @inline(__always)
    static func lowercased(_ byte: UInt8) -> UInt8 {
        byte &- UInt8(ascii: "A") < 26 ? byte | 0x20 : byte
    }

    @inline(__always)
    static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t")
    }

    /// Whether `bytes[range]` equals `other`, byte for byte.
    static func equal(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, _ other: UnsafeBufferPointer<UInt8>) -> Bool {
        guard range.count == other.count else { return false }
        var j = 0
        for i in range {
            if bytes[i] != other[j] { return false }
            j += 1
        }
        return true
    }

    /// Whether `bytes[range]` equals `other` with ASCII letters compared case-insensitively.
    static func equalIgnoringCase(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>,
                                  _ other: UnsafeBufferPointer<UInt8>) -> Bool {
        guard range.count == other.count else { return false }
        var j = 0
        for i in range {
            if lowercased(bytes[i]) != lowercased(other[j]) { return false }
            j += 1
        }
        return true
    }

    /// Whether two strings have the same UTF-8 bytes.
    static func equal(_ a: some StringProtocol, _ b: some StringProtocol) -> Bool {
        a.withUTF8Bytes { x in b.withUTF8Bytes { y in equal(x, 0..<x.count, y) } }
    }

    /// Whether two strings are equal with ASCII letters compared case-insensitively.
    static func equalIgnoringCase(_ a: some StringProtocol, _ b: some StringProtocol) -> Bool {
        a.withUTF8Bytes { x in b.withUTF8Bytes { y in equalIgnoringCase(x, 0..<x.count, y) } }
    }

    /// Whether the UTF-8 bytes of `a` start with those of `prefix`.
    static func hasPrefix(_ a: some StringProtocol, _ prefix: some StringProtocol) -> Bool {
        a.withUTF8Bytes { x in
            prefix.withUTF8Bytes { y in y.count <= x.count && equal(x, 0..<y.count, y) }
        }
    }
}

extension StringProtocol {
    /// Runs `body` over the string's UTF-8 bytes, in place for a native string (the usual case)
    /// and over a contiguous copy otherwise (e.g. a bridged string).
    @inline(__always)
    func withUTF8Bytes<R>(_ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        if let result = utf8.withContiguousStorageIfAvailable(body) { return result }
        var copy = String(self)
        return copy.withUTF8(body)
    }

}

extension Substring {
    /// The slice made of the UTF-8 bytes at `offsets`, counted from this slice's start (which
    /// lie on scalar boundaries: the scanners only cut at ASCII delimiters).
    func utf8Slice(_ offsets: Range<Int>) -> Substring {
        let lower = utf8.index(utf8.startIndex, offsetBy: offsets.lowerBound)
        return Substring(utf8[lower..<utf8.index(lower, offsetBy: offsets.count)])
    }
}
