extension RouteTable {
    /// Chooses the route and backend for one request; nil when no route matches (404).
    ///
    /// Pure: the only inputs are the request facts and `random`, so tests pass a fixed
    /// generator and assert exact outcomes.
    ///
    /// The steps, in order:
    /// 1. The first route whose `match` fits is taken (`RouteMatch+Matching.swift`).
    /// 2. Its `rules` are tried in order; the first whose conditions all hold supplies the target,
    ///    otherwise the route's own `target` does (`Rule+Conditions.swift`).
    /// 3. The target resolves to one backend (`Route+Target.swift`).
    /// 4. The mirror is chosen (`MirrorPolicy+Choice.swift`), independently of step 3.
    ///
    /// Random draws, in this order and no others (so a fixed generator gives exact results):
    /// - step 3, only when a split is reached:
    ///   - sticky key present: no draw (the key's bucket decides);
    ///   - no key, `sticky.assign` with a cookie key: one `random.next()` (a `UInt64`), whose 16
    ///     lowercase hex digits are the new cookie value that then decides as a key would;
    ///   - otherwise: one `Int.random(in: 0..<split.total, using: &random)`;
    /// - step 4, only when the route mirrors, the method is listed and 0 < percent < 100: one
    ///   `Double.random(in: 0..<100, using: &random)`; the request is mirrored when it is
    ///   `< percent` (percent 100 mirrors and 0 skips without drawing).
    public func decide<F: RequestFacts, R: RandomNumberGenerator>(_ facts: F, random: inout R) -> Decision? {
        for (index, box) in boxes.enumerated() where box.matches(facts) {
            return box.route.decide(facts, id: RouteID(index), random: &random)
        }
        return nil
    }
}

extension Route {
    /// Steps 2–4 of `RouteTable.decide` for a request that this route's `match` fits.
    func decide<F: RequestFacts, R: RandomNumberGenerator>(_ facts: F, id: RouteID, random: inout R) -> Decision {
        var decision = Decision(route: id, backend: BackendID(0))
        // Through the buffer, each rule is read where it lies (indexing the array copied it).
        let ruleIndex = rules.withUnsafeBufferPointer { rules in
            rules.indices.first { rules[$0].holds(for: facts) }
        }
        decision.rule = ruleIndex
        if let ruleIndex {
            decision.backend = resolve(rules[ruleIndex].target, for: facts,
                                       random: &random, assignCookie: &decision.assignCookie)
        } else {
            decision.backend = resolve(target, for: facts,
                                       random: &random, assignCookie: &decision.assignCookie)
        }
        if let mirror, mirror.shouldMirror(method: facts.method, random: &random) {
            decision.mirror = mirror.backend
        }
        return decision
    }
}
