import Testing
@testable import SluiceRouting

@Suite("Blue-green and mirror")
struct BlueGreenMirrorTests {
    let pair = table(Route(name: "api", match: RouteMatch(pathPrefix: "/api"),
                           target: .blueGreen(BlueGreen(active: blue, preview: green, previewHeader: "X-Preview"))))

    @Test func activeServesEverythingButThePreviewHeader() {
        #expect(pair.decideWithoutDrawing(facts("GET", "/api/x"))?.backend == blue)
        #expect(pair.decideWithoutDrawing(facts("GET", "/api/x", [("x-preview", "1")]))?.backend == green)
        #expect(pair.decideWithoutDrawing(facts("GET", "/api/x", [("X-PREVIEW", "")]))?.backend == green, "any value, even empty")
        #expect(pair.decideWithoutDrawing(facts("GET", "/api/x", [("x-previews", "1")]))?.backend == blue)
    }

    func mirrored(_ policy: MirrorPolicy, _ method: String = "GET", drawing values: [UInt64] = [],
                  sourceLocation: SourceLocation = #_sourceLocation) -> Decision? {
        let t = table(Route(name: "checkout", target: .backend(v1), mirror: policy))
        return t.decide(facts(method), drawing: values, sourceLocation: sourceLocation)
    }

    @Test func methodFilterComesFirstAndConsumesNoDraw() {
        let policy = MirrorPolicy(backend: shadow, percent: 50)
        #expect(mirrored(policy, "POST")?.mirror == nil)
        #expect(mirrored(policy, "DELETE")?.mirror == nil)
        #expect(mirrored(policy, "GET", drawing: [0])?.mirror == shadow)
        #expect(mirrored(policy, "HEAD", drawing: [0])?.mirror == shadow)
        #expect(mirrored(policy, "OPTIONS", drawing: [0])?.mirror == shadow)
        let writes = MirrorPolicy(backend: shadow, percent: 100, methods: ["POST"])
        #expect(mirrored(writes, "POST")?.mirror == shadow)
        #expect(mirrored(writes, "GET")?.mirror == nil)
    }

    @Test func percentBoundsDrawNothing() {
        #expect(mirrored(MirrorPolicy(backend: shadow, percent: 100))?.mirror == shadow)
        #expect(mirrored(MirrorPolicy(backend: shadow, percent: 0))?.mirror == nil)
    }

    @Test func percentComparesOneDraw() {
        let policy = MirrorPolicy(backend: shadow, percent: 10.5)
        #expect(policy.shouldMirror(draw: 0))
        #expect(policy.shouldMirror(draw: 10.499_999))
        #expect(!policy.shouldMirror(draw: 10.5))
        #expect(!policy.shouldMirror(draw: 99.9))
        // Through the generator: whatever Double.random(in: 0..<100) makes of a value decides.
        for raw: UInt64 in [0, 1 << 58, 1 << 60, 0x1b00_0000_0000_0000, 1 << 63, .max] {
            var probe = FixedRandom([raw])
            let draw = Double.random(in: 0..<100, using: &probe)
            #expect(mirrored(policy, drawing: [raw])?.mirror == (draw < 10.5 ? shadow : nil), "draw \(draw)")
        }
        #expect(mirrored(policy, drawing: [0])?.mirror == shadow)
        #expect(mirrored(policy, drawing: [.max])?.mirror == nil)
    }

    @Test func mirrorIsIndependentOfTheChosenBackendAndDrawnAfterIt() {
        let t = table(Route(name: "checkout", target: .split(Split(backends: [v1, v2], weights: [50, 50])),
                            mirror: MirrorPolicy(backend: shadow, percent: 50)))
        // Draw 1: the split; draw 2: the mirror.
        let a = t.decide(facts(), drawing: [FixedRandom.drawing(0, of: 100), 0])
        #expect(a == Decision(route: RouteID(0), backend: v1, mirror: shadow))
        let b = t.decide(facts(), drawing: [FixedRandom.drawing(99, of: 100), 0])
        #expect(b == Decision(route: RouteID(0), backend: v2, mirror: shadow))
        let c = t.decide(facts(), drawing: [FixedRandom.drawing(99, of: 100), .max])
        #expect(c == Decision(route: RouteID(0), backend: v2, mirror: nil))
    }

    /// 10,000 draws at 10%: Binomial(10000, 0.1), npq = 900; Bernstein with t = 170 gives
    /// 2 exp(-28900 / (2 (900 + 56.7))) = 5.5e-7 < 1e-6.
    @Test func mirrorRateFollowsThePercent() {
        let t = table(Route(name: "checkout", target: .backend(v1), mirror: MirrorPolicy(backend: shadow, percent: 10)))
        var random = SplitMix64(seed: 9)
        var copies = 0
        for _ in 0..<10_000 where t.decide(facts(), random: &random)?.mirror == shadow {
            copies += 1
        }
        #expect(abs(copies - 1000) < 170, "mirrored \(copies) of 10000")
    }
}
