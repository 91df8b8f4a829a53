import Testing
@testable import SluiceRouting

/// Returns the given values in order, then records an issue (a test that draws more than it
/// planned for is wrong) and returns 0.
struct FixedRandom: RandomNumberGenerator {
    private var values: [UInt64]
    private(set) var drawn = 0

    init(_ values: [UInt64] = []) { self.values = values }

    var remaining: Int { values.count - drawn }

    mutating func next() -> UInt64 {
        guard drawn < values.count else {
            Issue.record("FixedRandom exhausted after \(drawn) draws")
            return 0
        }
        defer { drawn += 1 }
        return values[drawn]
    }

    /// The generator output that makes `Int.random(in: 0..<total, using:)` return `draw`.
    ///
    /// The standard library maps one `UInt64` x to the high word of x * total (Lemire's method),
    /// redrawing only when the low word falls below (2^64 - total) % total. Choosing x in the
    /// middle of the interval that maps to `draw` keeps the low word near 2^63, never redrawn.
    static func drawing(_ draw: Int, of total: Int) -> UInt64 {
        precondition(draw >= 0 && draw < total)
        return UInt64(total).dividingFullWidth((high: UInt64(draw), low: 1 << 63)).quotient
    }
}

/// splitmix64, for tests that need many reproducible draws.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        return StickyHash.mix64(state)
    }
}

/// Backends used throughout: v1 = 0, v2 = 1, v3 = 2, shadow = 3, blue = 4, green = 5.
let v1 = BackendID(0), v2 = BackendID(1), v3 = BackendID(2), shadow = BackendID(3)
let blue = BackendID(4), green = BackendID(5)
let backendNames = ["checkout-v1", "checkout-v2", "checkout-v3", "shadow", "api-blue", "api-green"]

func table(_ routes: Route...) -> RouteTable {
    RouteTable(routes: routes, backendNames: backendNames)
}

func facts(_ method: String = "GET", _ target: String = "/", host: String? = "shop.example.com",
           _ headers: [(String, String)] = []) -> StaticRequestFacts {
    StaticRequestFacts(method: method, target: target, authority: host,
                       headers: headers.map { (name: $0.0, value: $0.1) })
}

extension RouteTable {
    /// `decide` with a generator that must not be drawn from.
    func decideWithoutDrawing<F: RequestFacts>(_ facts: F) -> Decision? {
        var random = FixedRandom()
        return decide(facts, random: &random)
    }

    /// `decide` with `values` as the generator; records an issue unless all were drawn.
    func decide<F: RequestFacts>(_ facts: F, drawing values: [UInt64],
                                 sourceLocation: SourceLocation = #_sourceLocation) -> Decision? {
        var random = FixedRandom(values)
        let decision = decide(facts, random: &random)
        #expect(random.remaining == 0, "\(random.remaining) planned draws unused", sourceLocation: sourceLocation)
        return decision
    }
}

/// `n` distinct sticky keys that look like user ids.
func userKeys(_ n: Int) -> [String] {
    (0..<n).map { "user-\($0)" }
}
