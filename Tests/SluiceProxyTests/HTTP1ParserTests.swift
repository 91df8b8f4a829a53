import NIOCore
import NIOHTTP1
import Testing
@testable import SluiceProxy

/// Unit tests of `HTTP1Parser`, the proxy's own RFC 9112 parser: bytes in, events out, no
/// channels. Every refusal is checked for its exact status and text (they become the proxy's
/// 400/431 answers), and the incremental cases feed the same input one byte at a time.
@Suite struct HTTP1ParserTests {
    // MARK: Helpers

    /// One parser event, flattened to comparable values (fields as `name: value`, in order).
    enum Step: Equatable, CustomStringConvertible {
        case request(method: String, uri: String, version: String, fields: [String])
        case response(status: Int, version: String, fields: [String])
        case body(String)
        case end(trailers: [String]?)

        var description: String {
            switch self {
            case .request(let method, let uri, let version, let fields): "request(\(method) \(uri) \(version) \(fields))"
            case .response(let status, let version, let fields): "response(\(version) \(status) \(fields))"
            case .body(let text): "body(\(text.debugDescription))"
            case .end(let trailers): "end(\(trailers.map { "\($0)" } ?? "nil"))"
            }
        }
    }

    static func fields(_ headers: HTTPHeaders) -> [String] {
        headers.map { "\($0.name): \($0.value)" }
    }

    static func version(_ version: HTTPVersion) -> String {
        "HTTP/\(version.major).\(version.minor)"
    }

    static func step(_ event: HTTP1Parser.Event) -> Step {
        switch event {
        case .requestHead(let head):
            .request(method: head.method.rawValue, uri: head.uri, version: version(head.version), fields: fields(head.fields.headers))
        case .responseHead(let head):
            .response(status: Int(head.status.code), version: version(head.version), fields: fields(head.fields.headers))
        case .body(let body):
            .body(String(buffer: body))
        case .end(let trailers):
            .end(trailers: trailers.map(fields))
        }
    }

    /// Calls `next(from:)` until it returns nil (it needs more bytes); throws the parser's refusal.
    static func drain(_ parser: inout HTTP1Parser, _ buffer: inout ByteBuffer) throws(HTTP1Parser.Failure) -> [Step] {
        var steps: [Step] = []
        while let event = try parser.next(from: &buffer) {
            steps.append(step(event))
            if steps.count > 100_000 {
                Issue.record("the parser never asked for more bytes")
                break
            }
        }
        return steps
    }

    /// All events for `input` delivered in one read.
    static func parse(_ input: String, kind: HTTP1Parser.Kind = .request,
                      maxHeadBytes: Int = 1024) throws(HTTP1Parser.Failure) -> [Step] {
        var parser = HTTP1Parser(kind: kind, maxHeadBytes: maxHeadBytes)
        var buffer = ByteBuffer(string: input)
        let steps = try drain(&parser, &buffer)
        #expect(buffer.readableBytes == 0, "unconsumed: \(String(buffer: buffer).debugDescription)")
        return steps
    }

    /// All events for `input` delivered one byte per read, with adjacent body slices joined
    /// (how the body is sliced depends on the reads; its bytes must not).
    static func parseByteByByte(_ input: String, kind: HTTP1Parser.Kind = .request,
                                maxHeadBytes: Int = 1024) throws(HTTP1Parser.Failure) -> [Step] {
        var parser = HTTP1Parser(kind: kind, maxHeadBytes: maxHeadBytes)
        var buffer = ByteBuffer()
        var steps: [Step] = []
        for byte in input.utf8 {
            buffer.writeInteger(byte)
            steps += try drain(&parser, &buffer)
        }
        #expect(buffer.readableBytes == 0, "unconsumed: \(String(buffer: buffer).debugDescription)")
        return joinBodies(steps)
    }

    static func joinBodies(_ steps: [Step]) -> [Step] {
        var out: [Step] = []
        for step in steps {
            if case .body(let more) = step, case .body(let text)? = out.last {
                out[out.count - 1] = .body(text + more)
            } else {
                out.append(step)
            }
        }
        return out
    }

    /// The parser's refusal of `input` (one read), or nil if it accepted it.
    static func refusal(_ input: String, kind: HTTP1Parser.Kind = .request, maxHeadBytes: Int = 1024) -> HTTP1Parser.Failure? {
        var parser = HTTP1Parser(kind: kind, maxHeadBytes: maxHeadBytes)
        var buffer = ByteBuffer(string: input)
        do throws(HTTP1Parser.Failure) {
            _ = try drain(&parser, &buffer)
            return nil
        } catch {
            return error
        }
    }

    /// The parser's refusal of raw `bytes` (one read), or nil if it accepted them.
    static func refusal(bytes: [UInt8], kind: HTTP1Parser.Kind = .request, maxHeadBytes: Int = 1024) -> HTTP1Parser.Failure? {
        var parser = HTTP1Parser(kind: kind, maxHeadBytes: maxHeadBytes)
        var buffer = ByteBuffer(bytes: bytes)
        do throws(HTTP1Parser.Failure) {
            _ = try drain(&parser, &buffer)
            return nil
        } catch {
            return error
        }
    }

    /// The parser's refusal of `input` fed one byte per read, or nil if it accepted it.
    static func refusalByteByByte(_ input: String, kind: HTTP1Parser.Kind = .request,
                                  maxHeadBytes: Int = 1024) -> HTTP1Parser.Failure? {
        var parser = HTTP1Parser(kind: kind, maxHeadBytes: maxHeadBytes)
        var buffer = ByteBuffer()
        do throws(HTTP1Parser.Failure) {
            for byte in input.utf8 {
                buffer.writeInteger(byte)
                _ = try drain(&parser, &buffer)
            }
            return nil
        } catch {
            return error
        }
    }

    /// The 400 the proxy answers with, spelled out (not via `Failure.bad`, so its text is pinned).
    static func bad(_ what: String) -> HTTP1Parser.Failure {
        HTTP1Parser.Failure(status: .badRequest, message: "malformed request: \(what)")
    }

    static let tooLarge = HTTP1Parser.Failure(status: .requestHeaderFieldsTooLarge, message: "request header fields too large")

    // MARK: Requests

