import NIOCore
import NIOHTTP1
import NIOHTTP2

/// What an upstream connection reports to the request that currently leases it.
///
/// Implemented by `DownstreamHandler`: one downstream connection has at most one request in
/// flight, so it is the exchange. All calls happen on the shared event loop.
protocol UpstreamDelegate: AnyObject {
    func upstreamResponseHead(_ head: ResponseHead)
    func upstreamResponseBody(_ body: ByteBuffer)
    func upstreamResponseEnd(_ trailers: HTTPHeaders?)
    func upstreamReadComplete()
    func upstreamFailed(_ reason: UpstreamFailure)
    func upstreamWritabilityChanged(isWritable: Bool)
    /// Whether the downstream side can take more bytes now; upstream reads wait while it cannot.
    var downstreamIsWritable: Bool { get }
}

/// Why an upstream exchange failed; the raw value is the metrics `reason` label.
enum UpstreamFailure: String, Error {
    case connect
    case timeout
    case reset
    case protocolError = "protocol"
}

/// One request's way to a backend (proxy → backend), in two kinds:
/// - `HTTP1UpstreamHandler`, the last handler of an HTTP/1.1 connection: it is the codec itself
///   (the same `HTTP1Parser` and `HTTP1Writer` as the client side), so no `NIOAny`-boxed parts
///   travel between handlers on the hot path;
/// - `StreamUpstreamHandler`, an HTTP/2 stream held by its `HTTP2BackendConnection`, converting
///   its frames itself (`HTTP2StreamParts`).
///
/// Both forward the response to their current delegate (the request leasing the connection)
/// and apply backpressure in the other direction while the downstream connection is not
/// writable: the channel stops reading, or the stream's window is not given back. This base
/// holds what they share; it is not a handler by itself.
class UpstreamHandler {
    /// The request leasing this connection; nil while the connection idles in the pool.
    ///
    /// Strong, not weak (a weak load costs a side-table lookup and a retain, several times a
    /// response): the lease is always ended by clearing it — released to the pool, abandoned,
    /// failed, timed out, turned into a tunnel, or the channel closed (`connectionClosed`) — and
    /// that breaks the exchange → connection → delegate cycle.
    final var delegate: UpstreamDelegate? {
        didSet { delegateChanges &+= 1 }
    }
    /// Counts changes of `delegate`, so that a read delivering several parts of a response
    /// binds the delegate once and again only after it changed (each load of the property is
    /// a retain and a release, atomic operations both).
    final private(set) var delegateChanges = 0
    /// The pool that holds this connection while it idles; told when the channel closes.
    /// `unowned(unsafe)`: a pool lives as long as its event loop, longer than any connection.
    final unowned(unsafe) var pool: UpstreamPool?
    /// The connection's endpoint, for the pool's bookkeeping.
    final var address: SocketAddress?
    final var readPending = false
    final var context: ChannelHandlerContext?
    /// The backend declined the request without processing it: an HTTP/2 stream it reset with
    /// REFUSED_STREAM, or one above the last stream ID of its GOAWAY. RFC 9113 §8.7 lets any
    /// such request, whatever its method, go again (`DownstreamHandler.sendAgain`).
    final var refused = false

    /// Queues a request part (sent at the next `flush`).
    func send(_ part: HTTPClientRequestPart) { preconditionFailure("overridden") }

    /// Queues a request head built from a client's head (both kinds write it their own way).
    func sendHead(_ request: UpstreamRequest) { preconditionFailure("overridden") }
    func flush() { context?.flush() }

    /// The downstream side drained: resume reading the response. True when a read was held
    /// back and now goes ahead.
    @discardableResult
    func resumeReading() -> Bool {
        guard readPending, let context else { return false }
        readPending = false
        read(context)
        return true
    }

    /// The socket channel, when the handler is its only one (HTTP/1.1 to a backend; not an
    /// HTTP/2 stream behind its codec, nor a test's embedded channel): reads go straight to it
    /// (`OwnedSocket`).
    final let socketChannel: Channel?
    private final let socketCore: ChannelCore?

    init(socket: OwnedSocket? = nil) {
        socketChannel = socket?.channel
        socketCore = socket?.core
    }

    private final func read(_ context: ChannelHandlerContext) {
        if socketCore != nil { socketCore?.read0() } else { context.read() }
    }

    // Shared `ChannelHandler` methods (the subclasses' conformances use these).

