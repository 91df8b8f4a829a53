import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2

/// An HTTP/2 stream's frames as the exchange's request parts, and its response parts as frames;
/// and the same towards an HTTP/2 backend (`StreamUpstreamHandler`, the MARK below).
///
/// `DownstreamHandler`, one per stream (`HTTP2ClientConnection`), converts as it reads and
/// writes. NIO's `HTTP2FramePayloadToHTTP1ServerCodec` did this as a handler of its own in every
/// stream's pipeline: a handler context made per stream, each part wrapped and unwrapped once
/// more, every request's fields made into `HTTPHeaders` and then into the exchange's
/// `FieldBlock`, and every response's fields made `String`s, put in `HTTPHeaders` and lower-cased
/// into new strings (~20k of the ~168k instructions of a proxied HTTP/2 request). Here a
/// request's block becomes a `FieldBlock` at once and a response's kept field lines become an
/// HPACK block straight from the backend's bytes.
///
/// The frames are the ones NIO's codec makes, but for two differences marked below (a request
/// without `:authority`, END_STREAM on a response's last frame):
/// - a request head is `:method` and `:path` as method and target; `:authority` stands for
///   `Host` when the block has none (a block with neither is accepted, RFC 9113 §8.3.1; NIO's
///   codec refused any without `:authority`); a method that may carry a body and declares no
///   `content-length` gets `content-length: 0` when the HEADERS frame ends the stream and
///   `transfer-encoding: chunked` otherwise, so the HTTP/1.1 request upstream is framed;
///   pseudo-header values with control characters, spaces or DEL are refused (they would end
///   up in an HTTP/1.1 request line);
/// - a HEADERS frame after the head carries trailers; DATA frames are body parts, and
///   END_STREAM the end (an empty final DATA frame is just the end);
/// - a response head is `:status` and the fields in order, names lower-cased, without the
///   fields HTTP/2 forbids (RFC 9113 §8.2.2); its end is a HEADERS frame of trailers, or
///   END_STREAM on its last frame (`HeldFrame`: NIO's codec sent an empty
///   DATA frame after the body instead).
///
/// The blocks a peer sends are checked here (RFC 9113 §8.2, §8.3; `ReceivedFields`): NIOHTTP2's
/// own header-block validation is off on every HTTP/2 connection (`SluiceServer.configureHTTP2`,
/// `UpstreamPool.parent`). It checked both directions, every name and value as a `Substring` one
/// generic byte at a time (~20k of the ~132k instructions of a request from an h2c client), and
/// the blocks the proxy sends need none of it: they are made here from fields already checked
/// (by the HTTP/1.1 parser, here, or by the proxy itself). The rules are NIOHTTP2's
/// (`HPACKHeaders+Validation.swift`); tests give both the same blocks.
enum HTTP2StreamParts {
    /// A client's malformed header block, `field` the first field at fault; the stream is reset
    /// (RFC 9113 §8.1.1: a malformed request is a stream error).
    struct MalformedRequest: Error, Equatable {
        let field: String
    }

    /// Whether `name` (lower case) is one of the fields RFC 9113 §8.2.2 forbids in HTTP/2
    /// (connection-specific); the proxy's own `connection: close` is among them.
    static func isConnectionSpecific(_ name: String) -> Bool {
        switch name.utf8.count {
        case 7: name == "upgrade"
        case 10: name == "connection" || name == "keep-alive"
        case 16: name == "proxy-connection"
        case 17: name == "transfer-encoding"
        default: false
        }
    }

