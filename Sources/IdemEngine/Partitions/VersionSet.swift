/// The manifest and the current version: which tables are live, which WAL
/// segments they cover, and the counters that must survive restarts.
///
/// On disk: `CURRENT` names the live manifest (`MANIFEST-<n>`), a log of
/// `VersionEdit` records in the WAL's framing. Every open writes a fresh
/// manifest holding one snapshot edit, switches `CURRENT` to it (temp file,
/// fsync, rename, directory fsync) and deletes the old one, so manifests
/// never grow across restarts.
///
/// Invariant: a table is referenced by the manifest only after its file is
/// synced under its final name and the directory entry is durable; a table
/// file is deleted only after the edit removing it is durable. Files the
/// manifest does not reference are leftovers of interrupted work and are
/// deleted at open.
///
/// Not thread-safe: the engine's maintenance path owns it.
final class VersionSet {
    static let currentFileName = "CURRENT"
    static let temporarySuffix = ".tmp"

    let fileSystem: any FileSystem
    let directory: String
    let coldDirectory: String
    let cache: BlockCache
    private(set) var current: Version
    private(set) var logNumber: UInt64 = 0
    private(set) var nextFileNumber: UInt64 = 1
    private(set) var lastSequence: UInt64 = 0
    private var manifest: LogWriter!

    private init(fileSystem: any FileSystem, directory: String, coldDirectory: String, cache: BlockCache) {
        self.fileSystem = fileSystem
        self.directory = directory
        self.coldDirectory = coldDirectory
        self.cache = cache
        self.current = .empty
    }

    func path(forTable number: UInt64, tier: Tier) -> String {
        (tier == .hot ? directory : coldDirectory).appendingPathComponent(TableFormat.fileName(number))
    }

    func newFileNumber() -> UInt64 {
        defer { nextFileNumber += 1 }
        return nextFileNumber
    }

    /// Recovers (or creates) the manifest, opens every live table, deletes
    /// leftovers, and starts a fresh manifest.
    static func open(fileSystem: any FileSystem, directory: String, coldDirectory: String,
                     cache: BlockCache, partitionWidth: Int64) throws(EngineError) -> VersionSet {
        let set = VersionSet(fileSystem: fileSystem, directory: directory, coldDirectory: coldDirectory, cache: cache)
        do { try fileSystem.createDirectory(coldDirectory) } catch { throw .io(error) }
        let recovered = try ManifestState.read(fileSystem: fileSystem, directory: directory)
        let files = recovered.files
        let oldManifest = recovered.manifestPath
        set.logNumber = recovered.logNumber
        set.nextFileNumber = recovered.nextFileNumber
        set.lastSequence = recovered.lastSequence
        var tables: [LiveTable] = []
        for metadata in files.values {
            tables.append(try set.openTable(metadata))
        }
        set.current = Version(tables: tables)
        try set.removeLeftovers(keeping: Set(files.keys), manifest: oldManifest)

        // A fresh manifest holding the whole state as one edit.
        let manifestNumber = set.newFileNumber()
        do {
            set.manifest = try LogWriter(fileSystem: fileSystem, directory: directory, kind: .manifest,
                                         segmentNumber: manifestNumber, segmentSizeLimit: .max)
        } catch {
            throw .io(error)
        }
        var snapshot = VersionEdit(logNumber: set.logNumber, nextFileNumber: set.nextFileNumber, lastSequence: set.lastSequence,
                                   partitionWidth: partitionWidth)
        snapshot.addedFiles = files.values.sorted { $0.number < $1.number }
        try set.log(snapshot)
        try set.writeCurrent(LogFormat.Kind.manifest.fileName(manifestNumber))
        if let oldManifest, fileSystem.fileExists(oldManifest) {
            do { try fileSystem.removeFile(oldManifest) } catch { throw .io(error) }
        }
        return set
    }

    func openTable(_ metadata: FileMetadata) throws(EngineError) -> LiveTable {
        let path = path(forTable: metadata.number, tier: metadata.tier)
        let file: any ReadableFile
        do { file = try fileSystem.openForReading(path) } catch {
            throw .corruption(file: path, offset: 0, detail: "table named by the manifest cannot be opened: \(error)")
        }
        let reader = try TableReader.open(file, fileNumber: metadata.number, cache: cache)
        return LiveTable(metadata: metadata, reader: reader)
    }

