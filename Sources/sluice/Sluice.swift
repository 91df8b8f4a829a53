import ArgumentParser
import Foundation
import SluiceConfig
import SluiceProxy

/// `sluice`: one executable, five commands (see SPEC.md "Command line").
/// Exit codes: 0 ok, 1 invalid input (config, arguments), 2 runtime failure (cannot bind, ...).
@main
struct Sluice: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice",
        abstract: "A progressive-delivery L7 reverse proxy: canary splits, A/B rules, blue-green and shadow traffic.",
        subcommands: [Run.self, Check.self, Demo.self, Backend.self, Ctl.self])
}

/// Prints one line to stderr.
func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// Loads a config or exits 1 with every error on stderr as `FILE:LINE:COL: message`.
func loadConfigOrExit(_ path: String) throws -> Configuration {
    do {
        return try ConfigLoader.load(path: path)
    } catch {
        for e in error.errors { printError(e.description) }
        throw ExitCode(1)
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate a config file; print every error as FILE:LINE:COL: message; exit 1 if any.")

    @Argument(help: "The config file.") var file: String

    func run() throws {
        let configuration = try loadConfigOrExit(file)
        // The loader checks that certificate and key files exist; this loads them as `run` will.
        let problems = TLSCheck.problems(configuration.listeners)
        for problem in problems { printError("\(file): \(problem)") }
        if !problems.isEmpty { throw ExitCode(1) }
        print("\(file): ok")
    }
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Serve with the given config.")

    @Option(name: .long, help: "The config file.") var config: String
    @Option(name: .long, help: "Number of event loops (default: number of cores).") var threads: Int?

    func run() async throws {
        let configuration = try loadConfigOrExit(config)
        if let note = raiseOpenFileLimit() { printError("sluice: \(note)") }
        // Sockets a service manager passed (systemd socket activation): a restart refuses nothing.
        let (inherited, problems) = InheritedListeners.fromEnvironment()
        for problem in problems { printError("sluice: \(problem)") }
        let app: RunningProxy
        do {
            app = try await RunningProxy.start(configuration, threads: threads ?? ProcessInfo.processInfo.activeProcessorCount,
                                               inherited: inherited, log: { printError($0) })
        } catch {
            printError("sluice: \(error)")
            throw ExitCode(2)
        }
        for address in app.server.boundAddresses { printError("sluice: listening on \(address)") }
        if let socket = configuration.admin?.socket { printError("sluice: admin socket \(socket)") }
        let control = app.control
        onSignal(SIGHUP) { control.reload() }
        await waitForTermination()
        printError("sluice: draining")
        await app.stop()
    }
}

/// Runs `body` on every delivery of `sig` (SIGHUP: reload).
func onSignal(_ sig: Int32, _ body: @escaping @Sendable () -> Void) {
    signal(sig, SIG_IGN)
    let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
    source.setEventHandler(handler: body)
    source.resume()
    SignalSources.keep([source])
}

struct Backend: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A small test app: answers with its version and echoes the request as JSON.")

    @Option(name: .long, help: "host:port to listen on.") var listen: String
    @Option(name: .long, help: "The version label it answers with.") var version: String
    @Option(name: .long, help: "Added latency, e.g. 50ms.") var latency: String?
    @Option(name: .long, help: "Share of requests answered with 503, 0...1.") var errorRate: Double = 0
    @Flag(name: .long, help: "Serve HTTP/2 with prior knowledge (a gRPC-style backend) instead of HTTP/1.1.") var h2c = false
    @Flag(name: .long, help: "Answer 'ok' instead of the JSON echo and record nothing (a cheap backend for benchmarks).") var plain = false

    func run() async throws {
        guard let address = ValueSyntax.address(listen) else {
            printError("sluice backend: invalid --listen '\(listen)' (use host:port)")
            throw ExitCode(1)
        }
        var delay = Duration.zero
        if let latency {
            guard let d = ValueSyntax.duration(latency) else {
                printError("sluice backend: invalid --latency '\(latency)' (use e.g. 250ms, 5s)")
                throw ExitCode(1)
            }
            delay = d
        }
        guard (0...1).contains(errorRate) else {
            printError("sluice backend: --error-rate must be between 0 and 1")
            throw ExitCode(1)
        }
        if let note = raiseOpenFileLimit() { printError("sluice backend: \(note)") }
        let backend: TestBackend
        do {
            backend = try await TestBackend.start(host: address.host, port: address.port,
                                                  options: .init(version: version, latency: delay, errorRate: errorRate, h2c: h2c, plain: plain,
                                                                record: false))
        } catch {
            printError("sluice backend: cannot bind \(listen): \(error)")
            throw ExitCode(2)
        }
        printError("sluice backend \(version) listening on \(backend.address)")
        await waitForTermination()
        await backend.stop()
    }
}

/// Suspends until SIGTERM or SIGINT.
func waitForTermination() async {
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        let once = OnceFlag()
        var sources: [DispatchSourceSignal] = []
        for sig in [SIGTERM, SIGINT] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                if once.set() { continuation.resume() }
            }
            source.resume()
            sources.append(source)
        }
        SignalSources.keep(sources)
    }
}

/// Keeps signal sources alive for the life of the process.
enum SignalSources {
    nonisolated(unsafe) private static var all: [DispatchSourceSignal] = []
    private static let lock = NSLock()
    static func keep(_ sources: [DispatchSourceSignal]) {
        lock.lock()
        all += sources
        lock.unlock()
    }
}

/// A flag that can be set once, from any thread.
final class OnceFlag: @unchecked Sendable {
    // Guarded by `lock`.
    private let lock = NSLock()
    private var done = false
    func set() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        if done { return false }
        done = true
        return true
    }
}
