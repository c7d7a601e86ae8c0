import CIdemHardware
#if os(Linux)
import CIdemPosix
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A hash index over a memtable's entries, for point lookups.
///
/// Why not the radix tree (which the memtable builds only for scans): a
/// lookup in the tree walks one node per key byte past the shared
/// prefixes, a cache miss at each level — six or seven for keys like
/// `key:000000123456`. Here a lookup is one probe into a flat array and one
/// look at the entry: the difference between a `GET` or a read-modify-write
/// being bound by memory latency or not.
///
/// Layout: open addressing with linear probing over `capacity` (a power of
/// two) words. A word is an entry's address with the top 16 bits of the
/// key's hash in its (unused) top 16 bits, so a probe rejects almost every
/// other key without touching it; 0 is an empty slot. 8 bytes a slot, at
/// most 3/4 full, and 4 bytes in `occupied`: about 15 bytes per entry.
/// Sized up front for a full memtable (`capacity(forBytes:)`), so it
/// normally never grows.
///
/// Invariants: each key has at most one slot, holding the newest entry
/// inserted for it. A slot owns its entry (one retain, given back when the
/// entry is replaced or the index freed): the index is what keeps a
/// memtable's entries alive — its radix tree, when built, holds them too.
/// Nothing is ever removed (a deletion is a tombstone entry), so probe
/// chains never break. The memtable's lock covers the index.
struct MemtableIndex: ~Copyable {
    private var slots: UnsafeMutablePointer<UInt>
    private(set) var capacity: Int
    private(set) var count = 0
    /// The occupied slots, in insertion order of their keys: what a walk
    /// over every entry visits (the release in `deinit`, a flush's sort),
    /// so that it costs the entries, not the capacity — an index sized for
    /// a full memtable is a million slots, mostly untouched pages.
    private var occupied: [Int32] = []

    private static let addressMask: UInt = (1 << 48) - 1

    /// A capacity (a power of two, within 1 Ki...16 Mi slots) for the
    /// entries of `bytes` of memtable, counting each entry at 128 bytes (a
    /// small key and value plus the entry's overhead) at 3/4 load.
    static func capacity(forBytes bytes: Int) -> Int {
        let wanted = max(1024, min(bytes / 96, 1 << 24))
        return 1 << (Int.bitWidth - (wanted - 1).leadingZeroBitCount)
    }

    init(capacity: Int = 1024) {
        precondition(capacity > 0 && capacity & (capacity - 1) == 0)
        self.capacity = capacity
        slots = Self.allocateZeroed(capacity)
    }

    deinit {
        for index in occupied { Self.entry(slots[Int(index)]).release() }
        free(slots)
    }

    /// Zeroed slots from `calloc`: a large table comes as fresh pages the
    /// kernel zero-fills on first touch, so an index sized for a full
    /// memtable costs memory only as it fills.
    private static func allocateZeroed(_ capacity: Int) -> UnsafeMutablePointer<UInt> {
        guard let memory = calloc(capacity, MemoryLayout<UInt>.stride) else {
            fatalError("out of memory for a memtable index of \(capacity) slots")
        }
        return memory.assumingMemoryBound(to: UInt.self)
    }

    /// The slot word for `entry`, taking the slot's reference to it.
    private static func retainedWord(_ entry: VersionedEntry, hash: UInt64) -> UInt {
        let address = UInt(bitPattern: Unmanaged.passRetained(entry).toOpaque())
        precondition(address & ~addressMask == 0, "entry address beyond 48 bits")
        return address | UInt(hash >> 48) << 48
    }

    /// The entry a word points at, unretained (the slot keeps it alive).
    private static func entry(_ word: UInt) -> Unmanaged<VersionedEntry> {
        Unmanaged<VersionedEntry>.fromOpaque(UnsafeRawPointer(bitPattern: word & addressMask)!)
    }

    /// Backs every slot with a writable page now (see
    /// `idem_prefault_writable`): for an index made ahead of need, off the
    /// hot path, whose pages would otherwise each fault twice under the
    /// commit lock — once read as the zero page, once on the first write.
    func prefault() {
        #if os(Linux)
        idem_prefault_writable(slots, capacity * MemoryLayout<UInt>.stride)
        #endif
    }