    /// The request head of a stream's first HEADERS frame; a malformed block (RFC 9113 §8.1.1)
    /// throws, naming the first field at fault.
    ///
    /// The pseudo-header fields come first, each once: `:method`, `:scheme` and `:path` always,
    /// `:authority` optionally; no other (`:protocol` needs extended CONNECT, which the proxy
    /// does not offer; CONNECT itself is not proxied over HTTP/2, as NIOHTTP2 refused a CONNECT
    /// with `:scheme` and `:path` and the proxy one without). Their values have no control
    /// character, space or DEL: they end up in an HTTP/1.1 request line. `:path` is an absolute
    /// path with an optional query, or `*` for OPTIONS (RFC 9113 §8.3.1); NIOHTTP2 only refused
    /// an empty one, and an absolute URI there was taken for HTTP/1.1's absolute-form, its
    /// authority standing in for `:authority`.
    ///
    /// With the head, the body length its `content-length` declares (nil: none). A value
    /// other than digits, fields that disagree, or a stream that ends here with a length above 0
    /// make the block malformed (RFC 9113 §8.1.1). The exchange holds the body's DATA to that
    /// length (`DownstreamHandler.receiveFrame`): NIOHTTP2's own check, which looked the field
    /// up again in every block sent and received (~1.3k instructions a block), is off on
    /// client connections (`SluiceServer.configureHTTP2`).
    static func request(_ block: HPACKHeaders, endStream: Bool) throws(MalformedRequest) -> (head: RequestHead, declaredLength: Int?) {
        var method: String?
        var path: String?
        var authority: String?
        var hasScheme = false
        var pastPseudoFields = false
        let regular = try RegularFields(of: block, pseudo: { (name, value) throws(MalformedRequest) in
            guard !pastPseudoFields, isPseudoHeaderValue(value) else { throw MalformedRequest(field: name) }
            switch name {
            case ":method" where method == nil: method = value
            case ":path" where path == nil: path = value
            case ":authority" where authority == nil: authority = value
            case ":scheme" where !hasScheme: hasScheme = true
            default: throw MalformedRequest(field: name) // repeated, unknown, :status, :protocol
            }
        }, regular: { (name, value) throws(MalformedRequest) in
            pastPseudoFields = true
            guard ReceivedFields.allowed(name: name, value: value, teOnlyAsTrailers: true) else {
                throw MalformedRequest(field: name)
            }
        })
        guard let method, method != "CONNECT" else { throw MalformedRequest(field: ":method") }
        guard let path, path.utf8.first == UInt8(ascii: "/") || (path == "*" && method == "OPTIONS") else {
            throw MalformedRequest(field: ":path")
        }
        guard hasScheme else { throw MalformedRequest(field: ":scheme") }
        var declaredLength: Int?
        if let length = regular.length {
            guard !regular.lengthsDiffer, let parsed = decimal(length), !endStream || parsed == 0 else {
                throw MalformedRequest(field: "content-length")
            }
            declaredLength = parsed
        }
        let httpMethod = HTTPMethod(rawValue: method)
        // Room for the lines and for a Host and a framing field added here.
        var fields = FieldBlock.Builder(fields: regular.count + 2, bytes: regular.lineBytes + (authority?.utf8.count ?? 0) + 64)
        if !regular.hasHost, let authority { fields.append(name: "host", value: authority) }
        if regular.length == nil && mayCarryBody(httpMethod) {
            if endStream {
                fields.append(name: "content-length", value: "0")
            } else {
                fields.append(name: "transfer-encoding", value: "chunked")
            }
        }
        regular.append(from: block, to: &fields)
        return (RequestHead(method: httpMethod, uri: path, version: HTTPVersion(major: 2, minor: 0), fields: fields.block),
                declaredLength)
    }

    /// A `content-length` value: 1 to 18 digits (more would overflow; no sign, no list).
    private static func decimal(_ value: String) -> Int? {
        let digits = value.utf8
        guard !digits.isEmpty, digits.count <= 18 else { return nil }
        var result = 0
        for byte in digits {
            guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { return nil }
            result = result * 10 + Int(byte - UInt8(ascii: "0"))
        }
        return result
    }

