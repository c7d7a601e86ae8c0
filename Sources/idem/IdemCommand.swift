import ArgumentParser
import Foundation
import IdemEngine

#if canImport(Glibc)
import Glibc
#endif

@main
struct Idem: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "idem",
        abstract: "Idem: a durable store for idempotency keys.",
        subcommands: [Serve.self, Check.self, Stats.self, Backup.self, HashPassword.self, Smoke.self, Put.self, Get.self, Delete.self,
                      Scan.self, Info.self]
    )

    static func main() async {
        let arguments = EnvironmentOptions.arguments(Array(CommandLine.arguments.dropFirst()),
                                                     environment: ProcessInfo.processInfo.environment)
        do {
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}

/// Options every subcommand that opens a data directory shares.
struct StoreOptions: ParsableArguments {
    @Option(name: .long, help: "Data directory (created if missing).")
    var dir = "./idem-data"

    @Option(name: .long, help: "When writes are durable: always, everysec or never.")
    var fsync: Durability = .always

    @Flag(name: .long, help: "Open a damaged log by keeping every valid record and reporting the rest.")
    var salvage = false

    @Option(name: .long, help: "Width of a time partition, e.g. 10m, 1h, 1d.")
    var partitionWidth: DurationArgument = DurationArgument(milliseconds: 3_600_000)

    func open() throws -> Engine {
        var options = EngineOptions(durability: fsync)
        options.recovery = salvage ? .salvage : .strict
        options.partitionWidth = partitionWidth.milliseconds
        do {
            return try Engine.open(directory: dir, options: options)
        } catch {
            throw ValidationError("cannot open \(dir): \(error)")
        }
    }
}

extension Durability: ExpressibleByArgument {}
extension MaintenancePriority: ExpressibleByArgument {}

/// A duration typed as a number and a unit: `250ms`, `30s`, `10m`, `1h`, `2d`.
struct DurationArgument: ExpressibleByArgument {
    var milliseconds: Int64

    init(milliseconds: Int64) {
        self.milliseconds = milliseconds
    }

    init?(argument: String) {
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        for (suffix, scale) in units where argument.hasSuffix(suffix) {
            let digits = argument.dropLast(suffix.count)
            if suffix == "s" && digits.hasSuffix("m") { continue } // "ms" is handled first
            guard let value = Int64(digits), value > 0 else { return nil }
            let (product, overflow) = value.multipliedReportingOverflow(by: scale)
            guard !overflow else { return nil }
            milliseconds = product
            return
        }
        return nil
    }

    var defaultValueDescription: String { "\(milliseconds)ms" }
}

func describe(_ report: RecoveryReport) -> String {
    var lines = ["recovered \(report.entriesReplayed) entries from \(report.recordsReplayed) records in "
        + "\(report.segmentsReplayed) WAL segments in \(String(format3(report.durationSeconds))) s"]
    if report.tornTailBytes > 0, let file = report.tornTailFile {
        lines.append("cut an interrupted write of \(report.tornTailBytes) bytes from the end of \(file)")
    }
    for dropped in report.droppedRanges {
        lines.append("salvage dropped \(dropped.length) bytes at offset \(dropped.offset) of \(dropped.file): \(dropped.reason)")
    }
    return lines.joined(separator: "\n")
}

func format3(_ value: Double) -> String {
    let scaled = Int((value * 1000).rounded())
    let fraction = String(scaled % 1000)
    return "\(scaled / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)"
}

/// Proves the embedded engine works on this machine: opens the data
/// directory, counts this run with an atomic read-modify-write, writes and
/// reads back a key with a TTL, and reports what recovery found.
struct Smoke: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Open the data directory, write, read back and report.")

    @OptionGroup var store: StoreOptions

    func run() async throws {
        let engine = try store.open()
        print(describe(engine.recoveryReport))
        let runs = try await engine.update(Array("idem:smoke:runs".utf8)) { current in
            let previous = current.flatMap { Int(String(decoding: $0.value, as: UTF8.self)) } ?? 0
            return (.put(value: Array(String(previous + 1).utf8), expiresAt: nil), previous + 1)
        }
        let key = Array("idem:smoke:last".utf8)
        let expiresAt = SystemClock().nowMilliseconds() + 86_400_000
        try await engine.put(key, Array("run \(runs)".utf8), expiresAt: expiresAt)
        guard let stored = try engine.get(key), stored.value == Array("run \(runs)".utf8) else {
            throw ValidationError("read-back mismatch for idem:smoke:last")
        }
        // Through the whole engine: flush to a table, read back from it.
        try await engine.flush()
        guard try engine.get(key)?.value == Array("run \(runs)".utf8) else {
            throw ValidationError("read-back from the table failed for idem:smoke:last")
        }
        let stats = engine.statistics
        try engine.close()
        print("ok: run \(runs) on \(store.dir) (fsync=\(store.fsync.rawValue)); \(stats.tables) tables in "
            + "\(stats.partitions) partitions, sequence \(stats.lastSequence), \(stats.walSyncs) WAL syncs this run")
    }
}

struct Put: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Store a value.")
    @OptionGroup var store: StoreOptions
    @Argument var key: String
    @Argument var value: String
    @Option(name: .customLong("ttl-ms"), help: "Expire after this many milliseconds.")
    var ttlMilliseconds: Int64?

    func run() async throws {
        let engine = try store.open()
        defer { try? engine.close() }
        if let ttl = ttlMilliseconds, ttl <= 0 { throw ValidationError("--ttl-ms must be positive") }
        let expiresAt = ttlMilliseconds.map { SystemClock().nowMilliseconds() + $0 }
        try await engine.put(Array(key.utf8), Array(value.utf8), expiresAt: expiresAt)
        print("OK")
    }
}

