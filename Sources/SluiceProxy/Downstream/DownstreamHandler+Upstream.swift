import NIOCore
import NIOHTTP1

/// Upstream → client: the response half of the exchange.
extension DownstreamHandler: UpstreamDelegate {
    var downstreamIsWritable: Bool {
        if let connection { return connection.isWritable(self) }
        return context?.channel.isWritable ?? false
    }

    func upstreamResponseHead(_ head: ResponseHead) {
        guard let req = request, context != nil else { return }
        req.deadline = nil
        let forwarded = HeaderRewrite.forwardResponse(head)
        let framed = forwarded.framed
        req.upstreamReusable = HeaderRewrite.upstreamReusable(status: head.status, keepAlive: forwarded.keepAlive,
                                                              framed: framed, requestWasHEAD: req.isHEAD)
        // Fields the proxy adds after the backend's own (most responses: none).
        var extra: [(String, String)] = []
        if head.status == .switchingProtocols, req.upgrade != nil,
           let upgrade = forwarded.upgrade {
            // The backend accepted the WebSocket handshake: pass the 101 on with its upgrade
            // fields; the tunnel starts when the response ends.
            extra.append(("connection", "upgrade"))
            extra.append(("upgrade", upgrade))
            req.tunnel = true
        }
        if let cookie = req.decision.assignCookie {
            extra.append(("set-cookie", cookie.headerValue))
        }
        // A body whose end is unknown is chunked for HTTP/1.1 clients; an HTTP/1.0 client gets
        // it raw, ended by closing the connection.
        if req.clientIsHTTP10 && !req.upstreamReusable && !framed { req.keepAlive = false }
        if (!req.keepAlive || closeWhenIdle) && !req.tunnel { extra.append(("connection", "close")) }
        req.responseHeadSent = true
        req.responseStatus = Int(head.status.code)
        // A trailers-only gRPC answer carries grpc-status in the head.
        req.grpcStatus = forwarded.grpcStatus
        let version: HTTPVersion = req.clientIsHTTP10 ? .http1_0 : .http1_1
        if let http1 {
            // HTTP/1.1 client: the kept field lines are copied as bytes.
            http1.writeForwardedHead(head, version: version, forwarded: forwarded, extra: extra)
        } else {
            // HTTP/2 client: an HPACK block made from the kept field lines.
            let headers = HTTP2StreamParts.responseHeaders(head, forwarded: forwarded, extra: extra)
            writeFrame(.headers(.init(headers: headers)))
        }
    }

    func upstreamResponseBody(_ body: ByteBuffer) {
        guard request != nil else { return }
        if let http1 {
            http1.writeBody(body)
        } else {
            send(.body(.byteBuffer(body)))
        }
    }

    func upstreamReadComplete() {
        flushClient()
        // A response still under way after this read: its body's read timeout runs (armed
        // once per `readTimeout`, not per read; a response read whole never arms it).
        if let req = request, req.responseHeadSent, req.deadline == nil, let up = req.upstream, !req.tunnel {
            armBodyReadDeadline(req, upstream: up)
        }
    }

    func upstreamResponseEnd(_ trailers: HTTPHeaders?) {
        guard let req = request, context != nil else { return }
        if req.tunnel, let conn = req.upstream, let context {
            req.upstream = nil
            finish(code: 101, failure: nil)
            sendEnd(nil, close: false)
            startTunnel(to: conn, series: req.series, context: context)
            return
        }
        let close = !req.keepAlive || closeWhenIdle || !req.requestEnded
        let grpcFailed = (trailers?.first(name: "grpc-status") ?? req.grpcStatus).map { $0 != "0" } ?? false
        // Finish first: once the end is written the codec may take up the next pipelined
        // request, and that request must find a clean slate.
        finish(code: req.responseStatus, failure: nil)
        if grpcFailed { stats.recordGRPCError(series: req.series, now: NIODeadline.now().uptimeNanoseconds) }
        sendEnd(trailers, close: close)
    }

    func upstreamFailed(_ reason: UpstreamFailure) {
        guard let req = request, context != nil else { return }
        let conn = req.upstream
        req.upstream = nil
        conn?.close()
        if req.responseHeadSent {
            // Part of the response is out: the only honest signal left is to close (an
            // HTTP/2 stream is reset).
            finish(code: req.responseStatus, failure: reason)
            closeClient()
            return
        }
        if let conn, sendAgain(req, after: reason, on: conn) { return }
        let name = req.backend.spec.name
        switch reason {
        case .timeout:
            failBeforeResponse(.gatewayTimeout, "upstream timeout: backend '\(name)'", failure: .timeout)
        case .protocolError:
            failBeforeResponse(.badGateway, "upstream sent an invalid response: backend '\(name)'", failure: .protocolError)
        case .connect:
            failBeforeResponse(.badGateway, "upstream connect failed: backend '\(name)'", failure: .connect)
        case .reset:
            failBeforeResponse(.badGateway, "upstream connection reset: backend '\(name)'", failure: .reset)
        }
    }

    /// Sends the request again, once, when the backend never answered it and it had no body: on
    /// a fresh connection when a pooled one failed (the backend had closed it while idle) or an
    /// HTTP/2 backend refused its stream (REFUSED_STREAM, or above its GOAWAY's last stream ID:
    /// not processed, so safe for any method, RFC 9113 §8.7), and on another endpoint when an
    /// idempotent request's connection was reset (the instance went away mid-request: a
    /// restart, a crash) or its response head did not come within the backend's `timeout` (a
    /// hung instance) — nginx's `proxy_next_upstream error timeout`. A request that times out
    /// there too gets its 504 after two timeouts. True when sent again.
    /// `conn`: the failed connection, already closed and no longer the request's.
    func sendAgain(_ req: RequestState, after reason: UpstreamFailure, on conn: UpstreamConnection) -> Bool {
        guard !req.retried, req.requestEnded, req.requestBodyBytes == 0 else { return false }
        let refused = reason == .reset && conn.handler.refused
        let stale = reason != .timeout && conn.requestsServed > 1
        let elsewhere = !refused && (reason == .reset || reason == .timeout) && req.upstreamHead.method.isIdempotent
            && req.backend.endpoints.count > 1
        guard refused || stale || elsewhere else { return false }
        req.retried = true
        req.deadline = nil
        req.buffered = [.end(nil)]
        if elsewhere {
            req.avoidEndpoint = conn.address
            stats.recordUpstreamError(series: req.series, reason: reason.metricReason)
            loop.logger.warning(reason == .timeout ? "upstream response timeout, trying another endpoint"
                                                   : "upstream connection reset before a response, trying another endpoint",
                                metadata: ["backend": "\(req.backend.spec.name)", "endpoint": "\(conn.address.endpointText)"])
        }
        connectUpstream(req)
        return true
    }

    func upstreamWritabilityChanged(isWritable: Bool) {
        if isWritable { resumeRead() }
    }
}

/// Waiting for a pooled connection or a connect slot (`UpstreamPool.wait`).
extension DownstreamHandler: ConnectionWaiter {
    func takeConnection(_ conn: UpstreamConnection) -> Bool {
        guard stopWaiting() else { return false }
        attach(conn)
        return true
    }

    func connectSlotFreed() -> Bool {
        guard stopWaiting() else { return false }
        connectUpstream()
        return true
    }

    /// Ends the request's wait in the pool; false when it was not waiting (it ended, or got a
    /// connection or a 504 already).
    func stopWaiting() -> Bool {
        guard let req = request, req.waiting else { return false }
        req.waiting = false
        req.connecting = false
        req.deadline = nil
        return true
    }
}
