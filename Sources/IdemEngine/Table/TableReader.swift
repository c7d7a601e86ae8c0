/// An open SSTable: footer, index, filter, properties and point index (with
/// every data block's handle, for it) held in memory, data blocks read on
/// demand through the shared block cache.
///
/// Every structure read is validated (checksums bound to file number and
/// offset, lengths, ordering); any failure is an `EngineError.corruption`
/// naming this file and the offset — never a crash.
final class TableReader: Sendable {
    let fileNumber: UInt64
    let file: any ReadableFile
    let properties: TableProperties
    let size: Int64
    private let index: Block
    private let filter: BloomFilter
    /// Present when the table has a point index: point lookups that pass
    /// the filter then skip the index block.
    private let pointLookup: PointLookup?
    private let cache: BlockCache
    /// What a block read from disk leaves for its search aid when it is
    /// decompressed into place (`Block.init(decompressing:…)`).
    private let searchAidRoom: Int

    /// A point index with what it needs to be used: every data block's
    /// handle, by ordinal (`blocks.count` is the table's data block count,
    /// which every slot was validated against).
    private struct PointLookup: Sendable {
        let index: PointIndex
        let blocks: [BlockHandle]
    }

    var path: String { file.path }

    private init(fileNumber: UInt64, file: any ReadableFile, properties: TableProperties, index: Block,
                 filter: BloomFilter, pointLookup: PointLookup?, cache: BlockCache) {
        self.fileNumber = fileNumber
        self.file = file
        self.properties = properties
        self.size = file.size
        self.index = index
        self.filter = filter
        self.pointLookup = pointLookup
        self.cache = cache
        let blocks = max(1, properties.dataBlocks)
        self.searchAidRoom = Block.searchAidRoom(entriesPerBlock: Int(min(properties.entries / blocks, 1 << 16)))
    }

    /// Whether point lookups go through a point index.
    var hasPointIndex: Bool { pointLookup != nil }

    /// Bytes of memory the table's lookup structures hold (filter, index,
    /// point index), for statistics.
    var memoryBytes: Int {
        filter.memoryBytes + index.memoryBytes
            + (pointLookup.map { $0.index.memoryBytes + $0.blocks.count * MemoryLayout<BlockHandle>.stride } ?? 0)
    }

    static func open(_ file: any ReadableFile, fileNumber: UInt64, cache: BlockCache) throws(EngineError) -> TableReader {
        let corrupt = { (offset: Int64, detail: String) in
            EngineError.corruption(file: file.path, offset: Int(offset), detail: detail)
        }
        let (handles, footerOffset) = try readFooter(file, fileNumber: fileNumber)
        for handle in handles where handle.offset + UInt64(handle.size) + UInt64(TableFormat.trailerSize) > UInt64(footerOffset) {
            guard handle != TableFormat.absentBlock else { continue }
            throw corrupt(footerOffset, "block handle past the footer")
        }
        let filterBytes = try readRaw(file, fileNumber: fileNumber, handle: handles[0])
        guard let filter = BloomFilter(filterBytes) else { throw corrupt(Int64(handles[0].offset), "malformed bloom filter") }
        let indexBytes = try readRaw(file, fileNumber: fileNumber, handle: handles[1])
        let index: Block
        do { index = try Block(indexBytes) } catch { throw corrupt(Int64(handles[1].offset), "index: \(error.detail)") }
        let propertyBytes = try readRaw(file, fileNumber: fileNumber, handle: handles[2])
        let properties: TableProperties
        let decodedProperties = propertyBytes.withUnsafeBytes { raw in
            Result { () throws(TableCorruption) -> TableProperties in try TableProperties.decode(raw) }
        }
        switch decodedProperties {
        case .success(let decoded): properties = decoded
        case .failure(let error):
            throw corrupt(Int64(handles[2].offset), "properties: \(error.detail)")
        }
        var pointLookup: PointLookup?
        if handles.count > 3, handles[3] != TableFormat.absentBlock {
            let blocks: [BlockHandle]
            do { blocks = try dataBlockHandles(index) } catch { throw corrupt(Int64(handles[1].offset), "index: \(error.detail)") }
            guard UInt64(blocks.count) == properties.dataBlocks else {
                throw corrupt(Int64(handles[1].offset), "index lists \(blocks.count) data blocks, properties say \(properties.dataBlocks)")
            }
            let encoded = try readRaw(file, fileNumber: fileNumber, handle: handles[3])
            guard let pointIndex = PointIndex(encoded, dataBlocks: blocks.count) else {
                throw corrupt(Int64(handles[3].offset), "malformed point index")
            }
            pointLookup = PointLookup(index: pointIndex, blocks: blocks)
        }
        return TableReader(fileNumber: fileNumber, file: file, properties: properties, index: index, filter: filter,
                           pointLookup: pointLookup, cache: cache)
    }

