#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A small blocking HTTP/1.1 client for the admin API over its unix socket: one request per
/// connection (`Connection: close`), every read and write bounded by a timeout. Used by
/// `sluice ctl` and by the tests.
public enum AdminSocketClient {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public struct Response: Sendable {
        public var status: Int
        public var headers: [(String, String)]
        public var body: String
    }

    /// Sends `method target` with `body` (nil: no body and no Content-Length header; "" sends
    /// `Content-Length: 0`) and reads the whole response.
    public static func request(socket path: String, _ method: String, _ target: String, body: String? = nil,
                               timeout: Double = 10) throws -> Response {
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw fail(path, "cannot create a socket") }
        defer { close(fd) }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { throw fail(path, "socket path too long") }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
            raw[bytes.count] = 0
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { throw fail(path, String(cString: strerror(errno))) }
        var head = "\(method) \(target) HTTP/1.1\r\nHost: sluice\r\nConnection: close\r\n"
        let payload = Array((body ?? "").utf8)
        if let body {
            if !body.isEmpty { head += "Content-Type: application/json\r\n" }
            head += "Content-Length: \(payload.count)\r\n"
        } else if method == "POST" || method == "PUT" {
            head += "Content-Length: 0\r\n"
        }
        head += "\r\n"
        let out = Array(head.utf8) + payload
        var sent = 0
        while sent < out.count {
            let n = out[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw fail(path, "write failed: \(String(cString: strerror(errno)))") }
            sent += n
        }
        // Read until the head is complete and Content-Length bytes of body have arrived (or EOF).
        var response: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        var headEnd: Int?
        var contentLength: Int?
        while true {
            if let end = headEnd, let length = contentLength, response.count - end >= length { break }
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK { throw fail(path, "no answer within \(timeout) s to \(method) \(target)") }
                break
            }
            if n == 0 { break }
            response += chunk[0..<n]
            if headEnd == nil, let range = findHeadEnd(response) {
                headEnd = range
                let headText = String(decoding: response[..<range], as: UTF8.self)
                for line in headText.split(separator: "\r\n").dropFirst() {
                    let parts = line.split(separator: ":", maxSplits: 1)
                    if parts.count == 2, parts[0].lowercased() == "content-length" {
                        contentLength = Int(parts[1].trimmingCharacters(in: .whitespaces))
                    }
                }
            }
        }
        guard let end = headEnd else { throw fail(path, "no HTTP response to \(method) \(target)") }
        let headText = String(decoding: response[..<(end - 4)], as: UTF8.self)
        let lines = headText.split(separator: "\r\n", omittingEmptySubsequences: false)
        let status = lines.first?.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        var headers: [(String, String)] = []
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers.append((String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        var bodyBytes = Array(response[end...])
        if let length = contentLength, bodyBytes.count > length { bodyBytes = Array(bodyBytes[..<length]) }
        return Response(status: status, headers: headers, body: String(decoding: bodyBytes, as: UTF8.self))
    }

    /// The index just past the first CRLFCRLF.
    private static func findHeadEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for i in 0...(bytes.count - 4)
        where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 {
            return i + 4
        }
        return nil
    }

    private static func fail(_ path: String, _ reason: String) -> Failure {
        Failure(description: "cannot reach the admin socket \(path): \(reason)")
    }
}
