#if canImport(Glibc)
import Glibc
#endif
import Foundation
import NIOCore
import Testing
@testable import SluiceProxy
import SluiceConfig

extension EndToEnd {
/// The options on the proxy's own TCP sockets, read back from the kernel (`ProcessSockets`):
/// Nagle off on both sides (a small response must not wait for an ACK), and nothing else set by
/// accident — NIO's `socketOption(.tcp_nodelay)` once set SO_DEBUG instead, which only root
/// may set: as any other user every connection was refused.
@Suite struct SocketOptions {
    @Test func clientAndUpstreamSocketsHaveNoDelayAndNoDebugFlag() async throws {
        try await Harness.with(backends: [.init(version: "v1")]) { h in
            let client = try h.client()
            #expect(try client.request("GET", "/a").status == 200)
            checkProxySockets(listenerPort: h.port, backendPort: h.backends[0].port)
            withExtendedLifetime(client) {}
        }
    }

    @Test func http2UpstreamSocketsHaveNoDelayAndNoDebugFlag() async throws {
        let backend = try await TestBackend.start(options: .init(version: "v1", h2c: true))
        var spec = Harness.spec("grpc", "v1", [backend.address])
        spec.upstreamProtocol = .h2
        let backendPort = backend.port
        do {
            try await Harness.with(backends: [], specs: { _ in [spec] }) { h in
                let client = try h.client()
                #expect(try client.request("GET", "/a").status == 200)
                checkProxySockets(listenerPort: h.port, backendPort: backendPort)
                withExtendedLifetime(client) {}
            }
        } catch {
            await backend.stop()
            throw error
        }
        await backend.stop()
    }

    /// Checks every socket of the proxy's on either side (the client that made a request is
    /// still open, so they all are).
    private func checkProxySockets(listenerPort: Int, backendPort: Int) {
        var accepted = 0, upstream = 0
        for socket in ProcessSockets.all() {
            let isAccepted = socket.localPort == listenerPort, isUpstream = socket.peerPort == backendPort
            guard isAccepted || isUpstream else { continue }
            if isAccepted { accepted += 1 } else { upstream += 1 }
            let name = "\(isAccepted ? "accepted" : "upstream") socket \(socket.descriptor)"
            let fd = socket.descriptor
            #expect(ProcessSockets.option(fd, CInt(IPPROTO_TCP), CInt(TCP_NODELAY)) == 1, "\(name): TCP_NODELAY off")
            #expect(ProcessSockets.option(fd, SOL_SOCKET, CInt(SO_DEBUG)) == 0, "\(name): SO_DEBUG set")
        }
        #expect(accepted >= 1, "no socket accepted by the proxy found")
        #expect(upstream >= 1, "no proxy socket to the backend found")
    }
}
}

/// The client address as `x-forwarded-for` gives it: formatted by Sluice for IPv4, the same
/// text as NIO's `ipAddress` (pure logic: the addresses are only parsed, never used).
@Suite struct ForwardedForFormatting {
    @Test func ipv4IsFormattedLikeNIO() throws {
        for host in ["0.0.0.0", "127.0.0.1", "255.255.255.255", "10.20.30.40", "1.2.3.4", "100.9.99.199", "192.168.0.10"] {
            let address = try SocketAddress(ipAddress: host, port: 80)
            #expect(address.forwardedFor == host)
            #expect(address.forwardedFor == address.ipAddress)
        }
    }

    @Test func ipv6IsNIOsText() throws {
        let address = try SocketAddress(ipAddress: "::1", port: 80)
        #expect(address.forwardedFor == "::1")
    }
}
