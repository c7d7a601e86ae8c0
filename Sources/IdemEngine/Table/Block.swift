/// A malformed table structure. The table reader adds the file and offset.
struct TableCorruption: Error {
    var detail: String
}

/// A decoded (decompressed, checksum-verified) block, read-only and shared
/// between readers through the block cache.
///
/// Besides the bytes, a block carries a search aid built when it is
/// decoded: for each restart key its *window* — the 8 bytes after the
/// prefix all restart keys share, as a big-endian integer, zero-padded —
/// then that shared prefix. A seek binary-searches the windows instead of
/// the restart array at the block's end and the restart entries it points
/// to — on a block cold in the CPU cache, one cache miss where there were
/// three or four. Windows order keys: when two differ, the keys differ the
/// same way; only equal windows need the keys compared in full.
///
/// One allocation holds it all, a byte array laid out as
///
///     layout: contentStart u32 ‖ restartCount u32 ‖ restartsOffset u32 ‖ windowPrefixLength u32
///     windows: u64 × restartCount (native order) ‖ shared prefix, zero-padded to 8 bytes
///     content: the block's bytes, from `contentStart` (zeros before it
///              when the block was decompressed into room left for these)
///
/// so that the first touch of a block found in the cache — its reference
/// count, its layout, the windows — is one cache miss, where a class
/// holding an array took one for the object and another for the array's
/// buffer (that second miss was 5 % of a `SET NX -P 16` on a filled key
/// space), and a block read from disk allocated both. A value type around
/// one array: copying it is one retain, and it is `Sendable` as arrays are.
///
/// Invariant: immutable. The layout and the restart array were validated
/// at construction, and every restart entry decoded with no shared prefix;
/// other entries are validated as they are decoded.
struct Block: Sendable {
    private let storage: [UInt8]

    private static let layoutSize = 16
    private enum Field: Int {
        case contentStart = 0, restartCount = 4, restartsOffset = 8, windowPrefixLength = 12
    }

    init(_ bytes: [UInt8]) throws(TableCorruption) {
        let built = bytes.withUnsafeBytes { raw in Result { () throws(TableCorruption) in try Block(raw) } }
        self = try built.get()
    }

    /// Builds the block from a copy of `bytes`.
    init(_ bytes: UnsafeRawBufferPointer) throws(TableCorruption) {
        let outline = try Outline(bytes)
        storage = try Self.makeStorage(count: outline.searchAidSize + bytes.count) { out throws(TableCorruption) in
            try Self.writeSearchAid(outline, contentStart: outline.searchAidSize, into: out)
            out.baseAddress!.advanced(by: outline.searchAidSize).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        }
    }

    /// Decompresses `source` (`kind`, `size` bytes once decompressed)
    /// straight into the block's storage, behind `room` bytes left for its
    /// search aid (`searchAidRoom`) — so a block read from disk is not
    /// copied once more after decompression (6 % of a random get over tables
    /// the block cache cannot hold). A block whose aid outgrows the room is
    /// copied into a storage of its own size instead.
    init(decompressing source: UnsafeRawBufferPointer, kind: CompressionKind, size: Int, room: Int) throws(TableCorruption) {
        let room = (max(Self.layoutSize, room) + 7) & ~7
        var fits = false
        let storage = try Self.makeStorage(count: room + size) { out throws(TableCorruption) in
            let content = UnsafeMutableRawBufferPointer(rebasing: out[room...])
            do throws(BlockCompression.Failure) {
                try BlockCompression.decompress(source, kind: kind, into: content)
            } catch {
                throw TableCorruption(detail: error.detail)
            }
            let outline = try Outline(UnsafeRawBufferPointer(content))
            fits = outline.searchAidSize <= room
            if fits {
                try Self.writeSearchAid(outline, contentStart: room, into: out)
                out[outline.searchAidSize..<room].initializeMemory(as: UInt8.self, repeating: 0)
            } else {
                out[..<room].initializeMemory(as: UInt8.self, repeating: 0)
            }
        }
        guard fits else {
            let copied = storage.withUnsafeBytes { all in
                Result { () throws(TableCorruption) in try Block(UnsafeRawBufferPointer(rebasing: all[room...])) }
            }
            self = try copied.get()
            return
        }
        self.storage = storage
    }

