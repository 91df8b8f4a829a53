extension RouteMatch {
    /// Whether every field that is set fits the request (nil fields match anything).
    ///
    /// Paths and methods are compared byte for byte (a URL path is not Unicode text to
    /// normalise); `pathPrefix` is a plain string prefix, as Envoy's `prefix` and nginx's
    /// `location /p`: `/api` fits `/api`, `/api/x` and `/apix`.
    func matches<F: RequestFacts>(_ facts: F) -> Bool {
        if let methods, !methods.contains(facts.method) { return false }
        if let path, !ASCII.equal(facts.path, path) { return false }
        if let pathPrefix, !ASCII.hasPrefix(facts.path, pathPrefix) { return false }
        if let host {
            guard let authority = facts.authority else { return false }
            if !host.matches(authority: authority) { return false }
        }
        return true
    }
}

extension HostPattern {
    /// `authority` is the Host header (or `:authority`) as sent.
    ///
    /// The port is ignored (`shop.example.com:8080` fits `shop.example.com`), letters compare
    /// ASCII case-insensitively (RFC 9110 §4.2.3: the host is case-insensitive), and one trailing
    /// dot of a fully qualified name is dropped, as nginx does. An IPv6 literal keeps its
    /// brackets (`[::1]:8080` → `[::1]`); an exact pattern written with or without the brackets
    /// fits it. `*.example.com` fits one or more labels before `.example.com`, never
    /// `example.com` itself.
    func matches(authority: String) -> Bool {
        authority.withUTF8Bytes { bytes in
            let name = HostPattern.hostRange(in: bytes)
            switch self {
            case .exact(let expected):
                return expected.withUTF8Bytes { expected in
                    if ASCII.equalIgnoringCase(bytes, name, expected) { return true }
                    // `[::1]` also fits a pattern written `::1`.
                    guard name.count >= 2, bytes[name.lowerBound] == UInt8(ascii: "[") else { return false }
                    return ASCII.equalIgnoringCase(bytes, (name.lowerBound + 1)..<(name.upperBound - 1), expected)
                }
            case .wildcard(let suffix):
                return suffix.withUTF8Bytes { suffix in
                    name.count > suffix.count
                        && ASCII.equalIgnoringCase(bytes, (name.upperBound - suffix.count)..<name.upperBound, suffix)
                }
            }
        }
    }

    /// The host part of an authority: without the port, and without one trailing dot.
    private static func hostRange(in bytes: UnsafeBufferPointer<UInt8>) -> Range<Int> {
        var end = bytes.count
        if bytes.first == UInt8(ascii: "[") {
            if let close = bytes.firstIndex(of: UInt8(ascii: "]")) { return 0..<(close + 1) }
        } else if let colon = bytes.lastIndex(of: UInt8(ascii: ":")) {
            end = colon
        }
        if end > 0, bytes[end - 1] == UInt8(ascii: ".") { end -= 1 }
        return 0..<end
    }
}
