#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
@testable import SluiceProxy
import SluiceConfig

extension EndToEnd {
/// The options on the proxy's own TCP sockets, read back from the kernel: Nagle off on both
/// sides (a small response must not wait for an ACK), and nothing else set by accident.
///
/// The proxy runs in the test's process, so its sockets are this process's descriptors: each
/// is found by its ports (accepted by the listener: local port the listener's; to a backend:
/// peer port the backend's) and asked with `getsockopt`.
@Suite struct SocketOptions {
    @Test func clientAndUpstreamSocketsHaveNoDelayAndNoDebugFlag() async throws {
        try await Harness.with(backends: [.init(version: "v1")]) { h in
            try checkProxySockets(listenerPort: h.port, backendPort: h.backends[0].port) {
                let c = try h.client()
                #expect(try c.request("GET", "/a").status == 200)
                return c
            }
        }
    }

    @Test func http2UpstreamSocketsHaveNoDelayAndNoDebugFlag() async throws {
        let backend = try await TestBackend.start(options: .init(version: "v1", h2c: true))
        var spec = Harness.spec("grpc", "v1", [backend.address])
        spec.upstreamProtocol = .h2
        let backendPort = backend.port
        do {
            try await Harness.with(backends: [], specs: { _ in [spec] }) { h in
                try checkProxySockets(listenerPort: h.port, backendPort: backendPort) {
                    let c = try h.client()
                    #expect(try c.request("GET", "/a").status == 200)
                    return c
                }
            }
        } catch {
            await backend.stop()
            throw error
        }
        await backend.stop()
    }

    /// Makes a request with `open` (its client kept open meanwhile, so the proxy's sockets are
    /// still there), then checks every socket of the proxy's on either side.
    private func checkProxySockets(listenerPort: Int, backendPort: Int,
                                   open: () throws -> RawHTTPClient) throws {
        let client = try open()
        var accepted = 0, upstream = 0
        for fd in openDescriptors() {
            guard let (local, peer) = tcpPorts(fd) else { continue }
            let isAccepted = local == listenerPort, isUpstream = peer == backendPort
            guard isAccepted || isUpstream else { continue }
            if isAccepted { accepted += 1 } else { upstream += 1 }
            let side = isAccepted ? "accepted" : "upstream"
            #expect(option(fd, CInt(IPPROTO_TCP), CInt(TCP_NODELAY)) == 1, "\(side) socket \(fd): TCP_NODELAY off")
            #expect(option(fd, SOL_SOCKET, SO_DEBUG) == 0, "\(side) socket \(fd): SO_DEBUG set")
        }
        #expect(accepted >= 1, "no socket accepted by the proxy found")
        #expect(upstream >= 1, "no proxy socket to the backend found")
        withExtendedLifetime(client) {}
    }

    private func openDescriptors() -> [CInt] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return names.compactMap { CInt($0) }
    }

    /// The local and peer ports of an IPv4 TCP socket, nil for anything else.
    private func tcpPorts(_ fd: CInt) -> (Int, Int)? {
        func port(_ call: (CInt, UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> CInt) -> Int? {
            var address = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let result = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { call(fd, $0, &length) }
            }
            guard result == 0, address.sin_family == sa_family_t(AF_INET) else { return nil }
            return Int(UInt16(bigEndian: address.sin_port))
        }
        guard option(fd, SOL_SOCKET, CInt(SO_TYPE)) == Int(SOCK_STREAM.rawValue),
              let local = port({ getsockname($0, $1, $2) }), let peer = port({ getpeername($0, $1, $2) })
        else { return nil }
        return (local, peer)
    }

    private func option(_ fd: CInt, _ level: CInt, _ name: CInt) -> Int? {
        var value: CInt = 0
        var length = socklen_t(MemoryLayout<CInt>.size)
        return getsockopt(fd, level, name, &value, &length) == 0 ? Int(value) : nil
    }
}
}