    /// A storage of `count` bytes, every one written by `fill` — or `fill`'s
    /// error. (Array's uninitialized-capacity initializer does not carry a
    /// typed error through.)
    private static func makeStorage(count: Int, _ fill: (UnsafeMutableRawBufferPointer) throws(TableCorruption) -> Void)
        throws(TableCorruption) -> [UInt8] {
        var failure: TableCorruption?
        let storage = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            do throws(TableCorruption) {
                try fill(UnsafeMutableRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(buffer)[..<count]))
                initialized = count
            } catch {
                failure = error
                initialized = 0
            }
        }
        if let failure { throw failure }
        return storage
    }

    /// Room for the search aid of a block of a table with `entriesPerBlock`
    /// entries a block on average, were every 4th a restart (the densest
    /// the engine writes): the layout, a window per restart and one spare,
    /// and a shared prefix of up to 16 bytes.
    static func searchAidRoom(entriesPerBlock: Int) -> Int {
        layoutSize + ((entriesPerBlock + 3) / 4 + 1) * 8 + 16
    }

    /// What the search aid is made from: a block's restarts, validated,
    /// and the prefix its restart keys share. The keys themselves are
    /// decoded again where their windows are written, rather than kept in
    /// an array here: that array was an allocation of its own for every
    /// block read from disk.
    private struct Outline {
        let bytes: UnsafeRawBufferPointer
        var restartCount: Int
        var restartsOffset: Int
        var prefixLength = 0

        init(_ bytes: UnsafeRawBufferPointer) throws(TableCorruption) {
            guard bytes.count >= 4 else { throw TableCorruption(detail: "block shorter than its trailer") }
            let count = Int(bytes.loadFixed32(at: bytes.count - 4))
            guard count >= 1, count <= (bytes.count - 4) / 4 else { throw TableCorruption(detail: "bad restart count \(count)") }
            let offset = bytes.count - 4 - count * 4
            // Restarts start at 0, strictly increase, and point before the
            // array (checked in place: this runs for every block read from disk).
            var previous = -1
            for index in 0..<count {
                let restart = Int(bytes.loadFixed32(at: offset + index * 4))
                guard index == 0 ? restart == 0 : restart > previous else { throw TableCorruption(detail: "bad restart array") }
                previous = restart
            }
            guard offset == 0 ? previous == 0 : previous < offset else { throw TableCorruption(detail: "bad restart array") }
            self.bytes = bytes
            restartCount = count
            restartsOffset = offset
            guard windowCount > 0 else { return }
            // Keys are sorted: what the first and last share, all share.
            prefixLength = ByteOrder.commonPrefixLength(try key(at: 0), try key(at: count - 1))
        }

        /// The key at restart `index`, whole (a restart entry shares no
        /// prefix with the entry before it; `decode` checks that).
        func key(at index: Int) throws(TableCorruption) -> UnsafeRawBufferPointer {
            let entry = try BlockIterator.decode(bytes, at: Int(bytes.loadFixed32(at: restartsOffset + index * 4)),
                                                 limit: restartsOffset, keyCount: 0)
            return UnsafeRawBufferPointer(rebasing: bytes[entry.suffix])
        }

        /// Restart keys decoded into windows: none for an empty block (no
        /// entries), which has one restart and nothing to search.
        var windowCount: Int { restartsOffset > 0 ? restartCount : 0 }

        /// Bytes before the block's own: the layout, the windows and the
        /// shared prefix (padded to 8).
        var searchAidSize: Int { Block.layoutSize + windowCount * 8 + (prefixLength + 7) / 8 * 8 }
    }

    /// Writes the layout, windows and prefix of `outline` at the start of
    /// `out`, for content that starts at `contentStart`, decoding (and so
    /// validating) every restart entry. The keys may lie in `out` itself,
    /// past the aid.
    private static func writeSearchAid(_ outline: Outline, contentStart: Int,
                                       into out: UnsafeMutableRawBufferPointer) throws(TableCorruption) {
        func store(_ value: Int, as field: Field) {
            out.storeBytes(of: UInt32(value), toByteOffset: field.rawValue, as: UInt32.self)
        }
        store(contentStart, as: .contentStart)
        store(outline.restartCount, as: .restartCount)
        store(outline.restartsOffset, as: .restartsOffset)
        store(outline.prefixLength, as: .windowPrefixLength)
        for index in 0..<outline.windowCount {
            let key = try outline.key(at: index)
            out.storeBytes(of: window(key, past: outline.prefixLength), toByteOffset: layoutSize + index * 8, as: UInt64.self)
        }
        let windowsEnd = layoutSize + outline.windowCount * 8
        out[windowsEnd..<outline.searchAidSize].initializeMemory(as: UInt8.self, repeating: 0)
        if outline.prefixLength > 0 {
            out.baseAddress!.advanced(by: windowsEnd).copyMemory(from: try outline.key(at: 0).baseAddress!,
                                                                 byteCount: outline.prefixLength)
        }
    }

    /// `key`'s 8 bytes after its first `prefixLength`, as a big-endian
    /// integer, zero-padded past the key's end.
    @inline(__always)
    static func window(_ key: UnsafeRawBufferPointer, past prefixLength: Int) -> UInt64 {
        guard key.count > prefixLength else { return 0 }
        if key.count - prefixLength >= 8 {
            return UInt64(bigEndian: key.loadUnaligned(fromByteOffset: prefixLength, as: UInt64.self))
        }
        var window: UInt64 = 0
        for index in 0..<8 {
            let position = prefixLength + index
            window = window << 8 | UInt64(position < key.count ? key[position] : 0)
        }
        return window
    }

    /// A layout field, read from the storage's bytes (`all`).
    @inline(__always)
    private static func load(_ field: Field, from all: UnsafeRawBufferPointer) -> Int {
        Int(all.load(fromByteOffset: field.rawValue, as: UInt32.self))
    }

    @inline(__always)
    private func field(_ field: Field) -> Int {
        storage.withUnsafeBytes { Self.load(field, from: $0) }
    }

    var restartCount: Int { field(.restartCount) }
    /// Where entries end and the restart array begins (in the block's bytes).
    var restartsOffset: Int { field(.restartsOffset) }

    var memoryBytes: Int { storage.count + 32 }

    /// Whether `self` and `other` are one block (the same storage), not
    /// merely equal bytes: what the cache's tests ask.
    func isSame(as other: Block) -> Bool {
        storage.withUnsafeBytes { mine in other.storage.withUnsafeBytes { mine.baseAddress == $0.baseAddress } }
    }

    /// The block's bytes.
    @inline(__always)
    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try storage.withUnsafeBytes { all in
            try body(UnsafeRawBufferPointer(rebasing: all[Self.load(.contentStart, from: all)...]))
        }
    }

    /// The last restart whose key is below `target`; 0 when none is.
    /// `raw` is the block's bytes (from `withBytes`).
    func lastRestart(below target: UnsafeRawBufferPointer, in raw: UnsafeRawBufferPointer) throws(TableCorruption) -> Int {
        let outcome = storage.withUnsafeBytes { all in Result { () throws(TableCorruption) -> Int in
            let count = Self.load(.restartCount, from: all)
            guard count > 1 else { return 0 }
            let restartsOffset = Self.load(.restartsOffset, from: all)
            let prefixLength = Self.load(.windowPrefixLength, from: all)
            let windows = Self.layoutSize
            if prefixLength > 0 {
                let prefixStart = windows + count * 8
                let length = min(prefixLength, target.count)
                let order = ByteOrder.compare(UnsafeRawBufferPointer(rebasing: target[..<length]),
                                              UnsafeRawBufferPointer(rebasing: all[prefixStart..<(prefixStart + length)]))
                // Below the shared prefix (or a proper prefix of it): below every restart key.
                if order < 0 || (order == 0 && length < prefixLength) { return 0 }
                if order > 0 { return count - 1 }
            }
            let targetWindow = Self.window(target, past: prefixLength)
            var low = 0
            var high = count - 1
            while low < high {
                let middle = (low + high + 1) / 2
                let window = all.loadUnaligned(fromByteOffset: windows + middle * 8, as: UInt64.self)
                let below: Bool
                if window != targetWindow {
                    below = window < targetWindow
                } else {
                    let offset = Int(raw.loadFixed32(at: restartsOffset + middle * 4))
                    let entry = try BlockIterator.decode(raw, at: offset, limit: restartsOffset, keyCount: 0)
                    below = ByteOrder.compare(UnsafeRawBufferPointer(rebasing: raw[entry.suffix]), target) < 0
                }
                if below { low = middle } else { high = middle - 1 }
            }
            return low
        } }
        return try outcome.get()
    }
}

