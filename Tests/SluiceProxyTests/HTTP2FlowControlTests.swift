#if canImport(Glibc)
import Glibc
#endif
import Foundation
import NIOCore
import NIOHPACK
import Testing
@testable import SluiceProxy
import SluiceConfig

private let hasCurl = FileManager.default.isExecutableFile(atPath: "/usr/bin/curl")
private let hasH2load = FileManager.default.isExecutableFile(atPath: "/usr/bin/h2load")

extension EndToEnd {
/// HTTP/2 flow control at the client side (`HTTP2ClientConnection`): the proxy gives its
/// receive windows back as request bodies pass on (and stops while the backend takes nothing
/// more), respects the client's windows for responses, and ends streams the way RFC 9113 asks
/// when either side stops early (a client's RST_STREAM, an answer before the request's end).
@Suite struct HTTP2FlowControl {
    static let any = SocketAddressSpec(host: "127.0.0.1", port: 0)

    static func request(_ method: String, _ path: String) -> [(String, String)] {
        [(":method", method), (":scheme", "http"), (":authority", "a"), (":path", path)]
    }

    /// A 2 MiB upload over h2c (curl, `-T -` from standard input to `/echo`) comes back byte
    /// for byte, and the backend saw exactly 2 MiB. A client may send only 65,535 bytes on a
    /// stream, and on the connection, until the proxy sends WINDOW_UPDATEs (RFC 9113 §6.9): if
    /// they did not come, as the data passed on, the upload would stall at 64 KiB and curl
    /// would time out.
    @Test(.enabled(if: hasCurl)) func aLargeUploadGetsWindowUpdatesAndArrivesWhole() async throws {
        try await Harness.with(backends: [.init(version: "v1")], listener: ListenerSpec(address: Self.any, h2c: true)) { h in
            let size = 2 << 20
            // Bytes that differ along the body, so a chunk lost, doubled or reordered shows.
            let body = Data((0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 13) })
            let r = try runTool("/usr/bin/curl", ["-s", "--max-time", "20", "--http2-prior-knowledge", "-T", "-",
                                                  "http://127.0.0.1:\(h.port)/echo"], input: body, errorsInOutput: false)
            #expect(r.status == 0, "curl exit status \(r.status)")
            #expect(r.out.count == size)
            #expect(r.out == body, "the echoed body differs from the upload")
            #expect(h.backends[0].received.last?.method == "PUT")
            #expect(h.backends[0].received.last?.bodyBytes == size)
        }
    }

    /// A 64 MiB response over h2c (curl) arrives with exactly that many bytes. curl announces
    /// 32 MiB windows (its SETTINGS for each stream, a WINDOW_UPDATE for the connection) and
    /// gives them back as it reads: the proxy must take its windows from those frames and count
    /// what it writes against them. Taking the stream's from the protocol's default (65,535)
    /// would leave the stream with no room after 64 KiB, and missing curl's WINDOW_UPDATEs
    /// would leave it none after 32 MiB: the transfer would stall until curl's time limit.
    @Test(.enabled(if: hasCurl)) func aLargeResponseFollowsTheClientsWindows() async throws {
        try await Harness.with(backends: [.init(version: "v1")], listener: ListenerSpec(address: Self.any, h2c: true)) { h in
            let size = 64 << 20
            let r = try runTool("/usr/bin/curl", ["-s", "--max-time", "30", "--http2-prior-knowledge", "-o", "/dev/null",
                                                  "-w", "%{http_code} %{size_download} %{http_version}",
                                                  "http://127.0.0.1:\(h.port)/bytes/\(size)"], errorsInOutput: false)
            #expect(r.status == 0, "curl exit status \(r.status)")
            #expect(String(decoding: r.out, as: UTF8.self) == "200 \(size) 2")
            #expect(try h.statistics().series.first?.codes[200] == 1)
        }
    }

    /// Two responses (8 MiB and 1 MiB) multiplexed on one connection whose client (h2load)
    /// gives 65,535-byte windows, to each stream and to the connection, and gives them back as
    /// it reads: both arrive whole, the 9,437,184 data bytes exactly. The streams share the
    /// connection's window, so the proxy must count each stream's DATA against both windows,
    /// and resume the streams it held as WINDOW_UPDATEs come (a stream left unwritable would
    /// stall, and one written past its window would be a flow-control error, RFC 9113 §6.9.1).
    /// (curl 7.88 cannot run two transfers over one prior-knowledge connection: curl/curl#10634.)
    @Test(.enabled(if: hasH2load)) func multiplexedResponsesShareSmallWindows() async throws {
        try await Harness.with(backends: [.init(version: "v1")], listener: ListenerSpec(address: Self.any, h2c: true)) { h in
            let base = "http://127.0.0.1:\(h.port)"
            let r = try runTool("/usr/bin/h2load", ["-n", "2", "-c", "1", "-m", "2", "-w", "16", "-W", "16", "-N", "20",
                                                    base + "/bytes/8388608", base + "/bytes/1048576"], errorsInOutput: false)
            let out = String(decoding: r.out, as: UTF8.self)
            #expect(r.status == 0, "h2load exit status \(r.status)")
            #expect(out.contains("2 succeeded, 0 failed"), "\(out)")
            #expect(out.contains("(9437184) data"), "\(out)")
            #expect(try h.statistics().series.first?.codes[200] == 2)
            #expect(h.backends[0].received.map(\.uri).sorted() == ["/bytes/1048576", "/bytes/8388608"])
        }
    }

