#if canImport(Glibc)
import Glibc
#endif

/// The serving commands (`run`, `demo`, `backend`) raise their soft open-file limit to the hard
/// limit at start, as HAProxy and Go programs do. Every proxied connection holds two
/// descriptors (client and upstream), and the usual soft default — 1024, systemd's included,
/// whose hard default is 524288 — would stop a proxy at about 500 connections: accepts fail
/// with EMFILE and NIO backs off, while the hard limit allows far more. Raising the soft limit
/// up to the hard one needs no privilege.
///
/// Returns a line for the log when the limit changed or could not be changed; nil otherwise.
func raiseOpenFileLimit() -> String? {
    #if os(Linux)
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return nil }
    let soft = limit.rlim_cur
    limit.rlim_cur = limit.rlim_max
    guard setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else {
        return "open-file limit stays at \(soft): raising it to \(limit.rlim_max) failed (errno \(errno))"
    }
    return "open-file limit raised from \(soft) to \(limit.rlim_max)"
    #else
    return nil
    #endif
}