struct Get: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a value (exit 1 when absent).")
    @OptionGroup var store: StoreOptions
    @Argument var key: String

    func run() throws {
        let engine = try store.open()
        defer { try? engine.close() }
        guard let stored = try engine.get(Array(key.utf8)) else { throw ExitCode(1) }
        print(String(decoding: stored.value, as: UTF8.self))
    }
}

struct Delete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "del", abstract: "Delete a key.")
    @OptionGroup var store: StoreOptions
    @Argument var key: String

    func run() async throws {
        let engine = try store.open()
        defer { try? engine.close() }
        try await engine.delete(Array(key.utf8))
        print("OK")
    }
}

struct Scan: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List live keys with a prefix, in order.")
    @OptionGroup var store: StoreOptions
    @Argument var prefix = ""
    @Option var limit = 100

    func run() throws {
        let engine = try store.open()
        defer { try? engine.close() }
        for (key, stored) in try engine.scan(prefix: Array(prefix.utf8), limit: limit) {
            let ttl = stored.expiresAt.map { " (expires at \($0) ms)" } ?? ""
            print("\(String(decoding: key, as: UTF8.self)) = \(String(decoding: stored.value, as: UTF8.self))\(ttl)")
        }
    }
}

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Report recovery and engine statistics.")
    @OptionGroup var store: StoreOptions

    func run() throws {
        let engine = try store.open()
        defer { try? engine.close() }
        print(describe(engine.recoveryReport))
        let stats = engine.statistics
        print("""
            keys in memtable: \(stats.memtableEntries) (~\(stats.memtableBytes) bytes)
            tables:           \(stats.tables) in \(stats.partitions) partitions (\(stats.tableBytes) bytes)
            last sequence:    \(stats.lastSequence)
            WAL segment:      \(stats.currentWALSegment)
            """)
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Verify a stopped data directory: manifest, every table block, every WAL record.",
        discussion: "Exits 0 when healthy (warnings allowed), 1 when any error is found.")

    @Option(name: .long, help: "Data directory.")
    var dir = "./idem-data"

    func run() throws {
        let showProgress = isatty(STDERR_FILENO) == 1
        let report: DataDirectory.CheckReport
        do {
            report = try DataDirectory.check(directory: dir) { progress in
                guard showProgress, progress.total > 0 else { return }
                let width = 30
                let filled = progress.done * width / progress.total
                let bar = String(repeating: "#", count: filled) + String(repeating: " ", count: width - filled)
                let name = progress.file.split(separator: "/").last.map(String.init) ?? ""
                FileHandleOutput.standardError("\r[\(bar)] \(progress.done)/\(progress.total) \(name)\u{1B}[K")
            }
        } catch {
            throw ValidationError("cannot check \(dir): \(error)")
        }
        if showProgress { FileHandleOutput.standardError("\r\u{1B}[K") }
        for problem in report.problems { print(problem) }
        print("checked \(report.tablesChecked) tables (\(report.entriesChecked) entries), "
            + "\(report.walSegmentsChecked) WAL segments (\(report.walRecordsChecked) records), "
            + "\(report.manifestEdits) manifest edits: \(report.isHealthy ? "OK" : "DAMAGED")")
        if !report.isHealthy { throw ExitCode(1) }
    }
}

struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List partitions, tiers, tables and the WAL of a stopped data directory.")

    @Option(name: .long, help: "Data directory.")
    var dir = "./idem-data"

    func run() throws {
        let summary: DataDirectory.Summary
        do { summary = try DataDirectory.summary(directory: dir) } catch {
            throw ValidationError("cannot read \(dir): \(error)")
        }
        print("partition width: \(summary.partitionWidth.map { "\($0) ms" } ?? "-"), last sequence: \(summary.lastSequence)")
        for partition in summary.partitions {
            let bytes = partition.tables.reduce(0) { $0 + $1.bytes }
            let entries = partition.tables.reduce(0) { $0 + $1.entries }
            let ends = partition.end.map { "ends \(formatTimestamp($0))" } ?? "persistent (never expires)"
            print("partition \(ends): \(partition.tables.count) tables, \(entries) entries, \(bytes) bytes")
            for table in partition.tables {
                let expiry = table.minExpiry.map { "expiry \(formatTimestamp($0)) … \(formatTimestamp(table.maxExpiry ?? $0))" } ?? "no expiry"
                print("  \(table.tier) #\(table.number): \(table.entries) entries (\(table.tombstones) deletions), "
                    + "\(table.bytes) bytes, \(expiry)")
            }
        }
        let walBytes = summary.walSegments.reduce(0) { $0 + $1.bytes }
        print("WAL: \(summary.walSegments.count) segments, \(walBytes) bytes")
    }
}

/// Milliseconds since the epoch as an ISO-8601 UTC instant.
func formatTimestamp(_ milliseconds: Int64) -> String {
    var seconds = time_t(milliseconds / 1000)
    var parts = tm()
    gmtime_r(&seconds, &parts)
    func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
    return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
}

enum FileHandleOutput {
    static func standardError(_ text: String) {
        var bytes = Array(text.utf8)
        _ = bytes.withUnsafeMutableBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
    }
}
