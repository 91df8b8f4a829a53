import Atomics
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import SluiceConfig
import SluiceMetrics
import SluiceRouting

/// A running proxy: its event loops, listeners and snapshot store.
///
/// Lifecycle: `start()` binds every listener; `shutdown()` stops accepting, asks every open
/// connection to finish its current request and close, waits up to the drain timeout, then
/// closes what is left.
public final class SluiceServer: Sendable {
    public let store: SnapshotStore
    public let registry: SeriesRegistry
    let group: MultiThreadedEventLoopGroup
    let contexts: [ObjectIdentifier: NIOLoopBound<LoopContext>]
    private let listeners: NIOLockedValueBox<[Channel]>
    private let stopped = ManagedAtomic(false)
    /// The TLS context holder of each TLS listener, by its configured address.
    let tlsBoxes = NIOLockedValueBox<[String: TLSContextBox]>([:])

    /// Builds the proxy for `configuration` on `threads` event loops (default: one per core).
    public init(configuration: Configuration, threads: Int = System.coreCount) throws {
        let registry = SeriesRegistry()
        self.registry = registry
        self.store = SnapshotStore(try Snapshot(generation: 1, configuration: configuration,
                                                table: configuration.table, registry: registry))
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, threads))
        // The loops, their contexts and the store live as long as the proxy: counting
        // references to them is skipped (`Immortal`).
        Immortal.mark(store)
        var contexts: [ObjectIdentifier: NIOLoopBound<LoopContext>] = [:]
        for loop in group.makeIterator() {
            Immortal.mark(loop)
            contexts[ObjectIdentifier(loop)] = try loop.submit {
                let context = LoopContext(eventLoop: loop, loopCount: max(1, threads))
                context.residents.forEach(Immortal.mark)
                return NIOLoopBound(context, eventLoop: loop)
            }.wait()
        }
        self.contexts = contexts
        self.listeners = NIOLockedValueBox([])
    }

    /// A shutdown has begun: the listeners are closed and open connections are draining.
    public var isDraining: Bool { stopped.load(ordering: .relaxed) }

    /// The addresses the listeners are bound to (ports resolved when the config says 0).
    public var boundAddresses: [SocketAddress] {
        listeners.withLockedValue { $0.compactMap(\.localAddress) }
    }

    /// Binds every listener of the current configuration, or takes the socket a service manager
    /// passed for its address (`inherited`). Throws `ServerError.bind` naming the address that
    /// could not be bound. Returns what became of the inherited sockets, for the log.
    @discardableResult
    public func start(inherited: InheritedListeners = .none) async throws -> [String] {
        let config = store.load().configuration
        var inherited = inherited
        var notes: [String] = []
        for listener in config.listeners {
            let channel: Channel
            do {
                let kind = try ListenerKind(listener)
                if case .tls(let box) = kind { tlsBoxes.withLockedValue { $0[listener.address.description] = box } }
                let bootstrap = bootstrap(kind, settings: config.server)
                if let socket = inherited.take(listener.address) {
                    channel = try await bootstrap.withBoundSocket(socket).get()
                    notes.append("listener \(listener.address) uses the socket the service manager passed")
                } else {
                    channel = try await bootstrap.bind(host: listener.address.host, port: listener.address.port).get()
                }
            } catch {
                throw ServerError.bind(address: listener.address.description, underlying: "\(error)")
            }
            listeners.withLockedValue { $0.append(channel) }
        }
        return notes + inherited.closeUnused()
    }

    /// Runs `body` on every event loop with that loop's context and collects the results.
    func onEveryLoop<T: Sendable>(_ body: @escaping @Sendable (LoopContext) -> T) async throws -> [T] {
        var results: [T] = []
        for bound in contexts.values {
            let loop = bound.eventLoop
            results.append(try await loop.submit { body(bound.value) }.get())
        }
        return results
    }

    /// Graceful stop: no new connections; in-flight requests get `drainTimeout` to finish.
    public func shutdown(drainTimeout: Duration? = nil) async {
        // Only the first call stops anything; the loops are gone after it.
        guard stopped.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else { return }
        let timeout = drainTimeout ?? store.load().configuration.server.drainTimeout
        let channels = listeners.withLockedValue { list in
            defer { list.removeAll() }
            return list
        }
        for channel in channels { try? await channel.close() }
        _ = try? await onEveryLoop { ctx in
            for exchange in ctx.exchanges.all {
                exchange.context?.channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
            }
            for connection in ctx.exchanges.allHTTP2 { connection.quiesce() }
        }
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let open = (try? await onEveryLoop { $0.exchanges.count })?.reduce(0, +) ?? 0
            if open == 0 { break }
            try? await Task.sleep(for: .milliseconds(20))
        }
        _ = try? await onEveryLoop { ctx in
            for exchange in ctx.exchanges.all { exchange.context?.channel.close(promise: nil) }
            for connection in ctx.exchanges.allHTTP2 { connection.close() }
            ctx.pool.closeAll()
        }
        try? await group.shutdownGracefully()
    }

    /// Every loop's statistics, merged.
    public func statistics() async -> ShardCopy {
        (try? await statisticsFuture().get()) ?? ShardCopy()
    }

    /// Every loop's statistics, merged, as a future (for callers outside Swift concurrency).
    /// The endpoints some event loop passes over now after failed connects (`EndpointCooldown`),
    /// for primary and for shadow traffic, as `host:port`.
    func coolingEndpoints() -> EventLoopFuture<(primary: Set<String>, shadow: Set<String>)> {
        let futures = contexts.values.map { bound in
            bound.eventLoop.submit {
                let now = NIODeadline.now()
                let context = bound.value
                return (context.endpointCooldown.skipped(now: now).map(\.endpointText),
                        context.mirrors.cooldown.skipped(now: now).map(\.endpointText))
            }
        }
        return EventLoopFuture.whenAllSucceed(futures, on: group.any()).map { lists in
            (Set(lists.flatMap(\.0)), Set(lists.flatMap(\.1)))
        }
    }

    public func statisticsFuture() -> EventLoopFuture<ShardCopy> {
        let futures = contexts.values.map { bound in
            bound.eventLoop.submit { bound.value.stats.copy() }
        }
        return EventLoopFuture.whenAllSucceed(futures, on: group.any()).map(ShardCopy.merged)
    }
}

public enum ServerError: Error, CustomStringConvertible {
    case bind(address: String, underlying: String)

    public var description: String {
        switch self {
        case .bind(let address, let underlying): "cannot bind \(address): \(underlying)"
        }
    }
}
