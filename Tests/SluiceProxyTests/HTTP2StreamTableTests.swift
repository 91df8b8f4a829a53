import NIOHTTP2
import Testing
@testable import SluiceProxy

/// `HTTP2StreamTable`, the streams-by-ID table of the HTTP/2 connection handlers, against a
/// `Dictionary` doing the same operations.
struct HTTP2StreamTableTests {
    final class Box {
        let id: Int32
        init(_ id: Int32) { self.id = id }
    }

    /// Checks every ID in `model` (and a few absent ones) against `table`.
    private func expectSame(_ table: HTTP2StreamTable<Box>, _ model: [Int32: Box], absent: [Int32]) {
        #expect(table.count == model.count)
        #expect(table.isEmpty == model.isEmpty)
        for (id, box) in model { #expect(table[HTTP2StreamID(id)] === box) }
        for id in absent where model[id] == nil { #expect(table[HTTP2StreamID(id)] == nil) }
        #expect(Set(table.values.map(\.id)) == Set(model.keys))
    }

    /// A connection's life: streams opened in order (odd IDs, as a client's), ended in another
    /// order, some long-lived, so the table grows, wraps around its end and closes its gaps.
    @Test func matchesADictionaryThroughOpensAndEndsInAnyOrder() {
        var table = HTTP2StreamTable<Box>()
        var model: [Int32: Box] = [:]
        var next: Int32 = 1
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func random(_ bound: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(bound))
        }
        for step in 0..<20_000 {
            // Between 0 and ~60 streams open, more opens than ends early on.
            let open = model.count < 60 && (model.isEmpty || random(100) < (step < 10_000 ? 55 : 45))
            if open {
                let box = Box(next)
                table[HTTP2StreamID(next)] = box
                model[next] = box
                next += 2
            } else {
                let keys = Array(model.keys)
                let id = keys[random(keys.count)]
                table[HTTP2StreamID(id)] = nil
                model[id] = nil
            }
            if step % 97 == 0 { expectSame(table, model, absent: [next, next - 2, 3, 0x7FFF_FFFF]) }
        }
        expectSame(table, model, absent: [next])
        table.removeAll()
        expectSame(table, [:], absent: [1, next - 2])
    }

    /// IDs in no order, many sharing first slots, opened and ended at random: the removals stop
    /// at the farthest any entry has sat from its first slot, and every entry is still found.
    @Test func randomIDsThatCollideStayFoundThroughRemovals() {
        var table = HTTP2StreamTable<Box>(capacity: 8)
        var model: [Int32: Box] = [:]
        var state: UInt64 = 0x2545_F491_4F6C_DD1D
        func random(_ bound: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(bound))
        }
        for step in 0..<20_000 {
            if model.count < 40 && (model.isEmpty || random(2) == 0) {
                let id = Int32(2 * random(2_048) + 1)
                let box = Box(id)
                table[HTTP2StreamID(id)] = box
                model[id] = box
            } else {
                let keys = Array(model.keys)
                let id = keys[random(keys.count)]
                table[HTTP2StreamID(id)] = nil
                model[id] = nil
            }
            if step % 53 == 0 { expectSame(table, model, absent: [Int32(2 * random(2_048) + 1)]) }
        }
        expectSame(table, model, absent: [1, 4_095])
    }

    /// IDs whose first slots collide (they differ in bits above the table's size) and entries
    /// that wrap from the last slot to the first: removing any one leaves the others found.
    @Test func collidingAndWrappingEntriesSurviveEachRemoval() {
        let size: Int32 = 32  // the table's slots for capacity 16
        // First slots 31 (the last), 31, 31, 0, 0: the chain wraps around to slots 0–3.
        let ids: [Int32] = [63, 63 + 2 * size, 63 + 4 * size, 1, 1 + 2 * size]
        for removed in ids.indices {
            var table = HTTP2StreamTable<Box>(capacity: 16)
            var model: [Int32: Box] = [:]
            for id in ids {
                let box = Box(id)
                table[HTTP2StreamID(id)] = box
                model[id] = box
            }
            table[HTTP2StreamID(ids[removed])] = nil
            model[ids[removed]] = nil
            expectSame(table, model, absent: [ids[removed], 3, 65 + 2 * size])
        }
    }

    /// Replacing a stream's value keeps one entry.
    @Test func settingAnIDAgainReplacesItsValue() {
        var table = HTTP2StreamTable<Box>()
        let first = Box(5), second = Box(5)
        table[5] = first
        table[5] = second
        #expect(table.count == 1)
        #expect(table[5] === second)
        table[7] = nil
        #expect(table.count == 1)
    }

    /// A burst of 300 streams grows the table; once they have all ended it is back to its first
    /// size, and serves the next streams as before (emptied one by one, or all at once).
    @Test func anEmptiedTableGoesBackToItsFirstSize() {
        for allAtOnce in [false, true] {
            var table = HTTP2StreamTable<Box>()
            let first = table.size
            let ids = (0..<300).map { Int32(2 * $0 + 1) }
            for id in ids { table[HTTP2StreamID(id)] = Box(id) }
            #expect(table.size >= 600)
            if allAtOnce {
                table.removeAll()
            } else {
                for id in ids.reversed() { table[HTTP2StreamID(id)] = nil }
            }
            #expect(table.size == first)
            var model: [Int32: Box] = [:]
            for id in [Int32(601), 603, 605] {
                model[id] = Box(id)
                table[HTTP2StreamID(id)] = model[id]
            }
            expectSame(table, model, absent: [1, 599, 607])
        }
    }
}
