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
///   frames back while the backend's SETTINGS_MAX_CONCURRENT_STREAMS are all in use. Response
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
/// - **Receiving flow control** (RFC 9113 §5.2, §6.9). The connection's window is given back as
///   DATA arrives; a stream's once half of it is used, but only while its exchange's client can
///   take more (`UpstreamDelegate.downstreamIsWritable`): a client that stops reading stops the
///   WINDOW_UPDATEs, so at most a window of the response waits in Sluice.
/// - **Sending flow control.** NIOHTTP2 holds DATA beyond the backend's windows; a stream is
///   unwritable while more than `HTTP2ClientConnection.highWater` of its request body waits so
///   (or of the connection's, or while the socket is unwritable), which stops reading the
///   client's body until the backend makes room. The windows are counted here from the frames.
/// - **The drain.** A connection the backend sent GOAWAY on, or that NIOHTTP2 gave up on (a
///   connection error; `HTTP2ConnectionErrorCloser` closes it once NIOHTTP2's GOAWAY is out),
///   takes no new stream; it closes once its last stream has ended.
///
/// Touched only on its channel's event loop.
final class HTTP2BackendConnection: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame
    typealias OutboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    let channel: Channel
    private var context: ChannelHandlerContext?
    private var streams: [HTTP2StreamID: StreamUpstreamHandler] = [:]
    /// Streams made and not ended (with an ID or still without one).
    private var openStreams = 0
    private var nextStreamID: HTTP2StreamID
    /// The backend sent GOAWAY, or the connection hit an error: no new stream goes here.
    private(set) var draining = false
    /// The lowest last stream ID of the backend's GOAWAYs (`maxID` before any).
    private var goAwayLastStreamID = HTTP2StreamID.maxID
    /// Streams given frames by the read in progress (each reports its read-complete).
    private var reading: [StreamUpstreamHandler] = []
    private var inRead = false
    private var needsFlush = false

    /// The backend's initial stream window (its SETTINGS_INITIAL_WINDOW_SIZE).
    private var backendInitialWindow = HTTP2ClientConnection.defaultWindow
    /// Room left in the backend's connection window (negative: that much waits in NIOHTTP2).
    private var connectionSendWindow = HTTP2ClientConnection.defaultWindow
    private var connectionSendable = true
    private var socketWritable = true
    /// DATA received since the connection's window was last given back.
    private var connectionReceived = 0

    /// `firstStreamID`: the ID of the connection's first stream (other than 1 only in tests).
    init(channel: Channel, firstStreamID: HTTP2StreamID = 1) {
        self.channel = channel
        self.nextStreamID = firstStreamID
    }

    /// Whether a new stream may go here.
    var usable: Bool { !draining && context != nil && channel.isActive }

    /// A new stream for one request; it starts when its first frame is written.
    func makeStream() -> StreamUpstreamHandler {
        openStreams += 1
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
        let id = frame.streamID
        inRead = true
        switch frame.payload {
        case .headers:
            guard let stream = streams[id] else { return }
            deliver(frame.payload, to: stream)
        case .data(let payload):
            let length = payload.data.readableBytes + (payload.paddingBytes.map { $0 + 1 } ?? 0)
            // Delivered before anything is written: a write makes NIOHTTP2 report the events it
            // holds, among them this frame's own StreamClosedEvent when it ends the stream, which
            // would end the stream here before its last frame reached it. (DATA for a stream
            // that ended here, a reset crossing the backend's frames, only counts.)
            if let stream = streams[id] {
                if !payload.endStream { stream.received += length }
                deliver(frame.payload, to: stream)
                if streams[id] === stream { giveBackWindow(stream, context: context) }
            }
            connectionReceived += length
            if connectionReceived >= HTTP2ClientConnection.defaultWindow / 2 {
                writeWindowUpdate(.rootStream, connectionReceived, context: context)
                connectionReceived = 0
            }
        case .windowUpdate(let increment):
            if id == .rootStream {
                connectionSendWindow += increment
                connectionWindowChanged()
            } else if let stream = streams[id] {
                stream.sendWindow += increment
                updateWritability(stream)
            }
        case .settings(.settings(let settings)):
            for setting in settings where setting.parameter == .initialWindowSize {
                let delta = setting.value - backendInitialWindow
                backendInitialWindow = setting.value
                for stream in Array(streams.values) {
                    stream.sendWindow += delta
                    updateWritability(stream)
                }
            }
        case .goAway(let lastStreamID, _, _):
            goAway(lastStreamID: lastStreamID)
        default:
            return
        }
    }

    private func deliver(_ payload: HTTP2Frame.FramePayload, to stream: StreamUpstreamHandler) {
        if !stream.inRead {
            stream.inRead = true
            reading.append(stream)
        }
        stream.receive(payload)
    }

    /// Gives the stream's window back once half of it is used, unless its client cannot take
    /// more now (then `resume` does, when it can).
    private func giveBackWindow(_ stream: StreamUpstreamHandler, context: ChannelHandlerContext) {
        guard stream.received >= HTTP2ClientConnection.defaultWindow / 2 else { return }
        if let delegate = stream.delegate, !delegate.downstreamIsWritable {
            stream.readPending = true
            return
        }
        giveBackReceived(stream, context: context)
    }

    /// A stream whose client drained can take more of its response.
    func resume(_ stream: StreamUpstreamHandler) {
        guard let context, let id = stream.streamID, streams[id] === stream, stream.received > 0 else { return }
        giveBackReceived(stream, context: context)
        if !inRead {
            needsFlush = false
            context.flush()
        }
    }

    private func giveBackReceived(_ stream: StreamUpstreamHandler, context: ChannelHandlerContext) {
        guard let id = stream.streamID else { return }
        writeWindowUpdate(id, stream.received, context: context)
        stream.received = 0
    }

    private func writeWindowUpdate(_ id: HTTP2StreamID, _ increment: Int, context: ChannelHandlerContext) {
        context.write(wrapOutboundOut(HTTP2Frame(streamID: id, payload: .windowUpdate(windowSizeIncrement: increment))),
                      promise: nil)
        needsFlush = true
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        inRead = false
        if !reading.isEmpty {
            let done = reading
            reading.removeAll(keepingCapacity: true)
            for stream in done {
                stream.inRead = false
                stream.readComplete()
            }
        }
        if needsFlush {
            needsFlush = false
            context.flush()
        }
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
            stream.sendWindow = backendInitialWindow
            streams[id] = stream
        }
        guard let context else { return false }
        if case .data(let data) = payload {
            let length = data.data.readableBytes
            stream.sendWindow -= length
            connectionSendWindow -= length
            updateWritability(stream)
            connectionWindowChanged()
        }
        context.write(wrapOutboundOut(HTTP2Frame(streamID: id, payload: payload)), promise: nil)
        return true
    }

    func flush() {
        needsFlush = false
        context?.flush()
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
        stream.sendable && connectionSendable && socketWritable
    }

    private func updateWritability(_ stream: StreamUpstreamHandler) {
        let sendable = HTTP2ClientConnection.sendable(window: stream.sendWindow, wasSendable: stream.sendable)
        guard sendable != stream.sendable else { return }
        let before = isWritable(stream)
        stream.sendable = sendable
        let after = isWritable(stream)
        if before != after { stream.writabilityChanged(after) }
    }

    private func connectionWindowChanged() {
        let sendable = HTTP2ClientConnection.sendable(window: connectionSendWindow, wasSendable: connectionSendable)
        guard sendable != connectionSendable else { return }
        let before = connectionSendable && socketWritable
        connectionSendable = sendable
        allStreamsWritabilityChanged(before: before)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        let before = connectionSendable && socketWritable
        socketWritable = context.channel.isWritable
        allStreamsWritabilityChanged(before: before)
        context.fireChannelWritabilityChanged()
    }

    private func allStreamsWritabilityChanged(before connectionWasOpen: Bool) {
        let open = connectionSendable && socketWritable
        guard open != connectionWasOpen else { return }
        for stream in Array(streams.values) where stream.sendable {
            stream.writabilityChanged(open)
        }
    }

    // MARK: Streams ending

    private func end(_ stream: StreamUpstreamHandler) {
        guard !stream.ended else { return }
        stream.ended = true
        if let id = stream.streamID, streams[id] === stream { streams[id] = nil }
        openStreams -= 1
        closeIfDrained()
    }

    private func endAllStreams() {
        draining = true
        guard !streams.isEmpty else { return }
        let all = Array(streams.values)
        streams.removeAll()
        for stream in all {
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
        for (id, stream) in streams where id > lastStreamID && !stream.ended {
            end(stream)
            stream.closed(refused: true)
        }
        closeIfDrained()
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

