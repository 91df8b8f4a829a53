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
/// clients, `HTTP1UpstreamHandler` towards backends). Framing follows what NIO's encoders did
/// before (same fields, same bytes), so a message looks the same on the wire. Each field is one
/// capacity check and two memory copies.
enum HTTP1Writer {
    /// Writes a response head and returns the body framing. `Transfer-Encoding` is the proxy's to
    /// state: it is dropped, and `chunked` is declared for a body without `Content-Length` on
    /// HTTP/1.1. 1xx, 204 and 304 carry neither. `bodySuppressed`: the request was HEAD (the
    /// fields still describe the body a GET would get; none is sent).
    static func writeResponseHead(_ head: HTTPResponseHead, bodySuppressed: Bool, into buffer: inout ByteBuffer) -> BodyFraming {
        let statusLine = StatusLine(head.version, head.status)
        RawOut.write(into: &buffer, atMost: statusLine.bound) { statusLine.write(into: &$0) }
        let mayHaveBody = statusLine.mayHaveBody
        var hasLength = false
        for (name, value) in head.headers {
            switch HeaderRewrite.kind(of: name) {
            case .transferEncoding:
                continue
            case .contentLength:
                guard mayHaveBody else { continue }
                hasLength = true
            default:
                break
            }
            writeField(name, value, into: &buffer)
        }
        return finishResponseHead(head.version, mayHaveBody: mayHaveBody, hasLength: hasLength,
                                  bodySuppressed: bodySuppressed, into: &buffer)
    }

    /// A backend's response head passed on: the status line, every field `forwarded` keeps
    /// (copied as bytes), then `extra` fields, with framing as for any response. One capacity
    /// check for the whole head (`RawOut`), then plain copies.
    /// `version`: what the client speaks (an HTTP/1.0 client gets an HTTP/1.0 status line).
    static func writeResponseHead(_ head: ResponseHead, version: HTTPVersion, forwarded: HeaderRewrite.ForwardedResponse,
                                  extra: [(String, String)], bodySuppressed: Bool, into buffer: inout ByteBuffer) -> BodyFraming {
        let block = head.fields
        let statusLine = StatusLine(version, head.status)
        // Room for the framing field and empty line `finishResponseHead` adds, too.
        var bound = statusLine.bound + block.lineBound + "transfer-encoding: chunked\r\n\r\n".utf8.count
        for (name, value) in extra { bound += name.utf8.count + value.utf8.count + 4 }
        let mayHaveBody = statusLine.mayHaveBody
        var hasLength = false
        RawOut.write(into: &buffer, atMost: bound) { out in
            statusLine.write(into: &out)
            block.withBytes { bytes in
                var run = FieldRun()
                for field in block.fields where forwarded.keeps(field, in: bytes) {
                    if field.kind == .contentLength {
                        guard mayHaveBody else { continue }
                        hasLength = true
                    }
                    run.add(field, in: bytes, to: &out)
                }
                run.flush(bytes, to: &out)
            }
            for (name, value) in extra { out.field(name, value) }
        }
        return finishResponseHead(version, mayHaveBody: mayHaveBody, hasLength: hasLength,
                                  bodySuppressed: bodySuppressed, into: &buffer)
    }

    /// A status line: one of the common HTTP/1.1 lines as a constant, or built from its parts.
    private struct StatusLine {
        let version: HTTPVersion
        let status: HTTPResponseStatus
        let common: StaticString?

        init(_ version: HTTPVersion, _ status: HTTPResponseStatus) {
            self.version = version
            self.status = status
            self.common = version.minor == 1 ? HTTP1Writer.commonStatusLine(status) : nil
        }

        /// At least its length (`HTTP/1.x NNN ` + reason + CRLF).
        var bound: Int { common?.utf8CodeUnitCount ?? 16 + status.reasonPhrase.utf8.count }

        /// Whether a response with this status may have a body.
        var mayHaveBody: Bool {
            let code = status.code
            return !(code / 100 == 1 || code == 204 || code == 304)
        }

        func write(into out: inout RawOut) {
            if let common {
                out.put(common)
                return
            }
            let code = status.code
            out.put(version.minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ")
            out.put(UInt8(truncatingIfNeeded: 0x30 + code / 100))
            out.put(UInt8(truncatingIfNeeded: 0x30 + code / 10 % 10))
            out.put(UInt8(truncatingIfNeeded: 0x30 + code % 10))
            out.put(UInt8.space)
            out.put(status.reasonPhrase)
            out.put("\r\n")
        }
    }

