#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
@testable import SluiceProxy

extension EndToEnd {
/// `SocketWriteThrough`: output sent straight to the socket must stay in order with what NIO
/// writes once the socket is full, and nothing may be lost on the way back to direct sends.
@Suite struct WriteThrough {
    /// The most a socket's send buffer grows to here (`tcp_wmem`'s maximum; 4 MiB by default).
    private static var sendBufferLimit: Int {
        let text = (try? String(contentsOfFile: "/proc/sys/net/ipv4/tcp_wmem", encoding: .utf8)) ?? ""
        return text.split(whereSeparator: \.isWhitespace).last.flatMap { Int($0) } ?? 4 << 20
    }

    /// Reads `count` responses to `GET /bytes/<size>` and describes the first few that are not
    /// whole (status 200, `size` bytes of the backend's pattern).
    private static func wrongResponses(from c: RawHTTPClient, count: Int, size: Int) throws -> [String] {
        var wrong: [String] = []
        for i in 0..<count where wrong.count < 5 {
            let r = try c.readResponse()
            if r.status != 200 || r.body.count != size {
                wrong.append("response \(i): status \(r.status), \(r.body.count) bytes")
            } else if let at = r.body.indices.first(where: { r.body[$0] != UInt8($0 % 251) }) {
                wrong.append("response \(i): byte \(at) is \(r.body[at])")
            }
        }
        return wrong
    }

    @Test func pipelinedResponsesStayWholeAndInOrderWhenTheClientStopsReading() async throws {
        try await Harness.with(backends: [.init(version: "v1")]) { h in
            // Responses of 3,000 bytes: each head and body is one coalesced direct send. Their
            // total is twice what the proxy's send buffer and the client's fixed 64 KiB receive
            // buffer can hold, so while the client reads nothing the proxy must meet a full
            // socket: a short send, the rest through NIO, and the later responses behind it.
            let size = 3_000
            let count = (2 * Self.sendBufferLimit + (1 << 20)) / size
            let before = SocketWriteThrough.shortSends.load(ordering: .relaxed)
            let c = try RawHTTPClient(port: h.port, timeout: 30, receiveBuffer: 65_536)
            // ~40 bytes each: all of them fit in the proxy's receive buffer, so this returns.
            try c.send(String(repeating: "GET /bytes/\(size) HTTP/1.1\r\nHost: t\r\n\r\n", count: count))

            // Not reading until the proxy has found its socket full.
            #expect(waitUntil(timeout: 30) { SocketWriteThrough.shortSends.load(ordering: .relaxed) > before })

            let wrong = try Self.wrongResponses(from: c, count: count, size: size)
            #expect(wrong.isEmpty, "\(wrong)")
            // Direct sends resume once NIO has written its share: the connection still works.
            let after = try c.request("GET", "/after")
            #expect(after.status == 200)
            #expect(after.json["path"] as? String == "/after")
        }
    }

