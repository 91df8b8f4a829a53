import NIOCore
import NIOHTTP1

/// A backend's response head: the status line's parts, and the field section kept as the bytes
/// it arrived in with an index of its fields.
///
/// Why not `HTTPResponseHead`: on the HTTP/1.1 → HTTP/1.1 path a response's fields are only
/// looked at (framing, keep-alive, hop-by-hop) and copied on. Making a `String` of every name
/// and value, an array of them, then iterating and copying them again cost ~4.4k instructions
/// per request; here the parser records offsets, `HeaderRewrite.forwardResponse` reads the few
/// fields it needs, and `HTTP1Writer` copies the kept lines with `memcpy`. `HTTPHeaders` are
/// built only when something needs them (an HTTP/2 client, tests).
///
/// A class, like `RequestHead`: the parser hands it over, the exchange reads it, the writer
/// copies its lines. As a struct of five references it was copied (and its optional destroyed)
/// through generic value witnesses at each of those steps.
final class ResponseHead {
    let version: HTTPVersion
    let status: HTTPResponseStatus
    let fields: FieldBlock

    init(version: HTTPVersion, status: HTTPResponseStatus, fields: FieldBlock) {
        self.version = version
        self.status = status
        self.fields = fields
    }

    /// From NIO's head (an HTTP/2 backend's response, through NIO's part codec).
    convenience init(_ head: HTTPResponseHead) {
        self.init(version: head.version, status: head.status, fields: FieldBlock(head.headers))
    }
}

/// A client's request head: method, target and version as values (routing needs them), the
/// field section as bytes with an index, like `ResponseHead`: the HTTP/1.1 → HTTP/1.1 path copies
/// the kept field lines on without making a `String` of each; values are read as strings only
/// where something needs them (Host, cookies and rule headers for routing, x-forwarded-for).
final class RequestHead {
    let method: HTTPMethod
    let uri: String
    let version: HTTPVersion
    let fields: FieldBlock
    /// Where `uri` is in `fields.bytes` (the request line is part of the parsed head): the
    /// writer copies it from there. Nil when `uri` is not the bytes as received (absolute-form
    /// cut to origin-form, a head from HTTP/2).
    let target: Range<Int>?

    init(method: HTTPMethod, uri: String, version: HTTPVersion, fields: FieldBlock, target: Range<Int>? = nil) {
        self.method = method
        self.uri = uri
        self.version = version
        self.fields = fields
        self.target = target
    }

    /// From NIO's head (an HTTP/2 stream, through NIO's part codec).
    convenience init(_ head: HTTPRequestHead) {
        self.init(method: head.method, uri: head.uri, version: head.version, fields: FieldBlock(head.headers))
    }

    /// `fields.firstValue(of:_:)`, asked of the head: inside the head's own method its `let`
    /// block is read in place, where `head.fields.firstValue` at the call site copied the
    /// block out (a retain and release of its buffer and of its index per lookup).
    func firstFieldValue<T>(of lowercasedName: String, _ body: (UnsafeBufferPointer<UInt8>) -> T?) -> T? {
        fields.firstValue(of: lowercasedName, body)
    }

    /// `body` with the field block read in place, for the same reason as `firstFieldValue`.
    func withFieldBlock<R>(_ body: (FieldBlock) -> R) -> R {
        body(fields)
    }
}

/// The request head as it goes to a backend, made by the header pass
/// (`HeaderRewrite.forwardRequest`): the client's kept field lines (`keeps`) followed by the
/// proxy's own fields (`forEachProxyField`, then `extra`), and what the pass learned on the way.
/// Always HTTP/1.1 on the wire. A class: it is kept by the exchange (a retry sends it again) and
/// handed to the codec, and as a struct of this size every hand-over was a copy with a retain
/// per reference inside. (The pass's findings were an object of their own, one allocation more
/// per request.)
final class UpstreamRequest {
    /// The client's head (method, origin-form target, the fields `keeps`).
    let head: RequestHead
    /// Fields the exchange adds after the proxy's own (a WebSocket handshake's upgrade fields).
    var extra: [(String, String)] = []

    // What the header pass learned.

    /// A framing or Host problem: the status and message of the 400 to answer with.
    var problem: (HTTPResponseStatus, String)?
    var expectsContinue = false
    var chunked = false
    var contentLength: String?
    /// The first `Host` field (its value is read as a string only when something asks:
    /// routing on hosts, an HTTP/2 backend, a mirror).
    var hostField: FieldBlock.Field?
    /// The host of an absolute-form request target: it replaces the client's Host fields.
    var authority: String?
    /// The client wants the connection kept open (RFC 9112 §9.3).
    var keepAlive = true
    /// The `Upgrade` value, when `Connection` lists `upgrade` (the field is not forwarded
    /// unless the exchange decides to take part in the upgrade).
    var upgrade: String?
    /// The `Connection` tokens: fields it lists are hop-by-hop too.
    var connection = HeaderRewrite.ConnectionTokens()
    /// Where the first `Content-Length` field starts: several agreeing ones become one.
    var firstLength: Int32 = -1
    /// The request target named the host (absolute-form): the client's Host fields are
    /// replaced by it.
    var replacesHost: Bool { authority != nil }
    /// The client's own `X-Forwarded-For` values (joined), which the proxy's value extends.
    var priorForwardedFor: String?
    /// Who sent the request and how (`x-forwarded-for`, `x-forwarded-proto`).
    var clientAddress = ""
    var scheme = ""

    init(head: RequestHead) {
        self.head = head
    }

