import Testing
@testable import IdemEngine

infix operator ~==: ComparisonPrecedence

/// Whether two optional blocks are the same block (or both absent).
func ~== (left: Block?, right: Block?) -> Bool {
    switch (left, right) {
    case (nil, nil): true
    case let (left?, right?): left.isSame(as: right)
    default: false
    }
}

/// The block cache's CLOCK table (open addressing with backward-shift
/// deletion, blocks in the buckets) against a model: a dictionary of the
/// blocks inserted.
@Suite struct BlockCacheTests {
    static func block(_ tag: UInt8, bytes: Int) throws -> Block {
        var builder = BlockBuilder(restartInterval: 16)
        builder.add(key: [tag], value: [UInt8](repeating: tag, count: bytes))
        return try Block(builder.finish())
    }

    static func key(_ file: UInt64, _ offset: UInt64) -> BlockCache.Key { BlockCache.Key(fileNumber: file, offset: offset) }

    /// With room for everything, the table is a dictionary: every lookup
    /// agrees with the model under inserts and whole-file removals, on keys
    /// made to collide in their home buckets so removals shift runs back.
    @Test func agreesWithADictionaryUnderChurn() throws {
        let blocks = try (0..<8).map { try Self.block(UInt8($0), bytes: 10) }
        var table = BlockCache.ClockTable(capacity: .max)
        var model: [BlockCache.Key: Block] = [:]
        var generator = SplitMix64(seed: testSeed())
        func randomKey() -> BlockCache.Key { Self.key(generator.next() % 6, (generator.next() % 600) * 4096) }
        for step in 0..<40_000 {
            let key = randomKey()
            if generator.next() % 500 == 0 {
                let file = key.fileNumber
                table.removeAll { $0.fileNumber == file }
                model = model.filter { $0.key.fileNumber != file }
            } else if model[key] == nil {
                let block = blocks[Int(generator.next() % 8)]
                table.insert(key, block)
                model[key] = block
            }
            if step % 97 == 0 {
                for probe in 0..<50 {
                    let key = probe % 2 == 0 ? randomKey() : (model.keys.randomElement(using: &generator) ?? randomKey())
                    #expect(table.lookup(key, countingMiss: true) ~== model[key], "step \(step)")
                }
                #expect(table.count == model.count)
                #expect(table.usage == model.values.reduce(0) { $0 + $1.memoryBytes })
            }
        }
    }

    /// With a small budget: never over it, never a wrong block, and the
    /// usage is what the cached blocks weigh.
    @Test func staysWithinItsBudgetAndNeverAnswersWithAnotherKeysBlock() throws {
        let blocks = try (0..<16).map { try Self.block(UInt8($0), bytes: 50 + 40 * $0) }
        let capacity = 10 * blocks[8].memoryBytes
        var table = BlockCache.ClockTable(capacity: capacity)
        var inserted: [BlockCache.Key: Block] = [:]
        var generator = SplitMix64(seed: testSeed())
        for _ in 0..<30_000 {
            let key = Self.key(generator.next() % 3, generator.next() % 64)
            if let found = table.lookup(key, countingMiss: true) {
                #expect(found ~== inserted[key])
            } else {
                let block = blocks[Int(generator.next() % 16)]
                table.insert(key, block)
                inserted[key] = block
            }
            #expect(table.usage <= capacity)
        }
        var weighed = 0
        for (key, block) in inserted where table.lookup(key, countingMiss: false) ~== block { weighed += block.memoryBytes }
        #expect(weighed == table.usage)
    }

    @Test func aBlockHitSinceTheHandPassedOutlivesOneThatWasNot() throws {
        let block = try Self.block(1, bytes: 100)
        let cache = BlockCache(capacityBytes: 3 * block.memoryBytes, shardCount: 1)
        let key = Self.key
        for offset: UInt64 in [0, 100, 200] { _ = try cache.block(for: key(7, offset)) { block } }
        #expect(cache.cachedBlock(for: key(7, 0)) != nil && cache.cachedBlock(for: key(7, 200)) != nil)
        _ = try cache.block(for: key(8, 0)) { block }
        // The blocks hit stay; the one never hit made room, wherever the hand was.
        #expect(cache.cachedBlock(for: key(7, 0)) != nil && cache.cachedBlock(for: key(7, 200)) != nil)
        #expect(cache.cachedBlock(for: key(7, 100)) == nil && cache.cachedBlock(for: key(8, 0)) != nil)
        #expect(cache.usage == 3 * block.memoryBytes)
        var loads = 0
        _ = try cache.block(for: key(8, 0)) { loads += 1; return block }
        #expect(loads == 0, "a hit does not load")
        cache.evict(fileNumber: 7)
        #expect(cache.cachedBlock(for: key(7, 0)) == nil && cache.cachedBlock(for: key(7, 200)) == nil)
        #expect(cache.cachedBlock(for: key(8, 0)) != nil)
        #expect(cache.usage == block.memoryBytes)
        for offset: UInt64 in [300, 400] { _ = try cache.block(for: key(9, offset)) { block } }
        #expect(cache.usage == 3 * block.memoryBytes)
        #expect(cache.cachedBlock(for: key(9, 300)) != nil && cache.cachedBlock(for: key(8, 0)) != nil)
    }

    /// A block larger than the whole budget is handed back, not cached.
    @Test func aBlockLargerThanTheBudgetIsNotCached() throws {
        let small = try Self.block(1, bytes: 10), large = try Self.block(2, bytes: 5000)
        let cache = BlockCache(capacityBytes: 2 * small.memoryBytes + 100, shardCount: 1)
        _ = try cache.block(for: Self.key(1, 0)) { small }
        let handedOut = try cache.block(for: Self.key(1, 1)) { large }
        #expect(handedOut ~== large)
        #expect(cache.cachedBlock(for: Self.key(1, 1)) == nil && (cache.cachedBlock(for: Self.key(1, 0)) ~== small))
    }
}
