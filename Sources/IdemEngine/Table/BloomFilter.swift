/// A cache-line-blocked bloom filter (Putze, Sanders, Singler 2007): each
/// key picks one 64-byte block and sets all its probe bits inside it, so a
/// lookup touches a single cache line.
///
/// Encoding (the table's filter block): `k u8 ‖ block count u32 ‖ blocks`.
/// A filter with zero blocks answers "maybe" for every key.
///
/// Sizing: the engine probes every live partition on a miss, so the
/// default of 20 bits per key (k = 14; measured false-positive rate ≈ 0.02 %
/// for this blocked layout) keeps the expected false block reads of a miss
/// across ~100 tables near 0.02 — under the 0.05 budget (cf. Monkey, SIGMOD '17:
/// false positives add up across runs, so each must be rarer).
struct BloomFilterBuilder {
    private var hashes: [UInt64] = []
    let bitsPerKey: Int

    init(bitsPerKey: Int, hashes: [UInt64] = []) {
        self.bitsPerKey = max(1, bitsPerKey)
        self.hashes = hashes
    }

    mutating func add(_ key: UnsafeRawBufferPointer) {
        add(hash: Hash64.hash(key))
    }

    mutating func add(hash: UInt64) {
        hashes.append(hash)
    }

    func finish() -> [UInt8] {
        let probes = UInt8(min(16, max(1, Int((Double(bitsPerKey) * 0.69).rounded()))))
        let blockCount = max(1, (hashes.count * bitsPerKey + 511) / 512)
        // Through a buffer pointer: the array's subscript in the closure
        // checked uniqueness and bounds on each of the ~14 bits of every
        // key (a tenth of a merge's CPU).
        var words = [UInt64](repeating: 0, count: blockCount * 8)
        words.withUnsafeMutableBufferPointer { words in
            for hash in hashes {
                let base = BloomFilter.blockIndex(hash, blockCount: blockCount) * 8
                BloomFilter.forEachBit(hash, probes: Int(probes)) { bit in
                    words[base + bit >> 6] |= 1 << UInt64(bit & 63)
                }
            }
            for index in words.indices { words[index] = words[index].littleEndian }
        }
        var encoded: [UInt8] = []
        encoded.reserveCapacity(5 + blockCount * 64)
        encoded.append(probes)
        encoded.appendFixed32(UInt32(blockCount))
        words.withUnsafeBytes { encoded.append(contentsOf: $0) }
        return encoded
    }
}

struct BloomFilter: Sendable {
    private let probes: Int
    private let blockCount: Int
    private let words: [UInt64]

    /// Nil when the encoding is malformed.
    init?(_ encoded: [UInt8]) {
        guard encoded.count >= 5 else { return nil }
        let probes = Int(encoded[0])
        let count = encoded.withUnsafeBytes { Int($0.loadFixed32(at: 1)) }
        guard probes >= 1, probes <= 16, encoded.count == 5 + count * 64 else { return nil }
        self.probes = probes
        self.blockCount = count
        self.words = encoded.withUnsafeBytes { raw in
            (0..<(count * 8)).map { raw.loadFixed64(at: 5 + $0 * 8) }
        }
    }

    func mayContain(_ key: UnsafeRawBufferPointer) -> Bool {
        mayContain(hash: Hash64.hash(key))
    }

    func mayContain(hash: UInt64) -> Bool {
        guard blockCount > 0 else { return true }
        let base = Self.blockIndex(hash, blockCount: blockCount) * 8
        return words.withUnsafeBufferPointer { words in
            // The same probe sequence as `forEachBit`, stopping at the first clear bit.
            var x = (hash << 32) | (hash >> 32)
            for _ in 0..<probes {
                x = x &* 0xBF58_476D_1CE4_E5B9 &+ 0x94D0_49BB_1331_11EB
                let bit = Int(truncatingIfNeeded: x >> 55)
                if words[base + bit >> 6] & (1 << UInt64(bit & 63)) == 0 { return false }
            }
            return true
        }
    }

    /// Where the blocks lie, and how many there are: for `TableLoads`,
    /// which only prefetches from it (the address outlives the closure
    /// that read it, but the words never move: they are a `let`).
    var blocksAddress: (address: UInt, count: Int) {
        (words.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) }, blockCount)
    }

    var memoryBytes: Int { words.count * 8 }

    @inline(__always)
    static func blockIndex(_ hash: UInt64, blockCount: Int) -> Int {
        // Multiply-shift maps the high 32 bits onto [0, blockCount).
        Int(((hash >> 32) &* UInt64(blockCount)) >> 32)
    }

    /// Bit positions 0..<512 within the block: the top 9 bits of a
    /// multiplicative sequence seeded from the hash (independent of the
    /// bits that chose the block). Plain double hashing mod 512 makes the
    /// probes of two keys arithmetic progressions that overlap too often.
    @inline(__always)
    static func forEachBit(_ hash: UInt64, probes: Int, _ body: (Int) -> Void) {
        var x = (hash << 32) | (hash >> 32)
        for _ in 0..<probes {
            x = x &* 0xBF58_476D_1CE4_E5B9 &+ 0x94D0_49BB_1331_11EB
            body(Int(truncatingIfNeeded: x >> 55))
        }
    }
}