    /// A response head forwarded from a backend: the kept field lines (`forwarded.keeps`) and
    /// then the proxy's own, as an HPACK block.
    static func responseHeaders(_ head: ResponseHead, forwarded: HeaderRewrite.ForwardedResponse,
                                extra: [(String, String)]) -> HPACKHeaders {
        let block = head.fields
        var headers = HPACKHeaders()
        headers.reserveCapacity(block.fields.count + extra.count + 1)
        headers.add(name: ":status", value: statusValue(head.status.code))
        block.withBytes { bytes in
            for field in block.fields where forwarded.keeps(field, in: bytes) {
                headers.add(name: lowercasedString(bytes.name(field)),
                            value: String(decoding: bytes.value(field), as: UTF8.self))
            }
        }
        for (name, value) in extra {
            let name = name.lowercased()
            if !isConnectionSpecific(name) { headers.add(name: name, value: value) }
        }
        return headers
    }

    /// Any other response part (a head the proxy made, a body part, the end), as the frame
    /// payload NIO's part codec would have written.
    static func payload(_ part: HTTPServerResponsePart, allocator: ByteBufferAllocator) -> HTTP2Frame.FramePayload {
        switch part {
        case .head(let head):
            var headers = HPACKHeaders()
            headers.add(name: ":status", value: statusValue(head.status.code))
            headers.add(contentsOf: HPACKHeaders(httpHeaders: head.headers, normalizeHTTPHeaders: true))
            return .headers(.init(headers: headers))
        case .body(let body):
            return .data(.init(data: body))
        case .end(let trailers?):
            return .headers(.init(headers: HPACKHeaders(httpHeaders: trailers, normalizeHTTPHeaders: true), endStream: true))
        case .end(nil):
            return .data(.init(data: .byteBuffer(allocator.buffer(capacity: 0)), endStream: true))
        }
    }

    /// The body bytes a received message's `content-length` still allows on its stream: DATA
    /// beyond them, or the stream's end before them, make the message malformed (RFC 9113
    /// §8.1.1). Kept by both ends of the proxy's HTTP/2 streams, for requests from clients
    /// (`DownstreamHandler.receiveFrame`) and responses from backends
    /// (`StreamUpstreamHandler.receiveFrame`), where NIOHTTP2's own check is off.
    struct BodyLength {
        private var left: Int?

        /// `declared`: the length a head's `content-length` (or its status, or the request's
        /// method) allows; nil when nothing bounds the body.
        init(_ declared: Int? = nil) {
            left = declared
        }

        /// Counts a DATA frame's `count` bytes; false when they go past the declared length, or
        /// end the stream (`endsStream`) before it.
        mutating func take(_ count: Int, endsStream: Bool) -> Bool {
            guard let left else { return true }
            guard count <= left, !endsStream || count == left else { return false }
            self.left = left - count
            return true
        }

        /// Nothing declared is still missing: trailers may end the message.
        var isComplete: Bool { (left ?? 0) == 0 }
    }

    /// The last frame of a message being written, held until the next part shows whether it
    /// ends the stream: a message's last DATA frame, or a head with no body, then carries
    /// END_STREAM itself instead of being followed by an empty DATA frame (one frame less per
    /// message). Nothing is held past a flush (`take`), so a streamed body is not delayed. Used
    /// for responses to clients (`DownstreamHandler`) and requests to backends
    /// (`StreamUpstreamHandler`).
    struct HeldFrame {
        private var frame: HTTP2Frame.FramePayload?

        /// Holds `next`; returns the frame held until now, to be written first.
        mutating func hold(_ next: HTTP2Frame.FramePayload) -> HTTP2Frame.FramePayload? {
            defer { frame = next }
            return frame
        }

        /// The held frame, to be written (before a flush).
        mutating func take() -> HTTP2Frame.FramePayload? {
            defer { frame = nil }
            return frame
        }

        /// The frames that end the message: without trailers, the held frame with END_STREAM
        /// set (an interim 1xx head never ends a stream); otherwise the held frame, if any, and
        /// then the trailers, or an empty DATA frame.
        mutating func end(_ trailers: HTTPHeaders?, allocator: ByteBufferAllocator)
            -> (first: HTTP2Frame.FramePayload?, last: HTTP2Frame.FramePayload) {
            let held = take()
            if trailers == nil {
                switch held {
                case .headers(var headers)? where !isInterim(headers.headers):
                    headers.endStream = true
                    return (nil, .headers(headers))
                case .data(var data)?:
                    data.endStream = true
                    return (nil, .data(data))
                default:
                    break
                }
            }
            return (held, payload(.end(trailers), allocator: allocator))
        }
    }