    /// A GET: method, target, version and every field in arrival order (names keep their case,
    /// values lose surrounding whitespace), then an end without trailers; nothing left over.
    @Test func simpleGet() throws {
        var parser = HTTP1Parser(kind: .request, maxHeadBytes: 1024)
        var buffer = ByteBuffer(string:
            "GET /index.html?q=1&r=%20 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n"
            + "x-padded: \t two  words \t\r\nX-Empty:\r\nhost: again\r\n\r\n")
        let first = try parser.next(from: &buffer)
        guard case .requestHead(let head)? = first else {
            Issue.record("expected a request head, got \(String(describing: first))")
            return
        }
        #expect(head.method == .GET)
        #expect(head.uri == "/index.html?q=1&r=%20")
        #expect(head.version == .http1_1)
        #expect(Self.fields(head.fields.headers) == [
            "Host: example.com", "Accept: */*", "x-padded: two  words", "X-Empty: ", "host: again",
        ])
        // The routing core reads values in place, in order, and stops at the first answer.
        var visited: [String] = []
        let found = head.fields.firstValue(of: "host") { (value: UnsafeBufferPointer<UInt8>) -> String? in
            visited.append(String(decoding: value, as: UTF8.self))
            return visited.count == 2 ? visited[1] : nil
        }
        #expect(found == "again" && visited == ["example.com", "again"])
        #expect(head.fields.firstValue(of: "x-padded") { String(decoding: $0, as: UTF8.self) } == "two  words")
        #expect(head.fields.firstValue(of: "x-empty") { $0.count } == 0)
        #expect(head.fields.firstValue(of: "absent") { _ in true } == nil)
        #expect(!parser.isAtMessageStart)
        guard case .end(let trailers)? = try parser.next(from: &buffer) else {
            Issue.record("expected the end")
            return
        }
        #expect(trailers == nil)
        #expect(parser.isAtMessageStart)
        #expect(buffer.readableBytes == 0)
        #expect(try parser.next(from: &buffer).map(Self.step) == nil)
    }

    /// Methods: the common three map to their cases, other tokens to theirs (extension methods
    /// as `.RAW`); HTTP/1.0 is reported as such.
    @Test func methodsAndVersions() throws {
        #expect(try Self.parse("HEAD / HTTP/1.0\r\n\r\n") == [
            .request(method: "HEAD", uri: "/", version: "HTTP/1.0", fields: []), .end(trailers: nil),
        ])
        var parser = HTTP1Parser(kind: .request, maxHeadBytes: 1024)
        var buffer = ByteBuffer(string: "PATCH /a HTTP/1.1\r\n\r\nPURGE /b HTTP/1.1\r\n\r\nOPTIONS * HTTP/1.1\r\n\r\n")
        var methods: [HTTPMethod] = []
        var uris: [String] = []
        while let event = try parser.next(from: &buffer) {
            if case .requestHead(let head) = event {
                methods.append(head.method)
                uris.append(head.uri)
            }
        }
        #expect(methods == [.PATCH, .RAW(value: "PURGE"), .OPTIONS])
        #expect(uris == ["/a", "/b", "*"])
    }

    /// A Content-Length body is delivered as slices of the input as they arrive, never past the
    /// length: the next request's bytes stay in the buffer.
    @Test func postWithContentLength() throws {
        #expect(try Self.parse("POST /submit HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world") == [
            .request(method: "POST", uri: "/submit", version: "HTTP/1.1", fields: ["Host: a", "Content-Length: 11"]),
            .body("hello world"),
            .end(trailers: nil),
        ])

        var parser = HTTP1Parser(kind: .request, maxHeadBytes: 1024)
        var buffer = ByteBuffer(string: "POST /submit HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello")
        #expect(try Self.drain(&parser, &buffer) == [
            .request(method: "POST", uri: "/submit", version: "HTTP/1.1", fields: ["Content-Length: 11"]),
            .body("hello"),
        ])
        #expect(!parser.isAtMessageStart)
        buffer.writeString(" worldGET /next HTTP/1.1\r\n")
        #expect(try parser.next(from: &buffer).map(Self.step) == .body(" world"))
        #expect(try parser.next(from: &buffer).map(Self.step) == .end(trailers: nil))
        #expect(parser.isAtMessageStart)
        #expect(String(buffer: buffer) == "GET /next HTTP/1.1\r\n")
        #expect(try parser.next(from: &buffer).map(Self.step) == nil)
    }

    /// `Content-Length: 0` and a repeated identical length are fine: an empty body, or the agreed one.
    @Test func zeroAndRepeatedContentLength() throws {
        #expect(try Self.parse("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n") == [
            .request(method: "POST", uri: "/", version: "HTTP/1.1", fields: ["Content-Length: 0"]),
            .end(trailers: nil),
        ])
        #expect(try Self.parse("POST / HTTP/1.1\r\ncontent-length: 3\r\nCONTENT-LENGTH: 003\r\n\r\nabc") == [
            .request(method: "POST", uri: "/", version: "HTTP/1.1",
                     fields: ["content-length: 3", "CONTENT-LENGTH: 003"]),
            .body("abc"),
            .end(trailers: nil),
        ])
    }

    /// The same Content-Length request fed one byte per read: the same head, one slice per
    /// byte whose bytes join to the same body, the same end.
    @Test func contentLengthOneByteAtATime() throws {
        let input = "POST /submit HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world"
        var parser = HTTP1Parser(kind: .request, maxHeadBytes: 1024)
        var buffer = ByteBuffer()
        var steps: [Step] = []
        for byte in input.utf8 {
            buffer.writeInteger(byte)
            steps += try Self.drain(&parser, &buffer)
        }
        #expect(steps.count == 1 + 11 + 1)
        #expect(try Self.parse(input) == Self.joinBodies(steps))
        #expect(Self.joinBodies(steps) == [
            .request(method: "POST", uri: "/submit", version: "HTTP/1.1", fields: ["Host: a", "Content-Length: 11"]),
            .body("hello world"),
            .end(trailers: nil),
        ])
    }

    /// A chunked body: chunk extensions (with and without whitespace before `;`) are ignored,
    /// chunk data comes out as body slices, and the trailer fields come back in the end.
    @Test func chunkedWithExtensionsAndTrailers() throws {
        let input = "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "5;name=value\r\nhello\r\n6 ; foo=\"bar\"\r\n world\r\n0;last\r\nX-Checksum: abc\r\nX-Other:  1 \r\n\r\n"
        let expected: [Step] = [
            .request(method: "POST", uri: "/up", version: "HTTP/1.1", fields: ["Host: a", "Transfer-Encoding: chunked"]),
            .body("hello"),
            .body(" world"),
            .end(trailers: ["X-Checksum: abc", "X-Other: 1"]),
        ]
        #expect(try Self.parse(input) == expected)
        #expect(try Self.parseByteByByte(input) == Self.joinBodies(expected))
    }

    /// A chunked body without trailers ends with `nil` trailers, and the next request follows.
    @Test func chunkedWithoutTrailers() throws {
        let input = "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /b HTTP/1.1\r\n\r\n"
        let expected: [Step] = [
            .request(method: "POST", uri: "/a", version: "HTTP/1.1", fields: ["Transfer-Encoding: chunked"]),
            .body("abc"),
            .end(trailers: nil),
            .request(method: "GET", uri: "/b", version: "HTTP/1.1", fields: []),
            .end(trailers: nil),
        ]
        #expect(try Self.parse(input) == expected)
        #expect(try Self.parseByteByByte(input) == expected)
    }

    /// Chunk sizes are hexadecimal in either case (`A` = 10, `1F` = 31, `1f` = 31), leading
    /// zeros allowed.
    @Test func chunkedUppercaseHex() throws {
        let thirtyOne = String(repeating: "x", count: 31)
        let input = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "A\r\n0123456789\r\n1F\r\n\(thirtyOne)\r\n001f\r\n\(thirtyOne)\r\n0\r\n\r\n"
        #expect(try Self.parse(input) == [
            .request(method: "POST", uri: "/", version: "HTTP/1.1", fields: ["Transfer-Encoding: chunked"]),
            .body("0123456789"),
            .body(thirtyOne),
            .body(thirtyOne),
            .end(trailers: nil),
        ])
    }

    /// The framing field values are case-insensitive and the last coding decides:
    /// `gzip, chunked` is a chunked body.
    @Test func transferEncodingEndingInChunked() throws {
        let input = "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
        #expect(try Self.parse(input) == [
            .request(method: "POST", uri: "/", version: "HTTP/1.1", fields: ["Transfer-Encoding: gzip, Chunked"]),
            .body("hi"),
            .end(trailers: nil),
        ])
        let twoFields = "POST / HTTP/1.1\r\ntransfer-encoding: gzip\r\nTRANSFER-ENCODING: chunked\r\n\r\n0\r\n\r\n"
        #expect(try Self.parse(twoFields) == [
            .request(method: "POST", uri: "/", version: "HTTP/1.1",
                     fields: ["transfer-encoding: gzip", "TRANSFER-ENCODING: chunked"]),
            .end(trailers: nil),
        ])
    }

    /// RFC 9112 §2.2: empty lines (CRLF or LF) before a request line are skipped, also between
    /// pipelined requests.
    @Test func leadingEmptyLinesAreIgnored() throws {
        #expect(try Self.parse("\r\n\r\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n\r\nGET /2 HTTP/1.1\r\n\r\n") == [
            .request(method: "GET", uri: "/", version: "HTTP/1.1", fields: ["Host: a"]),
            .end(trailers: nil),
            .request(method: "GET", uri: "/2", version: "HTTP/1.1", fields: []),
            .end(trailers: nil),
        ])
        // Only empty lines so far: consumed, and the parser waits for the request line.
        var parser = HTTP1Parser(kind: .request, maxHeadBytes: 1024)
        var buffer = ByteBuffer(string: "\r\n\r\n")
        #expect(try parser.next(from: &buffer).map(Self.step) == nil)
        #expect(buffer.readableBytes == 0)
        #expect(parser.isAtMessageStart)
    }

    /// Bare LF line ends are accepted (RFC 9112 §2.2), in the head, the chunk lines and the
    /// trailers, alone or mixed with CRLF.
    @Test func bareLineFeedsAreAccepted() throws {
        #expect(try Self.parse("GET /lf HTTP/1.1\nHost: a\r\nX: b\n\n") == [
            .request(method: "GET", uri: "/lf", version: "HTTP/1.1", fields: ["Host: a", "X: b"]),
            .end(trailers: nil),
        ])
        let chunked = "POST /c HTTP/1.1\nTransfer-Encoding: chunked\n\n3\nabc\n0\nT: 1\n\n"
        let expected: [Step] = [
            .request(method: "POST", uri: "/c", version: "HTTP/1.1", fields: ["Transfer-Encoding: chunked"]),
            .body("abc"),
            .end(trailers: ["T: 1"]),
        ]
        #expect(try Self.parse(chunked) == expected)
        #expect(try Self.parseByteByByte(chunked) == expected)
    }

    /// Pipelined requests in one read come out in order, each head followed by its own body.
    @Test func pipelinedRequestsInOneBuffer() throws {
        let input = "GET /a HTTP/1.1\r\nHost: a\r\n\r\n"
            + "POST /b HTTP/1.1\r\nHost: b\r\nContent-Length: 3\r\n\r\nxyz"
            + "PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nq\r\n0\r\n\r\n"
            + "GET /d HTTP/1.0\r\n\r\n"
        let expected: [Step] = [
            .request(method: "GET", uri: "/a", version: "HTTP/1.1", fields: ["Host: a"]),
            .end(trailers: nil),
            .request(method: "POST", uri: "/b", version: "HTTP/1.1", fields: ["Host: b", "Content-Length: 3"]),
            .body("xyz"),
            .end(trailers: nil),
            .request(method: "PUT", uri: "/c", version: "HTTP/1.1", fields: ["Transfer-Encoding: chunked"]),
            .body("q"),
            .end(trailers: nil),
            .request(method: "GET", uri: "/d", version: "HTTP/1.0", fields: []),
            .end(trailers: nil),
        ]
        #expect(try Self.parse(input) == expected)
        #expect(try Self.parseByteByByte(input) == expected)
    }

    /// Tabs and obs-text (bytes >= 0x80) are allowed inside a value.
    @Test func tabsAndObsTextInValues() throws {
        #expect(try Self.parse("GET / HTTP/1.1\r\nX-A: a\tb\r\nX-U: caf\u{E9}\r\n\r\n") == [
            .request(method: "GET", uri: "/", version: "HTTP/1.1", fields: ["X-A: a\tb", "X-U: caf\u{E9}"]),
            .end(trailers: nil),
        ])
    }

    // MARK: Request refusals

    /// Request smuggling: a request with both framings is refused whichever comes first, and
    /// also when its Content-Length is not even a number.
    @Test func contentLengthAndTransferEncodingIsRefused() {
        let both = Self.bad("both Content-Length and Transfer-Encoding")
        #expect(Self.refusal("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n") == both)
        #expect(Self.refusal("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n") == both)
        #expect(Self.refusal("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: x\r\n\r\n") == both)
        #expect(both.status == .badRequest)
        #expect(both.message == "malformed request: both Content-Length and Transfer-Encoding")
    }

    /// A request whose last transfer coding is not `chunked` has no knowable length: refused.
    @Test func transferEncodingNotEndingInChunkedIsRefused() {
        let refused = Self.bad("Transfer-Encoding must end in chunked")
        #expect(Self.refusal("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n") == refused)
        #expect(Self.refusal("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n") == refused)
        #expect(Self.refusal("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n") == refused)
        #expect(Self.refusal("POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n") == refused)
        #expect(Self.refusal("POST / HTTP/1.1\r\nTransfer-Encoding:\r\n\r\n") == refused)
    }

    /// Two different lengths, in two fields: refused rather than picking one.
    @Test func conflictingContentLengthsAreRefused() {
        #expect(Self.refusal("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello")
            == Self.bad("conflicting Content-Length values"))
    }

    /// A Content-Length that is not plain decimal digits (sign, list, empty, hex, overlong).
    @Test func invalidContentLengthIsRefused() {
        let invalid = Self.bad("invalid Content-Length")
        for value in ["abc", "-1", "+5", "5, 5", "", "0x10", "1 2", String(repeating: "9", count: 19)] {
            #expect(Self.refusal("POST / HTTP/1.1\r\nContent-Length: \(value)\r\n\r\n") == invalid, "value \(value.debugDescription)")
        }
        // One invalid value spoils an otherwise valid one.
        #expect(Self.refusal("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: five\r\n\r\nhello") == invalid)
    }

    /// RFC 9112 §5.1: no whitespace between a field name and its colon; names are tokens.
    @Test func whitespaceBeforeColonIsRefused() {
        let invalid = Self.bad("invalid header field")
        #expect(Self.refusal("GET / HTTP/1.1\r\nHost : a\r\n\r\n") == invalid)
        #expect(Self.refusal("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n") == invalid)
        #expect(Self.refusal("GET / HTTP/1.1\r\nX(y): a\r\n\r\n") == invalid)
        #expect(Self.refusal("GET / HTTP/1.1\r\n: no name\r\n\r\n") == invalid)
        #expect(Self.refusal("GET / HTTP/1.1\r\nno colon\r\n\r\n") == invalid)
    }

    /// RFC 9112 §5.2: obs-fold (a field line starting with whitespace) is refused.
    @Test func obsFoldIsRefused() {
        let invalid = Self.bad("invalid header field")
        #expect(Self.refusal("GET / HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n") == invalid)
        #expect(Self.refusal("GET / HTTP/1.1\r\nX-A: 1\r\n\tfolded: 2\r\n\r\n") == invalid)
        #expect(Self.refusal("GET / HTTP/1.1\r\n Host: a\r\n\r\n") == invalid)
    }

    /// RFC 9112 §2.2: a CR that does not end a line is refused, in a field or the request line.
    @Test func bareCarriageReturnIsRefused() {
        let invalid = Self.bad("invalid line ending")
        #expect(Self.refusal("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n") == invalid)
        #expect(Self.refusal("GET /\r HTTP/1.1\r\n\r\n") == invalid)
        #expect(Self.refusal("GET / HTTP/1.1\r\r\nHost: a\r\n\r\n") == invalid)
    }

    /// Control characters (NUL, other C0 but tab, DEL) are refused in values.
    @Test func controlCharactersInValuesAreRefused() {
        let invalid = Self.bad("invalid header value")
        #expect(Self.refusal("GET / HTTP/1.1\r\nX-A: a\u{0}b\r\n\r\n") == invalid)
        #expect(Self.refusal("GET / HTTP/1.1\r\nX-A: a\u{1}\r\n\r\n") == invalid)
        #expect(Self.refusal("GET / HTTP/1.1\r\nX-A: \u{7F}\r\n\r\n") == invalid)
    }

    /// Values longer than a machine word: a control character (or DEL) anywhere in a 24-byte
    /// value is found, while TAB, SP, visible ASCII and obs-text pass at every position.
    @Test func controlCharactersAnywhereInLongValues() throws {
        let prefix = Array("GET / HTTP/1.1\r\nX-Long: ".utf8)
        let suffix = Array("\r\n\r\n".utf8)
        for position in 0..<24 {
            for bad: UInt8 in [0x00, 0x01, 0x08, 0x0B, 0x1F, 0x7F] {
                var value = [UInt8](repeating: UInt8(ascii: "a"), count: 24)
                value[position] = bad
                #expect(Self.refusal(bytes: prefix + value + suffix) == Self.bad("invalid header value"),
                        "byte \(bad) at \(position)")
            }
            for good: UInt8 in [0x09, 0x20, 0x21, 0x7E, 0x80, 0x9F, 0xA0, 0xFF] {
                var value = [UInt8](repeating: UInt8(ascii: "a"), count: 24)
                value[position] = good
                #expect(Self.refusal(bytes: prefix + value + suffix) == nil, "byte \(good) at \(position)")
            }
        }
        // Accepted values come through unchanged (inner whitespace kept).
        #expect(try Self.parse("GET / HTTP/1.1\r\nX-Long: aaaaaaa\tbbbbbbbb cccccccc\u{E9}\r\n\r\n") == [
            .request(method: "GET", uri: "/", version: "HTTP/1.1", fields: ["X-Long: aaaaaaa\tbbbbbbbb cccccccc\u{E9}"]),
            .end(trailers: nil),
        ])
    }

    /// A method must be a non-empty token.
    @Test func invalidMethodIsRefused() {
        let invalid = Self.bad("invalid method")
        #expect(Self.refusal("G(T / HTTP/1.1\r\n\r\n") == invalid)
        #expect(Self.refusal("GE\"T / HTTP/1.1\r\n\r\n") == invalid)
        #expect(Self.refusal(" / HTTP/1.1\r\n\r\n") == invalid)
        #expect(Self.refusal("GET\r\n\r\n") == invalid)
    }

    /// A request target is one run of visible characters between single spaces.
    @Test func invalidRequestTargetIsRefused() {
        let invalid = Self.bad("invalid request target")
        #expect(Self.refusal("GET  / HTTP/1.1\r\n\r\n") == invalid)
        #expect(Self.refusal("GET /a\tb HTTP/1.1\r\n\r\n") == invalid)
        #expect(Self.refusal("GET /\u{7F} HTTP/1.1\r\n\r\n") == invalid)
        #expect(Self.refusal("GET /\r\n\r\n") == invalid)
    }

    /// Only `HTTP/1.x`, spelled exactly, is a version this parser reads.
    @Test func invalidVersionIsRefused() {
        let invalid = Self.bad("invalid HTTP version")
        for version in ["HTTP/2.0", "HTTX/1.1", "http/1.1", "HTTP/1.10", "HTTP/1.", "HTTP/1.x", "HTTP/1.1 ", ""] {
            #expect(Self.refusal("GET / \(version)\r\n\r\n") == invalid, "version \(version.debugDescription)")
        }
    }

    /// Chunk sizes: hexadecimal digits only (at most 15), the data followed by exactly a line end.
    @Test func invalidChunkSizeIsRefused() {
        let invalid = Self.bad("invalid chunk size")
        let head = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        #expect(Self.refusal(head + "zz\r\n") == invalid)
        #expect(Self.refusal(head + "\r\n") == invalid)
        #expect(Self.refusal(head + ";ext\r\n") == invalid)
        #expect(Self.refusal(head + "-1\r\n") == invalid)
        #expect(Self.refusal(head + "0x5\r\n") == invalid)
        #expect(Self.refusal(head + String(repeating: "f", count: 16) + "\r\n") == invalid)
        #expect(Self.refusal(head + "3\r\nabcX\r\n0\r\n\r\n") == invalid)
        #expect(Self.refusal(head + "3\r\nabc\r\r\n0\r\n\r\n") == invalid)
        #expect(Self.refusal(head + "1\r\na\r\n2\r\r\nbc\r\n") == invalid)
        // A size line with no end in sight is refused before it completes: beyond 4096 bytes
        // plus one for a CR whose LF has not arrived yet (so the verdict does not depend on
        // where a read ends: a complete 4096-byte line followed by CRLF is accepted).
        #expect(Self.refusal(head + "1" + String(repeating: ";", count: 4097)) == invalid)
        #expect(Self.refusal(head + "1" + String(repeating: ";", count: 4096)) == nil)
        #expect(Self.refusal(head + "1" + String(repeating: ";", count: 4095) + "\r") == nil)
    }

    /// A field section larger than `maxHeadBytes` is a 431: the limit counts each field line with
    /// its CRLF, so exactly `maxHeadBytes` passes and one byte more does not.
    @Test func completeHeadOverLimitIs431() throws {
        let fits = "GET / HTTP/1.1\r\nX-Big: " + String(repeating: "v", count: 1024 - 9) + "\r\n\r\n"
        #expect(try Self.parse(fits).count == 2)
        let over = "GET / HTTP/1.1\r\nX-Big: " + String(repeating: "v", count: 1024 - 8) + "\r\n\r\n"
        let failure = Self.refusal(over)
        #expect(failure == Self.tooLarge)
        #expect(failure?.status == .requestHeaderFieldsTooLarge)
        #expect(failure?.status.code == 431)
        #expect(failure?.message == "request header fields too large")
        // Many small fields add up the same way.
        let many = "GET / HTTP/1.1\r\n" + String(repeating: "X-Field: 0123456789\r\n", count: 50) + "\r\n"
        #expect(Self.refusal(many) == Self.tooLarge)
        #expect(Self.refusal(many, maxHeadBytes: 50 * 21) == nil)
    }

    /// A head that never ends is refused once more than `maxHeadBytes + 8192` bytes are buffered
    /// without its empty line; until then the parser waits.
    @Test func unendingHeadIs431() throws {
        var parser = HTTP1Parser(kind: .request, maxHeadBytes: 1024)
        var buffer = ByteBuffer(string: "GET / HTTP/1.1\r\nX-Big: ")
        buffer.writeString(String(repeating: "v", count: 1024 + 8192 - buffer.readableBytes))
        #expect(buffer.readableBytes == 9216)
        #expect(try parser.next(from: &buffer).map(Self.step) == nil)
        buffer.writeString("v")
        #expect(throws: Self.tooLarge) { try parser.next(from: &buffer) }

        // Growing in 1 KiB reads: nothing until the limit, then the 431.
        var growing = HTTP1Parser(kind: .request, maxHeadBytes: 1024)
        var input = ByteBuffer(string: "GET / HTTP/1.1\r\n")
        var reads = 0
        var failure: HTTP1Parser.Failure?
        while failure == nil, reads < 20 {
            input.writeString("X-Field-\(reads): " + String(repeating: "a", count: 1000) + "\r\n")
            reads += 1
            do throws(HTTP1Parser.Failure) {
                let event = try growing.next(from: &input)
                #expect(event.map(Self.step) == nil)
            } catch {
                failure = error
            }
        }
        // 16 + 9 × 1013 = 9133 bytes wait; the tenth read (10146 bytes) is refused.
        #expect(failure == Self.tooLarge)
        #expect(reads == 10)
    }

    /// The request line is not part of the field section: a long target passes on top of
    /// `maxHeadBytes` fields.
    @Test func longRequestLineWithinEightKiBIsAccepted() throws {
        let uri = "/" + String(repeating: "p", count: 7000)
        let input = "GET \(uri) HTTP/1.1\r\nHost: a\r\n\r\n"
        #expect(try Self.parse(input) == [
            .request(method: "GET", uri: uri, version: "HTTP/1.1", fields: ["Host: a"]), .end(trailers: nil),
        ])
        #expect(try Self.parse(input) == Self.parseByteByByte(input))
    }

    /// The same bytes get the same verdict however they are split into reads: a whole head
    /// (request line included) of more than `maxHeadBytes + 8192` bytes is a 431 whether it
    /// trickles in (the incomplete-head guard) or arrives in one read; exactly that many pass.
    @Test func overlongHeadVerdictDoesNotDependOnReads() throws {
        // "GET /" + target + " HTTP/1.1" + CRLF CRLF: 18 bytes around the target.
        let fits = "GET /" + String(repeating: "p", count: 1024 + 8192 - 18) + " HTTP/1.1\r\n\r\n"
        #expect(fits.utf8.count == 9216)
        #expect(try Self.parse(fits).count == 2)
        #expect(try Self.parseByteByByte(fits).count == 2)

        let over = "GET /" + String(repeating: "p", count: 1024 + 8192 - 17) + " HTTP/1.1\r\n\r\n"
        #expect(Self.refusal(over) == Self.tooLarge)
        #expect(Self.refusalByteByByte(over) == Self.tooLarge)

        let far = "GET /" + String(repeating: "p", count: 20_000) + " HTTP/1.1\r\nHost: a\r\n\r\n"
        #expect(Self.refusal(far) == Self.tooLarge)
        #expect(Self.refusalByteByByte(far) == Self.tooLarge)
    }

    /// Trailers are a field section too: more than `maxHeadBytes` of them (through their empty
    /// line) is a 431 whether they trickle in or arrive in one read; exactly that many pass.
    @Test func oversizedTrailersVerdictDoesNotDependOnReads() throws {
        let head = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
        // "X-Big: " + value + CRLF CRLF: 11 bytes around the value.
        let fits = head + "X-Big: " + String(repeating: "t", count: 1024 - 11) + "\r\n\r\n"
        let fitting: [Step] = [
            .request(method: "POST", uri: "/", version: "HTTP/1.1", fields: ["Transfer-Encoding: chunked"]),
            .end(trailers: ["X-Big: " + String(repeating: "t", count: 1013)]),
        ]
        #expect(try Self.parse(fits) == fitting)
        #expect(try Self.parseByteByByte(fits) == fitting)

        let over = head + "X-Big: " + String(repeating: "t", count: 1024 - 10) + "\r\n\r\n"
        #expect(Self.refusal(over) == Self.tooLarge)
        #expect(Self.refusalByteByByte(over) == Self.tooLarge)

        let far = head + "X-Big: " + String(repeating: "t", count: 2000) + "\r\n\r\n"
        #expect(Self.refusal(far) == Self.tooLarge)
        #expect(Self.refusalByteByByte(far) == Self.tooLarge)
    }

    /// Trailer fields follow the field syntax rules.
    @Test func invalidTrailerIsRefused() {
        let head = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
        #expect(Self.refusal(head + "Bad Name: x\r\n\r\n") == Self.bad("invalid header field"))
        #expect(Self.refusal(head + "X: a\u{0}\r\n\r\n") == Self.bad("invalid header value"))
    }

    // MARK: Responses

    /// A 200 with Content-Length: status, version, fields, exactly that many body bytes, end.
    @Test func responseWithContentLength() throws {
        var parser = HTTP1Parser(kind: .response, maxHeadBytes: 1024)
        var buffer = ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: t\r\n\r\nhelloHTTP/1.1 404 Not Found\r\n")
        let first = try parser.next(from: &buffer)
        guard case .responseHead(let head)? = first else {
            Issue.record("expected a response head, got \(String(describing: first))")
            return
        }
        #expect(head.status == .ok)
        #expect(head.version == .http1_1)
        #expect(Self.fields(head.fields.headers) == ["Content-Length: 5", "Server: t"])
        #expect(try Self.drain(&parser, &buffer) == [.body("hello"), .end(trailers: nil)])
        #expect(String(buffer: buffer) == "HTTP/1.1 404 Not Found\r\n")
        #expect(parser.isAtMessageStart)
    }

    /// The status line: any reason phrase (or none), HTTP/1.0, three-digit codes.
    @Test func statusLineVariants() throws {
        #expect(try Self.parse("HTTP/1.0 201 Made It\r\nContent-Length: 0\r\n\r\n", kind: .response) == [
            .response(status: 201, version: "HTTP/1.0", fields: ["Content-Length: 0"]), .end(trailers: nil),
        ])
        #expect(try Self.parse("HTTP/1.1 503\r\nContent-Length: 0\r\n\r\n", kind: .response) == [
            .response(status: 503, version: "HTTP/1.1", fields: ["Content-Length: 0"]), .end(trailers: nil),
        ])
        #expect(try Self.parse("HTTP/1.1 299 \r\ncontent-length: 1\r\n\r\n!", kind: .response) == [
            .response(status: 299, version: "HTTP/1.1", fields: ["content-length: 1"]), .body("!"), .end(trailers: nil),
        ])
    }

    /// A chunked response, in one read and byte by byte, with its trailers.
    @Test func chunkedResponse() throws {
        let input = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\ngrpc-status: 0\r\n\r\n"
        let expected: [Step] = [
            .response(status: 200, version: "HTTP/1.1", fields: ["Transfer-Encoding: chunked"]),
            .body("Wiki"),
            .body("pedia"),
            .end(trailers: ["grpc-status: 0"]),
        ]
        #expect(try Self.parse(input, kind: .response) == expected)
        #expect(try Self.parseByteByByte(input, kind: .response) == Self.joinBodies(expected))
        // Both framings in a response are refused, as in a request (RFC 9112 §6.3: "ought to be
        // handled as an error"; forwarding it would pass on a length the body does not have).
        for head in ["Content-Length: 99\r\nTransfer-Encoding: chunked", "Transfer-Encoding: chunked\r\nContent-Length: 1",
                     "Transfer-Encoding: chunked\r\nContent-Length: x"] {
            #expect(throws: HTTP1Parser.Failure.self) {
                try Self.parse("HTTP/1.1 200 OK\r\n\(head)\r\n\r\n1\r\nx\r\n0\r\n\r\n", kind: .response)
            }
        }
    }

    /// A response with neither Content-Length nor chunked is read until the close: body parts
    /// as they come, and the end only from `inputClosed()`.
    @Test func responseUntilClose() throws {
        var parser = HTTP1Parser(kind: .response, maxHeadBytes: 1024)
        var buffer = ByteBuffer(string: "HTTP/1.1 200 OK\r\nServer: t\r\n\r\npart one")
        #expect(!parser.readsUntilClose)
        #expect(try Self.drain(&parser, &buffer) == [
            .response(status: 200, version: "HTTP/1.1", fields: ["Server: t"]),
            .body("part one"),
        ])
        #expect(parser.readsUntilClose)
        buffer.writeString(", part two\r\n\r\nHTTP/1.1 200 OK\r\n\r\n")
        #expect(try Self.drain(&parser, &buffer) == [.body(", part two\r\n\r\nHTTP/1.1 200 OK\r\n\r\n")])
        #expect(parser.readsUntilClose)
        #expect(try parser.next(from: &buffer).map(Self.step) == nil)
        #expect(parser.inputClosed().map(Self.step) == .end(trailers: nil))
        #expect(!parser.readsUntilClose)
        #expect(parser.isAtMessageStart)
        #expect(parser.inputClosed().map(Self.step) == nil)

        // A transfer coding other than chunked: also until the close.
        var gzip = HTTP1Parser(kind: .response, maxHeadBytes: 1024)
        var gzipped = ByteBuffer(string: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n\u{1}\u{2}")
        #expect(try Self.drain(&gzip, &gzipped) == [
            .response(status: 200, version: "HTTP/1.1", fields: ["Transfer-Encoding: gzip"]), .body("\u{1}\u{2}"),
        ])
        #expect(gzip.readsUntilClose)
    }

    /// `inputClosed()` ends nothing but a body delimited by the close.
    @Test func inputClosedOutsideUntilClose() throws {
        var parser = HTTP1Parser(kind: .response, maxHeadBytes: 1024)
        #expect(parser.inputClosed().map(Self.step) == nil)
        var buffer = ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab")
        _ = try Self.drain(&parser, &buffer)
        #expect(!parser.readsUntilClose)
        #expect(parser.inputClosed().map(Self.step) == nil)
    }

    /// A response to HEAD has no body whatever its fields say; the next response follows at once.
    @Test func responseToHEADHasNoBody() throws {
        var parser = HTTP1Parser(kind: .response, maxHeadBytes: 1024)
        parser.respondingToHEAD = true
        var buffer = ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
            + "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "HTTP/1.1 200 OK\r\n\r\n")
        #expect(try Self.drain(&parser, &buffer) == [
            .response(status: 200, version: "HTTP/1.1", fields: ["Content-Length: 10"]), .end(trailers: nil),
            .response(status: 200, version: "HTTP/1.1", fields: ["Transfer-Encoding: chunked"]), .end(trailers: nil),
            .response(status: 200, version: "HTTP/1.1", fields: []), .end(trailers: nil),
        ])
        #expect(buffer.readableBytes == 0)
        #expect(!parser.readsUntilClose)
    }

    /// 204 and 304 never have a body, even with framing fields.
    @Test func noContentAndNotModifiedHaveNoBody() throws {
        let input = "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"
            + "HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\nETag: \"x\"\r\n\r\n"
            + "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        let expected: [Step] = [
            .response(status: 204, version: "HTTP/1.1", fields: ["Content-Length: 5"]), .end(trailers: nil),
            .response(status: 304, version: "HTTP/1.1", fields: ["Content-Length: 100", "ETag: \"x\""]), .end(trailers: nil),
            .response(status: 304, version: "HTTP/1.1", fields: ["Transfer-Encoding: chunked"]), .end(trailers: nil),
            .response(status: 200, version: "HTTP/1.1", fields: ["Content-Length: 2"]), .body("ok"), .end(trailers: nil),
        ]
        #expect(try Self.parse(input, kind: .response) == expected)
        #expect(try Self.parseByteByByte(input, kind: .response) == expected)
    }

    /// Interim responses (100, 103) are skipped: only the final head comes out, in one read or
    /// byte by byte.
    @Test func interimResponsesAreSkipped() throws {
        let input = "HTTP/1.1 100 Continue\r\n\r\n"
            + "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
            + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        let expected: [Step] = [
            .response(status: 200, version: "HTTP/1.1", fields: ["Content-Length: 2"]), .body("ok"), .end(trailers: nil),
        ]
        #expect(try Self.parse(input, kind: .response) == expected)
        #expect(try Self.parseByteByByte(input, kind: .response) == expected)

        // Only the interim response so far: consumed, nothing to report yet.
        var parser = HTTP1Parser(kind: .response, maxHeadBytes: 1024)
        var buffer = ByteBuffer(string: "HTTP/1.1 100 Continue\r\n\r\n")
        #expect(try parser.next(from: &buffer).map(Self.step) == nil)
        #expect(buffer.readableBytes == 0)
        #expect(parser.isAtMessageStart)
    }

    /// A 101: its head, then its end, then the parser is done with HTTP — the bytes after it
    /// belong to the upgraded protocol and stay in the buffer.
    @Test func switchingProtocolsLeavesTheRestUnread() throws {
        var parser = HTTP1Parser(kind: .response, maxHeadBytes: 1024)
        var buffer = ByteBuffer(string: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nHELLO")
        #expect(try parser.next(from: &buffer).map(Self.step)
            == .response(status: 101, version: "HTTP/1.1", fields: ["Upgrade: websocket", "Connection: Upgrade"]))
        #expect(!parser.isUpgraded)
        #expect(try parser.next(from: &buffer).map(Self.step) == .end(trailers: nil))
        #expect(parser.isUpgraded)
        #expect(try parser.next(from: &buffer).map(Self.step) == nil)
        #expect(try parser.next(from: &buffer).map(Self.step) == nil)
        #expect(String(buffer: buffer) == "HELLO")
        #expect(!parser.isAtMessageStart)
        #expect(parser.inputClosed().map(Self.step) == nil)
    }

    /// Response refusals: a malformed status line, a bad Content-Length, an oversized head.
    @Test func invalidResponsesAreRefused() {
        let statusLine = Self.bad("invalid status line")
        for line in ["HTTP/1.1 20 OK", "HTTP/1.1 2x0 OK", "HTTP/1.1 200OK", "HTTP/1.1  200 OK", "HTTP/1.1 099 Low", "ICY 200 OK"] {
            #expect(Self.refusal("\(line)\r\nContent-Length: 0\r\n\r\n", kind: .response) == statusLine, "\(line)")
        }
        #expect(Self.refusal("HTTP/2.0 200 OK\r\n\r\n", kind: .response) == statusLine)
        #expect(Self.refusal("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", kind: .response)
            == Self.bad("invalid Content-Length"))
        #expect(Self.refusal("HTTP/1.1 200 OK\r\nContent-Length: n\r\n\r\n", kind: .response) == Self.bad("invalid Content-Length"))
        #expect(Self.refusal("HTTP/1.1 200 OK\r\nX-Big: " + String(repeating: "v", count: 2000) + "\r\n\r\n", kind: .response)
            == Self.bad("response head too large"))
        #expect(Self.refusal("HTTP/1.1 200 OK\r\nX-Big: " + String(repeating: "v", count: 10_000), kind: .response)
            == Self.bad("response head too large"))
        #expect(Self.refusal("HTTP/1.1 200 OK\r\nBad Field: 1\r\n\r\n", kind: .response) == Self.bad("invalid header field"))
    }

    /// The eight-bytes-at-a-time lowering used to classify field names agrees with lowering
    /// each byte, for every byte value at every position of the word.
    @Test func wordLoweringAgreesWithByteLowering() {
        var filler = SystemRandomNumberGenerator()
        for byte in 0...255 {
            for position in 0..<8 {
                var bytes = (0..<8).map { _ in UInt8.random(in: 0...255, using: &filler) }
                bytes[position] = UInt8(byte)
                let word = bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
                let lowered = withUnsafeBytes(of: word.asciiLowercased) { Array($0) }
                #expect(lowered == bytes.map(\.asciiLowercased), "byte \(byte) at \(position)")
            }
        }
    }

    /// Case-insensitive comparison with literals of every length class (under, at and over a word).
    @Test func caseInsensitiveLiteralComparison() {
        func eq(_ text: String, _ literal: StaticString) -> Bool {
            Array(text.utf8).withUnsafeBytes { $0.equalsIgnoringCase(literal) }
        }
        #expect(eq("TE", "te") && eq("Content-Length", "content-length") && eq("X-FORWARDED-FOR", "x-forwarded-for"))
        #expect(eq("Proxy-Authorization", "proxy-authorization") && eq("", ""))
        #expect(!eq("Content-Lengti", "content-length") && !eq("Dontent-Length", "content-length"))
        #expect(!eq("Content-Length ", "content-length") && !eq("x", "te"))
        // Only letters fold: '-' is not a case of '\r', '[' not of '{'.
        #expect(!eq("content\rlength", "content-length") && !eq("keep{alive", "keep[alive"))
    }

    /// Field names: every name the proxy acts on is recognised in any case, a name one byte
    /// off is not, and a byte outside `tchar` anywhere in a name of any length refuses it.
    @Test func fieldNamesAreCheckedAndClassified() {
        func classify(_ name: String) -> HeaderRewrite.Kind? {
            Array(name.utf8).withUnsafeBytes { FieldName.classify($0) }
        }
        let known: [(String, HeaderRewrite.Kind)] = [
            ("te", .hopByHop), ("host", .host), ("expect", .expect), ("trailer", .hopByHop), ("upgrade", .upgrade),
            ("connection", .connection), ("keep-alive", .hopByHop), ("grpc-status", .grpcStatus),
            ("content-length", .contentLength), ("x-forwarded-for", .forwardedFor), ("proxy-connection", .hopByHop),
            ("x-forwarded-host", .forwardedHost), ("transfer-encoding", .transferEncoding),
            ("x-forwarded-proto", .forwardedProto), ("proxy-authenticate", .hopByHop), ("proxy-authorization", .hopByHop),
        ]
        for (name, kind) in known {
            #expect(classify(name) == kind, "\(name)")
            #expect(classify(name.uppercased()) == kind, "\(name)")
            let mixed = String(name.enumerated().map { $0.offset % 2 == 0 ? Character($0.element.uppercased()) : $0.element })
            #expect(classify(mixed) == kind, "\(mixed)")
            // One byte off, at every position: another (valid) name.
            for position in 0..<name.utf8.count {
                var bytes = Array(name.utf8)
                bytes[position] = bytes[position] == UInt8(ascii: "q") ? UInt8(ascii: "z") : UInt8(ascii: "q")
                #expect(classify(String(decoding: bytes, as: UTF8.self)) == .other, "\(name) at \(position)")
            }
            #expect(classify(name + "s") == .other && classify(String(name.dropLast())) == .other)
        }
        #expect(classify("User-Agent") == .other && classify("X_Custom.Name~1") == .other)
        #expect(classify("!#$%&'*+-.^_`|~09azAZ") == .other)
        #expect(classify("") == nil)
        // Every byte that is not a token character, at every position of a 21-byte name (three
        // words: the fast path, the fall-back, and the tail).
        let tchars = Set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)
        for byte in UInt8.min...UInt8.max where !tchars.contains(byte) {
            for position in 0..<21 {
                var bytes = Array("x-forwarded-for-extra".utf8)
                bytes[position] = byte
                #expect(bytes.withUnsafeBytes { FieldName.classify($0) } == nil, "byte \(byte) at \(position)")
            }
        }
    }

    /// The known names' word constants are the words of their names.
    @Test func knownFieldNameWordsMatchTheirNames() {
        typealias K = FieldName.Known
        typealias W = FieldName.Words
        #expect(K.te == W("te") && K.host == W("host") && K.expect == W("expect") && K.trailer == W("trailer"))
        #expect(K.upgrade == W("upgrade") && K.connection == W("connection") && K.keepAlive == W("keep-alive"))
        #expect(K.grpcStatus == W("grpc-status") && K.contentLength == W("content-length"))
        #expect(K.forwardedFor == W("x-forwarded-for") && K.proxyConnection == W("proxy-connection"))
        #expect(K.forwardedHost == W("x-forwarded-host") && K.transferEncoding == W("transfer-encoding"))
        #expect(K.forwardedProto == W("x-forwarded-proto") && K.proxyAuthenticate == W("proxy-authenticate"))
        #expect(K.proxyAuthorization == W("proxy-authorization"))
    }
}
