/// Read-only views of a route's target, for `status`, metrics (`sluice_route_weight`,
/// `sluice_active_backend`) and the admin API.
extension Target {
    /// `"backend"`, `"split"` or `"blueGreen"`: the config key the target came from.
    public var kind: String {
        switch self {
        case .backend: return "backend"
        case .split: return "split"
        case .blueGreen: return "blueGreen"
        }
    }
}

extension Route {
    /// `"backend"`, `"split"` or `"blueGreen"` for the route's own target (rules aside).
    public var targetKind: String { target.kind }

    /// The weights of the route's own split, in configured order; nil when it is not a split.
    public var weights: [(backend: BackendID, weight: Int)]? {
        guard case .split(let split) = target else { return nil }
        return zip(split.backends, split.weights).map { (backend: $0, weight: $1) }
    }

    /// The route's own blue-green pair; nil when its target is not blue-green.
    public var blueGreen: BlueGreen? {
        guard case .blueGreen(let pair) = target else { return nil }
        return pair
    }

    /// Every backend this route can send a request to (its target's and its rules'), in order
    /// of first mention, without the mirror. For per-version status rows.
    public var backends: [BackendID] {
        var seen: [BackendID] = []
        func add(_ target: Target) {
            let ids: [BackendID]
            switch target {
            case .backend(let id): ids = [id]
            case .split(let split): ids = split.backends
            case .blueGreen(let pair): ids = [pair.active, pair.preview]
            }
            for id in ids where !seen.contains(id) { seen.append(id) }
        }
        add(target)
        for rule in rules { add(rule.target) }
        return seen
    }
}

extension RouteTable {
    /// The name of backend `id` (`backend#N` for an id outside the table).
    public func backendName(_ id: BackendID) -> String {
        backendNames.indices.contains(id.index) ? backendNames[id.index] : id.description
    }

    /// The weights of `route`'s own split by backend name, in configured order; nil when it is
    /// not a split.
    public func weights(of route: RouteID) -> [(backend: String, weight: Int)]? {
        self[route].weights?.map { (backend: backendName($0.backend), weight: $0.weight) }
    }
}
