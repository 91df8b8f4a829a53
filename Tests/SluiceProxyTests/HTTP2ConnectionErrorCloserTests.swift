import NIOCore
import NIOEmbedded
import NIOHTTP2
import Testing
@testable import SluiceProxy

/// `HTTP2OutboundFrames` finds an error GOAWAY wherever the writes split the bytes, and
/// `HTTP2ConnectionErrorCloser` closes a real NIOHTTP2 connection after a connection error and
/// only then (the end-to-end case: `HTTP2AndTLS.aConnectionErrorSendsGoAwayAndCloses`).
struct HTTP2ConnectionErrorCloserTests {
    private static func frame(type: UInt8, flags: UInt8 = 0, stream: UInt8, _ payload: [UInt8]) -> [UInt8] {
        [UInt8(payload.count >> 16), UInt8(payload.count >> 8 & 0xFF), UInt8(payload.count & 0xFF), type, flags, 0, 0, 0, stream] + payload
    }

    private static func goAway(code: UInt8) -> [UInt8] {
        frame(type: 0x07, stream: 0, [0, 0, 0, 3, 0, 0, 0, code] + Array("debug".utf8))
    }

    /// Scans `bytes` written in pieces of `size` bytes; the offsets (end of the piece) at which
    /// an error GOAWAY was reported.
    private static func reports(_ bytes: [UInt8], pieces size: Int, preface: Int = 0) -> [Int] {
        var frames = HTTP2OutboundFrames(prefaceBytes: preface)
        var found: [Int] = []
        var start = 0
        while start < bytes.count {
            let end = min(start + size, bytes.count)
            if bytes[start..<end].withUnsafeBytes({ frames.scan($0) }) { found.append(end) }
            start = end
        }
        return found
    }

    @Test func anErrorGoAwayIsFoundAtTheWriteThatCompletesItsCode() {
        // Frames whose payloads hold GOAWAY-like bytes (0x07 at offset 3, non-zero codes), a
        // graceful GOAWAY, then the error GOAWAY; every piece size from 1 to the whole.
        let decoy: [UInt8] = [0, 0, 8, 0x07, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 9]
        let before = Self.frame(type: 0x04, stream: 0, [])
            + Self.frame(type: 0x01, flags: 0x04, stream: 1, decoy)
            + Self.frame(type: 0x00, flags: 0x01, stream: 1, decoy + decoy)
            + Self.frame(type: 0x03, stream: 1, [0, 0, 0, 1]) // RST_STREAM PROTOCOL_ERROR
            + Self.goAway(code: 0) // NO_ERROR
        let bytes = before + Self.goAway(code: 1) + Self.frame(type: 0x06, stream: 0, decoy.prefix(8).map { $0 })
        let codeEnd = before.count + 17
        for size in 1...bytes.count {
            let found = Self.reports(bytes, pieces: size)
            // The piece holding the code's last byte ends at the first multiple of size at or past it.
            let expected = min((codeEnd + size - 1) / size * size, bytes.count)
            #expect(found == [expected], "pieces of \(size)")
        }
        for size in 1...before.count {
            #expect(Self.reports(before, pieces: size).isEmpty, "pieces of \(size)")
        }
    }

    @Test func aClientsPrefaceIsNotReadAsFrames() {
        let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
        let bytes = preface + Self.frame(type: 0x04, stream: 0, []) + Self.goAway(code: 2)
        let codeEnd = preface.count + 9 + 17
        for size in 1...bytes.count {
            let expected = min((codeEnd + size - 1) / size * size, bytes.count)
            #expect(Self.reports(bytes, pieces: size, preface: preface.count) == [expected], "pieces of \(size)")
        }
        #expect(Self.reports(bytes, pieces: bytes.count, preface: preface.count) == [bytes.count])
        #expect(Self.reports(preface + Self.goAway(code: 0), pieces: 3, preface: preface.count).isEmpty)
    }

    /// NIOHTTP2's own writes, in an embedded connection: a stream error (a zero window
    /// increment on an open stream, RFC 9113 §6.9) leaves it open, a connection error (DATA on
    /// stream 0, §6.1) closes it after its GOAWAY.
    @Test func aRealConnectionClosesOnlyAfterAConnectionError() throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(HTTP2ConnectionErrorCloser())
        _ = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
            mode: .server, connectionConfiguration: .init(), streamConfiguration: .init()
        ) { stream in
            stream.eventLoop.makeSucceededVoidFuture()
        }
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        // The errors NIOHTTP2 reports up the pipeline: the same for both kinds of error.
        var reported = 0
        func send(_ bytes: [UInt8]) {
            do { try channel.writeInbound(ByteBuffer(bytes: bytes)) } catch { reported += 1 }
        }
        func sentFrameTypes() throws -> [UInt8] {
            var types: [UInt8] = []
            while var out = try channel.readOutbound(as: ByteBuffer.self) {
                while out.readableBytes >= 9, let header = out.readBytes(length: 9) {
                    types.append(header[3])
                    out.moveReaderIndex(forwardBy: min(out.readableBytes, Int(header[0]) << 16 | Int(header[1]) << 8 | Int(header[2])))
                }
            }
            return types
        }
        send(RawHTTP2.clientPreface + RawHTTP2.emptySettings)
        send(RawHTTP2.headers(stream: 1, [(":method", "POST"), (":scheme", "http"), (":authority", "a"), (":path", "/")],
                                  endStream: false))
        #expect(reported == 0)
        send(Self.frame(type: 0x08, stream: 1, [0, 0, 0, 0])) // WINDOW_UPDATE 0: a stream error
        #expect(reported == 1)
        #expect(try sentFrameTypes().contains(0x03)) // RST_STREAM
        #expect(channel.isActive)
        send(Self.frame(type: 0x00, stream: 0, [])) // DATA on stream 0: a connection error
        #expect(reported == 2)
        #expect(try sentFrameTypes().contains(0x07)) // GOAWAY
        #expect(!channel.isActive)
    }
}
