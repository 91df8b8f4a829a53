import NIOCore
import NIOHTTP1

/// The outgoing side of one HTTP/1.1 connection (used by both codecs, towards clients and
/// towards backends): frames body parts as the head decided, coalesces small writes, and
/// flushes only when something went out.
///
/// A head and body parts up to `coalesceLimit` bytes are copied into one pending buffer that
/// goes out at the next flush — one `writev` entry instead of three for a typical small
/// response. Larger parts are handed to the channel as they are (no copy).
///
/// With `writeThrough` set (a cleartext socket the codec alone writes to), a flush whose bytes
/// are all in the pending buffer sends them itself (`SocketWriteThrough`), and only what the
/// socket does not take goes through NIO.
struct HTTP1Output {
    static let coalesceLimit = 4096

    /// NIO's default allocator, which every channel here uses: one shared value rather than a
    /// copy per connection (it is four function references, 64 bytes, in each codec).
    private static let allocator = ByteBufferAllocator()
    private var allocator: ByteBufferAllocator { Self.allocator }
    /// The event loop's reusable buffer for heads (nil: allocate each time).
    var spare: SpareBuffer?
    /// The connection's socket, when pending bytes may be sent to it directly.
    var writeThrough: SocketWriteThrough?
    private(set) var framing = BodyFraming.none
    private var pending: ByteBuffer?
    /// Bytes were handed to the channel since the last flush (an empty flush still walks the
    /// pipeline, and an exchange would otherwise flush twice: at its end and at read-complete).
    private var unflushed = false

    /// Serialises a head with `write` (which returns the body's framing) into the pending bytes.
    /// `framesBody: false` for an interim response (100 Continue), which frames nothing.
    mutating func head(framesBody: Bool = true, _ write: (inout ByteBuffer) -> BodyFraming) {
        var buffer = takePending() ?? spare?.take() ?? allocator.buffer(capacity: 512)
        let framing = write(&buffer)
        pending = buffer
        if framesBody { self.framing = framing }
    }

    /// One body part, framed as the head decided.
    mutating func body(_ body: ByteBuffer, context: ChannelHandlerContext) {
        self.body(body) { context }
    }

    /// The same, asking for the handler context only when the part is handed to NIO (one
    /// larger than `coalesceLimit`; see `flush(socket:context:)`). Dropped without a context.
    mutating func body(_ body: ByteBuffer, context: () -> ChannelHandlerContext?) {
        switch framing {
        case .none:
            return
        case .raw:
            append(body, context: context)
        case .chunked:
            guard body.readableBytes > 0 else { return }
            var prefix = takePending() ?? allocator.buffer(capacity: 16)
            HTTP1Writer.writeChunkHeader(size: body.readableBytes, into: &prefix)
            pending = prefix
            append(body, context: context)
            var suffix = takePending() ?? allocator.buffer(capacity: 16)
            suffix.writeStaticString("\r\n")
            pending = suffix
        }
    }

    /// Writes a body part or the end of a message; hands a head back for the caller to
    /// serialise (request and response heads are written differently).
    mutating func write<Head>(_ part: HTTPPart<Head, IOData>, context: ChannelHandlerContext) -> Head? {
        switch part {
        case .head(let head):
            return head
        case .body(.byteBuffer(let bytes)):
            body(bytes, context: context)
        case .body(.fileRegion):
            preconditionFailure("the proxy never sends file regions")
        case .end(let trailers):
            end(trailers)
        }
        return nil
    }

    /// The end of the message: the last chunk and trailers when chunked.
    mutating func end(_ trailers: HTTPHeaders?) {
        if framing == .chunked {
            var buffer = takePending() ?? allocator.buffer(capacity: 8)
            HTTP1Writer.writeLastChunk(trailers: trailers, into: &buffer)
            pending = buffer
        }
        framing = .none
    }

    /// Hands the pending bytes to the channel. With a `promise`, something is always written
    /// (an empty buffer when nothing is pending), so the promise completes after all earlier
    /// writes: a close can wait for it.
    mutating func write(context: ChannelHandlerContext, promise: EventLoopPromise<Void>? = nil) {
        if let bytes = takePending() {
            hand(bytes, to: context, promise: promise)
            spare?.keep(consume bytes)
        } else if let promise {
            hand(allocator.buffer(capacity: 0), to: context, promise: promise)
        }
    }

    /// Writes what is pending and flushes, if anything went out since the last flush. The
    /// usual case (one pending buffer, nothing else written) is one direct `send` when the
    /// socket takes it all, else one `writeAndFlush`: one walk to the channel instead of two.
    /// `socket`: the codec's channel when `writeThrough` is set (`OwnedSocket`).
    mutating func flush(context: ChannelHandlerContext, socket: Channel?) {
        flush(socket: socket) { context }
    }

