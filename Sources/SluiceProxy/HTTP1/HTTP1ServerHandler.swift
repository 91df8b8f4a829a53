import NIOCore
import NIOHTTP1

/// The HTTP/1.1 codec towards clients: it parses requests (`HTTP1Parser`), serialises
/// responses (`HTTP1Writer`) and drives its connection's `DownstreamHandler` by direct calls.
///
/// Pipeline: `HTTP1ServerHandler` alone (it owns the `DownstreamHandler`; the idle timeout is
/// the loop's `OpenExchanges` sweep), behind `NIOSSLServerHandler` on a TLS listener.
/// HTTP/2 streams put the `DownstreamHandler` itself in their pipeline, alone (it converts the
/// stream's frames, `HTTP2StreamParts`); both paths run the same exchange code.
///
/// Pipelining (RFC 9112 §9.3.2): responses must go out in request order, and the exchange
/// handles one request at a time, so the next request is parsed only once the previous
/// response has ended. Input that arrives meanwhile waits here, and the socket is not read
/// further while it waits (memory stays bounded by one read).
///
/// Writes are coalesced: a response head and small body parts are copied into one buffer that
/// goes out at the next flush (one `writev` entry instead of three); large parts are written as
/// they are.
final class HTTP1ServerHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let exchange: DownstreamHandler
    private var parser: HTTP1Parser
    private var context: ChannelHandlerContext?
    /// Received bytes not parsed yet (a pipelined request waiting for the previous response).
    private var input: ByteBuffer?
    /// Response bytes not handed to the channel yet.
    private var output = HTTP1Output()
    /// A request head went to the exchange and its response has not ended.
    private var responsePending = false
    private var requestIsHEAD = false
    /// A `read` held back because pipelined input is already waiting.
    private var readHeldForPipelining = false
    /// Input is ignored after a framing error (the connection is closing).
    private var failed = false
    /// No request head has arrived on this connection yet.
    private var awaitsFirstRequest = true
    /// How long a drain waits for the first request of a connection accepted just before it.
    static let firstRequestGrace = TimeAmount.seconds(1)

    /// Closed after this long without input while no request is in progress; and a request
    /// head must arrive whole within it of its first byte (else a 408).
    private let idleTimeout: TimeAmount
    private var lastInput = NIODeadline.now()
    /// When the first bytes of a request head that has not arrived whole came (nil when none
    /// waits: the usual case, a head that arrives in one read, never sets it).
    private var partialHeadSince: NIODeadline?
    /// Since when the client has left more than NIO's high-water mark of output unread (the
    /// channel unwritable); nil while it keeps up.
    private var stalledSince: NIODeadline?
    /// The socket channel, when this handler is its only one (a cleartext listener): reads go
    /// to it directly and responses straight to the socket (`OwnedSocket`, `SocketWriteThrough`).
    private let socketChannel: Channel?
    private let socketCore: ChannelCore?

    /// `socket`: the channel this handler is added to, when it is to be the only handler of a
    /// socket channel.
    init(exchange: DownstreamHandler, maxHeaderBytes: Int, idleTimeout: TimeAmount, socket: Channel? = nil) {
        self.exchange = exchange
        self.parser = HTTP1Parser(kind: .request, maxHeadBytes: maxHeaderBytes)
        self.idleTimeout = idleTimeout
        let owned = OwnedSocket(socket)
        output.writeThrough = owned.flatMap { .socket(of: $0.channel) }
        socketChannel = output.writeThrough == nil ? nil : owned?.channel
        socketCore = output.writeThrough == nil ? nil : owned?.core
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        output.spare = exchange.loop.pool.spare
        exchange.http1 = self
        exchange.handlerAdded(context: context)
        exchange.loop.exchanges.watchIdle(timeout: idleTimeout)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        exchange.handlerRemoved(context: context)
        exchange.http1 = nil
        self.context = nil
    }

    /// No input for the idle timeout and nothing in progress (a slow backend is not idleness),
    /// or a request head still incomplete that long after its first byte (a client trickling
    /// it, each byte restarting the idle timeout: slowloris), or output left unread that long
    /// (a client that stopped reading, holding the exchange and its upstream connection; one
    /// that reads slowly makes the channel writable again each time it takes in NIO's
    /// low-water mark).
    func isIdle(at now: NIODeadline) -> Bool {
        if let since = stalledSince, now - since >= idleTimeout { return true }
        guard !responsePending && exchange.request == nil else { return false }
        if let since = partialHeadSince, now - since >= idleTimeout { return true }
        return now - lastInput >= idleTimeout
    }

    /// Closes the connection; a head still arriving is answered 408 first (RFC 9110 §15.5.9).
    func closeIdle() {
        guard let context else { return }
        if stalledSince == nil, partialHeadSince != nil, !failed {
            failed = true
            input = nil
            exchange.respondLocally(status: .requestTimeout, message: "request head not received in time", close: true,
                                    context: context)
        } else {
            context.close(promise: nil)
        }
    }

    /// Removed when the connection becomes a tunnel: bytes already received but not parsed
    /// belong to the tunnel, so they are passed on first.
    func removeHandler(context: ChannelHandlerContext, removalToken: ChannelHandlerContext.RemovalToken) {
        input.handOver(to: context)
        context.leavePipeline(removalToken: removalToken)
    }

    // MARK: Requests in

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !failed else { return }
        lastInput = .now()
        let bytes = unwrapInboundIn(data)
        input.append(received: consume bytes)
        exchange.inClientRead = true
        process(context: context)
    }

    /// Parses and delivers as much of `input` as the exchange may take now.
    private func process(context: ChannelHandlerContext) {
        // Moved out, not copied and then cleared: no retain of its storage.
        guard var buffer = input.take() else { return }
        parsing: while !failed {
            let atStart = parser.isAtMessageStart
            if atStart && (responsePending || exchange.request != nil) { break }
            // The event is switched on as it comes back, never bound: a bound copy of the enum
            // cost a retain and two releases of its payload per event.
            do {
                switch try parser.next(from: &buffer) {
                case nil:
                    break parsing
                case .requestHead(let head)?:
                    partialHeadSince = nil
                    awaitsFirstRequest = false
                    responsePending = true
                    requestIsHEAD = head.method.isHEAD
                    exchange.receiveHead(head, context: context)
                case .body(let body)?:
                    exchange.receive(.body(body), context: context)
                case .end(let trailers)?:
                    exchange.receive(.end(trailers), context: context)
                case .responseHead?:
                    preconditionFailure("a request parser yields no response heads")
                }
            } catch {
                refuse(error, atStart: atStart, context: context)
                return
            }
        }
        if buffer.readableBytes > 0 && !failed {
            input = buffer
            if partialHeadSince == nil, parser.isAtMessageStart, !responsePending, exchange.request == nil {
                // Now, not at the read: a pipelined head that waited for the response before
                // it starts its time here.
                partialHeadSince = .now()
            }
        }
    }

    /// A request the parser refused: a 400/431 when it was a new head (the exchange is idle),
    /// otherwise (a broken body) the exchange is abandoned. The connection closes either way.
    private func refuse(_ failure: HTTP1Parser.Failure, atStart: Bool, context: ChannelHandlerContext) {
        failed = true
        input = nil
        if atStart && !responsePending {
            exchange.respondLocally(status: failure.status, message: failure.message, close: true, context: context)
        } else {
            exchange.abandon(code: 400)
            context.close(promise: nil)
        }
    }

    /// Asks for the next read here, subject to this handler's holds (`read`): NIO would
    /// otherwise ask right after, by walking the whole pipeline from its tail to get here.
    func channelReadComplete(context: ChannelHandlerContext) {
        exchange.channelReadComplete(context: context)
        read(context: context)
    }

    func read(context: ChannelHandlerContext) {
        if exchange.holdsRead {
            exchange.readPending = true
        } else if input != nil && responsePending && parser.isAtMessageStart {
            // What waits is the next request (a partial line of this one's body needs more
            // bytes, so it does not hold the read: an upload would stall).
            readHeldForPipelining = true
        } else if socketCore != nil {
            socketCore?.read0()
        } else {
            context.read()
        }
    }

    /// A read the exchange held back may go ahead (subject to the pipelining hold).
    func resumeRead() {
        guard let context else { return }
        read(context: context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        stalledSince = context.channel.isWritable ? nil : .now()
        exchange.channelWritabilityChanged(context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        exchange.channelInactive(context: context)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        exchange.errorCaught(context: context, error: error)
    }

    /// A drain (`ChannelShouldQuiesceEvent`) closes a connection at once when no request is in
    /// progress — except one whose first request has not been read yet: the client connected
    /// just before the drain, and its request may already be in the socket's buffer, which a
    /// close would answer with a reset. Such a connection is served once, with
    /// `Connection: close`, or closed if nothing has come within `firstRequestGrace`. (With the
    /// listening socket held by a service manager, connections accepted by the process that
    /// stops would otherwise be the ones a restart loses.)
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent, awaitsFirstRequest, !failed, exchange.request == nil {
            exchange.closeWhenIdle = true
            context.eventLoop.assumeIsolated().scheduleTask(in: Self.firstRequestGrace) { [self] in
                if awaitsFirstRequest, let context = self.context { context.close(promise: nil) }
            }
            return
        }
        exchange.userInboundEventTriggered(context: context, event: event)
    }

    // MARK: Responses out

    /// Serialises a response head or body part into the pending output.
    func write(_ part: HTTPServerResponsePart) {
        guard let context, let head = output.write(part, context: context) else { return }
        // An interim response (100 Continue) does not frame the body that follows.
        let interim = head.status.code / 100 == 1 && head.status.code != 101
        output.head(framesBody: !interim) { buffer in
            HTTP1Writer.writeResponseHead(head, bodySuppressed: requestIsHEAD, into: &buffer)
        }
    }

    /// A body part of the response, framed as its head decided (the exchange's usual path: no
    /// `HTTPServerResponsePart` is made and taken apart again, each a copy of the part).
    func writeBody(_ body: ByteBuffer) {
        output.body(body) { [unowned(unsafe) self] in self.context }
    }

    /// A backend's response head passed on (see `ResponseHead`): kept field lines copied as bytes.
    func writeForwardedHead(_ head: ResponseHead, version: HTTPVersion, forwarded: HeaderRewrite.ForwardedResponse,
                            extra: [(String, String)]) {
        output.head { buffer in
            HTTP1Writer.writeResponseHead(head, version: version, forwarded: forwarded, extra: extra,
                                          bodySuppressed: requestIsHEAD, into: &buffer)
        }
    }

    func flush() {
        output.flush(socket: socketChannel) { [unowned(unsafe) self] in self.context }
    }

    /// Ends the response in progress; with `close`, the connection closes once it is written.
    /// Otherwise the next pipelined request, if one is waiting, is taken up.
    func end(_ trailers: HTTPHeaders?, close: Bool) {
        guard context != nil else { return }
        output.end(trailers)
        responsePending = false
        requestIsHEAD = false
        if close, let context {
            failed = true
            input = nil
            // Usually the response's last bytes go out in one direct send: close now.
            if output.sendAllBeforeClose(socket: socketChannel) {
                context.close(promise: nil)
                return
            }
            let promise = context.eventLoop.makePromise(of: Void.self)
            output.write(context: context, promise: promise)
            output.flush(context: context, socket: socketChannel)
            promise.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            return
        }
        flush()
        // The context is loaded only when there is more to do (usually not).
        if input != nil, let context {
            // Taken up on the next loop tick: the exchange that ended this response is still
            // on the stack.
            context.eventLoop.assumeIsolated().execute { [self] in
                guard let context = self.context else { return }
                self.process(context: context)
                if self.readHeldForPipelining {
                    self.readHeldForPipelining = false
                    self.read(context: context)
                }
            }
        } else if readHeldForPipelining, let context {
            readHeldForPipelining = false
            read(context: context)
        }
    }
}

@available(*, unavailable)
extension HTTP1ServerHandler: Sendable {}
