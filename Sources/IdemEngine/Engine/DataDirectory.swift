/// Offline inspection of a stopped data directory: `idem check` and
/// `idem stats`. Nothing here writes: the directory is locked (so a running
/// engine is detected), read, and released.
public enum DataDirectory {
    public struct Problem: Sendable, CustomStringConvertible {
        public enum Severity: String, Sendable { case error, warning }
        public var severity: Severity
        public var file: String
        public var offset: Int?
        public var detail: String

        public var description: String {
            "\(severity): \(file)\(offset.map { " at offset \($0)" } ?? ""): \(detail)"
        }
    }

    public struct CheckReport: Sendable {
        public var problems: [Problem] = []
        public var tablesChecked = 0
        public var entriesChecked: UInt64 = 0
        public var walSegmentsChecked = 0
        public var walRecordsChecked = 0
        public var manifestEdits = 0
        /// No errors (warnings allowed: they are repaired at the next open).
        public var isHealthy: Bool { problems.allSatisfy { $0.severity == .warning } }
    }

    public struct Progress: Sendable {
        public var done: Int
        public var total: Int
        public var file: String
    }

    /// Verifies the manifest, every table (every block checksum, key order,
    /// entry counts) and every WAL record. Problems are collected, not
    /// thrown; only failing to lock or list the directory throws.
    public static func check(directory: String, options: EngineOptions = EngineOptions(),
                             progress: (Progress) -> Void = { _ in }) throws(EngineError) -> CheckReport {
        let fileSystem = options.fileSystem
        let lock: any DirectoryLock
        do { lock = try fileSystem.lockFile(directory.appendingPathComponent("LOCK")) } catch { throw .io(error) }
        defer { lock.release() }
        var report = CheckReport()
        let coldDirectory = options.coldDirectory ?? directory.appendingPathComponent("cold")

        var manifest = ManifestState()
        do {
            manifest = try ManifestState.read(fileSystem: fileSystem, directory: directory)
            report.manifestEdits = manifest.edits
            if manifest.tornTailBytes > 0, let path = manifest.manifestPath {
                report.problems.append(.init(severity: .warning, file: path, offset: nil,
                                             detail: "last edit (\(manifest.tornTailBytes) bytes) incomplete; ignored at open"))
            }
        } catch {
            report.problems.append(problem(error, fallbackFile: directory.appendingPathComponent("CURRENT")))
        }

        let segments: [UInt64]
        do {
            segments = try fileSystem.listDirectory(directory).compactMap(LogFormat.segmentNumber(fromName:))
                .filter { $0 >= manifest.logNumber }.sorted()
        } catch {
            throw .io(error)
        }
        let tables = manifest.files.values.sorted { $0.number < $1.number }
        let total = tables.count + segments.count
        var done = 0
        let cache = BlockCache(capacityBytes: 0)

        for metadata in tables {
            let path = (metadata.tier == .hot ? directory : coldDirectory).appendingPathComponent(TableFormat.fileName(metadata.number))
            progress(Progress(done: done, total: total, file: path))
            do {
                let file: any ReadableFile
                do { file = try fileSystem.openForReading(path) } catch {
                    throw EngineError.corruption(file: path, offset: 0, detail: "named by the manifest but cannot be opened: \(error)")
                }
                let reader = try TableReader.open(file, fileNumber: metadata.number, cache: cache)
                report.entriesChecked += try reader.verify()
                if reader.properties.entries != metadata.entries || UInt64(file.size) != metadata.size {
                    report.problems.append(.init(severity: .error, file: path, offset: nil,
                                                 detail: "size or entry count differs from the manifest"))
                }
                report.tablesChecked += 1
            } catch {
                report.problems.append(problem(error, fallbackFile: path))
            }
            done += 1
        }

        var scans = SegmentScanCache(fileSystem: fileSystem, directory: directory, salvage: true)
        for (index, number) in segments.enumerated() {
            let path = directory.appendingPathComponent(LogFormat.segmentName(number))
            progress(Progress(done: done, total: total, file: path))
            defer { done += 1 }
            let bytes: [UInt8], scan: LogSegmentScan, continuation: SegmentScanCache.Continuation
            do {
                (bytes, scan) = try scans.scan(number)
                continuation = try scans.continuation(of: index, in: segments, validEnd: scan.validEnd)
            } catch {
                report.problems.append(.init(severity: .error, file: path, offset: nil, detail: "\(error)"))
                continue
            }
            let (isNewest, cutShort) = (continuation.isNewest, continuation.endsLog)
            switch continuation {
            case .endsHere:
                report.problems.append(.init(severity: .warning, file: path, offset: scan.validEnd,
                                             detail: "the log rolled on before this segment was synced, and part of what "
                                                 + "followed was lost: the open keeps the log up to here and drops later segments"))
            case .inconsistent(let offset, let reason):
                report.problems.append(.init(severity: .error, file: path, offset: offset, detail: reason))
            case .continues, .newest:
                break
            }
            for record in scan.records {
                guard record.type == .writeBatch else {
                    report.problems.append(.init(severity: .error, file: path, offset: record.offset,
                                                 detail: "record type \(record.type) in a WAL segment"))
                    continue
                }
                let decoded = bytes.withUnsafeBytes { raw in
                    Result { () throws(BatchCodec.DecodingError) -> UInt64 in
                        try BatchCodec.decode(UnsafeRawBufferPointer(rebasing: raw[record.payload])) { _ in }
                    }
                }
                if case .failure(let error) = decoded {
                    report.problems.append(.init(severity: .error, file: path, offset: record.offset, detail: "undecodable batch: \(error.detail)"))
                }
                report.walRecordsChecked += 1
            }
            for damage in scan.damage {
                switch damage {
                case .tornTail(let offset) where isNewest || cutShort:
                    report.problems.append(.init(severity: .warning, file: path, offset: offset,
                                                 detail: "interrupted last write (\(bytes.count - offset) bytes); cut at open"))
                case .missingHeader where isNewest:
                    report.problems.append(.init(severity: .warning, file: path, offset: 0,
                                                 detail: "segment created but never written; removed at open"))
                case .tornTail(let offset):
                    report.problems.append(.init(severity: .error, file: path, offset: offset, detail: "incomplete record in an older segment"))
                case .missingHeader:
                    report.problems.append(.init(severity: .error, file: path, offset: 0, detail: "segment shorter than its header"))
                case .badHeader(let reason):
                    report.problems.append(.init(severity: .error, file: path, offset: 0, detail: "bad header: \(reason)"))
                case .corruption(let offset, let resume, let reason):
                    report.problems.append(.init(severity: .error, file: path, offset: offset,
                                                 detail: "\(reason) (\(resume - offset) bytes damaged)"))
                }
            }
            report.walSegmentsChecked += 1
        }
        progress(Progress(done: total, total: total, file: ""))

        // Leftovers are harmless (deleted at the next open) but worth a word.
        let live = Set(manifest.files.keys)
        for folder in Set([directory, coldDirectory]) where fileSystem.fileExists(folder) {
            let names = (try? fileSystem.listDirectory(folder)) ?? []
            for name in names {
                if let number = TableFormat.fileNumber(fromName: name), !live.contains(number) {
                    report.problems.append(.init(severity: .warning, file: folder.appendingPathComponent(name), offset: nil,
                                                 detail: "table not in the manifest (leftover of interrupted work); deleted at open"))
                }
            }
        }
        return report
    }

