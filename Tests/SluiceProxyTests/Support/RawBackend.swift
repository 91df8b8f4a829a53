#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A backend that writes raw bytes (HTTP/1.1 or HTTP/2 frames) on a loopback socket, on a
/// thread of its own: it sends what real servers do not (malformed blocks), or behaves as a
/// test needs (GOAWAY, a response that stalls half-way).
final class RawBackend: Sendable {
    let listener: Int32
    let port: Int

    struct Failure: Error {}

    init() throws {
        listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        port = boundPort(listener)
        guard listen(listener, 4) == 0 else {
            close(listener)
            throw Failure()
        }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(listener, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(listener) }

    /// Runs `body` on a new thread; it accepts connections through its argument (nil after 10 s
    /// without one). The semaphore is signalled when `body` returns.
    func serve(_ body: @escaping @Sendable (_ accept: () -> RawHTTPClient?) -> Void) -> DispatchSemaphore {
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread { [self] in
            defer { done.signal() }
            body {
                let fd = accept(self.listener, nil, nil)
                return fd >= 0 ? RawHTTPClient(accepted: fd, timeout: 10) : nil
            }
        }
        return done
    }
}
