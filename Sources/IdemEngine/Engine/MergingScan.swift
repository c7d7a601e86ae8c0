/// Ordered iteration over every source of a read view at once: memtables
/// and tables, merged by key, newest version of each key winning.
struct MergingScan {
    /// One input in key order, positioned at its current entry.
    private enum Source {
        case memtable(Memtable, page: [VersionedEntry], index: Int)
        case table(TableIterator)
    }

    private var sources: [Source] = []
    private let prefix: [UInt8]
    private static let pageSize = 256

    /// Positions every source at the first key `>= start` that has `prefix`.
    init(view: ReadView, prefix: [UInt8], from start: [UInt8]?) throws(EngineError) {
        self.prefix = prefix
        let lowerBound = start.map { prefix.lexicographicallyPrecedes($0) ? $0 : prefix } ?? prefix
        for memtable in [view.active] + view.sealed.map(\.memtable) {
            let page = memtable.entries(prefix: prefix, from: lowerBound, limit: Self.pageSize)
            if !page.isEmpty { sources.append(.memtable(memtable, page: page, index: 0)) }
        }
        for table in view.version.tables where !table.metadata.largestKey.lexicographicallyPrecedes(lowerBound) {
            var iterator = table.reader.makeIterator(fillingCache: false)
            try iterator.seek(lowerBound)
            if iterator.isValid && iterator.key.starts(with: prefix) { sources.append(.table(iterator)) }
        }
    }

    /// The next key and its newest entry (which may be dead: the caller
    /// decides), or nil at the end.
    mutating func next() throws(EngineError) -> (key: [UInt8], entry: VersionedEntry)? {
        var smallest: [UInt8]?
        for source in sources {
            let key = Self.key(of: source)
            if smallest == nil || key.lexicographicallyPrecedes(smallest!) { smallest = key }
        }
        guard let key = smallest else { return nil }
        var newest: VersionedEntry?
        var index = 0
        while index < sources.count {
            if Self.key(of: sources[index]) == key {
                let entry = try Self.entry(of: sources[index])
                if entry.sequence > (newest?.sequence ?? 0) { newest = entry }
                if try !advance(&sources[index]) {
                    sources.remove(at: index)
                    continue
                }
            }
            index += 1
        }
        return (key, newest!)
    }

    private static func key(of source: Source) -> [UInt8] {
        switch source {
        case .memtable(_, let page, let index): page[index].key
        case .table(let iterator): iterator.key
        }
    }

    private static func entry(of source: Source) throws(EngineError) -> VersionedEntry {
        switch source {
        case .memtable(_, let page, let index): return page[index]
        case .table(let iterator): return try iterator.entry()
        }
    }

    /// Moves a source on; false when it has no more keys with the prefix.
    private func advance(_ source: inout Source) throws(EngineError) -> Bool {
        switch source {
        case .memtable(let memtable, let page, let index):
            if index + 1 < page.count {
                source = .memtable(memtable, page: page, index: index + 1)
                return true
            }
            guard page.count == Self.pageSize else { return false }
            let next = memtable.entries(prefix: prefix, from: page[index].key + [0], limit: Self.pageSize)
            guard !next.isEmpty else { return false }
            source = .memtable(memtable, page: next, index: 0)
            return true
        case .table(var iterator):
            try iterator.next()
            guard iterator.isValid, iterator.key.starts(with: prefix) else { return false }
            source = .table(iterator)
            return true
        }
    }
}
