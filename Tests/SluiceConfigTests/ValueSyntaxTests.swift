import SluiceRouting
import Testing
@testable import SluiceConfig

@Suite struct ValueSyntaxTests {
    @Test(arguments: [
        ("250ms", Duration.milliseconds(250)), ("5s", .seconds(5)), ("2m", .seconds(120)), ("1h", .seconds(3600)),
        ("1.5s", .milliseconds(1500)), ("0.25m", .seconds(15)), ("0s", .zero), ("10ms", .milliseconds(10)),
    ])
    func durations(text: String, expected: Duration) {
        #expect(DurationSyntax.parse(text) == expected)
    }

    @Test(arguments: ["5 seconds", "5", "s", "1.s", ".5s", "-1s", "1d", "1.5.0s", "5S", "1e3ms", " 5s", ""])
    func invalidDurations(text: String) {
        #expect(DurationSyntax.parse(text) == nil)
    }

    @Test(arguments: [
        ("127.0.0.1:8080", SocketAddressSpec(host: "127.0.0.1", port: 8080)),
        ("[::1]:8080", SocketAddressSpec(host: "::1", port: 8080)),
        ("[2001:db8::1]:443", SocketAddressSpec(host: "2001:db8::1", port: 443)),
        ("localhost:1", SocketAddressSpec(host: "localhost", port: 1)),
        ("api.internal:65535", SocketAddressSpec(host: "api.internal", port: 65535)),
    ])
    func addresses(text: String, expected: SocketAddressSpec) throws {
        #expect(try AddressSyntax.parse(text).get() == expected)
    }

    @Test(arguments: ["127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", "::1:80", "[::1]", "[::1]80", "[x]:80",
                      ":80", "a b:80", "1.2.3.4.5:80", "-host:80", "host:", "host:+80"])
    func invalidAddresses(text: String) {
        #expect(throws: SyntaxProblem.self) { try AddressSyntax.parse(text).get() }
    }

    @Test func hostPatterns() throws {
        #expect(try HostPatternSyntax.parse("Shop.Example.com").get() == .exact("shop.example.com"))
        #expect(try HostPatternSyntax.parse("*.Example.com").get() == .wildcard(suffix: ".example.com"))
        #expect(try HostPatternSyntax.parse("[::1]").get() == .exact("[::1]"))
        for bad in ["*", "*.", "a.*.com", "*.*.com", "shop.example.com:80", "sh op.com"] {
            #expect(throws: SyntaxProblem.self, "\(bad)") { try HostPatternSyntax.parse(bad).get() }
        }
    }

    @Test func scalarsAreStrictAboutNumbers() {
        #expect(ConfigNode.parseInteger("1_048_576") == 1_048_576)
        #expect(ConfigNode.parseInteger("-3") == -3)
        #expect(ConfigNode.parseInteger("0x10") == nil)
        #expect(ConfigNode.parseInteger("1.0") == nil)
        #expect(ConfigNode.parseNumber("12.5") == 12.5)
        #expect(ConfigNode.parseNumber(".5") == 0.5)
        #expect(ConfigNode.parseNumber("1e3") == nil)
        #expect(ConfigNode.parseNumber("ten") == nil)
    }

    @Test func pathsAreNormalised() {
        #expect(PathResolution.absolute("tls/./cert.pem", from: "/etc/sluice") == "/etc/sluice/tls/cert.pem")
        #expect(PathResolution.absolute("../run/s.sock", from: "/etc/sluice") == "/etc/run/s.sock")
        #expect(PathResolution.absolute("/abs//x", from: "/etc") == "/abs/x")
    }
}
