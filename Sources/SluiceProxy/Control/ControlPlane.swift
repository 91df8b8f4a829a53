import Foundation
import NIOConcurrencyHelpers
import SluiceConfig
import SluiceRouting

/// Every change to the running routing state goes through here: reloads of the file and live
/// changes from the admin API. Each builds a complete new `Snapshot` and publishes it with one
/// store; a failed build publishes nothing.
///
/// Operations are serialised by one lock (they are rare and never on the request path). A
/// live change is written to the state file before it is published and acknowledged.
public final class ControlPlane: @unchecked Sendable {
    /// The outcome of the last reload attempt, for `/status`.
    public struct ReloadRecord: Sendable {
        public var ok: Bool
        public var error: String?
        public var at: Date
    }

    /// A failed admin operation: the HTTP status and a message naming the problem.
    public struct Failure: Error, CustomStringConvertible {
        public var status: Int
        public var description: String
    }

    public let server: SluiceServer
    public let configPath: String
    // Everything below is guarded by `lock`.
    private let lock = NIOLock()
    private var configuration: Configuration
    private var live: [String: LiveEntry] = [:]
    private var lastReload: ReloadRecord?
    private var reloadsOK = 0
    private var reloadsError = 0
    private var loadedContent: Data?
    private var lastSeenContent: Data?
    /// A problem with the state file found at start, shown in `/status`.
    private var stateProblem: String?
    private let log: @Sendable (String) -> Void

    /// Takes over `server`'s routing state: loads the persisted live changes that still apply to
    /// `configuration` and publishes the result.
    public init(server: SluiceServer, configuration: Configuration, log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.server = server
        self.configPath = configuration.path
        self.configuration = configuration
        self.log = log
        self.loadedContent = FileManager.default.contents(atPath: configuration.path)
        self.lastSeenContent = loadedContent
        do {
            let stored = try StateFile.load(configuration.statePath)
            lock.withLock {
                live = Self.surviving(stored, in: configuration)
                if live != stored { persistIgnoringErrors() }
                publish(generation: server.store.load().generation)
            }
        } catch {
            stateProblem = error.description
            log("sluice: \(error.description)")
        }
    }

    // MARK: Reload

    /// Parse → validate → compile → swap. Returns the new generation or the error text.
    @discardableResult
    public func reload() -> Result<Int, Failure> {
        lock.withLock { reloadLocked() }
    }

    private func reloadLocked() -> Result<Int, Failure> {
        let content = FileManager.default.contents(atPath: configPath)
        lastSeenContent = content
        let next: Configuration
        do {
            next = try ConfigLoader.load(path: configPath)
        } catch {
            let text = error.errors.map(\.description).joined(separator: "; ")
            reloadsError += 1
            lastReload = ReloadRecord(ok: false, error: text, at: Date())
            log("sluice: reload failed, still serving generation \(server.store.load().generation): \(text)")
            return .failure(Failure(status: 422, description: text))
        }
        do {
            try server.reloadTLS(next.listeners)
        } catch {
            reloadsError += 1
            let text = "\(error)"
            lastReload = ReloadRecord(ok: false, error: text, at: Date())
            log("sluice: reload failed, still serving generation \(server.store.load().generation): \(text)")
            return .failure(Failure(status: 422, description: text))
        }
        let kept = Self.surviving(live, in: next)
        let generation = server.store.load().generation + 1
        do {
            let table = Self.apply(kept, to: next.table)
            try server.store.store(Snapshot(generation: generation, configuration: next, table: table, registry: server.registry))
        } catch {
            reloadsError += 1
            let text = "\(configPath): \(error)"
            lastReload = ReloadRecord(ok: false, error: text, at: Date())
            return .failure(Failure(status: 422, description: text))
        }
        configuration = next
        loadedContent = content
        if kept != live {
            for name in live.keys where kept[name] == nil {
                log("sluice: route '\(name)' changed in the file; its live change is dropped")
            }
            live = kept
            persistIgnoringErrors()
        }
        reloadsOK += 1
        lastReload = ReloadRecord(ok: true, error: nil, at: Date())
        log("sluice: reloaded \(configPath), generation \(generation)")
        return .success(generation)
    }

