import NIOCore
import NIOHTTP2

/// One HTTP/2 connection to a backend (`protocol: h2`) and its streams, right after
/// `NIOHTTP2Handler` (client mode, no multiplexer) in the connection's pipeline: the backend
/// side's counterpart of `HTTP2ClientConnection`. Each request is a `StreamUpstreamHandler`
/// held here, not a stream channel: NIOHTTP2's multiplexer made, activated and tore down a
/// child channel with a pipeline of its own per request, and routed every frame through it.
/// What that child channel did is done here:
///
/// - **Streams.** A stream takes its ID when its first frame (the request's HEADERS) is
///   written, so IDs go out in increasing order (RFC 9113 §5.1.1); NIOHTTP2 holds a stream's
///   frames back while the backend's SETTINGS_MAX_CONCURRENT_STREAMS are all in use (the pool
///   opens another connection rather than queue here, within its limit: `hasRoom`). Response
///   frames go to their stream (`StreamUpstreamHandler.receive`). A stream ends when NIOHTTP2
///   reports it closed (`StreamClosedEvent`: both ends finished, or a reset), when its exchange
///   lets it go (`release`: a stream whose request or response is unfinished is reset with
///   CANCEL; a finished one is not, since servers count resets: NIO's sends GOAWAY after 200
///   in 30 s, and "rapid reset" defences, CVE-2023-44487, do the like), or with the connection.
/// - **Refused requests.** The backend processed no stream above the last stream ID of its
///   GOAWAY, nor one it reset with REFUSED_STREAM (RFC 9113 §8.7): such a stream's request is
///   marked `refused`, and its exchange sends it again on a new connection whatever its method.
///   Streams whose HEADERS NIOHTTP2 still held back when the GOAWAY came are among them (they
///   have IDs above it).
/// - **Flow control** in both directions (`HTTP2Streams`, shared with the client side). A
///   stream's window is given back only while its exchange's client can take more
///   (`UpstreamDelegate.downstreamIsWritable`): a client that stops reading stops the
///   WINDOW_UPDATEs, so at most a window of the response waits in Sluice. A stream is
///   unwritable while more than `HTTP2Window.highWater` of its request body waits for the
///   backend's windows, which stops reading the client's body until the backend makes room.
/// - **The drain.** A connection the backend sent GOAWAY on, or that NIOHTTP2 gave up on (a
///   connection error; `HTTP2ConnectionErrorCloser` closes it once NIOHTTP2's GOAWAY is out),
///   takes no new stream; it closes once its last stream has ended. One with no stream open for
///   its backend's `idleTimeout` sends GOAWAY and closes (`closeIdle`, from the pool's sweep).
///
/// Touched only on its channel's event loop.
final class HTTP2BackendConnection: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame
    typealias OutboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    let channel: Channel
    private var context: ChannelHandlerContext?
    private let streams = HTTP2Streams<StreamUpstreamHandler>()
    /// Streams made and not ended (with an ID or still without one).
    private(set) var openStreams = 0
    private var nextStreamID: HTTP2StreamID
    /// The backend sent GOAWAY, or the connection hit an error: no new stream goes here.
    private(set) var draining = false
    /// The lowest last stream ID of the backend's GOAWAYs (`maxID` before any).
    private var goAwayLastStreamID = HTTP2StreamID.maxID

    /// `firstStreamID`: the ID of the connection's first stream (other than 1 only in tests).
    init(channel: Channel, firstStreamID: HTTP2StreamID = 1) {
        self.channel = channel
        self.nextStreamID = firstStreamID
    }

    /// Whether a new stream may go here.
    var usable: Bool { !draining && context != nil && channel.isActive }

    /// The backend's SETTINGS_MAX_CONCURRENT_STREAMS, or what NIOHTTP2 assumes until its
    /// SETTINGS come.
    private var maxConcurrentStreams = HTTP2BackendConnection.assumedMaxConcurrentStreams
    static let assumedMaxConcurrentStreams = 100
    /// Whether a new stream would start now rather than wait for one to end.
    var hasRoom: Bool { openStreams < maxConcurrentStreams }

    /// While no stream is open: when the pool's idle sweep first found it so.
    var idleSince: NIODeadline?

    /// A new stream for one request; it starts when its first frame is written.
    func makeStream() -> StreamUpstreamHandler {
        openStreams += 1
        idleSince = nil
        return StreamUpstreamHandler(connection: self)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        endAllStreams()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.context = nil
        endAllStreams()
        context.fireChannelInactive()
    }

    // MARK: Frames in

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.payload {
        case .headers:
            guard let stream = streams[frame.streamID] else { return }
            streams.deliver(frame.payload, to: stream)
        case .goAway(let lastStreamID, _, _):
            goAway(lastStreamID: lastStreamID)
        case .settings(.settings(let settings)):
            for setting in settings where setting.parameter == .maxConcurrentStreams {
                maxConcurrentStreams = setting.value
            }
            streams.receive(frame, context: context)
        default:
            streams.receive(frame, context: context)
        }
    }

    /// A stream whose client drained can take more of its response.
    func resume(_ stream: StreamUpstreamHandler) {
        guard let context, let id = stream.streamID else { return }
        streams.resume(stream, id: id, context: context)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        streams.readComplete(context: context)
        context.fireChannelReadComplete()
    }

    /// Stream errors are NIOHTTP2's to answer (it resets the stream, and its `StreamClosedEvent`
    /// ends it here); any other error drains the connection: the streams under way finish, the
    /// next request opens a new connection. (NIOHTTP2 answers a connection error with a GOAWAY
    /// of its own, and `HTTP2ConnectionErrorCloser` then closes the connection, RFC 9113
    /// §5.4.1; an error that sent no GOAWAY, such as a frame of Sluice's it could not encode,
    /// leaves the connection open to its streams.)
    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if error is NIOHTTP2Errors.StreamError { return }
        drain()
    }

    /// Events told apart by their type's identity first (`HTTP2ClientConnection` says why).
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        let type = ObjectIdentifier(Swift.type(of: event))
        if type == Self.windowUpdated || type == Self.streamCreated { return }
        if type == Self.streamClosed, let closed = event as? StreamClosedEvent {
            if let stream = streams[closed.streamID] {
                end(stream)
                stream.closed(refused: closed.reason == .refusedStream || closed.streamID > goAwayLastStreamID)
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    private static let windowUpdated = ObjectIdentifier(NIOHTTP2WindowUpdatedEvent.self)
    private static let streamCreated = ObjectIdentifier(NIOHTTP2StreamCreatedEvent.self)
    private static let streamClosed = ObjectIdentifier(StreamClosedEvent.self)

    // MARK: Frames out

    /// A frame of `stream` (not flushed). The first gives the stream its ID; DATA counts
    /// against the backend's windows. False when the frame cannot go out: the connection has
    /// closed, or, for a stream not started, is draining (the stream is ended here, and its
    /// request never reached the backend).
    func write(_ payload: HTTP2Frame.FramePayload, of stream: StreamUpstreamHandler) -> Bool {
        let id: HTTP2StreamID
        if let started = stream.streamID {
            id = started
        } else {
            guard context != nil, !draining else {
                end(stream)
                return false
            }
            id = nextStreamID
            // Stream IDs are 31 bits and never reused (RFC 9113 §5.1.1): a connection that has
            // given its last one (after about a billion requests, some hours at full speed)
            // drains, and the next request opens a new connection.
            if Int32(id) > Int32.max - 2 {
                draining = true
            } else {
                nextStreamID = HTTP2StreamID(Int32(id) + 2)
            }
            stream.streamID = id
            streams.add(stream, id: id)
        }
        guard let context else { return false }
        if case .data(let data) = payload { streams.dataWritten(data.data.readableBytes, by: stream) }
        context.write(wrapOutboundOut(HTTP2Frame(streamID: id, payload: payload)), promise: nil)
        return true
    }

    func flush() {
        if let context { streams.flush(context: context) }
    }

    /// The exchange is done with `stream`. One whose request and response both ended closes by
    /// itself (NIOHTTP2 reports it); any other is reset with CANCEL (an early response, a
    /// timeout, a client that left), or, never started, just dropped.
    func release(_ stream: StreamUpstreamHandler) {
        guard !stream.ended else { return }
        end(stream)
        if let id = stream.streamID, !(stream.requestEnded && stream.responseEnded), let context {
            context.writeAndFlush(wrapOutboundOut(HTTP2Frame(streamID: id, payload: .rstStream(.cancel))), promise: nil)
        }
    }

    /// Whether `stream` may be given more of its request body now.
    func isWritable(_ stream: StreamUpstreamHandler) -> Bool {
        streams.isWritable(stream)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        streams.socketWritabilityChanged(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    // MARK: Streams ending

    private func end(_ stream: StreamUpstreamHandler) {
        guard !stream.ended else { return }
        stream.ended = true
        if let id = stream.streamID { streams.remove(stream, id: id) }
        openStreams -= 1
        closeIfDrained()
    }

    private func endAllStreams() {
        draining = true
        for stream in streams.removeAll() {
            stream.ended = true
            openStreams -= 1
            stream.closed(refused: stream.streamID.map { $0 > goAwayLastStreamID } ?? false)
        }
    }

    /// The backend's GOAWAY: streams above `lastStreamID` were not processed (NIOHTTP2 drops
    /// those it knows of; the ones whose HEADERS it still held back are ended here as well).
    private func goAway(lastStreamID: HTTP2StreamID) {
        goAwayLastStreamID = min(goAwayLastStreamID, lastStreamID)
        draining = true
        for stream in streams.streams(above: lastStreamID) where !stream.ended {
            end(stream)
            stream.closed(refused: true)
        }
        closeIfDrained()
    }

    /// The pool's idle timeout (no stream open): a GOAWAY, then the close (RFC 9113 §6.8; last
    /// stream ID 0, since a client accepts no streams of the server's).
    func closeIdle() {
        guard let context, openStreams == 0 else { return }
        draining = true
        context.sendGoAwayAndClose(lastStreamID: .rootStream)
    }

    /// No new stream goes here; the connection closes once its last stream has ended.
    private func drain() {
        draining = true
        closeIfDrained()
    }

    private func closeIfDrained() {
        if draining && openStreams == 0 { context?.close(promise: nil) }
    }
}

@available(*, unavailable)
extension HTTP2BackendConnection: Sendable {}

