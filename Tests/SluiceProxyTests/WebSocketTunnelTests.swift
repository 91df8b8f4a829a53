#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import SluiceMetrics
import SluiceRouting
@testable import SluiceProxy

extension EndToEnd {
/// WebSocket upgrades: routed once at the handshake, then a byte tunnel that stays on its
/// version until it closes (the test backend greets with its version and echoes bytes).
@Suite struct WebSocketTunnel {
    static let config = """
        listen: ["127.0.0.1:1"]
        backends:
          a: { version: v1, endpoints: ["${B0}"] }
          b: { version: v2, endpoints: ["${B1}"] }
          shadow: { version: v3, endpoints: ["${B2}"] }
        routes:
          - name: ws
            split: { a: 100, b: 0 }
            mirror: { backend: shadow, percent: 100 }
        """

    static func handshake(_ c: RawHTTPClient) throws -> (head: String, greeting: String) {
        try c.send("GET /chat HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        let head = try c.readInterim()
        return (head, try c.readTextLine())
    }

    static func tunnels(_ h: Harness) throws -> Int {
        try h.statistics().series.reduce(0) { $0 + $1.tunnels }
    }

    /// A tunnel has no idle timeout, so both of its sockets get TCP keepalive (60 s idle, 6
    /// probes 10 s apart): a peer gone without a FIN is found. Read back from the kernel on the
    /// proxy's accepted socket and its socket to the backend; a plain HTTP/1.1 connection,
    /// bounded by the idle timeout, gets none.
    @Test func aTunnelsSocketsHaveTCPKeepalive() async throws {
        try await Harness.withYAML(backends: [.init(version: "v1"), .init(version: "v2"), .init(version: "v3")],
                                   config: Self.config) { h in
            let plain = try h.client()
            #expect(try plain.request("GET", "/plain").status == 200)
            let c = try h.client()
            #expect(try Self.handshake(c).greeting == "hello from v1")
            #expect(waitUntil(timeout: 5) { (try? Self.tunnels(h)) == 1 })
            let accepted = ProcessSockets.all().filter { $0.localPort == h.port }
            let upstream = ProcessSockets.all().filter { $0.peerPort == h.backends[0].port }
            func keepalive(_ s: ProcessSockets.Socket) -> [Int?] {
                [ProcessSockets.option(s.descriptor, SOL_SOCKET, CInt(SO_KEEPALIVE)),
                 ProcessSockets.option(s.descriptor, CInt(IPPROTO_TCP), CInt(TCP_KEEPIDLE)),
                 ProcessSockets.option(s.descriptor, CInt(IPPROTO_TCP), CInt(TCP_KEEPINTVL)),
                 ProcessSockets.option(s.descriptor, CInt(IPPROTO_TCP), CInt(TCP_KEEPCNT))]
            }
            // Two accepted sockets (the plain client's and the tunnel's), two to the backend
            // (the plain request's pooled connection and the tunnel's): one of each pair.
            #expect(accepted.filter { keepalive($0) == [1, 60, 10, 6] }.count == 1, "\(accepted.map(keepalive))")
            #expect(accepted.filter { keepalive($0)[0] == 0 }.count == 1, "\(accepted.map(keepalive))")
            #expect(upstream.filter { keepalive($0) == [1, 60, 10, 6] }.count == 1, "\(upstream.map(keepalive))")
            withExtendedLifetime((plain, c)) {}
        }
    }

    @Test func handshakeIsPassedOnAndBytesFlowBothWays() async throws {
        try await Harness.withYAML(backends: [.init(version: "v1"), .init(version: "v2"), .init(version: "v3")],
                                   config: Self.config) { h in
            let c = try h.client()
            let (head, greeting) = try Self.handshake(c)
            #expect(head.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"))
            #expect(head.lowercased().contains("upgrade: websocket\r\n"))
            #expect(head.lowercased().contains("connection: upgrade\r\n"))
            #expect(greeting == "hello from v1")
            // 1 MiB through the tunnel and back, byte for byte.
            var payload = [UInt8](repeating: 0, count: 1 << 20)
            for i in payload.indices { payload[i] = UInt8(truncatingIfNeeded: i &* 31 &+ 7) }
            try c.send(payload)
            #expect(try c.readBytes(payload.count) == payload)
            #expect(try Self.tunnels(h) == 1)
            // The handshake is counted once, as a 101 of the version it was routed to.
            let stats = try h.statistics()
            #expect(stats.series.reduce(0) { $0 + ($1.codes[101] ?? 0) } == 1)
            // WebSockets are never mirrored.
            #expect(h.backends[2].received.isEmpty)
            c.close()
            var open = 1
            for _ in 0..<400 where open != 0 {
                usleep(5_000)
                open = try Self.tunnels(h)
            }
            #expect(open == 0)
        }
    }

    @Test func anOpenTunnelStaysOnItsVersionThroughAWeightChange() async throws {
        try await Harness.withYAML(backends: [.init(version: "v1"), .init(version: "v2"), .init(version: "v3")],
                                   config: Self.config) { h in
            let old = try h.client()
            #expect(try Self.handshake(old).greeting == "hello from v1")
            // Shift all new traffic to v2, the way a live weights change does.
            let current = h.proxy.store.load()
            let table = try current.table.settingWeights(routeNamed: "ws", weights: ["a": 0, "b": 100])
            h.proxy.store.store(try current.replacingTable(table, registry: h.proxy.registry))
            let fresh = try h.client()
            #expect(try Self.handshake(fresh).greeting == "hello from v2")
            // The old tunnel still works, on the connection its handshake opened to v1.
            try old.send("still here\n")
            #expect(try old.readTextLine() == "still here")
            #expect(try Self.tunnels(h) == 2)
            let keys = h.proxy.registry.allKeys
            let perVersion = Dictionary(grouping: try h.statistics().series.enumerated().filter { $0.element.tunnels > 0 },
                                        by: { keys[$0.offset].version }).mapValues { $0.reduce(0) { $0 + $1.element.tunnels } }
            #expect(perVersion == ["v1": 1, "v2": 1])
        }
    }

    @Test func ordinaryRequestsStillDropUpgradeFields() async throws {
        try await Harness.withYAML(backends: [.init(version: "v1"), .init(version: "v2"), .init(version: "v3")],
                                   config: Self.config) { h in
            let c = try h.client()
            // An h2c upgrade is not a WebSocket: its fields are hop-by-hop and never reach the backend.
            let r = try c.request("GET", "/plain", headers: [("Upgrade", "h2c"), ("Connection", "Upgrade, HTTP2-Settings"),
                                                             ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")])
            #expect(r.status == 200)
            #expect(r.echoedHeaders["upgrade"] == nil)
            #expect(r.echoedHeaders["http2-settings"] == nil)
        }
    }
}
}
