import ArgumentParser
import Foundation
import SluiceConfig
import SluiceProxy
#if canImport(Glibc)
import Glibc
#endif

/// `sluice ctl`: talks to a running proxy over its admin socket.
struct Ctl: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Talk to a running proxy over its admin socket.",
        subcommands: [Status.self, Top.self, Routes.self, Weights.self, Switch.self, Reload.self, Metrics.self])

    /// `sluice ctl --socket PATH status` (the spec's form) as well as `sluice ctl status --socket PATH`.
    @Option(name: .long, help: "Admin socket (default: $SLUICE_SOCKET, else admin.socket of ./sluice.yaml, else ./sluice.sock).")
    var socket: String?

    struct Options: ParsableArguments {
        @Option(name: .long, help: "Admin socket (default: $SLUICE_SOCKET, else admin.socket of ./sluice.yaml, else ./sluice.sock).")
        var socket: String?
        @ParentCommand var ctl: Ctl

        func resolvedSocket() -> String {
            if let socket { return socket }
            if let socket = ctl.socket { return socket }
            if let env = ProcessInfo.processInfo.environment["SLUICE_SOCKET"], !env.isEmpty { return env }
            if FileManager.default.fileExists(atPath: "sluice.yaml"),
               let config = try? ConfigLoader.load(path: "sluice.yaml"), let path = config.admin?.socket {
                return path
            }
            return "sluice.sock"
        }

        /// Sends one request; prints the server's error line and exits 1 on a non-2xx answer.
        func call(_ method: String, _ path: String, body: String? = nil) throws -> String {
            let socket = resolvedSocket()
            let status: Int
            let text: String
            do {
                let response = try AdminSocketClient.request(socket: socket, method, path, body: body, timeout: 30)
                (status, text) = (response.status, response.body)
            } catch {
                printError("sluice ctl: \(error)")
                throw ExitCode(1)
            }
            guard (200..<300).contains(status) else {
                let data = Data(text.utf8)
                let message = ((try? JSONSerialization.jsonObject(with: data)) as? [String: Any])?["error"] as? String
                printError("sluice ctl: \(message ?? "HTTP \(status): \(text.trimmingCharacters(in: .whitespacesAndNewlines))")")
                throw ExitCode(1)
            }
            return text
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Routes, targets, weights, live changes, per-version figures, reload state.")
        @OptionGroup var options: Options
        func run() throws {
            let text = try options.call("GET", "/status")
            guard let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] else {
                print(text)
                return
            }
            print(StatusTable.render(object))
        }
    }

    struct Top: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A live, refreshing view of every route and version (like top).")
        @OptionGroup var options: Options
        @Option(name: .long, help: "Seconds between refreshes.") var interval: Double = 1
        @Option(name: .long, help: "Stop after this many refreshes (default: until Ctrl-C).") var count: Int?
        func run() throws {
            var shown = 0
            while count.map({ shown < $0 }) ?? true {
                let text = try options.call("GET", "/status")
                let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
                // Clear the screen and home the cursor, then draw.
                print("\u{1B}[2J\u{1B}[H" + StatusTable.render(object, rates: true))
                shown += 1
                if count.map({ shown >= $0 }) ?? false { break }
                usleep(useconds_t(max(0.1, interval) * 1_000_000))
            }
        }
    }

    struct Routes: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One line per route: name, target, weights or active backend.")
        @OptionGroup var options: Options
        func run() throws {
            let text = try options.call("GET", "/status")
            let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
            for route in object["routes"] as? [[String: Any]] ?? [] {
                print(StatusTable.routeLine(route))
            }
        }
    }

    struct Weights: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set a split's weights live: sluice ctl weights ROUTE B=W ...")
        @OptionGroup var options: Options
        @Argument(help: "The route.") var route: String
        @Argument(help: "BACKEND=WEIGHT pairs.") var pairs: [String]
        func run() throws {
            var weights: [String: Int] = [:]
            for pair in pairs {
                let parts = pair.split(separator: "=", maxSplits: 1)
                guard parts.count == 2, let w = Int(parts[1]) else {
                    printError("sluice ctl: '\(pair)' is not BACKEND=WEIGHT")
                    throw ExitCode(1)
                }
                weights[String(parts[0])] = w
            }
            let body = String(decoding: try JSONSerialization.data(withJSONObject: weights, options: [.sortedKeys]), as: UTF8.self)
            _ = try options.call("PUT", "/routes/\(route)/weights", body: body)
            print("\(route): " + weights.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
        }
    }

    struct Switch: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Blue-green switch: swap active and preview, or make --to active.")
        @OptionGroup var options: Options
        @Argument(help: "The route.") var route: String
        @Option(name: .long, help: "The backend to make active.") var to: String?
        func run() throws {
            let body = to.map { "{\"active\":\"\($0)\"}" }
            let text = try options.call("POST", "/routes/\(route)/switch", body: body)
            let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
            print("\(route): active is now \(object["active"] as? String ?? "?")")
        }
    }

    struct Reload: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Reload the config file now.")
        @OptionGroup var options: Options
        func run() throws {
            let text = try options.call("POST", "/reload")
            let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
            print("reloaded: generation \(object["generation"] ?? "?")")
        }
    }

    struct Metrics: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the Prometheus metrics.")
        @OptionGroup var options: Options
        func run() throws { print(try options.call("GET", "/metrics"), terminator: "") }
    }
}

