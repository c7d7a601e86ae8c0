import Testing
@testable import IdemEngine

/// `BlockIterator.seek` against a sorted array: the seek places entries
/// by their shared-prefix lengths without building their keys, so the
/// keys here are made to share prefixes of every length, to be prefixes of
/// one another, and to differ in their first, middle and last bytes.
@Suite struct BlockTests {
    static func keys(_ count: Int, seed: UInt64) -> [[UInt8]] {
        var generator = SplitMix64(seed: seed)
        var keys = Set<[UInt8]>([[]])
        let alphabet: [UInt8] = [0x00, 0x01, 0x61, 0x62, 0x7F, 0x80, 0xFF]
        while keys.count < count {
            var key = keys.randomElement(using: &generator)!
            // Grow a key already there (a prefix pair), or branch off one.
            if !key.isEmpty && Bool.random(using: &generator) {
                key.removeLast(Int.random(in: 1...key.count, using: &generator))
            }
            for _ in 0..<Int.random(in: 1...12, using: &generator) { key.append(alphabet.randomElement(using: &generator)!) }
            keys.insert(key)
        }
        return keys.sorted { $0.lexicographicallyPrecedes($1) }
    }

    /// Every 50th value is long enough for a two-byte length varint.
    static func value(_ index: Int) -> [UInt8] {
        index % 50 == 0 ? bytes("v\(index)") + [UInt8](repeating: 0x5A, count: 200) : bytes("v\(index)")
    }

