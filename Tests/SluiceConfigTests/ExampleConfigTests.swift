import Foundation
import SluiceRouting
import Testing
@testable import SluiceConfig

/// The examples in `configs/` are what a first-time user copies: each must load as it is, and
/// stay on loopback.
@Suite struct ExampleConfigTests {
    static let directory = Fixtures.repositoryRoot().appendingPathComponent("configs").path

    static var names: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { $0.hasSuffix(".yaml") }.sorted()
    }

    @Test func theDocumentedExamplesExist() {
        #expect(Set(["canary.yaml", "ab.yaml", "blue-green.yaml", "shadow.yaml", "combined.yaml"])
            .isSubset(of: Set(Self.names)))
    }

    @Test(arguments: ExampleConfigTests.names)
    func loadsWithoutError(name: String) throws {
        let config = try ConfigLoader.load(path: Self.directory + "/" + name, displayPath: name)
        let loopback: Set<String> = ["127.0.0.1", "::1", "localhost"]
        var hosts = config.listeners.map(\.address.host) + config.backends.flatMap { $0.endpoints.map(\.host) }
        if let http = config.admin?.http { hosts.append(http.host) }
        #expect(hosts.allSatisfy(loopback.contains), "\(name) uses a non-loopback address")
    }

    @Test func combinedIsTheSpecExample() throws {
        let config = try ConfigLoader.load(path: Self.directory + "/combined.yaml")
        #expect(config.table.routes.map(\.name) == ["checkout", "api", "default"])
        let checkout = try #require(config.route("checkout"))
        let v1 = try #require(config.table.backendID(named: "checkout-v1"))
        let v2 = try #require(config.table.backendID(named: "checkout-v2"))
        #expect(checkout.target.split == Split(backends: [v1, v2], weights: [95, 5]))
        #expect(checkout.mirror?.backend == config.table.backendID(named: "checkout-v3"))
        #expect(checkout.mirror?.percent == 10)
        #expect(config.route("api")?.target.blueGreen != nil)
    }
}
