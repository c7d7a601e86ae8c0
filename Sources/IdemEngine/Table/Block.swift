/// A malformed table structure. The table reader adds the file and offset.
struct TableCorruption: Error {
    var detail: String
}

/// A decoded (decompressed, checksum-verified) block, read-only and shared
/// between readers through the block cache.
///
/// Besides the bytes, a block carries a search aid built when it is
/// decoded: for every entry its *window* — the 8 bytes of its key after the
/// prefix all keys of the block share, as a big-endian integer,
/// zero-padded — and its offset, then that shared prefix. The aid sits in
/// front of the bytes in one allocation, next to the array's header. A seek
/// binary-searches the windows, contiguous and a few cache lines long,
/// instead of the restart array at the block's end and then the entries of
/// a restart interval one after the other (on average half of the
/// interval's entries, each a value apart). Windows order keys: when two
/// differ, the keys differ the same way; only equal windows need the keys
/// compared in full. Nothing of the aid is stored on disk.
///
/// Invariant: immutable. `restartsOffset`, the restart array and every
/// entry were validated at construction: entries lie end to end up to the
/// restart array, each shares no more than the previous key's length,
/// restart offsets are entry offsets and restart entries share nothing.
final class Block: Sendable {
    /// The windows (native byte order), the entry offsets (u32, native,
    /// padded to 8 bytes), the shared prefix padded to 8 bytes, then the
    /// block's bytes.
    private let storage: [UInt8]
    private let contentStart: Int
    let entryCount: Int
    let restartCount: Int
    /// Where entries end and the restart array begins (in the block's bytes).
    let restartsOffset: Int
    /// How many leading bytes every key of the block shares.
    private let windowPrefixLength: Int

    convenience init(_ bytes: [UInt8]) throws(TableCorruption) {
        let built = bytes.withUnsafeBytes { raw in Result { () throws(TableCorruption) in try Block.parts(raw) } }
        let parts = try built.get()
        self.init(parts)
    }

    /// Builds the block from a copy of `bytes`.
    convenience init(_ bytes: UnsafeRawBufferPointer) throws(TableCorruption) {
        self.init(try Block.parts(bytes))
    }

    private init(_ parts: Parts) {
        (storage, contentStart, windowPrefixLength, entryCount, restartCount, restartsOffset) = parts
    }

    private typealias Parts = (storage: [UInt8], contentStart: Int, windowPrefixLength: Int, entryCount: Int,
                               restartCount: Int, restartsOffset: Int)

