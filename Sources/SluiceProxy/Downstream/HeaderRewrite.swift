import NIOCore
import NIOHTTP1

/// Header rules shared by every forwarded message (RFC 9110 §7.6.1), applied in ONE pass over
/// the fields (the request path's header work was a dozen scans before; see the README's
/// Performance section and `bench/HISTORY.md`).
///
/// Hop-by-hop fields describe one connection, not the message, so a proxy must not forward
/// them: the fixed list below plus every field named in `Connection`. `Transfer-Encoding` is
/// re-stated by the proxy from the message's own framing; `TE` and `Trailer` are left out too.
///
/// The hop-by-hop list: Connection, Keep-Alive, Proxy-Connection, Proxy-Authenticate,
/// Proxy-Authorization, TE, Trailer, Transfer-Encoding, Upgrade (`kind(of:)`).
enum HeaderRewrite {
    /// What a field name means to the proxy.
    enum Kind {
        case other, hopByHop, upgrade, connection, transferEncoding, contentLength, host, expect
        case forwardedFor, forwardedProto, forwardedHost
        /// Not hop-by-hop: noted on responses for gRPC error counting.
        case grpcStatus
    }

    /// Classifies `name` without allocating (`FieldName`; a name that is not a token is `.other`).
    static func kind(of name: String) -> Kind {
        var name = name
        return name.withUTF8 { kind(ofBytes: UnsafeRawBufferPointer($0)) }
    }

    static func kind(ofBytes bytes: UnsafeRawBufferPointer) -> Kind {
        FieldName.classify(bytes) ?? .other
    }

    /// One pass over a client's request fields: hop-by-hop fields out, `Expect` answered by the
    /// proxy (so dropped), `x-forwarded-for` appended, `-proto` and `-host` set (Sluice is the
    /// edge), framing re-stated explicitly. Also checks the RFC 9112 rules a parser may leave to
    /// us (no CL+TE, TE ending in chunked, one Host on HTTP/1.1). Nothing is copied: the writer
    /// copies the kept lines (`UpstreamRequest.keeps`) and then the proxy's own fields
    /// (`UpstreamRequest.forEachProxyField`).
    ///
    /// `authority`: the host of an absolute-form request target (RFC 9112 §3.2.2: it replaces
    /// any Host field, which is then not checked either).
    static func forwardRequest(_ head: RequestHead, clientAddress: String, scheme: String,
                               authority: String? = nil) -> UpstreamRequest {
        let block = head.fields
        return block.withBytes { bytes -> UpstreamRequest in
            let out = UpstreamRequest(head: head)
            out.clientAddress = clientAddress
            out.scheme = scheme
            var hostCount = 0
            var transferEncodings = 0
            var lastCodingChunked = false
            var conflictingLengths = false
            for field in block.fields {
                switch field.kind {
                case .other, .grpcStatus, .hopByHop, .forwardedProto, .forwardedHost:
                    continue
                case .upgrade:
                    out.upgrade = block.value(field)
                case .expect:
                    if bytes.value(field).equalsIgnoringCase("100-continue") { out.expectsContinue = true }
                case .connection:
                    out.connection.scan(bytes: bytes.value(field))
                case .transferEncoding:
                    transferEncodings += 1
                    lastCodingChunked = lastCodingIsChunked(bytes.value(field))
                case .contentLength:
                    let value = block.value(field)
                    if let seen = out.contentLength {
                        if seen != value { conflictingLengths = true }
                    } else {
                        out.contentLength = value
                        out.firstLength = field.nameStart
                    }
                case .host:
                    hostCount += 1
                    if out.hostField == nil { out.hostField = field }
                case .forwardedFor:
                    let value = block.value(field)
                    out.priorForwardedFor = out.priorForwardedFor.map { "\($0), \(value)" } ?? value
                }
            }
            if transferEncodings > 0 {
                out.chunked = lastCodingChunked
                if out.contentLength != nil {
                    out.problem = (.badRequest, "malformed request: both Content-Length and Transfer-Encoding")
                } else if !out.chunked {
                    out.problem = (.badRequest, "malformed request: Transfer-Encoding must end in chunked")
                }
            }
            if conflictingLengths {
                out.problem = (.badRequest, "malformed request: conflicting Content-Length values")
            }
            let http11 = head.version.major == 1 && head.version.minor >= 1
            if let authority {
                out.authority = authority
            } else if http11 {
                if hostCount == 0 { out.problem = (.badRequest, "malformed request: missing Host header") }
                if hostCount > 1 { out.problem = (.badRequest, "malformed request: more than one Host header") }
            }
            out.keepAlive = out.connection.keepAlive(http11: http11 || head.version.major > 1)
            if !out.connection.upgradeToken { out.upgrade = nil }
            return out
        }
    }

