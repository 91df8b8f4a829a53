/// What the routing core may ask of one request.
///
/// The proxy implements this as a cheap view over the request head it has already decoded, so
/// that only what a route's matchers actually ask for is ever looked up (Envoy's route lookup
/// takes the headers the same way). Tests use `StaticRequestFacts`.
public protocol RequestFacts {
    /// The method exactly as sent, e.g. `GET`.
    var method: String { get }
    /// The `Host` header (HTTP/1.1) or `:authority` (HTTP/2) as sent, port included; nil if absent.
    var authority: String? { get }
    /// The request target's path, without the query; always starts with `/` for origin-form.
    var path: Substring { get }
    /// The raw query after the first `?`, nil when the target has none.
    var query: Substring? { get }
    /// `body` applied to the bytes of each value of the header field `lowercasedName` (already
    /// lowercase), in the order sent, until it returns something: that result, or nil when the
    /// header is absent or `body` returned nil for every value.
    ///
    /// The matchers read header and cookie values through this, so a value is never copied into
    /// a `String` (nor the values into an array) unless a regex needs one: the proxy reads its
    /// decoded head's bytes in place.
    func firstHeaderValue<T>(_ lowercasedName: String, _ body: (UnsafeBufferPointer<UInt8>) -> T?) -> T?
}

/// A plain-value `RequestFacts`, for tests and for callers that have no decoded head.
public struct StaticRequestFacts: RequestFacts, Sendable {
    public var method: String
    public var authority: String?
    public var path: Substring
    public var query: Substring?
    /// Header fields as sent; names are compared case-insensitively.
    public var headers: [(name: String, value: String)]

    /// Builds facts from a request target such as `/a/b?x=1`.
    public init(method: String = "GET", target: String = "/", authority: String? = nil,
                headers: [(name: String, value: String)] = []) {
        self.method = method
        self.authority = authority
        if let q = target.firstIndex(of: "?") {
            self.path = target[..<q]
            self.query = target[target.index(after: q)...]
        } else {
            self.path = Substring(target)
            self.query = nil
        }
        self.headers = headers
    }

    public func firstHeaderValue<T>(_ lowercasedName: String, _ body: (UnsafeBufferPointer<UInt8>) -> T?) -> T? {
        for header in headers where ASCII.equalIgnoringCase(header.name, lowercasedName) {
            if let result = header.value.withUTF8Bytes(body) { return result }
        }
        return nil
    }
}
