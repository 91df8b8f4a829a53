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

            // Not reading until the proxy has found its socket full (bounded: 30 s).
            var polls = 0
            while SocketWriteThrough.shortSends.load(ordering: .relaxed) == before && polls < 3_000 {
                usleep(10_000)
                polls += 1
            }
            #expect(SocketWriteThrough.shortSends.load(ordering: .relaxed) > before)

            var wrong: [String] = []
            for i in 0..<count where wrong.count < 5 {
                let r = try c.readResponse()
                if r.status != 200 || r.body.count != size {
                    wrong.append("response \(i): status \(r.status), \(r.body.count) bytes")
                } else if let at = r.body.indices.first(where: { r.body[$0] != UInt8($0 % 251) }) {
                    wrong.append("response \(i): byte \(at) is \(r.body[at])")
                }
            }
            #expect(wrong.isEmpty, "\(wrong)")
            // Direct sends resume once NIO has written its share: the connection still works.
            let after = try c.request("GET", "/after")
            #expect(after.status == 200)
            #expect(after.json["path"] as? String == "/after")
        }
    }
}
}
