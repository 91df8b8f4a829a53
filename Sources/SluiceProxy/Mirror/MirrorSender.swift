import NIOCore
import NIOHTTP1
import SluiceMetrics
import SluiceRouting

/// A shadow copy being collected while the primary request streams.
///
/// The body is teed into `body` as it passes to the primary, up to the route's `maxBodyBytes`;
/// a larger body abandons the copy (counted as dropped) and never holds the primary back.
struct PendingMirror {
    let head: HTTPRequestHead
    let backend: BackendID
    /// The series of (route, shadow backend, version): shadow figures go to their own metrics.
    let series: Int
    let limit: Int
    var body: ByteBuffer?

    /// Tees one body part; false when the copy grew past its limit and must be abandoned.
    mutating func append(_ part: ByteBuffer) -> Bool {
        let size = (body?.readableBytes ?? 0) + part.readableBytes
        guard size <= limit else { return false }
        if body == nil {
            body = part
        } else {
            var copy = part
            body!.writeBuffer(&copy)
        }
        return true
    }
}

/// Fire-and-forget shadow traffic for one event loop (Envoy's shadow writer, bounded).
///
/// A copy is sent only once the primary request has been read completely, over the loop's own
/// upstream pool; its response is read and discarded, its status counted on the shadow's own
/// series. Nothing here ever touches the client's response or waits on it. At most
/// `maxInFlight` copies per loop are outstanding; beyond that a copy is dropped and counted.
///
/// A shadow endpoint that refused a connection is skipped for a while (`EndpointCooldown`): its
/// copies are dropped and counted, not attempted. Without this a dead shadow cost every
/// primary request a failed connect (~70k instructions: a channel built, failed and torn
/// down), cutting the primary's throughput to a quarter.
final class MirrorSender {
    let maxInFlight: Int
    private(set) var inFlight = 0
    private unowned let loop: LoopContext
    private(set) var cooldown = EndpointCooldown()

    init(loop: LoopContext, maxInFlight: Int = 64) {
        self.loop = loop
        self.maxInFlight = maxInFlight
    }

    /// Whether a new copy to `backend` may start now (otherwise it is dropped before any of it
    /// is collected): there is room, and an endpoint is not cooling down.
    func accepts(backend index: Int, of snapshot: Snapshot) -> Bool {
        guard inFlight < maxInFlight else { return false }
        if cooldown.isEmpty { return true }
        let now = NIODeadline.now()
        cooldown.prune(now: now)
        return snapshot.backends[index].endpoints.contains { !cooldown.skips($0, now: now) }
    }

    /// Sends a completed copy to one endpoint of its backend (round-robin over the endpoints
    /// that are not cooling down).
    func send(_ mirror: PendingMirror, snapshot: Snapshot) {
        let backend = snapshot.backends[mirror.backend.index]
        guard inFlight < maxInFlight, let address = endpoint(of: backend, index: mirror.backend.index, snapshot: snapshot) else {
            loop.stats.recordMirror(series: mirror.series, result: .dropped)
            return
        }
        inFlight += 1
        loop.stats.recordMirror(series: mirror.series, result: .sent)
        let exchange = MirrorExchange(sender: self, mirror: mirror, timeout: backend.responseTimeout)
        // An HTTP/2 backend (`protocol: h2`) gets its copy on a stream, as its requests go.
        let h2 = backend.spec.upstreamProtocol == .h2
        if !h2, let conn = loop.pool.takeIdle(address) {
            exchange.start(on: conn)
            return
        }
        let pending = h2 ? loop.pool.openStream(to: address, of: backend, limit: loop.connectionLimit(backend.spec))
                         : loop.pool.connect(address, of: backend)
        pending.whenComplete { [self] result in
            switch result {
            case .success(let conn):
                cooldown.connected(address)
                exchange.start(on: conn)
            case .failure:
                cooldown.connectFailed(address, now: .now())
                exchange.finish(ok: false, conn: nil)
            }
        }
    }

    private func endpoint(of backend: BackendRuntime, index: Int, snapshot: Snapshot) -> SocketAddress? {
        loop.nextEndpoint(of: backend, index: index, generation: snapshot.generation, avoiding: cooldown)
            .map { backend.endpoints[$0] }
    }

    fileprivate func finished(_ mirror: PendingMirror, ok: Bool, code: Int?) {
        inFlight -= 1
        if let code { loop.stats.recordMirrorResponse(series: mirror.series, code: code) }
        loop.stats.recordMirror(series: mirror.series, result: ok ? .completed : .failed)
    }

    fileprivate func release(_ conn: UpstreamConnection, reusable: Bool) {
        if reusable {
            loop.pool.release(conn)
        } else {
            conn.handler.delegate = nil
            conn.close()
        }
    }
}

@available(*, unavailable)
extension MirrorSender: Sendable {}

/// One shadow request on one upstream connection: writes the copy, discards the answer.
final class MirrorExchange: UpstreamDelegate {
    private let sender: MirrorSender
    private let mirror: PendingMirror
    private let timeoutAmount: TimeAmount
    private var conn: UpstreamConnection?
    private var code: Int?
    private var reusable = false
    private var timeout: Scheduled<Void>?
    private var done = false

    init(sender: MirrorSender, mirror: PendingMirror, timeout: TimeAmount) {
        self.sender = sender
        self.mirror = mirror
        self.timeoutAmount = timeout
    }

    func start(on conn: UpstreamConnection) {
        self.conn = conn
        conn.handler.delegate = self
        conn.requestsServed += 1
        // The handler holds its delegate until the lease ends (`finish` and `upstreamFailed`
        // clear it); the scheduled timeout (which captures self) bounds how long that can be.
        timeout = conn.channel.eventLoop.assumeIsolated().scheduleTask(in: timeoutAmount) { [self] in
            self.upstreamFailed(.timeout)
        }
        conn.handler.send(.head(mirror.head))
        if let body = mirror.body { conn.handler.send(.body(.byteBuffer(body))) }
        conn.handler.send(.end(nil))
        conn.handler.flush()
    }

    func finish(ok: Bool, conn: UpstreamConnection?) {
        guard !done else { return }
        done = true
        timeout?.cancel()
        timeout = nil
        sender.finished(mirror, ok: ok, code: code)
        if let conn { sender.release(conn, reusable: ok && reusable) }
    }

    var downstreamIsWritable: Bool { true }

    func upstreamResponseHead(_ head: ResponseHead) {
        code = Int(head.status.code)
        let forwarded = HeaderRewrite.forwardResponse(head)
        reusable = HeaderRewrite.upstreamReusable(status: head.status, keepAlive: forwarded.keepAlive, framed: forwarded.framed,
                                                  requestWasHEAD: mirror.head.method.isHEAD)
    }

    func upstreamResponseBody(_ body: ByteBuffer) {}
    func upstreamReadComplete() {}
    func upstreamResponseEnd(_ trailers: HTTPHeaders?) { finish(ok: true, conn: conn) }
    func upstreamWritabilityChanged(isWritable: Bool) {}

    func upstreamFailed(_ reason: UpstreamFailure) {
        conn?.handler.delegate = nil
        conn?.close()
        finish(ok: false, conn: nil)
    }
}

@available(*, unavailable)
extension MirrorExchange: Sendable {}