    /// Where the slots lie, in one word: their address, and the capacity's
    /// log2 in the top byte. What `prefetch(hint:hash:)` needs, published
    /// by the memtable for readers that do not take its lock.
    var probeHint: UInt { UInt(bitPattern: slots) | UInt(capacity.trailingZeroBitCount) << 56 }

    /// Starts loading the slot a lookup of `hash` probes first, given a
    /// `probeHint`. A hint that is stale (the index grew and freed its old
    /// slots since) only loads a line for nothing: a prefetch never faults.
    @inline(__always)
    static func prefetch(hint: UInt, hash: UInt64) {
        let mask = (1 << Int(hint >> 56)) - 1
        let base = hint & addressMask
        idem_prefetch(UnsafeRawPointer(bitPattern: base &+ UInt(Int(truncatingIfNeeded: hash) & mask) &* 8))
    }

    /// The entry for `key`, if the memtable holds one.
    func find(_ key: UnsafeRawBufferPointer, hash: UInt64) -> VersionedEntry? {
        let tag = UInt(hash >> 48) << 48
        let mask = capacity - 1
        var index = Int(truncatingIfNeeded: hash) & mask
        while true {
            let word = slots[index]
            if word == 0 { return nil }
            if word & ~Self.addressMask == tag {
                let candidate = Self.entry(word)
                if candidate._withUnsafeGuaranteedRef({ $0.withKey { ByteOrder.equal($0, key) } }) {
                    return candidate.takeUnretainedValue()
                }
            }
            index = (index + 1) & mask
        }
    }

    /// Records `entry` (its key hashing to `hash`) as the newest for its
    /// key, and returns the entry it replaces, if the key was present.
    @discardableResult
    mutating func insert(_ entry: VersionedEntry, hash: UInt64) -> VersionedEntry? {
        let tag = UInt(hash >> 48) << 48
        let mask = capacity - 1
        var index = Int(truncatingIfNeeded: hash) & mask
        let replaced: Unmanaged<VersionedEntry>? = entry.withKey { key in
            while true {
                let word = slots[index]
                if word == 0 { return nil }
                if word & ~Self.addressMask == tag {
                    let candidate = Self.entry(word)
                    if candidate._withUnsafeGuaranteedRef({ $0.withKey { ByteOrder.equal($0, key) } }) { return candidate }
                }
                index = (index + 1) & mask
            }
        }
        if let replaced {
            slots[index] = Self.retainedWord(entry, hash: hash)
            return replaced.takeRetainedValue()
        }
        if (count + 1) * 4 > capacity * 3 {
            grow()
            index = Int(truncatingIfNeeded: hash) & (capacity - 1)
        }
        occupied.append(Int32(place(Self.retainedWord(entry, hash: hash), at: index)))
        count += 1
        return nil
    }

    /// Calls `body` with every entry, in no defined order.
    func forEach(_ body: (VersionedEntry) -> Void) {
        for index in occupied { Self.entry(slots[Int(index)])._withUnsafeGuaranteedRef { body($0) } }
    }

    /// Every entry, unretained (the index keeps them alive while it is not
    /// changed), in no defined order.
    func unretainedEntries() -> [Unmanaged<VersionedEntry>] {
        var result: [Unmanaged<VersionedEntry>] = []
        result.reserveCapacity(count)
        for index in occupied { result.append(Self.entry(slots[Int(index)])) }
        return result
    }

    /// Puts `word` in the first free slot from `start` on; returns where.
    private mutating func place(_ word: UInt, at start: Int) -> Int {
        let mask = capacity - 1
        var index = start
        while slots[index] != 0 { index = (index + 1) & mask }
        slots[index] = word
        return index
    }

    /// Doubles the table. The words keep their tags; the full hash for the
    /// new position comes from the entry's key.
    private mutating func grow() {
        let old = slots
        capacity *= 2
        slots = Self.allocateZeroed(capacity)
        for position in occupied.indices {
            let word = old[Int(occupied[position])]
            let hash = Self.entry(word)._withUnsafeGuaranteedRef { $0.withKey { Hash64.hash($0) } }
            occupied[position] = Int32(place(word, at: Int(truncatingIfNeeded: hash) & (capacity - 1)))
        }
        free(old)
    }

    /// Bytes the index occupies.
    var memoryBytes: Int { capacity * MemoryLayout<UInt>.stride + occupied.capacity * MemoryLayout<Int32>.stride }
}
