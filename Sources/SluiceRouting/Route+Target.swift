extension Route {
    /// The backend that `target` (the route's own, or the winning rule's) sends this request to.
    ///
    /// A split is sticky when the route is, whether it is the route's split or a rule's: the
    /// bucket of the request's key picks the backend. Without a key the request draws — unless
    /// the route assigns a cookie key, in which case a new id is drawn, the request is routed by
    /// that id's bucket, and `assignCookie` is set so the client keeps it. A cookie is assigned
    /// only when a split is consulted: a rule that names one backend needs no bucket.
    func resolve<F: RequestFacts, R: RandomNumberGenerator>(
        _ target: Target, for facts: F, random: inout R,
        assignCookie: inout CookieAssignment?
    ) -> BackendID {
        switch target {
        case .backend(let id):
            return id
        case .blueGreen(let pair):
            return facts.firstHeaderValue(pair.previewHeader) { _ in true } == nil ? pair.active : pair.preview
        case .split(let split):
            guard let sticky else { return split.pick(random: &random) }
            if let bucket = stickyBucket(for: facts) {
                return split.backend(forBucket: bucket)
            }
            if sticky.assign, case .cookie(let name) = sticky.key {
                let id = StickyHash.newID(using: &random)
                assignCookie = CookieAssignment(name: name, value: id, maxAge: sticky.maxAge)
                return split.backend(forBucket: stickyBucket(key: id))
            }
            return split.pick(random: &random)
        }
    }
}
