/// What the manifest records about one table file.
struct FileMetadata: Sendable, Equatable {
    var number: UInt64
    /// The end of the time partition the table belongs to (see `PartitionLayout`).
    var partitionEnd: Int64
    var tier: Tier
    var size: UInt64
    var entries: UInt64
    var tombstones: UInt64
    var smallestKey: [UInt8]
    var largestKey: [UInt8]
    var minSequence: UInt64
    var maxSequence: UInt64
    /// Smallest and largest non-zero expiry; 0 when no entry expires.
    var minExpiry: Int64
    var maxExpiry: Int64
    /// When the table was written (wall clock), for tier ageing.
    var createdAt: Int64

    init(number: UInt64, partitionEnd: Int64, size: UInt64, properties: TableProperties) {
        self.number = number
        self.partitionEnd = partitionEnd
        self.tier = properties.tier
        self.size = size
        self.entries = properties.entries
        self.tombstones = properties.tombstones
        self.smallestKey = properties.smallestKey
        self.largestKey = properties.largestKey
        self.minSequence = properties.minSequence
        self.maxSequence = properties.maxSequence
        self.minExpiry = properties.minExpiry
        self.maxExpiry = properties.maxExpiry
        self.createdAt = properties.createdAt
    }

    init(number: UInt64, partitionEnd: Int64, tier: Tier, size: UInt64, entries: UInt64, tombstones: UInt64,
         smallestKey: [UInt8], largestKey: [UInt8], minSequence: UInt64, maxSequence: UInt64,
         minExpiry: Int64, maxExpiry: Int64, createdAt: Int64) {
        self.number = number
        self.partitionEnd = partitionEnd
        self.tier = tier
        self.size = size
        self.entries = entries
        self.tombstones = tombstones
        self.smallestKey = smallestKey
        self.largestKey = largestKey
        self.minSequence = minSequence
        self.maxSequence = maxSequence
        self.minExpiry = minExpiry
        self.maxExpiry = maxExpiry
        self.createdAt = createdAt
    }
}
