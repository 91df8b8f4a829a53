#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import NIOHTTP1

/// RFC 9112 message parsing for the proxy's HTTP/1.1 connections: requests from clients and
/// responses from backends.
///
/// Why Sluice parses HTTP/1 itself instead of using NIO's `HTTPRequestDecoder` (llhttp) and
/// `HTTPServerPipelineHandler`: on the proxy's hot path those cost about a third of all
/// instructions per request — llhttp's callback layer builds the head field by field, and every
/// part then crosses three handlers boxed in `NIOAny`, each unboxing a generic enum through a
/// dynamic cast (see the README's Performance section). This parser reads a complete head in one
/// pass over contiguous bytes and hands the owning handler plain values; the handler calls the
/// exchange directly.
///
/// It is a value: `next(from:)` consumes bytes from the front of `buffer` and returns one
/// event, or nil when it needs more input. Body parts are slices of the input (never copied).
///
/// What it enforces (the request-smuggling rules of RFC 9112 §6 and the syntax of §2–5):
/// CRLF line ends (a bare LF is accepted, RFC 9112 §2.2; a bare CR is refused), token methods
/// and field names, no whitespace before a field's colon, no obs-fold, no control characters in
/// values, `HTTP/1.x` versions, one agreed `Content-Length` made of digits, `Transfer-Encoding`
/// ending in `chunked` (requests; a response with another coding is read until close), never
/// both `Content-Length` and `Transfer-Encoding` (requests and responses), hexadecimal chunk
/// sizes, and a head no larger than `maxHeadBytes` (431 for a request).
struct HTTP1Parser {
    enum Kind { case request, response }

    enum Event {
        case requestHead(RequestHead)
        case responseHead(ResponseHead)
        case body(ByteBuffer)
        case end(HTTPHeaders?)
    }

    /// Why a message was refused; for a request, the status and text of the proxy's answer.
    struct Failure: Error, Equatable {
        let status: HTTPResponseStatus
        let message: String

        static let tooLarge = Failure(status: .requestHeaderFieldsTooLarge, message: "request header fields too large")
        static func bad(_ what: String) -> Failure { Failure(status: .badRequest, message: "malformed request: \(what)") }
    }

    private enum State {
        case head
        case fixed(Int)
        case chunkSize
        case chunkData(Int)
        case chunkDataEnd
        case trailers
        case untilClose
        /// A 101 was parsed: its end comes next, then the connection no longer carries HTTP.
        case upgradeEnd
        case upgraded
    }

    let kind: Kind
    /// The largest head (field section; a request line may add 8 KiB on top) accepted.
    let maxHeadBytes: Int
    private var state = State.head
    /// How much of an incomplete head has been searched for its end already.
    private var searched = 0
    /// The last response head's field index, whose storage the next head reuses once that head
    /// is gone (no allocation per response).
    private var spareIndex: [FieldBlock.Field] = []
    /// Response side: the request being answered was HEAD, so the response has no body. Set by
    /// the owner before each request is sent.
    var respondingToHEAD = false

    init(kind: Kind, maxHeadBytes: Int) {
        self.kind = kind
        self.maxHeadBytes = maxHeadBytes
    }

    /// Between messages: the next bytes start a new head.
    var isAtMessageStart: Bool { if case .head = state { true } else { false } }
    /// A 101 response was parsed: the rest of the input belongs to the upgraded protocol.
    var isUpgraded: Bool { if case .upgraded = state { true } else { false } }
    /// The body in progress is delimited by the connection's close (responses only).
    var readsUntilClose: Bool { if case .untilClose = state { true } else { false } }

