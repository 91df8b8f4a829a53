import NIOHTTP1

/// Header rules shared by every forwarded message (RFC 9110 §7.6.1), applied in ONE pass over
/// the fields (the request path's header work was a dozen scans before; see the README's
/// Performance section).
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
        case other, hopByHop, connection, transferEncoding, contentLength, host, expect
        case forwardedFor, forwardedProto, forwardedHost
    }

    /// Classifies `name` without allocating: by length first, then an ASCII case-insensitive compare.
    static func kind(of name: String) -> Kind {
        var name = name
        return name.withUTF8 { bytes -> Kind in
            func eq(_ lower: StaticString) -> Bool {
                guard bytes.count == lower.utf8CodeUnitCount else { return false }
                let l = lower.utf8Start
                for i in 0..<bytes.count where bytes[i] | 0x20 != l[i] | 0x20 { return false }
                return true
            }
            switch bytes.count {
            case 2: return eq("te") ? .hopByHop : .other
            case 4: return eq("host") ? .host : .other
            case 6: return eq("expect") ? .expect : .other
            case 7: return eq("trailer") || eq("upgrade") ? .hopByHop : .other
            case 10: return eq("connection") ? .connection : eq("keep-alive") ? .hopByHop : .other
            case 14: return eq("content-length") ? .contentLength : .other
            case 15: return eq("x-forwarded-for") ? .forwardedFor : .other
            case 16:
                if eq("proxy-connection") { return .hopByHop }
                return eq("x-forwarded-host") ? .forwardedHost : .other
            case 17:
                if eq("transfer-encoding") { return .transferEncoding }
                return eq("x-forwarded-proto") ? .forwardedProto : .other
            case 18: return eq("proxy-authenticate") ? .hopByHop : .other
            case 19: return eq("proxy-authorization") ? .hopByHop : .other
            default: return .other
            }
        }
    }

    /// The request head as the backend sees it, and what the one pass learned on the way.
    struct ForwardedRequest {
        var headers = HTTPHeaders()
        /// A framing or Host problem: the status and message of the 400 to answer with.
        var problem: (HTTPResponseStatus, String)?
        var expectsContinue = false
        var chunked = false
        var contentLength: String?
        var host: String?
    }

    /// Copies `head`'s fields for the upstream request in one pass: hop-by-hop fields out,
    /// `Expect` answered by the proxy (so dropped), `x-forwarded-for` appended, `-proto` and
    /// `-host` set (Sluice is the edge), framing re-stated explicitly. Also checks the RFC 9112
    /// rules the decoder leaves to us (no CL+TE, TE ending in chunked, one Host on HTTP/1.1).
    static func forwardRequest(_ head: HTTPRequestHead, clientAddress: String, scheme: String) -> ForwardedRequest {
        var out = ForwardedRequest()
        var hostCount = 0
        var transferEncodings = 0
        var lastTransferEncoding = ""
        var lengthCount = 0
        var conflictingLengths = false
        var priorForwardedFor: String?
        var connectionValues: [String] = []
        // Names to take out of the copy; most requests have none, and then the copy below is
        // the client's own header storage plus three appended fields.
        var remove: [String] = []
        for (name, value) in head.headers {
            switch kind(of: name) {
            case .other:
                continue
            case .hopByHop, .forwardedProto, .forwardedHost:
                remove.append(name)
            case .expect:
                remove.append(name)
                if value.lowercased() == "100-continue" { out.expectsContinue = true }
            case .connection:
                connectionValues.append(value)
                remove.append(name)
            case .transferEncoding:
                transferEncodings += 1
                lastTransferEncoding = value
                remove.append(name)
            case .contentLength:
                lengthCount += 1
                if let seen = out.contentLength {
                    if seen != value { conflictingLengths = true }
                } else {
                    out.contentLength = value
                }
            case .host:
                hostCount += 1
                if out.host == nil { out.host = value }
            case .forwardedFor:
                priorForwardedFor = priorForwardedFor.map { "\($0), \(value)" } ?? value
                remove.append(name)
            }
        }
        if transferEncodings > 0 {
            out.chunked = lastTransferEncoding.split(separator: ",").last.map {
                $0.trimmingSpaces.lowercased() == "chunked"
            } ?? false
            if out.contentLength != nil {
                out.problem = (.badRequest, "malformed request: both Content-Length and Transfer-Encoding")
            } else if !out.chunked {
                out.problem = (.badRequest, "malformed request: Transfer-Encoding must end in chunked")
            }
        }
        if conflictingLengths {
            out.problem = (.badRequest, "malformed request: conflicting Content-Length values")
        }
        if head.version.major == 1, head.version.minor >= 1 {
            if hostCount == 0 { out.problem = (.badRequest, "malformed request: missing Host header") }
            if hostCount > 1 { out.problem = (.badRequest, "malformed request: more than one Host header") }
        }
        if out.problem != nil { return out }
        var headers = head.headers
        for name in remove { headers.remove(name: name) }
        if lengthCount > 1, let length = out.contentLength {
            headers.remove(name: "content-length")
            headers.add(name: "content-length", value: length)
        }
        removeListed(in: connectionValues, from: &headers)
        if out.chunked { headers.add(name: "transfer-encoding", value: "chunked") }
        headers.add(name: "x-forwarded-for", value: priorForwardedFor.map { "\($0), \(clientAddress)" } ?? clientAddress)
        headers.add(name: "x-forwarded-proto", value: scheme)
        if let host = out.host { headers.add(name: "x-forwarded-host", value: host) }
        out.headers = headers
        return out
    }

    /// The response fields to pass downstream (hop-by-hop out), and whether the upstream
    /// message was framed (a `Content-Length` or chunked), i.e. not delimited by close.
    /// Without hop-by-hop fields the upstream's own header storage is passed on untouched.
    static func forwardResponse(_ source: HTTPHeaders) -> (headers: HTTPHeaders, framed: Bool) {
        var framed = false
        var remove: [String] = []
        var connectionValues: [String] = []
        for (name, value) in source {
            switch kind(of: name) {
            case .hopByHop:
                remove.append(name)
            case .connection:
                connectionValues.append(value)
                remove.append(name)
            case .transferEncoding:
                if value.split(separator: ",").last?.trimmingSpaces.lowercased() == "chunked" { framed = true }
                remove.append(name)
            case .contentLength:
                framed = true
            default:
                continue
            }
        }
        guard !remove.isEmpty else { return (source, framed) }
        var headers = source
        for name in remove { headers.remove(name: name) }
        removeListed(in: connectionValues, from: &headers)
        return (headers, framed)
    }

    /// Removes the fields that `Connection` values name (other than `close`/`keep-alive`).
    private static func removeListed(in connectionValues: [String], from headers: inout HTTPHeaders) {
        for value in connectionValues {
            for token in value.split(separator: ",") {
                let name = token.trimmingSpaces.lowercased()
                if !name.isEmpty, name != "close", name != "keep-alive" { headers.remove(name: name) }
            }
        }
    }

    /// Whether the upstream connection can carry another request after this response: the
    /// backend keeps it alive and the body's end is known without the connection closing
    /// (framed, or a response that has no body: to HEAD, 204, 304).
    static func upstreamReusable(_ head: HTTPResponseHead, framed: Bool, requestWasHEAD: Bool) -> Bool {
        head.isKeepAlive && (framed || requestWasHEAD || head.status.code == 204 || head.status.code == 304)
    }
}

extension StringProtocol {
    /// The value with leading and trailing spaces and tabs (HTTP's OWS) removed.
    var trimmingSpaces: SubSequence {
        var s = self[...]
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return s
    }
}