    /// Deletes table files the manifest does not reference, temporary files
    /// and stale manifests (the directory is locked: nobody else writes).
    private func removeLeftovers(keeping live: Set<UInt64>, manifest keep: String?) throws(EngineError) {
        for folder in Set([directory, coldDirectory]) {
            let names: [String]
            do { names = try fileSystem.listDirectory(folder) } catch { throw .io(error) }
            var removed = false
            for name in names {
                let stale = name.hasSuffix(Self.temporarySuffix)
                    || TableFormat.fileNumber(fromName: name).map { !live.contains($0) } ?? false
                    || (folder == directory && LogFormat.Kind.manifest.number(fromName: name) != nil
                        && folder.appendingPathComponent(name) != keep)
                guard stale else { continue }
                do { try fileSystem.removeFile(folder.appendingPathComponent(name)) } catch { throw .io(error) }
                removed = true
            }
            if removed {
                do { try fileSystem.syncDirectory(folder) } catch { throw .io(error) }
            }
        }
    }

    /// Appends `edit` to the manifest and syncs it. Throws if that fails; the
    /// caller must then treat the state on disk as unknown.
    private func log(_ edit: VersionEdit) throws(EngineError) {
        try Self.append(edit, to: manifest)
    }

    /// Appends `edit` to a manifest as one record and syncs it.
    private static func append(_ edit: VersionEdit, to writer: LogWriter) throws(EngineError) {
        var buffer = LogBuffer()
        buffer.appendRecord(type: .versionEdit) { edit.encode(into: &$0) }
        do throws(LogWriter.Failure) {
            try writer.append(&buffer)
            try writer.sync()
        } catch {
            switch error {
            case .writeFailed(let io), .unrecoverable(let io): throw .io(io)
            }
        }
    }

    private func writeCurrent(_ manifestName: String) throws(EngineError) {
        let path = directory.appendingPathComponent(Self.currentFileName)
        do {
            try writeFileAtomically(fileSystem, path: path, contents: Array((manifestName + "\n").utf8))
        } catch {
            throw .io(error)
        }
    }

    /// Writes into `destination` a manifest holding the current state as one
    /// edit, and a CURRENT naming it (for a backup). The manifest takes the
    /// next file number, and the edit reserves it, so the engine that later
    /// opens the copy never reuses the name.
    func writeSnapshot(to destination: String, partitionWidth: Int64) throws(EngineError) {
        let manifestNumber = nextFileNumber
        let writer: LogWriter
        do {
            writer = try LogWriter(fileSystem: fileSystem, directory: destination, kind: .manifest,
                                   segmentNumber: manifestNumber, segmentSizeLimit: .max)
        } catch {
            throw .io(error)
        }
        defer { writer.close() }
        var snapshot = VersionEdit(logNumber: logNumber, nextFileNumber: manifestNumber + 1, lastSequence: lastSequence,
                                   partitionWidth: partitionWidth)
        snapshot.addedFiles = current.tables.map(\.metadata).sorted { $0.number < $1.number }
        try Self.append(snapshot, to: writer)
        do {
            try writeFileAtomically(fileSystem, path: destination.appendingPathComponent(Self.currentFileName),
                                    contents: Array((LogFormat.Kind.manifest.fileName(manifestNumber) + "\n").utf8))
        } catch {
            throw .io(error)
        }
    }

    /// Records `edit` durably and installs the version it produces.
    /// `added` are the opened tables for `edit.addedFiles`.
    @discardableResult
    func apply(_ edit: VersionEdit, added: [LiveTable]) throws(EngineError) -> Version {
        var edit = edit
        edit.nextFileNumber = nextFileNumber
        try log(edit)
        if let value = edit.logNumber { logNumber = max(logNumber, value) }
        if let value = edit.lastSequence { lastSequence = max(lastSequence, value) }
        let deleted = Set(edit.deletedFiles)
        current = Version(tables: current.tables.filter { !deleted.contains($0.number) } + added)
        return current
    }

    /// Unlinks the files of tables no longer live. Open readers keep them
    /// readable until they let go.
    func deleteFiles(of tables: [LiveTable]) {
        guard !tables.isEmpty else { return }
        for table in tables {
            try? fileSystem.removeFile(path(forTable: table.number, tier: table.metadata.tier))
            cache.evict(fileNumber: table.number)
        }
        // A crash before the directory sync may resurrect the files; the
        // manifest no longer names them, so the next open deletes them.
        try? fileSystem.syncDirectory(directory)
        try? fileSystem.syncDirectory(coldDirectory)
    }

    func close() {
        manifest?.close()
    }
}

/// Writes `contents` to `path` so that a crash leaves either the old file
/// or the complete new one: temp file, fsync, rename, directory fsync.
func writeFileAtomically(_ fileSystem: any FileSystem, path: String, contents: [UInt8]) throws(IOFailure) {
    let temporary = path + VersionSet.temporarySuffix
    if fileSystem.fileExists(temporary) { try fileSystem.removeFile(temporary) }
    let file = try fileSystem.openForAppending(temporary)
    defer { file.close() }
    try file.append(contents[...])
    try file.sync()
    try fileSystem.rename(temporary, to: path)
    let parent = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
    try fileSystem.syncDirectory(parent.isEmpty ? "/" : parent)
}
