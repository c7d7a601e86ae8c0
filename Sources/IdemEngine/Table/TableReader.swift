/// An open SSTable: footer, index, filter and properties held in memory,
/// data blocks read on demand through the shared block cache.
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
    private let cache: BlockCache

    var path: String { file.path }

    private init(fileNumber: UInt64, file: any ReadableFile, properties: TableProperties, index: Block,
                 filter: BloomFilter, cache: BlockCache) {
        self.fileNumber = fileNumber
        self.file = file
        self.properties = properties
        self.size = file.size
        self.index = index
        self.filter = filter
        self.cache = cache
    }

    static func open(_ file: any ReadableFile, fileNumber: UInt64, cache: BlockCache) throws(EngineError) -> TableReader {
        let size = file.size
        let corrupt = { (offset: Int64, detail: String) in
            EngineError.corruption(file: file.path, offset: Int(offset), detail: detail)
        }
        guard size >= Int64(TableFormat.footerSize) else { throw corrupt(0, "file shorter than a table footer") }
        let footerOffset = size - Int64(TableFormat.footerSize)
        let footer: [UInt8]
        do { footer = try file.read(at: footerOffset, count: TableFormat.footerSize) } catch { throw .io(error) }
        let (handles, problem) = footer.withUnsafeBytes { raw -> ([BlockHandle], String?) in
            var crc = CRC32C()
            crc.update(UnsafeRawBufferPointer(rebasing: raw[0..<48]))
            crc.update(fileNumber)
            guard crc.masked == raw.loadFixed32(at: 48) else { return ([], "footer checksum mismatch (or wrong file number)") }
            guard raw[40..<48].elementsEqual(TableFormat.magic) else { return ([], "bad magic") }
            let version = raw.loadFixed32(at: 36)
            guard version == TableFormat.version else { return ([], "unsupported table format version \(version)") }
            let handles = (0..<3).map { BlockHandle(offset: raw.loadFixed64(at: $0 * 12), size: raw.loadFixed32(at: $0 * 12 + 8)) }
            return (handles, nil)
        }
        if let problem { throw corrupt(footerOffset, problem) }
        for handle in handles where handle.offset + UInt64(handle.size) + UInt64(TableFormat.trailerSize) > UInt64(footerOffset) {
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
        return TableReader(fileNumber: fileNumber, file: file, properties: properties, index: index, filter: filter, cache: cache)
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

    /// Reads a data block and decodes it: the frame and the decompressed
    /// bytes live in temporary memory (on the stack when it fits), so the
    /// one allocation a block read makes is the `Block`'s own — a block-cache
    /// miss costs a read, a checksum, a decompression and one copy.
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
            return try Self.decompressedBlock(stored, kind: kind)
        } catch {
            throw .corruption(file: file.path, offset: Int(handle.offset), detail: error.detail)
        }
    }

    private static func decompressedBlock(_ stored: UnsafeRawBufferPointer, kind: CompressionKind) throws(TableCorruption) -> Block {
        let payload: (size: Int, source: UnsafeRawBufferPointer)
        do { payload = try BlockCompression.compressedPayload(stored) } catch { throw TableCorruption(detail: error.detail) }
        let outcome = withUnsafeTemporaryAllocation(byteCount: payload.size, alignment: 16) { content in
            Result { () throws(TableCorruption) -> Block in
                do throws(BlockCompression.Failure) { try BlockCompression.decompress(payload.source, kind: kind, into: content) } catch {
                    throw TableCorruption(detail: error.detail)
                }
                return try Block(UnsafeRawBufferPointer(content))
            }
        }
        return try outcome.get()
    }

    func dataBlock(_ handle: BlockHandle) throws(EngineError) -> Block {
        try cache.block(for: .init(fileNumber: fileNumber, offset: handle.offset)) { () throws(EngineError) -> Block in
            try readBlock(handle)
        }
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

    func mayContain(hash: UInt64) -> Bool {
        filter.mayContain(hash: hash)
    }

    /// The entry stored for `key`, if any (tombstones and expired entries
    /// included; visibility is the caller's business).
    func get(_ key: UnsafeRawBufferPointer, hash: UInt64) throws(EngineError) -> VersionedEntry? {
        guard filter.mayContain(hash: hash) else { return nil }
        return try find(key)
    }

    /// `get` without the filter check (the caller has made it).
    ///
    /// A point lookup reads one data block: the first whose index
    /// separator is `>= key`. A key below that separator but not in the
    /// block lies between the block's last key and the next block's first
    /// — in no block. No iterator and no key is built on the way.
    func find(_ key: UnsafeRawBufferPointer) throws(EngineError) -> VersionedEntry? {
        guard let handle = try blockHandle(covering: key) else { return nil }
        return try entry(key, in: dataBlock(handle), at: handle.offset)
    }

    /// `find` without touching the disk: `.some` is the answer (an entry
    /// or nil), `nil` means the block that may hold `key` is not cached.
    func findCached(_ key: UnsafeRawBufferPointer) throws(EngineError) -> VersionedEntry?? {
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

    /// The entry for exactly `key` in `block`, if it holds one.
    private func entry(_ key: UnsafeRawBufferPointer, in block: Block, at offset: UInt64) throws(EngineError) -> VersionedEntry? {
        let found = block.withBytes { raw in
            Result { () throws(TableCorruption) -> VersionedEntry? in
                guard let (entry, exact) = try BlockIterator.locate(key, in: block, raw: raw), exact else { return nil }
                return try TableEntryCodec.decode(key: key, value: UnsafeRawBufferPointer(rebasing: raw[entry.value]))
            }
        }
        do throws(TableCorruption) { return try found.get() } catch {
            throw corruption(at: offset, error.detail)
        }
    }

    func makeIterator() -> TableIterator {
        TableIterator(table: self, index: BlockIterator(index))
    }

    func corruption(at offset: UInt64, _ detail: String) -> EngineError {
        .corruption(file: path, offset: Int(offset), detail: detail)
    }

    /// Reads and verifies every data block and entry (for `idem check`).
    /// Returns the number of entries.
    func verify() throws(EngineError) -> UInt64 {
        var iterator = makeIterator()
        try iterator.seekToFirst()
        var count: UInt64 = 0
        var previous: [UInt8]? = nil
        while iterator.isValid {
            if let previous, !previous.lexicographicallyPrecedes(iterator.key) {
                throw corruption(at: iterator.blockOffset, "keys out of order")
            }
            _ = try iterator.entry()
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
    private var index: BlockIterator
    private var data: BlockIterator?
    private(set) var blockOffset: UInt64 = 0

    init(table: TableReader, index: BlockIterator) {
        self.table = table
        self.index = index
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
            var iterator = BlockIterator(try table.dataBlock(handle))
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
