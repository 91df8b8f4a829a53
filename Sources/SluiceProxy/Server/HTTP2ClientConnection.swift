import NIOCore
import NIOHTTP2

/// One client's HTTP/2 connection, as a whole: its streams are `DownstreamHandler`s, each on
/// its own stream channel; this handler, after `NIOHTTP2Handler` in the connection's pipeline,
/// keeps what belongs to the connection:
///
/// - **The idle timeout.** A connection with no stream open for `server.idleTimeout` (and one
///   that never opens a stream, or never finishes its preface) gets GOAWAY(NO_ERROR) naming the
///   last stream it opened, and is closed (RFC 9113 §9.1 permits closing idle connections; the
///   GOAWAY tells the client that no stream of its was lost). The loop's one idle sweep
///   (`OpenExchanges`) checks it, as it checks HTTP/1.1 connections.
/// - **Clients that stop taking data.** A connection whose socket has been unwritable (NIO
///   holding more than its high-water mark of output: the client stopped reading) for the idle
///   timeout is closed, as an HTTP/1.1 one is; a stream whose channel has been unwritable that
///   long (the client gives it no flow-control window, RFC 9113 §6.9) is reset with
///   RST_STREAM(CANCEL) and its exchange ends (recorded 499), freeing its upstream connection;
///   the connection's other streams go on. Checked by the same sweep.
/// - **The drain.** A shutdown sends the same GOAWAY, so the client opens no new stream here
///   (streams it opened meanwhile are refused by NIOHTTP2, safe to retry, §6.8); the streams
///   under way finish, and the connection closes when the last one has.
///
/// Streams are counted as they start (the connection's stream initializer) and end (their
/// `DownstreamHandler` is removed). NIOHTTP2's stream delegate would report both, but a
/// delegate costs ~45 retain/release calls per request: NIOHTTP2 copies the multiplexer that
/// holds it on every frame.
final class HTTP2ClientConnection: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame

    private let exchanges: OpenExchanges
    private let idleTimeout: TimeAmount
    /// The client's address as `x-forwarded-for` gives it, formatted once for all the streams.
    let clientAddress: String
    private var context: ChannelHandlerContext?
    private var openStreams = 0
    private var lastStreamID = HTTP2StreamID(0)
    /// When the last stream ended (or the connection began), while none is open.
    private var idleSince = NIODeadline.now()
    /// GOAWAY sent: closes when the last stream has ended.
    private var goingAway = false
    /// Since when the socket has been unwritable; nil while it is writable.
    private var stalledSince: NIODeadline?
    /// Streams whose channel has been unwritable since the time given (usually none: an entry
    /// lives only while a client is not taking a response's data).
    private var stalledStreams: [ObjectIdentifier: (stream: DownstreamHandler, since: NIODeadline)] = [:]

    init(exchanges: OpenExchanges, idleTimeout: TimeAmount, clientAddress: String) {
        self.exchanges = exchanges
        self.idleTimeout = idleTimeout
        self.clientAddress = clientAddress
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        idleSince = .now()
        exchanges.add(self, idleTimeout: idleTimeout)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        exchanges.remove(self)
        self.context = nil
    }

    /// A stream began (its `DownstreamHandler` is in place).
    func streamStarted(_ id: HTTP2StreamID?) {
        openStreams += 1
        if let id { lastStreamID = max(lastStreamID, id) }
    }

    /// A stream's `DownstreamHandler` was removed: the stream is over.
    func streamEnded(_ stream: DownstreamHandler) {
        if !stalledStreams.isEmpty { stalledStreams[ObjectIdentifier(stream)] = nil }
        openStreams -= 1
        guard openStreams == 0 else { return }
        idleSince = .now()
        if goingAway, let context { sendGoAwayAndClose(context: context) }
    }

    /// A stream's channel turned unwritable or writable again.
    func streamWritabilityChanged(_ stream: DownstreamHandler, isWritable: Bool) {
        stalledStreams[ObjectIdentifier(stream)] = isWritable ? nil : (stream, .now())
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        stalledSince = context.channel.isWritable ? nil : .now()
        context.fireChannelWritabilityChanged()
    }

    /// The loop's sweep: acts on whichever of the connection's timeouts has passed at `now`.
    /// A stalled socket: close (a GOAWAY could not be written). Stalled streams: reset. Idle:
    /// GOAWAY, then close.
    func checkTimeouts(at now: NIODeadline) {
        if let since = stalledSince, now - since >= idleTimeout {
            context?.close(promise: nil)
            return
        }
        for (key, entry) in stalledStreams where now - entry.since >= idleTimeout {
            stalledStreams[key] = nil
            entry.stream.resetStalled()
        }
        if openStreams == 0 && now - idleSince >= idleTimeout { goAway() }
    }

    /// A shutdown: NIOHTTP2 passes the event to every stream (each closes once its response is
    /// done) and on to this handler, which sends GOAWAY; the connection closes once its streams
    /// have ended.
    func quiesce() {
        context?.channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent { goAway() }
        context.fireUserInboundEventTriggered(event)
    }

    /// Closes the connection now (the end of a shutdown's drain).
    func close() {
        context?.close(promise: nil)
    }

    private func goAway() {
        guard let context, !goingAway else { return }
        goingAway = true
        if openStreams == 0 {
            sendGoAwayAndClose(context: context)
        } else {
            context.writeAndFlush(NIOAny(goAwayFrame), promise: nil)
        }
    }

    /// The final GOAWAY (RFC 9113 §6.8 allows several, none naming a higher stream), closing
    /// the connection once it is written: NIO completes writes in order, so every frame of the
    /// streams that ended is on the wire by then (a close would drop writes still queued).
    private func sendGoAwayAndClose(context: ChannelHandlerContext) {
        let written = context.eventLoop.makePromise(of: Void.self)
        written.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        context.writeAndFlush(NIOAny(goAwayFrame), promise: written)
    }

    private var goAwayFrame: HTTP2Frame {
        HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: lastStreamID, errorCode: .noError, opaqueData: nil))
    }
}

@available(*, unavailable)
extension HTTP2ClientConnection: Sendable {}
