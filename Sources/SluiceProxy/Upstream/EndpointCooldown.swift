import NIOCore

/// Endpoints that refused a connection (or did not answer a connect in time) recently: each is
/// passed over until its cool-down ends — 1 s after the first failure, doubling with each
/// further one up to 30 s; a successful connect forgets it. One per event loop for primary
/// traffic (`LoopContext.endpointCooldown`) and one for shadow traffic (`MirrorSender`).
///
/// Only connect failures count: an endpoint that answers 5xx or slowly is still serving, and
/// what it answers is the backend's own to report. Primary traffic still tries an endpoint
/// cooling down when every endpoint of its backend is (one may be back; a request that would
/// otherwise fail at once pays the connect); shadow copies are dropped then.
///
/// An endpoint whose cool-down ended more than `longest` ago is forgotten too (`prune`): it may
/// have left the configuration (no connect will ever clear it), and while any entry is held
/// every connect checks its backend's endpoints against the table. A failure after that starts
/// again at 1 s.
struct EndpointCooldown {
    static let first = TimeAmount.seconds(1)
    static let longest = TimeAmount.seconds(30)

    private var entries: [SocketAddress: (until: NIODeadline, backoff: TimeAmount)] = [:]

    var isEmpty: Bool { entries.isEmpty }

    /// Whether `address` is passed over at `now`.
    func skips(_ address: SocketAddress, now: NIODeadline) -> Bool {
        guard let entry = entries[address] else { return false }
        return now < entry.until
    }

    mutating func connectFailed(_ address: SocketAddress, now: NIODeadline) {
        let backoff = entries[address].map { min($0.backoff * 2, Self.longest) } ?? Self.first
        entries[address] = (now + backoff, backoff)
    }

    mutating func connected(_ address: SocketAddress) {
        if !entries.isEmpty { entries[address] = nil }
    }

    /// The endpoints passed over at `now`.
    func skipped(now: NIODeadline) -> [SocketAddress] {
        entries.compactMap { now < $0.value.until ? $0.key : nil }
    }

    /// Forgets the endpoints whose cool-down ended more than `longest` before `now`.
    mutating func prune(now: NIODeadline) {
        guard entries.values.contains(where: { $0.until + Self.longest <= now }) else { return }
        entries = entries.filter { now < $0.value.until + Self.longest }
    }
}

extension SocketAddress {
    /// `127.0.0.1:9001`, `[::1]:9001`: an endpoint as the config names it (`description` adds
    /// the family and the host name).
    var endpointText: String {
        let host = ipAddress ?? "?"
        let port = port.map(String.init) ?? "?"
        if case .v6 = self { return "[\(host)]:\(port)" }
        return "\(host):\(port)"
    }
}
