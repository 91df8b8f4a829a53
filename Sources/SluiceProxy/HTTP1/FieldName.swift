/// A field name's syntax check (RFC 9110 §5.1: a `token`) and what it means to the proxy
/// (`HeaderRewrite.Kind`), done together eight bytes at a time.
///
/// Every field of every message goes through here, on both sides of the proxy. Byte by byte,
/// the token check and then a case-insensitive compare against the few names the proxy acts on
/// cost about 220 instructions per field; here a word of a typical name (letters, digits,
/// `-`) is checked with a handful of masks, lowered at the same time, and the lowered words are
/// compared with the known names' words as integers.
enum FieldName {
    /// The kind of `name`, or nil when it is not a token (empty, or a byte outside `tchar`).
    static func classify(_ name: UnsafeRawBufferPointer) -> HeaderRewrite.Kind? {
        let count = name.count
        guard count > 0, let base = name.baseAddress else { return nil }
        // The lowered name's first three words, zero-padded: every name the proxy acts on is
        // at most 19 bytes long.
        var words = Words()
        var i = 0
        while i + 8 <= count {
            let word = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            guard isTokenWord(word, bytes: 8) else { return nil }
            words.set(i / 8, word.asciiLowercased)
            i += 8
        }
        let rest = count - i
        if rest > 0 {
            // The last 1-7 bytes as one zero-padded word, in at most three loads.
            let tailStart = base + i
            var tail: UInt64 = 0
            var at = 0
            if rest & 4 != 0 {
                tail = UInt64(UInt32(littleEndian: tailStart.loadUnaligned(as: UInt32.self)))
                at = 4
            }
            if rest & 2 != 0 {
                tail |= UInt64(UInt16(littleEndian: tailStart.loadUnaligned(fromByteOffset: at, as: UInt16.self))) << UInt64(at * 8)
                at += 2
            }
            if rest & 1 != 0 {
                tail |= UInt64(tailStart.load(fromByteOffset: at, as: UInt8.self)) << UInt64(at * 8)
            }
            guard isTokenWord(tail, bytes: rest) else { return nil }
            words.set(i / 8, tail.asciiLowercased)
        }
        return kind(count: count, words)
    }