    /// What the header pass learned about a backend's response, and which fields go on.
    struct ForwardedResponse {
        /// Framed by a `Content-Length` or chunked, i.e. not delimited by the close.
        var framed = false
        /// The backend keeps the connection open.
        var keepAlive = true
        /// The `Upgrade` value (a 101 passes it on).
        var upgrade: String?
        /// `grpc-status` in the head (a trailers-only gRPC answer).
        var grpcStatus: String?
        /// The `Connection` tokens: fields it lists are hop-by-hop too.
        var connection = ConnectionTokens()

        /// Whether `field` is forwarded: not hop-by-hop (the fixed list, `Transfer-Encoding`,
        /// which the proxy re-states, and whatever `Connection` names).
        func keeps(_ field: FieldBlock.Field, in bytes: UnsafeRawBufferPointer) -> Bool {
            switch field.kind {
            case .hopByHop, .upgrade, .connection, .transferEncoding: return false
            default: return !connection.listsAny || !connection.lists(bytes: bytes.name(field))
            }
        }
    }

    /// One pass over a backend's response fields: framing, keep-alive, Upgrade, grpc-status,
    /// and the `Connection` tokens that decide what else is hop-by-hop. Nothing is copied; the
    /// writer copies the kept lines (`ForwardedResponse.keeps`).
    static func forwardResponse(_ head: ResponseHead) -> ForwardedResponse {
        let block = head.fields
        return block.withBytes { bytes -> ForwardedResponse in
            var out = ForwardedResponse()
            for field in block.fields {
                switch field.kind {
                case .connection:
                    out.connection.scan(bytes: bytes.value(field))
                case .transferEncoding:
                    if lastCodingIsChunked(bytes.value(field)) { out.framed = true }
                case .contentLength:
                    out.framed = true
                case .upgrade:
                    out.upgrade = block.value(field)
                case .grpcStatus:
                    out.grpcStatus = block.value(field)
                default:
                    continue
                }
            }
            out.keepAlive = out.connection.keepAlive(http11: head.version.major > 1 || head.version.minor >= 1)
            return out
        }
    }

    /// Whether the last coding of a `Transfer-Encoding` value is `chunked`.
    static func lastCodingIsChunked(_ value: UnsafeRawBufferPointer) -> Bool {
        var end = value.count
        while end > 0, value[end - 1] == .space || value[end - 1] == .tab { end -= 1 }
        var start = end
        while start > 0, value[start - 1] != .comma { start -= 1 }
        while start < end, value[start] == .space || value[start] == .tab { start += 1 }
        return UnsafeRawBufferPointer(rebasing: value[start..<end]).equalsIgnoringCase("chunked")
    }

    /// The tokens of `Connection` fields: `close`, `keep-alive`, and the names of other fields
    /// that are hop-by-hop for this message (RFC 9110 §7.6.1). Scanned as bytes; a name is only
    /// made a `String` in the rare message that lists one.
    struct ConnectionTokens {
        private(set) var close = false
        private(set) var keepAliveToken = false
        private(set) var upgradeToken = false
        private var listed: [String] = []

        var listsAny: Bool { !listed.isEmpty }

        mutating func scan(bytes: UnsafeRawBufferPointer) {
            var start = 0
            while start < bytes.count {
                var end = start
                while end < bytes.count, bytes[end] != .comma { end += 1 }
                var a = start
                var b = end
                while a < b, bytes[a] == .space || bytes[a] == .tab { a += 1 }
                while b > a, bytes[b - 1] == .space || bytes[b - 1] == .tab { b -= 1 }
                let token = UnsafeRawBufferPointer(rebasing: bytes[a..<b])
                if token.equalsIgnoringCase("close") {
                    close = true
                } else if token.equalsIgnoringCase("keep-alive") {
                    keepAliveToken = true
                } else if token.equalsIgnoringCase("upgrade") {
                    upgradeToken = true
                } else if !token.isEmpty {
                    listed.append(String(decoding: token, as: UTF8.self).lowercased())
                }
                start = end + 1
            }
        }

