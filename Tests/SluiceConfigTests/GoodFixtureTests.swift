import Foundation
import SluiceRouting
import Testing
@testable import SluiceConfig

/// The compiled result of valid files: order, ids, defaults, resolved paths, durations.
@Suite struct GoodFixtureTests {
    @Test(arguments: Fixtures.names(in: "good"))
    func loads(name: String) throws {
        let configuration = try Fixtures.loadGood(name)
        #expect(configuration.backends.map(\.name) == configuration.table.backendNames)
        #expect(Set(configuration.routeFingerprints.keys) == Set(configuration.table.routes.map(\.name)))
    }

    @Test func listenersAdminAndPathsResolveAgainstTheFilesDirectory() throws {
        let config = try Fixtures.loadGood("full")
        let dir = Fixtures.path("good")
        #expect(config.path == dir + "/full.yaml")
        #expect(config.listeners == [
            ListenerSpec(address: SocketAddressSpec(host: "127.0.0.1", port: 8080)),
            ListenerSpec(address: SocketAddressSpec(host: "::1", port: 8443),
                         tls: TLSSpec(cert: dir + "/tls/cert.pem", key: dir + "/tls/key.pem")),
            ListenerSpec(address: SocketAddressSpec(host: "localhost", port: 8081), h2c: true),
        ])
        #expect(config.listeners[1].address.description == "[::1]:8443")
        #expect(config.admin == AdminSpec(socket: dir + "/run/admin.sock",
                                          http: SocketAddressSpec(host: "::1", port: 9901)))
        #expect(config.statePath == dir + "/state/live.json")
        #expect(config.server == ServerSettings(idleTimeout: .seconds(90), drainTimeout: .zero,
                                                maxHeaderBytes: 8192, accessLog: true))
    }

    @Test func backendsKeepFileOrderAndParseDurations() throws {
        let config = try Fixtures.loadGood("full")
        #expect(config.table.backendNames == ["shop-v1", "shop-v2", "shop-v3", "api-blue", "api-green", "unused"])
        #expect(config.table.backendID(named: "api-blue") == BackendID(3))
        #expect(config.backends[0] == BackendSpec(name: "shop-v1", version: "v1", endpoints: [
            SocketAddressSpec(host: "127.0.0.1", port: 9001), SocketAddressSpec(host: "127.0.0.1", port: 9002),
        ]))
        #expect(config.backends[1] == BackendSpec(
            name: "shop-v2", version: "2.0", endpoints: [SocketAddressSpec(host: "::1", port: 9011)],
            connectTimeout: .milliseconds(250), timeout: .milliseconds(1500), upstreamProtocol: .h2))
        #expect(config.backends[2].endpoints == [SocketAddressSpec(host: "127.0.0.1", port: 9021)])
        #expect(config.backends[2].timeout == .seconds(120))
        #expect(config.backends[2].readTimeout == .seconds(300))
        #expect(config.backends[1].readTimeout == .seconds(60))
        #expect(config.backends[2].idleTimeout == .seconds(4))
        #expect(config.backends[1].idleTimeout == .seconds(60))
        #expect(config.backends[2].connectTimeout == .seconds(1))
        #expect(config.backends[3].connectTimeout == .seconds(3600))
        #expect(config.backends[3].endpoints == [SocketAddressSpec(host: "localhost", port: 9101)])
        // A backend no route uses is not an error.
        #expect(config.backends[5].name == "unused")
    }

    @Test func matchersAreCompiled() throws {
        let config = try Fixtures.loadGood("full")
        #expect(config.table.routes.map(\.name) == ["checkout", "api", "sticky-header", "default"])
        let checkout = try #require(config.route("checkout"))
        #expect(checkout.match.host == .exact("shop.example.com"))
        #expect(checkout.match.pathPrefix == "/checkout")
        #expect(checkout.match.path == nil)
        #expect(checkout.match.methods == ["GET", "POST"])

        let api = try #require(config.route("api"))
        #expect(api.match.host == .wildcard(suffix: ".api.example.com"))
        #expect(api.match.path == "/v1/orders")
        #expect(api.match.methods == nil)

        let fallback = try #require(config.route("default"))
        #expect(fallback.match.host == nil && fallback.match.path == nil && fallback.match.pathPrefix == nil)
        #expect(fallback.target.backend == BackendID(0))
    }

    @Test func rulesKeepTheirConditionsAndTargets() throws {
        let checkout = try #require(try Fixtures.loadGood("full").route("checkout"))
        #expect(checkout.rules.count == 2)
        let first = checkout.rules[0]
        #expect(first.conditions.map(\.subject) == [.header("x-experiment"), .cookie("beta"), .query("variant")])
        #expect(first.conditions[0].value.exact == "new-checkout")
        #expect(first.conditions[1].value.regexPattern == "^(1|true)$")
        #expect(first.conditions[1].value.matches("true") && !first.conditions[1].value.matches("yes"))
        #expect(first.conditions[2].value.exact == "b")
        #expect(first.target.backend == BackendID(1))

        let second = checkout.rules[1]
        #expect(second.conditions.map(\.subject) == [.header("x-internal")])
        #expect(second.conditions[0].value.isPresent)
        #expect(second.target.split == Split(backends: [BackendID(1), BackendID(0)], weights: [1, 3]))
    }

    @Test func splitsKeepTheFilesOrderStickyAndMirrorAreCompiled() throws {
        let config = try Fixtures.loadGood("full")
        let checkout = try #require(config.route("checkout"))
        #expect(checkout.target.split == Split(backends: [BackendID(1), BackendID(0), BackendID(2)],
                                               weights: [5, 95, 0]))
        #expect(checkout.sticky == Sticky(key: .cookie("uid"), assign: true, maxAge: 3600))
        #expect(checkout.mirror == MirrorPolicy(backend: BackendID(2), percent: 12.5, methods: ["GET", "POST"],
                                                stripHeaders: ["authorization", "cookie"], maxBodyBytes: 1024))

        let api = try #require(config.route("api"))
        #expect(api.target.blueGreen == BlueGreen(active: BackendID(4), preview: BackendID(3), previewHeader: "x-canary"))

        let stickyHeader = try #require(config.route("sticky-header"))
        #expect(stickyHeader.sticky == Sticky(key: .header("x-user-id"), assign: false, maxAge: 2_592_000))
        #expect(stickyHeader.mirror == MirrorPolicy(backend: BackendID(5)))
    }

    @Test func aMinimalFileTakesEveryDefault() throws {
        let config = try Fixtures.loadGood("minimal")
        #expect(config.listeners == [ListenerSpec(address: SocketAddressSpec(host: "127.0.0.1", port: 8080))])
        #expect(config.admin == nil)
        #expect(config.statePath == Fixtures.path("good/sluice-state.json"))
        #expect(config.backends == [BackendSpec(name: "app", version: "v1",
                                                endpoints: [SocketAddressSpec(host: "127.0.0.1", port: 9001)])])
        #expect(config.backends[0].connectTimeout == .seconds(1) && config.backends[0].timeout == .seconds(30))
        #expect(config.backends[0].readTimeout == .seconds(60))
        #expect(config.backends[0].idleTimeout == .seconds(60))
        #expect(config.backends[0].upstreamProtocol == .http1)
        #expect(config.server == ServerSettings())
        let route = try #require(config.route("all"))
        #expect(route.rules.isEmpty && route.sticky == nil && route.mirror == nil)
        #expect(route.match.methods == nil && route.match.host == nil)
    }

    @Test func optionalSectionsTakeTheirDefaults() throws {
        let config = try Fixtures.loadGood("defaults")
        #expect(config.admin == AdminSpec(socket: "/tmp/sluice-test-admin.sock"))
        #expect(config.server == ServerSettings())
        let route = try #require(config.route("bg"))
        #expect(route.target.blueGreen == BlueGreen(active: BackendID(0), preview: BackendID(1), previewHeader: "x-preview"))
        #expect(route.sticky == Sticky(key: .cookie("session"), assign: false, maxAge: 2_592_000))
        #expect(route.mirror == MirrorPolicy(backend: BackendID(1), percent: 100, methods: ["GET", "HEAD", "OPTIONS"],
                                             stripHeaders: [], maxBodyBytes: 1_048_576))
    }

    @Test func parsedTextResolvesPathsAgainstTheGivenPath() throws {
        let text = """
            listen: "127.0.0.1:8080"
            admin: { socket: ../run/sluice.sock }
            backends: { app: { version: v1, endpoints: ["127.0.0.1:9001"] } }
            routes: [{ name: all, backend: app }]
            """
        let config = try ConfigLoader.parse(text: text, path: "/etc/sluice/./conf/sluice.yaml")
        #expect(config.path == "/etc/sluice/conf/sluice.yaml")
        #expect(config.admin?.socket == "/etc/sluice/run/sluice.sock")
        #expect(config.statePath == "/etc/sluice/conf/sluice-state.json")

        let relative = try ConfigLoader.parse(text: text, path: "conf/sluice.yaml")
        let cwd = FileManager.default.currentDirectoryPath
        #expect(relative.path == PathResolution.absolute("conf/sluice.yaml", from: cwd))
        #expect(relative.path.hasPrefix("/"))
    }
}
