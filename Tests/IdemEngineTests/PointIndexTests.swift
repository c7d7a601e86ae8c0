import Testing
@testable import IdemEngine

@Suite struct PointIndexTests {
    /// Hashes of distinct keys, as the builder sees them.
    static func hashes(_ count: Int, prefix: String) -> [UInt64] {
        (0..<count).map { bytes("\(prefix)-\($0)").withUnsafeBytes { Hash64.hash($0) } }
    }

    static func built(_ hashes: [UInt64], dataBlocks: Int) -> PointIndex {
        var builder = PointIndexBuilder()
        for (index, hash) in hashes.enumerated() {
            builder.add(hash: hash, block: index % dataBlocks, restart: index % 7)
        }
        return PointIndex(builder.finish()!, dataBlocks: dataBlocks)!
    }

    @Test func everyKeyFindsItsLocationAndFewOthersMatch() {
        let present = Self.hashes(20_000, prefix: "present")
        let index = Self.built(present, dataBlocks: 300)
        for (ordinal, hash) in present.enumerated() {
            var candidates: [(Int, Int)] = []
            let found = index.firstCandidate(hash: hash) { block, restart in
                candidates.append((block, restart))
                return block == ordinal % 300 && restart == ordinal % 7
            }
            #expect(found, "key \(ordinal): candidates \(candidates)")
        }
        // At most 3/4 full: about 8 slots per miss, a 16-bit tag each.
        let falsePositives = Self.hashes(100_000, prefix: "absent").filter { index.mayContain(hash: $0) }.count
        #expect(falsePositives < 100, "false positives: \(falsePositives) / 100000")
        #expect(index.memoryBytes <= 20_000 * 11 + 8)
    }

    @Test func aZeroTagIsStoredAsOne() {
        let hash: UInt64 = 0x0000_1234_5678_9ABC
        let index = Self.built([hash], dataBlocks: 1)
        #expect(index.firstCandidate(hash: hash) { block, restart in block == 0 && restart == 0 })
    }

    @Test func malformedEncodingsAreRejected() {
        var builder = PointIndexBuilder()
        for (index, hash) in Self.hashes(100, prefix: "k").enumerated() { builder.add(hash: hash, block: index / 10, restart: 0) }
        let good = builder.finish()!
        #expect(PointIndex(good, dataBlocks: 10) != nil)
        // A slot naming a block the table does not have.
        #expect(PointIndex(good, dataBlocks: 9) == nil)
        #expect(PointIndex(Array(good.dropLast()), dataBlocks: 10) == nil)
        #expect(PointIndex([], dataBlocks: 10) == nil)
        // No empty slot: a probe could not end.
        var full: [UInt8] = []
        full.appendFixed32(2)
        full.appendFixed64(1 << 48)
        full.appendFixed64(2 << 48)
        #expect(PointIndex(full, dataBlocks: 1) == nil)
        // A tag of 0 in a used slot.
        var untagged: [UInt8] = []
        untagged.appendFixed32(2)
        untagged.appendFixed64(1)
        untagged.appendFixed64(0)
        #expect(PointIndex(untagged, dataBlocks: 1) == nil)
    }

    @Test func aRestartPastTheBlockIsCorruptionNotACrash() throws {
        var builder = BlockBuilder(restartInterval: 2)
        for index in 0..<5 { builder.add(key: bytes("k\(index)"), value: bytes("v")) }
        let block = try Block(builder.finish())
        #expect(block.restartCount == 3)
        try block.withBytes { raw throws in
            try bytes("k4").withUnsafeBytes { key throws in
                #expect(try BlockIterator.locate(key, in: block, raw: raw, fromRestart: 2)?.exact == true)
                #expect(throws: TableCorruption.self) { try BlockIterator.locate(key, in: block, raw: raw, fromRestart: 3) }
            }
            // From a later restart than the key's: no exact match.
            try bytes("k1").withUnsafeBytes { key throws in
                #expect(try BlockIterator.locate(key, in: block, raw: raw, fromRestart: 2)?.exact == false)
            }
        }
    }

