extension RouteTable {
    /// Chooses the route and backend for one request; nil when no route matches (404).
    ///
    /// Pure: the only inputs are the request facts and `random`, so tests pass a fixed
    /// generator and assert exact outcomes.
    public func decide<F: RequestFacts, R: RandomNumberGenerator>(_ facts: F, random: inout R) -> Decision? {
        for (index, route) in routes.enumerated() where route.match.matches(facts) {
            let backend: BackendID
            switch route.target {
            case .backend(let id):
                backend = id
            case .split(let split):
                backend = split.pick(draw: Int.random(in: 0..<split.weights.reduce(0, +), using: &random))
            case .blueGreen(let bg):
                backend = facts.headerValues(bg.previewHeader).isEmpty ? bg.active : bg.preview
            }
            return Decision(route: RouteID(index), backend: backend)
        }
        return nil
    }
}

extension Split {
    /// The backend whose cumulative weight range holds `draw` (0 <= draw < total weight).
    func pick(draw: Int) -> BackendID {
        var upper = 0
        for (i, w) in weights.enumerated() {
            upper += w
            if draw < upper { return backends[i] }
        }
        return backends[backends.count - 1]
    }
}

extension RouteMatch {
    func matches<F: RequestFacts>(_ facts: F) -> Bool {
        if let methods, !methods.contains(facts.method) { return false }
        if let path, facts.path != path[...] { return false }
        if let pathPrefix, !facts.path.hasPrefix(pathPrefix) { return false }
        if let host {
            guard let authority = facts.authority else { return false }
            if !host.matches(authority: authority) { return false }
        }
        return true
    }
}

extension HostPattern {
    /// `authority` is the Host header as sent: the port (and IPv6 brackets' port) is ignored.
    func matches(authority: String) -> Bool {
        var name = Substring(authority)
        if name.hasPrefix("[") {
            if let close = name.firstIndex(of: "]") { name = name[...close] }
        } else if let colon = name.lastIndex(of: ":") {
            name = name[..<colon]
        }
        let lower = name.lowercased()
        switch self {
        case .exact(let h): return lower == h
        case .wildcard(let suffix): return lower.count > suffix.count && lower.hasSuffix(suffix)
        }
    }
}