    /// The next event from the front of `buffer`, or nil when more bytes are needed.
    mutating func next(from buffer: inout ByteBuffer) throws(Failure) -> Event? {
        switch state {
        case .head:
            return try parseHead(&buffer)
        case .fixed(let remaining):
            if remaining == 0 {
                state = .head
                return .end(nil)
            }
            guard buffer.readableBytes > 0 else { return nil }
            let n = min(remaining, buffer.readableBytes)
            state = .fixed(remaining - n)
            return .body(buffer.readSlice(length: n)!)
        case .chunkSize:
            guard let line = try readLine(&buffer, limit: 4096, failure: .bad("invalid chunk size")) else { return nil }
            let size = try Self.chunkSize(line)
            state = size == 0 ? .trailers : .chunkData(size)
            return try next(from: &buffer)
        case .chunkData(let remaining):
            guard buffer.readableBytes > 0 else { return nil }
            let n = min(remaining, buffer.readableBytes)
            state = n == remaining ? .chunkDataEnd : .chunkData(remaining - n)
            return .body(buffer.readSlice(length: n)!)
        case .chunkDataEnd:
            guard let line = try readLine(&buffer, limit: 2, failure: .bad("invalid chunk size")) else { return nil }
            guard line.isEmpty else { throw .bad("invalid chunk size") }
            state = .chunkSize
            return try next(from: &buffer)
        case .trailers:
            return try parseTrailers(&buffer)
        case .untilClose:
            guard buffer.readableBytes > 0 else { return nil }
            return .body(buffer.readSlice(length: buffer.readableBytes)!)
        case .upgradeEnd:
            state = .upgraded
            return .end(nil)
        case .upgraded:
            return nil
        }
    }

    /// The input ended (the peer closed): the event that completes a body delimited by close.
    mutating func inputClosed() -> Event? {
        guard case .untilClose = state else { return nil }
        state = .head
        return .end(nil)
    }

    // MARK: Heads

    private mutating func parseHead(_ buffer: inout ByteBuffer) throws(Failure) -> Event? {
        if kind == .request {
            // RFC 9112 §2.2: empty lines before a request line are ignored.
            while let byte = buffer.readableBytesView.first, byte == .cr || byte == .lf {
                buffer.moveReaderIndex(forwardBy: 1)
            }
        }
        // A head that arrived in one read (nearly all) is parsed in the same pass that finds its
        // end. One that comes in pieces is searched for its end incrementally (`headLength`)
        // and parsed once, when complete.
        if searched > 0, headLength(buffer) == nil { return try waitForMore(buffer) }
        let parsed = buffer.withUnsafeReadableBytes { bytes -> Result<(event: Event?, length: Int)?, Failure> in
            do throws(Failure) {
                return .success(try parseHeadBytes(bytes, in: buffer))
            } catch {
                return .failure(error)
            }
        }
        let head: (event: Event?, length: Int)
        switch parsed {
        case .success(let complete?):
            head = complete
        case .success(nil):
            searched = buffer.readableBytes
            return try waitForMore(buffer)
        case .failure(let failure):
            // The verdict must not depend on how the bytes were split into reads: a refused
            // line counts only once the head is complete and within the size limit, as when
            // the head is parsed after arriving in pieces.
            searched = 0
            guard let length = headLength(buffer) else { return try waitForMore(buffer) }
            if length > maxHeadBytes + 8192 { throw kind == .request ? .tooLarge : .bad("response head too large") }
            throw failure
        }
        searched = 0
        if head.length > maxHeadBytes + 8192 { throw kind == .request ? .tooLarge : .bad("response head too large") }
        buffer.moveReaderIndex(forwardBy: head.length)
        // nil: an interim response was skipped; the final head may already be buffered.
        if let event = head.event { return event }
        return try next(from: &buffer)
    }

    /// An incomplete head: nil (more bytes needed) unless it is already over the size limit.
    private func waitForMore(_ buffer: ByteBuffer) throws(Failure) -> Event? {
        if buffer.readableBytes > maxHeadBytes + 8192 {
            throw kind == .request ? .tooLarge : .bad("response head too large")
        }
        return nil
    }

    /// The length of the head at the front of `buffer` (through its empty line), if complete.
    private mutating func headLength(_ buffer: ByteBuffer) -> Int? {
        buffer.withUnsafeReadableBytes { bytes -> Int? in
            guard let base = bytes.baseAddress else { return nil }
            let count = bytes.count
            var i = max(searched - 3, 0)
            while i < count, let found = memchr(base + i, Int32(UInt8.lf), count - i) {
                let lf = base.distance(to: UnsafeRawPointer(found))
                if lf + 1 < count, bytes[lf + 1] == .lf { return lf + 2 }
                if lf + 2 < count, bytes[lf + 1] == .cr, bytes[lf + 2] == .lf { return lf + 3 }
                i = lf + 1
            }
            searched = count
            return nil
        }
    }

