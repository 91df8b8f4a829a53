#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A blocking HTTP/1.1 client over a plain TCP socket, for byte-exact end-to-end tests.
///
/// It writes exactly the bytes a test gives it and parses responses itself, so a test sees
/// what the proxy really sent (framing, headers, connection close). Every read has a timeout,
/// so no test can hang on a silent peer.
final class RawHTTPClient {
    struct Response {
        var status: Int
        var headers: [(String, String)]
        var body: [UInt8]
        /// The header block as received, for byte-level assertions.
        var rawHead: String

        func header(_ name: String) -> String? {
            headers.first { $0.0.lowercased() == name.lowercased() }?.1
        }
        func headers(_ name: String) -> [String] {
            headers.filter { $0.0.lowercased() == name.lowercased() }.map(\.1)
        }
        var bodyString: String { String(decoding: body, as: UTF8.self) }
        /// The body parsed as a JSON object (the test backend's echo).
        var json: [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] ?? [:]
        }
        var echoedHeaders: [String: String] { json["headers"] as? [String: String] ?? [:] }
    }

    enum ClientError: Error { case connect(Int32), closed, timeout, malformed(String) }

    private let fd: Int32
    private var buffer: [UInt8] = []
    private(set) var isClosed = false

    /// `receiveBuffer`: a fixed `SO_RCVBUF` (no autotuning), for tests that fill the socket.
    init(port: Int, timeout: Double = 10, receiveBuffer: Int32? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        if var size = receiveBuffer {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        Self.setTimeouts(fd, timeout)
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if rc != 0 {
            let e = errno
            Glibc.close(fd)
            throw ClientError.connect(e)
        }
    }

    /// The other end of a connection a test accepted (a test's own backend), read and written
    /// the same way.
    init(accepted descriptor: Int32, timeout: Double = 10) {
        fd = descriptor
        Self.setTimeouts(fd, timeout)
    }

    /// Changes the read and write timeouts (seconds).
    func setTimeout(_ timeout: Double) {
        Self.setTimeouts(fd, timeout)
    }

    private static func setTimeouts(_ fd: Int32, _ timeout: Double) {
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { if !isClosed { Glibc.close(fd) } }

    func close() {
        guard !isClosed else { return }
        isClosed = true
        Glibc.close(fd)
    }

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { throw ClientError.closed }
            offset += n
        }
    }

    /// One send of as much of `bytes` as the socket takes within the write timeout: the count
    /// taken (0 when none was).
    func sendSome(_ bytes: ArraySlice<UInt8>) -> Int {
        max(0, bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) })
    }

    /// Whether the peer has sent something not read yet, or closed, without waiting.
    func hasInput() -> Bool {
        if !buffer.isEmpty { return true }
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT)) >= 0
    }

    /// Reads more bytes into the buffer; false on EOF.
    private func fill() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65_536)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n == 0 { return false }
        if n < 0 {
            if errno == EAGAIN || errno == EWOULDBLOCK { throw ClientError.timeout }
            return false
        }
        buffer.append(contentsOf: chunk[0..<n])
        return true
    }

    /// One line (CRLF or LF stripped).
    func readLine() throws -> String {
        while true {
            if let i = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                var line = Array(buffer[..<i])
                buffer.removeFirst(i + 1)
                if line.last == UInt8(ascii: "\r") { line.removeLast() }
                return String(decoding: line, as: UTF8.self)
            }
            guard try fill() else { throw ClientError.closed }
        }
    }

    private func readExactly(_ n: Int) throws -> [UInt8] {
        while buffer.count < n {
            guard try fill() else { throw ClientError.closed }
        }
        let out = Array(buffer[..<n])
        buffer.removeFirst(n)
        return out
    }

    /// Every byte not read yet, up to the peer's close (throws `timeout` when it does not close
    /// within the read timeout).
    func readUntilClose() throws -> [UInt8] {
        while try fill() {}
        defer { buffer = [] }
        return buffer
    }

    /// True when the peer has closed (EOF) within the read timeout.
    func waitForClose() -> Bool {
        while true {
            do { if try !fill() { return true } } catch { return false }
        }
    }

    /// Reads one response; `head: true` for a response to HEAD (no body).
    func readResponse(head: Bool = false) throws -> Response {
        var statusLine = try readLine()
        var rawHead = statusLine + "\r\n"
        var headers: [(String, String)] = []
        var status = 0
        while true {
            let parts = statusLine.split(separator: " ", maxSplits: 2)
            guard parts.count >= 2, let code = Int(parts[1]) else { throw ClientError.malformed(statusLine) }
            status = code
            headers = []
            while true {
                let line = try readLine()
                rawHead += line + "\r\n"
                if line.isEmpty { break }
                guard let colon = line.firstIndex(of: ":") else { throw ClientError.malformed(line) }
                headers.append((String(line[..<colon]), String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces)))
            }
            if (100..<200).contains(status) && status != 101 {
                statusLine = try readLine()
                rawHead = statusLine + "\r\n"
                continue
            }
            break
        }
        var response = Response(status: status, headers: headers, body: [], rawHead: rawHead)
        if head || status == 204 || status == 304 { return response }
        if let te = response.header("transfer-encoding"), te.lowercased().contains("chunked") {
            response.body = try readChunkedBody()
        } else if let cl = response.header("content-length"), let n = Int(cl) {
            response.body = try readExactly(n)
        } else {
            while try fill() {}
            response.body = buffer
            buffer = []
        }
        return response
    }

    /// Reads a chunked body, decoded (trailers are read and dropped).
    func readChunkedBody() throws -> [UInt8] {
        var body: [UInt8] = []
        while true {
            let sizeLine = try readLine()
            guard let size = Int(sizeLine.split(separator: ";").first ?? "", radix: 16) else {
                throw ClientError.malformed(sizeLine)
            }
            if size == 0 {
                while try !readLine().isEmpty {}
                return body
            }
            body += try readExactly(size)
            _ = try readLine()
        }
    }

    /// Reads one line (without its CR LF), e.g. from a tunnel after an upgrade.
    func readTextLine() throws -> String { try readLine() }

    /// Reads exactly `n` bytes.
    func readBytes(_ n: Int) throws -> [UInt8] { try readExactly(n) }

    /// Reads one head block (status line and headers up to the blank line) as text.
    func readInterim() throws -> String {
        var text = ""
        while true {
            let line = try readLine()
            text += line + "\r\n"
            if line.isEmpty { return text }
        }
    }

    /// Sends a simple request and reads its response.
    func request(_ method: String = "GET", _ target: String, host: String = "test.local",
                 headers: [(String, String)] = [], body: [UInt8]? = nil) throws -> Response {
        var text = "\(method) \(target) HTTP/1.1\r\nHost: \(host)\r\n"
        for (n, v) in headers { text += "\(n): \(v)\r\n" }
        if let body { text += "Content-Length: \(body.count)\r\n" }
        text += "\r\n"
        try send(Array(text.utf8) + (body ?? []))
        return try readResponse(head: method == "HEAD")
    }
}
