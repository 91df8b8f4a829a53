#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import SluiceConfig

/// Listening sockets handed over by a service manager (socket activation, `sd_listen_fds(3)`):
/// systemd with a `.socket` unit, or anything that follows the same protocol. The manager
/// keeps the socket open across restarts of the proxy, so connections that arrive while one
/// process drains and the next starts wait in the kernel's accept queue instead of being
/// refused, and the next process serves them: a restart loses nothing.
///
/// Protocol: `LISTEN_PID` names this process and `LISTEN_FDS` counts the sockets, passed as
/// descriptors 3, 4, ... Each config listener whose address is the local address of one of them
/// takes that socket instead of binding; listeners without one bind as usual.
public struct InheritedListeners: Sendable {
    /// The first descriptor passed (`SD_LISTEN_FDS_START`).
    static let firstDescriptor: CInt = 3
    private var sockets: [(descriptor: CInt, address: SocketAddress)]

    public static let none = InheritedListeners(sockets: [])

    private init(sockets: [(descriptor: CInt, address: SocketAddress)]) {
        self.sockets = sockets
    }

    /// Reads the protocol's variables and unsets them (so a process started later does not take
    /// the sockets for its own). Descriptors that are not listening stream sockets are skipped,
    /// named in `problems`.
    public static func fromEnvironment() -> (listeners: InheritedListeners, problems: [String]) {
        defer { for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] { unsetenv(name) } }
        func variable(_ name: String) -> Int32? { getenv(name).flatMap { Int32(String(cString: $0)) } }
        guard let pid = variable("LISTEN_PID"), pid == getpid(), let count = variable("LISTEN_FDS"), count > 0
        else { return (.none, []) }
        var sockets: [(CInt, SocketAddress)] = []
        var problems: [String] = []
        for descriptor in firstDescriptor..<(firstDescriptor + count) {
            _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
            if let address = listeningAddress(descriptor) {
                sockets.append((descriptor, address))
            } else {
                problems.append("inherited descriptor \(descriptor) is not a listening TCP socket; ignored")
            }
        }
        return (InheritedListeners(sockets: sockets), problems)
    }

    /// Takes the socket bound to `spec`'s address, if one was passed.
    mutating func take(_ spec: SocketAddressSpec) -> CInt? {
        guard !sockets.isEmpty, spec.port != 0,
              let wanted = try? SocketAddress.makeAddressResolvingHost(spec.host, port: spec.port),
              let i = sockets.firstIndex(where: { $0.address == wanted }) else { return nil }
        return sockets.remove(at: i).descriptor
    }

    /// The sockets no listener took: closed (the manager keeps its own copy) and described.
    mutating func closeUnused() -> [String] {
        defer { sockets = [] }
        return sockets.map { socket in
            close(socket.descriptor)
            return "inherited socket \(socket.address) matches no listener in the config; closed"
        }
    }

    /// The local address of a listening stream socket; nil for anything else.
    private static func listeningAddress(_ descriptor: CInt) -> SocketAddress? {
        var value: CInt = 0
        var length = socklen_t(MemoryLayout<CInt>.size)
        guard getsockopt(descriptor, SOL_SOCKET, SO_ACCEPTCONN, &value, &length) == 0, value == 1 else { return nil }
        var storage = sockaddr_storage()
        var size = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &size) == 0 }
        }
        guard ok else { return nil }
        switch Int32(storage.ss_family) {
        case AF_INET:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { SocketAddress($0.pointee, host: "") }
            }
        case AF_INET6:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { SocketAddress($0.pointee, host: "") }
            }
        default:
            return nil
        }
    }
}
