import NIOCore
import NIOTLS

/// Closes a TLS connection whose handshake has not completed `timeout` after it was accepted
/// (`server.idleTimeout`), then steps out of the pipeline.
///
/// Until the handshake (and ALPN) is done no HTTP handler is in the pipeline, so the HTTP idle
/// timeouts cannot see the connection: one that sent nothing, or half a ClientHello, stayed
/// open for good, a file descriptor each. A scheduled task per TLS connection is cheap next to
/// the handshake itself.
final class TLSHandshakeDeadline: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private let timeout: TimeAmount
    private var timer: Scheduled<Void>?

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(context: context)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        context.fireUserInboundEventTriggered(event)
        if let tls = event as? TLSUserEvent, case .handshakeCompleted = tls {
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
    }

    private func arm(context: ChannelHandlerContext) {
        guard timer == nil else { return }
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            context.close(promise: nil)
        }
    }
}

@available(*, unavailable)
extension TLSHandshakeDeadline: Sendable {}
