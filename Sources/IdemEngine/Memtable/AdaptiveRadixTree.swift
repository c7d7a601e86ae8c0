/// What an adaptive radix tree stores: an object that knows its own full
/// key. Lazy expansion keeps leaves high in the tree, so a leaf's key is the
/// only record of the bytes below it, and lookups compare it in full.
///
/// Invariant: a leaf's key never changes while the leaf is in a tree.
protocol RadixTreeLeaf: AnyObject {
    func withKey<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}

/// An adaptive radix tree (Leis et al., ICDE 2013) mapping byte-string keys
/// to leaves, in key order.
///
/// - Inner nodes adapt their fan-out: 4, 16, 48 or 256 children, growing
///   and shrinking as children come and go.
/// - Path compression: each inner node holds the bytes all keys below it
///   share (`prefix`, stored in full — "pessimistic" — so no lookup ever
///   has to re-check a leaf to learn the skipped bytes).
/// - Lazy expansion: a subtree holding a single key is just its leaf.
/// - Keys that are prefixes of other keys: the key that ends exactly at an
///   inner node is that node's `terminal` leaf, ordered before its children.
///
/// Not thread-safe by itself; `Memtable` wraps it in a reader-writer lock.
/// Keys of any length (including empty) and any bytes (0x00, 0xFF) work.
struct AdaptiveRadixTree<Leaf: RadixTreeLeaf> {
    typealias Child = RadixTreeChild<Leaf>
    typealias Node = RadixTreeNode<Leaf>

    private var root: Child?
    private(set) var count = 0

    init() {}

    // MARK: Lookup

    /// Walks down without reference counting: the caller holds the tree
    /// (under the memtable's read lock), so every node on the path stays
    /// alive; only the leaf found is retained, to be returned.
    func find(_ key: UnsafeRawBufferPointer) -> Leaf? {
        guard let root else { return nil }
        var node: Unmanaged<Node>
        switch root {
        case .leaf(let leaf):
            return leaf.withKey { ByteOrder.equal($0, key) } ? leaf : nil
        case .node(let first):
            node = Unmanaged.passUnretained(first)
        }
        var depth = 0
        while true {
            let step = node._withUnsafeGuaranteedRef { current -> Node.Step in
                guard current.prefixMatches(key, at: depth) else { return .miss }
                depth += current.prefixLength
                if depth == key.count { return current.terminal.map(Node.Step.leaf) ?? .miss }
                let step = current.step(for: key[depth])
                depth += 1
                return step
            }
            switch step {
            case .miss:
                return nil
            case .leaf(let leaf):
                return leaf.withKey { ByteOrder.equal($0, key) } ? leaf : nil
            case .node(let next):
                node = next
            }
        }
    }

    func find(_ key: [UInt8]) -> Leaf? {
        key.withUnsafeBytes { find($0) }
    }

    // MARK: Insert

    /// Inserts `leaf` under its key, replacing and returning any leaf that
    /// held the same key.
    @discardableResult
    mutating func insert(_ leaf: Leaf) -> Leaf? {
        guard let root else {
            self.root = .leaf(leaf)
            count += 1
            return nil
        }
        let (replacement, previous) = leaf.withKey { key in
            Self.insert(leaf, key: key, into: root, depth: 0)
        }
        self.root = replacement
        if previous == nil { count += 1 }
        return previous
    }

    private static func insert(_ leaf: Leaf, key: UnsafeRawBufferPointer, into child: Child, depth: Int) -> (Child, Leaf?) {
        switch child {
        case .leaf(let existing):
            return existing.withKey { existingKey in
                if ByteOrder.equal(existingKey, key) { return (.leaf(leaf), existing) }
                // Two keys in one slot: a new node holds their common bytes.
                let common = commonPrefixLength(existingKey, key, from: depth)
                let node = Node(prefix: Array(key[depth..<(depth + common)]))
                let split = depth + common
                node.place(existing, key: existingKey, at: split)
                node.place(leaf, key: key, at: split)
                return (.node(node), nil)
            }
        case .node(let node):
            let matched = node.matchedPrefixLength(key, at: depth)
            if matched < node.prefix.count {
                // The key leaves this node's compressed path part-way: a new
                // parent takes the shared part, the old node keeps the rest.
                let parent = Node(prefix: Array(node.prefix[0..<matched]))
                let branchByte = node.prefix[matched]
                node.prefix = Array(node.prefix[(matched + 1)...])
                parent.addChild(.node(node), for: branchByte)
                parent.place(leaf, key: key, at: depth + matched)
                return (.node(parent), nil)
            }
            let next = depth + node.prefix.count
            if next == key.count {
                let previous = node.terminal
                node.terminal = leaf
                return (child, previous)
            }
            let byte = key[next]
            if let existing = node.child(for: byte) {
                let (replacement, previous) = insert(leaf, key: key, into: existing, depth: next + 1)
                if !replacement.isSame(as: existing) { node.replaceChild(for: byte, with: replacement) }
                return (child, previous)
            }
            let target = node.isFull ? node.grown() : node
            target.addChild(.leaf(leaf), for: byte)
            return (.node(target), nil)
        }
    }

