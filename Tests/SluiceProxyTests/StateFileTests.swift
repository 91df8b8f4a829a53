#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import SluiceConfig
import SluiceRouting
@testable import SluiceProxy

/// Unit tests of the state file (`StateFile`: format, corrupt files, atomic writes) and of the
/// rule that decides which persisted live changes still apply to a (re)loaded file
/// (`ControlPlane.surviving`, SPEC "Live changes"). Named so that `--filter LiveControl` runs
/// them with the end-to-end live-control suite.
@Suite struct LiveControlStateFile {
    /// 2026-11-28T10:01:00Z.
    static let fixedDate = Date(timeIntervalSince1970: 1_795_860_060)

    static func tempDir() throws -> String {
        var template = Array("/tmp/sluice-sf-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw StateFile.WriteError(description: "mkdtemp failed")
        }
        return String(cString: made)
    }

    // MARK: Format

    @Test func entriesRoundTripThroughTheFileFormat() throws {
        let entries: [String: LiveEntry] = [
            "web": LiveEntry(change: .weights(["a": 90, "b": 10, "c": 0]), at: Self.fixedDate, fingerprint: "{\"name\":\"web\"}"),
            "api": LiveEntry(change: .active("api-green"), at: Self.fixedDate.addingTimeInterval(61), fingerprint: "fp-ü-\"quoted\""),
        ]
        let decoded = try StateFile.decode(StateFile.encode(entries), path: "/x/state.json")
        #expect(decoded == entries)
        #expect(try StateFile.decode(StateFile.encode([:]), path: "/x/state.json").isEmpty)
    }

