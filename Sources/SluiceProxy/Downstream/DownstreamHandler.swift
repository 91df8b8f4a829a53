import Logging
import NIOCore
import NIOHTTP1
import NIOHTTP2
import SluiceConfig
import SluiceMetrics
import SluiceRouting

/// The proxy's per-client-connection handler: it routes each request, leases an upstream
/// connection from its loop's pool, and glues the two byte streams together.
///
/// Two ways in (pipelines written in one place, `SluiceServer+Listeners`):
/// - HTTP/1.1: `HTTP1ServerHandler`, which parses requests, serialises
///   pipelined ones and calls this handler directly (`receive`); responses go back through
///   `send`/`sendEnd` to that codec. This handler is then not in the pipeline itself.
/// - HTTP/2: one exchange per stream, held by its connection's `HTTP2ClientConnection`, which
///   gives it the stream's frames (`receiveFrame`) and writes the frames it sends; it converts
///   them from and to the parts an HTTP/1.1 exchange has (`HTTP2StreamParts`).
/// Either way it sees at most one request at a time and is itself the "exchange" of that request.
///
/// Backpressure (NIO's GlueHandler pattern): the client is read only while the upstream
/// channel is writable, and the upstream only while the client is writable, so a 1 GiB body
/// in either direction stays a few buffers in memory.
///
/// Outcomes are recorded in one place, `finish(code:failure:)`.
final class DownstreamHandler {
    let loop: LoopContext
    /// The loop's shard, pool and deadlines, held here as well: a call on a reference read
    /// through two stored references (`loop.stats`) retains and releases it around the call,
    /// one read through `self` does not (two reference-count operations per call saved).
    let stats: StatShard
    let pool: UpstreamPool
    let deadlines: ResponseDeadlines
    private let store: SnapshotStore
    private let scheme: String
    /// The HTTP/1.1 codec's context, or the HTTP/2 connection handler's.
    var context: ChannelHandlerContext?
    var clientAddress: String?
    /// The HTTP/1.1 codec driving this exchange; nil on an HTTP/2 stream.
    var http1: HTTP1ServerHandler?
    /// HTTP/2: the stream's connection, which delivers and writes its frames.
    let connection: HTTP2ClientConnection?
    /// HTTP/2: the stream (the root stream on HTTP/1.1).
    let streamID: HTTP2StreamID
    /// HTTP/2 flow control, kept by the connection (`HTTP2Streams`).
    var window = HTTP2StreamWindow()
    /// HTTP/2: the client's request has ended its stream (END_STREAM received).
    private var streamRemoteEnded = false

    /// The request in progress, nil between requests.
    var request: RequestState?
    /// Set when a `read` was held back because the upstream could not take more.
    var readPending = false
    var needsFlush = false
    /// Between a read from the client and its read-complete, which flushes the upstream once
    /// for everything the read brought (a request head and its end, say).
    var inClientRead = false
    /// Quiescing (shutdown): close as soon as no request is in progress.
    var closeWhenIdle = false
    /// HTTP/2: the stream's request head arrived (a HEADERS frame after it carries trailers).
    private var streamHeadReceived = false
    /// HTTP/2: the body bytes the request's `content-length` still announces (nil: none declared).
    private var streamBodyLength = HTTP2StreamParts.BodyLength()
    /// HTTP/2: the response's last frame, held until the next part shows whether it ends the
    /// stream (`writeFrame`).
    private var heldFrame = HTTP2StreamParts.HeldFrame()

    /// `connection`: an HTTP/2 stream's connection, whose client address its streams share
    /// (formatted once); an HTTP/1.1 exchange reads the address from its channel at the first
    /// request.
    init(loop: LoopContext, store: SnapshotStore, scheme: String = "http", connection: HTTP2ClientConnection? = nil,
         stream: HTTP2StreamID = .rootStream) {
        self.loop = loop
        self.clientAddress = connection?.clientAddress
        self.connection = connection
        self.streamID = stream
        self.stats = loop.stats
        self.pool = loop.pool
        self.deadlines = loop.deadlines
        self.store = store
        self.scheme = scheme
    }

