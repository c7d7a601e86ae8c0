import Synchronization

/// An LRU cache of decoded blocks, bounded by bytes, shared by every table.
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
        let state: Mutex<LRUList>
        init(capacity: Int) { state = Mutex(LRUList(capacity: capacity)) }
    }

    /// A doubly linked list threaded through an array (indices, not
    /// references), most recently used at `head`.
    struct LRUList {
        struct Node {
            var key: Key
            var block: Block?
            var charge: Int
            var previous: Int
            var next: Int
        }

        let capacity: Int
        var usage = 0
        private(set) var hits = 0
        private(set) var misses = 0
        private var index = SlotIndex()
        private var nodes: [Node] = []
        private var freeSlots: [Int] = []
        private var head = -1
        private var tail = -1

        init(capacity: Int) { self.capacity = capacity }

        mutating func lookup(_ key: Key, countingMiss: Bool) -> Block? {
            guard let slot = index.find(key) else {
                if countingMiss { misses += 1 }
                return nil
            }
            hits += 1
            if slot != head {
                unlink(slot)
                pushFront(slot)
            }
            return nodes[slot].block
        }

        mutating func insert(_ key: Key, _ block: Block) {
            let charge = block.memoryBytes
            guard charge <= capacity, index.find(key) == nil else { return }
            while usage + charge > capacity, tail >= 0 { remove(tail) }
            let node = Node(key: key, block: block, charge: charge, previous: -1, next: -1)
            let slot: Int
            if let free = freeSlots.popLast() {
                nodes[free] = node
                slot = free
            } else {
                nodes.append(node)
                slot = nodes.count - 1
            }
            index.insert(key, slot: slot)
            usage += charge
            pushFront(slot)
        }

        mutating func removeAll(where predicate: (Key) -> Bool) {
            for slot in nodes.indices where nodes[slot].block != nil && predicate(nodes[slot].key) { remove(slot) }
        }

        private mutating func remove(_ slot: Int) {
            unlink(slot)
            index.remove(nodes[slot].key)
            usage -= nodes[slot].charge
            nodes[slot].block = nil
            freeSlots.append(slot)
        }

        private mutating func unlink(_ slot: Int) {
            let previous = nodes[slot].previous
            let next = nodes[slot].next
            if previous >= 0 { nodes[previous].next = next } else { head = next }
            if next >= 0 { nodes[next].previous = previous } else { tail = previous }
            nodes[slot].previous = -1
            nodes[slot].next = -1
        }

        private mutating func pushFront(_ slot: Int) {
            nodes[slot].next = head
            nodes[slot].previous = -1
            if head >= 0 { nodes[head].previous = slot }
            head = slot
            if tail < 0 { tail = slot }
        }
    }

    /// Keys to LRU slots: open addressing with linear probing, at most half
    /// full, and backward-shift deletion — no tombstones, so the constant
    /// insert-and-evict churn of a cache never lengthens the probe chains.
    /// A `Dictionary` would hash every key with SipHash (a tenth of a block
    /// miss's cost); these keys are file numbers and offsets the engine
    /// chose, not client input, so a multiplicative hash does.
    struct SlotIndex {
        private struct Bucket {
            var key: Key
            var slot: Int32
        }

        private static let empty = Bucket(key: Key(fileNumber: 0, offset: 0), slot: -1)
        private var buckets = [Bucket](repeating: SlotIndex.empty, count: 16)
        private var count = 0

        private func home(_ key: Key) -> Int {
            let mixed = key.fileNumber &* 0x9E37_79B9_7F4A_7C15 ^ key.offset &* 0xC2B2_AE3D_27D4_EB4F
            return Int(truncatingIfNeeded: mixed ^ mixed >> 31) & (buckets.count - 1)
        }

        func find(_ key: Key) -> Int? {
            let mask = buckets.count - 1
            var position = home(key)
            while buckets[position].slot >= 0 {
                if buckets[position].key == key { return Int(buckets[position].slot) }
                position = (position + 1) & mask
            }
            return nil
        }

        /// `key` must not be present.
        mutating func insert(_ key: Key, slot: Int) {
            if (count + 1) * 2 > buckets.count { grow() }
            place(Bucket(key: key, slot: Int32(slot)))
            count += 1
        }

        private mutating func place(_ bucket: Bucket) {
            let mask = buckets.count - 1
            var position = home(bucket.key)
            while buckets[position].slot >= 0 { position = (position + 1) & mask }
            buckets[position] = bucket
        }

        mutating func remove(_ key: Key) {
            let mask = buckets.count - 1
            var hole = home(key)
            while buckets[hole].key != key || buckets[hole].slot < 0 {
                guard buckets[hole].slot >= 0 else { return }
                hole = (hole + 1) & mask
            }
            count -= 1
            // Shift back every later bucket of the run whose home is not
            // between the hole and it (cyclically): it may move into the hole.
            var next = (hole + 1) & mask
            while buckets[next].slot >= 0 {
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
            for bucket in old where bucket.slot >= 0 { place(bucket) }
        }
    }
}