    /// The whole status line of the most common HTTP/1.1 answers, as one constant (the
    /// general path builds it from parts and a computed reason phrase).
    fileprivate static func commonStatusLine(_ status: HTTPResponseStatus) -> StaticString? {
        switch status {
        case .ok: "HTTP/1.1 200 OK\r\n"
        case .created: "HTTP/1.1 201 Created\r\n"
        case .noContent: "HTTP/1.1 204 No Content\r\n"
        case .movedPermanently: "HTTP/1.1 301 Moved Permanently\r\n"
        case .found: "HTTP/1.1 302 Found\r\n"
        case .notModified: "HTTP/1.1 304 Not Modified\r\n"
        case .badRequest: "HTTP/1.1 400 Bad Request\r\n"
        case .notFound: "HTTP/1.1 404 Not Found\r\n"
        case .internalServerError: "HTTP/1.1 500 Internal Server Error\r\n"
        case .badGateway: "HTTP/1.1 502 Bad Gateway\r\n"
        case .serviceUnavailable: "HTTP/1.1 503 Service Unavailable\r\n"
        case .gatewayTimeout: "HTTP/1.1 504 Gateway Timeout\r\n"
        default: nil
        }
    }

    /// The framing field the proxy states (chunked for a body without a length on HTTP/1.1),
    /// the empty line, and the framing the body will use.
    private static func finishResponseHead(_ version: HTTPVersion, mayHaveBody: Bool, hasLength: Bool,
                                           bodySuppressed: Bool, into buffer: inout ByteBuffer) -> BodyFraming {
        var framing = BodyFraming.none
        if mayHaveBody {
            if hasLength || version.minor == 0 {
                framing = .raw
            } else {
                buffer.writeStaticString("transfer-encoding: chunked\r\n")
                framing = .chunked
            }
        }
        buffer.writeStaticString("\r\n")
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
        for (name, value) in head.headers {
            switch HeaderRewrite.kind(of: name) {
            case .contentLength: if framing == .none { framing = .raw }
            case .transferEncoding: framing = .chunked
            default: break
            }
            writeField(name, value, into: &buffer)
        }
        buffer.writeStaticString("\r\n")
        return framing
    }

    /// A request head for a backend from the client's head: the request line (always HTTP/1.1),
    /// the kept field lines copied as bytes, then the proxy's own fields (the same as
    /// `UpstreamRequest.forEachProxyField`, written here directly) and `extra`. The
    /// framing is what the header pass re-stated. One capacity check for the whole head.
    static func writeRequestHead(_ request: UpstreamRequest, into buffer: inout ByteBuffer) -> BodyFraming {
        // The block is read in place through the head (`RequestHead.withFieldBlock`).
        request.head.withFieldBlock { block in
            let method = commonMethod(request.method)
            let authority = request.authority?.utf8.count ?? 0
            // The target and the Host value (for x-forwarded-host) are within the block's bytes.
            var bound = (method?.utf8CodeUnitCount ?? request.method.rawValue.utf8.count) + request.uri.utf8.count
                + 2 * block.lineBound + 2 * authority + (request.priorForwardedFor?.utf8.count ?? 0)
                + request.clientAddress.utf8.count + request.scheme.utf8.count + 160
            for (name, value) in request.extra { bound += name.utf8.count + value.utf8.count + 4 }
            RawOut.write(into: &buffer, atMost: bound) { out in
                block.withBytes { bytes in
                    if let method { out.put(method) } else { out.put(request.method.rawValue) }
                    out.put(UInt8.space)
                    if let target = request.head.target {
                        out.put(UnsafeRawBufferPointer(rebasing: bytes[target]))
                    } else {
                        out.put(request.uri)
                    }
                    out.put(" HTTP/1.1\r\n")
                    var run = FieldRun()
                    for field in block.fields where request.keeps(field, in: bytes) {
                        run.add(field, in: bytes, to: &out)
                    }
                    run.flush(bytes, to: &out)
                    if let authority = request.authority { out.field(named: "host: ", authority) }
                    if request.chunked { out.put("transfer-encoding: chunked\r\n") }
                    out.put("x-forwarded-for: ")
                    if let prior = request.priorForwardedFor {
                        out.put(prior)
                        out.put(", ")
                    }
                    out.put(request.clientAddress)
                    out.put("\r\n")
                    out.field(named: "x-forwarded-proto: ", request.scheme)
                    if let authority = request.authority {
                        out.field(named: "x-forwarded-host: ", authority)
                    } else if let host = request.hostField {
                        out.put("x-forwarded-host: ")
                        out.put(bytes.value(host))
                        out.put("\r\n")
                    }
                }
                for (name, value) in request.extra { out.field(name, value) }
                out.put("\r\n")
            }
        }
        if request.chunked { return .chunked }
        return request.contentLength == nil ? .none : .raw
    }

