import Synchronization

/// A CLOCK cache of decoded blocks, bounded by bytes, shared by every table.
///
/// Why CLOCK rather than LRU: a hit in an LRU list relinks the block at the
/// front — writes to its neighbours' nodes, cache misses on lines no other
/// part of the read needs — while a CLOCK hit sets one bit in the bucket it
/// has just read. Eviction sweeps a hand over the buckets, giving each
/// block hit since the hand last passed a second chance.
///
/// Sixteen shards, each with its own lock, so readers on different blocks
/// rarely contend — and each shard counts its own hits and misses under
/// that lock (a single counter would be a cache line that every read on
/// every core writes). A block larger than a shard's whole budget is
/// returned to the caller but not cached.
final class BlockCache: Sendable {
    struct Key: Hashable {
        var fileNumber: UInt64
        var offset: UInt64
    }

    private let shards: [Shard]
    let capacity: Int

    init(capacityBytes: Int, shardCount: Int = 16) {
        capacity = capacityBytes
        shards = (0..<shardCount).map { _ in Shard(capacity: max(0, capacityBytes / shardCount)) }
    }

    private func shard(for key: Key) -> Shard {
        shards[Int(truncatingIfNeeded: (key.fileNumber &* 0x9E37_79B9_7F4A_7C15 ^ key.offset >> 6)) & (shards.count - 1)]
    }

    func block(for key: Key, load: () throws(EngineError) -> Block) throws(EngineError) -> Block {
        let shard = shard(for: key)
        if let cached = shard.state.withLock({ $0.lookup(key, countingMiss: true) }) { return cached }
        let block = try load()
        shard.state.withLock { $0.insert(key, block) }
        return block
    }

    /// The cached block, without loading it (nil when not cached; not
    /// counted as a miss: the caller goes on to `block(for:load:)`).
    func cachedBlock(for key: Key) -> Block? {
        shard(for: key).state.withLock { $0.lookup(key, countingMiss: false) }
    }

    var hits: Int { shards.reduce(0) { $0 + $1.state.withLock { $0.hits } } }
    var misses: Int { shards.reduce(0) { $0 + $1.state.withLock { $0.misses } } }

    /// Drops every block of a file (it was deleted).
    func evict(fileNumber: UInt64) {
        for shard in shards { shard.state.withLock { $0.removeAll { $0.fileNumber == fileNumber } } }
    }

    var usage: Int { shards.reduce(0) { $0 + $1.state.withLock { $0.usage } } }

    private final class Shard: Sendable {
        let state: Mutex<ClockTable>
        init(capacity: Int) { state = Mutex(ClockTable(capacity: capacity)) }
    }

    /// One shard's blocks: open addressing with linear probing, at most
    /// half full, the blocks in the buckets themselves (a lookup reads one
    /// bucket), and backward-shift deletion — no tombstones, so the
    /// constant insert-and-evict churn of a cache never lengthens the probe
    /// chains. A `Dictionary` would hash every key with SipHash; these keys
    /// are file numbers and offsets the engine chose, not client input, so
    /// a multiplicative hash does.
    ///
    /// Invariants: a bucket is occupied exactly when it holds a block;
    /// `usage` is the sum of the occupied buckets' charges and stays within
    /// `capacity` after every insert.
    struct ClockTable {
        private struct Bucket {
            var key: Key
            var block: Block?
            var charge: Int32
            /// Hit since the hand last passed.
            var referenced: Bool
        }

        private static let empty = Bucket(key: Key(fileNumber: 0, offset: 0), block: nil, charge: 0, referenced: false)

        let capacity: Int
        private(set) var usage = 0
        private(set) var hits = 0
        private(set) var misses = 0
        private(set) var count = 0
        private var buckets = [Bucket](repeating: ClockTable.empty, count: 16)
        private var hand = 0

        init(capacity: Int) { self.capacity = capacity }

        mutating func lookup(_ key: Key, countingMiss: Bool) -> Block? {
            guard let position = find(key) else {
                if countingMiss { misses += 1 }
                return nil
            }
            hits += 1
            // Only the first hit since the hand passed writes the bucket.
            if !buckets[position].referenced { buckets[position].referenced = true }
            return buckets[position].block
        }

        /// Caches `block` under `key` unless it is there already or larger
        /// than the whole budget, evicting what the hand finds first.
        mutating func insert(_ key: Key, _ block: Block) {
            let charge = block.memoryBytes
            guard charge <= capacity, charge <= Int(Int32.max), find(key) == nil else { return }
            while usage + charge > capacity { evictOne() }
            if (count + 1) * 2 > buckets.count { grow() }
            place(Bucket(key: key, block: block, charge: Int32(charge), referenced: false))
            count += 1
            usage += charge
        }

        mutating func removeAll(where predicate: (Key) -> Bool) {
            let doomed = buckets.filter { $0.block != nil && predicate($0.key) }.map(\.key)
            for key in doomed {
                if let position = find(key) { remove(at: position) }
            }
        }

        private func home(_ key: Key) -> Int {
            let mixed = key.fileNumber &* 0x9E37_79B9_7F4A_7C15 ^ key.offset &* 0xC2B2_AE3D_27D4_EB4F
            return Int(truncatingIfNeeded: mixed ^ mixed >> 31) & (buckets.count - 1)
        }

        private func find(_ key: Key) -> Int? {
            let mask = buckets.count - 1
            var position = home(key)
            while buckets[position].block != nil {
                if buckets[position].key == key { return position }
                position = (position + 1) & mask
            }
            return nil
        }

        /// Advances the hand to the first block not hit since it last
        /// passed (clearing the marks on the way) and evicts it. Ends
        /// within two sweeps: the first clears every mark. Only called
        /// with blocks cached (`usage > 0`).
        private mutating func evictOne() {
            let mask = buckets.count - 1
            while true {
                hand = (hand + 1) & mask
                guard buckets[hand].block != nil else { continue }
                if buckets[hand].referenced {
                    buckets[hand].referenced = false
                    continue
                }
                remove(at: hand)
                // A bucket shifted back into the hand's place is looked at next.
                hand = (hand - 1) & mask
                return
            }
        }

        private mutating func place(_ bucket: Bucket) {
            let mask = buckets.count - 1
            var position = home(bucket.key)
            while buckets[position].block != nil { position = (position + 1) & mask }
            buckets[position] = bucket
        }

        private mutating func remove(at position: Int) {
            let mask = buckets.count - 1
            usage -= Int(buckets[position].charge)
            count -= 1
            var hole = position
            // Shift back every later bucket of the run whose home is not
            // between the hole and it (cyclically): it may move into the hole.
            var next = (hole + 1) & mask
            while buckets[next].block != nil {
                let wanted = home(buckets[next].key)
                let stays = hole <= next ? (hole < wanted && wanted <= next) : (hole < wanted || wanted <= next)
                if !stays {
                    buckets[hole] = buckets[next]
                    hole = next
                }
                next = (next + 1) & mask
            }
            buckets[hole] = Self.empty
        }

        private mutating func grow() {
            let old = buckets
            buckets = [Bucket](repeating: Self.empty, count: old.count * 2)
            for bucket in old where bucket.block != nil { place(bucket) }
            hand = 0
        }
    }
}
