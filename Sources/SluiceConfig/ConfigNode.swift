import Yams

/// Where in the file a mapping sits, as messages name it: `route 'checkout'`,
/// `match of route 'checkout'`, or the top level.
struct Scope {
    /// Empty for the top level.
    var name: String

    static let topLevel = Scope(name: "")

    /// `in route 'checkout'` / `at top level`, for "unknown key ..." messages.
    var whereabouts: String { name.isEmpty ? "at top level" : "in \(name)" }

    /// How messages name the value of `key` in this mapping: `'timeout' in backend 'v2'`.
    func slot(_ key: String) -> String { name.isEmpty ? "'\(key)'" : "'\(key)' in \(name)" }

    /// A scope nested in this one: `match` → `match of route 'checkout'`.
    func nested(_ child: String) -> Scope { Scope(name: name.isEmpty ? child : "\(child) of \(name)") }
}

/// A YAML node with its position and the name messages use for it. The typed readers below turn
/// it into a value or report a type error naming the slot and the expected type.
struct ConfigNode {
    let node: Node
    let at: SourceLocation
    /// How messages name this slot, e.g. `'timeout' in backend 'checkout-v2'`.
    let slot: String

    init(_ node: Node, slot: String, fallback: SourceLocation) {
        self.node = node
        self.at = node.mark.map { SourceLocation(line: $0.line, column: $0.column) } ?? fallback
        self.slot = slot
    }

    /// `key:` with nothing after it, `~` or `null`.
    var isNull: Bool {
        guard case .scalar(let scalar) = node, scalar.style == .plain || scalar.style == .any else { return false }
        return ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }

    /// What was found instead of the expected type: `a map`, `a list`, `'abc'`, `nothing`.
    var foundDescription: String {
        switch node {
        case .mapping: return "a map"
        case .sequence: return "a list"
        case .alias: return "an alias"
        case .scalar(let scalar):
            if isNull { return "nothing" }
            let text = scalar.string.count > 40 ? scalar.string.prefix(37) + "..." : scalar.string[...]
            // A quoted `"5"` is a string, not a number: show the quotes so the message says why.
            return scalar.style == .plain || scalar.style == .any ? "'\(text)'" : "\"\(text)\""
        }
    }

    func typeError(expected: String, _ diagnostics: inout Diagnostics) {
        diagnostics.error("\(slot) must be \(expected) (got \(foundDescription))", at: at)
    }

    /// The scalar's text when it is a plain (unquoted) scalar: numbers and booleans must be plain.
    private var plainText: String? {
        guard case .scalar(let scalar) = node, scalar.style == .plain || scalar.style == .any else { return nil }
        return scalar.string
    }

    // MARK: Scalars

    /// Any scalar but null, as written (`version: 2` reads as "2"); empty strings are refused.
    /// `expected` names the type in the message (`a duration`, `an address`).
    func string(_ diagnostics: inout Diagnostics, expected: String = "a string") -> Located<String>? {
        guard case .scalar(let scalar) = node, !isNull else {
            typeError(expected: expected, &diagnostics)
            return nil
        }
        guard !scalar.string.isEmpty else {
            diagnostics.error("\(slot) must not be empty", at: at)
            return nil
        }
        return Located(value: scalar.string, at: at)
    }

    /// `true` or `false` (YAML 1.2 core spellings; `yes`/`on` are refused as ambiguous).
    func bool(_ diagnostics: inout Diagnostics) -> Located<Bool>? {
        switch plainText {
        case "true", "True", "TRUE": return Located(value: true, at: at)
        case "false", "False", "FALSE": return Located(value: false, at: at)
        default:
            typeError(expected: "true or false", &diagnostics)
            return nil
        }
    }

    /// A plain decimal integer; `_` may group digits (`1_048_576`).
    func integer(_ diagnostics: inout Diagnostics) -> Located<Int>? {
        guard let text = plainText, let value = Self.parseInteger(text) else {
            typeError(expected: "an integer", &diagnostics)
            return nil
        }
        return Located(value: value, at: at)
    }

    /// A plain decimal number, integer or with a fraction (`12.5`).
    func number(_ diagnostics: inout Diagnostics) -> Located<Double>? {
        guard let text = plainText, let value = Self.parseNumber(text) else {
            typeError(expected: "a number", &diagnostics)
            return nil
        }
        return Located(value: value, at: at)
    }

    static func parseInteger(_ text: String) -> Int? {
        var body = Substring(text)
        var sign = ""
        if let first = body.first, first == "-" || first == "+" {
            sign = first == "-" ? "-" : ""
            body = body.dropFirst()
        }
        guard let first = body.first, first.isASCII, first.isNumber,
              body.allSatisfy({ ($0.isASCII && $0.isNumber) || $0 == "_" }) else { return nil }
        return Int(sign + body.filter { $0 != "_" })
    }

