import ArgumentParser
import IdemEngine

#if canImport(Glibc)
import Glibc
#endif

@main
struct Idem: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "idem",
        abstract: "Idem: a durable store for idempotency keys.",
        subcommands: [Smoke.self, Put.self, Get.self, Delete.self, Scan.self, Info.self]
    )
}

/// Options every subcommand that opens a data directory shares.
struct StoreOptions: ParsableArguments {
    @Option(name: .long, help: "Data directory (created if missing).")
    var dir = "./idem-data"

    @Option(name: .long, help: "When writes are durable: always, everysec or never.")
    var fsync: Durability = .always

    @Flag(name: .long, help: "Open a damaged log by keeping every valid record and reporting the rest.")
    var salvage = false

    func open() throws -> Engine {
        var options = EngineOptions(durability: fsync)
        options.recovery = salvage ? .salvage : .strict
        do {
            return try Engine.open(directory: dir, options: options)
        } catch {
            throw ValidationError("cannot open \(dir): \(error)")
        }
    }
}

extension Durability: ExpressibleByArgument {}

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
        let stats = engine.statistics
        try engine.close()
        print("ok: run \(runs) on \(store.dir) (fsync=\(store.fsync.rawValue)); \(stats.memtableEntries) keys, "
            + "sequence \(stats.lastSequence), \(stats.walSyncs) WAL syncs this run")
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
            last sequence:    \(stats.lastSequence)
            WAL segment:      \(stats.currentWALSegment)
            """)
    }
}
