import Foundation
import Testing
@testable import SluiceProxy
import SluiceConfig

extension EndToEnd {
/// HTTP/2 flow control at the backend side (`HTTP2BackendConnection`, `protocol: h2`): request
/// bodies larger than the backend's windows go through as it gives them back, the proxy gives
/// its own windows back as responses pass on to their clients, and stops while a client takes
/// nothing more.
@Suite struct HTTP2BackendFlow {
    static func config(port: Int? = nil, timeout: String? = nil) -> String {
        EndToEnd.HTTP2AndTLS.h2BackendConfig(port: port, timeout: timeout)
    }

    /// The pattern `/bytes/N` streams: byte i is i % 251.
    static func pattern(_ count: Int) -> [UInt8] { (0..<count).map { UInt8($0 % 251) } }

    /// A 4 MiB upload to `/echo` comes back byte for byte over one stream: the proxy may send
    /// only 65,535 bytes on it, and on the connection, until the backend gives its windows back
    /// (RFC 9113 §6.9), and the response's 4 MiB need the proxy's WINDOW_UPDATEs the same way.
    /// Stalled windows on either side would leave the request to its 10 s timeout.
    @Test func aLargeUploadAndItsEchoPassTheWindowsBothWays() async throws {
        try await Harness.withYAML(backends: [.init(version: "v1", h2c: true)],
                                   config: Self.config(timeout: "10s")) { h in
            let body = Self.pattern(4 << 20).reversed() as [UInt8]
            let client = try h.client()
            try client.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: \(body.count)\r\n\r\n")
            try client.send(body)
            let r = try client.readResponse()
            #expect(r.status == 200)
            #expect(r.body.count == body.count)
            #expect(r.body == body)
        }
    }

    /// Twenty 1 MiB downloads at once share the backend connection's 64 KiB window: each
    /// arrives whole, in order.
    @Test func concurrentDownloadsShareTheConnectionsWindow() async throws {
        try await Harness.withYAML(backends: [.init(version: "v1", h2c: true)], config: Self.config()) { h in
            let size = 1 << 20
            let clients = try (0..<20).map { _ in try h.client() }
            for client in clients { try client.send("GET /bytes/\(size) HTTP/1.1\r\nHost: t\r\n\r\n") }
            let expected = Self.pattern(size)
            for client in clients {
                let r = try client.readResponse()
                #expect(r.status == 200)
                #expect(r.body.count == size)
                #expect(r.body == expected)
            }
        }
    }

