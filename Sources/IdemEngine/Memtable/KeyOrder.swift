/// Sorts a sealed memtable's entries by key for its flush (`Memtable`
/// builds no tree unless a scan asks for one).
///
/// Why not `sort` on the entries with a key comparison: each comparison
/// would go through two closures and retain/release two objects. Instead
/// every entry gets an integer *window* — the 8 key bytes after the prefix
/// all keys share, big-endian, zero-padded — and the sort compares windows,
/// falling back to whole keys only when two windows are equal. Keys that
/// differ within their first 8 bytes past the shared prefix (random keys;
/// `ns:key:000000123456`-style keys past their common part) are ordered by
/// integer comparisons alone.
enum KeyOrder {
    private struct Item {
        var window: UInt64
        var entry: Unmanaged<VersionedEntry>
    }

    /// `entries` (distinct keys, kept alive by the caller) in key order.
    static func sorted(_ entries: [Unmanaged<VersionedEntry>]) -> [Unmanaged<VersionedEntry>] {
        guard let first = entries.first else { return [] }
        let shared = first._withUnsafeGuaranteedRef { firstEntry in
            firstEntry.withKey { firstKey in
                var shared = firstKey.count
                for entry in entries.dropFirst() where shared > 0 {
                    shared = entry._withUnsafeGuaranteedRef { $0.withKey { min(shared, ByteOrder.commonPrefixLength(firstKey, $0)) } }
                }
                return shared
            }
        }
        var items = entries.map { entry in
            Item(window: entry._withUnsafeGuaranteedRef { $0.withKey { window(of: $0, after: shared) } }, entry: entry)
        }
        if items.count < radixThreshold {
            items.sort { left, right in
                if left.window != right.window { return left.window < right.window }
                return keyPrecedes(left.entry, right.entry)
            }
        } else {
            sortByWindow(&items)
            // Equal windows (keys equal for 8 bytes past the shared prefix,
            // or one a zero-padded prefix of the other): whole keys decide.
            var start = 0
            while start < items.count {
                var end = start + 1
                while end < items.count && items[end].window == items[start].window { end += 1 }
                if end - start > 1 { items[start..<end].sort { keyPrecedes($0.entry, $1.entry) } }
                start = end
            }
        }
        // Unretained: retaining each would touch every entry's header once
        // more, in key order — a cache miss each in a large memtable.
        return items.map(\.entry)
    }

    /// From this many entries on, the windows are radix-sorted: a flush
    /// sorts a memtable's hundreds of thousands of entries, and a stable
    /// counting pass per window byte moves each item 8 times at most,
    /// where a comparison sort makes ~log2(n) passes of branchy compares.
    static let radixThreshold = 512

    private static func keyPrecedes(_ left: Unmanaged<VersionedEntry>, _ right: Unmanaged<VersionedEntry>) -> Bool {
        left._withUnsafeGuaranteedRef { leftEntry in
            right._withUnsafeGuaranteedRef { rightEntry in
                leftEntry.withKey { leftKey in rightEntry.withKey { ByteOrder.compare(leftKey, $0) < 0 } }
            }
        }
    }

    /// Sorts `items` by window, stably: least significant byte first, one
    /// counting pass over all eight bytes' histograms, then a scatter per
    /// byte — skipped for a byte every window shares (the high bytes of
    /// short keys' windows are zero padding).
    private static func sortByWindow(_ items: inout [Item]) {
        let count = items.count
        // `Item` is a trivial type: uninitialised scratch is fine to fill.
        var scratch = [Item](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
        withUnsafeTemporaryAllocation(of: Int.self, capacity: 8 * 256) { histograms in
            histograms.initialize(repeating: 0)
            items.withUnsafeMutableBufferPointer { source in
                scratch.withUnsafeMutableBufferPointer { target in
                    for item in source {
                        for byte in 0..<8 { histograms[byte * 256 + Int(truncatingIfNeeded: item.window >> (8 * byte)) & 255] += 1 }
                    }
                    var from = source, to = target
                    var sortedInScratch = false
                    for byte in 0..<8 {
                        let base = byte * 256
                        let digitOfFirst = Int(truncatingIfNeeded: from[0].window >> (8 * byte)) & 255
                        if histograms[base + digitOfFirst] == count { continue }
                        var offset = 0
                        for digit in 0..<256 {
                            let inBucket = histograms[base + digit]
                            histograms[base + digit] = offset
                            offset += inBucket
                        }
                        for item in from {
                            let digit = base + Int(truncatingIfNeeded: item.window >> (8 * byte)) & 255
                            to[histograms[digit]] = item
                            histograms[digit] += 1
                        }
                        swap(&from, &to)
                        sortedInScratch.toggle()
                    }
                    if sortedInScratch { source.baseAddress!.update(from: target.baseAddress!, count: count) }
                }
            }
        }
    }

    /// Key bytes `start ..< start + 8` as a big-endian integer, zeros past
    /// the key's end: windows compare as the bytes do, except that a key
    /// and its zero-padded extension tie (the full comparison decides).
    private static func window(of key: UnsafeRawBufferPointer, after start: Int) -> UInt64 {
        var window: UInt64 = 0
        for position in start..<(start + 8) {
            window = window << 8 | UInt64(position < key.count ? key[position] : 0)
        }
        return window
    }
}
