import Foundation
import SluiceRouting

/// Stage 3 of loading: `ConfigFile` → `Configuration`. Judges what the values mean (addresses,
/// durations, paths, backend references, weights) and builds the immutable route table. Like the
/// earlier stages it reports every problem it finds; a `Configuration` comes out only when there
/// are none.
struct ConfigCompiler {
    var diagnostics: Diagnostics
    /// Absolute directory of the config file: relative paths in it are taken from here.
    let directory: String
    /// Backend name → its index in `backends:` (file order).
    private(set) var backendIDs: [String: BackendID] = [:]

    init(diagnostics: Diagnostics, directory: String) {
        self.diagnostics = diagnostics
        self.directory = directory
    }

    mutating func compile(_ file: ConfigFile, path: String) -> Configuration? {
        // Backends first: every reference in a route resolves against them. A backend with
        // problems still counts as defined, so that its name does not also fail every route.
        for (index, backend) in file.backends.enumerated() {
            backendIDs[backend.name.value] = BackendID(index)
        }
        let backends = file.backends.map { compileBackend($0) }
        let listeners = compileListeners(file.listen)
        let admin = file.admin.flatMap { compileAdmin($0, listeners: listeners) }
        let statePath = resolvePath(file.state?.value ?? "sluice-state.json")
        let routes = compileRoutes(file.routes)
        let server = compileServer(file.server)

        let compiledBackends = backends.compactMap { $0 }
        let compiledRoutes = routes.compactMap { $0 }
        guard diagnostics.isEmpty else { return nil }
        guard compiledBackends.count == backends.count, compiledRoutes.count == routes.count, !listeners.isEmpty else {
            // Every nil above comes with a reported problem; this guards that promise.
            diagnostics.error("internal error: an entry failed to compile without a message", at: file.at)
            return nil
        }
        let table = RouteTable(routes: compiledRoutes.map(\.route), backendNames: compiledBackends.map(\.name))
        let fingerprints = Dictionary(compiledRoutes.map { ($0.route.name, $0.fingerprint) },
                                      uniquingKeysWith: { first, _ in first })
        return Configuration(path: path, listeners: listeners, admin: admin, statePath: statePath,
                             backends: compiledBackends, table: table, routeFingerprints: fingerprints,
                             server: server)
    }

    // MARK: Listeners and admin

    private mutating func compileListeners(_ listen: Located<[ListenEntry]>?) -> [ListenerSpec] {
        var listeners: [ListenerSpec] = []
        var seen: [SocketAddressSpec: Scope] = [:]
        for entry in listen?.value ?? [] {
            guard let written = entry.address, let address = parseAddress(written) else { continue }
            if let first = seen[address] {
                diagnostics.error("address '\(written.value)' is already used by \(first.name)", at: written.at)
            }
            seen[address] = seen[address] ?? entry.scope
            var tls: TLSSpec?
            if let tlsEntry = entry.tls, let cert = tlsEntry.cert, let key = tlsEntry.key {
                let certPath = checkedFile(cert, role: "tls cert")
                let keyPath = checkedFile(key, role: "tls key")
                if let certPath, let keyPath { tls = TLSSpec(cert: certPath, key: keyPath) }
            }
            if let h2c = entry.h2c, h2c.value, entry.tls != nil {
                diagnostics.error("'h2c' in \(entry.scope.name) applies only to a plain listener "
                                  + "(a TLS listener offers h2 through ALPN)", at: h2c.at)
            }
            listeners.append(ListenerSpec(address: address, tls: tls, h2c: entry.h2c?.value ?? false))
        }
        return listeners
    }

    private mutating func compileAdmin(_ entry: AdminEntry, listeners: [ListenerSpec]) -> AdminSpec? {
        var admin = AdminSpec()
        admin.socket = entry.socket.map { resolvePath($0.value) }
        if let http = entry.http, let address = parseAddress(http) {
            if listeners.contains(where: { $0.address == address }) {
                diagnostics.error("admin address '\(http.value)' is also a listen address", at: http.at)
            }
            admin.http = address
        }
        return admin
    }