    // MARK: Remove

    /// Removes and returns the leaf stored under `key`, if any.
    @discardableResult
    mutating func remove(_ key: [UInt8]) -> Leaf? {
        guard let root else { return nil }
        let (replacement, removed) = key.withUnsafeBytes { Self.remove($0, from: root, depth: 0) }
        if removed != nil {
            self.root = replacement
            count -= 1
        }
        return removed
    }

    private static func remove(_ key: UnsafeRawBufferPointer, from child: Child, depth: Int) -> (Child?, Leaf?) {
        switch child {
        case .leaf(let leaf):
            return leaf.withKey { ByteOrder.equal($0, key) } ? (nil, leaf) : (child, nil)
        case .node(let node):
            guard node.prefixMatches(key, at: depth) else { return (child, nil) }
            let next = depth + node.prefix.count
            if next == key.count {
                guard let terminal = node.terminal else { return (child, nil) }
                node.terminal = nil
                return (node.collapsed(), terminal)
            }
            let byte = key[next]
            guard let existing = node.child(for: byte) else { return (child, nil) }
            let (replacement, removed) = remove(key, from: existing, depth: next + 1)
            guard removed != nil else { return (child, nil) }
            if let replacement {
                if !replacement.isSame(as: existing) { node.replaceChild(for: byte, with: replacement) }
            } else {
                node.removeChild(for: byte)
            }
            return (node.collapsed(), removed)
        }
    }

    // MARK: Ordered iteration

    /// Visits leaves in key order, starting at the first key `>= lowerBound`
    /// (all keys when nil), until `body` returns false.
    func forEach(from lowerBound: [UInt8]? = nil, _ body: (Leaf) throws -> Bool) rethrows {
        guard let root else { return }
        if let lowerBound {
            _ = try lowerBound.withUnsafeBytes { try Self.visit(root, depth: 0, lowerBound: $0, body) }
        } else {
            _ = try Self.visitAll(root, body)
        }
    }

    /// Visits, in key order, the leaves whose keys start with `prefix` and
    /// are `>= lowerBound`, until `body` returns false.
    func forEach(prefix: [UInt8], from lowerBound: [UInt8]? = nil, _ body: (Leaf) throws -> Bool) rethrows {
        let start = lowerBound.map { Self.isLess(prefix, $0) ? $0 : prefix } ?? prefix
        try forEach(from: start) { leaf in
            guard leaf.withKey({ ByteOrder.hasPrefix($0, prefix) }) else { return false }
            return try body(leaf)
        }
    }

    private static func visitAll(_ child: Child, _ body: (Leaf) throws -> Bool) rethrows -> Bool {
        switch child {
        case .leaf(let leaf):
            return try body(leaf)
        case .node(let node):
            if let terminal = node.terminal, try !body(terminal) { return false }
            return try node.forEachChild { _, child in try visitAll(child, body) }
        }
    }

    /// In-order visit of the keys `>= lowerBound`, pruning whole subtrees
    /// that lie below the bound and dropping the bound for subtrees that lie
    /// wholly above it.
    private static func visit(_ child: Child, depth: Int, lowerBound: UnsafeRawBufferPointer,
                              _ body: (Leaf) throws -> Bool) rethrows -> Bool {
        switch child {
        case .leaf(let leaf):
            if leaf.withKey({ isLess($0, lowerBound) }) { return true }
            return try body(leaf)
        case .node(let node):
            var position = depth
            for byte in node.prefix {
                if position == lowerBound.count { return try visitAll(child, body) }
                if byte > lowerBound[position] { return try visitAll(child, body) }
                if byte < lowerBound[position] { return true }
                position += 1
            }
            if position == lowerBound.count { return try visitAll(child, body) }
            // The terminal key is a proper prefix of the bound: it is smaller.
            let boundByte = lowerBound[position]
            return try node.forEachChild { byte, grandchild in
                if byte < boundByte { return true }
                if byte > boundByte { return try visitAll(grandchild, body) }
                return try visit(grandchild, depth: position + 1, lowerBound: lowerBound, body)
            }
        }
    }

