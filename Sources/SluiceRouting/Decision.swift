/// The routing core's answer for one request: which route, which backend, and what else to do.
public struct Decision: Sendable, Equatable {
    public var route: RouteID
    public var backend: BackendID
    /// The shadow backend to copy this request to, when the route mirrors and this request was
    /// drawn (percent) and its method is listed. Header stripping and the body limit are the
    /// route's `MirrorPolicy`.
    public var mirror: BackendID?
    /// A sticky cookie to set on the response (`sticky.assign` and the request had none).
    public var assignCookie: CookieAssignment?
    /// The index (in the route's `rules`) of the A/B rule that chose the backend; nil when the
    /// route's own target did. For logs and debugging.
    public var rule: Int?

    public init(route: RouteID, backend: BackendID, mirror: BackendID? = nil, assignCookie: CookieAssignment? = nil,
                rule: Int? = nil) {
        self.route = route
        self.backend = backend
        self.mirror = mirror
        self.assignCookie = assignCookie
        self.rule = rule
    }
}

/// A `Set-Cookie` the proxy adds to the response so the client sticks to its bucket.
public struct CookieAssignment: Sendable, Equatable {
    public var name: String
    public var value: String
    public var maxAge: Int

    public init(name: String, value: String, maxAge: Int) {
        self.name = name
        self.value = value
        self.maxAge = maxAge
    }

    /// The full `Set-Cookie` field value.
    public var headerValue: String {
        "\(name)=\(value); Path=/; Max-Age=\(maxAge); HttpOnly; SameSite=Lax"
    }
}
