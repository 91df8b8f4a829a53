/// The compiled, immutable routing table: the pure core of Sluice.
///
/// Built once per configuration generation by `SluiceConfig` (or by a live change, which derives
/// a new table from the old one) and never mutated afterwards, so a request can keep the table it
/// started with while a newer one is published.
///
/// Backends are referred to by `BackendID`, a small integer index into `backendNames` (and into
/// the configuration's backend list), so that a decision carries no strings.
public struct BackendID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var index: Int
    public init(_ index: Int) { self.index = index }
    public static func < (a: BackendID, b: BackendID) -> Bool { a.index < b.index }
    public var description: String { "backend#\(index)" }
}

/// A route's position in the table.
public struct RouteID: Hashable, Comparable, Sendable {
    public var index: Int
    public init(_ index: Int) { self.index = index }
    public static func < (a: RouteID, b: RouteID) -> Bool { a.index < b.index }
}

public struct RouteTable: Sendable {
    /// In config order: the first route whose `match` fits wins.
    public let routes: [Route]
    /// The name of every backend, indexed by `BackendID.index`.
    public let backendNames: [String]
    /// `routes`, each in a box: `decide` reads a route in place through its box, where taking
    /// it out of the array copied it (a retain and release per reference inside).
    let boxes: [RouteBox]

    public init(routes: [Route], backendNames: [String]) {
        self.routes = routes
        self.backendNames = backendNames
        self.boxes = routes.map(RouteBox.init)
    }

    /// The route called `name`, if any.
    public func routeID(named name: String) -> RouteID? {
        routes.firstIndex { $0.name == name }.map(RouteID.init)
    }

    /// The backend called `name`, if any.
    public func backendID(named name: String) -> BackendID? {
        backendNames.firstIndex(of: name).map(BackendID.init)
    }

    public subscript(route: RouteID) -> Route { routes[route.index] }
}

/// One route behind a reference, for reading in place (`RouteTable.boxes`).
final class RouteBox: Sendable {
    let route: Route
    init(_ route: Route) { self.route = route }

    /// The route's `match` checked in place (written out at the call site, the optimizer
    /// copied the `RouteMatch` first).
    func matches<F: RequestFacts>(_ facts: F) -> Bool {
        route.match.matches(facts)
    }
}

/// One entry of `routes:`.
public struct Route: Sendable {
    public var name: String {
        didSet { stickySeed = StickyHash.seed(route: name) }
    }
    public var match: RouteMatch
    /// A/B rules, tried in order before `target`.
    public var rules: [Rule]
    public var target: Target
    public var sticky: Sticky?
    public var mirror: MirrorPolicy?
    /// The FNV-1a state after hashing `name + "\u{0}"`, so that a sticky bucket only hashes the
    /// key on the hot path (see `StickyHash`). Kept in step with `name`.
    private(set) var stickySeed: UInt64

    public init(name: String, match: RouteMatch = RouteMatch(), rules: [Rule] = [], target: Target,
                sticky: Sticky? = nil, mirror: MirrorPolicy? = nil) {
        self.name = name
        self.stickySeed = StickyHash.seed(route: name)
        self.match = match
        self.rules = rules
        self.target = target
        self.sticky = sticky
        self.mirror = mirror
    }
}

/// A route's `match:`; every field that is set must fit (nil fields match anything).
public struct RouteMatch: Sendable {
    public var host: HostPattern?
    public var path: String?
    public var pathPrefix: String?
    /// Upper-case method names.
    public var methods: Set<String>?

    public init(host: HostPattern? = nil, path: String? = nil, pathPrefix: String? = nil,
                methods: Set<String>? = nil) {
        self.host = host
        self.path = path
        self.pathPrefix = pathPrefix
        self.methods = methods
    }
}

/// `host:` — compared case-insensitively against the Host header with its port removed.
public enum HostPattern: Sendable, Equatable {
    /// `shop.example.com` (stored lowercase).
    case exact(String)
    /// `*.example.com`, stored as the lowercase suffix `.example.com`; matches one or more labels.
    case wildcard(suffix: String)
}

/// What a route (or a rule) sends its requests to.
public enum Target: Sendable {
    case backend(BackendID)
    case split(Split)
    case blueGreen(BlueGreen)
}

