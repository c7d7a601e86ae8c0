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
        let restarts = bytes.withUnsafeBytes { raw in (0..<count).map { Int(raw.loadFixed32(at: offset + $0 * 4)) } }
        guard restarts[0] == 0, zip(restarts, restarts.dropFirst()).allSatisfy({ $0 < $1 }),
              restarts.last! <= offset, offset == 0 ? true : restarts.last! < offset else {
            throw TableCorruption(detail: "bad restart array")
        }
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
    mutating func seek(_ target: UnsafeRawBufferPointer) throws(TableCorruption) {
        // Binary search for the last restart point whose key is < target.
        var low = 0
        var high = block.restartCount - 1
        while low < high {
            let middle = (low + high + 1) / 2
            nextOffset = block.restart(middle)
            key.removeAll(keepingCapacity: true)
            try next()
            if ByteOrder.compare(key, target) < 0 { low = middle } else { high = middle - 1 }
        }
        nextOffset = block.restart(low)
        key.removeAll(keepingCapacity: true)
        try next()
        while isValid && ByteOrder.compare(key, target) < 0 { try next() }
    }

    /// Decodes the entry at `nextOffset`; invalid past the last entry.
    mutating func next() throws(TableCorruption) {
        guard nextOffset < block.restartsOffset else {
            isValid = false
            return
        }
        let limit = block.restartsOffset
        let decoded = block.bytes.withUnsafeBytes { raw -> (shared: Int, suffix: Range<Int>, value: Range<Int>)? in
            var cursor = ByteCursor(UnsafeRawBufferPointer(rebasing: raw[..<limit]), offset: nextOffset)
            guard let shared = cursor.readVarint(), let unshared = cursor.readVarint(),
                  let valueLength = cursor.readVarint(),
                  shared <= UInt64(key.count), unshared <= UInt64(cursor.remaining),
                  valueLength <= UInt64(cursor.remaining) - unshared else { return nil }
            let suffixStart = cursor.offset
            let valueStart = suffixStart + Int(unshared)
            return (Int(shared), suffixStart..<valueStart, valueStart..<(valueStart + Int(valueLength)))
        }
        guard let decoded else { throw TableCorruption(detail: "bad block entry at \(nextOffset)") }
        key.removeLast(key.count - decoded.shared)
        key.append(contentsOf: block.bytes[decoded.suffix])
        value = decoded.value
        nextOffset = decoded.value.upperBound
        isValid = true
    }

    func withValue<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try block.bytes.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[value])) }
    }
}
