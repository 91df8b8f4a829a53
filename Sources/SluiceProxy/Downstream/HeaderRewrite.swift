import NIOHTTP1

/// Header rules shared by every forwarded message (RFC 9110 §7.6.1).
///
/// Hop-by-hop fields describe one connection, not the message, so a proxy must not forward
/// them: the fixed list below plus every field named in `Connection`. `Transfer-Encoding` and
/// `Content-Length` are re-framed by each side's encoder; `TE` and `Trailer` are left out too.
enum HeaderRewrite {
    static let hopByHop: [String] = [
        "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
        "te", "trailer", "transfer-encoding", "upgrade",
    ]

    /// Removes every hop-by-hop field, including those the `Connection` field names.
    static func removeHopByHop(_ headers: inout HTTPHeaders) {
        for value in headers["connection"] {
            for token in value.split(separator: ",") {
                let name = token.trimmingSpaces.lowercased()
                if !name.isEmpty, name != "close", name != "keep-alive" { headers.remove(name: name) }
            }
        }
        for name in hopByHop where headers.contains(name: name) {
            headers.remove(name: name)
        }
    }

    /// True when `Connection` carries the `close` token.
    static func hasCloseToken(_ headers: HTTPHeaders) -> Bool {
        headers["connection"].contains { value in
            value.split(separator: ",").contains { $0.trimmingSpaces.lowercased() == "close" }
        }
    }

    /// True when `Transfer-Encoding` is present and its final coding is `chunked`.
    static func isChunked(_ headers: HTTPHeaders) -> Bool {
        guard let last = headers["transfer-encoding"].last?.split(separator: ",").last else { return false }
        return last.trimmingSpaces.lowercased() == "chunked"
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
