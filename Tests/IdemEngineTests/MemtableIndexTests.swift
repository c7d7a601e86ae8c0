import Testing
@testable import IdemEngine

/// The memtable's hash index against a dictionary: inserts of new keys
/// (through several doublings), replacements, and lookups of present and
/// absent keys; and the memtable answering from it.
@Suite struct MemtableIndexTests {
    @Test func matchesADictionaryThroughGrowthAndReplacement() {
        let seed = testSeed()
        print("memtable index seed \(seed)")
        var generator = SplitMix64(seed: seed)
        var index = MemtableIndex(capacity: 4)
        var reference: [[UInt8]: VersionedEntry] = [:]
        var sequence: UInt64 = 0
        func hash(_ key: [UInt8]) -> UInt64 { key.withUnsafeBytes { Hash64.hash($0) } }
        for _ in 0..<20_000 {
            // Few distinct keys at first, so replacements are common; empty keys included.
            let key = (0..<Int.random(in: 0...3, using: &generator)).map { _ in UInt8.random(in: 0...40, using: &generator) }
            sequence += 1
            let entry = VersionedEntry.make(kind: .value, key: key, value: [UInt8(truncatingIfNeeded: sequence)],
                                            expiresAt: 0, sequence: sequence)
            index.insert(entry, hash: hash(key), replacing: reference[key])
            reference[key] = entry
        }
        #expect(index.count == reference.count)
        for (key, entry) in reference {
            let found = key.withUnsafeBytes { index.find($0, hash: hash(key)) }
            #expect(found === entry, "key \(key)")
        }
        for _ in 0..<2_000 {
            let absent = (0..<4).map { _ in UInt8.random(in: 41...255, using: &generator) }
            #expect(absent.withUnsafeBytes { index.find($0, hash: hash(absent)) } == nil)
        }
    }

    @Test func theMemtableAnswersPointLookupsFromTheIndexAndScansFromTheTree() {
        let memtable = Memtable()
        for number in (0..<5_000).reversed() {
            memtable.apply(VersionedEntry.make(kind: .value, key: bytes("key:\(100_000 + number)"), value: bytes("v1"),
                                               expiresAt: 0, sequence: UInt64(5_000 - number)))
        }
        memtable.apply(VersionedEntry.make(kind: .tombstone, key: bytes("key:100042"), value: [], expiresAt: 0, sequence: 9_000))
        #expect(memtable.get(bytes("key:104999"))?.value == bytes("v1"))
        #expect(memtable.get(bytes("key:100042"))?.isTombstone == true, "the newest version")
        #expect(memtable.get(bytes("key:105000")) == nil)
        #expect(memtable.count == 5_000)
        #expect(memtable.entries(prefix: bytes("key:1000")).map(\.key) == (0..<100).map { bytes("key:\(100_000 + $0)") })
    }
}
