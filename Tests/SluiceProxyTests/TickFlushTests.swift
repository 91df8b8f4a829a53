import NIOCore
import NIOEmbedded
import Testing
@testable import SluiceProxy

/// `TickFlush` passes a tick's flushes on once, after the tick's other work, and never lets a
/// close drop what was written before it. (End to end, every HTTP/2 test runs through it.)
struct TickFlushTests {
    private static func channel(coalescesWrites: Bool = false) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(TickFlush(coalescesWrites: coalescesWrites))
        return channel
    }

    private static func outbound(_ channel: EmbeddedChannel) throws -> [ByteBuffer] {
        var out: [ByteBuffer] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { out.append(buffer) }
        return out
    }

    /// Whether a write has completed (succeeded or failed).
    private final class Done {
        var value = false
    }

    private static func write(_ text: String, to channel: EmbeddedChannel) -> Done {
        let done = Done()
        let promise = channel.embeddedEventLoop.makePromise(of: Void.self)
        promise.futureResult.assumeIsolated().whenSuccess { done.value = true }
        channel.writeAndFlush(ByteBuffer(string: text), promise: promise)
        return done
    }

    @Test func flushesOfOneTickGoOutTogetherAtItsEnd() throws {
        let channel = try Self.channel()
        let written = ["one", "two", "three"].map { Self.write($0, to: channel) }
        // Flushed by the writers, held by the handler: nothing has reached the socket yet.
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
        #expect(written.allSatisfy { !$0.value })
        channel.embeddedEventLoop.run()
        var out: [String] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { out.append(String(buffer: buffer)) }
        #expect(out == ["one", "two", "three"])
        #expect(written.allSatisfy { $0.value })
        // The next tick's flush is held again.
        let later = Self.write("four", to: channel)
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
        channel.embeddedEventLoop.run()
        #expect(try channel.readOutbound(as: ByteBuffer.self).map { String(buffer: $0) } == "four")
        #expect(later.value)
        _ = try channel.finish()
    }

    @Test func aCloseFlushesWhatWasWrittenBeforeIt() throws {
        let channel = try Self.channel()
        let written = Self.write("goaway", to: channel)
        channel.close(promise: nil)
        // Written before the close, and written (a write still held would have failed).
        #expect(written.value)
        #expect(try channel.readOutbound(as: ByteBuffer.self).map { String(buffer: $0) } == "goaway")
        channel.embeddedEventLoop.run() // the queued task finds nothing left to flush
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
    }

    /// A tick's small writes leave as one buffer (over TLS: one record, not one per frame), in
    /// order, and every writer's promise completes when it is written.
    @Test func aTicksSmallWritesLeaveAsOneBuffer() throws {
        let channel = try Self.channel(coalescesWrites: true)
        let written = ["head", "er", "data"].map { Self.write($0, to: channel) }
        #expect(try Self.outbound(channel).isEmpty)
        channel.embeddedEventLoop.run()
        #expect(try Self.outbound(channel).map { String(buffer: $0) } == ["headerdata"])
        #expect(written.allSatisfy { $0.value })
        _ = try channel.finish()
    }

    /// A large write (a big DATA payload) is not copied: what was gathered before it goes
    /// first, then it, then what follows; gathered bytes go on at a TLS record's size.
    @Test func largeWritesPassThroughInOrderAndGatheringStopsAtARecord() throws {
        let channel = try Self.channel(coalescesWrites: true)
        let large = String(repeating: "L", count: TickFlush.passThrough)
        _ = ["a", large, "b"].map { Self.write($0, to: channel) }
        channel.embeddedEventLoop.run()
        #expect(try Self.outbound(channel).map { String(buffer: $0) } == ["a", large, "b"])

        let piece = String(repeating: "p", count: TickFlush.passThrough - 1)
        let count = TickFlush.recordBytes / piece.utf8.count + 2
        _ = (0..<count).map { _ in Self.write(piece, to: channel) }
        channel.embeddedEventLoop.run()
        let sizes = try Self.outbound(channel).map(\.readableBytes)
        #expect(sizes.reduce(0, +) == count * piece.utf8.count)
        #expect(sizes.count == 2 && sizes[0] >= TickFlush.recordBytes, "\(sizes)")
        _ = try channel.finish()
    }

    /// Gathered writes not flushed when the connection closes fail as unflushed writes do
    /// (their promises complete); flushed ones go out first.
    @Test func aCloseCompletesEveryGatheredWrite() throws {
        let channel = try Self.channel(coalescesWrites: true)
        let flushed = Self.write("goaway", to: channel)
        let promise = channel.embeddedEventLoop.makePromise(of: Void.self)
        let unflushed = Done()
        promise.futureResult.assumeIsolated().whenComplete { _ in unflushed.value = true }
        channel.write(ByteBuffer(string: "late"), promise: promise)
        channel.close(promise: nil)
        #expect(flushed.value)
        #expect(unflushed.value)
        #expect(try Self.outbound(channel).map { String(buffer: $0) }.joined().hasPrefix("goaway"))
    }
}