    /// The footer's block handles (three in version 1, four in version 2)
    /// and the footer's offset, once its magic, version and checksum hold.
    private static func readFooter(_ file: any ReadableFile, fileNumber: UInt64) throws(EngineError) -> ([BlockHandle], Int64) {
        let size = file.size
        let corrupt = { (offset: Int64, detail: String) in
            EngineError.corruption(file: file.path, offset: Int(offset), detail: detail)
        }
        let largest = TableFormat.footerSizes.values.max()!
        let tailLength = Int(min(size, Int64(largest)))
        guard tailLength >= TableFormat.footerTailSize else { throw corrupt(0, "file shorter than a table footer") }
        let tail: [UInt8]
        do { tail = try file.read(at: size - Int64(tailLength), count: tailLength) } catch { throw .io(error) }
        let parsed = tail.withUnsafeBytes { raw -> Result<([BlockHandle], Int64), EngineError> in
            let shared = tailLength - TableFormat.footerTailSize
            guard raw[(shared + 4)..<(shared + 12)].elementsEqual(TableFormat.magic) else {
                return .failure(corrupt(size - Int64(TableFormat.footerTailSize), "bad magic"))
            }
            let version = raw.loadFixed32(at: shared)
            guard let footerSize = TableFormat.footerSizes[version] else {
                return .failure(corrupt(size - Int64(TableFormat.footerTailSize), "unsupported table format version \(version)"))
            }
            guard footerSize <= tailLength else { return .failure(corrupt(0, "file shorter than a table footer")) }
            let start = tailLength - footerSize
            let footerOffset = size - Int64(footerSize)
            var crc = CRC32C()
            crc.update(UnsafeRawBufferPointer(rebasing: raw[start..<(tailLength - 4)]))
            crc.update(fileNumber)
            guard crc.masked == raw.loadFixed32(at: tailLength - 4) else {
                return .failure(corrupt(footerOffset, "footer checksum mismatch (or wrong file number)"))
            }
            let handles = (0..<((footerSize - TableFormat.footerTailSize) / 12)).map {
                BlockHandle(offset: raw.loadFixed64(at: start + $0 * 12), size: raw.loadFixed32(at: start + $0 * 12 + 8))
            }
            return .success((handles, footerOffset))
        }
        return try parsed.get()
    }

    /// Every data block's handle, in order, from the index block.
    private static func dataBlockHandles(_ index: Block) throws(TableCorruption) -> [BlockHandle] {
        var iterator = BlockIterator(index)
        var handles: [BlockHandle] = []
        try iterator.seekToFirst()
        while iterator.isValid {
            guard let handle = iterator.withValue({ raw -> BlockHandle? in
                var cursor = ByteCursor(raw)
                return BlockHandle.decode(&cursor)
            }) else { throw TableCorruption(detail: "bad block handle in index") }
            handles.append(handle)
            try iterator.next()
        }
        return handles
    }