    /// Reloads when the file's content differs from what was last read (edits in place and
    /// rename-replace alike). Called about once a second.
    public func reloadIfFileChanged() {
        lock.withLock {
            let content = FileManager.default.contents(atPath: configPath)
            guard content != nil, content != lastSeenContent else { return }
            _ = reloadLocked()
        }
    }

    // MARK: Live changes

    /// `PUT /routes/{route}/weights`.
    public func setWeights(route: String, weights: [String: Int]) -> Result<Void, Failure> {
        lock.withLock { liveChange(route: route, change: .weights(weights)) }
    }

    /// `POST /routes/{route}/switch`; `to` nil swaps active and preview.
    public func switchRoute(route: String, to: String?) -> Result<String, Failure> {
        lock.withLock {
            let table = server.store.load().table
            guard let id = table.routeID(named: route) else {
                return .failure(Failure(status: 404, description: "unknown route '\(route)'"))
            }
            let next: RouteTable
            do { next = try table.switching(route: id, to: to) } catch {
                return .failure(Failure(status: 400, description: "\(error)"))
            }
            guard let active = next[id].blueGreen.map({ next.backendName($0.active) }) else {
                return .failure(Failure(status: 400, description: "route '\(route)' is not blue-green"))
            }
            return liveChange(route: route, change: .active(active)).map { active }
        }
    }

    private func liveChange(route: String, change: LiveChange) -> Result<Void, Failure> {
        let current = server.store.load()
        guard current.table.routeID(named: route) != nil else {
            return .failure(Failure(status: 404, description: "unknown route '\(route)'"))
        }
        do {
            _ = try Self.applying(change, route: route, to: current.table)
        } catch {
            return .failure(Failure(status: 400, description: error.description))
        }
        var next = live
        next[route] = LiveEntry(change: change, at: Date(), fingerprint: configuration.routeFingerprints[route] ?? "")
        do {
            try StateFile.write(next, to: configuration.statePath)
        } catch {
            return .failure(Failure(status: 500, description: error.description))
        }
        live = next
        publish(generation: current.generation)
        return .success(())
    }

    // MARK: Views

    public struct View: Sendable {
        public var generation: Int
        public var configuration: Configuration
        public var table: RouteTable
        public var live: [String: LiveEntry]
        public var lastReload: ReloadRecord?
        public var reloadsOK: Int
        public var reloadsError: Int
        public var stateProblem: String?
    }

    /// A consistent view of everything `/status` and `/metrics` show.
    public var view: View {
        lock.withLock {
            let snap = server.store.load()
            return View(generation: snap.generation, configuration: configuration, table: snap.table, live: live,
                        lastReload: lastReload, reloadsOK: reloadsOK, reloadsError: reloadsError, stateProblem: stateProblem)
        }
    }

    // MARK: Helpers

    /// Live changes whose route still exists with the same definition.
    static func surviving(_ entries: [String: LiveEntry], in configuration: Configuration) -> [String: LiveEntry] {
        entries.filter { name, entry in
            guard configuration.routeFingerprints[name] == entry.fingerprint else { return false }
            return (try? applying(entry.change, route: name, to: configuration.table)) != nil
        }
    }

    static func applying(_ change: LiveChange, route: String, to table: RouteTable) throws(LiveChangeError) -> RouteTable {
        switch change {
        case .weights(let weights): try table.settingWeights(routeNamed: route, weights: weights)
        case .active(let name): try table.switching(routeNamed: route, to: name)
        }
    }

    static func apply(_ entries: [String: LiveEntry], to table: RouteTable) -> RouteTable {
        var table = table
        for (route, entry) in entries.sorted(by: { $0.key < $1.key }) {
            if let next = try? applying(entry.change, route: route, to: table) { table = next }
        }
        return table
    }

    /// Publishes the file's table with the live changes on top (caller holds the lock).
    private func publish(generation: Int) {
        let table = Self.apply(live, to: configuration.table)
        if let snapshot = try? Snapshot(generation: generation, configuration: configuration, table: table,
                                        registry: server.registry) {
            server.store.store(snapshot)
        }
    }

    private func persistIgnoringErrors() {
        do { try StateFile.write(live, to: configuration.statePath) } catch {
            log("sluice: \(error.description)")
        }
    }
}
