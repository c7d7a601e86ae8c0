/// A hash index over a table's keys: for a key's hash, the data block and
/// the restart interval within it where the key is, if the table holds it.
///
/// Why: a point lookup through the index block pays a binary search of the
/// index (a cache miss at each of its lower levels), then the search of
/// the restart windows in the data block. Here one probe — one cache line
/// of slots — names the block and the restart, so a hit costs the probe,
/// the block and the entries of one restart interval (RocksDB's hash index
/// for plain tables and its data-block hash index serve the same purpose).
/// The table's bloom filter still answers first: at 2.5 bytes a key it
/// stays in the CPU's cache where these 11 do not, so the lookups that miss
/// the table (most of them, across many tables) stop at the filter.
///
/// Layout (the table's point index block, docs/FORMAT.md): `slot count u32
/// ‖ slots u64 × count` (little-endian). A slot is
///
///     tag u16 (bits 48–63) ‖ data block ordinal u32 (bits 16–47) ‖ restart ordinal u16 (bits 0–15)
///
/// and 0 is an empty slot (a tag is never 0). A key with hash `h` starts
/// probing at slot `((h & 0xFFFF_FFFF) × count) >> 32` and walks forward
/// (wrapping) until an empty slot; its tag is `h >> 48`, or 1 when that is 0.
/// Slots whose tag matches are candidates, in probe order. The builder
/// keeps at most three slots in four full, so a miss probes about eight
/// slots (one or two cache lines) and meets a matching tag with probability
/// ~8 / 65,536 ≈ 0.01 %: the filter's false positives rarely reach a block.
///
/// Invariant (reader): `slots` is never full — an empty slot ends every probe
/// (the reader also bounds a probe by the slot count, so a corrupt index
/// cannot loop).
struct PointIndex: Sendable {
    /// The block as read from the file: slots are loaded from it in place
    /// (little-endian, unaligned), so opening a table copies nothing — a
    /// 5M-key table's index is 53 MB.
    private let encoded: [UInt8]
    private let count: Int

    /// Nil when the encoding is malformed: a bad length, no empty slot, or
    /// a slot naming a data block past `dataBlocks`.
    init?(_ encoded: [UInt8], dataBlocks: Int) {
        guard encoded.count >= 4 else { return nil }
        let count = encoded.withUnsafeBytes { Int($0.loadFixed32(at: 0)) }
        guard count >= 1, encoded.count == 4 + count * 8 else { return nil }
        let wellFormed = encoded.withUnsafeBytes { raw in
            var sawEmpty = false
            for index in 0..<count {
                let slot = raw.loadFixed64(at: 4 + index * 8)
                if slot == 0 {
                    sawEmpty = true
                } else if Self.block(slot) >= dataBlocks || slot >> 48 == 0 {
                    return false
                }
            }
            return sawEmpty
        }
        guard wellFormed else { return nil }
        self.encoded = encoded
        self.count = count
    }

    var memoryBytes: Int { encoded.count }

    @inline(__always)
    static func tag(_ hash: UInt64) -> UInt64 {
        let tag = hash >> 48
        return tag == 0 ? 1 : tag
    }

    @inline(__always)
    static func home(_ hash: UInt64, slotCount: Int) -> Int {
        Int(((hash & 0xFFFF_FFFF) &* UInt64(slotCount)) >> 32)
    }

    @inline(__always)
    static func block(_ slot: UInt64) -> Int { Int(truncatingIfNeeded: (slot >> 16) & 0xFFFF_FFFF) }

    @inline(__always)
    static func restart(_ slot: UInt64) -> Int { Int(truncatingIfNeeded: slot & 0xFFFF) }

    /// Calls `body(block, restart)` for each candidate location of the key
    /// with `hash`, in probe order, until `body` returns true (found).
    /// Returns whether it did.
    @inline(__always)
    func firstCandidate<E: Error>(hash: UInt64, where body: (_ block: Int, _ restart: Int) throws(E) -> Bool) throws(E) -> Bool {
        let tag = Self.tag(hash)
        var index = Self.home(hash, slotCount: count)
        for _ in 0..<count {
            let slot = encoded.withUnsafeBytes { $0.loadFixed64(at: 4 + index * 8) }
            if slot == 0 { return false }
            if slot >> 48 == tag, try body(Self.block(slot), Self.restart(slot)) { return true }
            index += 1
            if index == count { index = 0 }
        }
        return false
    }

    /// Where slot 0 lies, and how many slots there are: for `TableLoads`
    /// (see `BloomFilter.blocksAddress`).
    var slotsAddress: (address: UInt, count: Int) {
        (encoded.withUnsafeBytes { UInt(bitPattern: $0.baseAddress) + 4 }, count)
    }

    /// Whether some slot's tag matches `hash`: the filter question alone.
    func mayContain(hash: UInt64) -> Bool {
        firstCandidate(hash: hash) { _, _ in true }
    }
}

/// Collects each key's hash and location as a table is built.
struct PointIndexBuilder {
    /// Every key's hash, in order: also what the table's bloom filter is
    /// built from.
    private(set) var hashes: [UInt64] = []
    private var locations: [UInt64] = []
    /// False once a location did not fit a slot (a block ordinal past 32
    /// bits, a restart ordinal past 16); the table then has the filter alone.
    private(set) var fits = true

    mutating func add(hash: UInt64, block: Int, restart: Int) {
        hashes.append(hash)
        guard fits else { return }
        guard block <= Int(UInt32.max), restart <= Int(UInt16.max) else {
            fits = false
            locations = []
            return
        }
        locations.append(UInt64(block) << 16 | UInt64(restart))
    }

    /// The encoded index (see `PointIndex`), or nil when some location did
    /// not fit.
    func finish() -> [UInt8]? {
        guard fits, hashes.count < Int(UInt32.max) / 2 else { return nil }
        // At most 3/4 full, and never full: an empty slot ends every probe.
        let count = hashes.count + hashes.count / 3 + 1
        // Slots are placed straight into the encoding: a second copy would
        // be another 8 bytes a key held while the table is written.
        var encoded = [UInt8](repeating: 0, count: 4 + count * 8)
        encoded.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: UInt32(count).littleEndian, toByteOffset: 0, as: UInt32.self)
            for (hash, location) in zip(hashes, locations) {
                var index = PointIndex.home(hash, slotCount: count)
                while UnsafeRawBufferPointer(raw).loadFixed64(at: 4 + index * 8) != 0 {
                    index += 1
                    if index == count { index = 0 }
                }
                raw.storeBytes(of: (PointIndex.tag(hash) << 48 | location).littleEndian, toByteOffset: 4 + index * 8, as: UInt64.self)
            }
        }
        return encoded
    }
}
