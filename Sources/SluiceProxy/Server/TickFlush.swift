import NIOCore

/// Holds an HTTP/2 connection's flushes until the end of the event loop's tick, so that the
/// frames of every stream that wrote in this tick leave in one system call.
///
/// Each stream of a connection flushes on its own: a response's last frame is flushed when its
/// upstream's read ends it, and NIOHTTP2 passes every stream's flush down as a flush of the
/// socket. A client with ten streams under way whose ten upstreams answer in the same tick
/// (they are read one after the other in the same pass over the ready sockets) was sent its
/// responses in ten `writev` calls, one per stream; with this handler, in one. NIO runs the
/// tasks queued with `execute` after it has handled the tick's I/O events, so the flush
/// follows all of them; nginx batches the same way (its HTTP/2 writes go out at the end of
/// its event handling).
///
/// A close passing through flushes first, so nothing written before it is dropped (a close
/// fails the writes that were not flushed): NIOHTTP2's GOAWAY before a close, and the
/// connection's own drain, reach the peer. Sits just above the socket (or TLS) and below
/// `NIOHTTP2Handler`.
///
/// It also gathers the tick's small writes into one buffer. NIOHTTP2 writes every frame as a
/// buffer of its own (a DATA frame as two: its header, then its payload). Over TLS,
/// swift-nio-ssl made each write a TLS record of its own, so a small response went out as
/// three or more records, each sealed, framed and sent with its own 22 bytes of overhead and
/// each opened by the client; gathered, a tick's frames become one record per 16 KiB. On a
/// cleartext socket, copying the bytes costs less than NIO's bookkeeping of each buffer in
/// its pending writes and `writev`. A write of `passThrough` bytes or more (a large DATA
/// payload) is not copied: the gathered bytes go first, then it.
final class TickFlush: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    /// A TLS record's most plaintext (RFC 8446 §5.1): a gathered buffer goes on at that size.
    static let recordBytes = 16_384
    static let passThrough = 4_096

    private var context: ChannelHandlerContext?
    /// A flush arrived in this tick and the task that passes it on is queued.
    private var pending = false
    private let coalescesWrites: Bool
    /// The writes gathered since the last one passed on, and their promises.
    private var gathered: ByteBuffer?
    private var gatheredPromises: [EventLoopPromise<Void>] = []

    /// `coalescesWrites`: off only in tests of the flushes alone.
    init(coalescesWrites: Bool = true) {
        self.coalescesWrites = coalescesWrites
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        passGathered(context)
        flushPending()
        self.context = nil
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard coalescesWrites, case .byteBuffer(var bytes) = unwrapOutboundIn(data),
              bytes.readableBytes < Self.passThrough else {
            passGathered(context)
            context.write(data, promise: promise)
            return
        }
        if gathered == nil {
            gathered = context.channel.allocator.buffer(capacity: Self.recordBytes)
        }
        gathered!.writeBuffer(&bytes)
        if let promise { gatheredPromises.append(promise) }
        if gathered!.readableBytes >= Self.recordBytes { passGathered(context) }
    }

    /// Passes the gathered writes on as one (not flushed).
    private func passGathered(_ context: ChannelHandlerContext) {
        guard let bytes = gathered.take() else { return }
        if gatheredPromises.isEmpty {
            context.write(wrapOutboundOut(.byteBuffer(bytes)), promise: nil)
            return
        }
        let promises = gatheredPromises
        gatheredPromises.removeAll()
        let written = context.eventLoop.makePromise(of: Void.self)
        written.futureResult.assumeIsolated().whenComplete { result in
            for promise in promises { promise.completeWith(result) }
        }
        context.write(wrapOutboundOut(.byteBuffer(bytes)), promise: written)
    }

    func flush(context: ChannelHandlerContext) {
        guard !pending else { return }
        pending = true
        context.eventLoop.assumeIsolated().execute { self.flushPending() }
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        // Gathered writes go on before the close, flushed only if a flush asked for them (a
        // close fails the writes not flushed, as it would have without this handler).
        passGathered(context)
        flushPending()
        context.close(mode: mode, promise: promise)
    }

    private func flushPending() {
        guard pending, let context else { return }
        pending = false
        passGathered(context)
        context.flush()
    }
}

@available(*, unavailable)
extension TickFlush: Sendable {}

extension ChannelPipeline.SynchronousOperations {
    /// The handlers every HTTP/2 connection, to a client or to a backend, has between its socket
    /// (or TLS) and `NIOHTTP2Handler`, in order: `HTTP2ConnectionErrorCloser` (it must see the
    /// bytes NIOHTTP2 writes, RFC 9113 §5.4.1) and `TickFlush`. `prefaceBytes`: the client
    /// preface written before the first frame (24 on a connection to a backend, none from a client).
    func addHTTP2ConnectionHandlers(prefaceBytes: Int = 0) throws {
        try addHandler(HTTP2ConnectionErrorCloser(prefaceBytes: prefaceBytes), name: "error-close")
        try addHandler(TickFlush(), name: "tick-flush")
    }
}
