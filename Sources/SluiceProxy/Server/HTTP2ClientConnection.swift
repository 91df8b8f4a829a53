import NIOCore
import NIOHTTP2

/// One client's HTTP/2 connection and its streams, right after `NIOHTTP2Handler` (which parses
/// and checks the frames and keeps the protocol's state machines) in the connection's pipeline.
/// Each stream is a `DownstreamHandler` held here, not a channel: NIOHTTP2's multiplexer would
/// make, activate and tear down a child channel with its own pipeline per request (~30k
/// instructions of a ~100k request), and route every frame through it. What that child channel
/// did for a stream is done here instead:
///
/// - **Frames in and out.** A stream's frames go to its exchange (`receiveFrame`); what the
///   exchange sends is written as frames of its stream (`write`). Streams begin with the
///   client's HEADERS and end when NIOHTTP2 reports them closed (`StreamClosedEvent`: both
///   ends finished, a reset from either side, or the connection gone); an exchange whose
///   stream ends mid-request is recorded as the client's leaving (499).
/// - **Flow control** in both directions (`HTTP2Streams`, shared with the backend side). A
///   stream's window is given back only while its exchange can pass the body on (`holdsRead`):
///   a backend being connected to or not taking more stops the WINDOW_UPDATEs, and so the
///   client, with at most one window buffered. A stream is unwritable while more than
///   `HTTP2Window.highWater` of its response waits for the client's windows, which stops
///   reading its backend until the client makes room.
///
/// And what belongs to the connection:
///
/// - **The idle timeout.** A connection with no stream open for `server.idleTimeout` (and one
///   that never opens a stream, or never finishes its preface) gets GOAWAY(NO_ERROR) naming the
///   last stream it opened, and is closed (RFC 9113 §9.1 permits closing idle connections; the
///   GOAWAY tells the client that no stream of its was lost). The loop's one idle sweep
///   (`OpenExchanges`) checks it, as it checks HTTP/1.1 connections.
/// - **Clients that stop taking data.** A connection whose socket has been unwritable (NIO
///   holding more than its high-water mark of output: the client stopped reading) for the idle
///   timeout is closed, as an HTTP/1.1 one is; a stream that has been unwritable that long (the
///   client gives it no flow-control window, §6.9) is reset with RST_STREAM(CANCEL) and its
///   exchange ends (recorded 499), freeing its upstream connection; the connection's other
///   streams go on. Checked by the same sweep.
/// - **The drain.** A shutdown sends the same GOAWAY, so the client opens no new stream here
///   (streams it opened meanwhile are refused by NIOHTTP2, safe to retry, §6.8); the streams
///   under way finish, and the connection closes when the last one has.
final class HTTP2ClientConnection: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame
    typealias OutboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    private let loop: LoopContext
    private let store: SnapshotStore
    private let scheme: String
    private let exchanges: OpenExchanges
    private let idleTimeout: TimeAmount
    /// The client's address as `x-forwarded-for` gives it, formatted once for all the streams.
    let clientAddress: String
    private var context: ChannelHandlerContext?
    private let streams = HTTP2Streams<DownstreamHandler>()
    private var lastStreamID = HTTP2StreamID(0)
    /// When the last stream ended (or the connection began), while none is open.
    private var idleSince = NIODeadline.now()
    /// GOAWAY sent: closes when the last stream has ended.
    private var goingAway = false

    init(loop: LoopContext, store: SnapshotStore, scheme: String, idleTimeout: TimeAmount, clientAddress: String) {
        self.loop = loop
        self.store = store
        self.scheme = scheme
        self.exchanges = loop.exchanges
        self.idleTimeout = idleTimeout
        self.clientAddress = clientAddress
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        idleSince = .now()
        exchanges.add(self, idleTimeout: idleTimeout)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        endAllStreams()
        exchanges.remove(self)
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        endAllStreams()
        context.fireChannelInactive()
    }

    // MARK: Frames in

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        if case .headers = frame.payload {
            let exchange = streams[frame.streamID] ?? openStream(frame.streamID, context: context)
            streams.deliver(frame.payload, to: exchange)
        } else {
            streams.receive(frame, context: context)
        }
    }

    /// The client's HEADERS opened a stream (NIOHTTP2 has checked that it may).
    private func openStream(_ id: HTTP2StreamID, context: ChannelHandlerContext) -> DownstreamHandler {
        let exchange = DownstreamHandler(loop: loop, store: store, scheme: scheme, connection: self, stream: id)
        exchange.context = context
        streams.add(exchange, id: id)
        lastStreamID = max(lastStreamID, id)
        return exchange
    }

    /// An exchange that held its body back can take more (`DownstreamHandler.resumeRead`).
    func resume(_ exchange: DownstreamHandler) {
        guard let context else { return }
        streams.resume(exchange, id: exchange.streamID, context: context)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        streams.readComplete(context: context)
        context.fireChannelReadComplete()
    }

    /// Stream errors are NIOHTTP2's to answer (it resets the stream, and its `StreamClosedEvent`
    /// ends the exchange); connection errors close the connection (`HTTP2ConnectionErrorCloser`).
    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if error is NIOHTTP2Errors.StreamError { return }
        context.fireErrorCaught(error)
    }

    /// NIOHTTP2 reports six or so events per request; each is told apart by its type's identity
    /// first (`as?` on an `Any` is a dynamic cast: ~300 instructions each, ~1.9k a request).
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        let type = ObjectIdentifier(Swift.type(of: event))
        if type == Self.windowUpdated || type == Self.streamCreated { return }
        if type == Self.streamClosed, let closed = event as? StreamClosedEvent {
            if let exchange = streams[closed.streamID] { endStream(exchange) }
            return
        }
        if event is ChannelShouldQuiesceEvent { goAway() }
        context.fireUserInboundEventTriggered(event)
    }

    private static let windowUpdated = ObjectIdentifier(NIOHTTP2WindowUpdatedEvent.self)
    private static let streamCreated = ObjectIdentifier(NIOHTTP2StreamCreatedEvent.self)
    private static let streamClosed = ObjectIdentifier(StreamClosedEvent.self)

    // MARK: Frames out

    /// A frame of `exchange`'s stream (not flushed); DATA counts against the client's windows.
    func write(_ payload: HTTP2Frame.FramePayload, of exchange: DownstreamHandler, promise: EventLoopPromise<Void>? = nil) {
        guard let context else { return }
        if case .data(let data) = payload { streams.dataWritten(data.data.readableBytes, by: exchange) }
        context.write(wrapOutboundOut(HTTP2Frame(streamID: exchange.streamID, payload: payload)), promise: promise)
    }

    /// The frame that ends `exchange`'s response, flushed; with `reset`, and the client's request
    /// not yet all received, RST_STREAM(NO_ERROR) follows once it is out: the response is
    /// complete, and the client may stop sending (RFC 9113 §8.1).
    func writeEnd(_ payload: HTTP2Frame.FramePayload, of exchange: DownstreamHandler, reset: Bool) {
        guard let context else { return }
        var written: EventLoopPromise<Void>?
        if reset {
            written = context.eventLoop.makePromise(of: Void.self)
            written?.futureResult.assumeIsolated().whenSuccess { [self] in
                if streams[exchange.streamID] === exchange { self.reset(exchange, .noError) }
            }
        }
        write(payload, of: exchange, promise: written)
        context.flush()
    }

    func flush() {
        context?.flush()
    }

    /// Resets `exchange`'s stream (NIOHTTP2's `StreamClosedEvent` for it ends the exchange; if
    /// the stream had already closed, it ends here).
    func reset(_ exchange: DownstreamHandler, _ code: HTTP2ErrorCode) {
        guard let context, streams[exchange.streamID] === exchange else { return }
        context.writeAndFlush(wrapOutboundOut(HTTP2Frame(streamID: exchange.streamID, payload: .rstStream(code))),
                              promise: nil)
        if streams[exchange.streamID] === exchange { endStream(exchange) }
    }

    /// Whether `exchange` may be given more of its response now.
    func isWritable(_ exchange: DownstreamHandler) -> Bool {
        streams.isWritable(exchange)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        streams.socketWritabilityChanged(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    // MARK: Streams ending

    private func endStream(_ exchange: DownstreamHandler) {
        streams.remove(exchange, id: exchange.streamID)
        exchange.streamClosed()
        guard streams.isEmpty else { return }
        idleSince = .now()
        if goingAway, let context { context.sendGoAwayAndClose(lastStreamID: lastStreamID) }
    }

    private func endAllStreams() {
        for exchange in streams.removeAll() { exchange.streamClosed() }
    }

    // MARK: Timeouts and the drain

    /// The loop's sweep: acts on whichever of the connection's timeouts has passed at `now`.
    /// A stalled socket: close (a GOAWAY could not be written). Stalled streams: reset. Idle:
    /// GOAWAY, then close.
    func checkTimeouts(at now: NIODeadline) {
        if let since = streams.socketStalledSince, now - since >= idleTimeout {
            context?.close(promise: nil)
            return
        }
        for exchange in streams.streams(stalledFor: idleTimeout, at: now) {
            exchange.window.stalledSince = nil
            exchange.resetStalled()
        }
        if streams.isEmpty && now - idleSince >= idleTimeout { goAway() }
    }

    /// A shutdown: GOAWAY; the connection closes once its streams have ended.
    func quiesce() {
        goAway()
    }

    /// Closes the connection now (the end of a shutdown's drain).
    func close() {
        context?.close(promise: nil)
    }

    private func goAway() {
        guard let context, !goingAway else { return }
        goingAway = true
        if streams.isEmpty {
            context.sendGoAwayAndClose(lastStreamID: lastStreamID)
        } else {
            // The last streams finish first; the final GOAWAY goes with the close (`endStream`;
            // RFC 9113 §6.8 allows several, none naming a higher stream).
            context.writeAndFlush(wrapOutboundOut(.goAway(lastStreamID: lastStreamID)), promise: nil)
        }
    }
}

@available(*, unavailable)
extension HTTP2ClientConnection: Sendable {}