    /// A file the proxy will read at startup: it must exist and be readable now, so that
    /// `sluice check` catches a wrong path before a deploy does.
    private mutating func checkedFile(_ written: Located<String>, role: String) -> String? {
        let path = resolvePath(written.value)
        let whereabouts = path == written.value ? "" : " (looked for \(path))"
        var isDirectory: ObjCBool = false
        if !FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            diagnostics.error("\(role) file '\(written.value)' does not exist\(whereabouts)", at: written.at)
        } else if isDirectory.boolValue {
            diagnostics.error("\(role) file '\(written.value)' is a directory\(whereabouts)", at: written.at)
        } else if !FileManager.default.isReadableFile(atPath: path) {
            diagnostics.error("\(role) file '\(written.value)' is not readable\(whereabouts)", at: written.at)
        } else {
            return path
        }
        return nil
    }

    // MARK: Backends

    private mutating func compileBackend(_ entry: BackendEntry) -> BackendSpec? {
        var ok = true
        if !NameSyntax.isName(entry.name.value) {
            diagnostics.error("invalid backend name '\(entry.name.value)' (\(NameSyntax.rule))", at: entry.name.at)
            ok = false
        }
        var endpoints: [SocketAddressSpec] = []
        if let list = entry.endpoints {
            if list.value.isEmpty {
                diagnostics.error("'endpoints' in \(entry.scope.name) must list at least one address", at: list.at)
                ok = false
            }
            for written in list.value {
                if let address = parseAddress(written) { endpoints.append(address) } else { ok = false }
            }
        }
        let connectTimeout = positiveDuration(entry.connectTimeout, key: "connectTimeout", in: entry.scope,
                                              default: .seconds(1))
        let timeout = positiveDuration(entry.timeout, key: "timeout", in: entry.scope, default: .seconds(30))
        let readTimeout = positiveDuration(entry.readTimeout, key: "readTimeout", in: entry.scope, default: .seconds(60))
        let idleTimeout = positiveDuration(entry.idleTimeout, key: "idleTimeout", in: entry.scope,
                                           default: BackendSpec.defaultIdleTimeout)
        var upstreamProtocol = UpstreamProtocol.http1
        if let written = entry.upstreamProtocol {
            if let parsed = UpstreamProtocol(rawValue: written.value) {
                upstreamProtocol = parsed
            } else {
                diagnostics.error("'protocol' in \(entry.scope.name) must be http1 or h2 (got '\(written.value)')",
                                  at: written.at)
                ok = false
            }
        }
        var maxConnections = BackendSpec.defaultMaxConnections
        if let written = entry.maxConnections {
            if written.value < 1 {
                diagnostics.error("'maxConnections' in \(entry.scope.name) must be at least 1 (got \(written.value))",
                                  at: written.at)
                ok = false
            } else {
                maxConnections = written.value
            }
        }
        guard ok, let version = entry.version, entry.endpoints != nil,
              let connectTimeout, let timeout, let readTimeout, let idleTimeout else { return nil }
        return BackendSpec(name: entry.name.value, version: version.value, endpoints: endpoints,
                           connectTimeout: connectTimeout, timeout: timeout, readTimeout: readTimeout,
                           upstreamProtocol: upstreamProtocol, maxConnections: maxConnections, idleTimeout: idleTimeout)
    }

    // MARK: Server

    private mutating func compileServer(_ entry: ServerEntry?) -> ServerSettings {
        var server = ServerSettings()
        guard let entry else { return server }
        let scope = Scope(name: "server")
        if let idle = positiveDuration(entry.idleTimeout, key: "idleTimeout", in: scope, default: server.idleTimeout) {
            server.idleTimeout = idle
        }
        if let written = entry.drainTimeout, let drain = duration(written) {
            server.drainTimeout = drain
        }
        if let maxHeaderBytes = entry.maxHeaderBytes {
            if maxHeaderBytes.value < 1024 {
                diagnostics.error("'maxHeaderBytes' in server must be at least 1024 (got \(maxHeaderBytes.value))",
                                  at: maxHeaderBytes.at)
            } else if maxHeaderBytes.value > 1_048_576 {
                // The parser indexes a head with 32-bit offsets; a megabyte of fields is already
                // far beyond what any client sends (nginx's default is 8 KiB per line).
                diagnostics.error("'maxHeaderBytes' in server must be at most 1048576 (got \(maxHeaderBytes.value))",
                                  at: maxHeaderBytes.at)
            }
            server.maxHeaderBytes = maxHeaderBytes.value
        }
        if let accessLog = entry.accessLog { server.accessLog = accessLog.value }
        return server
    }

    // MARK: Values

    /// A backend by name; reports `unknown backend 'x'` at the name when there is none.
    mutating func backendID(_ name: Located<String>) -> BackendID? {
        guard let id = backendIDs[name.value] else {
            diagnostics.error("unknown backend '\(name.value)'", at: name.at)
            return nil
        }
        return id
    }

    mutating func parseAddress(_ written: Located<String>) -> SocketAddressSpec? {
        switch AddressSyntax.parse(written.value) {
        case .success(let address): return address
        case .failure(let problem):
            diagnostics.error(problem.message, at: written.at)
            return nil
        }
    }

    mutating func duration(_ written: Located<String>) -> Duration? {
        guard let duration = DurationSyntax.parse(written.value) else {
            diagnostics.error(DurationSyntax.problem(written.value), at: written.at)
            return nil
        }
        return duration
    }

    /// The duration written for `key`, `fallback` when there is none, nil (reported) when it is
    /// invalid or not longer than zero.
    mutating func positiveDuration(_ written: Located<String>?, key: String, in scope: Scope,
                                   default fallback: Duration) -> Duration? {
        guard let written else { return fallback }
        guard let duration = duration(written) else { return nil }
        guard duration > .zero else {
            diagnostics.error("\(scope.slot(key)) must be longer than 0", at: written.at)
            return nil
        }
        return duration
    }

    /// An absolute, normalised path; relative ones are taken from the config file's directory.
    func resolvePath(_ written: String) -> String {
        PathResolution.absolute(written, from: directory)
    }
}

enum PathResolution {
    /// `path` made absolute against `base` (itself absolute), with `.` and `..` removed.
    static func absolute(_ path: String, from base: String) -> String {
        let joined = path.hasPrefix("/") ? path : base + "/" + path
        var components: [Substring] = []
        for component in joined.split(separator: "/") {
            switch component {
            case ".": continue
            case "..": _ = components.popLast()
            default: components.append(component)
            }
        }
        return "/" + components.joined(separator: "/")
    }
}
