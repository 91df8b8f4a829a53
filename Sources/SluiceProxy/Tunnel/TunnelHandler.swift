import NIOCore

/// One side of a byte tunnel (an upgraded connection such as a WebSocket): bytes read on this
/// channel are written to the partner's, and the other way round.
///
/// Backpressure is NIO's GlueHandler pattern: a side reads only while its partner can write.
/// When either side closes, the other is closed too, and `onClose` (shared by the pair) runs once.
final class TunnelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    var partner: TunnelHandler?
    private var context: ChannelHandlerContext?
    private var pendingRead = false
    /// Runs once when the tunnel ends (the first side to close runs it).
    private let closed: TunnelClosed

    init(closed: TunnelClosed) { self.closed = closed }

    /// Two handlers glued to each other, sharing one close action.
    static func pair(onClose: @escaping () -> Void) -> (TunnelHandler, TunnelHandler) {
        let closed = TunnelClosed(onClose)
        let a = TunnelHandler(closed: closed)
        let b = TunnelHandler(closed: closed)
        a.partner = b
        b.partner = a
        return (a, b)
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        partner?.partnerWrite(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        partner?.partnerFlush()
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed.run()
        partner?.partnerClose()
        partner = nil
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.partnerBecameWritable() }
    }

    func read(context: ChannelHandlerContext) {
        if let partner, !partner.isWritable {
            pendingRead = true
        } else {
            context.read()
        }
    }

    private var isWritable: Bool { context?.channel.isWritable ?? false }

    /// Written and flushed at once: bytes can arrive outside a read cycle (the leftover that
    /// the HTTP decoder forwards when it is removed after the 101), and a write left waiting
    /// for a `channelReadComplete` that already passed would never go out.
    private func partnerWrite(_ data: NIOAny) { context?.writeAndFlush(data, promise: nil) }
    private func partnerFlush() { context?.flush() }
    private func partnerClose() { context?.close(promise: nil) }

    private func partnerBecameWritable() {
        if pendingRead, let context {
            pendingRead = false
            context.read()
        }
    }
}

@available(*, unavailable)
extension TunnelHandler: Sendable {}

/// The pair's shared "tunnel ended" action.
final class TunnelClosed {
    private var action: (() -> Void)?
    init(_ action: @escaping () -> Void) { self.action = action }
    func run() {
        action?()
        action = nil
    }
}
