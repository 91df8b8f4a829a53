extension Rule {
    /// Whether every condition holds (AND); a rule without conditions always holds.
    func holds<F: RequestFacts>(for facts: F) -> Bool {
        conditions.withUnsafeBufferPointer { conditions in
            conditions.indices.allSatisfy { conditions[$0].holds(for: facts) }
        }
    }
}

extension Condition {
    /// A header condition holds when ANY value of the header matches (a header may be sent
    /// more than once); a cookie or query condition looks at the first occurrence of its name.
    /// An absent header, cookie or parameter never holds, not even for `present`.
    ///
    /// Header and cookie values are matched as bytes where they lie (no cookie or query
    /// dictionary is ever built: each lookup scans for the one name asked, `Cookies.swift`,
    /// `Query.swift`).
    func holds<F: RequestFacts>(for facts: F) -> Bool {
        // The closures capture the matcher alone: capturing `self` copied the condition.
        let matcher = value
        switch place {
        case .header:
            return facts.firstHeaderValue(name) { matcher.matches($0) ? true : nil } ?? false
        case .cookie:
            return CookieHeader.value(named: name, in: facts) { matcher.matches($0) } ?? false
        case .query:
            guard let query = facts.query, let found = QueryString.value(named: name, in: query) else { return false }
            return matcher.matches(found)
        }
    }
}

extension ValueMatcher {
    /// `matches(_:)` for a slice of the query, so a found value is never copied unless a regex
    /// needs a `String`. Exact values compare byte for byte.
    func matches(_ value: Substring) -> Bool {
        switch self {
        case .exact(let expected): return ASCII.equal(value, expected)
        case .regex(let re): return re.matches(String(value))
        case .present: return true
        }
    }

    /// `matches(_:)` for the bytes of a header or cookie value where they lie.
    func matches(_ value: UnsafeBufferPointer<UInt8>) -> Bool {
        switch self {
        case .exact(let expected): return expected.withUTF8Bytes { ASCII.equal(value, 0..<value.count, $0) }
        case .regex(let re): return re.matches(value)
        case .present: return true
        }
    }
}
