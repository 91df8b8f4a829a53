#if canImport(Glibc)
import Glibc
#endif
import Foundation
import NIOCore
import Testing
import SluiceConfig
@testable import SluiceProxy

/// End-to-end tests of live control (SPEC "Semantics": Reload, Live changes; "Admin API"): a real
/// proxy with its control plane and admin socket (`RunningProxy`, in-process, or the `sluice`
/// executable as a child process) in front of real test backends, driven over the unix socket.
///
/// Every test gets a fresh short directory (`/tmp/sluice-XXXXXX`: unix socket paths are limited to
/// 108 bytes) holding the config file, the admin socket and the state file. Routing is asserted
/// with deterministic weights (one backend at weight 0), so no assertion here is statistical.

// MARK: - Running blocking code on a thread of its own, inside the test's task

// MARK: - Fixture

/// The file header every test config shares: three backends a (v1), b (v2), c (v3).
/// Lines 1-8; the routes a test appends start on line 9.
private let configHeader = """
    listen: ["127.0.0.1:${PORT}"]
    admin: { socket: "${DIR}/admin.sock" }
    state: "${DIR}/state.json"
    backends:
      a: { version: v1, endpoints: ["${B0}"] }
      b: { version: v2, endpoints: ["${B1}"] }
      c: { version: v3, endpoints: ["${B2}"] }
    routes:

    """

/// The version that served a response (the test backend's `x-backend-version`).
private func versionOf(_ r: RawHTTPClient.Response) -> String {
    r.header("x-backend-version") ?? "status \(r.status)"
}

/// A monotonic clock in nanoseconds, comparable across threads.
private func nowNanos() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

/// Reads a JSON object's integer map (`{"a":0,"b":100}`).
private func intMap(_ value: Any?) -> [String: Int]? {
    guard let object = value as? [String: Any] else { return nil }
    var out: [String: Int] = [:]
    for (k, v) in object {
        guard let n = v as? Int else { return nil }
        out[k] = n
    }
    return out
}

private struct FixtureError: Error, CustomStringConvertible { let description: String }

