import SluiceConfig

/// A whole running Sluice: the proxy, its control plane and its admin server, started in the
/// order that never serves a request without its persisted live changes.
public struct RunningProxy: Sendable {
    public let server: SluiceServer
    public let control: ControlPlane
    public let admin: AdminServer

    /// 1. build the proxy, 2. apply the state file, 3. open the admin API, 4. bind the listeners
    /// (or take the sockets a service manager passed: `inherited`).
    public static func start(_ configuration: Configuration, threads: Int, watchFile: Bool = true,
                             inherited: InheritedListeners = .none,
                             log: @escaping @Sendable (String) -> Void = { _ in }) async throws -> RunningProxy {
        let server = try SluiceServer(configuration: configuration, threads: threads)
        let control = ControlPlane(server: server, configuration: configuration, log: log)
        let admin = AdminServer(control: control)
        do {
            for warning in try await admin.start(configuration.admin, watchFile: watchFile) { log("sluice: \(warning)") }
            for note in try await server.start(inherited: inherited) { log("sluice: \(note)") }
        } catch {
            await admin.stop()
            await server.shutdown(drainTimeout: .zero)
            throw error
        }
        return RunningProxy(server: server, control: control, admin: admin)
    }

    /// Graceful stop: drain the proxy, then close the admin API.
    public func stop(drainTimeout: Duration? = nil) async {
        await server.shutdown(drainTimeout: drainTimeout)
        await admin.stop()
    }
}
