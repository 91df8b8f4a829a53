import SluiceRouting

// `routes:` → `[Route]`: matchers, A/B rules, targets (backend, split, blue-green), sticky and
// mirror policies, with every backend name resolved to its `BackendID`.

extension ConfigCompiler {
    struct CompiledRoute {
        var route: Route
        var fingerprint: String
    }

    /// One result per entry, nil where the entry has problems (all of them reported).
    mutating func compileRoutes(_ entries: [RouteEntry]) -> [CompiledRoute?] {
        var firstByName: [String: SourceLocation] = [:]
        var routes: [CompiledRoute?] = []
        for entry in entries {
            if let name = entry.name {
                if let first = firstByName[name.value] {
                    diagnostics.error("duplicate route name '\(name.value)' (first defined at line \(first.line))",
                                      at: name.at)
                } else {
                    firstByName[name.value] = name.at
                }
            }
            routes.append(compileRoute(entry))
        }
        return routes
    }

    private mutating func compileRoute(_ entry: RouteEntry) -> CompiledRoute? {
        let problemsBefore = diagnostics.problems.count
        if let name = entry.name, !NameSyntax.isName(name.value) {
            diagnostics.error("invalid route name '\(name.value)' (\(NameSyntax.rule))", at: name.at)
        }
        let match = compileMatch(entry.match, scope: entry.scope.nested("match"))
        let rules = entry.rules.compactMap { compileRule($0) }
        // Every target is compiled, even when there are several, so that each one's backend
        // names are checked too.
        let targets = entry.targets.compactMap { compileTarget($0) }
        let sticky = entry.sticky.flatMap { compileSticky($0) }
        let mirror = entry.mirror.flatMap { compileMirror($0) }
        guard diagnostics.problems.count == problemsBefore, let name = entry.name, targets.count == 1,
              rules.count == entry.rules.count else { return nil }
        let route = Route(name: name.value, match: match, rules: rules, target: targets[0],
                          sticky: sticky, mirror: mirror)
        return CompiledRoute(route: route, fingerprint: entry.fingerprint)
    }

    // MARK: Match

    private mutating func compileMatch(_ entry: MatchEntry?, scope: Scope) -> RouteMatch {
        var match = RouteMatch()
        guard let entry else { return match }
        if let host = entry.host {
            switch HostPatternSyntax.parse(host.value) {
            case .success(let pattern): match.host = pattern
            case .failure(let problem): diagnostics.error(problem.message, at: host.at)
            }
        }
        match.path = entry.path.flatMap { checkedPath($0, key: "path", in: scope) }
        match.pathPrefix = entry.pathPrefix.flatMap { checkedPath($0, key: "pathPrefix", in: scope) }
        match.methods = entry.methods.flatMap { methodSet($0, key: "methods", in: scope) }
        return match
    }

    private mutating func checkedPath(_ written: Located<String>, key: String, in scope: Scope) -> String? {
        let path = written.value
        let problem: String? =
            if !path.hasPrefix("/") { "must start with '/' (got '\(path)')" }
            else if path.contains("?") { "must not contain a query ('?'); query conditions go in rules" }
            else if path.contains(where: \.isWhitespace) { "must not contain spaces" }
            else { nil }
        guard let problem else { return path }
        diagnostics.error("\(scope.slot(key)) \(problem)", at: written.at)
        return nil
    }

    /// Upper-case method names; the list may not be empty.
    private mutating func methodSet(_ written: Located<[Located<String>]>, key: String, in scope: Scope) -> Set<String>? {
        if written.value.isEmpty {
            diagnostics.error("\(scope.slot(key)) must list at least one method", at: written.at)
            return nil
        }
        var methods = Set<String>()
        for method in written.value {
            if TokenSyntax.isToken(method.value) {
                methods.insert(method.value.uppercased())
            } else {
                diagnostics.error("invalid method '\(method.value)' in \(scope.name)", at: method.at)
            }
        }
        return methods
    }

    // MARK: Rules

    private mutating func compileRule(_ entry: RuleEntry) -> Rule? {
        let conditions = entry.when?.conditions.compactMap { compileCondition($0, scope: entry.scope) } ?? []
        let targets = entry.targets.compactMap { compileTarget($0) }
        guard targets.count == 1, conditions.count == entry.when?.conditions.count else { return nil }
        return Rule(conditions: conditions, target: targets[0])
    }

    private mutating func compileCondition(_ entry: ConditionEntry, scope: Scope) -> Condition? {
        let name = entry.name.value
        let subject: Condition.Subject
        switch entry.subject {
        case .header:
            guard TokenSyntax.isToken(name) else {
                diagnostics.error("invalid header name '\(name)' in \(scope.name)", at: entry.name.at)
                return nil
            }
            subject = .header(name.lowercased())
        case .cookie:
            guard TokenSyntax.isToken(name) else {
                diagnostics.error("invalid cookie name '\(name)' in \(scope.name)", at: entry.name.at)
                return nil
            }
            subject = .cookie(name)
        case .query:
            subject = .query(name)
        }
        switch entry.value {
        case .exact(let value):
            return Condition(subject: subject, value: .exact(value.value))
        case .present:
            return Condition(subject: subject, value: .present)
        case .regex(let pattern):
            do {
                return Condition(subject: subject, value: .regex(try CompiledRegex(pattern.value)))
            } catch {
                diagnostics.error("invalid regex '\(pattern.value)'", at: pattern.at)
                return nil
            }
        }
    }

    // MARK: Targets

