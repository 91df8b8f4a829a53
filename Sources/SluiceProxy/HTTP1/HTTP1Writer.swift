import NIOCore
import NIOHTTP1

/// How a message body goes on the wire, decided from the head (RFC 9112 §6).
enum BodyFraming {
    /// No body may follow (a response to HEAD, 1xx, 204, 304; or a request without one).
    case none
    /// `Content-Length` or, for HTTP/1.0, the close: body bytes go out as they are.
    case raw
    /// `Transfer-Encoding: chunked`: each part is framed, the end is `0\r\n\r\n`.
    case chunked
}

/// Serialising HTTP/1.1 messages for the proxy's own codec (`HTTP1ServerHandler` towards
/// clients, `UpstreamHandler` towards backends). Framing follows what NIO's encoders did before
/// (same headers, same bytes), so a message looks the same on the wire.
enum HTTP1Writer {
    /// Writes a response head, adding or removing framing fields, and returns the body framing.
    /// `bodySuppressed`: the request was HEAD (fields stay as they are, no body is sent).
    static func writeResponseHead(_ head: HTTPResponseHead, bodySuppressed: Bool, into buffer: inout ByteBuffer) -> BodyFraming {
        let code = head.status.code
        var headers = head.headers
        var framing = BodyFraming.raw
        if code / 100 == 1 {
            framing = .none
            if code != 101 {
                headers.remove(name: "content-length")
                headers.remove(name: "transfer-encoding")
            }
        } else if code == 204 || code == 304 {
            headers.remove(name: "content-length")
            headers.remove(name: "transfer-encoding")
            framing = .none
        } else if headers.contains(name: "content-length") {
            if headers.contains(name: "transfer-encoding") { headers.remove(name: "transfer-encoding") }
        } else if head.version.minor >= 1 {
            headers.replaceOrAdd(name: "transfer-encoding", value: "chunked")
            framing = .chunked
        }
        buffer.writeStaticString(head.version.minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ")
        buffer.writeInteger(UInt8(truncatingIfNeeded: 0x30 + code / 100))
        buffer.writeInteger(UInt8(truncatingIfNeeded: 0x30 + code / 10 % 10))
        buffer.writeInteger(UInt8(truncatingIfNeeded: 0x30 + code % 10))
        buffer.writeInteger(UInt8.space)
        buffer.writeString(head.status.reasonPhrase)
        buffer.writeStaticString("\r\n")
        writeFields(headers, into: &buffer)
        return bodySuppressed ? .none : framing
    }

    /// Writes a request head for a backend (always HTTP/1.1) and returns the body framing: the
    /// proxy re-states framing itself (`HeaderRewrite.forwardRequest`), so the fields decide.
    static func writeRequestHead(_ head: HTTPRequestHead, into buffer: inout ByteBuffer) -> BodyFraming {
        buffer.writeString(head.method.rawValue)
        buffer.writeInteger(UInt8.space)
        buffer.writeString(head.uri)
        buffer.writeStaticString(" HTTP/1.1\r\n")
        var framing = BodyFraming.none
        for (name, _) in head.headers {
            switch HeaderRewrite.kind(of: name) {
            case .contentLength: if framing == .none { framing = .raw }
            case .transferEncoding: framing = .chunked
            default: break
            }
        }
        writeFields(head.headers, into: &buffer)
        return framing
    }

    /// `name: value\r\n` for each field, then the empty line.
    static func writeFields(_ headers: HTTPHeaders, into buffer: inout ByteBuffer) {
        for (name, value) in headers {
            buffer.writeString(name)
            buffer.writeStaticString(": ")
            buffer.writeString(value)
            buffer.writeStaticString("\r\n")
        }
        buffer.writeStaticString("\r\n")
    }

    /// The line before a chunk of `size` bytes.
    static func writeChunkHeader(size: Int, into buffer: inout ByteBuffer) {
        var shift = (Int.bitWidth - size.leadingZeroBitCount + 3) / 4 * 4
        if shift == 0 { shift = 4 }
        while shift > 0 {
            shift -= 4
            let digit = UInt8(truncatingIfNeeded: (size >> shift) & 0xF)
            buffer.writeInteger(digit < 10 ? 0x30 + digit : 0x57 + digit)
        }
        buffer.writeStaticString("\r\n")
    }

    /// The last chunk, the trailer fields if any, and the empty line.
    static func writeLastChunk(trailers: HTTPHeaders?, into buffer: inout ByteBuffer) {
        buffer.writeStaticString("0\r\n")
        if let trailers {
            writeFields(trailers, into: &buffer)
        } else {
            buffer.writeStaticString("\r\n")
        }
    }
}
