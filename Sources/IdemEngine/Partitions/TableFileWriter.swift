import Dispatch
import Synchronization

/// A table being written by a flush or a compaction: built under a
/// temporary name (`write…`, `finishWriting`), synced (`sync`), then renamed
/// into place and opened (`install`). The caller syncs the directory once
/// for all the tables it installed, before recording them in the manifest.
final class TableFileWriter {
    let number: UInt64
    let partitionEnd: Int64
    let tier: Tier
    private let builder: TableBuilder
    let file: any WritableFile
    private var properties: TableProperties?
    private let temporaryPath: String
    private let finalPath: String
    private let versions: VersionSet

    init(versions: VersionSet, partitionEnd: Int64, tier: Tier, options: TableOptions, createdAt: Int64) throws(EngineError) {
        self.versions = versions
        self.number = versions.newFileNumber()
        self.partitionEnd = partitionEnd
        self.tier = tier
        finalPath = versions.path(forTable: number, tier: tier)
        temporaryPath = finalPath + VersionSet.temporarySuffix
        do { file = try versions.fileSystem.openForAppending(temporaryPath) } catch { throw .io(error) }
        builder = TableBuilder(file: file, fileNumber: number, options: options, partition: partitionEnd,
                               tier: tier, createdAt: createdAt)
    }

    var entryCount: UInt64 { builder.entryCount }

    func add(_ entry: VersionedEntry) throws(EngineError) {
        do { try builder.add(entry) } catch { throw .io(error) }
    }

    /// Writes the table's closing blocks (not yet durable).
    func finishWriting() throws(EngineError) {
        do { properties = try builder.finish() } catch { throw .io(error) }
    }

    /// Renames the synced file into place and opens it for reading.
    func install() throws(EngineError) -> LiveTable {
        guard let properties else { preconditionFailure("install before finishWriting") }
        file.close()
        do { try versions.fileSystem.rename(temporaryPath, to: finalPath) } catch { throw .io(error) }
        let size = UInt64(builder.fileSize)
        let metadata = FileMetadata(number: number, partitionEnd: partitionEnd, size: size, properties: properties)
        return try versions.openTable(metadata)
    }

    /// Removes the unfinished file (best effort: leftovers are also removed at open).
    func abandon() {
        file.close()
        try? versions.fileSystem.removeFile(temporaryPath)
    }
}

extension TableFileWriter {
    /// Finishes, syncs (all files at once, on up to eight threads: a flush
    /// writes one table per partition, and one fsync after another would
    /// make its latency the sum of them) and installs `writers`.
    static func finishAll(_ writers: [TableFileWriter]) throws(EngineError) -> [LiveTable] {
        for writer in writers { try writer.finishWriting() }
        let files = writers.map(\.file)
        let lanes = min(8, files.count)
        let failures = Mutex<[IOFailure]>([])
        DispatchQueue.concurrentPerform(iterations: lanes) { lane in
            for index in stride(from: lane, to: files.count, by: lanes) {
                do throws(IOFailure) { try files[index].sync() } catch {
                    failures.withLock { $0.append(error) }
                }
            }
        }
        if let failure = failures.withLock({ $0.first }) { throw .io(failure) }
        var tables: [LiveTable] = []
        for writer in writers { tables.append(try writer.install()) }
        return tables
    }
}