    /// The same, asking for the handler context only when the bytes go through NIO: a codec's
    /// context is an optional property, and loading it is a retain and a release that the
    /// usual flush (one direct `send`) does not need. Nothing happens without a context.
    /// (The codecs pass `{ [unowned(unsafe) self] in self.context }`: the closure runs within
    /// the call, while the codec is alive, and a strong capture cost the retain it saves.)
    mutating func flush(socket: Channel?, context: () -> ChannelHandlerContext?) {
        if !unflushed, var bytes = takePending() {
            if writeThrough?.send(&bytes, channel: socket) == true {
                spare?.keep(consume bytes)
                return
            }
            guard let context = context() else {
                pending = bytes
                return
            }
            context.writeAndFlush(NIOAny(bytes), promise: writeThrough?.track(nil, on: context))
            spare?.keep(consume bytes)
            return
        }
        guard pending != nil || unflushed, let context = context() else { return }
        write(context: context)
        guard unflushed else { return }
        unflushed = false
        context.flush()
    }

    /// For a connection that closes after this message: sends what is pending straight to the
    /// socket, and is true when all of it went and NIO holds none of this connection's bytes —
    /// everything is then with the kernel, which sends it before the FIN, and the caller may
    /// close at once instead of handing NIO a write with a promise and closing when it
    /// completes (a connection per request paid ~8.6k instructions for that; see the README's
    /// "A closing response without a promise"). False when the write-through is off, NIO still
    /// holds bytes, or the socket did not take everything: what is left stays pending, for the
    /// caller's write through NIO.
    mutating func sendAllBeforeClose(socket: Channel?) -> Bool {
        guard !unflushed, let writeThrough, writeThrough.holdsNothingInNIO else { return false }
        guard var bytes = takePending() else { return socket?.isActive == true }
        if writeThrough.send(&bytes, channel: socket) {
            spare?.keep(consume bytes)
            return true
        }
        pending = bytes
        return false
    }

    /// Hands bytes to the channel, to go out at the next flush (counted while NIO holds them
    /// when the socket is also written directly).
    private mutating func hand(_ bytes: ByteBuffer, to context: ChannelHandlerContext,
                               promise: EventLoopPromise<Void>?) {
        context.write(NIOAny(bytes), promise: writeThrough?.track(promise, on: context) ?? promise)
        unflushed = true
    }

    /// The pending bytes, no longer referenced from here: written to in place, not copied
    /// (a second reference would make the next write copy the storage).
    private mutating func takePending() -> ByteBuffer? {
        pending.take()
    }

    private mutating func append(_ body: ByteBuffer, context: () -> ChannelHandlerContext?) {
        if body.readableBytes <= Self.coalesceLimit {
            if pending == nil { pending = allocator.buffer(capacity: max(body.readableBytes, 256)) }
            pending!.writeImmutableBuffer(body)
        } else {
            guard let context = context() else { return }
            write(context: context)
            hand(body, to: context, promise: nil)
        }
    }
}

/// One event loop's buffer for serialising heads, reused from message to message: two
/// allocations (storage object and bytes) saved per head.
///
/// A written buffer is kept here while the channel still holds it; `take` clears it for reuse,
/// which is free once the channel has written and released it (the usual case, as a flush
/// writes at once) and allocates fresh storage otherwise (`ByteBuffer.clear` never touches
/// storage it shares). Everything runs on the loop, so there is no locking.
final class SpareBuffer {
    /// A buffer that grew beyond this (a large coalesced body) is not kept.
    static let maxKept = 16_384
    private var buffer: ByteBuffer?

    /// Moved in and out, not copied: a copy is a retain of the storage and, when the copy
    /// goes, a release (two per head and two per flush).
    func take() -> ByteBuffer? {
        guard var bytes = buffer.take() else { return nil }
        bytes.clear()
        return bytes
    }

    func keep(_ bytes: consuming ByteBuffer) {
        if buffer == nil, bytes.capacity <= Self.maxKept { buffer = bytes }
    }
}

@available(*, unavailable)
extension SpareBuffer: Sendable {}

/// The incoming side's bytes not parsed yet (both codecs keep them the same way).
extension Optional where Wrapped == ByteBuffer {
    /// Adds a read to what waits to be parsed. The read is taken, not copied: the usual case,
    /// nothing waiting, keeps it as it is without a retain and a release.
    mutating func append(received bytes: consuming ByteBuffer) {
        if self == nil {
            self = bytes
        } else {
            self!.writeImmutableBuffer(bytes)
        }
    }

    /// Passes what waits on to the next handler and empties it: the codec is leaving the
    /// pipeline (a tunnel takes over), and those bytes are the tunnel's.
    mutating func handOver(to context: ChannelHandlerContext) {
        guard let bytes = self, bytes.readableBytes > 0 else { return }
        self = nil
        context.fireChannelRead(NIOAny(bytes))
    }
}