    private static func parts(_ bytes: UnsafeRawBufferPointer) throws(TableCorruption) -> Parts {
        guard bytes.count >= 4 else { throw TableCorruption(detail: "block shorter than its trailer") }
        let count = Int(bytes.loadFixed32(at: bytes.count - 4))
        guard count >= 1, count <= (bytes.count - 4) / 4 else { throw TableCorruption(detail: "bad restart count \(count)") }
        let restartsOffset = bytes.count - 4 - count * 4
        // An empty block (no entries) has one restart, at 0, and nothing to search.
        guard restartsOffset > 0 else {
            guard count == 1, bytes.loadFixed32(at: 0) == 0 else { throw TableCorruption(detail: "bad restart array") }
            return (Array(bytes), 0, 0, 0, count, 0)
        }
        // Every entry, in order: its offset, validated against the restart
        // array as the walk meets each restart (this runs for every block
        // read from disk). The prefix every key shares is the one the first
        // key shares with the last (keys increase), narrowed as the walk goes.
        var walked: [(offset: Int, shared: Int, suffix: Range<Int>)] = []
        walked.reserveCapacity(restartsOffset / 16)
        var offset = 0
        var keyCount = 0
        var nextRestart = 0
        var firstKey = UnsafeRawBufferPointer(start: nil, count: 0)
        var prefixLength = 0
        while offset < restartsOffset {
            let atRestart = nextRestart < count && Int(bytes.loadFixed32(at: restartsOffset + nextRestart * 4)) == offset
            let entry = try BlockIterator.decode(bytes, at: offset, limit: restartsOffset, keyCount: atRestart ? 0 : keyCount)
            let suffix = UnsafeRawBufferPointer(rebasing: bytes[entry.suffix])
            if walked.isEmpty {
                guard atRestart else { throw TableCorruption(detail: "bad restart array") }
                firstKey = suffix
                prefixLength = suffix.count
            } else if entry.shared == 0 {
                prefixLength = min(prefixLength, ByteOrder.commonPrefixLength(firstKey, suffix))
            } else {
                prefixLength = min(prefixLength, entry.shared)
            }
            if atRestart { nextRestart += 1 }
            walked.append((offset, entry.shared, entry.suffix))
            keyCount = entry.shared + entry.suffix.count
            offset = entry.value.upperBound
        }
        guard nextRestart == count else { throw TableCorruption(detail: "bad restart array") }
        let entries = walked.count
        let offsetsBytes = (entries * 4 + 7) / 8 * 8
        let prefixStart = entries * 8 + offsetsBytes
        let start = prefixStart + (prefixLength + 7) / 8 * 8
        let storage = [UInt8](unsafeUninitializedCapacity: start + bytes.count) { buffer, initialized in
            let out = UnsafeMutableRawBufferPointer(buffer)
            out[(entries * 8)..<start].initializeMemory(as: UInt8.self, repeating: 0)
            for (index, entry) in walked.enumerated() {
                out.storeBytes(of: UInt32(entry.offset), toByteOffset: entries * 8 + index * 4, as: UInt32.self)
            }
            out.baseAddress!.advanced(by: prefixStart).copyMemory(from: firstKey.baseAddress!, byteCount: prefixLength)
            out.baseAddress!.advanced(by: start).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
            // Each key's window, from the key's bytes up to the window's end
            // rebuilt in a scratch buffer: the previous key's first `shared`
            // bytes are already there.
            withUnsafeTemporaryAllocation(byteCount: prefixLength + 8, alignment: 8) { scratch in
                for (index, entry) in walked.enumerated() {
                    let copied = min(entry.suffix.count, max(0, scratch.count - entry.shared))
                    if copied > 0 {
                        scratch.baseAddress!.advanced(by: entry.shared)
                            .copyMemory(from: bytes.baseAddress!.advanced(by: entry.suffix.lowerBound), byteCount: copied)
                    }
                    let keyCount = entry.shared + entry.suffix.count
                    let key = UnsafeRawBufferPointer(start: scratch.baseAddress, count: min(keyCount, scratch.count))
                    out.storeBytes(of: Self.window(key, past: prefixLength), toByteOffset: index * 8, as: UInt64.self)
                }
            }
            initialized = start + bytes.count
        }
        return (storage, start, prefixLength, entries, count, restartsOffset)
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

    var memoryBytes: Int { storage.count + 64 }

    /// The block's bytes.
    @inline(__always)
    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try storage.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[contentStart...])) }
    }

    /// Where the windows place `target`.
    enum Placement {
        /// Every key is below `target`.
        case pastEnd
        /// Keys before `index` are below `target`; the key at `index` is
        /// above it.
        case above(index: Int)
        /// Keys before `index` are below `target`; the key at `index` has
        /// `target`'s window, and may equal it, or lie on either side.
        case sameWindow(index: Int)
    }

    /// The first entry whose window is not below `target`'s.
    func place(_ target: UnsafeRawBufferPointer) -> Placement {
        let count = entryCount
        guard count > 0 else { return .pastEnd }
        let prefixLength = windowPrefixLength
        return storage.withUnsafeBytes { aid -> Placement in
            if prefixLength > 0 {
                let prefixStart = count * 8 + (count * 4 + 7) / 8 * 8
                let length = min(prefixLength, target.count)
                let order = ByteOrder.compare(UnsafeRawBufferPointer(rebasing: target[..<length]),
                                              UnsafeRawBufferPointer(rebasing: aid[prefixStart..<(prefixStart + length)]))
                // Below the shared prefix (or a proper prefix of it): below every key.
                if order < 0 || (order == 0 && length < prefixLength) { return .above(index: 0) }
                if order > 0 { return .pastEnd }
            }
            let targetWindow = Self.window(target, past: prefixLength)
            var low = 0
            var high = count
            while low < high {
                let middle = (low + high) / 2
                if aid.loadUnaligned(fromByteOffset: middle * 8, as: UInt64.self) < targetWindow {
                    low = middle + 1
                } else {
                    high = middle
                }
            }
            guard low < count else { return .pastEnd }
            return aid.loadUnaligned(fromByteOffset: low * 8, as: UInt64.self) == targetWindow
                ? .sameWindow(index: low) : .above(index: low)
        }
    }

    /// Whether two keys of this block with equal windows and equal lengths
    /// of `length` bytes are equal: the window holds all their bytes past
    /// the shared prefix.
    @inline(__always)
    func windowCovers(length: Int) -> Bool {
        length <= windowPrefixLength + 8
    }

    /// The offset of entry `index` in the block's bytes.
    @inline(__always)
    func entryOffset(_ index: Int) -> Int {
        let count = entryCount
        return storage.withUnsafeBytes { Int($0.loadUnaligned(fromByteOffset: count * 8 + index * 4, as: UInt32.self)) }
    }

    /// The offset of the last restart at or before `offset`.
    func restart(atOrBefore offset: Int, in raw: UnsafeRawBufferPointer) -> Int {
        var low = 0
        var high = restartCount - 1
        while low < high {
            let middle = (low + high + 1) / 2
            if Int(raw.loadFixed32(at: restartsOffset + middle * 4)) <= offset { low = middle } else { high = middle - 1 }
        }
        return Int(raw.loadFixed32(at: restartsOffset + low * 4))
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
    /// The hot path of every table read. The windows answer most lookups
    /// alone: the first entry whose window is above `target`'s is the
    /// answer; one with `target`'s window and length is `target` itself,
    /// when the window covers the key. Only a window shared with a longer
    /// or shorter key leaves a scan, from the restart at or before it —
    /// the keys before it are below `target`.
    ///
    /// The answer's key is `target`'s first `shared` bytes and its suffix
    /// (a restart shares nothing; an exact match shares what it shares).
    static func locate(_ target: UnsafeRawBufferPointer, in block: Block,
                       raw: UnsafeRawBufferPointer) throws(TableCorruption) -> (entry: Entry, exact: Bool)? {
        let first: Int
        switch block.place(target) {
        case .pastEnd:
            return nil
        case .above(let index):
            let entry = try decode(raw, at: block.entryOffset(index), limit: block.restartsOffset, keyCount: .max)
            if entry.shared == 0 { return (entry, false) }
            first = index
        case .sameWindow(let index):
            let entry = try decode(raw, at: block.entryOffset(index), limit: block.restartsOffset, keyCount: .max)
            let length = entry.shared + entry.suffix.count
            if length == target.count && block.windowCovers(length: length) { return (entry, true) }
            first = index
        }
        return try scan(for: target, in: block, raw: raw, from: block.restart(atOrBefore: block.entryOffset(first), in: raw))
    }

    /// The entry whose key is `target`, if `block` holds one: `locate`
    /// for point lookups, which need no answer when `target` is absent —
    /// the windows alone settle nearly every miss too.
    static func find(_ target: UnsafeRawBufferPointer, in block: Block,
                     raw: UnsafeRawBufferPointer) throws(TableCorruption) -> Entry? {
        guard case .sameWindow(let index) = block.place(target) else { return nil }
        let offset = block.entryOffset(index)
        let entry = try decode(raw, at: offset, limit: block.restartsOffset, keyCount: .max)
        let length = entry.shared + entry.suffix.count
        if length == target.count && block.windowCovers(length: length) { return entry }
        guard let (found, exact) = try scan(for: target, in: block, raw: raw, from: block.restart(atOrBefore: offset, in: raw)),
              exact else { return nil }
        return found
    }

    /// `locate` by walking entries from the restart at `offset`, none of
    /// the keys before which is at or above `target`; no slice, copy or
    /// reference count per entry, and no key built.
    ///
    /// The scan keeps `matched`, how many leading bytes the previous key
    /// (which is below `target`) shares with `target`; an entry sharing
    /// `shared` bytes with the previous key is then placed without reading
    /// it in full (keys strictly increase):
    /// - `shared > matched`: it agrees with the previous key where that one
    ///   fell below `target`: below `target` too, skipped;
    /// - `shared < matched`: it rises above the previous key at a byte where
    ///   that one still equalled `target`: above `target`, the answer;
    /// - `shared == matched`: its suffix is compared with `target`'s rest.
    /// A restart records no shared bytes whatever its key shares, so an
    /// entry sharing none is compared in full (`matched` starts over): the
    /// scan may cross restarts when many keys have `target`'s window.
    private static func scan(for target: UnsafeRawBufferPointer, in block: Block, raw: UnsafeRawBufferPointer,
                             from start: Int) throws(TableCorruption) -> (entry: Entry, exact: Bool)? {
        var offset = start
        var matched = 0
        var previousKeyCount = 0
        while offset < block.restartsOffset {
            let entry = try decode(raw, at: offset, limit: block.restartsOffset, keyCount: previousKeyCount)
            if entry.shared == 0 { matched = 0 }
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
                return (entry, false)
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
