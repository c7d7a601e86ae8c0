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
        items.sort { left, right in
            if left.window != right.window { return left.window < right.window }
            return left.entry._withUnsafeGuaranteedRef { leftEntry in
                right.entry._withUnsafeGuaranteedRef { rightEntry in
                    leftEntry.withKey { leftKey in rightEntry.withKey { ByteOrder.compare(leftKey, $0) < 0 } }
                }
            }
        }
        // Unretained: retaining each would touch every entry's header once
        // more, in key order — a cache miss each in a large memtable.
        return items.map(\.entry)
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
