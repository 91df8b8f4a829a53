import NIOCore
import Testing
@testable import SluiceProxy

/// Mutation fuzzing of `HTTP1Parser`: thousands of damaged messages, each parsed from one read
/// and again one byte per read. The parser must never crash (debug builds check every buffer
/// access), never loop, and give the same verdict both ways: the same refusal, or the same
/// events with the same bytes left over. Deterministic (a fixed seed), so a failure reproduces.
@Suite struct HTTP1ParserFuzzTests {
    /// What a parse produced: its events (bodies joined) and leftover bytes, or its refusal.
    enum Outcome: Equatable {
        case parsed([String], leftover: [UInt8])
        case refused(HTTP1Parser.Failure)
    }

    static func describe(_ event: HTTP1Parser.Event) -> String {
        switch event {
        case .requestHead(let head):
            "request \(head.method.rawValue) \(head.uri) \(head.version) \(head.fields.headers.map { "\($0.name)=\($0.value)" })"
        case .responseHead(let head):
            "response \(head.status.code) \(head.version) \(head.fields.headers.map { "\($0.name)=\($0.value)" })"
        case .body(let bytes):
            "body " + String(decoding: bytes.readableBytesView, as: UTF8.self)
        case .end(let trailers):
            "end \(trailers.map { $0.map { "\($0.name)=\($0.value)" } } ?? [])"
        }
    }

    static func outcome(_ input: [UInt8], kind: HTTP1Parser.Kind, reads: [[UInt8]]) -> Outcome {
        var parser = HTTP1Parser(kind: kind, maxHeadBytes: 256)
        var buffer = ByteBuffer()
        var events: [String] = []
        do throws(HTTP1Parser.Failure) {
            for read in reads {
                buffer.writeBytes(read)
                var steps = 0
                while let event = try parser.next(from: &buffer) {
                    let text = describe(event)
                    if text.hasPrefix("body "), let last = events.last, last.hasPrefix("body ") {
                        events[events.count - 1] = last + text.dropFirst(5)
                    } else {
                        events.append(text)
                    }
                    steps += 1
                    if steps > 10_000 { return .parsed(["(runaway)"], leftover: []) }
                }
            }
        } catch {
            return .refused(error)
        }
        return .parsed(events, leftover: Array(buffer.readableBytesView))
    }

    static let requests: [String] = [
        "GET /a?b=1 HTTP/1.1\r\nHost: x\r\nCookie: uid=1; beta=0\r\n\r\n",
        "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nHost: y\r\n\r\n",
        "PUT /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
        "\r\nGET / HTTP/1.0\nHost: x\n\n",
    ]
    static let responses: [String] = [
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nServer: t\r\n\r\nok",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nX: y\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\nFRAME",
    ]

    /// splitmix64: the test's own generator, so every run sees the same inputs.
    struct Mix {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    }

    static let interesting: [UInt8] = Array("\r\n:; \t0123456789aAfFzZ-,\"\u{7F}".utf8) + [0, 0x80, 0xFF]

    static func mutate(_ seed: [UInt8], _ mix: inout Mix) -> [UInt8] {
        var bytes = seed
        for _ in 0..<(1 + mix.below(4)) {
            guard !bytes.isEmpty else { break }
            let at = mix.below(bytes.count)
            switch mix.below(5) {
            case 0: bytes[at] = interesting[mix.below(interesting.count)]
            case 1: bytes.insert(interesting[mix.below(interesting.count)], at: at)
            case 2: bytes.remove(at: at)
            case 3: bytes[at] ^= UInt8(truncatingIfNeeded: 1 << mix.below(8))
            default:
                let length = min(1 + mix.below(16), bytes.count - at)
                bytes.insert(contentsOf: bytes[at..<(at + length)], at: at)
            }
        }
        return bytes
    }

    /// 5,000 mutants of each kind: one read, byte-by-byte reads and two reads split at a random
    /// point agree on every one.
    @Test(arguments: [HTTP1Parser.Kind.request, .response])
    func damagedMessagesGetTheSameVerdictHoweverTheyAreRead(kind: HTTP1Parser.Kind) {
        var mix = Mix(state: kind == .request ? 1 : 2)
        let seeds = (kind == .request ? Self.requests : Self.responses).map { Array($0.utf8) }
        var refused = 0
        for round in 0..<5000 {
            let input = Self.mutate(seeds[round % seeds.count], &mix)
            let whole = Self.outcome(input, kind: kind, reads: [input])
            let trickled = Self.outcome(input, kind: kind, reads: input.map { [$0] })
            // Two reads split at a random point: the first may end inside a head (parsed in one
            // pass when whole, searched incrementally when not).
            let cut = mix.below(input.count + 1)
            let split = Self.outcome(input, kind: kind, reads: [Array(input[..<cut]), Array(input[cut...])])
            #expect(whole == trickled, "input \(String(decoding: input, as: UTF8.self).debugDescription)")
            #expect(whole == split, "input \(String(decoding: input, as: UTF8.self).debugDescription) cut at \(cut)")
            if whole != trickled || whole != split { return }
            if case .refused = whole { refused += 1 }
        }
        // The mutations reach both outcomes (otherwise the test would be exercising little).
        #expect(refused > 250 && refused < 4750, "\(refused) of 5000 refused")
    }
}
