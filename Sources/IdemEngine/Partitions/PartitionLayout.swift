/// Maps expiry times to time partitions.
///
/// A partition is named by its *end*: the instant from which every entry
/// in it has expired, so the whole partition can be deleted. An entry
/// expiring at `e` naturally belongs to the partition ending at
/// `ceil(e / width) * width`; entries that never expire belong to the
/// persistent partition (`persistentEnd`), which is never dropped.
///
/// Naming partitions by end time rather than by index means a change of
/// `width` between runs needs no migration: old tables keep their ends.
struct PartitionLayout: Sendable {
    static let persistentEnd = Int64.max
    let width: Int64

    init(widthMilliseconds: Int64) {
        precondition(widthMilliseconds > 0)
        width = widthMilliseconds
    }

    func naturalEnd(forExpiry expiresAt: Int64) -> Int64 {
        guard expiresAt > 0 else { return Self.persistentEnd }
        let (quotient, remainder) = expiresAt.quotientAndRemainder(dividingBy: width)
        let (end, overflow) = (quotient + (remainder == 0 ? 0 : 1)).multipliedReportingOverflow(by: width)
        return overflow ? Self.persistentEnd - 1 : end
    }
}
