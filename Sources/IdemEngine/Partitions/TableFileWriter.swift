/// A table being written by a flush or a compaction: built under a
/// temporary name, synced, then renamed into place. The caller syncs the
/// directory once for all the tables it renamed, before recording them in
/// the manifest.
final class TableFileWriter {
    let number: UInt64
    let partitionEnd: Int64
    let tier: Tier
    private let builder: TableBuilder
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
        let file: any WritableFile
        do { file = try versions.fileSystem.openForAppending(temporaryPath) } catch { throw .io(error) }
        builder = TableBuilder(file: file, fileNumber: number, options: options, partition: partitionEnd,
                               tier: tier, createdAt: createdAt)
    }

    var entryCount: UInt64 { builder.entryCount }

    func add(_ entry: VersionedEntry) throws(EngineError) {
        do { try builder.add(entry) } catch { throw .io(error) }
    }

    /// Finishes, syncs and renames the file, and opens it for reading.
    func finish() throws(EngineError) -> LiveTable {
        let properties: TableProperties
        do {
            properties = try builder.finish()
            try versions.fileSystem.rename(temporaryPath, to: finalPath)
        } catch {
            throw .io(error)
        }
        let size = UInt64(builder.fileSize)
        let metadata = FileMetadata(number: number, partitionEnd: partitionEnd, size: size, properties: properties)
        return try versions.openTable(metadata)
    }

    /// Removes the unfinished file (best effort: leftovers are also removed at open).
    func abandon() {
        try? versions.fileSystem.removeFile(temporaryPath)
    }
}
