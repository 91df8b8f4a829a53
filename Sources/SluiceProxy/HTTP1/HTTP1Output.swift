import NIOCore
import NIOHTTP1

/// The outgoing side of one HTTP/1.1 connection (used by both codecs, towards clients and
/// towards backends): frames body parts as the head decided and coalesces small writes.
///
/// A head and body parts up to `coalesceLimit` bytes are copied into one pending buffer that
/// goes out at the next flush — one `writev` entry instead of three for a typical small
/// response. Larger parts are handed to the channel as they are (no copy).
struct HTTP1Output {
    static let coalesceLimit = 4096

    private(set) var framing = BodyFraming.none
    private var pending: ByteBuffer?

    /// Serialises a head with `write` (which returns the body's framing) into the pending bytes.
    /// `framesBody: false` for an interim response (100 Continue), which frames nothing.
    mutating func head(allocator: ByteBufferAllocator, framesBody: Bool = true,
                       _ write: (inout ByteBuffer) -> BodyFraming) {
        var buffer = pending ?? allocator.buffer(capacity: 512)
        let framing = write(&buffer)
        pending = buffer
        if framesBody { self.framing = framing }
    }

    /// One body part; `emit` receives bytes that must be written before it (and large parts).
    mutating func body(_ body: ByteBuffer, allocator: ByteBufferAllocator, emit: (ByteBuffer) -> Void) {
        switch framing {
        case .none:
            return
        case .raw:
            append(body, allocator: allocator, emit: emit)
        case .chunked:
            guard body.readableBytes > 0 else { return }
            var prefix = pending ?? allocator.buffer(capacity: 16)
            HTTP1Writer.writeChunkHeader(size: body.readableBytes, into: &prefix)
            pending = prefix
            append(body, allocator: allocator, emit: emit)
            var suffix = pending ?? allocator.buffer(capacity: 16)
            suffix.writeStaticString("\r\n")
            pending = suffix
        }
    }

    /// The end of the message: the last chunk and trailers when chunked.
    mutating func end(_ trailers: HTTPHeaders?, allocator: ByteBufferAllocator) {
        if framing == .chunked {
            var buffer = pending ?? allocator.buffer(capacity: 8)
            HTTP1Writer.writeLastChunk(trailers: trailers, into: &buffer)
            pending = buffer
        }
        framing = .none
    }

    /// The bytes waiting to be written, if any (they are no longer pending).
    mutating func take() -> ByteBuffer? {
        defer { pending = nil }
        return pending
    }

    private mutating func append(_ body: ByteBuffer, allocator: ByteBufferAllocator, emit: (ByteBuffer) -> Void) {
        if body.readableBytes <= Self.coalesceLimit {
            if pending == nil { pending = allocator.buffer(capacity: max(body.readableBytes, 256)) }
            pending!.writeImmutableBuffer(body)
        } else {
            if let pending = take() { emit(pending) }
            emit(body)
        }
    }
}