    /// Reads, verifies and decompresses one block (the filter, index and
    /// properties at open; data blocks go through `readBlock`).
    private static func readRaw(_ file: any ReadableFile, fileNumber: UInt64, handle: BlockHandle) throws(EngineError) -> [UInt8] {
        let framed: [UInt8]
        do {
            framed = try file.read(at: Int64(handle.offset), count: Int(handle.size) + TableFormat.trailerSize)
        } catch {
            throw .io(error)
        }
        let result = framed.withUnsafeBytes { raw in
            Result { () throws(TableCorruption) -> [UInt8] in
                let (stored, kind) = try verifiedPayload(raw, fileNumber: fileNumber, handle: handle)
                do throws(BlockCompression.Failure) { return try BlockCompression.decompress(stored, kind: kind) } catch {
                    throw TableCorruption(detail: error.detail)
                }
            }
        }
        switch result {
        case .success(let bytes): return bytes
        case .failure(let failure): throw .corruption(file: file.path, offset: Int(handle.offset), detail: failure.detail)
        }
    }

    /// A framed block's payload and compression kind, once its checksum holds.
    private static func verifiedPayload(_ framed: UnsafeRawBufferPointer, fileNumber: UInt64,
                                        handle: BlockHandle) throws(TableCorruption) -> (UnsafeRawBufferPointer, CompressionKind) {
        let stored = UnsafeRawBufferPointer(rebasing: framed[0..<Int(handle.size)])
        guard let kind = CompressionKind(rawValue: framed[Int(handle.size)]) else {
            throw TableCorruption(detail: "unknown compression kind")
        }
        let expected = TableFormat.blockChecksum(stored, kind: kind, fileNumber: fileNumber, offset: handle.offset)
        guard expected == framed.loadFixed32(at: Int(handle.size) + 1) else {
            throw TableCorruption(detail: "block checksum mismatch")
        }
        return (stored, kind)
    }

    /// Reads a data block and decodes it: the frame lives in temporary
    /// memory (on the stack when it fits) and a compressed block is
    /// decompressed into the `Block`'s storage, so the one allocation a
    /// block read makes is the `Block`'s own — a block-cache miss costs a
    /// read, a checksum and a decompression (an uncompressed block, a copy).
    private func readBlock(_ handle: BlockHandle) throws(EngineError) -> Block {
        let file = self.file
        return try withFrame(of: handle) { framed throws(EngineError) -> Block in
            do throws(IOFailure) { try file.read(at: Int64(handle.offset), into: framed) } catch { throw .io(error) }
            return try decode(framed, handle)
        }
    }

    /// `readBlock` if the OS page cache holds the whole frame; nil when
    /// reading it would wait for the disk, or it does not decode (the disk
    /// read reports that).
    private func readResidentBlock(_ handle: BlockHandle) -> Block? {
        let file = self.file
        let block = try? withFrame(of: handle) { framed throws(EngineError) -> Block? in
            guard file.readIfResident(at: Int64(handle.offset), into: framed) else { return nil }
            return try decode(framed, handle)
        }
        return block ?? nil
    }

    /// Temporary memory for `handle`'s frame.
    private func withFrame<R>(of handle: BlockHandle,
                              _ body: (UnsafeMutableRawBufferPointer) throws(EngineError) -> R) throws(EngineError) -> R {
        let outcome = withUnsafeTemporaryAllocation(byteCount: Int(handle.size) + TableFormat.trailerSize, alignment: 16) { framed in
            Result { () throws(EngineError) -> R in try body(framed) }
        }
        return try outcome.get()
    }

    /// The block a frame holds, its checksum verified.
    private func decode(_ framed: UnsafeMutableRawBufferPointer, _ handle: BlockHandle) throws(EngineError) -> Block {
        do throws(TableCorruption) {
            let (stored, kind) = try Self.verifiedPayload(UnsafeRawBufferPointer(framed), fileNumber: fileNumber, handle: handle)
            if kind == .none { return try Block(stored) }
            return try Self.decompressedBlock(stored, kind: kind, room: searchAidRoom)
        } catch {
            throw .corruption(file: file.path, offset: Int(handle.offset), detail: error.detail)
        }
    }

