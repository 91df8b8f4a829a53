#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// The IPv4 TCP sockets this test process holds, read from `/proc/self/fd`. The proxy under
/// test runs in this process, so its sockets are among them, told apart by their ports (one it
/// accepted has the listener's local port; one to a backend, the backend's peer port).
enum ProcessSockets {
    struct Socket {
        let descriptor: CInt
        let localPort: Int
        let peerPort: Int
    }

    static func all() -> [Socket] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return names.compactMap { CInt($0) }.compactMap { fd in
            guard option(fd, SOL_SOCKET, CInt(SO_TYPE)) == Int(SOCK_STREAM.rawValue),
                  let local = port(fd, { getsockname($0, $1, $2) }), let peer = port(fd, { getpeername($0, $1, $2) })
            else { return nil }
            return Socket(descriptor: fd, localPort: local, peerPort: peer)
        }
    }

    /// An integer socket option's value, nil when it cannot be read.
    static func option(_ fd: CInt, _ level: CInt, _ name: CInt) -> Int? {
        var value: CInt = 0
        var length = socklen_t(MemoryLayout<CInt>.size)
        return getsockopt(fd, level, name, &value, &length) == 0 ? Int(value) : nil
    }

    /// The port of an IPv4 address `call` (getsockname or getpeername) gives for `fd`.
    private static func port(_ fd: CInt,
                             _ call: (CInt, UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> CInt) -> Int? {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let result = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { call(fd, $0, &length) }
        }
        guard result == 0, address.sin_family == sa_family_t(AF_INET) else { return nil }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
