import Foundation
import NIOCore
import SluiceConfig
import SluiceMetrics
import SluiceProxy
import SluiceRouting

/// Starts real test backends and a real proxy on loopback (ephemeral ports), runs a test body,
/// and stops everything, whatever the body does.
struct Harness: Sendable {
    let proxy: SluiceServer
    let backends: [TestBackend]
    let port: Int

    func client() throws -> RawHTTPClient { try RawHTTPClient(port: port) }

    /// A backend spec for `backends[i]`-style use.
    static func spec(_ name: String, _ version: String, _ endpoints: [String],
                     connectTimeout: Duration = .seconds(1), timeout: Duration = .seconds(30)) -> BackendSpec {
        BackendSpec(name: name, version: version,
                    endpoints: endpoints.map { e in
                        let parts = e.split(separator: ":")
                        return SocketAddressSpec(host: String(parts[0]), port: Int(parts[1])!)
                    },
                    connectTimeout: connectTimeout, timeout: timeout)
    }

    /// Runs `body` with a proxy in front of freshly started backends.
    ///
    /// - `versions`: one test backend per entry (version label, options).
    /// - `specs`: backend specs given the started backends' addresses (default: one spec per backend,
    ///   named `b0`, `b1`, ... with the backend's version).
    /// - `routes`: the route table (default: one catch-all route to backend 0).
    /// - `listener`: the one listener (default: HTTP/1.1 on an ephemeral loopback port).
    static func with(
        backends versions: [TestBackend.Options],
        specs: (([TestBackend]) -> [BackendSpec])? = nil,
        routes: [Route]? = nil,
        server: ServerSettings = ServerSettings(),
        listener: ListenerSpec = ListenerSpec(address: SocketAddressSpec(host: "127.0.0.1", port: 0)),
        threads: Int = 1,
        _ body: @escaping @Sendable (Harness) throws -> Void
    ) async throws {
        var started: [TestBackend] = []
        for options in versions { started.append(try await TestBackend.start(options: options)) }
        let backendSpecs = specs?(started)
            ?? started.enumerated().map { spec("b\($0.offset)", $0.element.options.version, [$0.element.address]) }
        let table = RouteTable(
            routes: routes ?? [Route(name: "all", target: .backend(BackendID(0)))],
            backendNames: backendSpecs.map(\.name))
        let config = Configuration(
            path: "/tmp/sluice-test.yaml",
            listeners: [listener],
            statePath: "/tmp/sluice-test-state.json",
            backends: backendSpecs, table: table, server: server)
        try await run(config, backends: started, threads: threads, body)
    }

    /// Starts a proxy for `config` in front of `backends`, runs `body` on its own thread, and
    /// stops the proxy and the backends whatever happens.
    private static func run(_ config: Configuration, backends started: [TestBackend], threads: Int,
                            _ body: @escaping @Sendable (Harness) throws -> Void) async throws {
        do {
            let proxy = try SluiceServer(configuration: config, threads: threads)
            do {
                try await proxy.start()
                let harness = Harness(proxy: proxy, backends: started, port: proxy.boundAddresses.first!.port!)
                try await onThread { try body(harness) }
            } catch {
                await proxy.shutdown(drainTimeout: .milliseconds(100))
                throw error
            }
            await proxy.shutdown(drainTimeout: .milliseconds(100))
        } catch {
            for b in started { await b.stop() }
            throw error
        }
        for b in started { await b.stop() }
    }
}

extension Harness {
    /// Runs `body` with a proxy built from YAML `config`, in front of freshly started backends.
    /// In the text, `${B0}`, `${B1}`, ... stand for the started backends' `127.0.0.1:PORT`;
    /// the listeners are replaced by one on an ephemeral loopback port.
    static func withYAML(
        backends versions: [TestBackend.Options], config: String, threads: Int = 1,
        listener: ListenerSpec = ListenerSpec(address: SocketAddressSpec(host: "127.0.0.1", port: 0)),
        _ body: @escaping @Sendable (Harness) throws -> Void
    ) async throws {
        var started: [TestBackend] = []
        for options in versions { started.append(try await TestBackend.start(options: options)) }
        var text = config
        for (i, b) in started.enumerated() { text = text.replacingOccurrences(of: "${B\(i)}", with: b.address) }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var configuration: Configuration
        do {
            configuration = try ConfigLoader.parse(text: text, path: dir.appendingPathComponent("sluice.yaml").path)
        } catch {
            for b in started { await b.stop() }
            throw error
        }
        configuration.listeners = [listener]
        try await run(configuration, backends: started, threads: threads, body)
    }

