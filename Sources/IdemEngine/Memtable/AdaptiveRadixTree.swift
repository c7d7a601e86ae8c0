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
        if let inPlace = leaf.withKey({ insertWithoutRestructuring(leaf, key: $0) }) {
            if inPlace == nil { count += 1 }
            return inPlace
        }
        let (replacement, previous) = leaf.withKey { key in
            Self.insert(leaf, key: key, into: root, depth: 0)
        }
        self.root = replacement
        if previous == nil { count += 1 }
        return previous
    }

    private enum InPlaceStep {
        case restructure
        case inserted(replacing: Leaf?)
        case descend(Unmanaged<Node>)
    }

    /// The common insertions, done where they land without reference
    /// counting on the way down (as `find` walks): replacing the leaf of a
    /// key already present, and adding a leaf to a node with room for it.
    /// Returns nil, having changed nothing, when the tree's shape must
    /// change (a prefix split, a full node, two keys meeting in one slot):
    /// the recursive `insert` handles those.
    private func insertWithoutRestructuring(_ leaf: Leaf, key: UnsafeRawBufferPointer) -> Leaf?? {
        guard case .node(let first)? = root else { return nil }
        var node = Unmanaged.passUnretained(first)
        var depth = 0
        while true {
            let step = node._withUnsafeGuaranteedRef { current -> InPlaceStep in
                guard current.prefixMatches(key, at: depth) else { return .restructure }
                depth += current.prefixLength
                if depth == key.count {
                    let previous = current.terminal
                    current.terminal = leaf
                    return .inserted(replacing: previous)
                }
                let byte = key[depth]
                depth += 1
                guard let slot = current.slot(for: byte), let occupant = slot.pointee else {
                    if current.isFull { return .restructure }
                    current.addChild(.leaf(leaf), for: byte)
                    return .inserted(replacing: nil)
                }
                switch occupant {
                case .node(let next):
                    return .descend(Unmanaged.passUnretained(next))
                case .leaf(let existing):
                    guard existing.withKey({ ByteOrder.equal($0, key) }) else { return .restructure }
                    slot.pointee = .leaf(leaf)
                    return .inserted(replacing: existing)
                }
            }
            switch step {
            case .restructure: return nil
            case .inserted(let previous): return .some(previous)
            case .descend(let next): node = next
            }
        }
    }

    private static func insert(_ leaf: Leaf, key: UnsafeRawBufferPointer, into child: Child, depth: Int) -> (Child, Leaf?) {
        switch child {
        case .leaf(let existing):
            return existing.withKey { existingKey in
                if ByteOrder.equal(existingKey, key) { return (.leaf(leaf), existing) }
                // Two keys in one slot: a new node holds their common bytes.
                let common = commonPrefixLength(existingKey, key, from: depth)
                let node = Node.make(prefix: Array(key[depth..<(depth + common)]))
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
                let parent = Node.make(prefix: Array(node.prefix[0..<matched]))
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

/// An inner node's fan-out. The capacity is both the most children the
/// node takes and the number of child slots allocated with it.
enum RadixTreeNodeKind {
    case node4, node16, node48, node256

    var capacity: Int {
        switch self {
        case .node4: 4
        case .node16: 16
        case .node48: 48
        case .node256: 256
        }
    }
}

struct RadixTreeNodeHeader<Leaf: RadixTreeLeaf> {
    var prefix: [UInt8]
    var terminal: Leaf?
    let kind: RadixTreeNodeKind
    var count = 0
    /// `.node4`, `.node16`: the byte leading to each slot, sorted.
    var smallKeys = InlineArray<16, UInt8>(repeating: 0)
    /// `.node48`: slot index + 1 for each byte, 0 for none (256 entries).
    var keys: [UInt8]
}

/// One inner node: a header, then its child slots in the same allocation
/// (one cache miss per level on the way down, not one for the node and
/// another for a separate child array). The `kind` decides the layout:
///
/// - `.node4`, `.node16`: `smallKeys[i]` is the byte leading to slot `i`,
///   both dense and sorted by byte, `count` entries.
/// - `.node48`: `keys[b]` is 0 for no child, else the slot index + 1.
/// - `.node256`: slot `b` is the child for byte `b`.
///
/// Invariants: every one of the `kind.capacity` slots is initialized (nil
/// when empty) from `make` to `deinit`, and exactly `count` of them are
/// not nil.
///
/// Header and slots are reached through pointers, never the `header`
/// property: the tree's owner serialises writers and excludes them from
/// readers (the memtable's lock), which is what the runtime exclusivity
/// checks on a class property would enforce, at a cost on every step.
final class RadixTreeNode<Leaf: RadixTreeLeaf>: ManagedBuffer<RadixTreeNodeHeader<Leaf>, RadixTreeChild<Leaf>?> {
    typealias Child = RadixTreeChild<Leaf>
    typealias Kind = RadixTreeNodeKind

    /// Where a lookup goes next from this node.
    enum Step {
        case miss
        case leaf(Leaf)
        case node(Unmanaged<RadixTreeNode>)
    }

    static func make(prefix: [UInt8], kind: Kind = .node4) -> RadixTreeNode {
        let buffer = create(minimumCapacity: kind.capacity) { _ in
            RadixTreeNodeHeader(prefix: prefix, terminal: nil, kind: kind,
                                keys: kind == .node48 ? [UInt8](repeating: 0, count: 256) : [])
        }
        buffer.withUnsafeMutablePointerToElements { $0.initialize(repeating: nil, count: kind.capacity) }
        return unsafeDowncast(buffer, to: RadixTreeNode.self)
    }

    deinit {
        withUnsafeMutablePointers { header, slots in
            // Every slot holds nil when `count` is 0 (a node emptied by
            // `resized`): nothing to release.
            guard header.pointee.count > 0 else { return }
            _ = slots.deinitialize(count: header.pointee.kind.capacity)
        }
    }

    @inline(__always) private var head: UnsafeMutablePointer<RadixTreeNodeHeader<Leaf>> {
        withUnsafeMutablePointerToHeader { $0 }
    }

    @inline(__always) private var slots: UnsafeMutablePointer<Child?> {
        withUnsafeMutablePointerToElements { $0 }
    }

    var prefix: [UInt8] {
        get { head.pointee.prefix }
        set { head.pointee.prefix = newValue }
    }

    var prefixLength: Int { head.pointee.prefix.count }

    var terminal: Leaf? {
        get { head.pointee.terminal }
        set { head.pointee.terminal = newValue }
    }

    var kind: Kind { head.pointee.kind }
    var count: Int { head.pointee.count }

    var isFull: Bool {
        let head = head
        return head.pointee.kind != .node256 && head.pointee.count == head.pointee.kind.capacity
    }

    func prefixMatches(_ key: UnsafeRawBufferPointer, at depth: Int) -> Bool {
        head.pointee.prefix.withUnsafeBufferPointer { prefix in
            guard key.count - depth >= prefix.count else { return false }
            for index in 0..<prefix.count where key[depth + index] != prefix[index] { return false }
            return true
        }
    }

    /// The slot index for `byte`, if it has a child.
    @inline(__always) private func slotIndex(for byte: UInt8) -> Int? {
        let head = head
        switch head.pointee.kind {
        case .node4, .node16:
            for index in 0..<head.pointee.count where head.pointee.smallKeys[index] == byte { return index }
            return nil
        case .node48:
            let index = head.pointee.keys[Int(byte)]
            return index == 0 ? nil : Int(index) - 1
        case .node256:
            return Int(byte)
        }
    }

    /// The child for `byte`, as a lookup step, without retaining a node.
    func step(for byte: UInt8) -> Step {
        guard let slot = slotIndex(for: byte) else { return .miss }
        switch slots[slot] {
        case .none: return .miss
        case .leaf(let leaf)?: return .leaf(leaf)
        case .node(let node)?: return .node(Unmanaged.passUnretained(node))
        }
    }

    /// How many bytes of `prefix` match `key` from `depth` (stopping at the
    /// key's end).
    func matchedPrefixLength(_ key: UnsafeRawBufferPointer, at depth: Int) -> Int {
        let prefix = self.prefix
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

    /// The slot holding the child for `byte`, if the node has one for it
    /// (`.node256`: always, possibly empty).
    func slot(for byte: UInt8) -> UnsafeMutablePointer<Child?>? {
        slotIndex(for: byte).map { slots + $0 }
    }

    func child(for byte: UInt8) -> Child? {
        guard let slot = slotIndex(for: byte) else { return nil }
        return slots[slot]
    }

    /// Adds a child for a byte that has none. The node must not be full.
    func addChild(_ child: Child, for byte: UInt8) {
        let head = head, slots = slots
        let count = head.pointee.count
        switch head.pointee.kind {
        case .node4, .node16:
            precondition(count < head.pointee.kind.capacity)
            var position = 0
            while position < count && head.pointee.smallKeys[position] < byte { position += 1 }
            var index = count
            while index > position {
                head.pointee.smallKeys[index] = head.pointee.smallKeys[index - 1]
                index -= 1
            }
            head.pointee.smallKeys[position] = byte
            // Shift the children up by moving their bits (an assignment per
            // slot would retain and release each one): slot `count` holds
            // nil, which needs no release before it is overwritten.
            (slots + position + 1).moveInitialize(from: slots + position, count: count - position)
            (slots + position).initialize(to: child)
        case .node48:
            var free = 0
            while slots[free] != nil { free += 1 }
            slots[free] = child
            head.pointee.keys[Int(byte)] = UInt8(free + 1)
        case .node256:
            slots[Int(byte)] = child
        }
        head.pointee.count += 1
    }

    func replaceChild(for byte: UInt8, with child: Child) {
        guard let slot = slotIndex(for: byte) else { return }
        slots[slot] = child
    }

    func removeChild(for byte: UInt8) {
        let head = head, slots = slots
        guard let slot = slotIndex(for: byte), slots[slot] != nil else { return }
        switch head.pointee.kind {
        case .node4, .node16:
            let count = head.pointee.count
            for later in slot..<(count - 1) {
                head.pointee.smallKeys[later] = head.pointee.smallKeys[later + 1]
            }
            // The removed child is released; the later ones move down a
            // slot without being retained again, and the last slot is nil.
            (slots + slot).deinitialize(count: 1)
            (slots + slot).moveInitialize(from: slots + slot + 1, count: count - 1 - slot)
            (slots + count - 1).initialize(to: nil)
        case .node48:
            slots[slot] = nil
            head.pointee.keys[Int(byte)] = 0
        case .node256:
            slots[slot] = nil
        }
        head.pointee.count -= 1
    }

    /// Children in byte order, until `body` returns false; returns whether
    /// the visit ran to the end.
    func forEachChild(_ body: (UInt8, Child) throws -> Bool) rethrows -> Bool {
        let head = head, slots = slots
        switch head.pointee.kind {
        case .node4, .node16:
            for index in 0..<head.pointee.count where try !body(head.pointee.smallKeys[index], slots[index]!) { return false }
        case .node48:
            for byte in 0..<256 {
                let slot = head.pointee.keys[byte]
                if slot != 0, try !body(UInt8(byte), slots[Int(slot) - 1]!) { return false }
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

    /// A node of `kind` taking over this node's prefix, terminal and
    /// children, which are moved, not copied: this node is about to leave
    /// the tree (the caller swaps the new one in), and once emptied its
    /// release touches no child — no retain and release of every child, no
    /// walk over its slots in `deinit`.
    private func resized(to kind: Kind) -> RadixTreeNode {
        let node = RadixTreeNode.make(prefix: prefix, kind: kind)
        node.terminal = terminal
        let head = head, slots = slots
        switch head.pointee.kind {
        case .node4, .node16:
            for index in 0..<head.pointee.count {
                node.addChild(slots[index].take()!, for: head.pointee.smallKeys[index])
            }
        case .node48:
            for byte in 0..<256 {
                let slot = Int(head.pointee.keys[byte])
                if slot != 0 { node.addChild(slots[slot - 1].take()!, for: UInt8(byte)) }
            }
        case .node256:
            for byte in 0..<256 {
                if let child = slots[byte].take() { node.addChild(child, for: UInt8(byte)) }
            }
        }
        head.pointee.count = 0
        return node
    }
}
