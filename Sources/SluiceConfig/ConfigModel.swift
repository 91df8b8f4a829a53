/// Stage 2 of loading: the file's shape, as written. Every key the file may hold has a field, and
/// every value keeps its position. Only YAML types are checked here (a map where a map belongs,
/// an integer where an integer belongs, no unknown keys, required keys present); what the values
/// *mean* — durations, addresses, backend names, weights — is judged by `ConfigCompiler`.
struct ConfigFile {
    var at: SourceLocation
    var listen: Located<[ListenEntry]>?
    var admin: AdminEntry?
    var state: Located<String>?
    var backends: [BackendEntry]
    var routes: [RouteEntry]
    var server: ServerEntry?
}

/// One entry of `listen:`, either `"host:port"` or `{address, tls, h2c}`.
struct ListenEntry {
    var at: SourceLocation
    var scope: Scope
    var address: Located<String>?
    var tls: TLSEntry?
    var h2c: Located<Bool>?
}

struct TLSEntry {
    var at: SourceLocation
    var cert: Located<String>?
    var key: Located<String>?
}

struct AdminEntry {
    var at: SourceLocation
    var socket: Located<String>?
    var http: Located<String>?
}

/// One entry of `backends:`.
struct BackendEntry {
    var name: Located<String>
    var scope: Scope
    var version: Located<String>?
    var endpoints: Located<[Located<String>]>?
    var connectTimeout: Located<String>?
    var timeout: Located<String>?
    var readTimeout: Located<String>?
    var upstreamProtocol: Located<String>?
    var maxConnections: Located<Int>?
    var idleTimeout: Located<String>?
}

/// One entry of `routes:`.
struct RouteEntry {
    var at: SourceLocation
    /// `route 'checkout'`, or `route 3` when the name is missing.
    var scope: Scope
    var name: Located<String>?
    var match: MatchEntry?
    var rules: [RuleEntry]
    /// Every target key present, in file order; a valid route has exactly one (decoding reports
    /// none or several, and compilation still checks the backend names of each).
    var targets: [TargetEntry]
    var sticky: StickyEntry?
    var mirror: MirrorEntry?
    /// Canonical rendering of the route's own entry (see `RouteFingerprint`).
    var fingerprint: String
}

struct MatchEntry {
    var host: Located<String>?
    var path: Located<String>?
    var pathPrefix: Located<String>?
    var methods: Located<[Located<String>]>?
}

struct RuleEntry {
    var at: SourceLocation
    /// `rule 2 of route 'checkout'`.
    var scope: Scope
    var when: WhenEntry?
    var targets: [TargetEntry]
}

struct WhenEntry {
    var at: SourceLocation
    var conditions: [ConditionEntry]
}

struct ConditionEntry {
    enum Subject: String {
        case header, cookie, query
    }

    enum Value {
        case exact(Located<String>)
        case regex(Located<String>)
        case present
    }

    var subject: Subject
    var name: Located<String>
    var value: Value
}

enum TargetEntry {
    case backend(Located<String>)
    case split(SplitEntry)
    case blueGreen(BlueGreenEntry)
}

struct SplitEntry {
    struct Weight {
        var backend: Located<String>
        var weight: Located<Int>
    }

    var at: SourceLocation
    /// `split of route 'checkout'`.
    var scope: Scope
    /// In file order: the order defines the sticky bucket layout.
    var weights: [Weight]
}

struct BlueGreenEntry {
    var at: SourceLocation
    var scope: Scope
    var active: Located<String>?
    var preview: Located<String>?
    var previewHeader: Located<String>?
}

struct StickyEntry {
    var at: SourceLocation
    var scope: Scope
    var cookie: Located<String>?
    var header: Located<String>?
    var assign: Located<Bool>?
    var maxAge: Located<String>?
}

struct MirrorEntry {
    var at: SourceLocation
    var scope: Scope
    var backend: Located<String>?
    var percent: Located<Double>?
    var methods: Located<[Located<String>]>?
    var stripHeaders: Located<[Located<String>]>?
    var maxBodyBytes: Located<Int>?
}

struct ServerEntry {
    var idleTimeout: Located<String>?
    var drainTimeout: Located<String>?
    var maxHeaderBytes: Located<Int>?
    var accessLog: Located<Bool>?
}
