#if canImport(Glibc)
import Glibc
#endif

/// One frame as a raw HTTP/2 client reads it.
struct RawFrame {
    var type: UInt8
    var flags: UInt8
    var stream: UInt32
    var payload: [UInt8]

    /// DATA or HEADERS with END_STREAM.
    var endsStream: Bool { type <= 0x01 && flags & 0x01 != 0 }
    /// A WINDOW_UPDATE's increment (31 bits after a reserved one).
    var increment: Int { Int(errorCode & 0x7FFF_FFFF) }
    /// A RST_STREAM's error code (its whole payload).
    var errorCode: UInt32 { payload.prefix(4).reduce(0) { $0 << 8 | UInt32($1) } }
}

extension RawHTTPClient {
    /// The next frame; nil when none began within the client's read timeout. A frame whose
    /// header has come is read whole (its payload follows at once; a timeout mid-header keeps
    /// the bytes read, and the next call goes on from them).
    func readFrame() throws -> RawFrame? {
        let header: [UInt8]
        do { header = try readBytes(9) } catch ClientError.timeout { return nil }
        let length = Int(header[0]) << 16 | Int(header[1]) << 8 | Int(header[2])
        let stream = header[5...8].reduce(0) { $0 << 8 | UInt32($1) } & 0x7FFF_FFFF
        for _ in 0..<50 {
            do {
                return RawFrame(type: header[3], flags: header[4], stream: stream, payload: try readBytes(length))
            } catch ClientError.timeout {
                continue
            }
        }
        throw ClientError.timeout
    }
}

extension RawHTTPClient {
    /// The server side of a new HTTP/2 connection up to its first request (a test's raw backend).
    /// Reads the client preface, sends `settings`, and reads frames until the first request's
    /// HEADERS has come (and, when `acknowledged`, the ACK of those settings too: the client
    /// applies them before it acknowledges them). False on a read failure, or after 16 frames.
    func awaitRequest(settings: [UInt8] = RawHTTP2.emptySettings, acknowledged: Bool = false) -> Bool {
        guard (try? readBytes(24)) != nil, (try? send(settings)) != nil else { return false }
        var request = false, acknowledgement = !acknowledged
        for _ in 0..<16 {
            guard let header = try? readBytes(9),
                  (try? readBytes(Int(header[0]) << 16 | Int(header[1]) << 8 | Int(header[2]))) != nil else { return false }
            if header[3] == 0x01 { request = true }
            if header[3] == 0x04 && header[4] & 0x1 != 0 { acknowledgement = true }
            if request && acknowledgement { return true }
        }
        return false
    }

    /// Reads frames until `count` more HEADERS frames have come (false on a read failure, or
    /// after 64 frames).
    func awaitHeaders(_ count: Int) -> Bool {
        var seen = 0
        for _ in 0..<64 {
            guard let header = try? readBytes(9),
                  (try? readBytes(Int(header[0]) << 16 | Int(header[1]) << 8 | Int(header[2]))) != nil else { return false }
            if header[3] == 0x01 { seen += 1 }
            if seen == count { return true }
        }
        return false
    }
}
