/// What `Engine.backup(to:)` did.
public struct BackupReport: Sendable, Equatable {
    /// Tables given a second name (hard link) in the backup.
    public var tablesLinked = 0
    /// Tables copied (the backup is on another file system than the table).
    public var tablesCopied = 0
    /// WAL bytes copied.
    public var walBytes = 0
    public var walSegments = 0
}

extension Engine {
    /// Writes a consistent copy of the store into `destination` (created;
    /// it must not exist or be empty) while the engine keeps serving.
    ///
    /// The copy holds every write acknowledged before the call and possibly
    /// some acknowledged during it — always a prefix of the write history,
    /// never half a batch. How: background work is held off, so the table
    /// set and the WAL segments it needs stay put; tables are immutable, so
    /// they are hard-linked (copied across file systems); a fresh manifest
    /// describes them; the WAL segments not yet covered by tables are
    /// copied (the live one up to where it is — recovery cuts a partial
    /// last record as an interrupted write). Everything is synced,
    /// directories included, before this returns.
    ///
    /// Restore: open the copy as the data directory (`idem serve --dir
    /// DEST`). Cold tables are placed in `DEST/cold`.
    public func backup(to destination: String) throws(EngineError) -> BackupReport {
        let fileSystem = options.fileSystem
        let coldDestination = destination.appendingPathComponent("cold")
        do throws(IOFailure) {
            if fileSystem.fileExists(destination), !(try fileSystem.listDirectory(destination)).isEmpty {
                throw IOFailure(operation: "backup", path: destination, code: ErrorNumber.exists)
            }
            try fileSystem.createDirectory(destination)
            try fileSystem.createDirectory(coldDestination)
        } catch {
            throw .io(error)
        }
        return try maintenance.withWorkPaused { versions throws(EngineError) -> BackupReport in
            var report = BackupReport()
            for table in versions.current.tables {
                let source = versions.path(forTable: table.number, tier: table.metadata.tier)
                let target = (table.metadata.tier == .hot ? destination : coldDestination)
                    .appendingPathComponent(source.lastPathComponent)
                do throws(IOFailure) {
                    try fileSystem.hardLink(source, to: target)
                    report.tablesLinked += 1
                } catch {
                    try Self.copyFile(source, to: target, fileSystem: fileSystem)
                    report.tablesCopied += 1
                }
            }
            try versions.writeSnapshot(to: destination, partitionWidth: options.partitionWidth)
            let segments: [(number: UInt64, name: String)]
            do throws(IOFailure) {
                segments = try fileSystem.listDirectory(directory).compactMap { name in
                    LogFormat.segmentNumber(fromName: name).map { (number: $0, name: name) }
                }.filter { $0.number >= versions.logNumber }.sorted { $0.number < $1.number }
            } catch {
                throw .io(error)
            }
            for segment in segments {
                report.walBytes += try Self.copyFile(directory.appendingPathComponent(segment.name),
                                                     to: destination.appendingPathComponent(segment.name),
                                                     fileSystem: fileSystem)
                report.walSegments += 1
            }
            do throws(IOFailure) {
                try fileSystem.syncDirectory(coldDestination)
                try fileSystem.syncDirectory(destination)
            } catch {
                throw .io(error)
            }
            return report
        }
    }

    /// Copies `source` to a new file `target` and syncs it; returns the bytes copied.
    @discardableResult
    static func copyFile(_ source: String, to target: String, fileSystem: any FileSystem) throws(EngineError) -> Int {
        do throws(IOFailure) {
            let bytes = try fileSystem.readFile(source)
            let file = try fileSystem.openForAppending(target)
            defer { file.close() }
            try file.append(bytes[...])
            try file.sync()
            return bytes.count
        } catch {
            throw .io(error)
        }
    }
}