    var method: HTTPMethod { head.method }
    var uri: String { head.uri }
    var fields: FieldBlock { head.fields }
    /// The host the request names (`host(in:)`).
    var host: String? { host(in: head.fields) }

    /// The fields that go upstream, in order, as strings: the client's kept ones, the proxy's,
    /// then `extra` (an HTTP/2 backend's header block, shadow copies; `HTTP1Writer` writes the
    /// same lines from the bytes).
    var fieldList: [(String, String)] {
        var list: [(String, String)] = fields.withBytes { bytes in
            fields.fields.filter { keeps($0, in: bytes) }
        }.map { (fields.name($0), fields.value($0)) }
        forEachProxyField(host: host, http1: true) { list.append(($0, $1)) }
        list.append(contentsOf: extra)
        return list
    }

    /// As NIO's head: for shadow copies.
    var httpHead: HTTPRequestHead {
        HTTPRequestHead(version: .http1_1, method: method, uri: uri, headers: HTTPHeaders(fieldList))
    }
}

/// A field section as bytes plus an index: field `i` is `name(i): value(i)`.
struct FieldBlock {
    struct Field {
        let nameStart: Int32
        let nameCount: Int32
        let valueStart: Int32
        let valueCount: Int32
        /// What the name means to the proxy, classified once by the parser.
        let kind: HeaderRewrite.Kind
    }

    /// The bytes the offsets point into (from its reader index).
    let bytes: ByteBuffer
    let fields: [Field]

    init(bytes: ByteBuffer, fields: [Field]) {
        self.bytes = bytes
        self.fields = fields
    }

    /// Serialises `headers` as field lines (for heads that did not come from the parser).
    init(_ headers: HTTPHeaders) {
        var builder = Builder(fields: headers.count, bytes: 64 * headers.count)
        for (name, value) in headers { builder.append(name: name, value: value) }
        self = builder.block
    }

    /// Writes fields one by one as `name: value\r\n` lines and indexes them (heads that come
    /// from NIO's types or from HTTP/2 header blocks rather than from the parser).
    struct Builder {
        private var bytes = ByteBuffer()
        private var fields: [Field] = []

        /// Room for `fields` fields and `bytes` bytes of lines (a guess is fine; a right one
        /// saves the buffer growing by doubling).
        init(fields count: Int, bytes byteCount: Int) {
            fields.reserveCapacity(count)
            bytes = ByteBufferAllocator().buffer(capacity: byteCount)
        }

        mutating func append(name: String, value: String) {
            let nameStart = bytes.writerIndex
            let nameCount = bytes.writeString(name)
            bytes.writeStaticString(": ")
            let valueStart = bytes.writerIndex
            let valueCount = bytes.writeString(value)
            bytes.writeStaticString("\r\n")
            fields.append(Field(nameStart: Int32(nameStart), nameCount: Int32(nameCount),
                                valueStart: Int32(valueStart), valueCount: Int32(valueCount),
                                kind: HeaderRewrite.kind(of: name)))
        }

        var block: FieldBlock { FieldBlock(bytes: bytes, fields: fields) }
    }

    /// At least the bytes of every field written as `name: value\r\n`: a line as received has
    /// its name, value, a colon and an LF at least, so two bytes more per field.
    var lineBound: Int { bytes.readableBytes + 2 * fields.count }

    /// Runs `body` with the block's bytes; a field's bytes are at its offsets.
    func withBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        bytes.withUnsafeReadableBytes(body)
    }

    func name(_ field: Field) -> String {
        bytes.getString(at: bytes.readerIndex + Int(field.nameStart), length: Int(field.nameCount))!
    }

    func value(_ field: Field) -> String {
        bytes.getString(at: bytes.readerIndex + Int(field.valueStart), length: Int(field.valueCount))!
    }

    /// Every field, as NIO's `HTTPHeaders`.
    var headers: HTTPHeaders {
        HTTPHeaders(fields.map { (name($0), value($0)) })
    }

    /// `body` applied to the bytes of each field called `lowercasedName` (ASCII
    /// case-insensitive), in order, until it returns something (`RequestFacts.firstHeaderValue`).
    func firstValue<T>(of lowercasedName: String, _ body: (UnsafeBufferPointer<UInt8>) -> T?) -> T? {
        let length = Int32(truncatingIfNeeded: lowercasedName.utf8.count)
        return withBytes { bytes in
            // Lengths first: most fields are ruled out without comparing a byte.
            for field in fields where field.nameCount == length
                && bytes.name(field).equalsIgnoringCase(lowercased: lowercasedName) {
                if let result = body(bytes.value(field).assumingMemoryBound(to: UInt8.self)) { return result }
            }
            return nil
        }
    }
}

extension UnsafeRawBufferPointer {
    /// The name bytes of `field` in a block's bytes.
    func name(_ field: FieldBlock.Field) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: self[Int(field.nameStart)..<Int(field.nameStart + field.nameCount)])
    }

    /// The value bytes of `field` in a block's bytes.
    func value(_ field: FieldBlock.Field) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: self[Int(field.valueStart)..<Int(field.valueStart + field.valueCount)])
    }
}

extension HTTPMethod {
    /// By pattern, not `==`: NIO's `HTTPMethod` equality compares `rawValue` strings, built
    /// by a switch on each side (two per comparison, several comparisons per request).
    var isHEAD: Bool { if case .HEAD = self { true } else { false } }
    var isGET: Bool { if case .GET = self { true } else { false } }
    /// RFC 9110 §9.2.2: sending such a request again has the effect of sending it once.
    var isIdempotent: Bool {
        switch self {
        case .GET, .HEAD, .OPTIONS, .TRACE, .PUT, .DELETE: true
        default: false
        }
    }
}