    /// A response that ends its connection (`Connection: close`) is closed right after one
    /// direct send when the socket takes all of it (`HTTP1Output.sendAllBeforeClose`), and
    /// after NIO's write completes when it does not: either way every byte arrives before the
    /// FIN. A close that overtook the last bytes would cut the body short here.
    @Test func closingResponseArrivesWholeThenTheConnectionCloses() async throws {
        try await Harness.with(backends: [.init(version: "v1")]) { h in
            // Direct: a small response, one send. Through NIO: a body larger than the
            // coalescing limit is handed to NIO as it is, so the close waits for its write.
            for size in [0, 3_000, 3 * HTTP1Output.coalesceLimit] {
                let c = try RawHTTPClient(port: h.port, timeout: 30)
                try c.send("GET /bytes/\(size) HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                let r = try c.readResponse()
                #expect(r.status == 200)
                #expect(r.body.count == size)
                #expect(r.body.indices.allSatisfy { r.body[$0] == UInt8($0 % 251) })
                #expect(r.header("connection")?.lowercased() == "close")
                #expect(c.waitForClose(), "size \(size): the proxy did not close the connection")
            }
            // HTTP/1.0 without keep-alive closes the same way.
            let old = try RawHTTPClient(port: h.port, timeout: 30)
            try old.send("GET /bytes/100 HTTP/1.0\r\nHost: t\r\n\r\n")
            let r = try old.readResponse()
            #expect(r.status == 200)
            #expect(r.body.count == 100)
            #expect(old.waitForClose())
        }
    }

    @Test func closingResponseBehindAFullSocketArrivesWhole() async throws {
        try await Harness.with(backends: [.init(version: "v1")]) { h in
            // As in the pipelining test above, but the last request asks for the close: by then
            // NIO holds earlier responses (the client reads nothing until the socket is full),
            // so the last one cannot go out directly and the close must wait for NIO's write.
            let size = 3_000
            let count = (2 * Self.sendBufferLimit + (1 << 20)) / size
            let before = SocketWriteThrough.shortSends.load(ordering: .relaxed)
            let c = try RawHTTPClient(port: h.port, timeout: 30, receiveBuffer: 65_536)
            try c.send(String(repeating: "GET /bytes/\(size) HTTP/1.1\r\nHost: t\r\n\r\n", count: count - 1)
                       + "GET /bytes/\(size) HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            #expect(waitUntil(timeout: 30) { SocketWriteThrough.shortSends.load(ordering: .relaxed) > before })

            let wrong = try Self.wrongResponses(from: c, count: count, size: size)
            #expect(wrong.isEmpty, "\(wrong)")
            #expect(c.waitForClose())
        }
    }

    @Test func requestBodyStaysWholeWhenTheBackendStopsReading() async throws {
        // A backend that accepts and then reads nothing until the proxy has found its socket
        // full: nothing goes to the client meanwhile (no response yet), so the short send is
        // the upstream side's. The body's small chunks are coalesced (~64 KiB per client read)
        // and sent directly until then, so the socket takes part of a buffer: the rest must go
        // to NIO from where the send stopped (the test fails if it is sent again or skipped).
        // After it, writes queue in NIO and backpressure holds the client.
        let backend = try StalledListener(receiveBuffer: 65_536)
        try await Harness.with(backends: [], specs: { _ in
            [Harness.spec("stalled", "v1", ["127.0.0.1:\(backend.port)"])]
        }) { h in
            let chunk = 1_000
            let count = (2 * Self.sendBufferLimit + (1 << 20)) / chunk
            var body = [UInt8]()
            body.reserveCapacity(count * chunk)
            for i in 0..<(count * chunk) { body.append(UInt8(i % 251)) }
            let before = SocketWriteThrough.shortSends.load(ordering: .relaxed)
            // The client, on its own thread: it uploads (blocking while backpressure holds it),
            // then reads the response.
            let done = DispatchSemaphore(value: 0)
            let outcome = LockedBox<Result<RawHTTPClient.Response, Error>?>(nil)
            let upload = body
            let port = h.port
            Thread.detachNewThread {
                let result = Result<RawHTTPClient.Response, Error> {
                    let c = try RawHTTPClient(port: port, timeout: 30)
                    try c.send("POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
                    for start in stride(from: 0, to: upload.count, by: chunk) {
                        try c.send(Array((String(chunk, radix: 16) + "\r\n").utf8) + upload[start..<start + chunk] + [13, 10])
                    }
                    try c.send("0\r\n\r\n")
                    return try c.readResponse()
                }
                outcome.withLock { $0 = result }
                done.signal()
            }
            let upstream = try backend.accept(timeout: 30)
            #expect(waitUntil(timeout: 30) { SocketWriteThrough.shortSends.load(ordering: .relaxed) > before })

            let head = try upstream.readInterim()
            #expect(head.lowercased().contains("transfer-encoding: chunked"))
            let received = try upstream.readChunkedBody()
            #expect(received.count == body.count)
            #expect(received == body)
            try upstream.send("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            #expect(done.wait(timeout: .now() + 30) == .success)
            let r = try #require(outcome.withLock { $0 }).get()
            #expect(r.status == 200)
            #expect(r.bodyString == "ok")
        }
    }
}
}

/// A loopback listener whose accepted connections are read only when the test says so (a
/// backend that stalls), with a fixed receive buffer so the proxy's socket fills quickly.
private final class StalledListener: Sendable {
    let fd: Int32
    let port: Int

    struct Failure: Error { let call: String, errno: Int32 }

    init(receiveBuffer: Int32) throws {
        let sock = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var size = receiveBuffer // inherited by accepted connections
        setsockopt(sock, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        let port = boundPort(sock)
        guard listen(sock, 8) == 0 else {
            close(sock)
            throw Failure(call: "listen", errno: errno)
        }
        fd = sock
        self.port = port
    }

    deinit { close(fd) }

    /// Waits up to `timeout` seconds for the proxy's connection.
    func accept(timeout: Int) throws -> RawHTTPClient {
        var tv = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let conn = Glibc.accept(fd, nil, nil)
        guard conn >= 0 else { throw Failure(call: "accept", errno: errno) }
        return RawHTTPClient(accepted: conn, timeout: Double(timeout))
    }
}