    // MARK: Per-request state

    /// A class, not a struct: the exchange updates it from many callbacks, and a struct this
    /// size was copied (with a retain per reference field) at every `guard let req = request`.
    final class RequestState {
        let snapshot: Snapshot
        let decision: Decision
        /// The chosen backend (`snapshot.backends[decision.backend.index]`).
        let backend: BackendRuntime
        let series: Int
        let start: NIODeadline
        let isHEAD: Bool
        /// The client speaks HTTP/1.0: a body whose end only the close marks is sent unchunked.
        let clientIsHTTP10: Bool
        /// The head to send upstream (already rewritten); kept for a retry.
        let upstreamHead: UpstreamRequest
        /// Client wants keep-alive and nothing forces a close.
        var keepAlive: Bool
        /// The framing says there is no body: an early answer need not close the connection.
        var bodyless = false
        var upstream: UpstreamConnection?
        var connecting = false
        /// Queued in the pool for a connection or a connect slot (`ConnectionWaiter`).
        var waiting = false
        /// Parts that arrived while the upstream connection was being opened.
        var buffered: [HTTPClientRequestPart] = []
        var requestEnded = false
        var requestBodyBytes = 0
        var responseHeadSent = false
        var responseStatus = 0
        var upstreamReusable = false
        var retried = false
        /// Connects that failed for this request, each to another endpoint of its backend.
        var failedConnects = 0
        /// Sent again after its connection to this endpoint was reset: the retry goes elsewhere.
        var avoidEndpoint: SocketAddress?
        /// When the response head must have arrived by (or, while `waiting`, a pooled connection
        /// or connect slot; or, once the head is out, when the body's read timeout is next
        /// checked); nil when no deadline is armed (`ResponseDeadlines`).
        var deadline: NIODeadline?
        /// The upstream handler's `reads` when the body's read timeout was last armed: no read
        /// over a whole `readTimeout` is a stalled backend.
        var upstreamReadsAtArm = 0
        /// The shadow copy being collected, when the route mirrors this request.
        var mirror: PendingMirror?
        /// The `Upgrade` value of a WebSocket handshake; nil for ordinary requests.
        var upgrade: String?
        /// The backend agreed to the upgrade (101): the exchange becomes a byte tunnel.
        var tunnel = false
        /// `grpc-status` from the response head (trailers-only gRPC answers).
        var grpcStatus: String?

        init(snapshot: Snapshot, decision: Decision, series: Int, start: NIODeadline, isHEAD: Bool,
             clientIsHTTP10: Bool, upstreamHead: UpstreamRequest, keepAlive: Bool, bodyless: Bool) {
            self.snapshot = snapshot
            self.decision = decision
            self.backend = snapshot.backends[decision.backend.index]
            self.series = series
            self.start = start
            self.isHEAD = isHEAD
            self.clientIsHTTP10 = clientIsHTTP10
            self.upstreamHead = upstreamHead
            self.keepAlive = keepAlive
            self.bodyless = bodyless
        }
    }

