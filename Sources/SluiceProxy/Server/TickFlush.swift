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
/// connection's own drain, reach the peer. Sits just above the socket (or TLS: then the
/// frames of a tick are encrypted as one run of records) and below `NIOHTTP2Handler`.
final class TickFlush: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = NIOAny

    private var context: ChannelHandlerContext?
    /// A flush arrived in this tick and the task that passes it on is queued.
    private var pending = false

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        flushPending()
        self.context = nil
    }

    func flush(context: ChannelHandlerContext) {
        guard !pending else { return }
        pending = true
        context.eventLoop.assumeIsolated().execute { self.flushPending() }
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        flushPending()
        context.close(mode: mode, promise: promise)
    }

    private func flushPending() {
        guard pending else { return }
        pending = false
        context?.flush()
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
