import NIOCore
import NIOHTTP2

/// The flow-control state of one stream held by an HTTP/2 connection handler, kept in the
/// stream's own object to spare the connection a lookup per frame.
struct HTTP2StreamWindow {
    /// DATA received since the stream's window was last given back.
    var received = 0
    /// Room left in the peer's window for this stream's DATA (negative: that much waits in
    /// NIOHTTP2).
    var sendWindow = 0
    /// Whether `sendWindow` leaves room to send (`HTTP2Window.sendable`).
    var sendable = true
    /// Since when the stream has been unwritable (its window, the connection's, or the
    /// socket's); nil while it is writable.
    var stalledSince: NIODeadline?
}

/// A stream an HTTP/2 connection handler holds itself rather than in a channel of its own: a
/// client's exchange (`DownstreamHandler`) or a request to a backend (`StreamUpstreamHandler`).
protocol HTTP2HeldStream: AnyObject {
    var window: HTTP2StreamWindow { get set }
    /// Set while the read in progress has given the stream frames; `readComplete` ends it.
    var inRead: Bool { get set }
    /// Set when the stream's window was kept because it `holdsRead`; it asks for the window by
    /// its connection's `resume` once it can take more.
    var readPending: Bool { get set }
    /// Whether the stream cannot pass on more of what it receives now (a client's exchange whose
    /// backend is not taking more; a backend's stream whose client is not).
    var holdsRead: Bool { get }
    /// One frame of the stream: HEADERS or DATA.
    func receiveFrame(_ payload: HTTP2Frame.FramePayload)
    /// The read that gave the stream frames is complete.
    func readComplete()
    /// The stream may be given more to send, or may not for now.
    func sendWritabilityChanged(_ isWritable: Bool)
}

/// What the two HTTP/2 connection handlers that hold their streams share
/// (`HTTP2ClientConnection` for clients, `HTTP2BackendConnection` for `protocol: h2` backends):
/// the streams by ID, flow control in both directions, and a read's frames gathered per stream.
/// The handlers keep what differs: how streams begin and end, GOAWAY, timeouts.
///
/// - **Receiving** (RFC 9113 §5.2, §6.9). The connection's window is given back as DATA
///   arrives (a stream's window bounds what it may have in flight, and the connection's must
///   not starve the others). A stream's is given back once half of it is used, but only while
///   the stream can pass the data on (`holdsRead`); otherwise its WINDOW_UPDATEs wait for its
///   `resume`, so the peer stops with at most a window buffered here (64 KiB by default).
/// - **Sending.** NIOHTTP2 holds DATA beyond the peer's windows; a stream is unwritable while
///   more than `HTTP2Window.highWater` of its DATA waits so (or of the connection's, or while
///   the socket is unwritable), which stops reading what feeds it until the peer makes room;
///   writable again at `HTTP2Window.lowWater`. The windows are counted here from the frames: the peer's initial
///   window (SETTINGS), its WINDOW_UPDATEs, and the DATA written.
/// - **Reads.** Streams given frames by a read hear of its end once (`readComplete`), so each
///   flushes what it passed on once per read; WINDOW_UPDATEs written meanwhile are flushed
///   with the read's end.
///
/// Touched only on the connection's event loop.
final class HTTP2Streams<Stream: HTTP2HeldStream> {
    private var streams = HTTP2StreamTable<Stream>()
    /// Streams given frames by the read in progress.
    private var reading: [Stream] = []
    private(set) var inRead = false
    private var needsFlush = false

    /// The peer's initial stream window (its SETTINGS_INITIAL_WINDOW_SIZE).
    private var peerInitialWindow = HTTP2Window.initial
    /// Room left in the peer's connection window (negative: that much waits in NIOHTTP2).
    private var connectionSendWindow = HTTP2Window.initial
    private var connectionSendable = true
    /// Since when the socket has been unwritable; nil while it is writable.
    private(set) var socketStalledSince: NIODeadline?
    /// DATA received since the connection's window was last given back.
    private var connectionReceived = 0

    subscript(id: HTTP2StreamID) -> Stream? { streams[id] }

    var isEmpty: Bool { streams.isEmpty }

    /// A stream begins: its send window is the peer's initial one.
    func add(_ stream: Stream, id: HTTP2StreamID) {
        stream.window.sendWindow = peerInitialWindow
        streams[id] = stream
    }

    /// `stream` ends, if it is the one held under `id`.
    func remove(_ stream: Stream, id: HTTP2StreamID) {
        if streams[id] === stream { streams[id] = nil }
    }