/// A weighted split over backends, in the order the config lists them.
///
/// The order matters: both the random draw and the sticky bucket layout (see
/// `backend(forBucket:)`) walk the backends in this order, so a live weight change keeps it and
/// only moves range boundaries.
public struct Split: Sendable, Equatable {
    /// At least one backend (the config and `settingWeights` guarantee it).
    public var backends: [BackendID] {
        didSet { layout = Layout(backends: backends, weights: weights) }
    }
    /// Relative integer weights, >= 0, same order as `backends`; their sum is > 0.
    public var weights: [Int] {
        didSet { layout = Layout(backends: backends, weights: weights) }
    }
    /// Draw ranges and bucket ranges, precomputed from `weights` so a request only scans them
    /// (`Split+Pick.swift`).
    private(set) var layout: Layout

    public init(backends: [BackendID], weights: [Int]) {
        self.backends = backends
        self.weights = weights
        self.layout = Layout(backends: backends, weights: weights)
    }
}

public struct BlueGreen: Sendable, Equatable {
    public var active: BackendID
    public var preview: BackendID
    /// Lowercase header name; a request carrying it (any value) goes to `preview`.
    public var previewHeader: String

    public init(active: BackendID, preview: BackendID, previewHeader: String) {
        self.active = active
        self.preview = preview
        self.previewHeader = previewHeader.lowercased()
    }
}

/// `sticky:` — which request attribute keys the split's bucket.
public struct Sticky: Sendable, Equatable {
    public enum Key: Sendable, Equatable {
        case cookie(String)
        /// Lowercase header name.
        case header(String)
    }
    public var key: Key
    /// For a cookie key: set the cookie when the request has none.
    public var assign: Bool
    /// `Max-Age` of an assigned cookie, in seconds.
    public var maxAge: Int

    public init(key: Key, assign: Bool = false, maxAge: Int = 2_592_000) {
        if case .header(let name) = key {
            self.key = .header(name.lowercased())
        } else {
            self.key = key
        }
        self.assign = assign
        self.maxAge = maxAge
    }
}

/// `mirror:` — the shadow policy of a route.
public struct MirrorPolicy: Sendable, Equatable {
    public var backend: BackendID
    /// 0...100.
    public var percent: Double
    /// Upper-case method names; default GET, HEAD, OPTIONS.
    public var methods: Set<String>
    /// Lowercase header names removed from the copy.
    public var stripHeaders: [String]
    public var maxBodyBytes: Int

    public init(backend: BackendID, percent: Double = 100, methods: Set<String> = ["GET", "HEAD", "OPTIONS"],
                stripHeaders: [String] = [], maxBodyBytes: Int = 1_048_576) {
        self.backend = backend
        self.percent = percent
        self.methods = methods
        self.stripHeaders = stripHeaders
        self.maxBodyBytes = maxBodyBytes
    }
}

/// One A/B rule: all `conditions` must hold (AND).
public struct Rule: Sendable {
    public var conditions: [Condition]
    /// `.backend` or `.split` (a rule never targets a blue-green pair).
    public var target: Target

    public init(conditions: [Condition], target: Target) {
        self.conditions = conditions
        self.target = target
    }
}

public struct Condition: Sendable {
    public enum Subject: Sendable, Equatable {
        /// Lowercase header name.
        case header(String)
        /// Case-sensitive cookie name.
        case cookie(String)
        /// Case-sensitive query parameter name.
        case query(String)
    }
    /// Where the name is looked up; `subject` without its payload.
    enum Place: Sendable { case header, cookie, query }

    /// Kept apart rather than as a `Subject`: matching switches on `place` and passes `name`,
    /// where switching on the enum copied its string out for every condition of every request.
    private(set) var place: Place
    private(set) var name: String
    public var value: ValueMatcher

    public var subject: Subject {
        get {
            switch place {
            case .header: .header(name)
            case .cookie: .cookie(name)
            case .query: .query(name)
            }
        }
        set { (place, name) = Self.parts(of: newValue) }
    }

    public init(subject: Subject, value: ValueMatcher) {
        (place, name) = Self.parts(of: subject)
        self.value = value
    }

    /// A header name is kept lowercase (the lookup compares it with lowercased field names).
    private static func parts(of subject: Subject) -> (Place, String) {
        switch subject {
        case .header(let name): (.header, name.lowercased())
        case .cookie(let name): (.cookie, name)
        case .query(let name): (.query, name)
        }
    }
}