    private static func decompressedBlock(_ stored: UnsafeRawBufferPointer, kind: CompressionKind,
                                          room: Int) throws(TableCorruption) -> Block {
        let payload: (size: Int, source: UnsafeRawBufferPointer)
        do { payload = try BlockCompression.compressedPayload(stored) } catch { throw TableCorruption(detail: error.detail) }
        return try Block(decompressing: payload.source, kind: kind, size: payload.size, room: room)
    }

    /// The data block at `handle`, through the block cache. Without
    /// `fillingCache`, a block the cache does not hold is read and not
    /// inserted: a merge or a scan reads each block once, and caching them
    /// would evict the blocks point lookups keep coming back to (a merge's,
    /// moreover, belong to tables about to be deleted).
    func dataBlock(_ handle: BlockHandle, fillingCache: Bool = true) throws(EngineError) -> Block {
        let key = BlockCache.Key(fileNumber: fileNumber, offset: handle.offset)
        guard fillingCache else {
            if let cached = cache.cachedBlock(for: key) { return cached }
            return try readBlock(handle)
        }
        return try cache.block(for: key) { () throws(EngineError) -> Block in try readBlock(handle) }
    }

    /// The data block if the block cache holds it, or the OS page cache can
    /// hand it over without waiting for the disk (it is then cached too);
    /// nil means a disk read. Why the page cache: recently written tables
    /// sit there, and reading them costs microseconds — far less than
    /// handing the read to another thread and back.
    func cachedDataBlock(_ handle: BlockHandle) -> Block? {
        let key = BlockCache.Key(fileNumber: fileNumber, offset: handle.offset)
        if let cached = cache.cachedBlock(for: key) { return cached }
        guard let block = readResidentBlock(handle) else { return nil }
        return try? cache.block(for: key) { () throws(EngineError) -> Block in block }
    }

    /// The entry stored for `key`, if any (tombstones and expired entries
    /// included; visibility is the caller's business). The bloom filter
    /// first: it rejects almost every table a key is not in, and at 2.5
    /// bytes a key it stays in the CPU's cache where the point index (11)
    /// does not — a miss across many tables costs a filter probe each.
    /// Then the point index when the table has one, else the key range
    /// and the index block.
    func get(_ key: UnsafeRawBufferPointer, hash: UInt64) throws(EngineError) -> VersionedEntry? {
        guard filter.mayContain(hash: hash) else { return nil }
        if let pointLookup { return try find(key, hash: hash, through: pointLookup, cachedOnly: false) ?? nil }
        guard inKeyRange(key) else { return nil }
        return try find(key)
    }

    /// Where what `get` reads first lies (see `ReadPrefetcher`).
    var firstLoads: TableLoads {
        TableLoads(filterBlocks: filter.blocksAddress, pointSlots: pointLookup?.index.slotsAddress ?? (0, 0))
    }

    /// `get` without touching the disk: `.some` is the answer, `nil` means
    /// a block that may hold `key` is not cached.
    func getCached(_ key: UnsafeRawBufferPointer, hash: UInt64) throws(EngineError) -> VersionedEntry?? {
        guard filter.mayContain(hash: hash) else { return .some(nil) }
        if let pointLookup { return try find(key, hash: hash, through: pointLookup, cachedOnly: true) }
        guard inKeyRange(key) else { return .some(nil) }
        return try findCached(key)
    }

    private func inKeyRange(_ key: UnsafeRawBufferPointer) -> Bool {
        ByteOrder.compare(properties.smallestKey, key) <= 0 && ByteOrder.compare(properties.largestKey, key) >= 0
    }

    /// A point lookup through the point index: each candidate location
    /// (almost always one, the key's) is checked against the block — the
    /// index holds no keys, so only an exact match in the block answers.
    /// With `cachedOnly`, nil when a candidate's block would be read from
    /// disk.
    private func find(_ key: UnsafeRawBufferPointer, hash: UInt64, through lookup: PointLookup,
                      cachedOnly: Bool) throws(EngineError) -> VersionedEntry?? {
        var answer: VersionedEntry?? = .some(nil)
        _ = try lookup.index.firstCandidate(hash: hash) { (ordinal, restart) throws(EngineError) -> Bool in
            let handle = lookup.blocks[ordinal]
            let block: Block
            if cachedOnly {
                guard let cached = cachedDataBlock(handle) else {
                    answer = nil
                    return true
                }
                block = cached
            } else {
                block = try dataBlock(handle)
            }
            guard let found = try entry(key, in: block, fromRestart: restart, at: handle.offset) else { return false }
            answer = .some(found)
            return true
        }
        return answer
    }