    /// The usual two-version setup: backends `a` (v1) and `b` (v2) and one route `web` whose
    /// keys (split, sticky, rules, ...) are `route`, written without indentation.
    static func withTwoVersions(
        route: String,
        listener: ListenerSpec = ListenerSpec(address: SocketAddressSpec(host: "127.0.0.1", port: 0)),
        _ body: @escaping @Sendable (Harness) throws -> Void
    ) async throws {
        try await withYAML(backends: [.init(version: "v1"), .init(version: "v2")], config: """
            listen: ["127.0.0.1:1"]
            backends:
              a: { version: v1, endpoints: ["${B0}"] }
              b: { version: v2, endpoints: ["${B1}"] }
            routes:
              - name: web
            """ + "\n" + routeKeys(route), listener: listener, body)
    }

    /// The usual mirroring setup: backends `primary` (v1) and `shadow` (v2), one route `web` to `primary` plus keys `route`.
    static func withShadow(
        shadow: TestBackend.Options = .init(version: "v2"),
        route: String,
        listener: ListenerSpec = ListenerSpec(address: SocketAddressSpec(host: "127.0.0.1", port: 0)),
        _ body: @escaping @Sendable (Harness) throws -> Void
    ) async throws {
        try await withYAML(backends: [.init(version: "v1"), shadow], config: """
            listen: ["127.0.0.1:1"]
            backends:
              primary: { version: v1, endpoints: ["${B0}"] }
              shadow: { version: v2, endpoints: ["${B1}"] }
            routes:
              - name: web
                backend: primary
            """ + "\n" + routeKeys(route), listener: listener, body)
    }

    /// Route keys written without indentation, indented under `  - name: web`.
    private static func routeKeys(_ route: String) -> String {
        route.split(separator: "\n", omittingEmptySubsequences: false).map { "    " + $0 }.joined(separator: "\n")
    }

    /// The proxy's merged statistics (blocking; test bodies run on their own thread).
    func statistics() throws -> ShardCopy { try proxy.statisticsFuture().wait() }
}

/// A task executor with one dedicated thread: blocking socket code runs there, never on the
/// cooperative pool, while staying inside the test's task, so that an `#expect` failing in it
/// is attributed to its test (on a bare `Thread` swift-testing loses the test context and
/// reports the issue as «unknown» while the test itself shows as passed).
final class DedicatedThreadExecutor: TaskExecutor, @unchecked Sendable {
    // Guarded by `condition`.
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []
    private var stopped = false

    init() {
        let thread = Thread { [self] in run() }
        thread.stackSize = 4 << 20
        thread.start()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    /// Ends the thread once the queue is empty.
    func shutdown() {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while jobs.isEmpty && !stopped { condition.wait() }
            if jobs.isEmpty { condition.unlock(); return }
            let job = jobs.removeFirst()
            condition.unlock()
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}

/// Runs blocking test code on a dedicated thread, in the calling test's task.
func onThread(_ body: @escaping @Sendable () throws -> Void) async throws {
    let executor = DedicatedThreadExecutor()
    defer { executor.shutdown() }
    try await withTaskExecutorPreference(executor) {
        try body()
    }
}


/// A loopback port that nothing listens on (bound, then closed).
func unusedPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    return boundPort(fd)
}

/// A loopback port that nothing listens on and nothing will: its socket stays bound (never
/// listening) until the test process exits, so connecting is refused and the kernel cannot hand
/// the port to a listener started later. (With `unusedPort`, the proxy under test once got the
/// "dead" upstream's port for its own listener and forwarded requests to itself.)
func deadPort() throws -> Int {
    boundPort(socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0))
}

/// Binds `fd` to 127.0.0.1 on a port the kernel picks and returns the port.
func boundPort(_ fd: Int32) -> Int {
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// Polls `condition` every 10 ms until it holds or `timeout` seconds pass; true when it held.
func waitUntil(timeout: Double, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(timeout * 1e9)
    while true {
        if try condition() { return true }
        if DispatchTime.now().uptimeNanoseconds > deadline { return false }
        usleep(10_000)
    }
}
