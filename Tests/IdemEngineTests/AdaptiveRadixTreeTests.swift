import Testing
@testable import IdemEngine

final class TestLeaf: RadixTreeLeaf {
    let key: [UInt8]
    let value: Int
    init(_ key: [UInt8], _ value: Int) {
        self.key = key
        self.value = value
    }
    func withKey<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try key.withUnsafeBytes(body)
    }
}

/// Model-based tests: every operation is applied to the tree and to a
/// sorted reference, and every observation must agree.
@Suite struct AdaptiveRadixTreeTests {
    /// Keys from a tiny alphabet (so keys share prefixes and are prefixes of
    /// one another), with 0x00 and 0xFF among the bytes; some long keys so
    /// compressed paths get split.
    static func randomKey(_ generator: inout SplitMix64, wide: Bool) -> [UInt8] {
        let alphabet: [UInt8] = wide ? Array(0...255) : [0x00, 0x01, 0x41, 0x42, 0x7F, 0xFF]
        let length = Int.random(in: 0...(Bool.random(using: &generator) ? 4 : 24), using: &generator)
        return (0..<length).map { _ in alphabet.randomElement(using: &generator)! }
    }

    @Test(arguments: [false, true])
    func matchesSortedReference(wideAlphabet: Bool) {
        let seed = testSeed()
        print("ART model test seed \(seed) wide=\(wideAlphabet)")
        var generator = SplitMix64(seed: seed)
        var tree = AdaptiveRadixTree<TestLeaf>()
        var model: [[UInt8]: Int] = [:]

        for step in 0..<8_000 {
            let key = Self.randomKey(&generator, wide: wideAlphabet)
            switch Int.random(in: 0..<100, using: &generator) {
            case 0..<45:
                let previous = tree.insert(TestLeaf(key, step))
                #expect(previous?.value == model[key], "seed \(seed) step \(step)")
                model[key] = step
            case 45..<70:
                let removed = tree.remove(key)
                #expect(removed?.value == model.removeValue(forKey: key), "seed \(seed) step \(step)")
            case 70..<90:
                #expect(tree.find(key)?.value == model[key], "seed \(seed) step \(step)")
            default:
                let prefix = Array(key.prefix(Int.random(in: 0...2, using: &generator)))
                let lowerBound: [UInt8]? = Bool.random(using: &generator) ? Self.randomKey(&generator, wide: wideAlphabet) : nil
                let limit = Int.random(in: 1...50, using: &generator)
                var seen: [[UInt8]] = []
                tree.forEach(prefix: prefix, from: lowerBound) { leaf in
                    seen.append(leaf.key)
                    return seen.count < limit
                }
                let expected = model.keys
                    .filter { $0.starts(with: prefix) }
                    .filter { key in lowerBound.map { !key.lexicographicallyPrecedes($0) } ?? true }
                    .sorted { $0.lexicographicallyPrecedes($1) }
                    .prefix(limit)
                #expect(seen == Array(expected), "seed \(seed) step \(step) prefix \(prefix) from \(String(describing: lowerBound))")
            }
            #expect(tree.count == model.count)
        }
        var all: [[UInt8]] = []
        tree.forEach { all.append($0.key); return true }
        #expect(all == model.keys.sorted { $0.lexicographicallyPrecedes($1) })
    }

    @Test func keysThatArePrefixesOfEachOther() {
        var tree = AdaptiveRadixTree<TestLeaf>()
        let keys: [[UInt8]] = [[], [0x61], [0x61, 0x62], [0x61, 0x62, 0x63], [0x61, 0x00], [0x61, 0xFF], [0xFF]]
        for (index, key) in keys.enumerated() { tree.insert(TestLeaf(key, index)) }
        for (index, key) in keys.enumerated() { #expect(tree.find(key)?.value == index) }
        #expect(tree.find([0x61, 0x62, 0x63, 0x64]) == nil)
        #expect(tree.find([0x62]) == nil)
        var ordered: [[UInt8]] = []
        tree.forEach { ordered.append($0.key); return true }
        #expect(ordered == [[], [0x61], [0x61, 0x00], [0x61, 0x62], [0x61, 0x62, 0x63], [0x61, 0xFF], [0xFF]])
        var underA: [[UInt8]] = []
        tree.forEach(prefix: [0x61]) { underA.append($0.key); return true }
        #expect(underA == [[0x61], [0x61, 0x00], [0x61, 0x62], [0x61, 0x62, 0x63], [0x61, 0xFF]])
        // Removing inner terminals keeps the longer keys reachable.
        #expect(tree.remove([0x61])?.value == 1)
        #expect(tree.remove([0x61, 0x62])?.value == 2)
        #expect(tree.find([0x61, 0x62, 0x63])?.value == 3)
        #expect(tree.count == 5)
    }

    @Test func growsAndShrinksThroughEveryNodeSize() {
        var tree = AdaptiveRadixTree<TestLeaf>()
        for byte in 0...255 { tree.insert(TestLeaf([0x10, UInt8(byte), 0x20], byte)) }
        for byte in 0...255 { #expect(tree.find([0x10, UInt8(byte), 0x20])?.value == byte) }
        for byte in stride(from: 255, through: 1, by: -1) {
            #expect(tree.remove([0x10, UInt8(byte), 0x20])?.value == byte)
            #expect(tree.find([0x10, 0, 0x20])?.value == 0)
        }
        #expect(tree.count == 1)
        #expect(tree.remove([0x10, 0, 0x20])?.value == 0)
        #expect(tree.count == 0)
        #expect(tree.find([0x10, 0, 0x20]) == nil)
    }
}