    /// Parses the head at the front of `bytes` (`buffer`'s readable bytes): nil when its empty
    /// line has not arrived yet, otherwise the event (nil for a skipped interim response) and
    /// the head's length.
    private mutating func parseHeadBytes(_ bytes: UnsafeRawBufferPointer, in buffer: ByteBuffer) throws(Failure)
        -> (event: Event?, length: Int)? {
        var lines = LineCursor(bytes: bytes)
        guard let startLine = lines.next() else { return nil }
        // Field lines need no separate search for a bare CR: it fails the name or value syntax,
        // and the failure is then reported as the line ending it is (`lineFailure`). The start
        // line is checked here, first, as a whole.
        if startLine.containsCR { throw .bad("invalid line ending") }
        var fields = FieldCollector(indexingFrom: bytes.baseAddress, reusing: &spareIndex)
        var fieldBytes = 0
        while true {
            guard let line = lines.next() else { return nil }
            if line.isEmpty { break }
            fieldBytes += line.count + 2
            if fieldBytes > maxHeadBytes {
                throw Self.lineFailure(line, kind == .request ? .tooLarge : .bad("response head too large"))
            }
            do throws(Failure) { try fields.add(line) } catch { throw Self.lineFailure(line, error) }
        }
        // A response's index is dropped before the next response is parsed (the head is
        // written on at once), so the parser keeps it to reuse its storage. A request's lives
        // on with the exchange, and an idle client connection should not hold one.
        if kind == .response { spareIndex = fields.index }
        // A head keeps its field section as bytes (`RequestHead`, `ResponseHead`): the slice
        // shares the input's storage, no copy.
        let length = lines.position
        let slice = buffer.getSlice(at: buffer.readerIndex, length: length)!
        switch kind {
        case .request:
            let (method, target, version) = try Self.requestLine(startLine)
            let uri = String(decoding: UnsafeRawBufferPointer(rebasing: startLine[target]), as: UTF8.self)
            let framing = try fields.requestFraming()
            switch framing {
            case .none: state = .fixed(0)
            case .length(let n): state = .fixed(n)
            case .chunked: state = .chunkSize
            case .untilClose: state = .untilClose
            }
            // The start line is the head's first bytes: the target's range in the line is its
            // range in the head.
            return (.requestHead(RequestHead(method: method, uri: uri, version: version,
                                             fields: FieldBlock(bytes: slice, fields: fields.takeIndex()), target: target)), length)
        case .response:
            let (version, status) = try Self.statusLine(startLine)
            let code = status.code
            if code == 101 {
                state = .upgradeEnd
            } else if code / 100 == 1 {
                // An interim response (100, 103, ...) says nothing the client asked for here
                // (the proxy answers Expect itself): it is skipped, the final one follows.
                state = .head
                return (nil, length)
            } else if respondingToHEAD || code == 204 || code == 304 {
                state = .fixed(0)
            } else {
                switch try fields.responseFraming() {
                case .none: state = .fixed(0)
                case .length(let n): state = .fixed(n)
                case .chunked: state = .chunkSize
                case .untilClose: state = .untilClose
                }
            }
            return (.responseHead(ResponseHead(version: version, status: status,
                                               fields: FieldBlock(bytes: slice, fields: fields.takeIndex()))), length)
        }
    }

    /// The method, where the target is in `line`, and the version.
    private static func requestLine(_ line: UnsafeRawBufferPointer) throws(Failure) -> (HTTPMethod, Range<Int>, HTTPVersion) {
        guard let sp1 = line.firstIndex(of: .space), sp1 > 0 else { throw .bad("invalid method") }
        let method = UnsafeRawBufferPointer(rebasing: line[..<sp1])
        guard method.allSatisfy(\.isTokenChar) else { throw .bad("invalid method") }
        let rest = line[(sp1 + 1)...]
        guard let sp2 = rest.firstIndex(of: .space), sp2 > rest.startIndex else { throw .bad("invalid request target") }
        let target = UnsafeRawBufferPointer(rebasing: line[rest.startIndex..<sp2])
        guard target.allSatisfy({ $0 > 0x20 && $0 != 0x7F }) else { throw .bad("invalid request target") }
        guard let version = httpVersion(UnsafeRawBufferPointer(rebasing: line[(sp2 + 1)...])) else {
            throw .bad("invalid HTTP version")
        }
        return (knownMethod(method), rest.startIndex..<sp2, version)
    }

