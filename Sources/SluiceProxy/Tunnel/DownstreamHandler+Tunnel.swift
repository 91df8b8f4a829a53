import NIOCore
import NIOHTTP1

/// Turning an upgraded exchange (WebSocket) into a byte tunnel.
///
/// The routing decision was made once, at the handshake; from here on the two connections are
/// glued byte for byte until either side closes, so a tunnel stays on its version through
/// weight changes, switches and reloads (`sluice_open_tunnels` shows how many remain per version).
extension DownstreamHandler {
    func startTunnel(to conn: UpstreamConnection, series: Int, context: ChannelHandlerContext) {
        let loop = self.loop
        loop.stats.adjustTunnels(series: series, by: 1)
        let (client, server) = TunnelHandler.pair { loop.stats.adjustTunnels(series: series, by: -1) }
        conn.handler.delegate = nil
        do {
            // Upstream: the response decoder goes last, so bytes the backend sent right after
            // its 101 are forwarded (leftover strategy) into the tunnel, not dropped.
            let up = conn.channel.pipeline.syncOperations
            try up.addHandler(server)
            _ = up.removeHandler(conn.handler)
            _ = up.removeHandler(try up.handler(type: HTTPRequestEncoder.self))
            _ = up.removeHandler(try up.handler(type: ByteToMessageHandler<HTTPResponseDecoder>.self))
            // Downstream: the HTTP handlers go; a client sends no frame before the 101 (RFC 6455 §4.1).
            let down = context.pipeline.syncOperations
            try down.addHandler(client, position: .after(self))
            _ = down.removeHandler(try down.handler(type: HTTPServerPipelineHandler.self))
            _ = down.removeHandler(try down.handler(type: HTTPResponseEncoder.self))
            _ = down.removeHandler(try down.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self))
            _ = down.removeHandler(try down.handler(type: IdleStateHandler.self))
            _ = down.removeHandler(self)
        } catch {
            conn.channel.close(promise: nil)
            context.close(promise: nil)
        }
    }
}
