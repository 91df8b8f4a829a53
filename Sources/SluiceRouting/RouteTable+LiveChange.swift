/// Why a live change (admin `weights` or `switch`) was refused; nothing changed.
///
/// Each message is one line naming the route or backend at fault, fit for a 400 body (a 404
/// for `unknownRoute`).
public enum LiveChangeError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No route has this name (or the `RouteID` is not in the table).
    case unknownRoute(String)
    /// `weights` on a route whose own target is not a split.
    case notASplit(route: String, target: String)
    /// `switch` on a route whose own target is not blue-green.
    case notBlueGreen(route: String, target: String)
    /// The name is not a backend of the configuration at all.
    case unknownBackend(String)
    /// A configured backend that is not one of this route's split.
    case backendNotInSplit(backend: String, route: String)
    /// A weights body must name every backend of the split.
    case missingBackend(backend: String, route: String)
    /// Negative weights, a sum of 0, or a sum too large to add up.
    case invalidWeights(route: String, reason: String)
    /// A switch target that is neither the active nor the preview backend of the route.
    case backendNotInPair(backend: String, route: String)

    public var description: String {
        switch self {
        case .unknownRoute(let route):
            return "unknown route '\(route)'"
        case .notASplit(let route, let target):
            return "route '\(route)' is not a split (its target is \(target))"
        case .notBlueGreen(let route, let target):
            return "route '\(route)' is not blue-green (its target is \(target))"
        case .unknownBackend(let backend):
            return "unknown backend '\(backend)'"
        case .backendNotInSplit(let backend, let route):
            return "backend '\(backend)' is not in the split of route '\(route)'"
        case .missingBackend(let backend, let route):
            return "weights for route '\(route)' must name every backend of its split: '\(backend)' is missing"
        case .invalidWeights(let route, let reason):
            return "invalid weights for route '\(route)': \(reason)"
        case .backendNotInPair(let backend, let route):
            return "backend '\(backend)' is neither the active nor the preview backend of route '\(route)'"
        }
    }
}

/// Live changes derive a NEW table from this one and never mutate it: a request keeps the
/// table it started with, and the caller publishes the new one in a single swap.
extension RouteTable {
    /// This table with the weights of `route`'s own split replaced.
    ///
    /// `weights` maps backend names to weights and must name every backend of the split and
    /// nothing else; weights are >= 0 with a positive sum. The backends keep their configured
    /// ORDER — only the weights change — which is what keeps sticky users where they are (see
    /// `Split.backend(forBucket:)`). Names are checked in sorted order so that the error for a
    /// body with several problems is always the same one.
    public func settingWeights(route: RouteID, weights: [String: Int]) throws(LiveChangeError) -> RouteTable {
        guard routes.indices.contains(route.index) else { throw .unknownRoute("#\(route.index)") }
        let entry = routes[route.index]
        guard case .split(let split) = entry.target else {
            throw .notASplit(route: entry.name, target: entry.targetKind)
        }
        for name in weights.keys.sorted() {
            guard let id = backendID(named: name) else { throw .unknownBackend(name) }
            guard split.backends.contains(id) else { throw .backendNotInSplit(backend: name, route: entry.name) }
        }
        var newWeights: [Int] = []
        newWeights.reserveCapacity(split.backends.count)
        for id in split.backends {
            let name = backendName(id)
            guard let weight = weights[name] else { throw .missingBackend(backend: name, route: entry.name) }
            newWeights.append(weight)
        }
        var sum = 0
        for (id, weight) in zip(split.backends, newWeights) {
            guard weight >= 0 else {
                throw .invalidWeights(route: entry.name, reason: "the weight of '\(backendName(id))' is \(weight); weights must be >= 0")
            }
            let (next, overflow) = sum.addingReportingOverflow(weight)
            guard !overflow else { throw .invalidWeights(route: entry.name, reason: "the weights are too large to add up") }
            sum = next
        }
        guard sum > 0 else {
            throw .invalidWeights(route: entry.name, reason: "the weights sum to 0; at least one must be positive")
        }
        var changed = entry
        changed.target = .split(Split(backends: split.backends, weights: newWeights))
        return replacing(route, with: changed)
    }

    /// `settingWeights(route:weights:)` for the route called `name`.
    public func settingWeights(routeNamed name: String, weights: [String: Int]) throws(LiveChangeError) -> RouteTable {
        guard let id = routeID(named: name) else { throw .unknownRoute(name) }
        return try settingWeights(route: id, weights: weights)
    }

    /// This table with `route`'s blue-green pair switched.
    ///
    /// `active` nil, or the name of the current preview, swaps active and preview (the old
    /// active becomes the preview, so switching back is one more call). The name of the current
    /// active changes nothing and returns this table. Any other name is an error.
    public func switching(route: RouteID, to active: String?) throws(LiveChangeError) -> RouteTable {
        guard routes.indices.contains(route.index) else { throw .unknownRoute("#\(route.index)") }
        let entry = routes[route.index]
        guard case .blueGreen(let pair) = entry.target else {
            throw .notBlueGreen(route: entry.name, target: entry.targetKind)
        }
        if let active {
            guard let id = backendID(named: active) else { throw .unknownBackend(active) }
            if id == pair.active { return self }
            guard id == pair.preview else { throw .backendNotInPair(backend: active, route: entry.name) }
        }
        var changed = entry
        changed.target = .blueGreen(BlueGreen(active: pair.preview, preview: pair.active, previewHeader: pair.previewHeader))
        return replacing(route, with: changed)
    }

    /// `switching(route:to:)` for the route called `name`.
    public func switching(routeNamed name: String, to active: String?) throws(LiveChangeError) -> RouteTable {
        guard let id = routeID(named: name) else { throw .unknownRoute(name) }
        return try switching(route: id, to: active)
    }

    private func replacing(_ route: RouteID, with entry: Route) -> RouteTable {
        var newRoutes = routes
        newRoutes[route.index] = entry
        return RouteTable(routes: newRoutes, backendNames: backendNames)
    }
}