    /// Reads only while the downstream side can take more (backpressure).
    final func read(context: ChannelHandlerContext) {
        if let delegate, !delegate.downstreamIsWritable {
            readPending = true
        } else {
            read(context)
        }
    }

    /// Reads from the backend so far: a response body's read timeout sees progress in them.
    final var reads = 0
    /// Bytes came right behind the end of a response (a response nobody asked for): the pool
    /// closes the connection instead of lending it again (`UpstreamPool.release`).
    final var spoiled = false

    func channelReadComplete(context: ChannelHandlerContext) {
        reads &+= 1
        delegate?.upstreamReadComplete()
    }

    final func channelWritabilityChanged(context: ChannelHandlerContext) {
        delegate?.upstreamWritabilityChanged(isWritable: context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    /// The channel closed: the leasing request (if any) learns the connection is gone.
    final func connectionClosed() {
        if let delegate {
            self.delegate = nil
            delegate.upstreamFailed(.reset)
        }
        if let pool, let address { pool.forget(self, address: address) }
        pool = nil
    }

    final func failed(_ reason: UpstreamFailure, context: ChannelHandlerContext) {
        if let delegate {
            self.delegate = nil
            delegate.upstreamFailed(reason)
        }
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension UpstreamHandler: Sendable {}

/// HTTP/1.1 to a backend: serialises the request, parses the response (see `UpstreamHandler`).
final class HTTP1UpstreamHandler: UpstreamHandler, ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var parser = HTTP1Parser(kind: .response, maxHeadBytes: 65_536)
    private var input: ByteBuffer?
    private var output = HTTP1Output()

    /// `socket`: the channel this handler is added to as its only handler (until a tunnel
    /// replaces it), so its output may go straight to the socket and its reads to the channel.
    init(spare: SpareBuffer? = nil, socket: Channel? = nil) {
        let writeThrough = socket.flatMap { SocketWriteThrough.socket(of: $0) }
        super.init(socket: writeThrough == nil ? nil : OwnedSocket(socket))
        output.spare = spare
        output.writeThrough = writeThrough
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    /// Removed when the connection becomes a tunnel (after a 101): bytes the backend sent right
    /// after its 101 belong to the tunnel, so they are passed on first.
    func removeHandler(context: ChannelHandlerContext, removalToken: ChannelHandlerContext.RemovalToken) {
        input.handOver(to: context)
        context.leavePipeline(removalToken: removalToken)
    }

    override func send(_ part: HTTPClientRequestPart) {
        if case .end(let trailers) = part {
            // The usual part after `sendHead` (a request without a body): no context needed.
            output.end(trailers)
            return
        }
        guard let context, let head = output.write(part, context: context) else { return }
        output.head { HTTP1Writer.writeRequestHead(head, into: &$0) }
        parser.respondingToHEAD = head.method.isHEAD
    }

    override func sendHead(_ request: UpstreamRequest) {
        output.head { HTTP1Writer.writeRequestHead(request, into: &$0) }
        parser.respondingToHEAD = request.method.isHEAD
    }

    override func flush() {
        output.flush(socket: socketChannel) { [unowned(unsafe) self] in self.context }
    }

    /// Asks for the next read here, subject to backpressure (`read`), as
    /// `HTTP1ServerHandler.channelReadComplete` does.
    override func channelReadComplete(context: ChannelHandlerContext) {
        super.channelReadComplete(context: context)
        read(context: context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        input.append(received: unwrapInboundIn(data))
        guard var buffer = input.take() else { return }
        parsing: while !parser.isUpgraded {
            guard let delegate else {
                // A response nobody asked for (or bytes after one): the connection is unusable.
                if buffer.readableBytes > 0 { context.close(promise: nil) }
                return
            }
            // Parts go to this delegate until it changes (the response ended and the
            // connection went back to the pool, or the exchange let it go).
            let bound = delegateChanges
            while bound == delegateChanges && !parser.isUpgraded {
                // Switched on as it comes back, never bound (see `HTTP1ServerHandler.process`).
                do {
                    switch try parser.next(from: &buffer) {
                    case nil:
                        break parsing
                    case .responseHead(let head)?:
                        delegate.upstreamResponseHead(head)
                    case .body(let body)?:
                        delegate.upstreamResponseBody(body)
                    case .end(let trailers)?:
                        if parser.isUpgraded {
                            // The 101's end: the bytes after it are the tunnel's, and the delegate
                            // removes this handler right away (`removeHandler` passes `input` on).
                            input = buffer.readableBytes > 0 ? buffer : nil
                            buffer.clear()
                        } else if buffer.readableBytes > 0 {
                            // Not the next request's response, whoever takes the connection now.
                            spoiled = true
                        }
                        delegate.upstreamResponseEnd(trailers)
                    case .requestHead?:
                        preconditionFailure("a response parser yields no request heads")
                    }
                } catch {
                    failed(.protocolError, context: context)
                    return
                }
            }
        }
        if buffer.readableBytes > 0 { input = buffer }
    }

    func channelInactive(context: ChannelHandlerContext) {
        // A body delimited by the close has just ended (RFC 9112 §6.3, last rule).
        if parser.readsUntilClose, let delegate, case .end(let trailers)? = parser.inputClosed() {
            delegate.upstreamResponseEnd(trailers)
        }
        connectionClosed()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        failed(.reset, context: context)
    }
}

/// An HTTP/2 stream to a backend (`protocol: h2`), one request's, held by its connection
/// (`HTTP2BackendConnection`, which passes it its frames and writes its own): it turns the
/// request into frames and the response frames into the delegate's parts itself, as NIO's
/// `HTTP2FramePayloadToHTTP1ClientCodec` did as a handler of its own (`HTTP2StreamParts`). Not a
/// channel handler: `context` stays nil.
///
/// A request's last frame is held until the next part shows whether it ends the stream
/// (`HTTP2StreamParts.HeldFrame`, as NIO's codec did): a request without a body is one HEADERS
/// frame with END_STREAM.
final class StreamUpstreamHandler: UpstreamHandler, HTTP2HeldStream {
    let connection: HTTP2BackendConnection
    /// Given by the connection when the first frame is written.
    var streamID: HTTP2StreamID?
    private var held = HTTP2StreamParts.HeldFrame()
    /// The request's method (HEAD and CONNECT answers have no body to frame).
    private var requestMethod = HTTPMethod.GET
    /// A final (non-1xx) response head arrived: a HEADERS frame after it carries trailers.
    private var finalHeadReceived = false
    /// What the final head's `content-length` (or its status, or the request's method) leaves
    /// of the body (`HTTP2StreamParts.response`).
    private var bodyLength = HTTP2StreamParts.BodyLength()
    /// END_STREAM written / received.
    private(set) var requestEnded = false
    private(set) var responseEnded = false
    /// The connection no longer holds this stream.
    var ended = false

    /// Flow control and the read in progress, kept by the connection (`HTTP2Streams`).
    var window = HTTP2StreamWindow()
    var inRead = false

    init(connection: HTTP2BackendConnection) {
        self.connection = connection
        super.init()
    }

    override func sendHead(_ request: UpstreamRequest) {
        requestMethod = request.method
        let block = HTTP2StreamParts.requestHeaders(request)
        hold(.headers(.init(headers: block)))
    }

    override func send(_ part: HTTPClientRequestPart) {
        switch part {
        case .head(let head):
            requestMethod = head.method
            let fields = head.headers.map { ($0.name, $0.value) }
            hold(.headers(.init(headers: HTTP2StreamParts.requestHeaders(method: head.method, uri: head.uri, fields: fields))))
        case .body(let body):
            hold(.data(.init(data: body)))
        case .end(let trailers):
            let end = held.end(trailers, allocator: connection.channel.allocator)
            if let first = end.first { write(first) }
            write(end.last)
            requestEnded = true
        }
    }

    override func flush() {
        if let frame = held.take() { write(frame) }
        connection.flush()
    }

    /// Writes the frame held so far and holds `frame` instead.
    private func hold(_ frame: HTTP2Frame.FramePayload) {
        if let previous = held.hold(frame) { write(previous) }
    }

    /// One of the request's frames. When the stream cannot start (its connection closed or
    /// began to drain before the HEADERS went out), the backend never saw the request: it is
    /// refused, on the loop's next turn (this runs inside the exchange's own call).
    private func write(_ frame: HTTP2Frame.FramePayload) {
        guard !ended, !connection.write(frame, of: self), streamID == nil else { return }
        connection.channel.eventLoop.assumeIsolated().execute { [self] in closed(refused: true) }
    }

    /// A frame of the response.
    func receiveFrame(_ payload: HTTP2Frame.FramePayload) {
        guard let delegate else {
            connection.release(self)
            return
        }
        switch payload {
        case .headers(let headers):
            if headers.endStream { responseEnded = true }
            let head: ResponseHead
            do {
                if finalHeadReceived {
                    let trailers = try HTTP2StreamParts.trailers(headers.headers)
                    guard bodyLength.isComplete else { throw HTTP2StreamParts.MalformedResponse() }
                    delegate.upstreamResponseEnd(trailers)
                    return
                }
                let declaredLength: Int?
                (head, declaredLength) = try HTTP2StreamParts.response(headers.headers, endStream: headers.endStream,
                                                                       requestMethod: requestMethod)
                bodyLength = HTTP2StreamParts.BodyLength(declaredLength)
            } catch {
                fail(.protocolError)
                return
            }
            if !HTTP2StreamParts.isInformational(head) { finalHeadReceived = true }
            delegate.upstreamResponseHead(head)
            if headers.endStream && finalHeadReceived { self.delegate?.upstreamResponseEnd(nil) }
        case .data(let data):
            guard case .byteBuffer(let bytes) = data.data else { return }
            if data.endStream { responseEnded = true }
            guard bodyLength.take(bytes.readableBytes, endsStream: data.endStream) else {
                fail(.protocolError)
                return
            }
            if !data.endStream || bytes.readableBytes > 0 { delegate.upstreamResponseBody(bytes) }
            if data.endStream { self.delegate?.upstreamResponseEnd(nil) }
        default:
            return
        }
    }

    /// The connection's read that gave this stream frames is complete.
    func readComplete() {
        reads &+= 1
        delegate?.upstreamReadComplete()
    }

    override func resumeReading() -> Bool {
        guard readPending else { return false }
        readPending = false
        connection.resume(self)
        return true
    }

    func sendWritabilityChanged(_ isWritable: Bool) {
        delegate?.upstreamWritabilityChanged(isWritable: isWritable)
    }

    /// Its client cannot take more of the response now: the stream's window is kept.
    var holdsRead: Bool {
        if let delegate { return !delegate.downstreamIsWritable }
        return false
    }

    /// The response cannot be used: the exchange learns why, and the stream is reset.
    private func fail(_ reason: UpstreamFailure) {
        let delegate = self.delegate
        self.delegate = nil
        connection.release(self)
        delegate?.upstreamFailed(reason)
    }

    /// The stream ended without the response (reset, refused, or its connection gone).
    func closed(refused: Bool) {
        self.refused = refused
        guard let delegate else { return }
        self.delegate = nil
        delegate.upstreamFailed(.reset)
    }
}

/// A request's connection to one endpoint: a pooled keep-alive HTTP/1.1 connection, or an HTTP/2
/// stream (single-use).
final class UpstreamConnection {
    /// The connection (for a stream: the connection it is on).
    let channel: Channel
    let handler: UpstreamHandler
    /// The HTTP/2 stream this is, if it is one.
    let stream: StreamUpstreamHandler?
    /// Its endpoint in the pool that opened it, which outlives every connection it opens
    /// (`release` finds it here without comparing addresses).
    unowned(unsafe) let endpoint: UpstreamPool.Endpoint
    var address: SocketAddress { endpoint.address }
    /// Requests this connection has carried (a reused connection may have been closed by the
    /// backend while idle, which makes a bodyless request safe to retry once).
    var requestsServed = 0
    /// While it idles in the pool: when the pool's idle sweep first found it there.
    var idleSince: NIODeadline?

    init(channel: Channel, handler: UpstreamHandler, endpoint: UpstreamPool.Endpoint) {
        self.channel = channel
        self.handler = handler
        self.stream = nil
        self.endpoint = endpoint
    }

    init(stream: StreamUpstreamHandler, endpoint: UpstreamPool.Endpoint) {
        self.channel = stream.connection.channel
        self.handler = stream
        self.stream = stream
        self.endpoint = endpoint
    }

    /// Whether the request may be given more of its body now.
    var isWritable: Bool {
        if let stream { return stream.connection.isWritable(stream) }
        return channel.isWritable
    }

    /// Ends the exchange's use of it: closes a connection, resets a stream (unless it finished).
    func close() {
        if let stream {
            stream.connection.release(stream)
        } else {
            channel.close(promise: nil)
        }
    }
}

@available(*, unavailable)
extension UpstreamConnection: Sendable {}