    /// An HTTP/1.1 exchange is listed in the loop's `OpenExchanges` (its idle timeout, a
    /// shutdown); an HTTP/2 stream is not: its connection is listed, and holds its streams.
    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        loop.exchanges.add(self)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        loop.exchanges.remove(self)
    }

    // MARK: Client → proxy

    /// A frame of the HTTP/2 stream this exchange serves (`HTTP2StreamParts`).
    func receiveFrame(_ payload: HTTP2Frame.FramePayload) {
        guard let context else { return }
        inClientRead = true
        switch payload {
        case .headers(let headers):
            if headers.endStream { streamRemoteEnded = true }
            do {
                guard !streamHeadReceived else {
                    guard streamBodyLength.isComplete else { throw HTTP2StreamParts.MalformedRequest(field: "content-length") }
                    receive(.end(try HTTP2StreamParts.clientTrailers(headers.headers)), context: context)
                    return
                }
                streamHeadReceived = true
                let (head, declaredLength) = try HTTP2StreamParts.request(headers.headers, endStream: headers.endStream)
                streamBodyLength = HTTP2StreamParts.BodyLength(declaredLength)
                receiveHead(head, context: context)
            } catch {
                resetMalformed()
                return
            }
            if headers.endStream { receive(.end(nil), context: context) }
        case .data(let data):
            guard case .byteBuffer(let bytes) = data.data else { return }
            if data.endStream { streamRemoteEnded = true }
            // DATA beyond the declared length, or an end before it (RFC 9113 §8.1.1): the bytes
            // must not reach an HTTP/1.1 backend, where they would read as a request.
            guard streamBodyLength.take(bytes.readableBytes, endsStream: data.endStream) else {
                resetMalformed()
                return
            }
            if !data.endStream || bytes.readableBytes > 0 { receive(.body(bytes), context: context) }
            if data.endStream { receive(.end(nil), context: context) }
        default:
            return
        }
    }

    /// One part of the client's request, from the HTTP/1 codec or an HTTP/2 stream's frames.
    func receive(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch part {
        case .head(let head):
            receiveHead(RequestHead(head), context: context)
        case .body(let body):
            guard let req = request, !req.requestEnded else { return }
            req.requestBodyBytes += body.readableBytes
            if req.mirror != nil, !req.mirror!.append(body) {
                stats.recordMirror(series: req.mirror!.series, result: .dropped)
                req.mirror = nil
            }
            forward(.body(.byteBuffer(body)), in: req)
        case .end(let trailers):
            guard let req = request, !req.requestEnded else { return }
            req.requestEnded = true
            if let mirror = req.mirror {
                req.mirror = nil
                loop.mirrors.send(mirror, snapshot: req.snapshot)
            }
            forward(.end(trailers), in: req)
            if req.upstream != nil { flushUpstream() }
        }
    }

    /// Not passed on: the HTTP/1 codec that owns this exchange is the channel's last handler,
    /// and the pipeline's tail does nothing with it.
    func channelReadComplete(context: ChannelHandlerContext) {
        clientReadComplete()
    }

    /// The client's read is complete (on HTTP/2: a read that brought this stream frames).
    func clientReadComplete() {
        inClientRead = false
        flushUpstream()
    }

    /// The client's body must wait: the upstream connection is being opened or cannot take more.
    var holdsRead: Bool {
        guard let req = request, !req.requestEnded else { return false }
        return req.connecting || (req.upstream.map { !$0.isWritable } ?? false)
    }

    /// Lets a held-back read go ahead (through the HTTP/1 codec's own hold; on HTTP/2, the
    /// stream's window given back).
    func resumeRead() {
        guard readPending else { return }
        readPending = false
        if let http1 { http1.resumeRead() } else { connection?.resume(self) }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        clientWritabilityChanged(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    /// The client can take more of the response again, or cannot for now (the HTTP/1.1
    /// connection's socket, or the HTTP/2 stream's window: `HTTP2ClientConnection`).
    func clientWritabilityChanged(_ isWritable: Bool) {
        if isWritable, let req = request, let up = req.upstream, up.handler.resumeReading(),
           req.responseHeadSent, req.deadline != nil, !req.tunnel {
            // The backend said nothing while its reads were held for this client: its body's
            // read timeout counts from now. The resumed read only happens in the loop's next
            // tick (NIO's `read0` asks for readability), so a sweep due in this one would
            // otherwise find no read since the deadline was armed and none held.
            armBodyReadDeadline(req, upstream: up)
        }
    }

    /// HTTP/2: the client has given this stream no room for its response (no WINDOW_UPDATE) for
    /// the idle timeout (`HTTP2ClientConnection`). The stream is reset with CANCEL; the
    /// exchange ends as an HTTP/1.1 one whose client stopped reading does (499), and its
    /// upstream connection is closed rather than held.
    func resetStalled() {
        abandon(code: 499)
        connection?.reset(self, .cancel)
    }

    /// HTTP/2: the stream is over (`HTTP2ClientConnection`); a request still in progress was
    /// given up by the client (a reset, or the connection gone: 499).
    func streamClosed() {
        abandon(code: 499)
        context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        // The client left mid-exchange (499, nginx's convention).
        abandon(code: 499)
        context.fireChannelInactive()
    }

    /// Ends the request in progress, if any, without an answer: its upstream connection is in an
    /// unknown state, so it is closed rather than pooled.
    func abandon(code: Int) {
        guard let req = request else { return }
        if let up = req.upstream {
            up.handler.delegate = nil
            up.close()
        }
        req.upstream = nil
        finish(code: code, failure: nil)
    }

    /// A malformed HTTP/2 request (a head or trailers block `HTTP2StreamParts` refused) is a
    /// stream error of type PROTOCOL_ERROR (RFC 9113 §8.1.1): the stream is reset, the
    /// connection's other streams go on. A request already under way is recorded as a 400.
    private func resetMalformed() {
        abandon(code: 400)
        connection?.reset(self, .protocolError)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // An I/O or stream error: nothing sensible can follow on this connection. (Malformed
        // HTTP/1.1 requests are answered by `HTTP1ServerHandler` before they get here.)
        abandon(code: 499)
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            closeWhenIdle = true
            if request == nil {
                context.close(promise: nil)
                return
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    // MARK: Routing a new request

    /// A new request's head (from the HTTP/1.1 codec, or converted from an HTTP/2 stream's).
    func receiveHead(_ head: RequestHead, context: ChannelHandlerContext) {
        if let absolute = Self.absoluteForm(head.uri) {
            let originForm = RequestHead(method: head.method, uri: absolute.target, version: head.version, fields: head.fields)
            startRequest(originForm, authority: absolute.authority, context: context)
        } else {
            startRequest(head, authority: nil, context: context)
        }
    }

    /// `authority`: the host named by an absolute-form target (it stands for the Host field).
    private func startRequest(_ head: RequestHead, authority: String?, context: ChannelHandlerContext) {
        let start = NIODeadline.now()
        if clientAddress == nil { clientAddress = context.channel.remoteAddress?.forwardedFor ?? "unknown" }
        let upstreamHead = HeaderRewrite.forwardRequest(head, clientAddress: clientAddress!, scheme: scheme,
                                                        authority: authority)
        if let problem = upstreamHead.problem {
            respondLocally(status: problem.0, message: problem.1, close: true, context: context)
            return
        }
        let snapshot = store.load()
        guard let decision = snapshot.table.decide(RequestHeadFacts(request: upstreamHead),
                                                   random: &loop.random) else {
            stats.recordUnrouted()
            let target = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? "/"
            let hasBody = upstreamHead.chunked || (upstreamHead.contentLength.map { $0 != "0" } ?? false)
            respondLocally(status: .notFound, message: "no route for \(head.method.rawValue) \(target)",
                           close: !upstreamHead.keepAlive || hasBody || closeWhenIdle, context: context)
            return
        }
        let series = snapshot.series[decision.route.index][decision.backend.index]
        // A WebSocket handshake keeps its Upgrade/Connection fields (RFC 9110 §7.8): the proxy
        // takes part in the upgrade and then tunnels bytes. Other upgrades (h2c, ...) are
        // hop-by-hop fields like any other and are dropped.
        let upgrade = Self.webSocketUpgrade(head, upgradeField: upstreamHead.upgrade)
        if let upgrade {
            upstreamHead.extra.append(("connection", "upgrade"))
            upstreamHead.extra.append(("upgrade", upgrade))
        }
        if head.version.minor >= 1, upstreamHead.expectsContinue {
            send(.head(HTTPResponseHead(version: head.version, status: .continue)))
            flushClient()
        }
        let keepAlive = upstreamHead.keepAlive && !closeWhenIdle
        let bodyless = !upstreamHead.chunked && (upstreamHead.contentLength ?? "0") == "0"
        // The head moves into the request state (copying it cost a retain and a release).
        let req = RequestState(
            snapshot: snapshot, decision: decision, series: series, start: start,
            isHEAD: head.method.isHEAD, clientIsHTTP10: head.version == .http1_0, upstreamHead: consume upstreamHead,
            keepAlive: keepAlive, bodyless: bodyless)
        request = req
        stats.adjustInflight(series: series, by: 1)
        req.upgrade = upgrade
        // WebSockets are never mirrored.
        if let shadow = decision.mirror, upgrade == nil {
            req.mirror = makeMirror(req.upstreamHead, to: shadow, snapshot: snapshot, decision: decision)
        }
        connectUpstream(req)
    }

    /// For a request target in absolute-form (`http://shop.example.com/a?b`, RFC 9112 §3.2.2):
    /// its authority, which stands for the Host field, and its origin-form (`/a?b`, what routing
    /// and the backend see). Nil for any other target.
    static func absoluteForm(_ uri: String) -> (authority: String, target: String)? {
        // Origin-form starts with "/": one byte decides for almost every request.
        guard let first = uri.utf8.first, first.asciiLowercased == UInt8(ascii: "h") else { return nil }
        let scheme = uri.utf8.prefix(8).map(\.asciiLowercased)
        let schemeLength: Int
        if scheme.starts(with: "http://".utf8) {
            schemeLength = 7
        } else if scheme.starts(with: "https://".utf8) {
            schemeLength = 8
        } else {
            return nil
        }
        let rest = uri.utf8.dropFirst(schemeLength)
        let end = rest.firstIndex { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") } ?? rest.endIndex
        guard end > rest.startIndex, let authority = String(rest[rest.startIndex..<end]) else { return nil }
        let tail = String(rest[end...]) ?? ""
        return (authority, tail.hasPrefix("/") ? tail : "/" + tail)
    }

    /// The `Upgrade` value when `head` is a WebSocket handshake (GET, `Upgrade: websocket`,
    /// `Connection: upgrade`; the header pass noted both).
    private static func webSocketUpgrade(_ head: RequestHead, upgradeField: String?) -> String? {
        guard head.method.isGET, head.version.major == 1, head.version.minor >= 1,
              let value = upgradeField, value.lowercased().contains("websocket") else { return nil }
        return value
    }

    /// Starts collecting a shadow copy, or counts it dropped when the loop's shadow budget is
    /// spent or the declared body is over the route's limit.
    private func makeMirror(_ upstream: UpstreamRequest, to backend: BackendID, snapshot: Snapshot, decision: Decision) -> PendingMirror? {
        let series = snapshot.series[decision.route.index][backend.index]
        // Checked first and cheaply: with a slow shadow nearly every copy is dropped here (the
        // in-flight limit), and looking up the route's policy copied the whole route.
        guard loop.mirrors.accepts(backend: backend.index, of: snapshot) else {
            stats.recordMirror(series: series, result: .dropped)
            return nil
        }
        guard let policy = snapshot.table.routes[decision.route.index].mirror else { return nil }
        let declared = upstream.contentLength.flatMap(Int.init) ?? 0
        guard declared <= policy.maxBodyBytes else {
            stats.recordMirror(series: series, result: .dropped)
            return nil
        }
        var head = upstream.httpHead
        for name in policy.stripHeaders where head.headers.contains(name: name) { head.headers.remove(name: name) }
        head.headers.replaceOrAdd(name: "x-sluice-shadow", value: "1")
        return PendingMirror(head: head, backend: backend, series: series, limit: policy.maxBodyBytes, body: nil)
    }

    // MARK: Upstream connection

    func connectUpstream() {
        guard let req = request else { return }
        connectUpstream(req)
    }

    /// `req` is `request`, handed down the call rather than loaded again: each load of the
    /// optional property is a retain and a release (as in `attach(_:to:)`).
    func connectUpstream(_ req: RequestState) {
        let backend = req.backend
        guard !backend.endpoints.isEmpty else {
            failBeforeResponse(.serviceUnavailable, "no endpoint available for backend '\(backend.spec.name)'",
                               failure: nil)
            return
        }
        let index: Int
        let avoid = req.avoidEndpoint
        if loop.endpointCooldown.isEmpty && avoid == nil {
            index = loop.nextEndpoint(backend: req.decision.backend.index, of: backend.endpoints.count,
                                      generation: req.snapshot.generation)
        } else {
            // Some endpoint failed a connect lately, or this is a retry that goes elsewhere: pass
            // over the endpoints cooling down and the one the request failed on. When that is all
            // of them, an endpoint cooling down comes before the failed one (a refused connect
            // fails fast and moves on; a hung endpoint costs another timeout), and the failed one
            // before none.
            loop.endpointCooldown.prune(now: .now())
            let backendIndex = req.decision.backend.index, generation = req.snapshot.generation
            index = loop.nextEndpoint(of: backend, index: backendIndex, generation: generation,
                                      avoiding: loop.endpointCooldown, except: avoid)
                ?? loop.nextEndpoint(of: backend, index: backendIndex, generation: generation,
                                     avoiding: EndpointCooldown(), except: avoid)
                ?? loop.nextEndpoint(backend: backendIndex, of: backend.endpoints.count, generation: generation)
        }
        let h2 = backend.spec.upstreamProtocol == .h2
        if !h2, let conn = pool.takeIdle(backend: backend, index: index) {
            attach(conn, to: req)
            return
        }
        let address = backend.endpoints[index]
        req.connecting = true
        let limit = loop.connectionLimit(backend.spec)
        if !h2, !pool.mayConnect(address, limit: limit) {
            // Enough connects to this endpoint are in flight: wait (at most the connect
            // timeout) for one of them to finish or a connection to come back.
            req.waiting = true
            pool.wait(self, for: address)
            deadlines.arm(req, owner: self, in: backend.connectTimeout)
            return
        }
        let pending = h2 ? pool.openStream(to: address, of: backend, limit: limit) : pool.connect(address, of: backend)
        pending.whenComplete { [self] result in
            guard let req = self.request, req.connecting else {
                // The client went away while we were connecting.
                if case .success(let conn) = result { self.pool.release(conn) }
                return
            }
            req.connecting = false
            switch result {
            case .success(let conn):
                self.loop.endpointCooldown.connected(address)
                self.attach(conn, to: req)
            case .failure(let error):
                let isTimeout = (error as? ChannelError).map { if case .connectTimeout = $0 { true } else { false } } ?? false
                self.loop.endpointCooldown.connectFailed(address, now: .now())
                if self.connectElsewhere(req, after: isTimeout ? .timeout : .connect, at: address) { return }
                if isTimeout {
                    self.failBeforeResponse(.gatewayTimeout, "upstream connect timeout: backend '\(backend.spec.name)' at \(address)",
                                            failure: .timeout)
                } else {
                    self.failBeforeResponse(.badGateway, "upstream connect failed: backend '\(backend.spec.name)' at \(address)",
                                            failure: .connect)
                }
            }
        }
    }

    /// A connect to `address` failed: nothing reached the backend, so any request may go to
    /// another endpoint of the same backend (nginx's `proxy_next_upstream error timeout`), each
    /// endpoint tried once, skipping those cooling down. The failed attempt is counted as an
    /// upstream error and logged. False when no other endpoint is left to try.
    private func connectElsewhere(_ req: RequestState, after failure: UpstreamFailure, at address: SocketAddress) -> Bool {
        let backend = req.backend
        req.failedConnects += 1
        let now = NIODeadline.now()
        guard req.failedConnects < backend.endpoints.count,
              backend.endpoints.contains(where: { !loop.endpointCooldown.skips($0, now: now) }) else { return false }
        stats.recordUpstreamError(series: req.series, reason: failure.metricReason)
        loop.logger.warning("upstream connect failed, trying another endpoint",
                            metadata: ["backend": "\(backend.spec.name)", "endpoint": "\(address.endpointText)",
                                       "reason": "\(failure.metricReason.label)"])
        connectUpstream(req)
        return true
    }

    func attach(_ conn: UpstreamConnection) {
        guard let req = request else {
            pool.release(conn)
            return
        }
        attach(conn, to: req)
    }

    private func attach(_ conn: UpstreamConnection, to req: RequestState) {
        guard context != nil else {
            pool.release(conn)
            return
        }
        let handler = conn.handler
        handler.delegate = self
        conn.requestsServed += 1
        req.upstream = conn
        handler.sendHead(req.upstreamHead)
        if !req.buffered.isEmpty {
            for part in req.buffered { handler.send(part) }
            req.buffered.removeAll()
        }
        if inClientRead { needsFlush = true } else { handler.flush() }
        let timeout = req.backend.responseTimeout
        deadlines.arm(req, owner: self, in: timeout)
        if conn.isWritable { resumeRead() }
    }

    private func forward(_ part: HTTPClientRequestPart, in req: RequestState) {
        if let up = req.upstream {
            up.handler.send(part)
            needsFlush = true
        } else if req.connecting || req.retried {
            req.buffered.append(part)
        }
        // Otherwise a local response was already chosen; the rest of the body is dropped.
    }

    private func flushUpstream() {
        guard needsFlush else { return }
        needsFlush = false
        request?.upstream?.handler.flush()
    }

    /// The request's deadline passed (`ResponseDeadlines`): it waited too long for a pooled
    /// connection, or its response head did not come in time.
    func deadlinePassed() {
        guard let req = request else { return }
        if stopWaiting() {
            let name = req.backend.spec.name
            failBeforeResponse(.gatewayTimeout, "upstream connect timeout: backend '\(name)' (no connection became free in time)",
                               failure: .timeout)
            return
        }
        guard let up = req.upstream else { return }
        if req.responseHeadSent {
            bodyReadDeadlinePassed(req, upstream: up)
            return
        }
        up.handler.delegate = nil
        up.close()
        req.upstream = nil
        if sendAgain(req, after: .timeout, on: up) { return }
        let name = req.backend.spec.name
        failBeforeResponse(.gatewayTimeout, "upstream response timeout: backend '\(name)'", failure: .timeout)
    }

    /// A response body's read timeout was armed `readTimeout` ago (at the end of a read that
    /// left the response unfinished): a read from the backend since, or a read held back because the
    /// client is the slow side, arms it again (as does resuming a held read,
    /// `channelWritabilityChanged`); otherwise the backend has sent nothing for a
    /// whole `readTimeout` and the exchange fails the way any upstream failure after the head
    /// does (the client's connection, or stream, is closed; recorded as a timeout).
    private func bodyReadDeadlinePassed(_ req: RequestState, upstream up: UpstreamConnection) {
        if up.handler.reads != req.upstreamReadsAtArm || up.handler.readPending {
            armBodyReadDeadline(req, upstream: up)
            return
        }
        up.handler.delegate = nil
        upstreamFailed(.timeout)
    }

    func armBodyReadDeadline(_ req: RequestState, upstream up: UpstreamConnection) {
        req.upstreamReadsAtArm = up.handler.reads
        deadlines.arm(req, owner: self, in: req.backend.readTimeout)
    }

    // MARK: Responses

    /// Answers with a proxy-made error before any response byte went out, and records it.
    func failBeforeResponse(_ status: HTTPResponseStatus, _ message: String, failure: UpstreamFailure?) {
        guard let context, let req = request else { return }
        req.upstream = nil
        req.responseStatus = Int(status.code)
        // A body still on its way is not drained: the connection closes after the answer.
        let close = !req.keepAlive || !(req.requestEnded || req.bodyless)
        finish(code: Int(status.code), failure: failure)
        respondLocally(status: status, message: message, close: close, context: context)
    }

    /// A short `text/plain` response made by the proxy itself.
    func respondLocally(status: HTTPResponseStatus, message: String, close: Bool, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "text/plain; charset=utf-8")
        headers.add(name: "content-length", value: String(message.utf8.count + 1))
        if close { headers.add(name: "connection", value: "close") }
        send(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers)))
        var body = context.channel.allocator.buffer(capacity: message.utf8.count + 1)
        body.writeString(message)
        body.writeString("\n")
        send(.body(.byteBuffer(body)))
        sendEnd(nil, close: close)
    }

    // MARK: Writing to the client

    /// A response part for the client: serialised by the HTTP/1 codec, or written to the
    /// stream as a frame on HTTP/2.
    func send(_ part: HTTPServerResponsePart) {
        if let http1 {
            http1.write(part)
        } else if let context {
            writeFrame(HTTP2StreamParts.payload(part, allocator: context.channel.allocator))
        }
    }

    func flushClient() {
        if let http1 {
            http1.flush()
        } else if let connection {
            if let held = heldFrame.take() { connection.write(held, of: self) }
            connection.flush()
        }
    }

    /// HTTP/2: writes the frame held so far and holds `payload` instead (`HTTP2StreamParts.HeldFrame`).
    func writeFrame(_ payload: HTTP2Frame.FramePayload) {
        if let held = heldFrame.hold(payload) { connection?.write(held, of: self) }
    }

    /// Ends the response and flushes it; with `close`, the connection closes once it is out
    /// (on HTTP/2, the stream is reset with NO_ERROR if the client is still sending: RFC 9113
    /// §8.1; the connection stays).
    func sendEnd(_ trailers: HTTPHeaders?, close: Bool) {
        if let http1 {
            http1.end(trailers, close: close)
            return
        }
        guard let connection, let context else { return }
        let end = heldFrame.end(trailers, allocator: context.channel.allocator)
        if let first = end.first { connection.write(first, of: self) }
        connection.writeEnd(end.last, of: self, reset: close && !streamRemoteEnded)
    }

    /// Closes the client's side at once, mid-response (HTTP/2: resets the stream with CANCEL).
    func closeClient() {
        if let connection {
            connection.reset(self, .cancel)
        } else {
            context?.close(promise: nil)
        }
    }

    /// The access log line (when `server.accessLog` is on) and every upstream error (always).
    private func log(_ req: RequestState, code: Int, seconds: Double, failure: UpstreamFailure?) {
        let route = req.snapshot.table[req.decision.route].name
        let backend = req.backend.spec
        var metadata: Logger.Metadata = [
            "route": "\(route)", "backend": "\(backend.name)", "version": "\(backend.version)",
            "status": "\(code)", "duration_ms": "\(Int((seconds * 1000).rounded()))",
            "method": "\(req.upstreamHead.method.rawValue)", "target": "\(req.upstreamHead.uri)",
        ]
        if let upstream = req.upstream?.address { metadata["upstream"] = "\(upstream)" }
        if let failure {
            metadata["reason"] = "\(failure.rawValue)"
            loop.logger.warning("upstream error", metadata: metadata)
        } else {
            loop.logger.info("request", metadata: metadata)
        }
    }

    /// The one place where a request's outcome is recorded and its state released.
    func finish(code: Int, failure: UpstreamFailure?) {
        // Moved out, not copied and then cleared: no retain.
        guard let req = request.take() else { return }
        req.deadline = nil
        let end = NIODeadline.now()
        let seconds = Double((end - req.start).nanoseconds) / 1e9
        stats.recordRequest(series: req.series, code: code, seconds: seconds, now: end.uptimeNanoseconds)
        stats.adjustInflight(series: req.series, by: -1)
        if let failure { stats.recordUpstreamError(series: req.series, reason: failure.metricReason) }
        if failure != nil || req.snapshot.accessLog {
            log(req, code: code, seconds: seconds, failure: failure)
        }
        // Moved out too (the request is over): the pool takes it over without a retain.
        if let up = req.upstream.take() {
            if req.upstreamReusable && req.requestEnded {
                pool.release(up)
            } else {
                up.handler.delegate = nil
                up.close()
            }
        }
        resumeRead()
    }
}

/// An HTTP/2 stream's exchange, held by its connection (`HTTP2ClientConnection`).
extension DownstreamHandler: HTTP2HeldStream {
    var inRead: Bool {
        get { inClientRead }
        set { inClientRead = newValue }
    }

    func readComplete() {
        clientReadComplete()
    }

    func sendWritabilityChanged(_ isWritable: Bool) {
        clientWritabilityChanged(isWritable)
    }
}

@available(*, unavailable)
extension DownstreamHandler: Sendable {}

extension UpstreamFailure {
    var metricReason: UpstreamErrorReason {
        switch self {
        case .connect: .connect
        case .timeout: .timeout
        case .reset: .reset
        case .protocolError: .protocol
        }
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