    private static func statusLine(_ line: UnsafeRawBufferPointer) throws(Failure) -> (HTTPVersion, HTTPResponseStatus) {
        guard line.count >= 12, let version = httpVersion(UnsafeRawBufferPointer(rebasing: line[..<8])),
              line[8] == .space else { throw .bad("invalid status line") }
        var code = 0
        for i in 9..<12 {
            guard line[i] >= .zero, line[i] <= .nine else { throw .bad("invalid status line") }
            code = code * 10 + Int(line[i] - .zero)
        }
        guard code >= 100, line.count == 12 || line[12] == .space else { throw .bad("invalid status line") }
        return (version, HTTPResponseStatus(statusCode: code))
    }

    private static func httpVersion(_ bytes: UnsafeRawBufferPointer) -> HTTPVersion? {
        guard bytes.count == 8, bytes[0] == UInt8(ascii: "H"), bytes[1] == UInt8(ascii: "T"),
              bytes[2] == UInt8(ascii: "T"), bytes[3] == UInt8(ascii: "P"), bytes[4] == UInt8(ascii: "/"),
              bytes[5] == UInt8(ascii: "1"), bytes[6] == UInt8(ascii: "."),
              bytes[7] >= .zero, bytes[7] <= .nine else { return nil }
        return HTTPVersion(major: 1, minor: Int(bytes[7] - .zero))
    }

    /// The method without going through `HTTPMethod(rawValue:)`'s string switch for the common ones.
    private static func knownMethod(_ bytes: UnsafeRawBufferPointer) -> HTTPMethod {
        switch bytes.count {
        case 3 where bytes[0] == UInt8(ascii: "G") && bytes[1] == UInt8(ascii: "E") && bytes[2] == UInt8(ascii: "T"):
            return .GET
        case 4 where bytes[0] == UInt8(ascii: "P") && bytes[1] == UInt8(ascii: "O") && bytes[2] == UInt8(ascii: "S")
            && bytes[3] == UInt8(ascii: "T"):
            return .POST
        case 4 where bytes[0] == UInt8(ascii: "H") && bytes[1] == UInt8(ascii: "E") && bytes[2] == UInt8(ascii: "A")
            && bytes[3] == UInt8(ascii: "D"):
            return .HEAD
        default:
            return HTTPMethod(rawValue: String(decoding: bytes, as: UTF8.self))
        }
    }

    // MARK: Chunked bodies

    /// One line from the front of `buffer` (without its line end), or nil when incomplete.
    private func readLine(_ buffer: inout ByteBuffer, limit: Int, failure: Failure) throws(Failure) -> [UInt8]? {
        guard let lf = buffer.readableBytesView.firstIndex(of: .lf) else {
            // `limit` counts the line without its CRLF: a CR may still be waiting for its LF.
            if buffer.readableBytes > limit + 1 { throw failure }
            return nil
        }
        let length = lf - buffer.readerIndex
        var line = buffer.readBytes(length: length)!
        buffer.moveReaderIndex(forwardBy: 1)
        if line.last == .cr { line.removeLast() }
        guard line.count <= limit, !line.contains(.cr) else { throw failure }
        return line
    }

    /// `chunk-size [ chunk-ext ]`: hexadecimal digits, extensions ignored.
    private static func chunkSize(_ line: [UInt8]) throws(Failure) -> Int {
        var size = 0
        var digits = 0
        for byte in line {
            let value: Int
            switch byte {
            case .zero ... .nine: value = Int(byte - .zero)
            case UInt8(ascii: "a") ... UInt8(ascii: "f"): value = Int(byte - UInt8(ascii: "a")) + 10
            case UInt8(ascii: "A") ... UInt8(ascii: "F"): value = Int(byte - UInt8(ascii: "A")) + 10
            case .semicolon, .space, .tab:
                guard digits > 0 else { throw .bad("invalid chunk size") }
                return size
            default:
                throw .bad("invalid chunk size")
            }
            digits += 1
            guard digits <= 15 else { throw .bad("invalid chunk size") }
            size = size << 4 | value
        }
        guard digits > 0 else { throw .bad("invalid chunk size") }
        return size
    }