        /// Persistence (RFC 9112 §9.3): HTTP/1.1 unless `close`; HTTP/1.0 only with `keep-alive`.
        func keepAlive(http11: Bool) -> Bool {
            close ? false : (http11 || keepAliveToken)
        }

        /// Whether the field called `name` is listed (other than `close`, `keep-alive`,
        /// `upgrade`), compared ASCII case-insensitively.
        func lists(bytes name: UnsafeRawBufferPointer) -> Bool {
            listed.contains { name.equalsIgnoringCase(lowercased: $0) }
        }
    }

    /// Whether the upstream connection can carry another request after this response: the
    /// backend keeps it alive and the body's end is known without the connection closing
    /// (framed, or a response that has no body: to HEAD, 204, 304).
    static func upstreamReusable(status: HTTPResponseStatus, keepAlive: Bool, framed: Bool, requestWasHEAD: Bool) -> Bool {
        keepAlive && (framed || requestWasHEAD || status.code == 204 || status.code == 304)
    }
}

/// Which of a client's fields go on, and the proxy's own (the rules of `HeaderRewrite`).
extension UpstreamRequest {
    /// Whether the client's `field` is forwarded: not hop-by-hop (the fixed list, whatever
    /// `Connection` names), not `Expect` (answered here) or `Transfer-Encoding` (re-stated),
    /// not an `x-forwarded-*` the proxy sets itself.
    func keeps(_ field: FieldBlock.Field, in bytes: UnsafeRawBufferPointer) -> Bool {
        switch field.kind {
        case .other, .grpcStatus: return !connection.listsAny || !connection.lists(bytes: bytes.name(field))
        case .host: return !replacesHost
        case .contentLength: return field.nameStart == firstLength
        case .hopByHop, .upgrade, .connection, .transferEncoding, .expect, .forwardedFor, .forwardedProto, .forwardedHost:
            return false
        }
    }

    /// The request's host: the absolute-form target's, or the first Host field's value.
    func host(in block: FieldBlock) -> String? {
        authority ?? hostField.map(block.value)
    }

    /// The proxy's own fields, after the client's kept ones, each handed to `body` in order:
    /// the Host of an absolute-form target and the framing re-stated (HTTP/1.1 only: an HTTP/2
    /// block has `:authority` and frames its body itself), then `x-forwarded-*` (Sluice is the
    /// edge), with `host` (`host(in:)`) as `x-forwarded-host`. `HTTP1Writer` writes the same
    /// fields in the same order itself; an HTTP/2 block takes them without a list in between
    /// (the list's growth alone cost ~1.3k instructions a request).
    func forEachProxyField(host: String?, http1: Bool, _ body: (String, String) -> Void) {
        if http1 {
            if let authority { body("host", authority) }
            if chunked { body("transfer-encoding", "chunked") }
        }
        body("x-forwarded-for", priorForwardedFor.map { "\($0), \(clientAddress)" } ?? clientAddress)
        body("x-forwarded-proto", scheme)
        if let host { body("x-forwarded-host", host) }
    }
}

extension SocketAddress {
    /// The client's address as `x-forwarded-for` gives it, formatted once per connection.
    /// NIO's `ipAddress` goes through `inet_ntop` (an `sprintf` inside: ~1.7k instructions, paid
    /// again by every new connection); an IPv4 address, the usual case, is written here
    /// directly into a small string (at most 15 bytes: stored inline, no allocation).
    var forwardedFor: String {
        guard case .v4(let v4) = self else { return ipAddress ?? "unknown" }
        let address = UInt32(bigEndian: v4.address.sin_addr.s_addr)
        return String(unsafeUninitializedCapacity: 15) { out in
            var count = 0
            for shift in stride(from: UInt32(24), through: 0, by: -8) {
                let octet = Int(address >> shift & 0xFF)
                if octet >= 100 { out[count] = UInt8(ascii: "0") + UInt8(octet / 100); count += 1 }
                if octet >= 10 { out[count] = UInt8(ascii: "0") + UInt8(octet / 10 % 10); count += 1 }
                out[count] = UInt8(ascii: "0") + UInt8(octet % 10)
                count += 1
                if shift > 0 { out[count] = UInt8(ascii: "."); count += 1 }
            }
            return count
        }
    }
}
