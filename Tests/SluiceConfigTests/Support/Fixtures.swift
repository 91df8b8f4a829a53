import Foundation
import SluiceRouting
@testable import SluiceConfig

/// The fixture files (copied into the test bundle) and the repository the tests live in.
enum Fixtures {
    static let directory: String = {
        guard let url = Bundle.module.url(forResource: "Fixtures", withExtension: nil) else {
            fatalError("the Fixtures resource is missing from the test bundle")
        }
        return PathResolution.absolute(url.path, from: "/")
    }()

    static func path(_ relative: String) -> String { directory + "/" + relative }

    /// Base names (without `.yaml`) of the fixtures in `good` or `bad`, sorted.
    static func names(in folder: String) -> [String] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: path(folder))) ?? []
        return files.filter { $0.hasSuffix(".yaml") }.map { String($0.dropLast(".yaml".count)) }.sorted()
    }

    static func loadGood(_ name: String) throws -> Configuration {
        try ConfigLoader.load(path: path("good/\(name).yaml"), displayPath: "\(name).yaml")
    }

    /// The repository root, found from this source file (through the scratch package's symlinks).
    static func repositoryRoot() -> URL {
        URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
            .deletingLastPathComponent()   // Support
            .deletingLastPathComponent()   // SluiceConfigTests
            .deletingLastPathComponent()   // Tests
            .deletingLastPathComponent()
    }
}

// Readable access to the routing enums, which are not Equatable (a compiled regex is not).
extension Target {
    var backend: BackendID? { if case .backend(let id) = self { id } else { nil } }
    var split: Split? { if case .split(let split) = self { split } else { nil } }
    var blueGreen: BlueGreen? { if case .blueGreen(let pair) = self { pair } else { nil } }
}

extension ValueMatcher {
    var exact: String? { if case .exact(let value) = self { value } else { nil } }
    var regexPattern: String? { if case .regex(let regex) = self { regex.pattern } else { nil } }
    var isPresent: Bool { if case .present = self { true } else { false } }
}

extension Configuration {
    func route(_ name: String) -> Route? { table.routes.first { $0.name == name } }
}
