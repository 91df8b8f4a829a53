import NIOCore

/// Closes an HTTP/2 connection once a GOAWAY with an error code has gone out on it.
///
/// RFC 9113 §5.4.1: "After sending the GOAWAY frame for an error condition, the endpoint MUST
/// close the TCP connection." NIOHTTP2 answers a connection error (a frame on the wrong stream,
/// a bad HPACK block, a flood of resets) with GOAWAY and reports the error up the pipeline, but
/// leaves the connection open, and a stream's error is reported the same way, so the report
/// alone cannot tell the two apart. The frames written can: this handler sits between the
/// socket (or TLS) and `NIOHTTP2Handler`, follows the frame boundaries in the bytes NIOHTTP2
/// writes, and when a GOAWAY whose error code is not NO_ERROR has been written, closes the
/// channel (the close follows the write, so the GOAWAY reaches the peer first). A graceful
/// GOAWAY (NO_ERROR) leaves the connection to drain as before.
///
/// Cost: a few comparisons per write (NIOHTTP2 writes each frame's header and payload in one
/// buffer, or a DATA frame's header then its payload), nothing per byte.
final class HTTP2ConnectionErrorCloser: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    private var frames: HTTP2OutboundFrames

    /// `prefaceBytes`: bytes written before the first frame (a client's 24-byte connection
    /// preface; none for a server).
    init(prefaceBytes: Int = 0) {
        frames = HTTP2OutboundFrames(prefaceBytes: prefaceBytes)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        var errorGoAway = false
        switch unwrapOutboundIn(data) {
        case .byteBuffer(let buffer):
            errorGoAway = buffer.withUnsafeReadableBytes { frames.scan($0) }
        case .fileRegion(let region):
            frames.skip(region.readableBytes)
        }
        guard errorGoAway else {
            context.write(data, promise: promise)
            return
        }
        let written = promise ?? context.eventLoop.makePromise(of: Void.self)
        written.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        context.write(data, promise: written)
    }
}

@available(*, unavailable)
extension HTTP2ConnectionErrorCloser: Sendable {}

/// Frame boundaries in an HTTP/2 connection's outbound bytes (RFC 9113 §4.1: a 9-byte header
/// whose first three bytes are the payload length), written in pieces of any size.
struct HTTP2OutboundFrames {
    /// Bytes of the current frame's payload (or of the preface) still to come.
    private var remaining: Int
    /// The start of a frame whose header (and, for GOAWAY, the error code after it) arrived
    /// split across writes; empty on the usual path, where a write holds them whole.
    private var partial: [UInt8] = []

    private static let headerBytes = 9
    /// A GOAWAY's header, last stream ID and error code.
    private static let goAwayStart = 17
    private static let goAway: UInt8 = 0x07

    init(prefaceBytes: Int) {
        remaining = prefaceBytes
    }

    /// Follows `bytes`; true when a GOAWAY with an error code (not NO_ERROR) was completed in them.
    mutating func scan(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var errorGoAway = false
        var i = 0
        while i < bytes.count {
            if remaining > 0 {
                let step = min(remaining, bytes.count - i)
                remaining -= step
                i += step
                continue
            }
            let left = bytes.count - i
            if partial.isEmpty, left >= Self.goAwayStart || (left >= Self.headerBytes && bytes[i + 3] != Self.goAway) {
                // The usual case: the frame's start is whole in this write.
                errorGoAway = Self.frame(UnsafeRawBufferPointer(rebasing: bytes[i...]), remaining: &remaining) || errorGoAway
                i += Self.headerBytes
                continue
            }
            // A frame's start split across writes: collected (rare).
            let want = partial.count >= Self.headerBytes && partial[3] == Self.goAway ? Self.goAwayStart : Self.headerBytes
            let take = min(want - partial.count, left)
            partial.append(contentsOf: bytes[i..<(i + take)])
            i += take
            if partial.count < Self.headerBytes { continue }
            let collected = partial.count
            if partial[3] == Self.goAway, collected < Self.goAwayStart,
               Int(partial[0]) << 16 | Int(partial[1]) << 8 | Int(partial[2]) >= 8 {
                continue // the error code is still to come
            }
            errorGoAway = partial.withUnsafeBytes { Self.frame($0, remaining: &remaining) } || errorGoAway
            remaining -= collected - Self.headerBytes
            partial.removeAll(keepingCapacity: true)
        }
        return errorGoAway
    }

    /// Follows `count` bytes that cannot be looked at (a file region: only ever a DATA
    /// frame's payload).
    mutating func skip(_ count: Int) {
        remaining = max(0, remaining - count)
    }

    /// Reads a frame's start (its header and, for a GOAWAY of at least 8 payload bytes, those
    /// 8): `remaining` becomes the payload's length.
    private static func frame(_ start: UnsafeRawBufferPointer, remaining: inout Int) -> Bool {
        let length = Int(start[0]) << 16 | Int(start[1]) << 8 | Int(start[2])
        remaining = length
        guard start[3] == goAway, length >= 8 else { return false }
        let code = start[13...16].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        return code != 0
    }
}