    /// `get` through the index block, after the filter (no point index).
    ///
    /// A point lookup reads one data block: the first whose index
    /// separator is `>= key`. A key below that separator but not in the
    /// block lies between the block's last key and the next block's first
    /// — in no block. No iterator and no key is built on the way.
    private func find(_ key: UnsafeRawBufferPointer) throws(EngineError) -> VersionedEntry? {
        guard let handle = try blockHandle(covering: key) else { return nil }
        return try entry(key, in: dataBlock(handle), at: handle.offset)
    }

    /// `find` without touching the disk: `.some` is the answer (an entry
    /// or nil), `nil` means the block that may hold `key` is not cached.
    private func findCached(_ key: UnsafeRawBufferPointer) throws(EngineError) -> VersionedEntry?? {
        guard let handle = try blockHandle(covering: key) else { return .some(nil) }
        guard let block = cachedDataBlock(handle) else { return nil }
        return .some(try entry(key, in: block, at: handle.offset))
    }

    /// The handle of the data block that would hold `key`; nil when `key`
    /// is above the table's last separator.
    private func blockHandle(covering key: UnsafeRawBufferPointer) throws(EngineError) -> BlockHandle? {
        let index = self.index
        let located = index.withBytes { raw in
            Result { () throws(TableCorruption) -> BlockHandle? in
                guard let (entry, _) = try BlockIterator.locate(key, in: index, raw: raw) else { return nil }
                var cursor = ByteCursor(UnsafeRawBufferPointer(rebasing: raw[entry.value]))
                guard let handle = BlockHandle.decode(&cursor) else { throw TableCorruption(detail: "bad block handle in index") }
                return handle
            }
        }
        do throws(TableCorruption) { return try located.get() } catch {
            throw corruption(at: 0, "index: \(error.detail)")
        }
    }

    /// The entry for exactly `key` in `block`, if it holds one; searched
    /// from restart point `restart` when given (see `BlockIterator.locate`).
    private func entry(_ key: UnsafeRawBufferPointer, in block: Block, fromRestart restart: Int? = nil,
                       at offset: UInt64) throws(EngineError) -> VersionedEntry? {
        let found = block.withBytes { raw in
            Result { () throws(TableCorruption) -> VersionedEntry? in
                let located = if let restart {
                    try BlockIterator.locate(key, in: block, raw: raw, fromRestart: restart)
                } else {
                    try BlockIterator.locate(key, in: block, raw: raw)
                }
                guard let (entry, exact) = located, exact else { return nil }
                return try TableEntryCodec.decode(key: key, value: UnsafeRawBufferPointer(rebasing: raw[entry.value]))
            }
        }
        do throws(TableCorruption) { return try found.get() } catch {
            throw corruption(at: offset, error.detail)
        }
    }

    /// An iterator over every entry; `fillingCache: false` for reads that
    /// visit each block once (merges, scans): see `dataBlock`.
    func makeIterator(fillingCache: Bool = true) -> TableIterator {
        TableIterator(table: self, index: BlockIterator(index), fillingCache: fillingCache)
    }

    func corruption(at offset: UInt64, _ detail: String) -> EngineError {
        .corruption(file: path, offset: Int(offset), detail: detail)
    }

