/// The `Cookie` lines of one request, fetched from the facts at most once per decision however
/// many cookie conditions (and a sticky cookie key) ask.
///
/// No cookie or query dictionary is ever built: each lookup scans for the one name asked
/// (`Cookies.swift`, `Query.swift`). This is a plain (non-generic) value so that an
/// unspecialised `decide` — the proxy calls it from another module — instantiates no generic
/// type metadata per request.
struct CookieLines {
    private var lines: [String]?

    /// The value of the first cookie called `name` (case-sensitive) in any `Cookie` header.
    mutating func value<F: RequestFacts>(named name: String, in facts: F) -> Substring? {
        let lines: [String]
        if let cached = self.lines {
            lines = cached
        } else {
            lines = facts.headerValues("cookie")
            self.lines = lines
        }
        return CookieHeader.value(named: name, in: lines)
    }
}

extension Rule {
    /// Whether every condition holds (AND); a rule without conditions always holds.
    func holds<F: RequestFacts>(for facts: F, cookies: inout CookieLines) -> Bool {
        for condition in conditions where !condition.holds(for: facts, cookies: &cookies) {
            return false
        }
        return true
    }
}

extension Condition {
    /// A header condition holds when ANY value of the header matches (a header may be sent
    /// more than once); a cookie or query condition looks at the first occurrence of its name.
    /// An absent header, cookie or parameter never holds, not even for `present`.
    func holds<F: RequestFacts>(for facts: F, cookies: inout CookieLines) -> Bool {
        switch subject {
        case .header(let name):
            for value in facts.headerValues(name) where self.value.matches(value[...]) {
                return true
            }
            return false
        case .cookie(let name):
            guard let found = cookies.value(named: name, in: facts) else { return false }
            return value.matches(found)
        case .query(let name):
            guard let query = facts.query, let found = QueryString.value(named: name, in: query) else { return false }
            return value.matches(found)
        }
    }
}

extension ValueMatcher {
    /// `matches(_:)` for a slice of a header line, so a found value is never copied unless a
    /// regex needs a `String`. Exact values compare byte for byte.
    func matches(_ value: Substring) -> Bool {
        switch self {
        case .exact(let expected): return ASCII.equal(value, expected)
        case .regex(let re): return re.matches(String(value))
        case .present: return true
        }
    }
}
