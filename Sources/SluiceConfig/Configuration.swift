import SluiceRouting

/// A validated, compiled configuration: everything `sluice run` needs, with the route table
/// already built. Produced only by `ConfigLoader`; a file with any error never becomes one.
public struct Configuration: Sendable {
    /// Absolute path of the file it came from ("" when parsed from a string without a path).
    public var path: String
    public var listeners: [ListenerSpec]
    public var admin: AdminSpec?
    /// Where live changes are persisted; absolute. Default: `sluice-state.json` beside the file.
    public var statePath: String
    /// Every backend, indexed by `BackendID.index` (the order of `backends:` in the file).
    public var backends: [BackendSpec]
    public var table: RouteTable
    /// Route name → a canonical rendering of that route's own entry in the file. A reload
    /// keeps a route's live change only while this text is unchanged.
    public var routeFingerprints: [String: String]
    public var server: ServerSettings

    public init(path: String, listeners: [ListenerSpec], admin: AdminSpec? = nil, statePath: String,
                backends: [BackendSpec], table: RouteTable, routeFingerprints: [String: String] = [:],
                server: ServerSettings = ServerSettings()) {
        self.path = path
        self.listeners = listeners
        self.admin = admin
        self.statePath = statePath
        self.backends = backends
        self.table = table
        self.routeFingerprints = routeFingerprints
        self.server = server
    }
}

/// `host:port` as written in the file; IPv6 as `[::1]:8080` (stored without brackets).
public struct SocketAddressSpec: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

public struct ListenerSpec: Sendable, Equatable {
    public var address: SocketAddressSpec
    public var tls: TLSSpec?
    /// HTTP/2 with prior knowledge on a plain listener.
    public var h2c: Bool

    public init(address: SocketAddressSpec, tls: TLSSpec? = nil, h2c: Bool = false) {
        self.address = address
        self.tls = tls
        self.h2c = h2c
    }
}

public struct TLSSpec: Sendable, Equatable {
    /// Absolute paths (relative ones in the file are taken from the file's directory).
    public var cert: String
    public var key: String

    public init(cert: String, key: String) {
        self.cert = cert
        self.key = key
    }
}

public struct AdminSpec: Sendable, Equatable {
    /// Absolute path of the unix socket.
    public var socket: String?
    public var http: SocketAddressSpec?

    public init(socket: String? = nil, http: SocketAddressSpec? = nil) {
        self.socket = socket
        self.http = http
    }
}

public enum UpstreamProtocol: String, Sendable {
    case http1
    case h2
}

/// One backend: one version of the app, a pool of endpoints.
public struct BackendSpec: Sendable, Equatable {
    public var name: String
    public var version: String
    public var endpoints: [SocketAddressSpec]
    public var connectTimeout: Duration
    /// How long to wait for the response head once the request is sent.
    public var timeout: Duration
    /// How long a response body may go without a byte from the backend (an addition to the
    /// spec's keys; nginx's `proxy_read_timeout`). Waiting on a client that reads slowly does
    /// not count.
    public var readTimeout: Duration
    public var upstreamProtocol: UpstreamProtocol
    /// At most this many HTTP/1.1 connections open to each endpoint (an addition to the spec's
    /// keys); requests beyond wait for one to free, up to `connectTimeout`.
    public var maxConnections: Int
    /// A pooled connection to an endpoint is closed once it has carried no request for this long
    /// (an addition to the spec's keys; nginx's upstream `keepalive_timeout`). Below the
    /// backend's own keep-alive timeout, it closes first, so no request goes out on a connection
    /// the backend is closing.
    public var idleTimeout: Duration

    public static let defaultMaxConnections = 2048
    public static let defaultIdleTimeout = Duration.seconds(60)

    public init(name: String, version: String, endpoints: [SocketAddressSpec],
                connectTimeout: Duration = .seconds(1), timeout: Duration = .seconds(30),
                readTimeout: Duration = .seconds(60),
                upstreamProtocol: UpstreamProtocol = .http1, maxConnections: Int = BackendSpec.defaultMaxConnections,
                idleTimeout: Duration = BackendSpec.defaultIdleTimeout) {
        self.name = name
        self.version = version
        self.endpoints = endpoints
        self.connectTimeout = connectTimeout
        self.timeout = timeout
        self.readTimeout = readTimeout
        self.upstreamProtocol = upstreamProtocol
        self.maxConnections = maxConnections
        self.idleTimeout = idleTimeout
    }
}

/// `server:` (an addition to the spec's keys; all optional).
public struct ServerSettings: Sendable, Equatable {
    /// A downstream keep-alive connection with no request in progress is closed after this.
    public var idleTimeout: Duration
    /// On SIGTERM/SIGINT, in-flight requests get this long to finish.
    public var drainTimeout: Duration
    /// Request line plus headers larger than this get 431.
    public var maxHeaderBytes: Int
    /// One log line per request.
    public var accessLog: Bool

    public init(idleTimeout: Duration = .seconds(60), drainTimeout: Duration = .seconds(30),
                maxHeaderBytes: Int = 65_536, accessLog: Bool = false) {
        self.idleTimeout = idleTimeout
        self.drainTimeout = drainTimeout
        self.maxHeaderBytes = maxHeaderBytes
        self.accessLog = accessLog
    }
}
