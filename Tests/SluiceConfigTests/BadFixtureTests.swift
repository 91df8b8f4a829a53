import Foundation
import Testing
@testable import SluiceConfig

/// Every `Fixtures/bad/NAME.yaml` must fail with exactly the lines of `NAME.expected`: all of its
/// errors, in file order, as `sluice check` prints them. `${DIR}` in an expected line stands for
/// the fixture directory (messages about relative paths show where they looked).
@Suite struct BadFixtureTests {
    @Test(arguments: Fixtures.names(in: "bad"))
    func reportsEveryErrorInOrder(name: String) throws {
        let expectedFile = Fixtures.path("bad/\(name).expected")
        let expected = try String(contentsOfFile: expectedFile, encoding: .utf8)
            .replacingOccurrences(of: "${DIR}", with: Fixtures.path("bad"))
            .split(separator: "\n").map(String.init)
        let thrown = #expect(throws: ConfigErrors.self) {
            try ConfigLoader.load(path: Fixtures.path("bad/\(name).yaml"), displayPath: "\(name).yaml")
        }
        let actual = thrown?.errors.map(\.description) ?? []
        #expect(actual == expected, "actual:\n\(actual.joined(separator: "\n"))")
        #expect(thrown?.description == expected.joined(separator: "\n"))
    }

    @Test func everyBadFixtureHasItsExpectedFile() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Fixtures.path("bad"))
        let yaml = Set(files.filter { $0.hasSuffix(".yaml") }.map { $0.dropLast(5) })
        let expected = Set(files.filter { $0.hasSuffix(".expected") }.map { $0.dropLast(9) })
        #expect(yaml == expected)
        #expect(yaml.count >= 15)
    }

    @Test func errorsUseThePathAsGivenWithoutDisplayPath() {
        let thrown = #expect(throws: ConfigErrors.self) {
            try ConfigLoader.parse(text: "listen: [\n", path: "conf/broken.yaml")
        }
        #expect(thrown?.errors.count == 1)
        #expect(thrown?.errors.first?.file == "conf/broken.yaml")
    }

    @Test func aMissingFileIsOneError() {
        let thrown = #expect(throws: ConfigErrors.self) {
            try ConfigLoader.load(path: Fixtures.path("bad/does-not-exist.yaml"), displayPath: "nope.yaml")
        }
        #expect(thrown?.errors.map(\.description) == ["nope.yaml:1:1: no such file"])
    }
}
