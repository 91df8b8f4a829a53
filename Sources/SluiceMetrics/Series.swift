import Foundation

/// The labels of one per-version series: `{route, backend, version}`.
public struct SeriesKey: Hashable, Sendable {
    public var route: String
    public var backend: String
    public var version: String

    public init(route: String, backend: String, version: String) {
        self.route = route
        self.backend = backend
        self.version = version
    }
}

/// Gives every series a small, stable integer id, so that the hot path indexes arrays instead of
/// hashing label strings. Ids are never reused or removed: a series that a reload no longer
/// routes to keeps its last values (cumulative counters never reset) until the process restarts.
///
/// Only snapshot builds (reload, live change) call `id(for:)`; the lock is never on the request path.
public final class SeriesRegistry: @unchecked Sendable {
    // Guarded by `lock`.
    private let lock = NSLock()
    private var ids: [SeriesKey: Int] = [:]
    private var keys: [SeriesKey] = []

    public init() {}

    public func id(for key: SeriesKey) -> Int {
        lock.lock()
        defer { lock.unlock() }
        if let id = ids[key] { return id }
        let id = keys.count
        keys.append(key)
        ids[key] = id
        return id
    }

    /// Every key registered so far, indexed by id.
    public var allKeys: [SeriesKey] {
        lock.lock()
        defer { lock.unlock() }
        return keys
    }
}
