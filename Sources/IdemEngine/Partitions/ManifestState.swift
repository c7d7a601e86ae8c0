/// What the live manifest records, read without changing anything on disk
/// (used by recovery, `idem check` and `idem stats`).
struct ManifestState {
    /// The manifest `CURRENT` names; nil for a directory that has none yet.
    var manifestPath: String?
    var files: [UInt64: FileMetadata] = [:]
    var logNumber: UInt64 = 0
    var nextFileNumber: UInt64 = 1
    var lastSequence: UInt64 = 0
    var partitionWidth: Int64?
    var edits = 0
    /// The last edit was cut short by a crash (ignored: it was never acknowledged).
    var tornTailBytes = 0

    static func read(fileSystem: any FileSystem, directory: String) throws(EngineError) -> ManifestState {
        var state = ManifestState()
        let currentPath = directory.appendingPathComponent(VersionSet.currentFileName)
        guard fileSystem.fileExists(currentPath) else { return state }
        let name: String
        do { name = String(decoding: try fileSystem.readFile(currentPath), as: UTF8.self) } catch { throw .io(error) }
        let trimmed = name.hasSuffix("\n") ? String(name.dropLast()) : name
        guard let number = LogFormat.Kind.manifest.number(fromName: trimmed) else {
            throw .corruption(file: currentPath, offset: 0, detail: "does not name a manifest")
        }
        let path = directory.appendingPathComponent(trimmed)
        state.manifestPath = path
        state.nextFileNumber = number + 1
        let bytes: [UInt8]
        do { bytes = try fileSystem.readFile(path) } catch { throw .io(error) }
        let scan = bytes.withUnsafeBytes { LogSegmentScan(bytes: $0, kind: .manifest, segmentNumber: number, salvage: false) }
        for damage in scan.damage {
            switch damage {
            case .tornTail(let offset):
                // The last edit never finished syncing: the work it recorded
                // was not acknowledged and its files are leftovers.
                state.tornTailBytes = bytes.count - offset
            case .missingHeader, .badHeader, .corruption:
                throw .corruption(file: path, offset: scan.validEnd, detail: "manifest damaged: \(damage)")
            }
        }
        for record in scan.records {
            guard record.type == .versionEdit else {
                throw .corruption(file: path, offset: record.offset, detail: "unexpected record type in manifest")
            }
            let decoded = bytes.withUnsafeBytes { raw in
                Result { () throws(VersionEdit.DecodingError) -> VersionEdit in
                    try VersionEdit.decode(UnsafeRawBufferPointer(rebasing: raw[record.payload]))
                }
            }
            switch decoded {
            case .failure(let error):
                throw .corruption(file: path, offset: record.offset, detail: "bad version edit: \(error.detail)")
            case .success(let edit):
                state.absorb(edit)
            }
        }
        return state
    }

    mutating func absorb(_ edit: VersionEdit) {
        edits += 1
        if let value = edit.logNumber { logNumber = max(logNumber, value) }
        if let value = edit.nextFileNumber { nextFileNumber = max(nextFileNumber, value) }
        if let value = edit.lastSequence { lastSequence = max(lastSequence, value) }
        if let value = edit.partitionWidth { partitionWidth = value }
        for number in edit.deletedFiles { files[number] = nil }
        for file in edit.addedFiles {
            files[file.number] = file
            nextFileNumber = max(nextFileNumber, file.number + 1)
        }
    }
}