/// The human-readable `ctl status` view.
enum StatusTable {
    static func routeLine(_ route: [String: Any]) -> String {
        let name = route["name"] as? String ?? "?"
        let target = route["target"] as? String ?? "?"
        var what = ""
        if let w = route["weights"] as? [String: Any] {
            what = w.keys.sorted().map { "\($0)=\(w[$0]!)" }.joined(separator: " ")
        } else if let a = route["active"] as? String {
            what = "active=\(a) preview=\(route["preview"] as? String ?? "?")"
        } else if let b = route["backend"] as? String {
            what = b
        }
        let live = (route["live"] as? [String: Any]).map { " (live change at \($0["at"] as? String ?? "?"))" } ?? ""
        return "\(name.padding(toLength: 16, withPad: " ", startingAt: 0)) \(target.padding(toLength: 10, withPad: " ", startingAt: 0)) \(what)\(live)"
    }

    static func render(_ status: [String: Any], rates: Bool = false) -> String {
        var lines: [String] = []
        lines.append("generation \(status["generation"] ?? "?")  config \(status["config"] ?? "?")")
        if let r = status["lastReload"] as? [String: Any] {
            let ok = (r["ok"] as? Bool) == true
            lines.append("last reload: \(ok ? "ok" : "FAILED: \(r["error"] as? String ?? "")") at \(r["at"] as? String ?? "?")")
        }
        if let e = status["stateError"] as? String { lines.append("state: \(e)") }
        lines.append("")
        for route in status["routes"] as? [[String: Any]] ?? [] {
            lines.append(routeLine(route))
            let header = "    " + ["backend", "version", "weight", rates ? "rps" : "req/1m", "err%", "p50", "p95", "p99", "inflight"]
                .map { $0.padding(toLength: 10, withPad: " ", startingAt: 0) }.joined()
            let versions = route["versions"] as? [[String: Any]] ?? []
            if !versions.isEmpty { lines.append(header) }
            for v in versions {
                func ms(_ key: String) -> String {
                    String(format: "%.1fms", ((v[key] as? Double) ?? 0) * 1000)
                }
                let cells = [
                    v["backend"] as? String ?? "", v["version"] as? String ?? "",
                    (v["weight"]).map { "\($0)" } ?? "-",
                    rates ? String(format: "%.1f", Double("\(v["requests"] ?? 0)").map { $0 / 60 } ?? 0) : "\(v["requests"] ?? 0)",
                    String(format: "%.2f", ((v["errorRate"] as? Double) ?? 0) * 100),
                    ms("p50"), ms("p95"), ms("p99"), "\(v["inflight"] ?? 0)",
                ]
                lines.append("    " + cells.map { $0.padding(toLength: 10, withPad: " ", startingAt: 0) }.joined())
                if let cooling = v["endpointsCoolingDown"] as? [String], !cooling.isEmpty {
                    lines.append("      passed over after failed connects: " + cooling.joined(separator: ", "))
                }
            }
        }
        return lines.joined(separator: "\n")
    }
}