    /// With a prefix every key shares, the block's search windows start
    /// past it, and targets may share only part of it.
    @Test(arguments: [1, 2, 16], [[], bytes("tenant:0042:order:")])
    func seekLandsOnTheFirstKeyAtOrAboveTheTarget(restartInterval: Int, sharedPrefix: [UInt8]) throws {
        let keys = Self.keys(600, seed: UInt64(restartInterval)).map { sharedPrefix + $0 }
        var builder = BlockBuilder(restartInterval: restartInterval)
        for (index, key) in keys.enumerated() { builder.add(key: key, value: Self.value(index)) }
        let block = try Block(builder.finish())
        var generator = SplitMix64(seed: 99)
        var targets = keys
        for key in keys {
            targets.append(key + [0])
            targets.append(key + [0xFF, 0xFF])
            if let last = key.last {
                targets.append(Array(key.dropLast()) + [last &+ 1])
                targets.append(Array(key.dropLast()) + [last &- 1, 0xFF])
            }
        }
        for _ in 0..<500 {
            let random = (0..<Int.random(in: 0...10, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            targets.append(random)
            targets.append(Array(sharedPrefix.prefix(Int.random(in: 0...sharedPrefix.count, using: &generator))) + random)
        }
        var iterator = BlockIterator(block)
        for target in targets {
            try target.withUnsafeBytes { try iterator.seek($0) }
            let expected = keys.firstIndex { !$0.lexicographicallyPrecedes(target) }
            guard let expected else {
                #expect(!iterator.isValid, "seek(\(target)) past the end")
                continue
            }
            #expect(iterator.isValid && iterator.key == keys[expected], "seek(\(target))")
            // A point lookup's answer: found exactly when the key is the target
            // (also when the target is a restart key reached from the interval before).
            let located = try block.withBytes { raw in try target.withUnsafeBytes { try BlockIterator.locate($0, in: block, raw: raw) } }
            #expect(located?.exact == (keys[expected] == target), "locate(\(target))")
            #expect(iterator.withValue { Array($0) } == Self.value(expected))
            // The iterator goes on from there as a scan does.
            for next in (expected + 1)..<min(expected + 3, keys.count) {
                try iterator.next()
                #expect(iterator.key == keys[next] && iterator.withValue { Array($0) } == Self.value(next))
            }
        }
    }

    /// A block's checksum catches damage on disk; the restart array is
    /// checked as well, so that a wrong one (a writer's bug) is reported
    /// instead of sending a seek into the wrong entries.
    @Test func aRestartArrayOutOfOrderOrNotOnRestartEntriesIsCorruption() throws {
        var builder = BlockBuilder(restartInterval: 2)
        for index in 0..<6 { builder.add(key: bytes("order:\(index)"), value: Self.value(index)) }
        let good = builder.finish()
        #expect(try Block(good).restartCount == 3)
        let restartsOffset = good.count - 4 - 3 * 4
        let offsets = try good.withUnsafeBytes { raw in
            var offsets: [Int] = []
            var offset = 0
            var keyCount = 0
            while offset < restartsOffset {
                offsets.append(offset)
                let entry = try BlockIterator.decode(raw, at: offset, limit: restartsOffset, keyCount: keyCount)
                keyCount = entry.shared + entry.suffix.count
                offset = entry.value.upperBound
            }
            return offsets
        }
        #expect(offsets.count == 6)
        func withRestart(_ index: Int, at offset: Int) -> [UInt8] {
            var bytes = good
            bytes.storeFixed32(UInt32(offset), at: restartsOffset + index * 4)
            return bytes
        }
        let corrupt: [(String, [UInt8])] = [
            // Entry 1 shares "order:" with entry 0.
            ("at an entry sharing bytes", withRestart(1, at: offsets[1])),
            ("out of order", withRestart(2, at: offsets[2])),
            ("past the entries", withRestart(2, at: restartsOffset)),
            ("first not at 0", withRestart(0, at: offsets[2])),
        ]
        for (what, bytes) in corrupt {
            #expect(throws: TableCorruption.self, "restart \(what)") { try Block(bytes) }
        }
    }

    /// A compressed block read from disk is decompressed into its own
    /// storage, behind room left for its search aid; one whose aid outgrows
    /// the room is copied instead. Either way it is the block built from
    /// the decompressed bytes: same bytes, same seeks.
    @Test(arguments: [1, 4, 16], [CompressionKind.lz4, .zstd])
    func aBlockDecompressedInPlaceIsTheBlockOfItsBytes(restartInterval: Int, kind: CompressionKind) throws {
        let padding = [UInt8](repeating: 0x78, count: 40)  // compressible values
        for sharedPrefix in [[], bytes("tenant:0042:order:")] {
            let keys = Self.keys(300, seed: UInt64(restartInterval)).map { sharedPrefix + $0 }
            var builder = BlockBuilder(restartInterval: restartInterval)
            for (index, key) in keys.enumerated() { builder.add(key: key, value: Self.value(index) + padding) }
            let raw = builder.finish()
            let copied = try Block(raw)
            let roomy = 4096  // more than 300 restarts need
            for room in [roomy, 0] {
                let decompressed = try Self.decompress(raw, kind: kind, room: room)
                #expect(decompressed.withBytes { Array($0) } == raw)
                #expect(decompressed.restartCount == copied.restartCount && decompressed.restartsOffset == copied.restartsOffset)
                if room == 0 {
                    #expect(decompressed.memoryBytes == copied.memoryBytes, "no room: copied to its own size")
                } else {
                    #expect(decompressed.memoryBytes == raw.count + roomy + 32, "decompressed in place, behind the room")
                }
                var expected = BlockIterator(copied), actual = BlockIterator(decompressed)
                for target in keys + keys.map({ $0 + [0] }) + [[], bytes("tenant:"), [0xFF]] {
                    try target.withUnsafeBytes { target in
                        try expected.seek(target)
                        try actual.seek(target)
                    }
                    #expect(actual.isValid == expected.isValid && actual.key == expected.key, "seek(\(target))")
                }
            }
        }
        // Damage the compression does not hide: a bad restart array, a cut payload.
        var builder = BlockBuilder(restartInterval: 4)
        for index in 10..<30 { builder.add(key: bytes("order:\(index)"), value: Self.value(index) + padding) }
        let good = builder.finish()
        var badRestarts = good
        badRestarts.storeFixed32(UInt32(badRestarts.count), at: badRestarts.count - 8)
        #expect(throws: TableCorruption.self) { try Self.decompress(badRestarts, kind: kind, room: 256) }
        // A middle restart on an entry that shares bytes with the one before:
        // found where the restart keys are decoded into windows, in place.
        var sharingRestart = good
        let (restartsOffset, second) = try good.withUnsafeBytes { raw in
            let restartsOffset = raw.count - 4 - Int(raw.loadFixed32(at: raw.count - 4)) * 4
            return (restartsOffset, try BlockIterator.decode(raw, at: 0, limit: restartsOffset, keyCount: 0).value.upperBound)
        }
        sharingRestart.storeFixed32(UInt32(second), at: restartsOffset + 4)
        #expect(throws: TableCorruption.self) { try Block(sharingRestart) }
        #expect(throws: TableCorruption.self) { try Self.decompress(sharingRestart, kind: kind, room: 256) }
        let (stored, used) = BlockCompression.compress(good, kind: kind, zstdLevel: 3)
        #expect(used == kind)
        #expect(throws: TableCorruption.self) {
            try stored.dropLast(3).withUnsafeBytes { stored in
                let payload = try BlockCompression.compressedPayload(stored)
                _ = try Block(decompressing: payload.source, kind: kind, size: payload.size, room: 256)
            }
        }
    }

    private static func decompress(_ raw: [UInt8], kind: CompressionKind, room: Int) throws -> Block {
        let (stored, used) = BlockCompression.compress(raw, kind: kind, zstdLevel: 3)
        try #require(used == kind, "the block compresses")
        return try stored.withUnsafeBytes { stored in
            let payload = try BlockCompression.compressedPayload(stored)
            return try Block(decompressing: payload.source, kind: kind, size: payload.size, room: room)
        }
    }

    @Test func commonPrefixLengthCountsAcrossWordBoundaries() {
        for length in 0..<20 {
            let base = (0..<length).map { UInt8($0 * 7 + 1) }
            for position in 0...length {
                var other = base
                if position < length { other[position] ^= 0x10 } else { other.append(3) }
                let common = base.withUnsafeBytes { a in other.withUnsafeBytes { ByteOrder.commonPrefixLength(a, $0) } }
                #expect(common == position, "length \(length), first difference at \(position)")
            }
        }
    }
}