/// A test's directory, config file and backends.
fileprivate struct LiveEnv: Sendable {
    let dir: String
    let backends: [TestBackend]
    /// The port written into the file's `listen` (used as is by the child-process tests).
    let listenPort: Int

    var configPath: String { dir + "/sluice.yaml" }
    var socketPath: String { dir + "/admin.sock" }
    var statePath: String { dir + "/state.json" }

    static func make() async throws -> LiveEnv {
        var template = Array("/tmp/sluice-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw FixtureError(description: "mkdtemp failed: \(String(cString: strerror(errno)))")
        }
        let dir = String(cString: made)
        var started: [TestBackend] = []
        do {
            for version in ["v1", "v2", "v3"] {
                started.append(try await TestBackend.start(options: .init(version: version)))
            }
            return LiveEnv(dir: dir, backends: started, listenPort: try unusedPort())
        } catch {
            for b in started { await b.stop() }
            try? FileManager.default.removeItem(atPath: dir)
            throw error
        }
    }

    func tearDown() async {
        for b in backends { await b.stop() }
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// The header plus `routes`, with `${B0}`.., `${PORT}` and `${DIR}` filled in.
    func render(_ routes: String) -> String {
        var text = configHeader + routes
        for (i, b) in backends.enumerated() { text = text.replacingOccurrences(of: "${B\(i)}", with: b.address) }
        text = text.replacingOccurrences(of: "${PORT}", with: String(listenPort))
        return text.replacingOccurrences(of: "${DIR}", with: dir)
    }

    /// Rewrites the config in place (same inode: truncate + one write).
    func writeInPlace(_ routes: String) throws { try Self.writeInPlace(render(routes), to: configPath) }

    /// Writes a new file beside the config and renames it over the config (a new inode).
    func writeByRename(_ routes: String) throws {
        let tmp = dir + "/sluice.yaml.new"
        try Self.writeInPlace(render(routes), to: tmp)
        guard rename(tmp, configPath) == 0 else {
            throw FixtureError(description: "rename \(tmp): \(String(cString: strerror(errno)))")
        }
    }

    /// Writes raw text (not rendered) by rename.
    func writeRawByRename(_ text: String) throws {
        let tmp = dir + "/sluice.yaml.new"
        try Self.writeInPlace(text, to: tmp)
        guard rename(tmp, configPath) == 0 else {
            throw FixtureError(description: "rename \(tmp): \(String(cString: strerror(errno)))")
        }
    }

    static func writeInPlace(_ text: String, to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw FixtureError(description: "open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        guard n == bytes.count else { throw FixtureError(description: "short write to \(path)") }
    }

    func stateBytes() -> Data? { FileManager.default.contents(atPath: statePath) }

    func inode(_ path: String) -> UInt64 {
        var st = stat()
        return stat(path, &st) == 0 ? UInt64(st.st_ino) : 0
    }

    // MARK: Admin calls (blocking: test bodies run on their own thread)

    func admin(_ method: String, _ path: String, body: String? = nil) throws -> TestAdminClient.Response {
        try TestAdminClient.request(socket: socketPath, method, path, body: body)
    }

    func status() throws -> [String: Any] {
        let r = try admin("GET", "/status")
        guard r.status == 200, !r.json.isEmpty else { throw FixtureError(description: "GET /status: \(r)") }
        return r.json
    }

    func route(_ name: String) throws -> [String: Any] {
        let routes = try status()["routes"] as? [[String: Any]] ?? []
        guard let route = routes.first(where: { $0["name"] as? String == name }) else {
            throw FixtureError(description: "no route '\(name)' in /status")
        }
        return route
    }

    func generation() throws -> Int {
        guard let g = (try status()["generation"] as? NSNumber)?.intValue else {
            throw FixtureError(description: "/status has no generation")
        }
        return g
    }

    func metrics() throws -> String {
        let r = try admin("GET", "/metrics")
        guard r.status == 200 else { throw FixtureError(description: "GET /metrics: \(r)") }
        return r.body
    }
}

/// A running in-process proxy (`RunningProxy`) for a `LiveEnv`.
fileprivate struct Live: Sendable {
    let env: LiveEnv
    let app: RunningProxy
    let port: Int

    func client() throws -> RawHTTPClient { try RawHTTPClient(port: port) }

    /// The versions that served `n` requests on one keep-alive connection.
    func versions(_ n: Int, path: String = "/", headers: [(String, String)] = []) throws -> [String] {
        try Live.versions(port: port, n, path: path, headers: headers)
    }

    static func versions(port: Int, _ n: Int, path: String = "/", headers: [(String, String)] = []) throws -> [String] {
        let c = try RawHTTPClient(port: port)
        defer { c.close() }
        var out: [String] = []
        for i in 0..<n {
            let r = try c.request("GET", path + (path.contains("?") ? "&" : "?") + "i=\(i)", headers: headers)
            out.append(r.status == 200 ? versionOf(r) : "status \(r.status)")
        }
        return out
    }

    /// Starts backends and a proxy for a config whose routes are `routes`, runs `body` on its own
    /// thread, and stops everything whatever happens. The file's listener is replaced by an
    /// ephemeral loopback port (reloads never rebind listeners). `watchFile` is off by default
    /// so that a test's own `POST /reload` is the only reload.
    static func with(_ routes: String, watchFile: Bool = false, threads: Int = 2,
                     prepare: @Sendable (LiveEnv) throws -> Void = { _ in },
                     _ body: @escaping @Sendable (Live) throws -> Void) async throws {
        let env = try await LiveEnv.make()
        do {
            try LiveEnv.writeInPlace(env.render(routes), to: env.configPath)
            try prepare(env)
            var configuration = try ConfigLoader.load(path: env.configPath)
            configuration.listeners = [ListenerSpec(address: SocketAddressSpec(host: "127.0.0.1", port: 0))]
            let app = try await RunningProxy.start(configuration, threads: threads, watchFile: watchFile)
            guard let port = app.server.boundAddresses.first?.port else {
                await app.stop(drainTimeout: .zero)
                throw FixtureError(description: "the proxy bound no listener")
            }
            let live = Live(env: env, app: app, port: port)
            do {
                try await onThread { try body(live) }
            } catch {
                await app.stop(drainTimeout: .milliseconds(100))
                throw error
            }
            await app.stop(drainTimeout: .milliseconds(100))
        } catch {
            await env.tearDown()
            throw error
        }
        await env.tearDown()
    }
}

/// `sluice run --config FILE` as a child process.
final class ChildProxy {
    let process = Process()
    let logPath: String

    /// The `sluice` executable built beside the test bundle (any build directory).
    static func executable() throws -> String {
        var dirs: [URL] = []
        dirs.append(URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent())
        dirs.append(Bundle.main.bundleURL.deletingLastPathComponent())
        dirs.append(Bundle.main.bundleURL)
        for dir in dirs {
            let candidate = dir.appendingPathComponent("sluice").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw FixtureError(description: "the `sluice` executable is not built beside the test bundle (looked in "
                           + dirs.map(\.path).joined(separator: ", ") + "); run `swift build` with the same build path first")
    }

    /// `softFileLimit`: started through `prlimit` with this soft open-file limit (the hard limit
    /// unchanged), as a service manager might start it.
    init(executable: String, config: String, logPath: String, softFileLimit: Int? = nil) throws {
        self.logPath = logPath
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        log.seekToEndOfFile()
        let arguments = ["run", "--config", config, "--threads", "1"]
        if let softFileLimit {
            // prlimit execs the command: the process is the proxy itself.
            process.executableURL = URL(fileURLWithPath: "/usr/bin/prlimit")
            process.arguments = ["--nofile=\(softFileLimit):", executable] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
        }
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    var pid: pid_t { process.processIdentifier }
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Waits (bounded) until the admin socket answers `/healthz` and the listener accepts.
    fileprivate func waitReady(env: LiveEnv, timeout: Double = 20) throws {
        let ready = waitUntil(timeout: timeout) {
            guard process.isRunning else { return true }
            guard let r = try? env.admin("GET", "/healthz"), r.status == 200 else { return false }
            guard let c = try? RawHTTPClient(port: env.listenPort) else { return false }
            c.close()
            return true
        }
        guard ready, process.isRunning else {
            throw FixtureError(description: "sluice did not become ready (running: \(process.isRunning)); its log:\n\(log)")
        }
    }

    /// Sends `sig` and waits (bounded) for the process to end.
    func kill(_ sig: Int32, timeout: Double = 10) throws {
        guard process.isRunning else { return }
        _ = Glibc.kill(pid, sig)
        guard waitUntil(timeout: timeout, { !process.isRunning }) else {
            _ = Glibc.kill(pid, SIGKILL)
            throw FixtureError(description: "sluice did not exit after signal \(sig)")
        }
    }

    deinit {
        if process.isRunning { _ = Glibc.kill(process.processIdentifier, SIGKILL) }
    }
}

/// Counters and records shared by load threads.
private final class LoadLog: @unchecked Sendable {
    struct Record { var start: UInt64; var end: UInt64; var version: String }
    // Guarded by `lock`.
    private let lock = NSLock()
    private var stopped = false
    private var _completed = 0
    private var _failures: [String] = []
    private var _closes = 0
    private var _records: [Record] = []

    var isStopped: Bool { lock.withLock { stopped } }
    func stop() { lock.withLock { stopped = true } }
    var completed: Int { lock.withLock { _completed } }
    var failures: [String] { lock.withLock { _failures } }
    var closes: Int { lock.withLock { _closes } }
    var records: [Record] { lock.withLock { _records } }

    func done(start: UInt64, _ r: RawHTTPClient.Response) {
        lock.withLock {
            _completed += 1
            _records.append(Record(start: start, end: nowNanos(), version: versionOf(r)))
            if r.status != 200 { _failures.append("status \(r.status): \(r.bodyString.prefix(200))") }
            if r.header("connection")?.lowercased() == "close" { _closes += 1 }
        }
    }

    func failed(_ what: String) { lock.withLock { _failures.append(what) } }
}

/// Runs `n` client threads, each with its own keep-alive connection doing sequential GETs of
/// `path` until `log` is stopped. Returns a group to wait on.
private func startClients(_ n: Int, port: Int, path: String, log: LoadLog) -> DispatchGroup {
    let group = DispatchGroup()
    for t in 0..<n {
        group.enter()
        let thread = Thread {
            defer { group.leave() }
            var client: RawHTTPClient?
            var i = 0
            while !log.isStopped {
                i += 1
                do {
                    if client == nil { client = try RawHTTPClient(port: port) }
                    let start = nowNanos()
                    let r = try client!.request("GET", "\(path)?t=\(t)&i=\(i)")
                    log.done(start: start, r)
                    if r.header("connection")?.lowercased() == "close" {
                        client?.close()
                        client = nil
                    }
                } catch {
                    log.failed("thread \(t) request \(i): \(error)")
                    client?.close()
                    client = nil
                }
            }
            client?.close()
        }
        thread.stackSize = 1 << 20
        thread.start()
    }
    return group
}

// MARK: - Tests

extension EndToEnd {
@Suite struct LiveControl {
    private static let splitAndBlueGreen = """
          - name: api
            match: { pathPrefix: /api }
            blueGreen: { active: a, preview: c, previewHeader: x-preview }
          - name: web
            split: { a: 100, b: 0 }

        """

    // MARK: 1. Weights

    @Test func weightsChangedOverTheSocketTakeEffectForTheNextRequest() async throws {
        try await Live.with(Self.splitAndBlueGreen) { live in
            let env = live.env
            #expect(try live.versions(20) == Array(repeating: "v1", count: 20))
            let before = try env.route("web")
            #expect(intMap(before["weights"]) == ["a": 100, "b": 0])
            #expect(before["live"] is NSNull, "no live change yet: \(before["live"] ?? "missing")")

            let r = try env.admin("PUT", "/routes/web/weights", body: #"{"a":0,"b":100}"#)
            #expect(r.status == 200, "\(r)")
            #expect(r.header("content-type")?.hasPrefix("application/json") == true)
            // The very next request, and every one of the 50 after it, goes to b.
            let next = try live.versions(50)
            #expect(next == Array(repeating: "v2", count: 50), "\(next)")

            let web = try env.route("web")
            #expect(web["target"] as? String == "split")
            #expect(intMap(web["weights"]) == ["a": 0, "b": 100])
            let liveEntry = web["live"] as? [String: Any]
            #expect(intMap(liveEntry?["weights"]) == ["a": 0, "b": 100], "live: \(web["live"] ?? "missing")")
            let at = liveEntry?["at"] as? String ?? ""
            #expect(ISO8601DateFormatter().date(from: at) != nil, "live.at '\(at)' is not ISO 8601")
            // The other route has no live change.
            #expect(try env.route("api")["live"] is NSNull)
            // A live change is not a reload: the generation stays.
            #expect(try env.generation() == 1)
        }
    }

    @Test func refusedWeightChangesAreAnsweredWithTheProblemAndChangeNothing() async throws {
        try await Live.with(Self.splitAndBlueGreen) { live in
            let env = live.env
            let ok = try env.admin("PUT", "/routes/web/weights", body: #"{"a":0,"b":100}"#)
            #expect(ok.status == 200, "\(ok)")
            let stateBefore = env.stateBytes()
            #expect(stateBefore != nil)

            // (route, body, status, words the error must contain)
            let refused: [(String, String?, Int, [String])] = [
                ("web", #"{"a":0,"nosuch":100}"#, 400, ["nosuch"]),
                ("web", #"{"a":0,"c":100}"#, 400, ["'c'"]),           // a backend, but not in this split
                ("web", #"{"b":100}"#, 400, ["'a'"]),                 // a split backend is missing
                ("web", #"{"a":-1,"b":100}"#, 400, ["-1"]),
                ("web", #"{"a":0,"b":0}"#, 400, ["0"]),
                ("api", #"{"a":1,"c":1}"#, 400, ["api"]),             // weights on a blue-green route
                ("web", #"{"a":true,"b":100}"#, 400, ["integer"]),
                ("web", #"{"a":"0","b":100}"#, 400, ["integer"]),
                ("web", #"{"a":0.5,"b":100}"#, 400, ["integer"]),
                ("web", "", 400, ["integer"]),                        // empty body
                ("web", nil, 400, ["integer"]),                       // no body at all
                ("web", "{}", 400, ["integer"]),
                ("web", "[0,100]", 400, ["integer"]),
                ("web", "not json", 400, ["integer"]),
                ("nosuch", #"{"a":0,"b":100}"#, 404, ["nosuch"]),
            ]
            for (route, body, status, words) in refused {
                let what = "PUT /routes/\(route)/weights \(body.map { "'\($0)'" } ?? "(no body)")"
                let r = try env.admin("PUT", "/routes/\(route)/weights", body: body)
                #expect(r.status == status, "\(what) → \(r)")
                let error = r.error ?? ""
                #expect(!error.isEmpty, "\(what): no JSON 'error' in \(r)")
                for word in words {
                    #expect(error.contains(word), "\(what): error '\(error)' does not name \(word)")
                }
                // Nothing changed: weights, live entry and the state file.
                let web = try env.route("web")
                #expect(intMap(web["weights"]) == ["a": 0, "b": 100], "\(what) changed the weights: \(web["weights"] ?? "")")
                #expect(intMap((web["live"] as? [String: Any])?["weights"]) == ["a": 0, "b": 100], "\(what)")
                #expect(try env.route("api")["live"] is NSNull, "\(what) left a live change on api")
                #expect(env.stateBytes() == stateBefore, "\(what) rewrote the state file")
            }
            #expect(try live.versions(20) == Array(repeating: "v2", count: 20))
        }
    }

    // MARK: 2. Blue-green switch

    @Test func blueGreenSwitchSendsTheNextRequestToTheNewActive() async throws {
        try await Live.with(Self.splitAndBlueGreen) { live in
            let env = live.env
            #expect(try live.versions(20, path: "/api/x") == Array(repeating: "v1", count: 20))
            #expect(try live.versions(5, path: "/api/x", headers: [("X-Preview", "1")]) == Array(repeating: "v3", count: 5))

            // Empty body: swap.
            let r1 = try env.admin("POST", "/routes/api/switch")
            #expect(r1.status == 200, "\(r1)")
            #expect(r1.json["active"] as? String == "c", "\(r1)")
            #expect(try live.versions(50, path: "/api/x") == Array(repeating: "v3", count: 50))
            // The old active is now the preview.
            #expect(try live.versions(5, path: "/api/x", headers: [("X-Preview", "1")]) == Array(repeating: "v1", count: 5))
            var api = try env.route("api")
            #expect(api["active"] as? String == "c")
            #expect(api["preview"] as? String == "a")
            #expect((api["live"] as? [String: Any])?["active"] as? String == "c", "live: \(api["live"] ?? "missing")")

            // Named target.
            let r2 = try env.admin("POST", "/routes/api/switch", body: #"{"active":"a"}"#)
            #expect(r2.status == 200, "\(r2)")
            #expect(r2.json["active"] as? String == "a")
            #expect(try live.versions(50, path: "/api/x") == Array(repeating: "v1", count: 50))
            // Naming the current active changes nothing and is not an error.
            let r3 = try env.admin("POST", "/routes/api/switch", body: #"{"active":"a"}"#)
            #expect(r3.status == 200, "\(r3)")
            #expect(try live.versions(10, path: "/api/x") == Array(repeating: "v1", count: 10))
            api = try env.route("api")
            #expect(api["active"] as? String == "a")
            // Another route is untouched.
            #expect(try live.versions(10, path: "/web") == Array(repeating: "v1", count: 10))
            #expect(try env.route("web")["live"] is NSNull)
        }
    }

    @Test func refusedSwitchesAreAnsweredWithTheProblemAndChangeNothing() async throws {
        try await Live.with(Self.splitAndBlueGreen) { live in
            let env = live.env
            let ok = try env.admin("POST", "/routes/api/switch", body: #"{"active":"c"}"#)
            #expect(ok.status == 200, "\(ok)")
            let stateBefore = env.stateBytes()
            let refused: [(String, String?, Int, [String])] = [
                ("web", nil, 400, ["web"]),                           // a switch on a split route
                ("web", #"{"active":"b"}"#, 400, ["web"]),
                ("api", #"{"active":"b"}"#, 400, ["'b'"]),            // not one of the pair
                ("api", #"{"active":"nosuch"}"#, 400, ["nosuch"]),
                ("api", #"{"active":5}"#, 400, ["active"]),
                ("api", #"{"bogus":"a"}"#, 400, ["active"]),
                ("api", "not json", 400, ["active"]),
                ("nosuch", nil, 404, ["nosuch"]),
            ]
            for (route, body, status, words) in refused {
                let what = "POST /routes/\(route)/switch \(body.map { "'\($0)'" } ?? "(no body)")"
                let r = try env.admin("POST", "/routes/\(route)/switch", body: body)
                #expect(r.status == status, "\(what) → \(r)")
                let error = r.error ?? ""
                #expect(!error.isEmpty, "\(what): no JSON 'error' in \(r)")
                for word in words { #expect(error.contains(word), "\(what): error '\(error)' does not name \(word)") }
                let api = try env.route("api")
                #expect(api["active"] as? String == "c", "\(what) changed the active backend")
                #expect(try env.route("web")["live"] is NSNull, "\(what) left a live change on web")
                #expect(intMap(try env.route("web")["weights"]) == ["a": 100, "b": 0])
                #expect(env.stateBytes() == stateBefore, "\(what) rewrote the state file")
            }
            #expect(try live.versions(10, path: "/api/x") == Array(repeating: "v3", count: 10))
        }
    }

    // MARK: 3. Persistence

    @Test func aLiveChangeIsInTheStateFileWhenTheAcknowledgementArrives() async throws {
        try await Live.with(Self.splitAndBlueGreen) { live in
            let env = live.env
            let fingerprints = live.app.control.view.configuration.routeFingerprints
            let r = try env.admin("PUT", "/routes/web/weights", body: #"{"a":25,"b":75}"#)
            #expect(r.status == 200, "\(r)")
            // Read right after the 200: no waiting.
            var stored = try StateFile.load(env.statePath)
            #expect(stored["web"]?.change == .weights(["a": 25, "b": 75]), "state file: \(String(decoding: env.stateBytes() ?? Data(), as: UTF8.self))")
            #expect(stored["web"]?.fingerprint == fingerprints["web"])
            #expect(stored["api"] == nil)

            let s = try env.admin("POST", "/routes/api/switch")
            #expect(s.status == 200, "\(s)")
            stored = try StateFile.load(env.statePath)
            #expect(stored["api"]?.change == .active("c"))
            #expect(stored["api"]?.fingerprint == fingerprints["api"])
            #expect(stored["web"]?.change == .weights(["a": 25, "b": 75]), "the earlier change is kept")

            // The file is plain JSON in the documented shape.
            let object = (try? JSONSerialization.jsonObject(with: env.stateBytes() ?? Data())) as? [String: Any]
            #expect((object?["version"] as? NSNumber)?.intValue == 1)
            let routes = object?["routes"] as? [String: Any]
            #expect(intMap((routes?["web"] as? [String: Any])?["weights"]) == ["a": 25, "b": 75])
            #expect((routes?["api"] as? [String: Any])?["active"] as? String == "c")
            // No temporary file is left beside it.
            let leftovers = (try? FileManager.default.contentsOfDirectory(atPath: env.dir))?.filter { $0.contains(".tmp") } ?? []
            #expect(leftovers.isEmpty, "left over: \(leftovers)")
        }
    }

    @Test func liveChangesSurviveKill9AndARestartOfTheExecutable() async throws {
        let env = try await LiveEnv.make()
        do {
            try await onThread {
                let executable = try ChildProxy.executable()
                try LiveEnv.writeInPlace(env.render(Self.splitAndBlueGreen), to: env.configPath)
                let first = try ChildProxy(executable: executable, config: env.configPath, logPath: env.dir + "/run1.log")
                try first.waitReady(env: env)
                #expect(try Live.versions(port: env.listenPort, 10) == Array(repeating: "v1", count: 10))
                let r = try env.admin("PUT", "/routes/web/weights", body: #"{"a":0,"b":100}"#)
                #expect(r.status == 200, "\(r)")
                let s = try env.admin("POST", "/routes/api/switch")
                #expect(s.status == 200, "\(s)")
                #expect(try Live.versions(port: env.listenPort, 10) == Array(repeating: "v2", count: 10))

                // No chance to flush anything: SIGKILL right after the acknowledgements.
                try first.kill(SIGKILL)
                #expect(first.process.terminationReason == .uncaughtSignal)

                let second = try ChildProxy(executable: executable, config: env.configPath, logPath: env.dir + "/run2.log")
                defer { try? second.kill(SIGKILL) }
                try second.waitReady(env: env)
                let after = try Live.versions(port: env.listenPort, 50)
                #expect(after == Array(repeating: "v2", count: 50), "after restart: \(after); log:\n\(second.log)")
                #expect(try Live.versions(port: env.listenPort, 10, path: "/api/x") == Array(repeating: "v3", count: 10))
                let web = try env.route("web")
                #expect(intMap(web["weights"]) == ["a": 0, "b": 100])
                #expect(intMap((web["live"] as? [String: Any])?["weights"]) == ["a": 0, "b": 100], "live: \(web["live"] ?? "")")
                let api = try env.route("api")
                #expect(api["active"] as? String == "c")
                #expect((api["live"] as? [String: Any])?["active"] as? String == "c")
                #expect(try env.status()["stateError"] == nil, "log:\n\(second.log)")

                // SIGHUP reloads even an unchanged file (the file poll never does): generation + 1,
                // and the unchanged routes keep their live changes.
                let generation = try env.generation()
                _ = Glibc.kill(second.pid, SIGHUP)
                let reloaded = try waitUntil(timeout: 5) { try env.generation() == generation + 1 }
                #expect(reloaded, "SIGHUP did not reload within 5 s; log:\n\(second.log)")
                #expect((try env.status()["lastReload"] as? [String: Any])?["ok"] as? Bool == true)
                #expect(try Live.versions(port: env.listenPort, 20) == Array(repeating: "v2", count: 20))

                // A clean stop on SIGTERM.
                try second.kill(SIGTERM)
                #expect(second.process.terminationReason == .exit)
                #expect(second.process.terminationStatus == 0, "log:\n\(second.log)")
            }
        } catch {
            await env.tearDown()
            throw error
        }
        await env.tearDown()
    }

    /// `/status` lists, per version, the endpoints passed over after a failed connect
    /// (`EndpointCooldown`), so an operator sees a dead instance while its backend answers 200.
    /// Backend `a` gets a first endpoint that refuses connections; each request below tries it
    /// when round-robin comes to it outside a cool-down, and goes on to the live one.
    @Test func statusListsEndpointsCoolingDown() async throws {
        let dead = try deadPort()
        try await Live.with(Self.splitAndBlueGreen, threads: 1, prepare: { env in
            let live = env.backends[0].address
            let text = env.render(Self.splitAndBlueGreen)
                .replacingOccurrences(of: "endpoints: [\"\(live)\"]", with: "endpoints: [\"127.0.0.1:\(dead)\", \"\(live)\"]")
            try LiveEnv.writeInPlace(text, to: env.configPath)
        }) { live in
            func coolingDown() throws -> [String]? {
                let versions = try live.env.route("web")["versions"] as? [[String: Any]]
                return versions?.first { $0["backend"] as? String == "a" }?["endpointsCoolingDown"] as? [String]
            }
            #expect(try coolingDown() == [])
            // A cool-down lasts 1 s at first: checked right after each request, a few times.
            var seen: [String]?
            for _ in 0..<20 where seen?.isEmpty ?? true {
                #expect(try live.versions(2) == ["v1", "v1"])
                seen = try coolingDown()
            }
            #expect(seen == ["127.0.0.1:\(dead)"])
        }
    }

    /// `GET /healthz` answers 200 `serving`, and 503 `draining` once a shutdown has begun (a
    /// load balancer checking it stops sending traffic while requests in flight finish): the
    /// slow request below keeps the drain open while the admin API is asked. It answered 200
    /// through the whole drain before.
    @Test func healthzSaysDrainingDuringAShutdown() async throws {
        try await Live.with(Self.splitAndBlueGreen) { live in
            let env = live.env
            let serving = try env.admin("GET", "/healthz")
            #expect(serving.status == 200 && serving.json["status"] as? String == "serving", "\(serving)")
            let slow = try live.client()
            try slow.send("GET /slow?delay_ms=1500 HTTP/1.1\r\nHost: t\r\n\r\n")
            #expect(waitUntil(timeout: 5) { (try? live.app.server.statisticsFuture().wait())?.series.contains { $0.inflight == 1 } == true })
            let app = live.app
            let stopped = DispatchSemaphore(value: 0)
            Task {
                await app.server.shutdown(drainTimeout: .seconds(5))
                stopped.signal()
            }
            var draining: (Int, String?)?
            _ = waitUntil(timeout: 5) {
                guard let r = try? env.admin("GET", "/healthz"), r.status != 200 else { return false }
                draining = (r.status, r.json["status"] as? String)
                return true
            }
            #expect(draining?.0 == 503 && draining?.1 == "draining", "\(String(describing: draining))")
            #expect(try slow.readResponse().status == 200)
            #expect(stopped.wait(timeout: .now() + 10) == .success)
        }
    }

    /// Started with a soft open-file limit of 64 (the hard one higher), as services often are
    /// (1024 under systemd), the executable raises it to the hard limit: 150 clients held open
    /// at once, each served through its own client connection, need more descriptors than 64.
    /// Before, accepts failed with EMFILE past ~40 connections and those clients waited for good.
    @Test func theExecutableRaisesItsSoftOpenFileLimit() async throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/prlimit") else { return }
        let env = try await LiveEnv.make()
        do {
            try await onThread {
                let executable = try ChildProxy.executable()
                try LiveEnv.writeInPlace(env.render(Self.splitAndBlueGreen), to: env.configPath)
                let proxy = try ChildProxy(executable: executable, config: env.configPath, logPath: env.dir + "/limit.log",
                                           softFileLimit: 64)
                defer { try? proxy.kill(SIGKILL) }
                try proxy.waitReady(env: env)
                let limits = (try? String(contentsOfFile: "/proc/\(proxy.pid)/limits", encoding: .utf8)) ?? ""
                let fields = limits.split(separator: "\n").first { $0.hasPrefix("Max open files") }?
                    .split(separator: " ").dropFirst(3).prefix(2).map(String.init) ?? []
                #expect(fields.count == 2 && fields[0] == fields[1] && Int(fields[0]) ?? 0 > 64,
                        "limits: \(fields); log:\n\(proxy.log)")
                var clients: [RawHTTPClient] = []
                for i in 0..<150 {
                    let client = try RawHTTPClient(port: env.listenPort, timeout: 5)
                    clients.append(client)
                    let status = try? client.request("GET", "/x").status
                    guard status == 200 else {
                        Issue.record("client \(i): \(status.map(String.init) ?? "no answer"); log:\n\(proxy.log)")
                        break
                    }
                }
                #expect(clients.count == 150)
                #expect(proxy.log.contains("open-file limit raised from 64 to"), "log:\n\(proxy.log)")
                withExtendedLifetime(clients) {}
            }
        } catch {
            await env.tearDown()
            throw error
        }
        await env.tearDown()
    }

    @Test func aCorruptStateFileAtStartIsReportedAndTheFileAloneServes() async throws {
        try await Live.with(Self.splitAndBlueGreen, prepare: { env in
            try LiveEnv.writeInPlace("{\"version\":1,\"routes\":{\"web\":", to: env.statePath)
        }) { live in
            let env = live.env
            let problem = try env.status()["stateError"] as? String ?? ""
            #expect(problem.contains(env.statePath), "stateError: '\(problem)'")
            #expect(try live.versions(10) == Array(repeating: "v1", count: 10))
            // A live change still works and leaves a valid file behind.
            let r = try env.admin("PUT", "/routes/web/weights", body: #"{"a":0,"b":1}"#)
            #expect(r.status == 200, "\(r)")
            #expect(try StateFile.load(env.statePath)["web"]?.change == .weights(["a": 0, "b": 1]))
        }
    }

    // MARK: 4. The reload rule

    @Test func aReloadDropsTheLiveChangeOfAChangedRouteOnly() async throws {
        let routes = """
              - name: alpha
                match: { pathPrefix: /alpha }
                split: { a: 100, b: 0 }
              - name: beta
                match: { pathPrefix: /beta }
                split: { a: 100, b: 0 }

            """
        try await Live.with(routes) { live in
            let env = live.env
            for route in ["alpha", "beta"] {
                let r = try env.admin("PUT", "/routes/\(route)/weights", body: #"{"a":0,"b":100}"#)
                #expect(r.status == 200, "\(r)")
                #expect(try live.versions(10, path: "/\(route)") == Array(repeating: "v2", count: 10))
            }
            let g0 = try env.generation()

            // alpha's own weights change in the file; beta's entry is untouched, but a backend it
            // names changes (not its own definition: beta keeps its live change).
            let edited = """
                  - name: alpha
                    match: { pathPrefix: /alpha }
                    split: { a: 1, b: 0 }
                  - name: beta
                    match: { pathPrefix: /beta }
                    split: { a: 100, b: 0 }

                """
            var text = env.render(edited)
            text = text.replacingOccurrences(of: "b: { version: v2, endpoints: [\"\(env.backends[1].address)\"] }",
                                              with: "b: { version: v2, endpoints: [\"\(env.backends[1].address)\"], timeout: 5s }")
            #expect(text.contains("timeout: 5s"))
            try env.writeRawByRename(text)
            let r = try env.admin("POST", "/reload")
            #expect(r.status == 200, "\(r)")
            #expect((r.json["generation"] as? NSNumber)?.intValue == g0 + 1, "\(r)")
            #expect(try env.generation() == g0 + 1)

            // alpha follows the file (its live change is gone), beta keeps its live change.
            #expect(try live.versions(20, path: "/alpha") == Array(repeating: "v1", count: 20))
            #expect(try live.versions(20, path: "/beta") == Array(repeating: "v2", count: 20))
            let alpha = try env.route("alpha")
            #expect(intMap(alpha["weights"]) == ["a": 1, "b": 0])
            #expect(alpha["live"] is NSNull, "alpha live: \(alpha["live"] ?? "")")
            let beta = try env.route("beta")
            #expect(intMap(beta["weights"]) == ["a": 0, "b": 100])
            #expect(intMap((beta["live"] as? [String: Any])?["weights"]) == ["a": 0, "b": 100])
            // The state file agrees.
            let stored = try StateFile.load(env.statePath)
            #expect(stored["alpha"] == nil)
            #expect(stored["beta"]?.change == .weights(["a": 0, "b": 100]))

            // A reload of the unchanged file still raises the generation by one, and changes nothing else.
            let again = try env.admin("POST", "/reload")
            #expect(again.status == 200, "\(again)")
            #expect((again.json["generation"] as? NSNumber)?.intValue == g0 + 2, "\(again)")
            #expect(try env.generation() == g0 + 2)
            #expect(try live.versions(10, path: "/beta") == Array(repeating: "v2", count: 10))
            #expect(intMap((try env.route("beta")["live"] as? [String: Any])?["weights"]) == ["a": 0, "b": 100])
            #expect(try env.metrics().contains("sluice_config_reloads_total{result=\"ok\"} 2"))
        }
    }

    @Test func aReloadThatOnlyReformatsARouteKeepsItsLiveChange() async throws {
        try await Live.with(Self.splitAndBlueGreen) { live in
            let env = live.env
            #expect(try env.admin("PUT", "/routes/web/weights", body: #"{"a":0,"b":100}"#).status == 200)
            #expect(try env.admin("POST", "/routes/api/switch").status == 200)
            // Same content, other layout: block style, comments, other key order, quoting.
            try env.writeByRename("""
                  # the blue-green route
                  - name: api
                    blueGreen:
                      previewHeader: x-preview
                      preview: "c"
                      active: a
                    match:
                      pathPrefix: "/api"
                  - split:   # same order of entries
                      a: 100
                      b: 0
                    name: web

                """)
            let r = try env.admin("POST", "/reload")
            #expect(r.status == 200, "\(r)")
            #expect(try live.versions(10) == Array(repeating: "v2", count: 10))
            #expect(try live.versions(10, path: "/api/x") == Array(repeating: "v3", count: 10))
            #expect(!(try env.route("web")["live"] is NSNull))
            #expect(!(try env.route("api")["live"] is NSNull))
        }
    }

    // MARK: 5. Reload triggers

    @Test func editsInPlaceRenameReplaceAndPostReloadEachApplyANewTable() async throws {
        let toA = """
              - name: web
                split: { a: 1, b: 0 }

            """
        let toB = """
              - name: web
                split: { a: 0, b: 1 }

            """
        try await Live.with(toA, watchFile: true) { live in
            let env = live.env
            #expect(try live.versions(5) == Array(repeating: "v1", count: 5))

            // 1. Edit in place (same inode): the 1 s poll picks it up (bounded: 5 s).
            let inode = env.inode(env.configPath)
            var g = try env.generation()
            try env.writeInPlace(toB)
            #expect(env.inode(env.configPath) == inode, "the edit was not in place")
            var applied = try waitUntil(timeout: 5) { try env.generation() > g }
            #expect(applied, "an in-place edit was not reloaded within 5 s")
            #expect(try live.versions(20) == Array(repeating: "v2", count: 20))
            #expect((try env.status()["lastReload"] as? [String: Any])?["ok"] as? Bool == true)

            // 2. Rename-replace (a new inode over the old name).
            g = try env.generation()
            try env.writeByRename(toA)
            #expect(env.inode(env.configPath) != inode)
            applied = try waitUntil(timeout: 5) { try env.generation() > g }
            #expect(applied, "a rename-replace was not reloaded within 5 s")
            #expect(try live.versions(20) == Array(repeating: "v1", count: 20))

            // 3. POST /reload right after writing: applied when the 200 arrives (the poll may have
            //    beaten it to the same content, which is one more generation).
            g = try env.generation()
            try env.writeByRename(toB)
            let r = try env.admin("POST", "/reload")
            #expect(r.status == 200, "\(r)")
            let n = (r.json["generation"] as? NSNumber)?.intValue ?? 0
            #expect(n == g + 1 || n == g + 2, "generation \(n) after \(g)")
            #expect(try live.versions(20) == Array(repeating: "v2", count: 20))
        }
    }

    /// A reload that moves a backend to another endpoint sends the next request there, also on
    /// a client connection kept alive across the reload: its loop's pool still holds an idle
    /// connection to the old endpoint and remembers it as that backend's last lease (by the
    /// backend's identity, which a new configuration replaces).
    @Test func aReloadThatMovesABackendSendsTheNextRequestToItsNewEndpoint() async throws {
        let route = """
              - name: web
                backend: a

            """
        try await Live.with(route, threads: 1) { live in
            let env = live.env
            let c = try live.client()
            defer { c.close() }
            for i in 0..<3 {
                #expect(versionOf(try c.request("GET", "/before?i=\(i)")) == "v1")
            }
            let before = env.render(route)
            let moved = before.replacingOccurrences(
                of: "a: { version: v1, endpoints: [\"\(env.backends[0].address)\"] }",
                with: "a: { version: v1, endpoints: [\"\(env.backends[1].address)\"] }")
            #expect(moved != before, "the fixture's backend line was not found")
            try env.writeRawByRename(moved)
            let r = try env.admin("POST", "/reload")
            #expect(r.status == 200, "\(r)")
            // Backend `a` is now the test backend that answers as v2.
            for i in 0..<3 {
                #expect(versionOf(try c.request("GET", "/after?i=\(i)")) == "v2")
            }
        }
    }

    // MARK: 6. Invalid file

    @Test func anInvalidFileIsRefusedWithItsPositionAndTheOldTableKeepsServing() async throws {
        try await Live.with(Self.splitAndBlueGreen) { live in
            let env = live.env
            let g0 = try env.generation()
            // Line 13 (header: 8 lines; the api route: 3), the split names an unknown backend.
            try env.writeByRename("""
                  - name: api
                    match: { pathPrefix: /api }
                    blueGreen: { active: a, preview: c, previewHeader: x-preview }
                  - name: web
                    split: { a: 0, nosuch: 100 }

                """)
            let r = try env.admin("POST", "/reload")
            #expect(r.status == 422, "\(r)")
            let error = r.error ?? ""
            let pattern = "^" + NSRegularExpression.escapedPattern(for: env.configPath) + ":13:[0-9]+: .*nosuch"
            #expect(error.range(of: pattern, options: .regularExpression) != nil, "error '\(error)' is not FILE:13:COL: ... nosuch")

            // The old table keeps serving.
            #expect(try live.versions(20) == Array(repeating: "v1", count: 20))
            #expect(try live.versions(5, path: "/api/x") == Array(repeating: "v1", count: 5))
            let status = try env.status()
            #expect((status["generation"] as? NSNumber)?.intValue == g0)
            let last = status["lastReload"] as? [String: Any]
            #expect(last?["ok"] as? Bool == false)
            #expect(last?["error"] as? String == error)
            #expect(ISO8601DateFormatter().date(from: last?["at"] as? String ?? "") != nil)
            var metrics = try env.metrics()
            #expect(metrics.contains("sluice_config_reloads_total{result=\"error\"} 1"), "\(metrics)")
            #expect(metrics.contains("sluice_config_reloads_total{result=\"ok\"} 0"))
            #expect(metrics.contains("sluice_config_generation \(g0)\n"))

            // A YAML syntax error: also refused with its position, counted again.
            try env.writeRawByRename(env.render(Self.splitAndBlueGreen) + "  - name: [unclosed\n")
            let r2 = try env.admin("POST", "/reload")
            #expect(r2.status == 422, "\(r2)")
            let error2 = r2.error ?? ""
            #expect(error2.range(of: "^" + NSRegularExpression.escapedPattern(for: env.configPath) + ":[0-9]+:[0-9]+: ",
                                 options: .regularExpression) != nil, "error '\(error2)'")
            metrics = try env.metrics()
            #expect(metrics.contains("sluice_config_reloads_total{result=\"error\"} 2"), "\(metrics)")
            #expect(try live.versions(10) == Array(repeating: "v1", count: 10))
            // A live change still works while the file on disk is broken.
            #expect(try env.admin("PUT", "/routes/web/weights", body: #"{"a":0,"b":1}"#).status == 200)
            #expect(try live.versions(10) == Array(repeating: "v2", count: 10))

            // Fixed: the next reload succeeds and the status says so.
            try env.writeByRename(Self.splitAndBlueGreen)
            let r3 = try env.admin("POST", "/reload")
            #expect(r3.status == 200, "\(r3)")
            #expect((r3.json["generation"] as? NSNumber)?.intValue == g0 + 1)
            let fixed = try env.status()["lastReload"] as? [String: Any]
            #expect(fixed?["ok"] as? Bool == true)
            #expect(fixed?["error"] is NSNull)
            #expect(try env.metrics().contains("sluice_config_reloads_total{result=\"ok\"} 1"))
        }
    }

    // MARK: 7. Zero loss under reloads

    @Test func keepAliveClientsSeeNoFailureWhileTheConfigIsReloaded50Times() async throws {
        let files = [
            """
              - name: web
                split: { a: 3, b: 1 }

            """,
            """
              - name: web
                split: { a: 1, b: 3 }

            """,
        ]
        try await Live.with(files[0]) { live in
            let env = live.env
            let g0 = try env.generation()
            let log = LoadLog()
            let group = startClients(8, port: live.port, path: "/load", log: log)
            defer {
                log.stop()
                _ = group.wait(timeout: .now() + 30)
            }
            let started = waitUntil(timeout: 10) { log.completed >= 8 }
            #expect(started, "the clients did not start")
            var reloads = 0
            var refused: [String] = []
            let deadline = nowNanos() + 90_000_000_000
            while reloads < 50 && nowNanos() < deadline {
                // Let some requests run between reloads so that they really interleave.
                let mark = log.completed
                _ = waitUntil(timeout: 5) { log.completed >= mark + 8 }
                try env.writeByRename(files[(reloads + 1) % 2])
                let r = try env.admin("POST", "/reload")
                if r.status == 200 { reloads += 1 } else { refused.append("\(r)") }
            }
            let enough = waitUntil(timeout: 30) { log.completed >= 400 }
            #expect(enough, "only \(log.completed) requests")
            log.stop()
            #expect(group.wait(timeout: .now() + 30) == .success, "the clients did not finish")

            #expect(refused.isEmpty, "refused reloads: \(refused)")
            #expect(reloads == 50)
            #expect(try env.generation() == g0 + 50)
            let failures = log.failures
            #expect(failures.isEmpty, "\(failures.count) failed requests of \(log.completed): \(failures.prefix(5))")
            #expect(log.closes == 0, "the proxy closed \(log.closes) keep-alive connections")
            #expect(log.completed >= 400)
            let versions = Set(log.records.map(\.version))
            #expect(versions == ["v1", "v2"], "served by \(versions)")
        }
    }

    // MARK: 8. Switch under load

    @Test
    func noRequestStartedAfterTheSwitchIsAcknowledgedReachesTheOldActive() async throws {
        try await Live.with(Self.splitAndBlueGreen) { live in
            let env = live.env
            let log = LoadLog()
            let group = startClients(4, port: live.port, path: "/api/load", log: log)
            defer {
                log.stop()
                _ = group.wait(timeout: .now() + 30)
            }
            let started = waitUntil(timeout: 10) { log.completed >= 4 }
            #expect(started, "the clients did not start")
            // (call issued, acknowledged, new active version)
            var switches: [(call: UInt64, ack: UInt64, version: String)] = []
            let versionOfBackend = ["a": "v1", "c": "v3"]
            for _ in 0..<10 {
                let mark = log.completed
                _ = waitUntil(timeout: 5) { log.completed >= mark + 40 }
                let call = nowNanos()
                let r = try env.admin("POST", "/routes/api/switch")
                let ack = nowNanos()
                #expect(r.status == 200, "\(r)")
                let active = r.json["active"] as? String ?? "?"
                switches.append((call, ack, versionOfBackend[active] ?? "?"))
            }
            let mark = log.completed
            _ = waitUntil(timeout: 5) { log.completed >= mark + 40 }
            log.stop()
            #expect(group.wait(timeout: .now() + 30) == .success)
            #expect(log.failures.isEmpty, "\(log.failures.prefix(5))")

            // A request that started after switch k was acknowledged and was answered before
            // switch k+1 was called must have gone to switch k's active. (One that was still in
            // flight when switch k+1 was called may be routed by either: the proxy decides when
            // the head arrives, which under load can be after the next switch is published.)
            var checked = 0
            var wrong: [String] = []
            for record in log.records {
                guard let k = switches.lastIndex(where: { $0.ack < record.start }) else { continue }
                if k + 1 < switches.count && record.end >= switches[k + 1].call { continue }
                checked += 1
                if record.version != switches[k].version {
                    wrong.append("started \((record.start - switches[k].ack) / 1000) µs after switch \(k) → \(record.version), expected \(switches[k].version)")
                }
            }
            #expect(wrong.isEmpty, "\(wrong.count) of \(checked) requests went to the old active: \(wrong.prefix(5))")
            #expect(checked >= 200, "only \(checked) requests could be checked")
            #expect(Set(log.records.map(\.version)).isSubset(of: ["v1", "v3"]))
        }
    }

    // MARK: 9, 10. Socket mode, healthz, metrics

    @Test func theAdminSocketIsOnlyForItsOwner() async throws {
        try await Live.with(Self.splitAndBlueGreen) { live in
            var st = stat()
            #expect(stat(live.env.socketPath, &st) == 0, "no socket at \(live.env.socketPath)")
            #expect(st.st_mode & 0o170000 == 0o140000, "not a socket")
            #expect(st.st_mode & 0o777 == 0o600, "mode \(String(st.st_mode & 0o777, radix: 8))")
            #expect(st.st_uid == getuid())
        }
    }

    @Test func healthzAndMetricsShowTheLiveState() async throws {
        try await Live.with(Self.splitAndBlueGreen) { live in
            let env = live.env
            let h = try env.admin("GET", "/healthz")
            #expect(h.status == 200, "\(h)")
            var metrics = try env.metrics()
            #expect(metrics.contains("sluice_config_generation 1\n"), "\(metrics)")
            #expect(metrics.contains("sluice_route_weight{route=\"web\",backend=\"a\"} 100\n"))
            #expect(metrics.contains("sluice_route_weight{route=\"web\",backend=\"b\"} 0\n"))
            #expect(metrics.contains("sluice_active_backend{route=\"api\",backend=\"a\"} 1\n"))

            #expect(try env.admin("PUT", "/routes/web/weights", body: #"{"a":0,"b":100}"#).status == 200)
            #expect(try env.admin("POST", "/routes/api/switch").status == 200)
            metrics = try env.metrics()
            #expect(metrics.contains("sluice_route_weight{route=\"web\",backend=\"b\"} 100\n"), "\(metrics)")
            #expect(metrics.contains("sluice_route_weight{route=\"web\",backend=\"a\"} 0\n"))
            #expect(metrics.contains("sluice_active_backend{route=\"api\",backend=\"c\"} 1\n"))
            #expect(metrics.contains("sluice_active_backend{route=\"api\",backend=\"a\"} 0\n"))
            #expect(metrics.contains("sluice_config_generation 1\n"))

            #expect(try env.admin("POST", "/reload").status == 200)
            #expect(try env.metrics().contains("sluice_config_generation 2\n"))
            // An unknown admin path is a 404 with a JSON error.
            let unknown = try env.admin("GET", "/nosuch")
            #expect(unknown.status == 404)
            #expect(unknown.error?.isEmpty == false)
        }
    }
}
}

/// Which `admin.http` addresses start without a warning (pure logic: no socket is opened).
@Suite struct AdminAddressTests {
    @Test func onlyLoopbackAddressesCountAsLoopback() throws {
        for host in ["127.0.0.1", "127.5.6.7", "::1"] {
            #expect(AdminServer.isLoopback(try SocketAddress(ipAddress: host, port: 9901)), "\(host)")
        }
        for host in ["0.0.0.0", "10.1.2.3", "128.0.0.1", "::", "fe80::1"] {
            #expect(!AdminServer.isLoopback(try SocketAddress(ipAddress: host, port: 9901)), "\(host)")
        }
    }
}