/// Walks a block's entries in order. `key` holds the current entry's full
/// key; `value` its value's byte range in the block's bytes.
struct BlockIterator {
    let block: Block
    private(set) var key: [UInt8] = []
    private(set) var value: Range<Int> = 0..<0
    private(set) var isValid = false
    private var nextOffset = 0

    init(_ block: Block) {
        self.block = block
    }

    mutating func seekToFirst() throws(TableCorruption) {
        nextOffset = 0
        key.removeAll(keepingCapacity: true)
        try next()
    }

    /// Moves to the first entry whose key is `>= target`; invalid if none.
    mutating func seek(_ target: UnsafeRawBufferPointer) throws(TableCorruption) {
        let block = self.block
        let result = block.withBytes { raw in
            Result { () throws(TableCorruption) in
                if let (entry, _) = try Self.locate(target, in: block, raw: raw) {
                    land(on: entry, target: target, raw: raw)
                } else {
                    nextOffset = block.restartsOffset
                    key.removeAll(keepingCapacity: true)
                    isValid = false
                }
            }
        }
        try result.get()
    }

    /// One decoded entry header: how many bytes its key shares with the
    /// previous key, and where its key suffix and value lie.
    typealias Entry = (shared: Int, suffix: Range<Int>, value: Range<Int>)

