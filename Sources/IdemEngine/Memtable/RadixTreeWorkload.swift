/// A window onto the (internal) radix tree for the benchmark suite, so the
/// tree is measured as the engine uses it, with its code specialised inside
/// this module. Not part of the supported API.
@_spi(Benchmarks)
public struct RadixTreeWorkload {
    private var tree = AdaptiveRadixTree<VersionedEntry>()
    private let entries: [VersionedEntry]

    /// Prepares one leaf per key (empty values), outside any measurement.
    public init(keys: [[UInt8]]) {
        entries = keys.enumerated().map { index, key in
            VersionedEntry.make(kind: .value, key: key, value: [], expiresAt: 0, sequence: UInt64(index))
        }
    }

    public mutating func insert(_ index: Int) {
        tree.insert(entries[index])
    }

    public mutating func insertAll() {
        for entry in entries { tree.insert(entry) }
    }

    public func contains(_ key: [UInt8]) -> Bool {
        tree.find(key) != nil
    }

    public mutating func reset() {
        tree = AdaptiveRadixTree()
    }

    public var count: Int { tree.count }
}