    /// A 1xx head (`:status` first, as every head here is written): it never ends a stream.
    static func isInterim(_ block: HPACKHeaders) -> Bool {
        guard let status = block.first, status.name == ":status" else { return false }
        return status.value.utf8.first == UInt8(ascii: "1")
    }

    // MARK: Towards an HTTP/2 backend (`StreamUpstreamHandler`)

    /// A request head as an HPACK block, as NIO's `HTTP2FramePayloadToHTTP1ClientCodec` made it
    /// (`:path`, `:method`, `:scheme`, `:authority` from the Host field, then the other fields
    /// with lower-cased names, without the connection-specific ones). Without a Host field the
    /// block has no `:authority` (RFC 9113 §8.3.1: "unless there is no authority information to
    /// convey"); NIO's codec failed the request.
    static func requestHeaders(method: HTTPMethod, uri: String, fields: [(String, String)]) -> HPACKHeaders {
        var headers = pseudoFields(method: method, uri: uri, authority: fields.first(where: { $0.0.lowercased() == "host" })?.1,
                                   count: fields.count)
        appendRegular(fields, to: &headers)
        return headers
    }

    /// `fields` with lower-cased names, but for Host (`:authority` stands for it) and the
    /// connection-specific ones.
    private static func appendRegular(_ fields: [(String, String)], to headers: inout HPACKHeaders) {
        for (name, value) in fields {
            let name = name.lowercased()
            if name != "host" && !isConnectionSpecific(name) { headers.add(name: name, value: value) }
        }
    }

    /// The same block for a request the header pass made (`UpstreamRequest.fieldList` as the
    /// fields), its names lower-cased straight from the client's bytes: a string pair per field
    /// and every name lower-cased twice on the way cost ~1.5k instructions a request.
    static func requestHeaders(_ request: UpstreamRequest) -> HPACKHeaders {
        let block = request.fields
        let host = request.host
        var headers = pseudoFields(method: request.method, uri: request.uri, authority: host, count: block.fields.count + 4)
        block.withBytes { bytes in
            for field in block.fields where field.kind != .host && request.keeps(field, in: bytes) {
                headers.add(name: lowercasedString(bytes.name(field)), value: String(decoding: bytes.value(field), as: UTF8.self))
            }
        }
        // The proxy's own fields are lower case.
        request.forEachProxyField(host: host, http1: false) { headers.add(name: $0, value: $1) }
        appendRegular(request.extra, to: &headers)
        return headers
    }

    /// A request block's pseudo-header fields, with room for `count` fields after them.
    private static func pseudoFields(method: HTTPMethod, uri: String, authority: String?, count: Int) -> HPACKHeaders {
        var headers = HPACKHeaders()
        headers.reserveCapacity(count + 4)
        headers.add(name: ":path", value: uri)
        headers.add(name: ":method", value: method.rawValue)
        headers.add(name: ":scheme", value: "http")
        if let authority { headers.add(name: ":authority", value: authority) }
        return headers
    }

