/// Objects that live as long as the proxy, marked immortal so that counting references to them
/// costs no atomic operation.
///
/// Why: every retain or release of a Swift object is an atomic read-modify-write of its count
/// (`lock cmpxchg` on x86), about 8 ns each on the Intel host of the README's table, whichever
/// thread holds the object. A request makes about 210 retain and release calls, half in NIO's
/// read path, and a good share land on a few objects every request touches: its event loop
/// (NIO copies a channel's lifecycle state, which holds the loop, six times per read event), the loop's
/// `LoopContext` and its parts (pool, statistics shard, deadlines, open exchanges, shadow
/// sender, head buffer), the pool's per-endpoint records and the `SnapshotStore`. The Swift
/// runtime skips counting for an object marked immortal: a retain or release reads the count,
/// sees the mark and returns. Marking those objects took 0.15 µs of user time off a request
/// (3.65 -> 3.50 µs, eight interleaved runs) and gave 1-2% more requests/s on plain proxying; a
/// build with no atomic counting at all (unsound here: shown for scale) was 10% faster, which
/// was the whole of nginx's lead on that host before link-time optimisation (README,
/// Performance).
///
/// What it costs: an immortal object is never freed. Only objects that already live until the
/// process ends are marked — each made once per `SluiceServer`, or once per endpoint address a
/// loop's pool has seen (its records are never dropped) — and none of them does anything in a
/// `deinit`: sockets, timers and NIO's selectors are closed explicitly at shutdown. A server
/// stopped in-process (the tests) leaves a few kilobytes per loop allocated, nothing open.
/// Snapshots are not marked (each live change makes one, and the old ones must go), nor is
/// anything per connection or per request.
///
/// `_swift_stdlib_immortalize` is the runtime's entry point for this, exported for the standard
/// library (Swift's own benchmark suite calls it the same way). It is underscored, not public
/// API: a toolchain without it fails to link Sluice rather than running without it.
enum Immortal {
    static func mark(_ object: AnyObject) {
        withExtendedLifetime(object) {
            _swift_stdlib_immortalize(Unmanaged.passUnretained(object).toOpaque())
        }
    }
}

@_silgen_name("_swift_stdlib_immortalize")
private func _swift_stdlib_immortalize(_ object: UnsafeMutableRawPointer)
