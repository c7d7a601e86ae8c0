/// Every way an engine operation can fail. Each limit has its own case, so
/// callers (and the server's error replies) can say exactly what was wrong.
public enum EngineError: Error, Sendable, Equatable, CustomStringConvertible {
    case emptyKey
    case keyTooLarge(size: Int, limit: Int)
    case valueTooLarge(size: Int, limit: Int)
    /// An encoded write batch is larger than `EngineOptions.maxBatchBytes`.
    case batchTooLarge(size: Int, limit: Int)
    /// An expiry time before the Unix epoch.
    case invalidExpiry(Int64)
    /// Writes are refused for good: a sync failed, or the log's state on
    /// disk became uncertain. Reads keep working. Restart to recover.
    case readOnly(reason: String)
    /// A file-system call failed; nothing of the operation was applied.
    case io(IOFailure)
    /// Stored data failed validation. `file` and `offset` locate it.
    case corruption(file: String, offset: Int, detail: String)
    case closed

    public var description: String {
        switch self {
        case .emptyKey: "key is empty"
        case .keyTooLarge(let size, let limit): "key is \(size) bytes, the limit is \(limit)"
        case .valueTooLarge(let size, let limit): "value is \(size) bytes, the limit is \(limit)"
        case .batchTooLarge(let size, let limit): "write batch is \(size) bytes, the limit is \(limit)"
        case .invalidExpiry(let value): "expiry \(value) is before the Unix epoch"
        case .readOnly(let reason): "engine is read-only: \(reason)"
        case .io(let failure): failure.isOutOfSpace ? "no space left on device (\(failure))" : "I/O error: \(failure)"
        case .corruption(let file, let offset, let detail): "corruption in \(file) at offset \(offset): \(detail)"
        case .closed: "engine is closed"
        }
    }
}