    /// A backend's response head from its HEADERS frame, as NIO's client codec made it: the
    /// status, the regular fields, and for a final response that may have a body and declares
    /// no `content-length` the framing an HTTP/1.1 client needs (`content-length: 0` when the
    /// frame ends the stream, `transfer-encoding: chunked` otherwise); and the body length the
    /// response allows (nil: any; always nil for a 1xx head). A `content-length` value other
    /// than digits, or fields that disagree, make the block malformed (RFC 9113 §8.1.1), as
    /// does a head that ends the stream while declaring a body. A response to HEAD and a 204 or 304 may declare a length but carry no content (RFC
    /// 9110 §6.4.1): 0 for them. The backend stream holds the DATA to that length
    /// (`StreamUpstreamHandler.receiveFrame`): NIOHTTP2's own check, which looked the field up
    /// again in every block sent and received, is off on backend connections
    /// (`UpstreamPool.http2Connect`), as on client connections.
    static func response(_ block: HPACKHeaders, endStream: Bool, requestMethod: HTTPMethod) throws(MalformedResponse)
        -> (head: ResponseHead, declaredLength: Int?) {
        var status: HTTPResponseStatus?
        var pastPseudoFields = false
        let regular = try RegularFields(of: block, pseudo: { (name, value) throws(MalformedResponse) in
            guard !pastPseudoFields, name == ":status", status == nil, isPseudoHeaderValue(value),
                  let code = Int(value), (100...999).contains(code) else {
                throw MalformedResponse()
            }
            status = HTTPResponseStatus(statusCode: code)
        }, regular: { (name, value) throws(MalformedResponse) in
            pastPseudoFields = true
            guard ReceivedFields.allowed(name: name, value: value, teOnlyAsTrailers: false) else { throw MalformedResponse() }
        })
        guard let status else { throw MalformedResponse() }
        let code = status.code
        let informational = (100..<200).contains(code)
        let noContent = code == 204 || code == 304 || requestMethod.isHEAD
        var declaredLength: Int?
        if !informational, let length = regular.length {
            guard !regular.lengthsDiffer, let parsed = decimal(length) else { throw MalformedResponse() }
            declaredLength = noContent ? 0 : parsed
            guard !endStream || declaredLength == 0 else { throw MalformedResponse() }
        } else if !informational && noContent {
            declaredLength = 0
        }
        var fields = FieldBlock.Builder(fields: regular.count + 1, bytes: regular.lineBytes + 32)
        regular.append(from: block, to: &fields)
        if !informational && !noContent && regular.length == nil && requestMethod != .CONNECT {
            if endStream {
                fields.append(name: "content-length", value: "0")
            } else {
                fields.append(name: "transfer-encoding", value: "chunked")
            }
        }
        return (ResponseHead(version: HTTPVersion(major: 2, minor: 0), status: status, fields: fields.block),
                declaredLength)
    }

    /// A backend's malformed HEADERS frame (RFC 9113 §8.1.1): no valid `:status`, or a field
    /// `ReceivedFields` refuses.
    struct MalformedResponse: Error, Equatable {}

    /// A 1xx `:status` (an informational head: more heads follow).
    static func isInformational(_ head: ResponseHead) -> Bool { head.status.code / 100 == 1 }

    /// A backend's HEADERS frame of trailers: regular fields only (`ReceivedFields`).
    static func trailers(_ block: HPACKHeaders) throws(MalformedResponse) -> HTTPHeaders {
        guard case .success(let headers) = checkedTrailers(block) else { throw MalformedResponse() }
        return headers
    }

    /// A client's HEADERS frame of trailers: regular fields only (`ReceivedFields`).
    static func clientTrailers(_ block: HPACKHeaders) throws(MalformedRequest) -> HTTPHeaders {
        try checkedTrailers(block).get()
    }

    /// A trailers block's fields, or the first one a peer may not send.
    private static func checkedTrailers(_ block: HPACKHeaders) -> Result<HTTPHeaders, MalformedRequest> {
        var headers = HTTPHeaders()
        for (name, value, _) in block {
            guard name.utf8.first != UInt8(ascii: ":"), ReceivedFields.allowed(name: name, value: value, teOnlyAsTrailers: false) else {
                return .failure(MalformedRequest(field: name))
            }
            headers.add(name: name, value: value)
        }
        return .success(headers)
    }

