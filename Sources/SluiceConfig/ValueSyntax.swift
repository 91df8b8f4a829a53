#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceRouting

/// Why a value was refused; the compiler puts it in a message at the value's position.
struct SyntaxProblem: Error, Equatable {
    var message: String
    init(_ message: String) { self.message = message }
}

/// `250ms`, `5s`, `2m`, `1h`, and decimals such as `1.5s`.
enum DurationSyntax {
    private static let units: [(suffix: String, nanoseconds: Int64)] = [
        ("ms", 1_000_000), ("s", 1_000_000_000), ("m", 60_000_000_000), ("h", 3_600_000_000_000),
    ]

    static func parse(_ text: String) -> Duration? {
        guard let unit = units.first(where: { text.hasSuffix($0.suffix) }) else { return nil }
        let number = text.dropLast(unit.suffix.count)
        let parts = number.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        let whole = parts[0]
        let fraction = parts.count > 1 ? parts[1] : ""
        guard !whole.isEmpty, whole.allSatisfy(\.isASCIIDigit), fraction.allSatisfy(\.isASCIIDigit),
              parts.count == 1 || !fraction.isEmpty, fraction.count <= 9,
              let wholeValue = Int64(whole) else { return nil }
        let (wholeNanos, overflow) = wholeValue.multipliedReportingOverflow(by: unit.nanoseconds)
        guard !overflow else { return nil }
        var fractionNanos: Int64 = 0
        if let fractionValue = Double("0." + fraction), !fraction.isEmpty {
            fractionNanos = Int64((fractionValue * Double(unit.nanoseconds)).rounded())
        }
        let (total, sumOverflow) = wholeNanos.addingReportingOverflow(fractionNanos)
        return sumOverflow ? nil : .nanoseconds(total)
    }

    static func problem(_ text: String) -> String {
        "invalid duration '\(text)' (use e.g. 250ms, 5s, 2m)"
    }
}

/// `host:port` for listeners, endpoints and the admin HTTP address; IPv6 as `[::1]:8080`.
enum AddressSyntax {
    static func parse(_ text: String) -> Result<SocketAddressSpec, SyntaxProblem> {
        let host: Substring
        let port: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else {
                return .failure(problem(text, "missing ']' after the IPv6 address"))
            }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else {
                return .failure(problem(text, rest.isEmpty ? "missing port (use e.g. [::1]:8080)"
                                                          : "expected ':port' after ']'"))
            }
            port = rest.dropFirst()
            guard isIPv6(String(host)) else { return .failure(problem(text, "'\(host)' is not an IPv6 address")) }
        } else {
            guard let colon = text.lastIndex(of: ":") else {
                return .failure(problem(text, "missing port (use host:port, e.g. 127.0.0.1:8080)"))
            }
            host = text[..<colon]
            port = text[text.index(after: colon)...]
            if host.contains(":") {
                return .failure(problem(text, "an IPv6 address goes in brackets, e.g. [::1]:8080"))
            }
            if host.isEmpty {
                return .failure(problem(text, "missing host (use e.g. 127.0.0.1, or 0.0.0.0 for every interface)"))
            }
            if let hostProblem = HostNameSyntax.problem(String(host)) { return .failure(problem(text, hostProblem)) }
        }
        guard !port.isEmpty, port.count <= 5, port.allSatisfy(\.isASCIIDigit), let number = Int(port),
              (1...65535).contains(number) else {
            return .failure(problem(text, "port must be a number from 1 to 65535"))
        }
        return .success(SocketAddressSpec(host: String(host), port: number))
    }

    private static func problem(_ text: String, _ reason: String) -> SyntaxProblem {
        SyntaxProblem("invalid address '\(text)': \(reason)")
    }

    static func isIPv6(_ text: String) -> Bool {
        var address = in6_addr()
        return inet_pton(AF_INET6, text, &address) == 1
    }

    static func isIPv4(_ text: String) -> Bool {
        var address = in_addr()
        return inet_pton(AF_INET, text, &address) == 1
    }
}

/// Host names (RFC 1123 labels) and IPv4 addresses.
enum HostNameSyntax {
    /// Why `host` is not a host name or IPv4 address, or nil when it is one.
    static func problem(_ host: String) -> String? {
        if host.allSatisfy({ $0.isASCIIDigit || $0 == "." }) {
            return AddressSyntax.isIPv4(host) ? nil : "'\(host)' is not an IPv4 address"
        }
        let labels = host.split(separator: ".", omittingEmptySubsequences: false)
        let valid = host.count <= 253 && labels.allSatisfy { label in
            (1...63).contains(label.count) && label.first != "-" && label.last != "-"
                && label.allSatisfy { $0.isASCIIDigit || $0.isASCIILetter || $0 == "-" || $0 == "_" }
        }
        return valid ? nil : "'\(host)' is not a valid host name"
    }
}

/// `match.host`: an exact name or `*.suffix`, compiled lowercase.
enum HostPatternSyntax {
    static func parse(_ text: String) -> Result<HostPattern, SyntaxProblem> {
        let lower = text.lowercased()
        func problem(_ reason: String) -> Result<HostPattern, SyntaxProblem> {
            .failure(SyntaxProblem("invalid host '\(text)': \(reason)"))
        }
        if lower.hasPrefix("[") && lower.hasSuffix("]") {
            return AddressSyntax.isIPv6(String(lower.dropFirst().dropLast())) ? .success(.exact(lower))
                : problem("not an IPv6 address")
        }
        if lower.contains(":") {
            return problem("a host pattern has no port (the port of the Host header is ignored)")
        }
        if lower.hasPrefix("*.") {
            let suffix = String(lower.dropFirst())
            if suffix.dropFirst().contains("*") { return problem("only the first label may be '*'") }
            if let reason = HostNameSyntax.problem(String(suffix.dropFirst())) { return problem(reason) }
            return .success(.wildcard(suffix: suffix))
        }
        if lower.contains("*") {
            return problem("a wildcard must be the whole first label, e.g. *.example.com")
        }
        if let reason = HostNameSyntax.problem(lower) { return problem(reason) }
        return .success(.exact(lower))
    }
}

/// HTTP tokens (RFC 9110 §5.6.2): method names, header and cookie names.
enum TokenSyntax {
    static func isToken(_ text: String) -> Bool {
        !text.isEmpty && text.allSatisfy { $0.isASCIIDigit || $0.isASCIILetter || "!#$%&'*+-.^_`|~".contains($0) }
    }
}

/// Names of backends and routes: they appear in admin URLs (`/routes/{route}/weights`), JSON and
/// metric labels, so they stay plain.
enum NameSyntax {
    static func isName(_ text: String) -> Bool {
        !text.isEmpty && text.allSatisfy { $0.isASCIIDigit || $0.isASCIILetter || "._-".contains($0) }
    }

    static let rule = "use letters, digits, '.', '_' and '-'"
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
    var isASCIILetter: Bool { isASCII && isLetter }
}
