import Testing
@testable import IdemEngine

/// The block cache's LRU and its key index (open addressing with
/// backward-shift deletion), against a model: a dictionary and an ordered
/// list of keys, most recent first.
@Suite struct BlockCacheTests {
    static func block(_ tag: UInt8, bytes: Int) throws -> Block {
        var builder = BlockBuilder(restartInterval: 16)
        builder.add(key: [tag], value: [UInt8](repeating: tag, count: bytes))
        return try Block(builder.finish())
    }

    @Test func slotIndexAgreesWithADictionaryUnderChurn() {
        var index = BlockCache.SlotIndex()
        var model: [BlockCache.Key: Int] = [:]
        var generator = SplitMix64(seed: testSeed())
        // Few files and clustered offsets, so keys collide in their home
        // buckets and removals have runs to shift back.
        func randomKey() -> BlockCache.Key {
            BlockCache.Key(fileNumber: generator.next() % 4, offset: (generator.next() % 600) * 4096)
        }
        for step in 0..<40_000 {
            let key = randomKey()
            if model[key] == nil && generator.next() % 3 != 0 {
                index.insert(key, slot: step)
                model[key] = step
            } else if model[key] != nil {
                index.remove(key)
                model[key] = nil
            }
            if step % 97 == 0 {
                for probe in 0..<50 {
                    let key = probe % 2 == 0 ? randomKey() : (model.keys.randomElement(using: &generator) ?? randomKey())
                    #expect(index.find(key) == model[key], "step \(step)")
                }
            }
        }
        for (key, slot) in model { #expect(index.find(key) == slot) }
    }

    @Test func leastRecentlyUsedBlocksGoFirstAndAnEvictedFileLeavesNothing() throws {
        let block = try Self.block(1, bytes: 100)
        let cache = BlockCache(capacityBytes: 3 * block.memoryBytes, shardCount: 1)
        func key(_ file: UInt64, _ offset: UInt64) -> BlockCache.Key { BlockCache.Key(fileNumber: file, offset: offset) }
        for offset: UInt64 in [0, 100, 200] { _ = try cache.block(for: key(7, offset)) { block } }
        #expect(cache.cachedBlock(for: key(7, 0)) != nil, "touches the oldest: 100 is now the least recent")
        _ = try cache.block(for: key(8, 0)) { block }
        #expect(cache.cachedBlock(for: key(7, 100)) == nil)
        for present in [key(7, 0), key(7, 200), key(8, 0)] { #expect(cache.cachedBlock(for: present) != nil) }
        #expect(cache.usage == 3 * block.memoryBytes)
        var loads = 0
        _ = try cache.block(for: key(7, 200)) { loads += 1; return block }
        #expect(loads == 0, "a hit does not load")
        cache.evict(fileNumber: 7)
        #expect(cache.cachedBlock(for: key(7, 0)) == nil && cache.cachedBlock(for: key(7, 200)) == nil)
        #expect(cache.cachedBlock(for: key(8, 0)) != nil)
        #expect(cache.usage == block.memoryBytes)
        // The freed slots are reused.
        for offset: UInt64 in [300, 400] { _ = try cache.block(for: key(9, offset)) { block } }
        #expect(cache.usage == 3 * block.memoryBytes)
        #expect(cache.cachedBlock(for: key(9, 300)) != nil && cache.cachedBlock(for: key(8, 0)) != nil)
    }
}