    /// The first entry of `block` whose key is `>= target` and whether
    /// that key equals `target`; nil past the last entry. `raw` is the
    /// block's bytes.
    ///
    /// The hot path of every table read: the windows pick the restart
    /// interval, and the scan reads the block through one pointer — no
    /// slice, copy or reference count per entry, and no key built.
    ///
    /// The scan keeps `matched`, how many leading bytes the previous key
    /// (which is below `target`) shares with `target`; an entry sharing
    /// `shared` bytes with the previous key is then placed without reading
    /// it in full (keys strictly increase):
    /// - `shared > matched`: it agrees with the previous key where that one
    ///   fell below `target`: below `target` too, skipped;
    /// - `shared < matched`: it rises above the previous key at a byte where
    ///   that one still equalled `target`: above `target`, the answer (a
    ///   restart entry, which records no shared bytes, may equal `target`);
    /// - `shared == matched`: its suffix is compared with `target`'s rest.
    /// The answer's key is `target`'s first `shared` bytes and its suffix.
    static func locate(_ target: UnsafeRawBufferPointer, in block: Block,
                       raw: UnsafeRawBufferPointer) throws(TableCorruption) -> (entry: Entry, exact: Bool)? {
        try locate(target, in: block, raw: raw, fromRestart: block.lastRestart(below: target, in: raw))
    }

