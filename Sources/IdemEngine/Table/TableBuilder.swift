/// How tables are built; hot and cold tiers use different settings.
struct TableOptions {
    var blockSize = 8 << 10
    var compression: CompressionKind = .lz4
    var zstdLevel: Int32 = 3
    var bloomBitsPerKey = 20
    var restartInterval = 16
    /// Write a point index (`PointIndex`) behind the bloom filter: faster
    /// point lookups that find their key, for ~11 more bytes of memory per key.
    var pointIndex = false
}

/// Writes one SSTable (format in `TableFormat`) from entries in strictly
/// increasing key order. The caller owns the file's name: it writes to a
/// temporary name and renames once `finish` has synced the file.
///
/// Used by one thread at a time (the flush or compaction that owns it), so
/// the builder's state is exempt from the runtime's exclusivity checks,
/// which would otherwise run on every field access of every entry added.
final class TableBuilder {
    private let file: any WritableFile
    private let fileNumber: UInt64
    private let options: TableOptions
    @exclusivity(unchecked) private var dataBlock: BlockBuilder
    @exclusivity(unchecked) private var indexBlock = BlockBuilder(restartInterval: 1)
    @exclusivity(unchecked) private var filter: BloomFilterBuilder
    @exclusivity(unchecked) private var pointIndex: PointIndexBuilder?
    @exclusivity(unchecked) private(set) var properties = TableProperties()
    @exclusivity(unchecked) private var lastEntry: VersionedEntry?

    init(file: any WritableFile, fileNumber: UInt64, options: TableOptions, partition: Int64, tier: Tier, createdAt: Int64) {
        self.file = file
        self.fileNumber = fileNumber
        self.options = options
        self.dataBlock = BlockBuilder(restartInterval: options.restartInterval)
        self.filter = BloomFilterBuilder(bitsPerKey: options.bloomBitsPerKey)
        self.pointIndex = options.pointIndex ? PointIndexBuilder() : nil
        properties.partition = partition
        properties.tier = tier
        properties.compression = options.compression
        properties.createdAt = createdAt
    }

    var entryCount: UInt64 { properties.entries }
    var fileSize: Int64 { file.size }

    func add(_ entry: VersionedEntry) throws(IOFailure) {
        lastEntry = entry
        entry.withKey { key in
            dataBlock.add(key: key, valueLength: TableEntryCodec.encodedLength(entry)) {
                TableEntryCodec.encode(entry, into: &$0)
            }
            let hash = Hash64.hash(key)
            if pointIndex != nil {
                pointIndex!.add(hash: hash, block: Int(properties.dataBlocks), restart: dataBlock.lastRestartOrdinal)
            } else {
                filter.add(hash: hash)
            }
            properties.record(entry, key: key)
        }
        if dataBlock.estimatedSize >= options.blockSize { try flushDataBlock() }
    }

    private func flushDataBlock() throws(IOFailure) {
        guard !dataBlock.isEmpty else { return }
        let lastKey = dataBlock.lastKey
        let handle = try writeBlock(dataBlock.finish(), compression: options.compression)
        dataBlock.reset()
        var encodedHandle: [UInt8] = []
        handle.encode(into: &encodedHandle)
        indexBlock.add(key: lastKey, value: encodedHandle)
        properties.dataBlocks += 1
    }

    private func writeBlock(_ raw: [UInt8], compression: CompressionKind) throws(IOFailure) -> BlockHandle {
        let (stored, kind) = BlockCompression.compress(raw, kind: compression, zstdLevel: options.zstdLevel)
        let offset = UInt64(file.size)
        var framed = stored
        framed.append(kind.rawValue)
        let checksum = stored.withUnsafeBytes {
            TableFormat.blockChecksum($0, kind: kind, fileNumber: fileNumber, offset: offset)
        }
        framed.appendFixed32(checksum)
        try file.append(framed[...])
        return BlockHandle(offset: offset, size: UInt32(stored.count))
    }

    /// Writes the filter, index, properties, point index and footer. The
    /// caller syncs the file (a flush syncs many tables at once).
    func finish() throws(IOFailure) -> TableProperties {
        properties.largestKey = lastEntry?.key ?? []
        try flushDataBlock()
        let encodedPointIndex = pointIndex?.finish()
        if let pointIndex {
            filter = BloomFilterBuilder(bitsPerKey: options.bloomBitsPerKey, hashes: pointIndex.hashes)
        }
        let filterHandle = try writeBlock(filter.finish(), compression: .none)
        let indexHandle = try writeBlock(indexBlock.finish(), compression: .none)
        let propertiesHandle = try writeBlock(properties.encode(), compression: .none)
        let pointIndexHandle = try encodedPointIndex.map { encoded throws(IOFailure) in
            try writeBlock(encoded, compression: .none)
        } ?? TableFormat.absentBlock
        var footer: [UInt8] = []
        for handle in [filterHandle, indexHandle, propertiesHandle, pointIndexHandle] {
            footer.appendFixed64(handle.offset)
            footer.appendFixed32(handle.size)
        }
        footer.appendFixed32(TableFormat.version)
        footer.append(contentsOf: TableFormat.magic)
        var crc = CRC32C()
        crc.update(footer)
        crc.update(fileNumber)
        footer.appendFixed32(crc.masked)
        try file.append(footer[...])
        return properties
    }
}