    @Test func theEncodingIsVersionedJSONInTheDocumentedShape() throws {
        let data = StateFile.encode([
            "checkout": LiveEntry(change: .weights(["checkout-v1": 90, "checkout-v2": 10]), at: Self.fixedDate, fingerprint: "f1"),
            "api": LiveEntry(change: .active("api-green"), at: Self.fixedDate, fingerprint: "f2"),
        ])
        let root = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(Set(root.keys) == ["version", "routes"])
        #expect(root["version"] as? Int == 1)
        let routes = try #require(root["routes"] as? [String: Any])
        let checkout = try #require(routes["checkout"] as? [String: Any])
        #expect(checkout["weights"] as? [String: Int] == ["checkout-v1": 90, "checkout-v2": 10])
        #expect(checkout["at"] as? String == "2026-11-28T10:01:00Z")
        #expect(checkout["fingerprint"] as? String == "f1")
        #expect(checkout["active"] == nil)
        let api = try #require(routes["api"] as? [String: Any])
        #expect(api["active"] as? String == "api-green")
        #expect(api["weights"] == nil)
        // Stable output: the same entries encode to the same bytes.
        #expect(StateFile.encode(["a": LiveEntry(change: .active("x"), at: Self.fixedDate, fingerprint: "")])
                == StateFile.encode(["a": LiveEntry(change: .active("x"), at: Self.fixedDate, fingerprint: "")]))
    }

    @Test func aHandWrittenFileInTheDocumentedFormatDecodes() throws {
        let text = """
            {"version":1,"routes":{"checkout":{"weights":{"checkout-v1":90,"checkout-v2":10},
              "at":"2026-11-28T10:01:00Z","fingerprint":"abc"},"api":{"active":"api-green","at":"2026-11-28T10:01:00Z","fingerprint":"def"}}}
            """
        let decoded = try StateFile.decode(Data(text.utf8), path: "s.json")
        #expect(decoded["checkout"] == LiveEntry(change: .weights(["checkout-v1": 90, "checkout-v2": 10]), at: Self.fixedDate, fingerprint: "abc"))
        #expect(decoded["api"] == LiveEntry(change: .active("api-green"), at: Self.fixedDate, fingerprint: "def"))
    }

    // MARK: Corrupt files

    static let at = #""at":"2026-11-28T10:01:00Z","fingerprint":"f""#

    /// (file content, words the reason must contain; empty: any refusal will do)
    static let corrupt: [(String, [String])] = [
        ("", ["not a JSON object"]),
        ("garbage", ["not a JSON object"]),
        ("[1,2,3]", ["not a JSON object"]),
        ("\"text\"", ["not a JSON object"]),
        ("{\"version\":1,\"routes\":{\"web\":{\"weights\":{\"a\":1", ["not a JSON object"]),   // truncated
        ("{\"routes\":{}}", ["version"]),
        ("{\"version\":2,\"routes\":{}}", ["version"]),
        ("{\"version\":\"1\",\"routes\":{}}", ["version"]),
        ("{\"version\":1}", ["routes"]),
        ("{\"version\":1,\"routes\":[]}", ["routes"]),
        ("{\"version\":1,\"routes\":{\"web\":5}}", ["web"]),
        ("{\"version\":1,\"routes\":{\"web\":{\"weights\":{\"a\":1}}}}", ["web", "at"]),
        ("{\"version\":1,\"routes\":{\"web\":{\"weights\":{\"a\":1},\"at\":\"yesterday\",\"fingerprint\":\"f\"}}}", ["web", "at"]),
        ("{\"version\":1,\"routes\":{\"web\":{\"weights\":{\"a\":1},\"at\":\"2026-11-28T10:01:00Z\"}}}", ["web", "fingerprint"]),
        ("{\"version\":1,\"routes\":{\"web\":{\(at)}}}", ["web", "weights", "active"]),
        ("{\"version\":1,\"routes\":{\"web\":{\"weights\":{\"a\":\"1\"},\(at)}}}", ["web"]),
        ("{\"version\":1,\"routes\":{\"web\":{\"weights\":{\"a\":0.5},\(at)}}}", ["web"]),
        ("{\"version\":1,\"routes\":{\"web\":{\"weights\":{\"a\":true},\(at)}}}", ["web"]),
        ("{\"version\":1,\"routes\":{\"web\":{\"weights\":[1,2],\(at)}}}", ["web"]),
        ("{\"version\":1,\"routes\":{\"api\":{\"active\":5,\(at)}}}", ["api"]),
    ]

    @Test(arguments: 0..<corrupt.count)
    func aCorruptFileIsRefusedWithAReasonNamingTheFile(_ index: Int) {
        let (text, words) = Self.corrupt[index]
        do {
            let decoded = try StateFile.decode(Data(text.utf8), path: "/run/sluice/state.json")
            Issue.record("'\(text)' was accepted as \(decoded)")
        } catch {
            #expect(error.description.contains("/run/sluice/state.json"), "\(error.description)")
            for word in words {
                #expect(error.reason.contains(word), "'\(text)': reason '\(error.reason)' does not mention \(word)")
            }
        }
    }

    @Test func loadingAMissingFileIsAnEmptyStateAndAnUnreadableOneIsAnError() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(try StateFile.load(dir + "/nothing-here.json").isEmpty)
        // A directory where the file should be.
        #expect(throws: StateFile.Corrupt.self) { try StateFile.load(dir) }
        // An empty file.
        _ = FileManager.default.createFile(atPath: dir + "/empty.json", contents: Data())
        #expect(throws: StateFile.Corrupt.self) { try StateFile.load(dir + "/empty.json") }
    }

    // MARK: Writes

    @Test func writesReplaceTheFileAtomicallyWithMode0600AndLeaveNoTemporaryFile() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/state.json"
        let first: [String: LiveEntry] = ["web": LiveEntry(change: .weights(["a": 1, "b": 2]), at: Self.fixedDate, fingerprint: "f")]
        try StateFile.write(first, to: path)
        #expect(try StateFile.load(path) == first)
        var st = stat()
        #expect(stat(path, &st) == 0)
        #expect(st.st_mode & 0o777 == 0o600, "mode \(String(st.st_mode & 0o777, radix: 8))")
        let firstInode = st.st_ino

        let second: [String: LiveEntry] = ["api": LiveEntry(change: .active("green"), at: Self.fixedDate, fingerprint: "g")]
        try StateFile.write(second, to: path)
        #expect(try StateFile.load(path) == second)
        #expect(stat(path, &st) == 0)
        // Replaced by a rename (a new inode), never rewritten in place.
        #expect(st.st_ino != firstInode)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["state.json"])

        try StateFile.write([:], to: path)
        #expect(try StateFile.load(path).isEmpty)
    }

    @Test func aWriteThatCannotHappenSaysWhereAndLeavesTheOldFile() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            try StateFile.write([:], to: dir + "/no/such/dir/state.json")
            Issue.record("a write into a missing directory succeeded")
        } catch {
            #expect(error.description.contains(dir + "/no/such/dir/state.json"), "\(error.description)")
        }
        // The target is a non-empty directory: the rename fails, the temporary file is removed.
        let path = dir + "/state.json"
        try FileManager.default.createDirectory(atPath: path + "/inside", withIntermediateDirectories: true)
        #expect(throws: StateFile.WriteError.self) { try StateFile.write([:], to: path) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["state.json"])
    }

    // MARK: The override-merge rule (`ControlPlane.surviving`)

    static let backends = """
        listen: ["127.0.0.1:8080"]
        backends:
          a: { version: v1, endpoints: ["127.0.0.1:9001"] }
          b: { version: v2, endpoints: ["127.0.0.1:9002"] }
          c: { version: v3, endpoints: ["127.0.0.1:9003"] }
        routes:

        """

    static let baseRoutes = """
          - name: web
            match: { pathPrefix: /web }
            split: { a: 90, b: 10 }
          - name: api
            match: { pathPrefix: /api }
            blueGreen: { active: a, preview: c, previewHeader: x-preview }
          - name: other
            split: { a: 50, b: 50 }

        """

    static func config(_ routes: String, backends: String = backends) throws -> Configuration {
        try ConfigLoader.parse(text: backends + routes, path: "/tmp/sluice-sf/sluice.yaml")
    }

    /// Live changes made against `configuration` (fingerprints taken from it).
    static func liveChanges(on configuration: Configuration) -> [String: LiveEntry] {
        [
            "web": LiveEntry(change: .weights(["a": 0, "b": 100]), at: fixedDate, fingerprint: configuration.routeFingerprints["web"] ?? "?"),
            "api": LiveEntry(change: .active("c"), at: fixedDate, fingerprint: configuration.routeFingerprints["api"] ?? "?"),
        ]
    }

    @Test func liveChangesMadeAgainstTheSameFileAllSurviveAndApply() throws {
        let base = try Self.config(Self.baseRoutes)
        let live = Self.liveChanges(on: base)
        #expect(ControlPlane.surviving(live, in: base) == live)
        #expect(ControlPlane.surviving([:], in: base).isEmpty)
        // Applied on top of the file's table: the live values win.
        let table = ControlPlane.apply(live, to: base.table)
        let webID = try #require(table.routeID(named: "web"))
        let apiID = try #require(table.routeID(named: "api"))
        let otherID = try #require(table.routeID(named: "other"))
        let web = try #require(table.weights(of: webID))
        #expect(web.map(\.backend) == ["a", "b"])
        #expect(web.map(\.weight) == [0, 100])
        let api = try #require(table[apiID].blueGreen)
        #expect(table.backendName(api.active) == "c")
        #expect(table.backendName(api.preview) == "a")
        // The untouched route keeps the file's weights.
        #expect(table.weights(of: otherID)?.map(\.weight) == [50, 50])
    }

    @Test func aRouteWhoseOwnEntryChangedLosesItsLiveChangeAndOnlyIt() throws {
        let base = try Self.config(Self.baseRoutes)
        let live = Self.liveChanges(on: base)
        // (what, the new routes) — each changes web's own entry, never api's.
        let changes: [(String, String)] = [
            ("web's weights", Self.baseRoutes.replacingOccurrences(of: "split: { a: 90, b: 10 }", with: "split: { a: 80, b: 20 }")),
            ("web's split order", Self.baseRoutes.replacingOccurrences(of: "split: { a: 90, b: 10 }", with: "split: { b: 10, a: 90 }")),
            ("web's match", Self.baseRoutes.replacingOccurrences(of: "pathPrefix: /web", with: "pathPrefix: /web2")),
            ("web gains sticky", Self.baseRoutes.replacingOccurrences(of: "split: { a: 90, b: 10 }",
                                                                      with: "split: { a: 90, b: 10 }\n    sticky: { header: x-user }")),
            ("web becomes a plain backend", Self.baseRoutes.replacingOccurrences(of: "split: { a: 90, b: 10 }", with: "backend: a")),
        ]
        for (what, routes) in changes {
            let next = try Self.config(routes)
            #expect(next.routeFingerprints["web"] != base.routeFingerprints["web"], "\(what): the fingerprint did not change")
            let kept = ControlPlane.surviving(live, in: next)
            #expect(kept["web"] == nil, "\(what): web kept its live change")
            #expect(kept["api"] == live["api"], "\(what): api lost its live change")
        }
    }

    @Test func aRouteThatIsGoneOrRenamedLosesItsLiveChange() throws {
        let base = try Self.config(Self.baseRoutes)
        let live = Self.liveChanges(on: base)
        let withoutWeb = """
              - name: api
                match: { pathPrefix: /api }
                blueGreen: { active: a, preview: c, previewHeader: x-preview }

            """
        var kept = ControlPlane.surviving(live, in: try Self.config(withoutWeb))
        #expect(kept.keys.sorted() == ["api"])
        kept = ControlPlane.surviving(live, in: try Self.config(Self.baseRoutes.replacingOccurrences(of: "name: web", with: "name: web2")))
        #expect(kept.keys.sorted() == ["api"])
    }

    @Test func layoutOnlyEditsAndBackendChangesKeepEveryLiveChange() throws {
        let base = try Self.config(Self.baseRoutes)
        let live = Self.liveChanges(on: base)
        let reformatted = """
              # comments, block style, key order, quoting: layout, not content
              - split:
                  a: 90
                  b: 10
                name: "web"
                match:
                  pathPrefix: '/web'
              - name: api
                blueGreen: { previewHeader: x-preview, preview: c, active: a }
                match: { pathPrefix: /api }
              - name: other
                split: { a: 50, b: 50 }

            """
        #expect(ControlPlane.surviving(live, in: try Self.config(reformatted)) == live)
        // The backends a route names change (endpoints, timeout), the route entries do not.
        let otherBackends = Self.backends
            .replacingOccurrences(of: "a: { version: v1, endpoints: [\"127.0.0.1:9001\"] }",
                                  with: "a: { version: v1, endpoints: [\"127.0.0.1:9101\", \"127.0.0.1:9102\"], timeout: 5s }")
        #expect(ControlPlane.surviving(live, in: try Self.config(Self.baseRoutes, backends: otherBackends)) == live)
        // A route added to the file does not disturb the others.
        let more = Self.baseRoutes + "  - name: extra\n    backend: b\n"
        #expect(ControlPlane.surviving(live, in: try Self.config(more)) == live)
    }

    @Test func anEntryThatNoLongerAppliesIsDroppedEvenWithAMatchingFingerprint() throws {
        let base = try Self.config(Self.baseRoutes)
        let fp = base.routeFingerprints
        let entries: [String: LiveEntry] = [
            // weights naming a backend that is not in the split
            "web": LiveEntry(change: .weights(["a": 1, "c": 1]), at: Self.fixedDate, fingerprint: fp["web"]!),
            // a switch on a split route
            "other": LiveEntry(change: .active("a"), at: Self.fixedDate, fingerprint: fp["other"]!),
            // a switch to a backend outside the pair
            "api": LiveEntry(change: .active("b"), at: Self.fixedDate, fingerprint: fp["api"]!),
        ]
        #expect(ControlPlane.surviving(entries, in: base).isEmpty)
        // A stale or empty fingerprint never matches.
        let stale = ["web": LiveEntry(change: .weights(["a": 0, "b": 1]), at: Self.fixedDate, fingerprint: "")]
        #expect(ControlPlane.surviving(stale, in: base).isEmpty)
        // A state file entry for a route the file never had.
        let ghost = ["ghost": LiveEntry(change: .weights(["a": 0, "b": 1]), at: Self.fixedDate, fingerprint: fp["web"]!)]
        #expect(ControlPlane.surviving(ghost, in: base).isEmpty)
    }
}