    /// Every stream ends (the connection has).
    func removeAll() -> [Stream] {
        guard !streams.isEmpty else { return [] }
        let all = streams.values
        streams.removeAll()
        return all
    }

    /// The held streams above `id` (a GOAWAY's last stream ID).
    func streams(above id: HTTP2StreamID) -> [Stream] {
        streams.values(where: { key, _ in key > Int32(id) })
    }

    /// The streams unwritable for `timeout` or longer at `now`.
    func streams(stalledFor timeout: TimeAmount, at now: NIODeadline) -> [Stream] {
        streams.values(where: { _, stream in stream.window.stalledSince.map { now - $0 >= timeout } ?? false })
    }

    // MARK: Frames in

    /// A frame for `stream`, delivered in the read in progress.
    func deliver(_ payload: HTTP2Frame.FramePayload, to stream: Stream) {
        inRead = true
        if !stream.inRead {
            stream.inRead = true
            reading.append(stream)
        }
        stream.receiveFrame(payload)
    }

    /// A DATA, WINDOW_UPDATE or SETTINGS frame (others are the handler's, and pass by).
    func receive(_ frame: HTTP2Frame, context: ChannelHandlerContext) {
        inRead = true
        let id = frame.streamID
        switch frame.payload {
        case .data(let payload):
            let length = payload.data.readableBytes + (payload.paddingBytes.map { $0 + 1 } ?? 0)
            // Delivered before anything is written: a write makes NIOHTTP2 report the events it
            // holds, among them this frame's own StreamClosedEvent when it ends the stream, which
            // would end the stream before its last frame reached it. (DATA for a stream that
            // ended here, a reset crossing the peer's frames, only counts.)
            if let stream = streams[id] {
                if !payload.endStream { stream.window.received += length }
                deliver(frame.payload, to: stream)
                if streams[id] === stream { giveBackWindow(stream, id: id, context: context) }
            }
            connectionReceived += length
            if connectionReceived >= HTTP2Window.initial / 2 {
                writeWindowUpdate(.rootStream, connectionReceived, context: context)
                connectionReceived = 0
            }
        case .windowUpdate(let increment):
            if id == .rootStream {
                connectionSendWindow += increment
                connectionWindowChanged()
            } else if let stream = streams[id] {
                stream.window.sendWindow += increment
                updateWritability(stream)
            }
        case .settings(.settings(let settings)):
            for setting in settings where setting.parameter == .initialWindowSize {
                let delta = setting.value - peerInitialWindow
                peerInitialWindow = setting.value
                for stream in streams.values {
                    stream.window.sendWindow += delta
                    updateWritability(stream)
                }
            }
        default:
            return
        }
    }

    /// Gives the stream's window back once half of it is used, unless the stream holds its
    /// reads (then `resume` does, when it can take more).
    private func giveBackWindow(_ stream: Stream, id: HTTP2StreamID, context: ChannelHandlerContext) {
        guard stream.window.received >= HTTP2Window.initial / 2 else { return }
        if stream.holdsRead {
            stream.readPending = true
            return
        }
        giveBackReceived(stream, id: id, context: context)
    }

    /// A stream that held its reads can take more: its window is given back.
    func resume(_ stream: Stream, id: HTTP2StreamID, context: ChannelHandlerContext) {
        guard streams[id] === stream, stream.window.received > 0 else { return }
        giveBackReceived(stream, id: id, context: context)
        if !inRead { flush(context: context) }
    }

    private func giveBackReceived(_ stream: Stream, id: HTTP2StreamID, context: ChannelHandlerContext) {
        writeWindowUpdate(id, stream.window.received, context: context)
        stream.window.received = 0
    }

    private func writeWindowUpdate(_ id: HTTP2StreamID, _ increment: Int, context: ChannelHandlerContext) {
        context.write(NIOAny(HTTP2Frame(streamID: id, payload: .windowUpdate(windowSizeIncrement: increment))),
                      promise: nil)
        needsFlush = true
    }

    /// The read is complete: the streams it gave frames hear so, and the WINDOW_UPDATEs it
    /// caused are flushed.
    func readComplete(context: ChannelHandlerContext) {
        inRead = false
        if !reading.isEmpty {
            let done = reading
            reading.removeAll(keepingCapacity: true)
            for stream in done {
                stream.inRead = false
                stream.readComplete()
            }
        }
        if needsFlush { flush(context: context) }
    }

    func flush(context: ChannelHandlerContext) {
        needsFlush = false
        context.flush()
    }

    // MARK: Sending

