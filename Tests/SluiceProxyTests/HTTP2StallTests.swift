#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
@testable import SluiceProxy
import SluiceConfig

extension EndToEnd {
/// HTTP/2 clients that stop taking a response: `server.idleTimeout` bounds how long a stream
/// may go without flow-control window, and how long a connection's socket may stay full, as it
/// bounds an HTTP/1.1 client that stops reading. Both used to hold the exchange and its
/// upstream connection for as long as the client liked (the reads below then time out).
@Suite struct HTTP2Stalls {
    static let any = SocketAddressSpec(host: "127.0.0.1", port: 0)

    static func get(_ path: String) -> [(String, String)] {
        [(":method", "GET"), (":scheme", "http"), (":authority", "a"), (":path", path)]
    }

    /// A stream given 1,000 bytes of window and never a WINDOW_UPDATE, for a 200,000-byte
    /// response, is reset with CANCEL after the idle timeout and recorded 499; a small response
    /// on another stream of the same connection is served meanwhile, and after it.
    @Test func aStreamGivenNoWindowIsResetAfterTheIdleTimeout() async throws {
        try await Harness.with(backends: [.init(version: "v1")], server: ServerSettings(idleTimeout: .milliseconds(300)),
                               listener: ListenerSpec(address: Self.any, h2c: true)) { h in
            let client = try RawHTTPClient(port: h.port, timeout: 5)
            try client.send(RawHTTP2.clientPreface + RawHTTP2.settings(initialWindowSize: 1_000))
            try client.send(RawHTTP2.headers(stream: 1, Self.get("/bytes/200000")))
            try client.send(RawHTTP2.headers(stream: 3, Self.get("/bytes/10")))
            var dataBytes: [UInt8: Int] = [:]
            var ended: Set<UInt8> = []
            var resets: [UInt8: UInt32] = [:]
            func readFrame() throws {
                let header = try client.readBytes(9)
                let payload = try client.readBytes(Int(header[0]) << 16 | Int(header[1]) << 8 | Int(header[2]))
                let (type, flags, stream) = (header[3], header[4], header[8])
                if type == 0x00 { dataBytes[stream, default: 0] += payload.count }
                if type <= 0x01, flags & 0x01 != 0 { ended.insert(stream) }
                if type == 0x03 { resets[stream] = payload.reduce(0) { $0 << 8 | UInt32($1) } }
            }
            for _ in 0..<64 where resets[1] == nil || !ended.contains(3) { try readFrame() }
            #expect(resets[1] == 0x8, "stream 1 not reset with CANCEL: \(resets)") // RFC 9113 §7
            #expect(dataBytes[1, default: 0] <= 1_000)
            #expect(ended.contains(3) && dataBytes[3] == 10)
            #expect(try h.statistics().series.first?.codes[499] == 1)
            #expect(try h.statistics().series.first?.inflight == 0)
            // The connection goes on.
            try client.send(RawHTTP2.headers(stream: 5, Self.get("/bytes/10")))
            for _ in 0..<16 where !ended.contains(5) { try readFrame() }
            #expect(dataBytes[5] == 10)
        }
    }

    /// A client that stops reading its socket (flow-control window wide open, a 64 KiB receive
    /// buffer, a 16 MiB response): once the proxy's output has waited for the idle timeout, the
    /// connection is closed (no GOAWAY: it could not be written) and the exchange recorded 499.
    /// Resetting the stream alone would leave the connection, and NIO's buffered bytes, open.
    @Test func anHTTP2ClientThatStopsReadingIsClosedAfterTheIdleTimeout() async throws {
        try await Harness.with(backends: [.init(version: "v1")], server: ServerSettings(idleTimeout: .milliseconds(300)),
                               listener: ListenerSpec(address: Self.any, h2c: true)) { h in
            let size = 16 << 20
            let client = try RawHTTPClient(port: h.port, timeout: 10, receiveBuffer: 65_536)
            try client.send(RawHTTP2.clientPreface + RawHTTP2.settings(initialWindowSize: 0x7FFF_FFFF)
                            + RawHTTP2.windowUpdate(stream: 0, increment: 0x7FFF_FFFF - 65_535))
            try client.send(RawHTTP2.headers(stream: 1, Self.get("/bytes/\(size)")))
            // Its socket held open by the proxy until then (bounded polls: 10 s).
            func proxyHoldsConnection() -> Bool { ProcessSockets.all().contains { $0.localPort == h.port } }
            #expect(waitUntil(timeout: 5) { proxyHoldsConnection() })
            #expect(waitUntil(timeout: 10) { !proxyHoldsConnection() }, "the stalled connection is still open")
            #expect(try h.statistics().series.first?.codes[499] == 1)
            #expect(try h.statistics().series.first?.inflight == 0)
            #expect(client.waitForClose())
        }
    }
}
}
