#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOHTTP1

/// Turning an upgraded exchange (WebSocket) into a byte tunnel.
///
/// The routing decision was made once, at the handshake; from here on the two connections are
/// glued byte for byte until either side closes, so a tunnel stays on its version through
/// weight changes, switches and reloads (`sluice_open_tunnels` shows how many remain per version).
extension DownstreamHandler {
    /// TCP keepalive on one of a tunnel's sockets. A tunnel has no idle timeout (a WebSocket
    /// may rightly stay quiet for hours), so a peer that vanished without a FIN — a network
    /// partition, a host switched off — would hold both connections for good: keepalive probes
    /// find it after `keepAliveIdle` of silence plus `keepAliveProbes` unanswered probes
    /// `keepAliveInterval` apart (2 minutes), and the tunnel then closes as on any error.
    static func keepAlive(_ channel: Channel) throws {
        guard let options = channel.syncOptions else { return }
        try options.setOption(.socketOption(.so_keepalive), value: 1)
        #if os(Linux)
        try options.setOption(.tcpOption(.init(rawValue: TCP_KEEPIDLE)), value: keepAliveIdle)
        try options.setOption(.tcpOption(.init(rawValue: TCP_KEEPINTVL)), value: keepAliveInterval)
        try options.setOption(.tcpOption(.init(rawValue: TCP_KEEPCNT)), value: keepAliveProbes)
        #endif
    }

    static let keepAliveIdle: SocketOptionValue = 60
    static let keepAliveInterval: SocketOptionValue = 10
    static let keepAliveProbes: SocketOptionValue = 6

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
            try? Self.keepAlive(conn.channel)
            try? Self.keepAlive(context.channel)
        } catch {
            conn.channel.close(promise: nil)
            context.close(promise: nil)
        }
    }
}
