import Logging
import NIOCore
import SluiceConfig
import SluiceMetrics

/// Everything one event loop owns: its upstream pool, its statistics shard, its random source,
/// its round-robin positions. A request touches only its own loop's context, so the hot path
/// takes no lock; other threads reach a context only by submitting work to its loop.
final class LoopContext {
    let eventLoop: EventLoop
    let pool: UpstreamPool
    let stats = StatShard()
    /// Response timeouts of this loop's requests.
    let deadlines: ResponseDeadlines
    /// This loop's downstream exchanges, for a shutdown and for the idle timeout.
    let exchanges: OpenExchanges
    /// Access log lines and upstream errors of this loop's requests.
    let logger = Logger(label: "sluice")
    /// Shadow traffic of this loop (set right after init: it refers back to the context).
    private(set) var mirrors: MirrorSender!
    var random: LoopRandom
    /// Endpoints of primary traffic that failed a connect recently, passed over for a while.
    var endpointCooldown = EndpointCooldown()
    /// Next endpoint index per backend, keyed by backend index; reset when the generation changes.
    private var roundRobin: [Int] = []
    private var roundRobinGeneration = -1

    /// How many event loops share the work (a backend's `maxConnections` is split among them).
    let loopCount: Int

    init(eventLoop: EventLoop, loopCount: Int = 1) {
        self.eventLoop = eventLoop
        self.loopCount = loopCount
        self.pool = UpstreamPool(eventLoop: eventLoop, logger: logger)
        self.deadlines = ResponseDeadlines(eventLoop: eventLoop)
        self.exchanges = OpenExchanges(eventLoop: eventLoop)
        self.random = LoopRandom()
        self.mirrors = MirrorSender(loop: self)
    }

    /// The context and the objects it is made of: they live as long as its event loop
    /// (`SluiceServer` marks them `Immortal`).
    var residents: [AnyObject] { [self, pool, pool.spare, stats, deadlines, exchanges, mirrors] }

    /// This loop's share of a backend's `maxConnections` (rounded up, at least 1).
    func connectionLimit(_ backend: BackendSpec) -> Int {
        max(1, (backend.maxConnections + loopCount - 1) / loopCount)
    }

    /// The endpoint index for the next request to `backend` (round-robin per loop).
    func nextEndpoint(backend: Int, of count: Int, generation: Int) -> Int {
        if roundRobinGeneration != generation {
            roundRobin = []
            roundRobinGeneration = generation
        }
        if backend >= roundRobin.count {
            roundRobin.append(contentsOf: repeatElement(0, count: backend + 1 - roundRobin.count))
        }
        let i = roundRobin[backend] % count
        roundRobin[backend] = i + 1
        return i
    }

    /// The next endpoint index of `backend` (its index in the snapshot: `index`) in round-robin
    /// order, passing over `except` (where a retried request failed) and the endpoints
    /// `cooldown` skips; nil when that passes over them all.
    func nextEndpoint(of backend: BackendRuntime, index: Int, generation: Int, avoiding cooldown: EndpointCooldown,
                      except: SocketAddress? = nil) -> Int? {
        let count = backend.endpoints.count
        guard count > 0 else { return nil }
        if cooldown.isEmpty && except == nil { return nextEndpoint(backend: index, of: count, generation: generation) }
        let now = NIODeadline.now()
        for _ in 0..<count {
            let i = nextEndpoint(backend: index, of: count, generation: generation)
            let address = backend.endpoints[i]
            if address != except && !cooldown.skips(address, now: now) { return i }
        }
        return nil
    }
}

@available(*, unavailable)
extension LoopContext: Sendable {}

/// xoshiro256** seeded from the system generator: the per-loop source of split and mirror
/// draws. (`SystemRandomNumberGenerator` costs a syscall per draw on Linux.)
struct LoopRandom: RandomNumberGenerator {
    private var s0, s1, s2, s3: UInt64

    init() {
        var sys = SystemRandomNumberGenerator()
        s0 = sys.next(); s1 = sys.next(); s2 = sys.next(); s3 = sys.next()
        if s0 | s1 | s2 | s3 == 0 { s0 = 1 }
    }

    mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = s3 << 45 | s3 >> 19
        return result
    }
}