    private mutating func parseTrailers(_ buffer: inout ByteBuffer) throws(Failure) -> Event? {
        // No trailer fields: just the empty line.
        let view = buffer.readableBytesView
        if let first = view.first {
            if first == .lf || (first == .cr && view.dropFirst().first == .lf) {
                buffer.moveReaderIndex(forwardBy: first == .lf ? 1 : 2)
                state = .head
                return .end(nil)
            }
        } else {
            return nil
        }
        guard let length = headLength(buffer) else {
            if buffer.readableBytes > maxHeadBytes { throw .tooLarge }
            return nil
        }
        searched = 0
        if length > maxHeadBytes { throw .tooLarge }
        let parsed = buffer.withUnsafeReadableBytes { bytes -> Result<HTTPHeaders, Failure> in
            do throws(Failure) {
                var lines = LineCursor(bytes: UnsafeRawBufferPointer(rebasing: bytes[..<length]))
                var unused: [FieldBlock.Field] = []
                var fields = FieldCollector(indexingFrom: nil, reusing: &unused)
                while let line = lines.next(), !line.isEmpty {
                    do throws(Failure) { try fields.add(line) } catch { throw Self.lineFailure(line, error) }
                }
                return .success(HTTPHeaders(fields.headers))
            } catch {
                return .failure(error)
            }
        }
        let trailers = try parsed.get()
        buffer.moveReaderIndex(forwardBy: length)
        state = .head
        return .end(trailers)
    }
}

/// Walks the lines of a head. A line ends in CRLF or a bare LF (RFC 9112 §2.2); a CR anywhere
/// else is refused by the caller (`HTTP1Parser.lineFailure`). Bytes after the last LF are not a
/// line yet (nil: the head is incomplete).
private struct LineCursor {
    let bytes: UnsafeRawBufferPointer
    var position = 0

    mutating func next() -> UnsafeRawBufferPointer? {
        guard position < bytes.count, let base = bytes.baseAddress,
              let found = memchr(base + position, Int32(UInt8.lf), bytes.count - position) else { return nil }
        let end = base.distance(to: UnsafeRawPointer(found))
        var lineEnd = end
        if lineEnd > position, base.load(fromByteOffset: lineEnd - 1, as: UInt8.self) == .cr { lineEnd -= 1 }
        let start = position
        position = end + 1
        return UnsafeRawBufferPointer(start: base + start, count: lineEnd - start)
    }
}

extension HTTP1Parser {
    /// What a refused line is reported as: a bare CR in it is the real problem (RFC 9112 §2.2),
    /// whatever check it happened to fail first.
    fileprivate static func lineFailure(_ line: UnsafeRawBufferPointer, _ failure: Failure) -> Failure {
        line.containsCR ? .bad("invalid line ending") : failure
    }
}

extension UnsafeRawBufferPointer {
    fileprivate var containsCR: Bool {
        guard let base = baseAddress, count > 0 else { return false }
        return memchr(base, Int32(UInt8.cr), count) != nil
    }
}

/// Collects a field section, checking each line's syntax and noting the framing fields.
private struct FieldCollector {
    enum Framing { case none, length(Int), chunked, untilClose }

    /// The fields as strings (trailers)...
    var headers: [(String, String)] = []
    /// ...or as offsets from `origin` (heads, see `RequestHead`).
    var index: [FieldBlock.Field]
    private let origin: UnsafeRawPointer?
    private var contentLength: Int?
    private var conflictingLengths = false
    private var invalidLength = false
    /// The last `Transfer-Encoding` field ends in `chunked`.
    private var endsInChunked = false
    private var hasTransferEncoding = false