    /// `length` bytes of `stream`'s DATA are being written: they count against its window and
    /// the connection's.
    func dataWritten(_ length: Int, by stream: Stream) {
        stream.window.sendWindow -= length
        connectionSendWindow -= length
        updateWritability(stream)
        connectionWindowChanged()
    }

    /// Whether `stream` may be given more to send now.
    func isWritable(_ stream: Stream) -> Bool {
        stream.window.sendable && connectionOpen
    }

    private var connectionOpen: Bool { connectionSendable && socketStalledSince == nil }

    /// Recomputes a stream's writability from its window; tells the stream when it changes.
    private func updateWritability(_ stream: Stream) {
        let sendable = HTTP2Window.sendable(window: stream.window.sendWindow, wasSendable: stream.window.sendable)
        guard sendable != stream.window.sendable else { return }
        let before = isWritable(stream)
        stream.window.sendable = sendable
        let after = isWritable(stream)
        if before != after { writabilityChanged(stream, after) }
    }

    /// The connection's window changed for every stream at once.
    private func connectionWindowChanged() {
        let sendable = HTTP2Window.sendable(window: connectionSendWindow, wasSendable: connectionSendable)
        guard sendable != connectionSendable else { return }
        let before = connectionOpen
        connectionSendable = sendable
        allStreamsWritabilityChanged(before: before)
    }

    /// The socket became writable or unwritable (NIO's channel writability).
    func socketWritabilityChanged(_ isWritable: Bool) {
        let before = connectionOpen
        socketStalledSince = isWritable ? nil : .now()
        allStreamsWritabilityChanged(before: before)
    }

    /// Tells each stream whose writability the connection's change flipped.
    private func allStreamsWritabilityChanged(before connectionWasOpen: Bool) {
        let open = connectionOpen
        guard open != connectionWasOpen else { return }
        for stream in streams.values where stream.window.sendable {
            writabilityChanged(stream, open)
        }
    }

    /// A stream's writability flipped: since when it has been unwritable is noted (for the
    /// client side's sweep), and the stream is told.
    private func writabilityChanged(_ stream: Stream, _ isWritable: Bool) {
        stream.window.stalledSince = isWritable ? nil : .now()
        stream.sendWritabilityChanged(isWritable)
    }
}

/// HTTP/2 flow-control sizes (RFC 9113 §6.9) and the writability rule of `HTTP2Streams`.
enum HTTP2Window {
    /// The protocol's initial window, for the connection and, until the peer's SETTINGS say
    /// otherwise, each stream.
    static let initial = 65_535
    /// A stream is unwritable while more than this much of its DATA (or of the connection's)
    /// waits for the peer's window; writable again at `lowWater`.
    static let highWater = 64 * 1024
    static let lowWater = 32 * 1024

    /// Whether a window leaves room to send: what waits beyond it (a negative window) stays
    /// under `highWater`, or, once it did not, has come down to `lowWater`.
    static func sendable(window: Int, wasSendable: Bool) -> Bool {
        -window <= (wasSendable ? highWater : lowWater)
    }
}

/// Streams by ID: open addressing with linear probing, where a stream's first slot is its ID
/// without the lowest bit (one side's streams are all odd or all even and go up by two, so
/// streams open together take neighbouring slots). A lookup is a shift, a mask and a compare
/// or two, where a `Dictionary` hashed each ID with SipHash (~180 instructions a lookup, and a
/// proxied HTTP/2 request looked up its streams about 13 times). At most half full; a removal
/// moves the entries after it back (no tombstones), looking only as far past the hole as an
/// entry has ever sat from its first slot (`maxDisplacement`): streams that follow each other
/// sit in their own slots, and the run after a removed stream on a backend connection with
/// 100 streams open was walked to its end (~1k instructions a request in scenario 11). A table
/// that grew for a burst of streams goes back to its first size when its last stream ends (a
/// connection that once held N streams kept 2N slots until it closed).
struct HTTP2StreamTable<Value: AnyObject> {
    /// 0 marks an empty slot (stream 0 is the connection, never held).
    private var ids: [Int32]
    private var slots: [Value?]
    private var mask: Int
    private let initialSize: Int
    private(set) var count = 0
    /// No entry sits further than this from its first slot (an upper bound: removals do not
    /// lower it; it starts again at 0 when the table empties or is rebuilt).
    private var maxDisplacement = 0

    init(capacity: Int = 16) {
        var size = 8
        while size < capacity * 2 { size *= 2 }
        initialSize = size
        ids = Array(repeating: 0, count: size)
        slots = Array(repeating: nil, count: size)
        mask = size - 1
    }

    /// The slots it has (twice the streams it may hold before it grows).
    var size: Int { ids.count }

