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
            // Upstream: the HTTP/1 codec goes, handing on the bytes the backend sent right
            // after its 101 (they are the tunnel's first bytes).
            guard let codec = conn.handler as? HTTP1UpstreamHandler else { throw ChannelError.inappropriateOperationForState }
            let up = conn.channel.pipeline.syncOperations
            try up.addHandler(server)
            _ = up.removeHandler(codec)
            // Downstream: the HTTP/1 codec goes (handing on any bytes it holds; a client should
            // send no frame before the 101, RFC 6455 §4.1). Only HTTP/1.1 exchanges upgrade.
            guard let http1 else { throw ChannelError.inappropriateOperationForState }
            let down = context.pipeline.syncOperations
            try down.addHandler(client, position: .after(http1))
            _ = down.removeHandler(try down.handler(type: IdleStateHandler.self))
            _ = down.removeHandler(http1)
        } catch {
            conn.channel.close(promise: nil)
            context.close(promise: nil)
        }
    }
}
