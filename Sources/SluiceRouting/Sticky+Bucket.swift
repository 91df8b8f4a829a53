/// The sticky bucket of a key: which of 10,000 buckets a user falls into on a route.
///
///     bucket = mix64(fnv1a64(UTF-8 of routeName + "\u{0}" + key)) % 10000
///
/// The key is hashed as the bytes the request carries (a cookie value or a header value is
/// ASCII in practice; for any valid UTF-8 these are the key's UTF-8 bytes).
///
/// - `fnv1a64` is standard 64-bit FNV-1a: start at 0xcbf29ce484222325; for each byte,
///   `h ^= byte; h &*= 0x100000001b3`.
/// - `mix64` is the splitmix64 finalizer: `x ^= x >> 30; x &*= 0xbf58476d1ce4e5b9;
///   x ^= x >> 27; x &*= 0x94d049bb133111eb; x ^= x >> 31` — FNV-1a alone mixes its last
///   bytes poorly into the low digits, and the finalizer spreads every input bit over all 64.
///
/// Why this and not Swift's `Hasher`: the bucket must be the same across restarts, machines
/// and Sluice instances (several proxies behind one load balancer must send a user to the same
/// version), and `Hasher` is randomly seeded per process. This function is part of the
/// contract: changing it moves users between versions, and the tests pin known values.
///
/// The route name is hashed in so that one user lands in independent buckets on different
/// routes (a user in the 5% canary of one route is not in every route's canary). The NUL
/// separator keeps `("ab", "c")` and `("a", "bc")` apart.
public enum StickyHash {
    /// The number of buckets; a split's weights are laid out over them.
    public static let bucketCount = 10_000

    public static let fnvOffsetBasis: UInt64 = 0xcbf2_9ce4_8422_2325
    public static let fnvPrime: UInt64 = 0x0000_0100_0000_01b3

    /// The sticky bucket, in 0..<10000, of `key` on the route called `route`.
    public static func bucket<K: StringProtocol>(route: String, key: K) -> Int {
        bucket(seed: seed(route: route), key: key)
    }

    /// 64-bit FNV-1a of `bytes`, continuing from `state` (the offset basis by default).
    public static func fnv1a64<S: Sequence<UInt8>>(_ bytes: S, from state: UInt64 = fnvOffsetBasis) -> UInt64 {
        var hash = state
        for byte in bytes {
            hash ^= UInt64(byte)
            hash &*= fnvPrime
        }
        return hash
    }

    /// The splitmix64 finalizer (Steele, Lea, Flood 2014; constants of Stafford's variant 13).
    public static func mix64(_ value: UInt64) -> UInt64 {
        var x = value
        x ^= x >> 30
        x &*= 0xbf58_476d_1ce4_e5b9
        x ^= x >> 27
        x &*= 0x94d0_49bb_1331_11eb
        x ^= x >> 31
        return x
    }

    /// The FNV-1a state after `route + "\u{0}"`; `Route` keeps it so a request hashes only its key.
    static func seed(route: String) -> UInt64 {
        fnv1a64(CollectionOfOne(0), from: fnv1a64(route.utf8))
    }

    static func bucket<K: StringProtocol>(seed: UInt64, key: K) -> Int {
        // Over the contiguous UTF-8 when there is some (a native string or substring): walking a
        // substring's UTF8View byte by byte cost ~40 instructions a byte. Same bytes, same hash.
        key.utf8.withContiguousStorageIfAvailable { bucket(seed: seed, bytes: $0) }
            ?? Int(mix64(fnv1a64(key.utf8, from: seed)) % UInt64(bucketCount))
    }

    /// The bucket of a key given as its UTF-8 bytes.
    static func bucket(seed: UInt64, bytes: UnsafeBufferPointer<UInt8>) -> Int {
        Int(mix64(fnv1a64(bytes, from: seed)) % UInt64(bucketCount))
    }

    /// A new sticky id for a client that has none: 16 lowercase hex digits of one
    /// `random.next()`. It only has to spread clients over the buckets; it is not a secret.
    static func newID<R: RandomNumberGenerator>(using random: inout R) -> String {
        let value: UInt64 = random.next()
        return String(unsafeUninitializedCapacity: 16) { buffer in
            for index in 0..<16 {
                let nibble = UInt8(truncatingIfNeeded: value >> UInt64(60 - 4 * index)) & 0xf
                buffer[index] = nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10
            }
            return 16
        }
    }
}

extension Route {
    /// The sticky bucket of the request, if the route is sticky and the request carries a
    /// non-empty key: the cookie's value, or the first value of the header. An empty value is no
    /// identity (every such client would share one bucket), so it counts as absent. The key is
    /// hashed where it lies in the request (`StickyHash.bucket(seed:bytes:)`).
    func stickyBucket<F: RequestFacts>(for facts: F) -> Int? {
        guard let sticky else { return nil }
        // The closures capture the seed alone: capturing `self` copied the whole route.
        let seed = stickySeed
        func bucket(_ key: UnsafeBufferPointer<UInt8>) -> Int? {
            key.isEmpty ? nil : StickyHash.bucket(seed: seed, bytes: key)
        }
        let found: Int??
        switch sticky.key {
        case .cookie(let name): found = CookieHeader.value(named: name, in: facts) { bucket($0) }
        case .header(let name): found = facts.firstHeaderValue(name) { .some(bucket($0)) }
        }
        return found ?? nil
    }

    /// The sticky bucket of `key` on this route (`StickyHash.bucket(route: name, key: key)`).
    func stickyBucket<K: StringProtocol>(key: K) -> Int {
        StickyHash.bucket(seed: stickySeed, key: key)
    }
}
