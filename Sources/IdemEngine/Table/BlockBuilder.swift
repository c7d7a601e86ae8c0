/// Builds one block of sorted key/value pairs with key prefix compression
/// (docs/FORMAT.md, "Blocks"):
///
///     entry:   shared varint ‖ unshared varint ‖ value length varint ‖
///              key[shared...] ‖ value
///     trailer: restart offset u32 × n ‖ n u32
///
/// Every `restartInterval`-th entry is a restart point storing its whole
/// key (shared = 0), so a reader can binary-search the restart points and
/// then scan at most `restartInterval` entries.
///
/// Invariant: keys are added in strictly increasing order.
struct BlockBuilder {
    let restartInterval: Int
    private(set) var bytes: [UInt8] = []
    private var restarts: [UInt32] = [0]
    private var sinceRestart = 0
    private(set) var lastKey: [UInt8] = []
    private(set) var entryCount = 0

    init(restartInterval: Int = 16) {
        self.restartInterval = restartInterval
    }

    var isEmpty: Bool { entryCount == 0 }

    /// The ordinal of the last restart point: the restart interval that
    /// the entry added last belongs to.
    var lastRestartOrdinal: Int { restarts.count - 1 }

    /// The size `finish()` would return.
    var estimatedSize: Int { bytes.count + restarts.count * 4 + 4 }

    mutating func add(key: UnsafeRawBufferPointer, valueLength: Int, writeValue: (inout [UInt8]) -> Void) {
        precondition(entryCount == 0 || ByteOrder.compare(lastKey, key) < 0, "keys must increase")
        var shared = 0
        if sinceRestart < restartInterval {
            let limit = min(lastKey.count, key.count)
            while shared < limit && lastKey[shared] == key[shared] { shared += 1 }
        } else {
            restarts.append(UInt32(bytes.count))
            sinceRestart = 0
        }
        bytes.appendVarint(UInt64(shared))
        bytes.appendVarint(UInt64(key.count - shared))
        bytes.appendVarint(UInt64(valueLength))
        bytes.append(contentsOf: key[shared...])
        let before = bytes.count
        writeValue(&bytes)
        precondition(bytes.count - before == valueLength, "value length mismatch")
        lastKey.removeAll(keepingCapacity: true)
        lastKey.append(contentsOf: key)
        sinceRestart += 1
        entryCount += 1
    }

    mutating func add(key: [UInt8], value: [UInt8]) {
        key.withUnsafeBytes { k in
            add(key: k, valueLength: value.count) { $0.append(contentsOf: value) }
        }
    }

    mutating func finish() -> [UInt8] {
        var result = bytes
        for restart in restarts { result.appendFixed32(restart) }
        result.appendFixed32(UInt32(restarts.count))
        return result
    }

    mutating func reset() {
        bytes.removeAll(keepingCapacity: true)
        restarts = [0]
        sinceRestart = 0
        lastKey.removeAll(keepingCapacity: true)
        entryCount = 0
    }
}
