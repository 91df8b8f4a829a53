#if canImport(Glibc)
import Glibc
#endif
import Atomics
import NIOCore

/// Sends an HTTP/1.1 connection's output straight to its socket while NIO holds none of that
/// connection's bytes: one `send(2)` in place of a walk through the channel pipeline, NIO's
/// pending-write queue, its flush and its promise bookkeeping. A proxied request writes twice
/// (the request to the backend, the response to the client), and NIO's write path was 5.4k of
/// the 34.1k user-space instructions of a request (see the README's Architecture section).
///
/// The rules that keep the bytes in order and on the right socket:
/// - only a plain TCP channel whose codec is its only handler (no TLS in between), so the bytes
///   `HTTP1Output` serialises are the bytes of the socket (`HTTP1ServerHandler` on a cleartext
///   listener, `HTTP1UpstreamHandler` always);
/// - only while NIO holds none of this connection's writes: every write that does go through
///   NIO is counted (`handedToNIO`) until its promise completes, and NIO completes them in
///   order, so a direct send never overtakes bytes NIO still has;
/// - only while the channel is active: NIO marks a channel inactive before it closes the
///   descriptor, on this same thread, so the number cannot belong to a newer socket;
/// - what `send` does not take (a full socket buffer, an interrupted call, an error) goes to
///   NIO as before, which waits for writability, or reports the error and closes the channel,
///   exactly as it would have.
///
/// A value in the codec's `HTTP1Output` (the descriptor), plus a counter object allocated at
/// the first write that goes through NIO: an idle keep-alive connection, whose writes all went
/// straight out, carries four bytes for this, not an object.
struct SocketWriteThrough {
    let descriptor: CInt
    /// Writes handed to NIO that have not completed yet; nil until the first one.
    private var handedToNIO: PendingCount?
    /// Sends the socket did not take in full, in this process (the rare path; a test waits for
    /// one to know a socket filled up).
    static let shortSends = ManagedAtomic(0)

    private init(descriptor: CInt) {
        self.descriptor = descriptor
    }

    /// The socket of `channel`, if it is a socket channel (not an embedded or HTTP/2 stream
    /// channel). The caller knows whether its handler is the only one. On the channel's loop.
    ///
    /// Not NIO's `withUnsafeTransportIfAvailable(of:)`: it casts the channel's core to the
    /// constrained `any NIOTransportAccessibleChannelCore<Transport>`, and the runtime checks
    /// that constraint by demangling the associated type's name on every cast — 14k
    /// instructions per connection, more than a keep-alive request costs Sluice in all. The
    /// unconstrained protocol's conformance is cached, and the transport's type is then
    /// compared as a concrete type.
    static func socket(of channel: Channel) -> SocketWriteThrough? {
        #if os(Linux)
        guard let core = channel._channelCore as? any NIOTransportAccessibleChannelCore else { return nil }
        return descriptor(of: core).map(SocketWriteThrough.init(descriptor:))
        #else
        return nil
        #endif
    }

    private static func descriptor<Core: NIOTransportAccessibleChannelCore>(of core: Core) -> NIOBSDSocket.Handle? {
        guard Core.Transport.self == NIOBSDSocket.Handle.self else { return nil }
        return try? core.withUnsafeTransport { $0 as? NIOBSDSocket.Handle }
    }

    /// No write handed to NIO is still waiting to complete.
    var holdsNothingInNIO: Bool { handedToNIO?.value ?? 0 == 0 }

    /// Sends `bytes` if nothing waits in NIO and `channel` (the socket's) is still active. True
    /// when all of it went; otherwise `bytes` holds what is left (all of it if nothing was
    /// sent), for NIO to write.
    func send(_ bytes: inout ByteBuffer, channel: Channel?) -> Bool {
        #if os(Linux)
        guard holdsNothingInNIO, bytes.readableBytes > 0, channel?.isActive == true else { return false }
        let sent = bytes.withUnsafeReadableBytes { raw in
            Glibc.send(descriptor, raw.baseAddress, raw.count, Int32(MSG_NOSIGNAL))
        }
        guard sent == bytes.readableBytes else {
            Self.shortSends.wrappingIncrement(ordering: .relaxed)
            if sent > 0 { bytes.moveReaderIndex(forwardBy: sent) }
            return false
        }
        return true
        #else
        return false
        #endif
    }

    /// The promise for a write handed to NIO: the write is counted until it completes, and then
    /// `promise` (the caller's, if any) completes with it.
    mutating func track(_ promise: EventLoopPromise<Void>?, on context: ChannelHandlerContext) -> EventLoopPromise<Void> {
        let count = handedToNIO ?? PendingCount()
        handedToNIO = count
        let tracked = context.eventLoop.makePromise(of: Void.self)
        count.value += 1
        tracked.futureResult.assumeIsolated().whenComplete { result in
            count.value -= 1
            promise?.completeWith(result)
        }
        return tracked
    }

    /// A count the completion callbacks can reach.
    private final class PendingCount {
        var value = 0
    }
}

@available(*, unavailable)
extension SocketWriteThrough: Sendable {}

/// The socket channel under a codec that is its only handler (a cleartext listener's codec, an
/// upstream HTTP/1.1 connection's): its reads go to the channel directly, as NIO's head handler
/// passes them on, without the hop through the pipeline (a proxied request reads twice, ~150
/// instructions saved each time), and `SocketWriteThrough` checks it is still active. Like the
/// write-through, only where nothing else is in the pipeline to see or hold the read.
///
/// Held by the codec as `let` constants (given at its creation, in the channel's initializer)
/// and called through `?.`: a call then takes no reference count. Reached through the handler
/// context (`context.channel._channelCore`) it took two retains and two releases each time, the
/// pipeline's channel and its core. The channel holds the pipeline that holds the codec; the
/// cycle ends when the channel closes and NIO removes its handlers.
struct OwnedSocket {
    let channel: Channel
    let core: ChannelCore

    init?(_ channel: Channel?) {
        guard let channel else { return nil }
        self.channel = channel
        self.core = channel._channelCore
    }
}
