/// A malformed table structure. The table reader adds the file and offset.
struct TableCorruption: Error {
    var detail: String
}

/// A decoded (decompressed, checksum-verified) block, read-only and shared
/// between readers through the block cache.
///
/// Invariant: `restartsOffset` and the restart array were validated at
/// construction; entries are validated as they are decoded.
final class Block: Sendable {
    let bytes: [UInt8]
    let restartCount: Int
    /// Where entries end and the restart array begins.
    let restartsOffset: Int

    init(_ bytes: [UInt8]) throws(TableCorruption) {
        guard bytes.count >= 4 else { throw TableCorruption(detail: "block shorter than its trailer") }
        let count = bytes.withUnsafeBytes { Int($0.loadFixed32(at: bytes.count - 4)) }
        guard count >= 1, count <= (bytes.count - 4) / 4 else { throw TableCorruption(detail: "bad restart count \(count)") }
        let offset = bytes.count - 4 - count * 4
        // Restarts start at 0, strictly increase, and point before the array
        // (checked in place: this runs for every block read from disk).
        let restartsValid = bytes.withUnsafeBytes { raw in
            var previous = -1
            for index in 0..<count {
                let restart = Int(raw.loadFixed32(at: offset + index * 4))
                guard index == 0 ? restart == 0 : restart > previous else { return false }
                previous = restart
            }
            return offset == 0 ? previous == 0 : previous < offset
        }
        guard restartsValid else { throw TableCorruption(detail: "bad restart array") }
        self.bytes = bytes
        self.restartCount = count
        self.restartsOffset = offset
    }

    var memoryBytes: Int { bytes.count + 64 }

    func restart(_ index: Int) -> Int {
        bytes.withUnsafeBytes { Int($0.loadFixed32(at: restartsOffset + index * 4)) }
    }
}

/// Walks a block's entries in order. `key` holds the current entry's full
/// key; `value` its value's byte range in `block.bytes`.
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
    ///
    /// The hot path of every table read: the binary search compares the
    /// keys at restart points where they lie (a restart entry shares no
    /// prefix, so its key is its suffix), and the whole seek reads the block
    /// through one pointer — no slice, copy or reference count per entry.
    ///
    /// The scan after the binary search builds no key until it stops. It
    /// keeps `matched`, how many leading bytes the previous key (which is
    /// below `target`) shares with `target`; an entry sharing `shared`
    /// bytes with the previous key is then placed without reading it in
    /// full (keys strictly increase):
    /// - `shared > matched`: it agrees with the previous key where that one
    ///   fell below `target`: below `target` too, skipped;
    /// - `shared < matched`: it rises above the previous key at a byte where
    ///   that one still equalled `target`: above `target`, the answer;
    /// - `shared == matched`: its suffix is compared with `target`'s rest.
    /// The answer's key is `target`'s first `shared` bytes and its suffix.
    mutating func seek(_ target: UnsafeRawBufferPointer) throws(TableCorruption) {
        let block = self.block
        let result = block.bytes.withUnsafeBytes { raw in
            Result { () throws(TableCorruption) in
                var low = 0
                var high = block.restartCount - 1
                while low < high {
                    let middle = (low + high + 1) / 2
                    let offset = Int(raw.loadFixed32(at: block.restartsOffset + middle * 4))
                    let entry = try Self.decode(raw, at: offset, limit: block.restartsOffset, keyCount: 0)
                    if ByteOrder.compare(UnsafeRawBufferPointer(rebasing: raw[entry.suffix]), target) < 0 {
                        low = middle
                    } else {
                        high = middle - 1
                    }
                }
                var offset = Int(raw.loadFixed32(at: block.restartsOffset + low * 4))
                var matched = 0
                var previousKeyCount = 0
                while offset < block.restartsOffset {
                    let entry = try Self.decode(raw, at: offset, limit: block.restartsOffset, keyCount: previousKeyCount)
                    let keyCount = entry.shared + entry.suffix.count
                    if entry.shared == matched {
                        let suffix = UnsafeRawBufferPointer(rebasing: raw[entry.suffix])
                        let rest = UnsafeRawBufferPointer(rebasing: target[matched...])
                        let common = ByteOrder.commonPrefixLength(suffix, rest)
                        let below = common < suffix.count
                            ? common < rest.count && suffix[common] < rest[common]
                            : common < rest.count
                        if !below { return land(on: entry, target: target, raw: raw) }
                        matched += common
                    } else if entry.shared < matched {
                        return land(on: entry, target: target, raw: raw)
                    }
                    previousKeyCount = keyCount
                    offset = entry.value.upperBound
                }
                nextOffset = offset
                key.removeAll(keepingCapacity: true)
                isValid = false
            }
        }
        try result.get()
    }

    /// Makes `entry` (found by `seek(target)`, sharing only bytes it shares
    /// with `target`) the current one.
    private mutating func land(on entry: (shared: Int, suffix: Range<Int>, value: Range<Int>),
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
        let result = block.bytes.withUnsafeBytes { raw in
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
    private static func decode(_ raw: UnsafeRawBufferPointer, at offset: Int, limit: Int,
                               keyCount: Int) throws(TableCorruption) -> (shared: Int, suffix: Range<Int>, value: Range<Int>) {
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
        try block.bytes.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[value])) }
    }
}