    private static func isLess(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        ByteOrder.compare(a, b) < 0
    }

    private static func isLess(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        ByteOrder.compare(a, b) < 0
    }

    private static func commonPrefixLength(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer, from depth: Int) -> Int {
        let limit = min(a.count, b.count)
        var index = depth
        while index < limit && a[index] == b[index] { index += 1 }
        return index - depth
    }
}

enum RadixTreeChild<Leaf: RadixTreeLeaf> {
    case leaf(Leaf)
    case node(RadixTreeNode<Leaf>)

    func isSame(as other: RadixTreeChild) -> Bool {
        switch (self, other) {
        case (.leaf(let a), .leaf(let b)): return a === b
        case (.node(let a), .node(let b)): return a === b
        default: return false
        }
    }
}

/// One inner node. Its `kind` decides how `keys` and `slots` are laid out:
///
/// - `.node4`, `.node16`: `smallKeys[i]` is the byte leading to `slots[i]`,
///   both dense and sorted by byte, `count` entries. The bytes sit inside
///   the node object (no separate allocation, one cache miss fewer per
///   level on the way down); `keys` stays empty.
/// - `.node48`: `keys` has 256 entries; `keys[b]` is 0 for no child, else
///   the index + 1 of the child in `slots` (48 entries).
/// - `.node256`: `slots[b]` is the child for byte `b` (256 entries).
final class RadixTreeNode<Leaf: RadixTreeLeaf> {
    typealias Child = RadixTreeChild<Leaf>

    enum Kind { case node4, node16, node48, node256 }

    /// Where a lookup goes next from this node.
    enum Step {
        case miss
        case leaf(Leaf)
        case node(Unmanaged<RadixTreeNode>)
    }

    // Unchecked exclusivity: the tree's owner serialises writers and
    // excludes them from readers (the memtable's lock), which is what the
    // runtime checks would enforce, at a cost on every lookup step.
    @exclusivity(unchecked) var prefix: [UInt8] {
        didSet { prefixLength = prefix.count }
    }
    @exclusivity(unchecked) private(set) var prefixLength: Int
    @exclusivity(unchecked) var terminal: Leaf?
    @exclusivity(unchecked) private(set) var kind: Kind
    @exclusivity(unchecked) private(set) var count = 0
    @exclusivity(unchecked) private var keys: [UInt8]
    @exclusivity(unchecked) private var smallKeys = InlineArray<16, UInt8>(repeating: 0)
    @exclusivity(unchecked) private var slots: [Child?]

    init(prefix: [UInt8], kind: Kind = .node4) {
        self.prefix = prefix
        self.prefixLength = prefix.count
        self.kind = kind
        switch kind {
        case .node4:
            keys = []
            slots = []; slots.reserveCapacity(4)
        case .node16:
            keys = []
            slots = []; slots.reserveCapacity(16)
        case .node48:
            keys = [UInt8](repeating: 0, count: 256)
            slots = [Child?](repeating: nil, count: 48)
        case .node256:
            keys = []
            slots = [Child?](repeating: nil, count: 256)
        }
    }

    var isFull: Bool {
        switch kind {
        case .node4: return count == 4
        case .node16: return count == 16
        case .node48: return count == 48
        case .node256: return false
        }
    }

    func prefixMatches(_ key: UnsafeRawBufferPointer, at depth: Int) -> Bool {
        guard key.count - depth >= prefixLength else { return false }
        return prefix.withUnsafeBufferPointer { prefix in
            for index in 0..<prefix.count where key[depth + index] != prefix[index] { return false }
            return true
        }
    }

    /// The child for `byte`, as a lookup step, without retaining a node.
    func step(for byte: UInt8) -> Step {
        slots.withUnsafeBufferPointer { slots in
            let slot: Int
            switch kind {
            case .node4, .node16:
                guard let index = smallKeyIndex(of: byte) else { return .miss }
                slot = index
            case .node48:
                let index = keys[Int(byte)]
                guard index != 0 else { return .miss }
                slot = Int(index) - 1
            case .node256:
                slot = Int(byte)
            }
            switch slots[slot] {
            case .none: return .miss
            case .leaf(let leaf)?: return .leaf(leaf)
            case .node(let node)?: return .node(Unmanaged.passUnretained(node))
            }
        }
    }

    /// How many bytes of `prefix` match `key` from `depth` (stopping at the
    /// key's end).
    func matchedPrefixLength(_ key: UnsafeRawBufferPointer, at depth: Int) -> Int {
        var index = 0
        while index < prefix.count && depth + index < key.count && key[depth + index] == prefix[index] {
            index += 1
        }
        return index
    }

