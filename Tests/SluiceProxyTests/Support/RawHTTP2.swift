import NIOCore
import NIOHPACK

/// HTTP/2 frames as raw bytes, for tests that send what real clients and servers refuse to send
/// (malformed header blocks), or that must decide exactly what is sent and when (flow control:
/// a body sent only as far as the windows granted, a reset mid-response).
enum RawHTTP2 {
    static let clientPreface: [UInt8] = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    /// A SETTINGS frame with no settings.
    static let emptySettings: [UInt8] = [0, 0, 0, 0x04, 0, 0, 0, 0, 0]

    /// A HEADERS frame with END_HEADERS (and END_STREAM when `endStream`) on stream `stream`
    /// (1-127): literal fields without indexing, lengths in one byte, no Huffman code, so the
    /// bytes arrive exactly as given (NIO's encoder would lower-case the names).
    static func headers(stream: UInt8, _ fields: [(String, String)], endStream: Bool = true) -> [UInt8] {
        var block: [UInt8] = []
        for (name, value) in fields {
            precondition(name.utf8.count < 127 && value.utf8.count < 127)
            block += [0x00, UInt8(name.utf8.count)] + Array(name.utf8) + [UInt8(value.utf8.count)] + Array(value.utf8)
        }
        let length = block.count
        return [UInt8(length >> 16), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF), 0x01,
                endStream ? 0x05 : 0x04, 0, 0, 0, stream] + block
    }

    /// A SETTINGS frame setting SETTINGS_INITIAL_WINDOW_SIZE (0x4): the room each stream's
    /// response starts with.
    static func settings(initialWindowSize: UInt32) -> [UInt8] {
        [0, 0, 6, 0x04, 0, 0, 0, 0, 0, 0x00, 0x04] + bigEndian(initialWindowSize)
    }

    /// A SETTINGS frame setting SETTINGS_MAX_CONCURRENT_STREAMS (0x3): how many streams the
    /// peer may have open at once.
    static func settings(maxConcurrentStreams: UInt32) -> [UInt8] {
        [0, 0, 6, 0x04, 0, 0, 0, 0, 0, 0x00, 0x03] + bigEndian(maxConcurrentStreams)
    }

    /// A WINDOW_UPDATE frame on `stream` (0: the connection).
    static func windowUpdate(stream: UInt8, increment: UInt32) -> [UInt8] {
        [0, 0, 4, 0x08, 0, 0, 0, 0, stream] + bigEndian(increment)
    }

    /// A DATA frame on `stream` carrying `payload` (at most 16,384 bytes, the default
    /// SETTINGS_MAX_FRAME_SIZE), with END_STREAM when `endStream`; no padding.
    static func data(stream: UInt8, _ payload: [UInt8], endStream: Bool = false) -> [UInt8] {
        precondition(payload.count <= 16_384)
        let length = payload.count
        return [UInt8(length >> 16), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF), 0x00,
                endStream ? 0x01 : 0x00, 0, 0, 0, stream] + payload
    }

    /// A RST_STREAM frame on `stream` with error `code` (RFC 9113 §7: 0x0 NO_ERROR, 0x7
    /// REFUSED_STREAM, 0x8 CANCEL).
    static func rstStream(stream: UInt8, code: UInt32) -> [UInt8] {
        [0, 0, 4, 0x03, 0, 0, 0, 0, stream] + bigEndian(code)
    }

    /// A GOAWAY frame naming `lastStreamID` (1-127) with error `code`, without debug data.
    static func goAway(lastStreamID: UInt8, code: UInt32) -> [UInt8] {
        [0, 0, 8, 0x07, 0, 0, 0, 0, 0, 0, 0, 0, lastStreamID] + bigEndian(code)
    }

    private static func bigEndian(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
    }
}

extension RawHTTPClient {
    /// As an h2c client on a fresh connection: a GET of `path` on stream 1, and the `:status`
    /// of its response (nil: the stream was reset, or no response came within 32 frames).
    func http2Status(get path: String) throws -> String? {
        try send(RawHTTP2.clientPreface + RawHTTP2.emptySettings)
        try send(RawHTTP2.headers(stream: 1, [(":method", "GET"), (":scheme", "http"), (":authority", "t"), (":path", path)]))
        var decoder = HPACKDecoder(allocator: ByteBufferAllocator())
        for _ in 0..<32 {
            let header = try readBytes(9)
            let payload = try readBytes(Int(header[0]) << 16 | Int(header[1]) << 8 | Int(header[2]))
            guard header[8] == 1 else { continue }
            if header[3] == 0x03 { return nil }
            if header[3] == 0x01 {
                var bytes = ByteBuffer(bytes: payload)
                return try decoder.decodeHeaders(from: &bytes).first(name: ":status")
            }
        }
        return nil
    }
}
