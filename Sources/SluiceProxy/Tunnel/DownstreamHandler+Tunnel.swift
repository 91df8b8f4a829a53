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
            // Both codecs go, each handing on the bytes it holds: the backend's first frames
            // may have arrived with its 101, and a client may (against RFC 6455 §4.1) have sent
            // early. Both tunnel ends are in place before either codec leaves, so those bytes
            // reach the other side. Only HTTP/1.1 exchanges upgrade.
            guard let codec = conn.handler as? HTTP1UpstreamHandler, let http1 else {
                throw ChannelError.inappropriateOperationForState
            }
            let up = conn.channel.pipeline.syncOperations
            let down = context.pipeline.syncOperations
            try up.addHandler(server)
            try down.addHandler(client, position: .after(http1))
            _ = up.removeHandler(codec)
            _ = down.removeHandler(http1)
        } catch {
            conn.channel.close(promise: nil)
            context.close(promise: nil)
        }
    }
}