    /// A location that does not fit a slot (more than 65,535 restarts in one
    /// block) leaves the table with a bloom filter, and every key readable.
    @Test func aTableWhoseLocationsDoNotFitFallsBackToTheFilter() throws {
        let fileSystem = SimulatedFileSystem()
        try fileSystem.createDirectory("/t")
        let path = "/t/" + TableFormat.fileName(9)
        var options = TableOptions()
        options.blockSize = 1 << 30
        options.restartInterval = 1
        options.pointIndex = true
        let builder = TableBuilder(file: try fileSystem.openForAppending(path), fileNumber: 9, options: options,
                                   partition: 7, tier: .hot, createdAt: 1)
        let keys = (0..<70_000).map { bytes(String(format: "key-%06d", $0)) }
        for (index, key) in keys.enumerated() {
            try builder.add(VersionedEntry.make(kind: .value, key: key, value: bytes("v"), expiresAt: 0, sequence: UInt64(index + 1)))
        }
        _ = try builder.finish()
        // A cache that holds the one (large) block.
        let table = try TableReader.open(try fileSystem.openForReading(path), fileNumber: 9, cache: BlockCache(capacityBytes: 64 << 20))
        #expect(!table.hasPointIndex)
        for key in keys where key.last! == UInt8(ascii: "7") {
            #expect(try key.withUnsafeBytes { try table.get($0, hash: Hash64.hash($0)) }?.key == key)
        }
        #expect(try bytes("key-x").withUnsafeBytes { try table.get($0, hash: Hash64.hash($0)) } == nil)
    }

    /// Tables written before the point index (format version 1: three
    /// handles in a 52-byte footer) still open and read.
    @Test func aVersionOneTableStillReads() throws {
        let fileSystem = SimulatedFileSystem()
        let entries = TableTests.entries(500, seed: 4)
        _ = try TableTests.build(entries, compression: .lz4, fileSystem: fileSystem, pointIndex: false)
        let current = try fileSystem.readFile("/t/" + TableFormat.fileName(5))
        let footer = Array(current.suffix(64))
        #expect(footer.withUnsafeBytes { $0.loadFixed32(at: 48) } == 2)
        // The same blocks under a version-1 footer.
        var old = Array(current.dropLast(64))
        var oldFooter = Array(footer[0..<36])
        oldFooter.appendFixed32(1)
        oldFooter.append(contentsOf: TableFormat.magic)
        var crc = CRC32C()
        crc.update(oldFooter)
        crc.update(UInt64(5))
        oldFooter.appendFixed32(crc.masked)
        old.append(contentsOf: oldFooter)
        try writeFileAtomically(fileSystem, path: "/t/old.sst", contents: old)
        let table = try TableReader.open(try fileSystem.openForReading("/t/old.sst"), fileNumber: 5,
                                         cache: BlockCache(capacityBytes: 1 << 20))
        #expect(!table.hasPointIndex)
        for entry in entries {
            #expect(try entry.withKey { try table.get($0, hash: Hash64.hash($0)) }?.sequence == entry.sequence)
        }
        #expect(try table.verify() == 500)
    }

    /// A point index whose checksum holds but which sends a key to the
    /// wrong restart is caught by `verify` (what `idem check` runs).
    @Test func verifyCatchesAPointIndexThatMissesAKey() throws {
        let fileSystem = SimulatedFileSystem()
        _ = try TableTests.build(TableTests.entries(400, seed: 8), compression: .none, fileSystem: fileSystem)
        let path = "/t/" + TableFormat.fileName(5)
        var file = try fileSystem.readFile(path)
        let footerStart = file.count - 64
        let (offset, size) = file.withUnsafeBytes { (Int($0.loadFixed64(at: footerStart + 36)), Int($0.loadFixed32(at: footerStart + 44))) }
        // Point every used slot at data block 0, restart 0, and re-seal the block.
        var slots = Array(file[offset..<(offset + size)])
        slots.withUnsafeMutableBytes { raw in
            for index in 0..<((size - 4) / 8) {
                let slot = raw.loadUnaligned(fromByteOffset: 4 + index * 8, as: UInt64.self)
                if slot != 0 { raw.storeBytes(of: slot & 0xFFFF_0000_0000_0000, toByteOffset: 4 + index * 8, as: UInt64.self) }
            }
        }
        file.replaceSubrange(offset..<(offset + size), with: slots)
        let checksum = slots.withUnsafeBytes { TableFormat.blockChecksum($0, kind: .none, fileNumber: 5, offset: UInt64(offset)) }
        file.withUnsafeMutableBytes { $0.storeBytes(of: checksum.littleEndian, toByteOffset: offset + size + 1, as: UInt32.self) }
        try writeFileAtomically(fileSystem, path: path, contents: file)
        let table = try TableReader.open(try fileSystem.openForReading(path), fileNumber: 5, cache: BlockCache(capacityBytes: 0))
        #expect(throws: EngineError.self) { _ = try table.verify() }
    }
}
