import Atomics
import NIOCore
import SluiceConfig
import SluiceMetrics
import SluiceRouting

/// Everything one request needs to be routed and forwarded, as one immutable value.
///
/// A request loads the current snapshot once, when its head arrives, and keeps it to its end
/// (Envoy's `snapped_route_config_`). A reload or a live change builds a whole new snapshot and
/// publishes it with one atomic store, so an update is never seen half-applied.
public final class Snapshot: AtomicReference, Sendable {
    public let generation: Int
    public let configuration: Configuration
    /// The configuration's table with live changes (weights, switches) applied.
    public let table: RouteTable
    /// Indexed by `BackendID.index`.
    let backends: [BackendRuntime]
    /// Metrics series id of every (route, backend) pair: `series[route.index][backend.index]`.
    let series: [[Int]]
    /// `configuration.server.accessLog`, read at the end of every request.
    let accessLog: Bool

    init(generation: Int, configuration: Configuration, table: RouteTable, registry: SeriesRegistry) throws {
        self.generation = generation
        self.configuration = configuration
        self.table = table
        self.backends = try configuration.backends.map(BackendRuntime.init)
        self.accessLog = configuration.server.accessLog
        self.series = table.routes.map { route in
            configuration.backends.map { backend in
                registry.id(for: SeriesKey(route: route.name, backend: backend.name, version: backend.version))
            }
        }
    }

    /// A snapshot of the same configuration with another table (a live change).
    func replacingTable(_ table: RouteTable, registry: SeriesRegistry) throws -> Snapshot {
        try Snapshot(generation: generation, configuration: configuration, table: table, registry: registry)
    }
}

/// A backend as the forwarding layer needs it: endpoints already resolved to socket addresses
/// (resolution happens when a snapshot is built, never on an event loop).
final class BackendRuntime: Sendable {
    let spec: BackendSpec
    let endpoints: [SocketAddress]
    /// `spec.timeout`, `spec.connectTimeout`, `spec.readTimeout` and `spec.idleTimeout` as NIO
    /// amounts, converted once (a `Duration`'s conversion costs ~190 instructions, on every request).
    let responseTimeout: TimeAmount
    let connectTimeout: TimeAmount
    let readTimeout: TimeAmount
    let idleTimeout: TimeAmount

    init(_ spec: BackendSpec) throws {
        self.spec = spec
        self.endpoints = try spec.endpoints.map { try SocketAddress.makeAddressResolvingHost($0.host, port: $0.port) }
        self.responseTimeout = TimeAmount(spec.timeout)
        self.connectTimeout = TimeAmount(spec.connectTimeout)
        self.readTimeout = TimeAmount(spec.readTimeout)
        self.idleTimeout = TimeAmount(spec.idleTimeout)
    }
}

/// The one reference that holds the current snapshot.
public final class SnapshotStore: Sendable {
    private let current: ManagedAtomic<Snapshot>

    init(_ initial: Snapshot) {
        self.current = ManagedAtomic(initial)
    }

    /// One atomic load; the hot path's only synchronisation.
    @inline(__always)
    public func load() -> Snapshot { current.load(ordering: .acquiring) }

    func store(_ snapshot: Snapshot) { current.store(snapshot, ordering: .releasing) }
}
