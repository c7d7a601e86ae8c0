import Testing
@testable import IdemEngine

@Suite struct TableTests {
    static func entries(_ count: Int, seed: UInt64) -> [VersionedEntry] {
        var generator = SplitMix64(seed: seed)
        var keys = Set<[UInt8]>()
        while keys.count < count {
            keys.insert(bytes("tenant-\(Int.random(in: 0..<50, using: &generator)):") +
                        (0..<Int.random(in: 1...12, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) })
        }
        return keys.sorted { $0.lexicographicallyPrecedes($1) }.enumerated().map { index, key in
            let tombstone = index % 17 == 0
            let value = tombstone ? [] : bytes(String(repeating: "{\"status\":\(index)}", count: index % 5 + 1))
            return VersionedEntry.make(kind: tombstone ? .tombstone : .value, key: key, value: value,
                                       expiresAt: index % 3 == 0 ? 0 : 1_700_000_000_000 + Int64(index), sequence: UInt64(index + 1))
        }
    }

    static func build(_ entries: [VersionedEntry], compression: CompressionKind, fileSystem: SimulatedFileSystem,
                      number: UInt64 = 5, pointIndex: Bool = true) throws -> TableReader {
        try fileSystem.createDirectory("/t")
        let path = "/t/" + TableFormat.fileName(number)
        var options = TableOptions()
        options.compression = compression
        options.blockSize = 1024
        options.pointIndex = pointIndex
        let builder = TableBuilder(file: try fileSystem.openForAppending(path), fileNumber: number, options: options,
                                   partition: 7, tier: .hot, createdAt: 42)
        for entry in entries { try builder.add(entry) }
        let properties = try builder.finish()
        #expect(properties.entries == UInt64(entries.count))
        return try TableReader.open(try fileSystem.openForReading(path), fileNumber: number,
                                    cache: BlockCache(capacityBytes: 1 << 20))
    }

    @Test(arguments: CompressionKind.allCases, [false, true])
    func roundTripsEveryEntry(compression: CompressionKind, pointIndex: Bool) throws {
        let entries = Self.entries(3000, seed: 11)
        let table = try Self.build(entries, compression: compression, fileSystem: SimulatedFileSystem(), pointIndex: pointIndex)
        #expect(table.hasPointIndex == pointIndex)
        #expect(table.properties.partition == 7 && table.properties.createdAt == 42)
        #expect(table.properties.dataBlocks > 10)
        #expect(table.properties.smallestKey == entries.first!.key && table.properties.largestKey == entries.last!.key)
        for entry in entries {
            let found = try entry.withKey { try table.get($0, hash: Hash64.hash($0)) }
            #expect(found?.value == entry.value && found?.sequence == entry.sequence)
            #expect(found?.kind == entry.kind && found?.expiresAt == entry.expiresAt)
        }
        // Keys just after each stored key are absent, and so are keys
        // outside the table's range.
        for entry in entries.prefix(300) {
            let probe = entry.key + [0]
            #expect(try probe.withUnsafeBytes { try table.get($0, hash: Hash64.hash($0)) } == nil)
            let cached = try probe.withUnsafeBytes { try table.getCached($0, hash: Hash64.hash($0)) }
            #expect(cached != nil && cached! == nil)
        }
        for probe in [bytes("a"), bytes("zzz")] {
            #expect(try probe.withUnsafeBytes { try table.get($0, hash: Hash64.hash($0)) } == nil)
        }
        #expect(try table.verify() == UInt64(entries.count))
        // Seek lands on the first key >= target, across block boundaries.
        var iterator = table.makeIterator()
        for index in stride(from: 0, to: entries.count - 1, by: 97) {
            try iterator.seek(entries[index].key + [0])
            #expect(iterator.key == entries[index + 1].key)
        }
        try iterator.seek(entries.last!.key + [0])
        #expect(!iterator.isValid)
    }

    @Test func bloomFilterRejectsMostAbsentKeys() {
        var builder = BloomFilterBuilder(bitsPerKey: 20)
        for index in 0..<10_000 { bytes("present-\(index)").withUnsafeBytes { builder.add($0) } }
        let filter = BloomFilter(builder.finish())!
        for index in 0..<10_000 { #expect(bytes("present-\(index)").withUnsafeBytes { filter.mayContain($0) }) }
        var falsePositives = 0
        for index in 0..<100_000 where bytes("absent-\(index)").withUnsafeBytes({ filter.mayContain($0) }) { falsePositives += 1 }
        // 20 bits/key, blocked: expected ≈ 0.01 %; allow 10× for variance.
        print("bloom false positives: \(falsePositives) / 100000"); #expect(falsePositives < 100, "false positives: \(falsePositives) / 100000")
    }

    @Test func everyCorruptedByteIsCaughtWithTheFileName() throws {
        let entries = Self.entries(200, seed: 3)
        let fileSystem = SimulatedFileSystem()
        _ = try Self.build(entries, compression: .lz4, fileSystem: fileSystem)
        let path = "/t/" + TableFormat.fileName(5)
        let size = fileSystem.fileSize(path)!
        var generator = SplitMix64(seed: 5)
        for _ in 0..<150 {
            let offset = Int.random(in: 0..<size, using: &generator)
            let mask = UInt8.random(in: 1...255, using: &generator)
            fileSystem.corrupt(path, at: offset, xor: mask)
            // xor-ing the same mask again restores the byte for the next round.
            defer { fileSystem.corrupt(path, at: offset, xor: mask) }
            do {
                let table = try TableReader.open(try fileSystem.openForReading(path), fileNumber: 5,
                                                 cache: BlockCache(capacityBytes: 0))
                _ = try table.verify()
                Issue.record("corruption at \(offset) not detected")
            } catch {
                guard case .corruption(let file, _, _) = error as? EngineError else {
                    Issue.record("unexpected error \(error)")
                    continue
                }
                #expect(file == path)
            }
        }
    }

    @Test func wrongFileNumberIsRejected() throws {
        let fileSystem = SimulatedFileSystem()
        _ = try Self.build(Self.entries(10, seed: 1), compression: .none, fileSystem: fileSystem)
        #expect(throws: EngineError.self) {
            _ = try TableReader.open(try fileSystem.openForReading("/t/" + TableFormat.fileName(5)), fileNumber: 6,
                                     cache: BlockCache(capacityBytes: 0))
        }
    }

    @Test func compressionShrinksJSONAndRoundTrips() throws {
        let raw = Array(String(repeating: "{\"id\":\"abc\",\"status\":\"ok\"}", count: 100).utf8)
        for kind in [CompressionKind.lz4, .zstd] {
            let (stored, used) = BlockCompression.compress(raw, kind: kind, zstdLevel: 3)
            #expect(used == kind && stored.count < raw.count / 4)
            #expect(try stored.withUnsafeBytes { try BlockCompression.decompress($0, kind: kind) } == raw)
        }
        // Incompressible input is stored raw.
        var generator = SplitMix64(seed: 1)
        let noise = (0..<4096).map { _ in UInt8.random(in: 0...255, using: &generator) }
        #expect(BlockCompression.compress(noise, kind: .lz4, zstdLevel: 3).1 == CompressionKind.none)
    }
}