    var isEmpty: Bool { count == 0 }

    private func home(_ id: Int32) -> Int { Int(id >> 1) & mask }

    /// The slot holding `id`, or the empty one where it would go.
    private func find(_ id: Int32) -> (index: Int, found: Bool) {
        var i = home(id)
        while true {
            let key = ids[i]
            if key == id { return (i, true) }
            if key == 0 { return (i, false) }
            i = (i + 1) & mask
        }
    }

    subscript(id: HTTP2StreamID) -> Value? {
        get {
            let (i, found) = find(Int32(id))
            return found ? slots[i] : nil
        }
        set {
            if let newValue { insert(newValue, id: Int32(id)) } else { remove(Int32(id)) }
        }
    }

    private mutating func insert(_ value: Value, id: Int32) {
        precondition(id > 0, "stream 0 is the connection")
        var (i, found) = find(id)
        if !found {
            if (count + 1) * 2 > ids.count {
                grow()
                i = find(id).index
            }
            ids[i] = id
            count += 1
            maxDisplacement = max(maxDisplacement, (i &- home(id)) & mask)
        }
        slots[i] = value
    }

    private mutating func remove(_ id: Int32) {
        var (i, found) = find(id)
        guard found else { return }
        count -= 1
        // Entries after the hole that could sit in it (their first slot is not between the
        // hole and themselves) move back, so every lookup still meets its entry before a gap.
        var j = i
        while true {
            j = (j + 1) & mask
            let key = ids[j]
            // No entry from here on sits that far from its first slot: none can fill the hole.
            if key == 0 || (j &- i) & mask > maxDisplacement { break }
            let h = home(key)
            let staysAfterHole = i <= j ? (i < h && h <= j) : (i < h || h <= j)
            if staysAfterHole { continue }
            ids[i] = key
            slots[i] = slots[j]
            i = j
        }
        ids[i] = 0
        slots[i] = nil
        if count == 0 {
            maxDisplacement = 0
            shrink()
        }
    }

    /// Back to the first size, once empty and larger.
    private mutating func shrink() {
        guard ids.count > initialSize else { return }
        ids = Array(repeating: 0, count: initialSize)
        slots = Array(repeating: nil, count: initialSize)
        mask = initialSize - 1
    }

    private mutating func grow() {
        let oldIDs = ids, oldSlots = slots
        ids = Array(repeating: 0, count: oldIDs.count * 2)
        slots = Array(repeating: nil, count: oldIDs.count * 2)
        mask = ids.count - 1
        maxDisplacement = 0
        for (old, id) in oldIDs.enumerated() where id != 0 {
            let i = find(id).index
            ids[i] = id
            slots[i] = oldSlots[old]
            maxDisplacement = max(maxDisplacement, (i &- home(id)) & mask)
        }
    }

    mutating func removeAll() {
        guard count > 0 else { return }
        for i in ids.indices where ids[i] != 0 {
            ids[i] = 0
            slots[i] = nil
        }
        count = 0
        maxDisplacement = 0
        shrink()
    }

    /// Every value held (in no particular order).
    var values: [Value] {
        values(where: { _, _ in true })
    }

    /// The values whose ID and value pass `include`.
    func values(where include: (Int32, Value) -> Bool) -> [Value] {
        guard count > 0 else { return [] }
        var result: [Value] = []
        for i in ids.indices where ids[i] != 0 {
            if let value = slots[i], include(ids[i], value) { result.append(value) }
        }
        return result
    }
}

extension ChannelHandlerContext {
    /// A connection's last GOAWAY (NO_ERROR, naming `lastStreamID`), written and flushed, then the
    /// close once it is out: NIO completes writes in order, so every frame written before it is on
    /// the wire by then (a close at once would drop writes still queued). Both HTTP/2 connection
    /// handlers end a connection this way (`HTTP2ClientConnection` going away, an idle
    /// `HTTP2BackendConnection`).
    func sendGoAwayAndClose(lastStreamID: HTTP2StreamID) {
        let written = eventLoop.makePromise(of: Void.self)
        written.futureResult.assumeIsolated().whenComplete { [self] _ in self.close(promise: nil) }
        writeAndFlush(NIOAny(HTTP2Frame.goAway(lastStreamID: lastStreamID)), promise: written)
    }
}

extension HTTP2Frame {
    /// A GOAWAY with NO_ERROR naming `lastStreamID`: a connection going away gracefully.
    static func goAway(lastStreamID: HTTP2StreamID) -> HTTP2Frame {
        HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: lastStreamID, errorCode: .noError, opaqueData: nil))
    }
}
