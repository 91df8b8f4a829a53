import Testing
@testable import SluiceConfig

/// The reload rule keeps a route's live change only while its own entry is unchanged: layout
/// (indentation, comments, flow or block style, quoting, key order) must not count as a change,
/// content must.
@Suite struct RouteFingerprintTests {
    static let original = """
        listen: "127.0.0.1:8080"
        backends:
          v1: { version: v1, endpoints: ["127.0.0.1:9001"] }
          v2: { version: v2, endpoints: ["127.0.0.1:9002"] }
        routes:
          - name: checkout
            match: { pathPrefix: /checkout, methods: [GET, POST] }
            split: { v1: 90, v2: 10 }
            sticky: { cookie: uid, assign: true }
          - name: api
            rules:
              - when: { headers: { x-beta: "1" } }
                backend: v2
            backend: v1
        """

    /// The same content: other indentation, comments, block style, other key order, quotes.
    static let reformatted = """
        # Reformatted by hand.
        listen: "127.0.0.1:8080"
        backends:
          v1: { version: v1, endpoints: ["127.0.0.1:9001"] }
          v2: { version: v2, endpoints: ["127.0.0.1:9002"] }
        routes:
            -   split:
                    v1: 90     # the current version
                    v2: 10     # the canary
                name: "checkout"
                sticky:
                    assign: true
                    cookie: 'uid'
                match:
                    methods:
                        - GET
                        - POST
                    pathPrefix: "/checkout"
            -   name: api
                backend: v1
                rules: [{ backend: v2, when: { headers: { x-beta: '1' } } }]
        """

    static func fingerprints(_ text: String) throws -> [String: String] {
        try ConfigLoader.parse(text: text, path: "/tmp/sluice.yaml").routeFingerprints
    }

    @Test func layoutDoesNotChangeFingerprints() throws {
        let before = try Self.fingerprints(Self.original)
        #expect(before.keys.sorted() == ["api", "checkout"])
        #expect(try Self.fingerprints(Self.reformatted) == before)
    }

    @Test func aChangedWeightChangesOnlyThatRoute() throws {
        let before = try Self.fingerprints(Self.original)
        let after = try Self.fingerprints(Self.original.replacingOccurrences(of: "v2: 10", with: "v2: 20"))
        #expect(after["checkout"] != before["checkout"])
        #expect(after["api"] == before["api"])
    }

    @Test func reorderingASplitIsAChange() throws {
        // The split's order lays out the sticky buckets, so it is content.
        let before = try Self.fingerprints(Self.original)
        let after = try Self.fingerprints(Self.original.replacingOccurrences(of: "{ v1: 90, v2: 10 }",
                                                                            with: "{ v2: 10, v1: 90 }"))
        #expect(after["checkout"] != before["checkout"])
        #expect(after["api"] == before["api"])
    }

    @Test func backendChangesDoNotTouchRouteFingerprints() throws {
        // A route's own entry is what counts, not the backends it names.
        let before = try Self.fingerprints(Self.original)
        let after = try Self.fingerprints(Self.original.replacingOccurrences(of: "127.0.0.1:9002",
                                                                            with: "127.0.0.1:9003"))
        #expect(after == before)
    }

    @Test func otherContentChangesCount() throws {
        let before = try Self.fingerprints(Self.original)
        let changedRule = try Self.fingerprints(Self.original.replacingOccurrences(of: "x-beta: \"1\"",
                                                                                  with: "x-beta: \"2\""))
        #expect(changedRule["api"] != before["api"])
        #expect(changedRule["checkout"] == before["checkout"])
        let addedMirror = try Self.fingerprints(Self.original.replacingOccurrences(
            of: "    backend: v1", with: "    backend: v1\n    mirror: { backend: v2 }"))
        #expect(addedMirror["api"] != before["api"])
    }
}