    /// `locate` from restart point `restart` instead of the one the
    /// windows pick: the same answer when `restart`'s key is at most
    /// `target` (a point index names the interval holding it); otherwise
    /// the first entry from `restart` on, never an exact match.
    static func locate(_ target: UnsafeRawBufferPointer, in block: Block, raw: UnsafeRawBufferPointer,
                       fromRestart restart: Int) throws(TableCorruption) -> (entry: Entry, exact: Bool)? {
        guard restart < block.restartCount else {
            throw TableCorruption(detail: "restart \(restart) past the block's \(block.restartCount)")
        }
        var offset = Int(raw.loadFixed32(at: block.restartsOffset + restart * 4))
        var matched = 0
        var previousKeyCount = 0
        while offset < block.restartsOffset {
            let entry = try decode(raw, at: offset, limit: block.restartsOffset, keyCount: previousKeyCount)
            if entry.shared == matched {
                let suffix = UnsafeRawBufferPointer(rebasing: raw[entry.suffix])
                let rest = UnsafeRawBufferPointer(rebasing: target[matched...])
                let common = ByteOrder.commonPrefixLength(suffix, rest)
                if common == suffix.count {
                    // The key is a prefix of `target`: equal, or below it.
                    if common == rest.count { return (entry, true) }
                } else if common == rest.count || suffix[common] > rest[common] {
                    return (entry, false)
                }
                matched += common
            } else if entry.shared < matched {
                // Above `target` — and not equal to it, unless the entry is
                // a restart: a restart stores no shared prefix whatever its
                // key shares, and the windows only promise that the restart
                // after the chosen one is not below `target`.
                guard entry.shared == 0 else { return (entry, false) }
                return (entry, ByteOrder.compare(UnsafeRawBufferPointer(rebasing: raw[entry.suffix]), target) == 0)
            }
            previousKeyCount = entry.shared + entry.suffix.count
            offset = entry.value.upperBound
        }
        return nil
    }

    /// Makes `entry` (found by `seek(target)`, sharing only bytes it shares
    /// with `target`) the current one.
    private mutating func land(on entry: Entry,
                               target: UnsafeRawBufferPointer, raw: UnsafeRawBufferPointer) {
        key.removeAll(keepingCapacity: true)
        key.append(contentsOf: UnsafeRawBufferPointer(rebasing: target[..<entry.shared]))
        key.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[entry.suffix]))
        value = entry.value
        nextOffset = entry.value.upperBound
        isValid = true
    }

    /// Decodes the entry at `nextOffset`; invalid past the last entry.
    mutating func next() throws(TableCorruption) {
        let result = block.withBytes { raw in
            Result { () throws(TableCorruption) in try step(raw) }
        }
        try result.get()
    }

    /// `next` on the block's bytes.
    private mutating func step(_ raw: UnsafeRawBufferPointer) throws(TableCorruption) {
        guard nextOffset < block.restartsOffset else {
            isValid = false
            return
        }
        let entry = try Self.decode(raw, at: nextOffset, limit: block.restartsOffset, keyCount: key.count)
        key.removeLast(key.count - entry.shared)
        key.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[entry.suffix]))
        value = entry.value
        nextOffset = entry.value.upperBound
        isValid = true
    }

    /// The entry header at `offset`: how much of the previous key (of
    /// `keyCount` bytes) it shares, where its key suffix and value lie.
    static func decode(_ raw: UnsafeRawBufferPointer, at offset: Int, limit: Int,
                       keyCount: Int) throws(TableCorruption) -> Entry {
        // Most entries have three one-byte varints (lengths below 128):
        // read them straight, with the same checks.
        if limit - offset >= 3 {
            let shared = Int(raw[offset]), unshared = Int(raw[offset + 1]), valueLength = Int(raw[offset + 2])
            if (shared | unshared | valueLength) & 0x80 == 0 {
                let suffixStart = offset + 3
                let valueStart = suffixStart + unshared
                guard shared <= keyCount, valueStart + valueLength <= limit else {
                    throw TableCorruption(detail: "bad block entry at \(offset)")
                }
                return (shared, suffixStart..<valueStart, valueStart..<(valueStart + valueLength))
            }
        }
        var cursor = ByteCursor(UnsafeRawBufferPointer(rebasing: raw[..<limit]), offset: offset)
        guard let shared = cursor.readVarint(), let unshared = cursor.readVarint(),
              let valueLength = cursor.readVarint(),
              shared <= UInt64(keyCount), unshared <= UInt64(cursor.remaining),
              valueLength <= UInt64(cursor.remaining) - unshared else {
            throw TableCorruption(detail: "bad block entry at \(offset)")
        }
        let suffixStart = cursor.offset
        let valueStart = suffixStart + Int(unshared)
        return (Int(shared), suffixStart..<valueStart, valueStart..<(valueStart + Int(valueLength)))
    }

    func withValue<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try block.withBytes { try body(UnsafeRawBufferPointer(rebasing: $0[value])) }
    }
}