    /// Puts a leaf whose key runs through this node into place: as the
    /// terminal if the key ends at `depth`, else as the child for its byte.
    func place(_ leaf: Leaf, key: UnsafeRawBufferPointer, at depth: Int) {
        if depth == key.count {
            terminal = leaf
        } else {
            addChild(.leaf(leaf), for: key[depth])
        }
    }

    private func smallKeyIndex(of byte: UInt8) -> Int? {
        for index in 0..<count where smallKeys[index] == byte { return index }
        return nil
    }

    func child(for byte: UInt8) -> Child? {
        switch kind {
        case .node4, .node16:
            return smallKeyIndex(of: byte).map { slots[$0] } ?? nil
        case .node48:
            let slot = keys[Int(byte)]
            return slot == 0 ? nil : slots[Int(slot) - 1]
        case .node256:
            return slots[Int(byte)]
        }
    }

    /// Adds a child for a byte that has none. The node must not be full.
    func addChild(_ child: Child, for byte: UInt8) {
        switch kind {
        case .node4, .node16:
            var position = 0
            while position < count && smallKeys[position] < byte { position += 1 }
            var index = count
            while index > position {
                smallKeys[index] = smallKeys[index - 1]
                index -= 1
            }
            smallKeys[position] = byte
            slots.insert(child, at: position)
        case .node48:
            var free = 0
            while slots[free] != nil { free += 1 }
            slots[free] = child
            keys[Int(byte)] = UInt8(free + 1)
        case .node256:
            slots[Int(byte)] = child
        }
        count += 1
    }

    func replaceChild(for byte: UInt8, with child: Child) {
        switch kind {
        case .node4, .node16:
            if let index = smallKeyIndex(of: byte) { slots[index] = child }
        case .node48:
            slots[Int(keys[Int(byte)]) - 1] = child
        case .node256:
            slots[Int(byte)] = child
        }
    }

    func removeChild(for byte: UInt8) {
        switch kind {
        case .node4, .node16:
            guard let index = smallKeyIndex(of: byte) else { return }
            for later in index..<(count - 1) { smallKeys[later] = smallKeys[later + 1] }
            slots.remove(at: index)
        case .node48:
            let slot = keys[Int(byte)]
            guard slot != 0 else { return }
            slots[Int(slot) - 1] = nil
            keys[Int(byte)] = 0
        case .node256:
            guard slots[Int(byte)] != nil else { return }
            slots[Int(byte)] = nil
        }
        count -= 1
    }

    /// Children in byte order, until `body` returns false; returns whether
    /// the visit ran to the end.
    func forEachChild(_ body: (UInt8, Child) throws -> Bool) rethrows -> Bool {
        switch kind {
        case .node4, .node16:
            for index in 0..<count where try !body(smallKeys[index], slots[index]!) { return false }
        case .node48:
            for byte in 0..<256 where keys[byte] != 0 {
                if try !body(UInt8(byte), slots[Int(keys[byte]) - 1]!) { return false }
            }
        case .node256:
            for byte in 0..<256 {
                if let child = slots[byte], try !body(UInt8(byte), child) { return false }
            }
        }
        return true
    }

    /// A copy of this node with the next larger fan-out.
    func grown() -> RadixTreeNode {
        let next: Kind = switch kind {
        case .node4: .node16
        case .node16: .node48
        case .node48, .node256: .node256
        }
        return resized(to: next)
    }

    /// What should stand in this node's place after a removal: nothing, a
    /// lone leaf, the single child merged with this node's path, a smaller
    /// node, or the node itself.
    func collapsed() -> Child? {
        if count == 0 {
            return terminal.map { .leaf($0) }
        }
        if count == 1 && terminal == nil {
            var only: (UInt8, Child)?
            _ = forEachChild { byte, child in
                only = (byte, child)
                return false
            }
            let (byte, child) = only!
            switch child {
            case .leaf:
                return child
            case .node(let node):
                node.prefix = prefix + [byte] + node.prefix
                return child
            }
        }
        switch kind {
        case .node256 where count <= 37: return .node(resized(to: .node48))
        case .node48 where count <= 12: return .node(resized(to: .node16))
        case .node16 where count <= 3: return .node(resized(to: .node4))
        default: return .node(self)
        }
    }

    private func resized(to kind: Kind) -> RadixTreeNode {
        let node = RadixTreeNode(prefix: prefix, kind: kind)
        node.terminal = terminal
        _ = forEachChild { byte, child in
            node.addChild(child, for: byte)
            return true
        }
        return node
    }
}
