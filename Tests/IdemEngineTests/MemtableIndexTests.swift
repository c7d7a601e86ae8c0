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
            let replaced = index.insert(entry, hash: hash(key))
            #expect(replaced === reference[key], "the index returns the entry it replaces")
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

    /// The flush's sort against the plain one: keys of every length, with
    /// long shared prefixes, zero bytes, and keys that are prefixes of
    /// others (where the 8-byte windows tie), below and above the size
    /// where it switches to a radix sort.
    @Test func keyOrderSortsAsBytesCompare() {
        let seed = testSeed()
        print("key order seed \(seed)")
        var generator = SplitMix64(seed: seed)
        for round in 0..<20 {
            var keys = Set<[UInt8]>()
            let shared = (0..<Int.random(in: 0...12, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            // Every other round past `KeyOrder.radixThreshold`: the radix
            // sort and its tie runs, against the comparison sort below it.
            let count = round.isMultiple(of: 2) ? Int.random(in: 0...3_000, using: &generator)
                                                : Int.random(in: 3_000...20_000, using: &generator)
            for _ in 0..<count {
                let length = Int.random(in: 0...20, using: &generator)
                keys.insert(shared + (0..<length).map { _ in UInt8.random(in: 0...3, using: &generator) * 85 })
            }
            let entries = keys.map { VersionedEntry.make(kind: .value, key: $0, value: [], expiresAt: 0, sequence: 1) }
            let sorted = KeyOrder.sorted(entries.map { Unmanaged.passUnretained($0) }).map { $0.takeUnretainedValue().key }
            #expect(sorted == keys.sorted { ByteOrder.compare($0, $1) < 0 }, "round \(round)")
        }
    }

    /// Writes go to the index alone until a scan asks for order; from then
    /// on the tree sees every write. Flush order is the same either way.
    @Test func theTreeIsBuiltByTheFirstScanAndKeptByLaterWrites() {
        func fill(_ memtable: Memtable, _ numbers: some Sequence<Int>, value: String) {
            for number in numbers {
                memtable.apply(VersionedEntry.make(kind: .value, key: bytes("key:\(100_000 + number)"), value: bytes(value),
                                                   expiresAt: 0, sequence: UInt64(number)))
            }
        }
        let unscanned = Memtable(), scanned = Memtable()
        for memtable in [unscanned, scanned] { fill(memtable, stride(from: 0, to: 2_000, by: 2), value: "a") }
        #expect(scanned.entries(prefix: bytes("key:")).count == 1_000)
        for memtable in [unscanned, scanned] {
            fill(memtable, stride(from: 1, to: 2_000, by: 2), value: "b")
            fill(memtable, 0..<10, value: "c")
        }
        let expected = (0..<2_000).map { bytes("key:\(100_000 + $0)") }
        #expect(scanned.entries(prefix: bytes("key:")).map(\.key) == expected)
        #expect(scanned.entries(prefix: bytes("key:10000")).map(\.value) == Array(repeating: bytes("c"), count: 10))
        for memtable in [unscanned, scanned] {
            #expect(memtable.allEntries().map(\.key) == expected)
            #expect(memtable.allEntries().prefix(12).map(\.value) == Array(repeating: bytes("c"), count: 10) + [bytes("a"), bytes("b")])
            #expect(memtable.count == 2_000)
        }
    }

    /// The index owns the entries: a replaced version is freed at once,
    /// the rest when the memtable goes.
    @Test func replacedEntriesAreFreedAndTheRestWithTheMemtable() {
        weak var replaced: VersionedEntry?
        weak var kept: VersionedEntry?
        do {
            let memtable = Memtable()
            do {
                let first = VersionedEntry.make(kind: .value, key: bytes("k"), value: bytes("1"), expiresAt: 0, sequence: 1)
                let second = VersionedEntry.make(kind: .value, key: bytes("k"), value: bytes("2"), expiresAt: 0, sequence: 2)
                replaced = first
                kept = second
                memtable.apply(first)
                memtable.apply(second)
            }
            #expect(replaced == nil)
            #expect(kept != nil)
            #expect(memtable.get(bytes("k"))?.value == bytes("2"))
        }
        #expect(kept == nil)
    }
}
