import NIOCore
import NIOHTTP1

/// A backend's response head: the status line's parts, and the field section kept as the bytes
/// it arrived in with an index of its fields.
///
/// Why not `HTTPResponseHead`: on the HTTP/1.1 → HTTP/1.1 path a response's fields are only
/// looked at (framing, keep-alive, hop-by-hop) and copied on. Making a `String` of every name
/// and value, an array of them, then iterating and copying them again cost ~8k instructions
/// per request; here the parser records offsets, `HeaderRewrite.forwardResponse` reads the few
/// fields it needs, and `HTTP1Writer` copies the kept lines with `memcpy`. `HTTPHeaders` are
/// built only when something needs them (an HTTP/2 client, tests).
struct ResponseHead {
    var version: HTTPVersion
    var status: HTTPResponseStatus
    var fields: FieldBlock

    init(version: HTTPVersion, status: HTTPResponseStatus, fields: FieldBlock) {
        self.version = version
        self.status = status
        self.fields = fields
    }

    /// From NIO's head (an HTTP/2 backend's response, through NIO's part codec).
    init(_ head: HTTPResponseHead) {
        self.init(version: head.version, status: head.status, fields: FieldBlock(head.headers))
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
        var buffer = ByteBuffer()
        var fields: [Field] = []
        fields.reserveCapacity(headers.count)
        for (name, value) in headers {
            let nameStart = buffer.writerIndex
            let nameCount = buffer.writeString(name)
            buffer.writeStaticString(": ")
            let valueStart = buffer.writerIndex
            let valueCount = buffer.writeString(value)
            buffer.writeStaticString("\r\n")
            fields.append(Field(nameStart: Int32(nameStart), nameCount: Int32(nameCount),
                                valueStart: Int32(valueStart), valueCount: Int32(valueCount),
                                kind: HeaderRewrite.kind(of: name)))
        }
        self.init(bytes: buffer, fields: fields)
    }

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
