extension MirrorPolicy {
    /// Whether to shadow this request: its method is listed and a draw in [0, 100) falls below
    /// `percent`. Percent 100 (or more) always mirrors and 0 (or less) never does, and neither
    /// consumes a draw; an unlisted method consumes none either. The choice does not depend on
    /// which backend serves the request.
    func shouldMirror<R: RandomNumberGenerator>(method: String, random: inout R) -> Bool {
        guard methods.contains(method) else { return false }
        if percent >= 100 { return true }
        guard percent > 0 else { return false }
        return shouldMirror(draw: Double.random(in: 0..<100, using: &random))
    }

    /// The percent test alone, for a draw in [0, 100).
    func shouldMirror(draw: Double) -> Bool {
        draw < percent
    }
}