    /// The common methods as literals (`HTTPMethod.rawValue` is a switch that builds a string).
    private static func commonMethod(_ method: HTTPMethod) -> StaticString? {
        switch method {
        case .GET: "GET"
        case .POST: "POST"
        case .HEAD: "HEAD"
        case .PUT: "PUT"
        case .DELETE: "DELETE"
        default: nil
        }
    }

    /// `name: value\r\n` for each field, then the empty line (trailers).
    static func writeFields(_ headers: HTTPHeaders, into buffer: inout ByteBuffer) {
        for (name, value) in headers { writeField(name, value, into: &buffer) }
        buffer.writeStaticString("\r\n")
    }

    /// One field line, written with a single capacity check.
    private static func writeField(_ name: String, _ value: String, into buffer: inout ByteBuffer) {
        RawOut.write(into: &buffer, atMost: name.utf8.count + value.utf8.count + 4) { $0.field(name, value) }
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

/// Kept field lines copied on in runs: consecutive lines already in the form the writer gives
/// every line (`name: value\r\n`, one space, CRLF) go out as one copy of the received bytes
/// instead of four copies each (name, `": "`, value, CRLF) — the same bytes either way. Any
/// other line (more or no whitespace, a bare LF, trailing spaces) is written field by field,
/// normalised.
struct FieldRun {
    private var start = 0
    private var end = 0

    mutating func add(_ field: FieldBlock.Field, in bytes: UnsafeRawBufferPointer, to out: inout RawOut) {
        let colon = Int(field.nameStart + field.nameCount)
        let valueEnd = Int(field.valueStart + field.valueCount)
        if Int(field.valueStart) == colon + 2, bytes[colon + 1] == .space, valueEnd + 1 < bytes.count,
           bytes[valueEnd] == .cr, bytes[valueEnd + 1] == .lf {
            if end > start, Int(field.nameStart) == end {
                end = valueEnd + 2
                return
            }
            flush(bytes, to: &out)
            start = Int(field.nameStart)
            end = valueEnd + 2
            return
        }
        flush(bytes, to: &out)
        out.field(bytes.name(field), bytes.value(field))
    }

    /// Writes the run so far.
    mutating func flush(_ bytes: UnsafeRawBufferPointer, to out: inout RawOut) {
        guard end > start else { return }
        out.put(UnsafeRawBufferPointer(rebasing: bytes[start..<end]))
        start = end
    }
}

/// Writing a head with one capacity check: the caller reserves an upper bound of its size, then
/// bytes are copied to a raw pointer. `ByteBuffer`'s own writes each check capacity and
/// uniqueness (a field line was five such writes). Debug builds (the tests) check every copy
/// against the bound before it is made; release builds check the total once, afterwards.
struct RawOut {
    private(set) var at: UnsafeMutableRawPointer
    private let end: UnsafeMutableRawPointer

    /// Runs `body` with room for at most `bound` bytes at `buffer`'s writer index, then moves
    /// the writer index past what `body` wrote.
    static func write(into buffer: inout ByteBuffer, atMost bound: Int, _ body: (inout RawOut) -> Void) {
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: bound) { space in
            let start = space.baseAddress!
            var out = RawOut(at: start, end: start + bound)
            body(&out)
            let written = start.distance(to: out.at)
            precondition(written <= bound, "head larger than its bound")
            return written
        }
    }

    private func fits(_ count: Int) -> Bool { count <= at.distance(to: end) }

    mutating func put(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress else { return }
        assert(fits(bytes.count), "head larger than its bound")
        at.copyMemory(from: base, byteCount: bytes.count)
        at += bytes.count
    }

    mutating func put(_ literal: StaticString) {
        assert(fits(literal.utf8CodeUnitCount), "head larger than its bound")
        at.copyMemory(from: literal.utf8Start, byteCount: literal.utf8CodeUnitCount)
        at += literal.utf8CodeUnitCount
    }

    mutating func put(_ byte: UInt8) {
        assert(fits(1), "head larger than its bound")
        at.storeBytes(of: byte, as: UInt8.self)
        at += 1
    }

    mutating func put(_ string: String) {
        let copied: Void? = string.utf8.withContiguousStorageIfAvailable { put(UnsafeRawBufferPointer($0)) }
        if copied == nil { for byte in string.utf8 { put(byte) } }
    }

    /// `name: value\r\n` from a field's bytes.
    mutating func field(_ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) {
        put(name)
        put(": ")
        put(value)
        put("\r\n")
    }

    mutating func field(_ name: String, _ value: String) {
        put(name)
        put(": ")
        put(value)
        put("\r\n")
    }

    /// `nameColonSpace` is the field's name with its `": "`.
    mutating func field(named nameColonSpace: StaticString, _ value: String) {
        put(nameColonSpace)
        put(value)
        put("\r\n")
    }
}