    private static func problem(_ error: any Error, fallbackFile: String) -> Problem {
        if case .corruption(let file, let offset, let detail) = error as? EngineError {
            return Problem(severity: .error, file: file, offset: offset, detail: detail)
        }
        return Problem(severity: .error, file: fallbackFile, offset: nil, detail: "\(error)")
    }

    public struct Summary: Sendable {
        public var partitions: [PartitionInfo]
        public var walSegments: [(name: String, bytes: Int)]
        public var lastSequence: UInt64
        public var partitionWidth: Int64?
    }

    /// The partitions, tiers and tables the manifest records, and the WAL.
    public static func summary(directory: String, options: EngineOptions = EngineOptions()) throws(EngineError) -> Summary {
        let fileSystem = options.fileSystem
        let lock: any DirectoryLock
        do { lock = try fileSystem.lockFile(directory.appendingPathComponent("LOCK")) } catch { throw .io(error) }
        defer { lock.release() }
        let manifest = try ManifestState.read(fileSystem: fileSystem, directory: directory)
        let coldDirectory = options.coldDirectory ?? directory.appendingPathComponent("cold")
        var grouped: [Int64: [TableInfo]] = [:]
        for file in manifest.files.values.sorted(by: { $0.number < $1.number }) {
            let folder = file.tier == .hot ? directory : coldDirectory
            grouped[file.partitionEnd, default: []].append(TableInfo(
                number: file.number, tier: file.tier, bytes: file.size, entries: file.entries, tombstones: file.tombstones,
                minExpiry: file.minExpiry == 0 ? nil : file.minExpiry, maxExpiry: file.maxExpiry == 0 ? nil : file.maxExpiry,
                createdAt: file.createdAt, path: folder.appendingPathComponent(TableFormat.fileName(file.number))))
        }
        let partitions = grouped.keys.sorted().map { end in
            PartitionInfo(end: end == PartitionLayout.persistentEnd ? nil : end, tables: grouped[end]!)
        }
        var segments: [(name: String, bytes: Int)] = []
        do {
            for name in try fileSystem.listDirectory(directory).sorted() where LogFormat.segmentNumber(fromName: name) != nil {
                let size = (try? fileSystem.openForReading(directory.appendingPathComponent(name)).size) ?? 0
                segments.append((name, Int(size)))
            }
        } catch {
            throw .io(error)
        }
        return Summary(partitions: partitions, walSegments: segments, lastSequence: manifest.lastSequence,
                       partitionWidth: manifest.partitionWidth)
    }
}
