import NIOCore
import NIOHTTP1

/// What an upstream connection reports to the request that currently leases it.
///
/// Implemented by `DownstreamHandler`: one downstream connection has at most one request in
/// flight, so it is the exchange. All calls happen on the shared event loop.
protocol UpstreamDelegate: AnyObject {
    func upstreamResponseHead(_ head: HTTPResponseHead)
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

/// The last handler of an upstream (proxy → backend) pipeline:
/// `HTTPRequestEncoder` → `HTTPResponseDecoder` → `UpstreamHandler`.
///
/// It forwards response parts to its current delegate and applies backpressure in the other
/// direction: it only lets the channel read while the downstream connection is writable.
final class UpstreamHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    /// The request leasing this connection; nil while the connection idles in the pool.
    weak var delegate: UpstreamDelegate?
    /// The pool that holds this connection while it idles; told when the channel closes.
    /// `unowned(unsafe)`: a pool lives as long as its event loop, longer than any connection.
    unowned(unsafe) var pool: UpstreamPool?
    /// The connection's endpoint, for the pool's bookkeeping.
    var address: SocketAddress?
    private var readPending = false
    private var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let delegate else {
            // A response nobody asked for (or bytes after one): the connection is unusable.
            context.close(promise: nil)
            return
        }
        switch unwrapInboundIn(data) {
        case .head(let head): delegate.upstreamResponseHead(head)
        case .body(let body): delegate.upstreamResponseBody(body)
        case .end(let trailers): delegate.upstreamResponseEnd(trailers)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        delegate?.upstreamReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        delegate?.upstreamWritabilityChanged(isWritable: context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let delegate {
            self.delegate = nil
            delegate.upstreamFailed(.reset)
        }
        if let pool, let address { pool.forget(self, address: address) }
        pool = nil
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let delegate {
            self.delegate = nil
            delegate.upstreamFailed(error is HTTPParserError ? .protocolError : .reset)
        }
        context.close(promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        if let delegate, !delegate.downstreamIsWritable {
            readPending = true
        } else {
            context.read()
        }
    }

    /// The downstream side drained: resume reading the response.
    func resumeReading() {
        guard readPending, let context else { return }
        readPending = false
        context.read()
    }
}

@available(*, unavailable)
extension UpstreamHandler: Sendable {}

/// A pooled keep-alive connection to one endpoint.
final class UpstreamConnection {
    let channel: Channel
    let handler: UpstreamHandler
    let address: SocketAddress
    /// Requests this connection has carried (a reused connection may have been closed by the
    /// backend while idle, which makes a bodyless request safe to retry once).
    var requestsServed = 0
    /// An HTTP/2 stream (single-use), not a keep-alive connection.
    let isStream: Bool

    init(channel: Channel, handler: UpstreamHandler, address: SocketAddress, isStream: Bool = false) {
        self.channel = channel
        self.handler = handler
        self.address = address
        self.isStream = isStream
    }
}

@available(*, unavailable)
extension UpstreamConnection: Sendable {}