    /// The regular fields a peer may send (RFC 9113 §8.2): a lower-case token for a name
    /// (§8.2.1), none of the connection-specific fields (§8.2.2; in a request head, `te` only as
    /// `trailers`), and no NUL, CR or LF in a value (§8.2.1; a CR or LF would split the field
    /// line when it is passed on over HTTP/1.1). As NIOHTTP2 checked, a value may start or end
    /// with a space.
    enum ReceivedFields {
        /// A name is `tchar`s (RFC 9110 §5.6.2) without the upper-case letters.
        static func allowed(name: String, value: String, teOnlyAsTrailers: Bool) -> Bool {
            let bytes = name.utf8
            guard !bytes.isEmpty, allBytes(of: name, { $0.isTokenChar && $0 &- 0x41 > 25 }),
                  allBytes(of: value, { $0 != 0 && $0 != 0x0A && $0 != 0x0D }) else { return false }
            if bytes.count == 2 { return !teOnlyAsTrailers || name != "te" || value == "trailers" }
            return !isConnectionSpecific(name)
        }
    }

    /// What a header block's regular (not pseudo-header) fields hold, found in one pass that
    /// hands each field to a closure of its kind (to be checked).
    private struct RegularFields {
        var count = 0
        /// The bytes of their `name: value\r\n` lines.
        var lineBytes = 0
        var hasHost = false
        /// The first `content-length` value, and whether a later one differs from it.
        var length: String?
        var lengthsDiffer = false

        init<E: Error>(of block: HPACKHeaders, pseudo: (String, String) throws(E) -> Void,
                       regular: (String, String) throws(E) -> Void) throws(E) {
            for (name, value, _) in block {
                guard name.utf8.first != UInt8(ascii: ":") else {
                    try pseudo(name, value)
                    continue
                }
                try regular(name, value)
                count += 1
                lineBytes += name.utf8.count + value.utf8.count + 4
                if name == "host" {
                    hasHost = true
                } else if name == "content-length" {
                    if let length { lengthsDiffer = lengthsDiffer || length != value } else { length = value }
                }
            }
        }

        /// The regular fields of `block`, in order, into `fields`.
        func append(from block: HPACKHeaders, to fields: inout FieldBlock.Builder) {
            for (name, value, _) in block where name.utf8.first != UInt8(ascii: ":") {
                fields.append(name: name, value: value)
            }
        }
    }

    /// Methods whose requests may carry a body without saying so in advance (NIO's codec frames
    /// those; GET, HEAD, DELETE, CONNECT and TRACE requests without `content-length` get
    /// nothing added).
    private static func mayCarryBody(_ method: HTTPMethod) -> Bool {
        switch method {
        case .GET, .HEAD, .DELETE, .CONNECT, .TRACE: false
        default: true
        }
    }

    /// No control character, space or DEL (RFC 9113 §8.3: `:path` becomes the request target of
    /// an HTTP/1.1 request line, where any of them would change its meaning).
    private static func isPseudoHeaderValue(_ value: String) -> Bool {
        allBytes(of: value) { $0 > 0x20 && $0 != 0x7F }
    }

    /// A `:status` value: three digits written directly (`String(_:)` of an integer cost ~200
    /// instructions a response).
    static func statusValue(_ code: UInt) -> String {
        guard (100...999).contains(code) else { return String(code) }
        return String(unsafeUninitializedCapacity: 3) { out in
            out[0] = UInt8(ascii: "0") + UInt8(code / 100)
            out[1] = UInt8(ascii: "0") + UInt8(code / 10 % 10)
            out[2] = UInt8(ascii: "0") + UInt8(code % 10)
            return 3
        }
    }

    /// Whether every byte of `string` passes `test`, read in place: going through the `utf8`
    /// view byte by byte cost ~20 instructions a byte (a request's fields: ~2k).
    @inline(__always)
    private static func allBytes(of string: String, _ test: (UInt8) -> Bool) -> Bool {
        string.utf8.withContiguousStorageIfAvailable { $0.allSatisfy(test) } ?? string.utf8.allSatisfy(test)
    }

    private static func lowercasedString(_ bytes: UnsafeRawBufferPointer) -> String {
        String(unsafeUninitializedCapacity: bytes.count) { out in
            for i in 0..<bytes.count { out[i] = bytes[i].asciiLowercased }
            return bytes.count
        }
    }
}