    /// A request body the backend does not read: the proxy lets in only what its upstream
    /// socket and one window hold, by not giving stream 1's window back while the upstream
    /// connection is not writable; then, once the backend reads, everything arrives.
    ///
    /// The client offers 64 MiB and sends only as far as the proxy's WINDOW_UPDATEs allow (the
    /// connection's and stream 1's windows, 65,535 each at first). The total stops growing (no
    /// WINDOW_UPDATE for stream 1 for 1.5 s) with stream 1's window used up and the
    /// connection's given back, below a bound far under 64 MiB: between the client and the
    /// backend sit the backend's receive buffer (fixed here at 64 KiB, which Linux doubles:
    /// 128 KiB, no autotuning), the proxy's upstream send buffer (autotuned, at most
    /// `tcp_wmem`'s maximum: 4 MiB by default, 4.2 MiB let in here), NIO's pending writes (its
    /// 64 KiB high-water mark and the read that crossed it) and one stream window (64 KiB): with
    /// the default, about 4.5 MiB at worst; the bound is `tcp_wmem`'s maximum plus 4 MiB (8 MiB
    /// by default; a host with larger buffers gets a larger bound, and an offer four times it).
    /// A proxy that gave the window back regardless would buffer all 64 MiB in memory, and let
    /// it all in.
    @Test func anUploadTheBackendDoesNotReadIsHeldAtAWindow() async throws {
        let sendBufferMax = (try? String(contentsOfFile: "/proc/sys/net/ipv4/tcp_wmem", encoding: .utf8))
            .flatMap { $0.split(whereSeparator: \.isWhitespace).last.flatMap { Int($0) } } ?? 4 << 20
        let bound = sendBufferMax + (4 << 20)
        let offered = max(64 << 20, 4 * bound)
        let backend = try RawBackend()
        var receiveBuffer: Int32 = 65_536 // inherited by the accepted connection
        setsockopt(backend.listener, SOL_SOCKET, SO_RCVBUF, &receiveBuffer, socklen_t(MemoryLayout<Int32>.size))
        let startReading = DispatchSemaphore(value: 0)
        let bodyReceived = LockedBox<Int?>(nil)
        let served = backend.serve { accept in
            guard let proxy = accept() else { return }
            // Reads nothing until the test says so (at most 60 s).
            guard startReading.wait(timeout: .now() + 60) == .success else { return }
            do {
                while try !proxy.readLine().isEmpty {}
                var total = 0
                while true { // chunked, as the proxy sends a body of unknown length
                    guard let size = Int(try proxy.readLine(), radix: 16) else { return }
                    if size == 0 { break }
                    total += try proxy.readBytes(size).count
                    _ = try proxy.readLine()
                }
                _ = try proxy.readLine()
                bodyReceived.withLock { $0 = total }
                try proxy.send("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                _ = proxy.waitForClose()
            } catch {
                return
            }
        }
        try await Harness.with(backends: [], specs: { _ in [Harness.spec("b0", "v1", ["127.0.0.1:\(backend.port)"])] },
                               listener: ListenerSpec(address: Self.any, h2c: true)) { h in
            // A short read timeout: the client sends whenever a read finds nothing.
            let client = try RawHTTPClient(port: h.port, timeout: 0.2)
            try client.send(RawHTTP2.clientPreface + RawHTTP2.emptySettings)
            try client.send(RawHTTP2.headers(stream: 1, Self.request("POST", "/upload"), endStream: false))
            var connectionWindow = 65_535, streamWindow = 65_535, sent = 0
            var status: String?, ended = false, resetCode: UInt32?, goAwayCode: UInt32?
            var decoder = HPACKDecoder(allocator: ByteBufferAllocator())
            let block = [UInt8](repeating: 0x5A, count: 16_384)
            /// Sends what the windows allow, then reads one frame (none within 0.2 s: nil);
            /// true when it gave stream 1 more window.
            func step() throws -> Bool {
                while sent < offered {
                    let n = min(block.count, connectionWindow, streamWindow, offered - sent)
                    guard n > 0 else { break }
                    try client.send(RawHTTP2.data(stream: 1, Array(block[..<n]), endStream: sent + n == offered))
                    sent += n
                    connectionWindow -= n
                    streamWindow -= n
                }
                guard let frame = try client.readFrame() else { return false }
                switch (frame.type, frame.stream) {
                case (0x08, 0):
                    connectionWindow += frame.increment
                case (0x08, 1):
                    streamWindow += frame.increment
                    return true
                case (0x01, 1):
                    var bytes = ByteBuffer(bytes: frame.payload)
                    status = try decoder.decodeHeaders(from: &bytes).first(name: ":status") ?? status
                    ended = ended || frame.endsStream
                case (0x00, 1):
                    ended = ended || frame.endsStream
                case (0x03, 1):
                    resetCode = frame.errorCode
                case (0x07, _): // GOAWAY: last stream ID, error code
                    goAwayCode = frame.payload.dropFirst(4).prefix(4).reduce(0) { $0 << 8 | UInt32($1) }
                default:
                    break
                }
                return false
            }

            // The backend reads nothing: the total grows, then stops (bounded: 30 s).
            let phaseEnd = Date().addingTimeInterval(30)
            var lastGrowth = Date()
            while Date().timeIntervalSince(lastGrowth) < 1.5, Date() < phaseEnd, sent < offered,
                  resetCode == nil, goAwayCode == nil {
                if try step() { lastGrowth = Date() }
            }
            let held = sent
            #expect(held <= bound, "the proxy let in \(held) bytes of \(offered) while the backend read nothing")
            #expect(held > 65_535, "no window given back while the backend's socket still took bytes")
            #expect(streamWindow == 0, "the client was not waiting on stream 1's window (\(streamWindow) left)")
            #expect(connectionWindow > 0, "the connection's window was not given back as DATA arrived")
            #expect(resetCode == nil && goAwayCode == nil && status == nil)

            // The backend reads: the rest goes through, and the response ends the stream (60 s).
            startReading.signal()
            let end = Date().addingTimeInterval(60)
            while !ended, resetCode == nil, goAwayCode == nil, Date() < end { _ = try step() }
            #expect(sent == offered)
            #expect(ended && status == "200", "status \(status ?? "none"), ended \(ended)")
            #expect(resetCode == nil, "stream 1 reset with \(resetCode ?? 0)")
            #expect(goAwayCode == nil, "GOAWAY \(goAwayCode ?? 0)")
            #expect(bodyReceived.withLock { $0 } == offered)
            #expect(try h.statistics().series.first?.codes[200] == 1)
        }
        startReading.signal()
        #expect(served.wait(timeout: .now() + 15) == .success)
    }

    /// A client that resets its stream (RST_STREAM CANCEL) once the response head has come,
    /// while a 1 MiB response waits for the 1,000-byte window it was given: the exchange ends
    /// at once, recorded 499 (the client left, as an HTTP/1.1 client closing its connection),
    /// and is no longer in flight; the connection goes on, and a new stream (3) is served
    /// whole. Without the reset ending it, the exchange would stay in flight until the idle
    /// timeout (60 s) reset the stalled stream itself.
    @Test func aStreamTheClientResetsMidResponseEndsAs499() async throws {
        try await Harness.with(backends: [.init(version: "v1")], listener: ListenerSpec(address: Self.any, h2c: true)) { h in
            let client = try RawHTTPClient(port: h.port, timeout: 5)
            try client.send(RawHTTP2.clientPreface + RawHTTP2.settings(initialWindowSize: 1_000))
            try client.send(RawHTTP2.headers(stream: 1, Self.request("GET", "/bytes/1048576")))
            var decoder = HPACKDecoder(allocator: ByteBufferAllocator())
            var statuses: [UInt32: String] = [:]
            var dataBytes: [UInt32: Int] = [:]
            var ended: Set<UInt32> = []
            var resets: [UInt32: UInt32] = [:]
            var goAway = false
            /// Reads one frame; false when none came within 5 s.
            func readFrame() throws -> Bool {
                guard let frame = try client.readFrame() else { return false }
                switch frame.type {
                case 0x00: dataBytes[frame.stream, default: 0] += frame.payload.count
                case 0x01:
                    var bytes = ByteBuffer(bytes: frame.payload)
                    if let status = try decoder.decodeHeaders(from: &bytes).first(name: ":status") { statuses[frame.stream] = status }
                case 0x03: resets[frame.stream] = frame.errorCode
                case 0x07: goAway = true
                default: break
                }
                if frame.endsStream { ended.insert(frame.stream) }
                return true
            }
            for _ in 0..<16 where statuses[1] == nil { guard try readFrame() else { break } }
            #expect(statuses[1] == "200")
            try client.send(RawHTTP2.rstStream(stream: 1, code: 0x8)) // CANCEL
            let recorded = try waitUntil(timeout: 5) { try h.statistics().series.first?.codes[499] == 1 }
            let codes = try h.statistics().series.first?.codes ?? [:]
            #expect(recorded, "the reset exchange was not recorded 499: \(codes)")
            #expect(try h.statistics().series.first?.inflight == 0)
            try client.send(RawHTTP2.headers(stream: 3, Self.request("GET", "/bytes/1000")))
            for _ in 0..<64 where !ended.contains(3) { guard try readFrame() else { break } }
            #expect(statuses[3] == "200")
            #expect(dataBytes[3] == 1_000)
            #expect(ended.contains(3))
            #expect(dataBytes[1, default: 0] <= 1_000, "stream 1 got more than its window")
            #expect(!ended.contains(1), "stream 1's response was not cut short")
            #expect(resets[3] == nil && !goAway)
            #expect(try h.statistics().series.first?.codes[200] == 1)
            #expect(try h.statistics().series.first?.inflight == 0)
        }
    }

    /// An answer before the request's end: a POST whose HEADERS frame does not end the stream,
    /// to a path no route matches, gets the proxy's 404 with END_STREAM and then RST_STREAM
    /// NO_ERROR on that stream: "A server can send a complete response prior to the client
    /// sending an entire request ... the server MAY request that the client abort transmission
    /// of a request without error by sending a RST_STREAM with an error code of NO_ERROR after
    /// sending a complete response" (RFC 9113 §8.1). Without the reset, the client would go on
    /// sending a body nobody reads. DATA the client had already sent for that stream is
    /// ignored, and the connection goes on: the next stream is served.
    @Test func anEarlyAnswerEndsTheStreamThenResetsItWithNoError() async throws {
        try await Harness.withTwoVersions(route: "match: { pathPrefix: /e }\nbackend: a",
                                          listener: ListenerSpec(address: Self.any, h2c: true)) { h in
            let client = try RawHTTPClient(port: h.port, timeout: 5)
            try client.send(RawHTTP2.clientPreface + RawHTTP2.emptySettings)
            try client.send(RawHTTP2.headers(stream: 1, Self.request("POST", "/nothing"), endStream: false))
            var decoder = HPACKDecoder(allocator: ByteBufferAllocator())
            var heads: [UInt32: HPACKHeaders] = [:]
            var bodies: [UInt32: [UInt8]] = [:]
            var ended: Set<UInt32> = []
            var resets: [UInt32: UInt32] = [:]
            var endedWhenReset: Bool?
            var goAway = false
            /// Reads one frame; false when none came within 5 s.
            func readFrame() throws -> Bool {
                guard let frame = try client.readFrame() else { return false }
                switch frame.type {
                case 0x00: bodies[frame.stream, default: []] += frame.payload
                case 0x01:
                    var bytes = ByteBuffer(bytes: frame.payload)
                    heads[frame.stream] = try decoder.decodeHeaders(from: &bytes)
                case 0x03:
                    resets[frame.stream] = frame.errorCode
                    if frame.stream == 1 { endedWhenReset = ended.contains(1) }
                case 0x07: goAway = true
                default: break
                }
                if frame.endsStream { ended.insert(frame.stream) }
                return true
            }
            for _ in 0..<16 where resets[1] == nil { guard try readFrame() else { break } }
            #expect(heads[1]?.first(name: ":status") == "404")
            #expect(heads[1]?.contains(name: "connection") == false) // connection-specific (§8.2.2)
            #expect(String(decoding: bodies[1] ?? [], as: UTF8.self) == "no route for POST /nothing\n")
            #expect(endedWhenReset == true, "RST_STREAM before the response's END_STREAM, or none")
            #expect(resets[1] == 0x0, "stream 1 reset with \(resets[1].map(String.init) ?? "nothing"), not NO_ERROR")
            // Body the client had on its way when the reset came, then a new stream.
            try client.send(RawHTTP2.data(stream: 1, [UInt8](repeating: 0x61, count: 1_000)))
            try client.send(RawHTTP2.headers(stream: 3, Self.request("GET", "/e/after")))
            for _ in 0..<16 where !ended.contains(3) { guard try readFrame() else { break } }
            #expect(heads[3]?.first(name: ":status") == "200")
            #expect(ended.contains(3))
            #expect(!goAway)
            #expect(h.backends[0].received.map(\.uri) == ["/e/after"])
            #expect(h.backends[1].received.isEmpty)
        }
    }
}
}
