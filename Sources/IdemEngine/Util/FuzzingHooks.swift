/// Entry points for the libFuzzer targets in Fuzz/, which may only use
/// public API: each feeds arbitrary bytes to one reader of untrusted input
/// and must return (an error is a fine outcome), never crash or hang.
@_spi(Fuzzing)
public enum FuzzingHooks {
    /// `bytes` as table file number 1: open it, look up some keys, walk it.
    public static func readTable(_ bytes: UnsafeRawBufferPointer) {
        let fileSystem = SimulatedFileSystem()
        guard let file = try? fileSystem.openForAppending("/t.sst"), (try? file.append(bytes)) != nil,
              let readable = try? fileSystem.openForReading("/t.sst"),
              let table = try? TableReader.open(readable, fileNumber: 1, cache: BlockCache(capacityBytes: 1 << 20)) else { return }
        _ = try? table.verify()
        for probe in [table.properties.smallestKey, table.properties.largestKey, [0x00], [0xFF, 0xFF]] {
            _ = try? probe.withUnsafeBytes { try table.get($0, hash: Hash64.hash($0)) }
        }
        var iterator = table.makeIterator()
        var steps = 0
        try? iterator.seekToFirst()
        while iterator.isValid && steps < 100_000 {
            _ = try? iterator.entry()
            do { try iterator.next() } catch { break }
            steps += 1
        }
    }

    /// `bytes` as the live manifest (`MANIFEST-…01`, named by `CURRENT`).
    public static func readManifest(_ bytes: UnsafeRawBufferPointer) {
        let fileSystem = SimulatedFileSystem()
        let name = LogFormat.Kind.manifest.fileName(1)
        try? writeFileAtomically(fileSystem, path: "/" + name, contents: Array(bytes))
        try? writeFileAtomically(fileSystem, path: "/CURRENT", contents: Array((name + "\n").utf8))
        _ = try? ManifestState.read(fileSystem: fileSystem, directory: "/")
    }

    /// A valid table holding `count` small entries, for seed corpora; with
    /// a point index in place of the bloom filter when `pointIndex`.
    public static func sampleTable(count: Int, pointIndex: Bool = false) -> [UInt8] {
        let fileSystem = SimulatedFileSystem()
        guard let file = try? fileSystem.openForAppending("/t.sst") else { return [] }
        var options = TableOptions()
        options.blockSize = 256
        options.pointIndex = pointIndex
        let builder = TableBuilder(file: file, fileNumber: 1, options: options, partition: 3_600_000, tier: .hot, createdAt: 1)
        for index in 0..<count {
            let key = Array("key-\(1000 + index)".utf8)
            let entry = VersionedEntry.make(kind: index % 5 == 0 ? .tombstone : .value, key: key,
                                            value: index % 5 == 0 ? [] : Array("value \(index)".utf8),
                                            expiresAt: index % 2 == 0 ? 0 : 1_700_000_000_000, sequence: UInt64(index + 1))
            try? builder.add(entry)
        }
        _ = try? builder.finish()
        return (try? fileSystem.readFile("/t.sst")) ?? []
    }

    /// A valid manifest with one snapshot edit, for seed corpora.
    public static func sampleManifest() -> [UInt8] {
        let fileSystem = SimulatedFileSystem()
        guard let writer = try? LogWriter(fileSystem: fileSystem, directory: "/", kind: .manifest, segmentNumber: 1,
                                          segmentSizeLimit: .max) else { return [] }
        var edit = VersionEdit(logNumber: 4, nextFileNumber: 9, lastSequence: 120, partitionWidth: 3_600_000)
        edit.addedFiles = [FileMetadata(number: 7, partitionEnd: 7_200_000, tier: .hot, size: 4096, entries: 10, tombstones: 1,
                                        smallestKey: Array("a".utf8), largestKey: Array("z".utf8), minSequence: 1,
                                        maxSequence: 120, minExpiry: 3_600_001, maxExpiry: 7_200_000, createdAt: 5)]
        edit.deletedFiles = [3]
        var buffer = LogBuffer()
        buffer.appendRecord(type: .versionEdit) { edit.encode(into: &$0) }
        try? writer.append(&buffer)
        return (try? fileSystem.readFile("/" + LogFormat.Kind.manifest.fileName(1))) ?? []
    }
}