    /// `origin`: where the head's bytes start, to index fields instead of making strings.
    /// `spare`: an earlier index whose storage is reused when nothing else holds it any more.
    init(indexingFrom origin: UnsafeRawPointer?, reusing spare: inout [FieldBlock.Field]) {
        self.origin = origin
        index = []
        swap(&index, &spare)
        if origin == nil {
            headers.reserveCapacity(16)
        } else {
            index.removeAll(keepingCapacity: true)
            if index.capacity < 16 { index.reserveCapacity(16) }
        }
    }

    /// The index, moved out (the collector keeps an empty one): handed to the head without a
    /// retain, and without a release when the collector goes.
    mutating func takeIndex() -> [FieldBlock.Field] {
        var taken: [FieldBlock.Field] = []
        swap(&taken, &index)
        return taken
    }

    mutating func add(_ line: UnsafeRawBufferPointer) throws(HTTP1Parser.Failure) {
        // The name: token characters up to the colon. obs-fold (a line starting with
        // whitespace, RFC 9112 §5.2) and whitespace between the name and the colon (§5.1) are
        // refused with it: neither is a token character.
        let count = line.count
        guard let base = line.baseAddress, let found = memchr(base, Int32(UInt8.colon), count) else {
            throw .bad("invalid header field")
        }
        let colon = base.distance(to: UnsafeRawPointer(found))
        let name = UnsafeRawBufferPointer(start: base, count: colon)
        guard let kind = FieldName.classify(name) else { throw .bad("invalid header field") }
        var start = colon + 1
        var end = count
        while start < end, base.load(fromByteOffset: start, as: UInt8.self).isOptionalWhitespace { start += 1 }
        while end > start, base.load(fromByteOffset: end - 1, as: UInt8.self).isOptionalWhitespace { end -= 1 }
        guard Self.isFieldValue(base + start, count: end - start) else { throw .bad("invalid header value") }
        let value = UnsafeRawBufferPointer(start: base + start, count: end - start)
        if kind == .contentLength {
            if let n = Self.decimal(value) {
                if let seen = contentLength, seen != n { conflictingLengths = true }
                contentLength = n
            } else {
                invalidLength = true
            }
        } else if kind == .transferEncoding {
            hasTransferEncoding = true
            endsInChunked = HeaderRewrite.lastCodingIsChunked(value)
        }
        if let origin {
            index.append(FieldBlock.Field(nameStart: Int32(truncatingIfNeeded: origin.distance(to: base)),
                                          nameCount: Int32(truncatingIfNeeded: colon),
                                          valueStart: Int32(truncatingIfNeeded: origin.distance(to: base + start)),
                                          valueCount: Int32(truncatingIfNeeded: end - start),
                                          kind: kind))
        } else {
            headers.append((String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
        }
    }

    /// A request's body framing (RFC 9112 §6.3), refusing every ambiguous form.
    func requestFraming() throws(HTTP1Parser.Failure) -> Framing {
        if hasTransferEncoding {
            if contentLength != nil || invalidLength { throw .bad("both Content-Length and Transfer-Encoding") }
            guard endsInChunked else { throw .bad("Transfer-Encoding must end in chunked") }
            return .chunked
        }
        if invalidLength { throw .bad("invalid Content-Length") }
        if conflictingLengths { throw .bad("conflicting Content-Length values") }
        return contentLength.map { .length($0) } ?? .none
    }

    /// A response's body framing: chunked, a length, or (anything else) until the close. Both
    /// `Transfer-Encoding` and `Content-Length` is refused as for a request (RFC 9112 §6.3: "ought
    /// to be handled as an error"; nginx answers 502): passed on with its length and the decoded
    /// body, a body longer than the length would be read by an HTTP/1.1 client as its next
    /// response.
    func responseFraming() throws(HTTP1Parser.Failure) -> Framing {
        if hasTransferEncoding {
            if contentLength != nil || invalidLength { throw .bad("both Content-Length and Transfer-Encoding") }
            return endsInChunked ? .chunked : .untilClose
        }
        if invalidLength || conflictingLengths { throw .bad("invalid Content-Length") }
        return contentLength.map { .length($0) } ?? .untilClose
    }

    /// Whether every byte may appear in a field value (VCHAR, obs-text, SP, HTAB; RFC 9110
    /// §5.5). Eight bytes at a time: a word with no byte below 0x20 and none equal to 0x7F
    /// passes at once; otherwise (a TAB, or a real control character) the bytes are checked
    /// one by one from there.
    static func isFieldValue(_ bytes: UnsafeRawPointer, count: Int) -> Bool {
        var i = 0
        while i + 8 <= count {
            let word = bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            let below20 = (word &- 0x2020_2020_2020_2020) & ~word & 0x8080_8080_8080_8080
            let x = word ^ 0x7F7F_7F7F_7F7F_7F7F
            let del = (x &- 0x0101_0101_0101_0101) & ~x & 0x8080_8080_8080_8080
            if below20 | del != 0 { break }
            i += 8
        }
        while i < count {
            let byte = bytes.load(fromByteOffset: i, as: UInt8.self)
            if byte < 0x20 && byte != .tab || byte == 0x7F { return false }
            i += 1
        }
        return true
    }

    private static func decimal(_ bytes: UnsafeRawBufferPointer) -> Int? {
        guard !bytes.isEmpty, bytes.count <= 18 else { return nil }
        var n = 0
        for byte in bytes {
            guard byte >= .zero, byte <= .nine else { return nil }
            n = n * 10 + Int(byte - .zero)
        }
        return n
    }
}

extension UnsafeRawBufferPointer {
    /// ASCII case-insensitive comparison with a lowercase name.
    func equalsIgnoringCase(lowercased name: String) -> Bool {
        var name = name
        return name.withUTF8 { lower in
            guard lower.count == count else { return false }
            for i in 0..<count where self[i].asciiLowercased != lower[i] { return false }
            return true
        }
    }

    /// ASCII case-insensitive comparison with a lowercase literal: eight bytes at a time (field
    /// names are classified on every field of every message).
    func equalsIgnoringCase(_ lower: StaticString) -> Bool {
        let n = lower.utf8CodeUnitCount
        guard count == n else { return false }
        guard n > 0, let base = baseAddress else { return true }
        let literal = UnsafeRawPointer(lower.utf8Start)
        var i = 0
        while i + 8 <= n {
            let word = base.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            if word.asciiLowercased != literal.loadUnaligned(fromByteOffset: i, as: UInt64.self) { return false }
            i += 8
        }
        while i < n {
            if base.load(fromByteOffset: i, as: UInt8.self).asciiLowercased != literal.load(fromByteOffset: i, as: UInt8.self) {
                return false
            }
            i += 1
        }
        return true
    }
}

extension UInt64 {
    /// Each byte `A`–`Z` lowered, every other byte as it is (SWAR: bit 7 of a byte is set in
    /// `upper` exactly when the byte is below 0x80 and within 0x41..<0x5B).
    var asciiLowercased: UInt64 {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let low7 = self & (0x7F &* ones)
        let upper = ((low7 &+ (0x80 - 0x41) &* ones) ^ (low7 &+ (0x80 - 0x5B) &* ones)) & ~self & (0x80 &* ones)
        return self | (upper >> 2)
    }
}

extension UInt8 {
    static let cr = UInt8(ascii: "\r")
    static let lf = UInt8(ascii: "\n")
    static let space = UInt8(ascii: " ")
    static let tab = UInt8(ascii: "\t")
    static let colon = UInt8(ascii: ":")
    static let semicolon = UInt8(ascii: ";")
    static let comma = UInt8(ascii: ",")
    static let zero = UInt8(ascii: "0")
    static let nine = UInt8(ascii: "9")

    /// SP or HTAB (RFC 9110 §5.6.3 `OWS`).
    var isOptionalWhitespace: Bool { self == .space || self == .tab }

    /// `A`–`Z` lowered; every other byte as it is.
    var asciiLowercased: UInt8 { self &- 0x41 < 26 ? self | 0x20 : self }

    /// RFC 9110 §5.6.2 `tchar`, as two 64-bit masks over ASCII.
    var isTokenChar: Bool {
        // !#$%&'*+-.^_`|~ digits and letters: bits of the bytes 0-63 and 64-127.
        let low: UInt64 = 0x03FF_6CFA_0000_0000
        let high: UInt64 = 0x57FF_FFFF_C7FF_FFFE
        return self < 128 && ((self < 64 ? low : high) >> UInt64(self & 63)) & 1 == 1
    }
}
