import NIOCore
import NIOEmbedded
import Testing
@testable import SluiceProxy

/// `TickFlush` passes a tick's flushes on once, after the tick's other work, and never lets a
/// close drop what was written before it. (End to end, every HTTP/2 test runs through it.)
struct TickFlushTests {
    private static func channel() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(TickFlush())
        return channel
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
}