    /// A client that reads nothing of a response twice the bound below: the proxy stops giving the backend's
    /// stream window back once the client's connection takes no more, so what the backend can
    /// send stays bounded (the client's 64 KiB receive buffer, the proxy's socket send buffer,
    /// `tcp_wmem`'s maximum: 4 MiB by default, and a window or two in flight; the bound is that
    /// maximum plus 2 MiB); once the client reads, all of it comes, byte for byte. Without the
    /// hold the proxy would take in the whole response. The backend is raw frames that send only
    /// as far as the windows allow.
    @Test func aResponseWaitsInTheBackendWhileItsClientReadsNothing() async throws {
        let sendBufferMax = (try? String(contentsOfFile: "/proc/sys/net/ipv4/tcp_wmem", encoding: .utf8))
            .flatMap { $0.split(whereSeparator: \.isWhitespace).last.flatMap { Int($0) } } ?? (4 << 20)
        let bound = sendBufferMax + (2 << 20)
        let offered = 2 * bound
        let backend = try RawBackend()
        let held = LockedBox<Int?>(nil)
        let clientReads = DispatchSemaphore(value: 0)
        let streamWindowLeft = LockedBox<Int?>(nil)
        let sentAll = LockedBox(false)
        let served = backend.serve { accept in
            guard let proxy = accept(), proxy.awaitRequest() else { return }
            proxy.setTimeout(0.2)
            var connectionWindow = 65_535, streamWindow = 65_535, sent = 0
            let chunk = Self.pattern(16_384 * 251).prefix(16_384 * 251)
            do {
                try proxy.send(RawHTTP2.headers(stream: 1, [(":status", "200")], endStream: false))
                /// Sends what the windows allow, then reads one frame; true when stream 1 got more window.
                func step() throws -> Bool {
                    while sent < offered {
                        let n = min(16_384, connectionWindow, streamWindow, offered - sent)
                        guard n > 0 else { break }
                        let start = sent % 251
                        let payload = Array(chunk[start..<(start + n)])
                        try proxy.send(RawHTTP2.data(stream: 1, payload, endStream: sent + n == offered))
                        sent += n
                        connectionWindow -= n
                        streamWindow -= n
                    }
                    guard let frame = try proxy.readFrame() else { return false }
                    guard frame.type == 0x08 else { return false }
                    if frame.stream == 0 { connectionWindow += frame.increment } else if frame.stream == 1 {
                        streamWindow += frame.increment
                        return true
                    }
                    return false
                }
                // The client reads nothing: the total grows, then stops (bounded: 30 s).
                let phaseEnd = Date().addingTimeInterval(30)
                var lastGrowth = Date()
                while Date().timeIntervalSince(lastGrowth) < 1.5, Date() < phaseEnd, sent < offered {
                    if try step() { lastGrowth = Date() }
                }
                held.withLock { $0 = sent }
                streamWindowLeft.withLock { $0 = streamWindow }
                guard clientReads.wait(timeout: .now() + 30) == .success else { return }
                // The client reads: the rest goes (bounded: 60 s).
                let end = Date().addingTimeInterval(60)
                while sent < offered, Date() < end { _ = try step() }
                sentAll.withLock { $0 = sent == offered }
                _ = proxy.waitForClose()
            } catch {
                return
            }
        }
        let config = Self.config(port: backend.port, timeout: "90s")
        try await Harness.withYAML(backends: [], config: config) { h in
            let client = try RawHTTPClient(port: h.port, timeout: 60, receiveBuffer: 65_536)
            try client.send("GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
            #expect(waitUntil(timeout: 40) { held.withLock { $0 } != nil })
            let let_in = held.withLock { $0 } ?? offered
            #expect(let_in <= bound, "the proxy let in \(let_in) bytes of \(offered) while its client read nothing")
            #expect(let_in > 65_535, "no window given back while the client's socket still took bytes")
            #expect(streamWindowLeft.withLock { $0 } == 0, "the backend was not waiting on stream 1's window")
            clientReads.signal()
            let r = try client.readResponse()
            #expect(r.status == 200)
            #expect(r.body.count == offered)
            #expect(r.body == Self.pattern(offered))
            #expect(sentAll.withLock { $0 })
        }
        clientReads.signal()
        #expect(served.wait(timeout: .now() + 15) == .success)
    }

    /// An upload to a backend that gives no window back: the proxy may send it 65,535 bytes,
    /// holds at most `HTTP2Window.highWater` more, and then stops reading the client,
    /// so what the client gets to send stays bounded (its socket's send buffer and the proxy's
    /// receive buffer: `tcp_wmem`'s and `tcp_rmem`'s maxima, and 2 MiB for what is in flight);
    /// once the backend opens its windows, all of it arrives. Without the hold, the proxy would
    /// read the whole upload into NIOHTTP2's buffer.
    @Test func anUploadWaitsInTheClientWhileTheBackendGivesNoWindow() async throws {
        func maximum(_ file: String) -> Int {
            (try? String(contentsOfFile: file, encoding: .utf8))
                .flatMap { $0.split(whereSeparator: \.isWhitespace).last.flatMap { Int($0) } } ?? (6 << 20)
        }
        let bound = maximum("/proc/sys/net/ipv4/tcp_wmem") + maximum("/proc/sys/net/ipv4/tcp_rmem") + (2 << 20)
        let offered = 2 * bound
        let backend = try RawBackend()
        let opens = DispatchSemaphore(value: 0)
        let received = LockedBox(0)
        let served = backend.serve { accept in
            guard let proxy = accept(), proxy.awaitRequest() else { return }
            guard opens.wait(timeout: .now() + 60) == .success else { return }
            do {
                try proxy.send(RawHTTP2.windowUpdate(stream: 0, increment: 0x7FFF_0000)
                               + RawHTTP2.windowUpdate(stream: 1, increment: 0x7FFF_0000))
                for _ in 0..<(offered / 1_000 + 1_000) {
                    guard let frame = try proxy.readFrame() else { continue }
                    if frame.type == 0x00, frame.stream == 1 { received.withLock { $0 += frame.payload.count } }
                    if frame.endsStream { break }
                }
                try proxy.send(RawHTTP2.headers(stream: 1, [(":status", "200")]))
                _ = proxy.waitForClose()
            } catch {
                return
            }
        }
        let config = Self.config(port: backend.port, timeout: "90s")
        try await Harness.withYAML(backends: [], config: config) { h in
            let client = try RawHTTPClient(port: h.port, timeout: 0.2)
            try client.send("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: \(offered)\r\n\r\n")
            let block = [UInt8](repeating: 0x5A, count: 65_536)
            var sent = 0
            /// Sends what the socket takes within 0.2 s; true when it took something.
            func step() -> Bool {
                let n = client.sendSome(block[..<min(block.count, offered - sent)])
                sent += n
                return n > 0
            }
            // The backend gives no window: the client's sending stops (bounded: 30 s).
            let phaseEnd = Date().addingTimeInterval(30)
            var lastGrowth = Date()
            while Date().timeIntervalSince(lastGrowth) < 1.5, Date() < phaseEnd, sent < offered {
                if step() { lastGrowth = Date() }
            }
            #expect(sent <= bound, "the proxy took \(sent) bytes of \(offered) while the backend gave no window")
            // The backend opens its windows: the rest goes (bounded: 60 s).
            opens.signal()
            let end = Date().addingTimeInterval(60)
            while sent < offered, Date() < end { _ = step() }
            #expect(sent == offered)
            client.setTimeout(30)
            let r = try client.readResponse()
            #expect(r.status == 200)
            #expect(received.withLock { $0 } == offered)
        }
        opens.signal()
        #expect(served.wait(timeout: .now() + 15) == .success)
    }

    /// A response whose last DATA frame also fills the connection's window to the point where
    /// the proxy gives it back: the WINDOW_UPDATE written for it made NIOHTTP2 report the
    /// stream's close before that frame reached the stream, so the client got a truncated
    /// response (one request in 16,384 of h2load's two-byte answers did).
    @Test func aResponseEndingAsTheConnectionsWindowIsGivenBackArrivesWhole() async throws {
        let backend = try RawBackend()
        let served = backend.serve { accept in
            guard let proxy = accept(), proxy.awaitRequest() else { return }
            let half = [UInt8](repeating: 0x61, count: 16_384)
            try? proxy.send(RawHTTP2.headers(stream: 1, [(":status", "200")], endStream: false)
                            + RawHTTP2.data(stream: 1, half) + RawHTTP2.data(stream: 1, half, endStream: true))
            _ = proxy.waitForClose()
        }
        let config = Self.config(port: backend.port)
        try await Harness.withYAML(backends: [], config: config) { h in
            let r = try h.client().request("GET", "/two-halves")
            #expect(r.status == 200)
            #expect(r.body.count == 32_768)
            #expect(try h.statistics().series.first?.codes[200] == 1)
        }
        #expect(served.wait(timeout: .now() + 15) == .success)
    }
}
}