    private mutating func compileTarget(_ entry: TargetEntry) -> Target? {
        switch entry {
        case .backend(let name): return backendID(name).map(Target.backend)
        case .split(let split): return compileSplit(split).map(Target.split)
        case .blueGreen(let blueGreen): return compileBlueGreen(blueGreen).map(Target.blueGreen)
        }
    }

    /// Weights are relative integers, 0 allowed, with a positive sum. The file's order is kept:
    /// it lays out the sticky buckets, so raising a canary's weight only moves users into it.
    private mutating func compileSplit(_ entry: SplitEntry) -> Split? {
        var backends: [BackendID] = []
        var weights: [Int] = []
        var valid = !entry.weights.isEmpty
        for item in entry.weights {
            let id = backendID(item.backend)
            let weight = item.weight.value
            let slot = "weight of '\(item.backend.value)' in \(entry.scope.name)"
            if weight < 0 {
                diagnostics.error("\(slot) must be 0 or more (got \(weight))", at: item.weight.at)
                valid = false
            } else if weight > Self.maxWeight {
                diagnostics.error("\(slot) must be at most \(Self.maxWeight) (got \(weight))", at: item.weight.at)
                valid = false
            }
            guard let id else {
                valid = false
                continue
            }
            backends.append(id)
            weights.append(weight)
        }
        guard valid else { return nil }
        if weights.reduce(0, +) == 0 {
            diagnostics.error("the weights in \(entry.scope.name) add up to 0 (at least one must be above 0)",
                              at: entry.at)
            return nil
        }
        return Split(backends: backends, weights: weights)
    }

    /// Keeps sums far from overflow; weights are relative, so this limits nothing useful.
    static var maxWeight: Int { 1_000_000 }

    private mutating func compileBlueGreen(_ entry: BlueGreenEntry) -> BlueGreen? {
        let active = entry.active.flatMap { backendID($0) }
        let preview = entry.preview.flatMap { backendID($0) }
        let header = headerName(entry.previewHeader, in: entry.scope) ?? "x-preview"
        guard let active, let preview, let previewName = entry.preview else { return nil }
        guard active != preview else {
            diagnostics.error("'active' and 'preview' in \(entry.scope.name) must differ "
                              + "(both are '\(previewName.value)')", at: previewName.at)
            return nil
        }
        return BlueGreen(active: active, preview: preview, previewHeader: header)
    }

    // MARK: Sticky and mirror

    private mutating func compileSticky(_ entry: StickyEntry) -> Sticky? {
        let key: Sticky.Key
        switch (entry.cookie, entry.header) {
        case (nil, nil):
            diagnostics.error("\(entry.scope.name) needs 'cookie' or 'header'", at: entry.at)
            return nil
        case (let cookie?, let header?):
            diagnostics.error("\(entry.scope.name) takes 'cookie' or 'header', not both", at: max(cookie.at, header.at))
            return nil
        case (let cookie?, nil):
            guard TokenSyntax.isToken(cookie.value) else {
                diagnostics.error("invalid cookie name '\(cookie.value)' in \(entry.scope.name)", at: cookie.at)
                return nil
            }
            key = .cookie(cookie.value)
        case (nil, let header?):
            guard let name = headerName(header, in: entry.scope) else { return nil }
            key = .header(name)
            if let assign = entry.assign, assign.value {
                diagnostics.error("'assign' in \(entry.scope.name) applies only to a cookie key", at: assign.at)
            }
        }
        var sticky = Sticky(key: key, assign: entry.assign?.value ?? false)
        if let written = entry.maxAge, let maxAge = duration(written) {
            guard maxAge >= .seconds(1) else {
                diagnostics.error("\(entry.scope.slot("maxAge")) must be at least 1s", at: written.at)
                return nil
            }
            sticky.maxAge = Int(maxAge.components.seconds)
        }
        return sticky
    }

    private mutating func compileMirror(_ entry: MirrorEntry) -> MirrorPolicy? {
        guard let name = entry.backend else { return nil }
        let backend = backendID(name)
        var policy = MirrorPolicy(backend: backend ?? BackendID(0))
        if let percent = entry.percent {
            if (0...100).contains(percent.value) {
                policy.percent = percent.value
            } else {
                diagnostics.error("\(entry.scope.slot("percent")) must be from 0 to 100 (got \(percent.value.formatted))",
                                  at: percent.at)
            }
        }
        if let written = entry.methods, let methods = methodSet(written, key: "methods", in: entry.scope) {
            policy.methods = methods
        }
        if let written = entry.stripHeaders {
            policy.stripHeaders = written.value.compactMap { headerName($0, in: entry.scope) }
        }
        if let maxBodyBytes = entry.maxBodyBytes {
            if maxBodyBytes.value < 0 {
                diagnostics.error("\(entry.scope.slot("maxBodyBytes")) must be 0 or more (got \(maxBodyBytes.value))",
                                  at: maxBodyBytes.at)
            }
            policy.maxBodyBytes = maxBodyBytes.value
        }
        return backend == nil ? nil : policy
    }

    /// A header name, lowercased; reports one that is not an HTTP token.
    private mutating func headerName(_ written: Located<String>?, in scope: Scope) -> String? {
        guard let written else { return nil }
        guard TokenSyntax.isToken(written.value) else {
            diagnostics.error("invalid header name '\(written.value)' in \(scope.name)", at: written.at)
            return nil
        }
        return written.value.lowercased()
    }
}

private extension Double {
    /// `150` rather than `150.0` when whole.
    var formatted: String { self == rounded() && abs(self) < 1e15 ? String(Int(self)) : String(self) }
}