    /// Reads and verifies every data block and entry, and that the point
    /// index finds every key (for `idem check`). Returns the number of
    /// entries.
    func verify() throws(EngineError) -> UInt64 {
        var iterator = makeIterator()
        try iterator.seekToFirst()
        var count: UInt64 = 0
        var previous: [UInt8]? = nil
        while iterator.isValid {
            if let previous, !previous.lexicographicallyPrecedes(iterator.key) {
                throw corruption(at: iterator.blockOffset, "keys out of order")
            }
            let entry = try iterator.entry()
            if let pointLookup {
                let found = iterator.key.withUnsafeBytes { key in
                    Result { () throws(EngineError) -> VersionedEntry? in
                        try find(key, hash: Hash64.hash(key), through: pointLookup, cachedOnly: false) ?? nil
                    }
                }
                guard try found.get()?.sequence == entry.sequence else {
                    throw corruption(at: iterator.blockOffset, "the point index does not lead to a key of this block")
                }
            }
            previous = iterator.key
            count += 1
            try iterator.next()
        }
        guard count == properties.entries else {
            throw corruption(at: 0, "holds \(count) entries, properties say \(properties.entries)")
        }
        return count
    }
}

/// Walks a table's entries in key order, one data block at a time.
struct TableIterator {
    let table: TableReader
    private let fillingCache: Bool
    private var index: BlockIterator
    private var data: BlockIterator?
    private(set) var blockOffset: UInt64 = 0

    init(table: TableReader, index: BlockIterator, fillingCache: Bool) {
        self.table = table
        self.index = index
        self.fillingCache = fillingCache
    }

    var isValid: Bool { data?.isValid ?? false }
    var key: [UInt8] { data!.key }

    func entry() throws(EngineError) -> VersionedEntry {
        let data = data!
        let result = data.withValue { value in
            Result { () throws(TableCorruption) -> VersionedEntry in try TableEntryCodec.decode(key: data.key, value: value) }
        }
        switch result {
        case .success(let entry): return entry
        case .failure(let failure): throw table.corruption(at: blockOffset, failure.detail)
        }
    }

    mutating func seekToFirst() throws(EngineError) {
        do { try index.seekToFirst() } catch { throw table.corruption(at: 0, "index: \(error.detail)") }
        try loadBlock { iterator throws(TableCorruption) in try iterator.seekToFirst() }
    }

    /// Positions at the first key `>= target`.
    mutating func seek(_ target: UnsafeRawBufferPointer) throws(EngineError) {
        do { try index.seek(target) } catch { throw table.corruption(at: 0, "index: \(error.detail)") }
        try loadBlock { iterator throws(TableCorruption) in try iterator.seek(target) }
    }

    mutating func seek(_ target: [UInt8]) throws(EngineError) {
        var failure: EngineError?
        target.withUnsafeBytes { raw in
            do throws(EngineError) { try seek(raw) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    mutating func next() throws(EngineError) {
        guard data != nil else { return }
        do { try data!.next() } catch { throw table.corruption(at: blockOffset, error.detail) }
        if !data!.isValid {
            do { try index.next() } catch { throw table.corruption(at: 0, "index: \(error.detail)") }
            try loadBlock { iterator throws(TableCorruption) in try iterator.seekToFirst() }
        }
    }

    /// Opens the block the index points at and positions in it; moves on
    /// to later blocks while positioning finds nothing (seek past a block's
    /// last key lands at the next block's first).
    private mutating func loadBlock(_ position: (inout BlockIterator) throws(TableCorruption) -> Void) throws(EngineError) {
        var first = true
        while index.isValid {
            let handle = index.withValue { raw -> BlockHandle? in
                var cursor = ByteCursor(raw)
                return BlockHandle.decode(&cursor)
            }
            guard let handle else { throw table.corruption(at: 0, "bad block handle in index") }
            blockOffset = handle.offset
            var iterator = BlockIterator(try table.dataBlock(handle, fillingCache: fillingCache))
            do {
                if first { try position(&iterator) } else { try iterator.seekToFirst() }
            } catch {
                throw table.corruption(at: handle.offset, error.detail)
            }
            first = false
            if iterator.isValid {
                data = iterator
                return
            }
            do { try index.next() } catch { throw table.corruption(at: 0, "index: \(error.detail)") }
        }
        data = nil
    }
}