    /// Whether the low `bytes` bytes of `word` (1-8) are all token characters: fast when each
    /// is a letter, a digit or `-` (exact per-byte masks, see `UInt64.asciiLowercased`), byte
    /// by byte otherwise.
    @inline(__always)
    private static func isTokenWord(_ word: UInt64, bytes: Int) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let used: UInt64 = bytes == 8 ? ~0 : (1 << UInt64(bytes * 8)) - 1
        let high: UInt64 = 0x80 &* ones & used
        let low7 = word & (0x7F &* ones)
        let ascii = ~word & high
        // Bit 7 set in a byte exactly when the byte is in [from, to).
        func within(_ from: UInt64, _ to: UInt64) -> UInt64 {
            ((low7 &+ (0x80 &- from) &* ones) ^ (low7 &+ (0x80 &- to) &* ones)) & ascii
        }
        let dashes = word ^ (0x2D &* ones)
        let isDash = ~(((dashes & (0x7F &* ones)) &+ (0x7F &* ones)) | dashes) & high
        let fast = within(0x41, 0x5B) | within(0x61, 0x7B) | within(0x30, 0x3A) | isDash
        if fast == high { return true }
        for index in 0..<bytes where !UInt8(truncatingIfNeeded: word >> UInt64(index * 8)).isTokenChar {
            return false
        }
        return true
    }

    @inline(__always)
    private static func kind(count: Int, _ w: Words) -> HeaderRewrite.Kind {
        switch count {
        case 2: return w == Known.te ? .hopByHop : .other
        case 4: return w == Known.host ? .host : .other
        case 6: return w == Known.expect ? .expect : .other
        case 7: return w == Known.trailer ? .hopByHop : w == Known.upgrade ? .upgrade : .other
        case 10: return w == Known.connection ? .connection : w == Known.keepAlive ? .hopByHop : .other
        case 11: return w == Known.grpcStatus ? .grpcStatus : .other
        case 14: return w == Known.contentLength ? .contentLength : .other
        case 15: return w == Known.forwardedFor ? .forwardedFor : .other
        case 16: return w == Known.proxyConnection ? .hopByHop : w == Known.forwardedHost ? .forwardedHost : .other
        case 17:
            return w == Known.transferEncoding ? .transferEncoding : w == Known.forwardedProto ? .forwardedProto : .other
        case 18: return w == Known.proxyAuthenticate ? .hopByHop : .other
        case 19: return w == Known.proxyAuthorization ? .hopByHop : .other
        default: return .other
        }
    }

    /// Up to three words of lowercase name bytes, little-endian, zero-padded.
    struct Words: Equatable {
        var w0: UInt64 = 0, w1: UInt64 = 0, w2: UInt64 = 0

        init() {}

        init(_ w0: UInt64, _ w1: UInt64, _ w2: UInt64) {
            self.w0 = w0
            self.w1 = w1
            self.w2 = w2
        }

        /// The words of a lowercase literal.
        init(_ literal: StaticString) {
            let bytes = UnsafeRawBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount)
            for (i, byte) in bytes.enumerated() where i < 24 {
                set(i / 8, word(i / 8) | UInt64(byte) << UInt64(i % 8 * 8))
            }
        }

        mutating func set(_ index: Int, _ value: UInt64) {
            switch index {
            case 0: w0 = value
            case 1: w1 = value
            case 2: w2 = value
            default: break
            }
        }

        private func word(_ index: Int) -> UInt64 {
            index == 0 ? w0 : index == 1 ? w1 : w2
        }
    }

    /// The names the proxy acts on (the hop-by-hop list, framing, Host, Expect, x-forwarded-*,
    /// grpc-status), as little-endian words of their bytes. Integer literals, so each is static
    /// data rather than a lazily initialised global (`Words(literal)` gives the same words; a
    /// test checks every one).
    enum Known {
        static let te = Words(0x0000_0000_0000_6574, 0, 0) // "te"
        static let host = Words(0x0000_0000_7473_6F68, 0, 0) // "host"
        static let expect = Words(0x0000_7463_6570_7865, 0, 0) // "expect"
        static let trailer = Words(0x0072_656C_6961_7274, 0, 0) // "trailer"
        static let upgrade = Words(0x0065_6461_7267_7075, 0, 0) // "upgrade"
        static let connection = Words(0x6974_6365_6E6E_6F63, 0x0000_0000_0000_6E6F, 0) // "connection"
        static let keepAlive = Words(0x696C_612D_7065_656B, 0x0000_0000_0000_6576, 0) // "keep-alive"
        static let grpcStatus = Words(0x6174_732D_6370_7267, 0x0000_0000_0073_7574, 0) // "grpc-status"
        static let contentLength = Words(0x2D74_6E65_746E_6F63, 0x0000_6874_676E_656C, 0) // "content-length"
        static let forwardedFor = Words(0x7261_7772_6F66_2D78, 0x0072_6F66_2D64_6564, 0) // "x-forwarded-for"
        static let proxyConnection = Words(0x6F63_2D79_786F_7270, 0x6E6F_6974_6365_6E6E, 0) // "proxy-connection"
        static let forwardedHost = Words(0x7261_7772_6F66_2D78, 0x7473_6F68_2D64_6564, 0) // "x-forwarded-host"
        static let transferEncoding = Words(0x7265_6673_6E61_7274, 0x6E69_646F_636E_652D, 0x0000_0000_0000_0067) // "transfer-encoding"
        static let forwardedProto = Words(0x7261_7772_6F66_2D78, 0x746F_7270_2D64_6564, 0x0000_0000_0000_006F) // "x-forwarded-proto"
        static let proxyAuthenticate = Words(0x7561_2D79_786F_7270, 0x6163_6974_6E65_6874, 0x0000_0000_0000_6574) // "proxy-authenticate"
        static let proxyAuthorization = Words(0x7561_2D79_786F_7270, 0x7461_7A69_726F_6874, 0x0000_0000_006E_6F69) // "proxy-authorization"
    }
}