    static func parseNumber(_ text: String) -> Double? {
        if let int = parseInteger(text) { return Double(int) }
        let body = text.hasPrefix("-") || text.hasPrefix("+") ? text.dropFirst() : text[...]
        let parts = body.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, !(parts[0].isEmpty && parts[1].isEmpty),
              parts.allSatisfy({ $0.allSatisfy { $0.isASCII && $0.isNumber } }) else { return nil }
        return Double(text)
    }

    // MARK: Collections

    /// The entries of a list. With `allowSingle`, a lone scalar or map stands for a one-entry list
    /// (`listen: "127.0.0.1:8080"`).
    func list(_ diagnostics: inout Diagnostics, allowSingle: Bool = false) -> [ConfigNode]? {
        switch node {
        case .sequence(let sequence):
            return sequence.enumerated().map { index, element in
                ConfigNode(element, slot: "entry \(index + 1) of \(slot)", fallback: at)
            }
        case .scalar, .mapping:
            if allowSingle && !isNull { return [self] }
            typeError(expected: "a list", &diagnostics)
            return nil
        case .alias:
            typeError(expected: "a list", &diagnostics)
            return nil
        }
    }

    /// A list of non-empty strings (a lone string with `allowSingle`).
    func stringList(_ diagnostics: inout Diagnostics, allowSingle: Bool = false) -> [Located<String>]? {
        if case .mapping = node {
            typeError(expected: "a list of strings", &diagnostics)
            return nil
        }
        guard let entries = list(&diagnostics, allowSingle: allowSingle) else { return nil }
        let strings = entries.compactMap { $0.string(&diagnostics) }
        return strings.count == entries.count ? strings : nil
    }

    /// The node as a mapping whose keys belong to `scope`. With `allowedKeys`, any other key is an
    /// error at that key; without, the keys are names (backends, split entries, header names).
    func mapping(_ diagnostics: inout Diagnostics, scope: Scope, allowedKeys: [String]? = nil) -> ConfigMapping? {
        guard case .mapping(let mapping) = node else {
            typeError(expected: "a map", &diagnostics)
            return nil
        }
        return ConfigMapping(mapping, at: at, scope: scope, allowedKeys: allowedKeys, &diagnostics)
    }
}

/// A mapping in file order, with the position of every key.
struct ConfigMapping {
    struct Entry {
        var key: Located<String>
        var node: Node
    }

    let scope: Scope
    let at: SourceLocation
    /// In file order (YAML forbids duplicate keys, so names are unique).
    let entries: [Entry]

    init(_ mapping: Node.Mapping, at: SourceLocation, scope: Scope, allowedKeys: [String]?,
         _ diagnostics: inout Diagnostics) {
        self.scope = scope
        self.at = at
        var entries: [Entry] = []
        for (keyNode, value) in mapping {
            let key = ConfigNode(keyNode, slot: "a key \(scope.whereabouts)", fallback: at)
            guard case .scalar(let scalar) = keyNode, !key.isNull, !scalar.string.isEmpty else {
                key.typeError(expected: "a name", &diagnostics)
                continue
            }
            let name = scalar.string
            if let allowedKeys, !allowedKeys.contains(name) {
                var message = "unknown key '\(name)' \(scope.whereabouts)"
                if name == "<<" {
                    message += " (YAML merge keys are not supported: write the keys out)"
                } else if let suggestion = Self.suggestion(for: name, among: allowedKeys) {
                    message += " (did you mean '\(suggestion)'?)"
                }
                diagnostics.error(message, at: key.at)
                continue
            }
            entries.append(Entry(key: Located(value: name, at: key.at), node: value))
        }
        self.entries = entries
    }

    /// The value of `key`, named for messages as `'key' in <scope>`; nil when absent.
    subscript(key: String) -> ConfigNode? {
        entries.first { $0.key.value == key }.map { value(of: $0) }
    }

    /// Where `key` is written, if it is.
    func keyLocation(_ key: String) -> SourceLocation? {
        entries.first { $0.key.value == key }?.key.at
    }

    func value(of entry: Entry, slot: String? = nil) -> ConfigNode {
        ConfigNode(entry.node, slot: slot ?? scope.slot(entry.key.value), fallback: entry.key.at)
    }

    /// A known key that `key` is probably a misspelling of: same letters in another case, or at
    /// most two edits away.
    static func suggestion(for key: String, among known: [String]) -> String? {
        if let sameLetters = known.first(where: { $0.lowercased() == key.lowercased() }) { return sameLetters }
        let scored = known.map { ($0, editDistance(Array(key.lowercased()), Array($0.lowercased()))) }
        guard let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= 2, best.1 < key.count / 2 + 1 else { return nil }
        return best.0
    }

    private static func editDistance(_ a: [Character], _ b: [Character]) -> Int {
        var previous = Array(0...b.count)
        for (i, ca) in a.enumerated() {
            var current = [i + 1]
            for (j, cb) in b.enumerated() {
                current.append(Swift.min(previous[j + 1] + 1, current[j] + 1, previous[j] + (ca == cb ? 0 : 1)))
            }
            previous = current
        }
        return previous[b.count]
    }
}
