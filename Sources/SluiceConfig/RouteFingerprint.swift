import Yams

/// A canonical text for one route's entry in `routes:`, used by the reload rule: a route keeps its
/// live change (weights, switch) only while its own definition is unchanged.
///
/// The rendering ignores everything that is layout rather than content — indentation, comments,
/// flow vs block style, quoting, key order — and keeps everything that is content. Key order is
/// content in exactly one place: the entries of a `split`, whose order lays out the sticky buckets.
enum RouteFingerprint {
    static func render(_ node: Node) -> String {
        var out = ""
        render(node, orderMatters: false, into: &out)
        return out
    }

    private static func render(_ node: Node, orderMatters: Bool, into out: inout String) {
        switch node {
        case .scalar(let scalar):
            out += renderScalar(scalar)
        case .alias(let alias):
            out += "*" + quoted(alias.anchor.rawValue)
        case .sequence(let sequence):
            out += "["
            for (index, element) in sequence.enumerated() {
                if index > 0 { out += "," }
                render(element, orderMatters: false, into: &out)
            }
            out += "]"
        case .mapping(let mapping):
            let pairs = mapping.map { (key: renderKey($0.key), value: $0.value) }
            let ordered = orderMatters ? pairs : pairs.sorted { $0.key < $1.key }
            out += "{"
            for (index, pair) in ordered.enumerated() {
                if index > 0 { out += "," }
                out += pair.key + ":"
                render(pair.value, orderMatters: pair.key == quoted("split"), into: &out)
            }
            out += "}"
        }
    }

    private static func renderKey(_ node: Node) -> String {
        if case .scalar(let scalar) = node { return quoted(scalar.string) }
        var out = ""
        render(node, orderMatters: false, into: &out)
        return out
    }

    /// Plain numbers in canonical form (`1_0` and `10` agree), plain nulls and booleans as
    /// keywords, everything else as a quoted string (so `x: a` and `x: "a"` agree).
    private static func renderScalar(_ scalar: Node.Scalar) -> String {
        guard scalar.style == .plain || scalar.style == .any else { return quoted(scalar.string) }
        switch scalar.string {
        case "", "~", "null", "Null", "NULL": return "null"
        case "true", "True", "TRUE": return "true"
        case "false", "False", "FALSE": return "false"
        default:
            if let int = ConfigNode.parseInteger(scalar.string) { return String(int) }
            if let number = ConfigNode.parseNumber(scalar.string) { return String(number) }
            return quoted(scalar.string)
        }
    }

    private static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default:
                if scalar.value < 0x20 {
                    out += "\\u{\(String(scalar.value, radix: 16))}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
