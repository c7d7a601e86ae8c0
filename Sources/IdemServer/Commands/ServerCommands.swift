import Foundation
import IdemEngine
import Idempotency
import RESP

/// What the server says about itself.
enum ServerInfo {
    /// The Redis version Idem answers as (clients pick features by it).
    static let redisVersion = "7.2.0"
    static let idemVersion = "0.2.0"
}

/// INFO, TIME, CONFIG, COMMAND: the server's own state.
enum ServerCommands {
    static let table: [Command] = [
        Command(name: "info", arity: -1, flags: [], keys: (0, 0, 0),
                summary: "INFO [section ...]: server, clients, memory, persistence, stats, keyspace, idem.", run: info),
        Command(name: "time", arity: 1, flags: [.fast], keys: (0, 0, 0), summary: "Unix time: seconds, microseconds.",
                run: time),
        Command(name: "config", arity: -2, flags: [], keys: (0, 0, 0), summary: "CONFIG GET parameter [parameter ...]",
                run: config),
        Command(name: "command", arity: -1, flags: [], keys: (0, 0, 0),
                summary: "COMMAND [COUNT | LIST | INFO name ... | DOCS name ...]", run: command),
        Command(name: "idem.backup", arity: 2, flags: [.admin], keys: (0, 0, 0),
                summary: "IDEM.BACKUP directory: an online, consistent copy of the whole store.", run: backup),
    ]

    /// IDEM.BACKUP: Engine.backup on the blocking pool (the path is the
    /// server's, so relative paths are relative to its working directory).
    static func backup(_ call: Invocation) -> CommandResult {
        let destination = String(decoding: call[1], as: UTF8.self)
        let server = call.server
        server.logger.notice("backup requested", metadata: [
            "audit": "backup", "user": "\(call.session.user?.name ?? "")", "destination": "\(destination)",
            "client_id": "\(call.session.info.id)",
        ])
        return call.offload {
            do throws(EngineError) {
                let report = try server.engine.backup(to: destination)
                server.logger.notice("backup done", metadata: [
                    "destination": "\(destination)", "tables_linked": "\(report.tablesLinked)",
                    "tables_copied": "\(report.tablesCopied)", "wal_bytes": "\(report.walBytes)",
                ])
                return .map([
                    (.bulk("tables_linked"), .integer(Int64(report.tablesLinked))),
                    (.bulk("tables_copied"), .integer(Int64(report.tablesCopied))),
                    (.bulk("wal_segments"), .integer(Int64(report.walSegments))),
                    (.bulk("wal_bytes"), .integer(Int64(report.walBytes))),
                ])
            } catch {
                return .engineFailure(error)
            }
        }
    }

    static func time(_ call: Invocation) -> CommandResult {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return .reply(.array([.bulk(String(now.tv_sec)), .bulk(String(now.tv_nsec / 1000))]))
    }

    // MARK: CONFIG

    /// The parameters CONFIG GET answers: what clients and tools ask for.
    static func parameters(_ server: ServerContext) -> [(String, String)] {
        let configuration = server.configuration
        let fsync = switch configuration.engine.durability {
        case .always: "always"
        case .everysec: "everysec"
        case .never: "no"
        }
        return [
            ("appendfsync", fsync), ("appendonly", "yes"), ("bind", configuration.bindAddress),
            ("databases", "1"), ("dir", configuration.directory), ("maxclients", String(configuration.maxClients)),
            ("maxmemory", "0"), ("port", String(configuration.port)),
            ("proto-max-bulk-len", String(configuration.maxBulkLength)),
            ("jemalloc-bg-thread", configuration.allocator?.backgroundPurge == true ? "yes" : "no"),
            ("protected-mode", configuration.protectedMode ? "yes" : "no"), ("save", ""),
            ("timeout", String(configuration.idleTimeoutMilliseconds / 1000)),
        ]
    }

    static func config(_ call: Invocation) -> CommandResult {
        switch call.option(1) {
        case "GET":
            guard call.argumentCount >= 3 else { return .reply(.wrongArity("config|get")) }
            let patterns = (2..<call.argumentCount).map { GlobPattern(call[$0].map { $0 >= 0x41 && $0 <= 0x5A ? $0 + 0x20 : $0 }) }
            let pairs = parameters(call.server).filter { name, _ in patterns.contains { $0.matches(Array(name.utf8)) } }
            return .reply(.map(pairs.map { (.bulk($0.0), .bulk($0.1)) }))
        case "SET":
            guard call.argumentCount >= 4 else { return .reply(.wrongArity("config|set")) }
            return .reply(.error("ERR Unknown option or number of arguments for CONFIG SET - '"
                + String(decoding: call[2].prefix(64), as: UTF8.self) + "' (Idem is configured by flags; restart to change)"))
        case "RESETSTAT":
            return .reply(.ok)
        case "HELP":
            return .reply(.array(["CONFIG GET <pattern>", "    Return parameters matching the glob-like <pattern>."]
                .map { .simpleString($0) }))
        default:
            return .reply(.unknownSubcommand(call[1], of: "config"))
        }
    }

    // MARK: COMMAND

    static func command(_ call: Invocation) -> CommandResult {
        let table = call.server.commands
        guard call.argumentCount > 1 else {
            return .reply(.array(table.values.sorted { $0.name < $1.name }.map(\.info)))
        }
        let names = (2..<call.argumentCount).map { String(decoding: call[$0], as: UTF8.self).lowercased() }
        switch call.option(1) {
        case "COUNT":
            return .reply(.integer(Int64(table.count)))
        case "LIST":
            return .reply(.array(table.keys.sorted().map { .bulk($0) }))
        case "INFO":
            return .reply(.array(names.map { table[$0]?.info ?? .bulkString(nil) }))
        case "DOCS":
            let wanted = names.isEmpty ? table.keys.sorted() : names.filter { table[$0] != nil }
            return .reply(.map(wanted.map { name in
                (.bulk(name), .map([(.bulk("summary"), .bulk(table[name]!.summary)),
                                    (.bulk("group"), .bulk(name.hasPrefix("idem.") ? "idempotency" : "generic"))]))
            }))
        default:
            return .reply(.unknownSubcommand(call[1], of: "command"))
        }
    }

    // MARK: INFO

    static func info(_ call: Invocation) -> CommandResult {
        let requested = Set((1..<call.argumentCount).map { call.option($0).lowercased() })
        let server = call.server
        let namespace = call.session.namespace
        let clientsConnected = server.clients.count
        return call.offload {
            render(server: server, sections: requested, namespace: namespace, clientsConnected: clientsConnected)
        }
    }

    static func render(server: ServerContext, sections requested: Set<String>, namespace: [UInt8], clientsConnected: Int) -> RESPValue {
        let everything = requested.contains("all") || requested.contains("everything")
        // Redis's default sections, but for the keyspace: its counts take a
        // pass over every key (Redis keeps them in its dictionaries), and
        // monitoring polls INFO every few seconds — so they come only when
        // asked for (`INFO keyspace`, `INFO all`).
        let defaults = requested.isEmpty || requested.contains("default")
        let statistics = server.engine.statistics
        let idempotency = server.store.metrics.snapshot
        let counters = server.metrics.snapshot()
        let now = server.now
        let rss = residentBytes()
        var text = ""
        func section(_ name: String, _ fields: [(String, String)]) {
            guard everything || defaults || requested.contains(name) else { return }
            text += "# \(name.prefix(1).uppercased() + name.dropFirst())\r\n"
            for (key, value) in fields { text += "\(key):\(value)\r\n" }
            text += "\r\n"
        }
        let uptime = max(0, now - server.startedAt) / 1000
        section("server", [
            ("redis_version", ServerInfo.redisVersion), ("idem_version", ServerInfo.idemVersion),
            ("redis_mode", "standalone"), ("os", "Linux"), ("arch_bits", "64"),
            ("process_id", String(getpid())), ("tcp_port", String(server.configuration.port)),
            ("uptime_in_seconds", String(uptime)), ("uptime_in_days", String(uptime / 86_400)),
            ("executable", CommandLine.arguments.first ?? "idem"),
        ])
        section("clients", [
            ("connected_clients", String(clientsConnected)), ("maxclients", String(server.configuration.maxClients)),
            ("blocked_clients", "0"),
        ])
        section("memory", memoryFields(rss: rss, allocator: server.configuration.allocator) + [
            ("idem_memtable_bytes", String(statistics.memtableBytes)),
            ("idem_block_cache_bytes", String(statistics.blockCacheBytes)),
        ])
        section("persistence", [
            ("loading", "0"), ("aof_enabled", "1"), ("rdb_bgsave_in_progress", "0"),
            ("idem_fsync", server.configuration.engine.durability.rawValue),
            ("idem_read_only", statistics.readOnlyReason == nil ? "0" : "1"),
            ("idem_read_only_reason", statistics.readOnlyReason ?? ""),
            ("idem_wal_syncs", String(statistics.walSyncs)),
            ("idem_wal_sync_seconds", String(format: "%.3f", statistics.walSyncSeconds)),
            ("idem_wal_bytes", String(statistics.walBytes)),
        ])
        section("stats", [
            ("total_connections_received", String(counters.connectionsAccepted)),
            ("total_commands_processed", String(counters.commands)),
            ("total_net_input_bytes", String(counters.bytesIn)), ("total_net_output_bytes", String(counters.bytesOut)),
            ("rejected_connections", String(counters.connectionsRejected)),
            ("keyspace_hits", String(counters.keyspaceHits)), ("keyspace_misses", String(counters.keyspaceMisses)),
            ("total_error_replies", String(counters.errorReplies)),
            ("acl_access_denied_auth", String(counters.failedAuthentications)),
            ("idem_io_threads_active", String(counters.activeEventLoops)),
            ("idem_connections_moved", String(counters.connectionsMoved)),
        ])
        if everything || requested.contains("keyspace") {
            text += "# Keyspace\r\n"
            let prefix = server.engineKey(namespace: namespace, key: [])
            var keys = 0, expiring = 0
            try? server.engine.scan(prefix: prefix) { _, value in
                keys += 1
                if value.expiresAt != nil { expiring += 1 }
                return true
            }
            if keys > 0 { text += "db0:keys=\(keys),expires=\(expiring),avg_ttl=0\r\n" }
            text += "\r\n"
        }
        section("idem", [
            ("partitions", String(statistics.partitions)), ("tables", String(statistics.tables)),
            ("table_bytes", String(statistics.tableBytes)), ("memtable_entries", String(statistics.memtableEntries)),
            ("sealed_memtables", String(statistics.sealedMemtables)), ("writes_acknowledged", String(statistics.writesAcknowledged)),
            ("write_failures", String(statistics.writeFailures)), ("write_stalls", String(statistics.writeStalls)),
            ("flushes", String(statistics.maintenance.flushes)),
            ("partitions_dropped", String(statistics.maintenance.partitionsDropped)),
            ("compactions", String(statistics.maintenance.compactions)),
            ("compaction_bytes_read", String(statistics.maintenance.compactionBytesRead)),
            ("compaction_bytes_written", String(statistics.maintenance.compactionBytesWritten)),
            ("compaction_running", statistics.compacting ? "1" : "0"),
            ("flush_seconds", String(format: "%.6f", statistics.maintenance.flushSeconds)),
            ("compaction_seconds", String(format: "%.6f", statistics.maintenance.compactionSeconds)),
            ("partition_drop_seconds", String(format: "%.6f", statistics.maintenance.dropSeconds)),
            ("maintenance_priority", statistics.maintenancePriority.rawValue),
            ("maintenance_boosts", String(statistics.maintenanceBoosts)),
            ("block_cache_hits", String(statistics.blockCacheHits)), ("block_cache_misses", String(statistics.blockCacheMisses)),
            ("idem_acquired", String(idempotency.acquired)), ("idem_replayed", String(idempotency.replayed)),
            ("idem_in_progress_conflicts", String(idempotency.inProgressConflicts)),
            ("idem_mismatches", String(idempotency.mismatches)), ("idem_takeovers", String(idempotency.takeovers)),
            ("idem_lease_lost", String(idempotency.leaseLost)), ("idem_completed", String(idempotency.completed)),
            ("idem_aborted", String(idempotency.aborted)), ("idem_forgotten", String(idempotency.forgotten)),
        ])
        return .bulk(text)
    }

    /// INFO memory's Redis fields. `used_memory` is the process RSS (Redis
    /// reports its allocator's `allocated`; an RSS hides nothing the
    /// allocator keeps); the allocator's own view follows when the
    /// executable reports one, under Redis's names, so the difference
    /// between what is in use and what is resident can be read off.
    static func memoryFields(rss: Int, allocator: AllocatorReport?) -> [(String, String)] {
        var fields = [
            ("used_memory", String(rss)), ("used_memory_rss", String(rss)),
            ("used_memory_human", humanBytes(rss)), ("maxmemory", "0"),
            ("mem_allocator", allocator?.name ?? "libc"),
        ]
        if let figures = allocator?.statistics() {
            fields += [
                ("allocator_allocated", String(figures.allocated)), ("allocator_active", String(figures.active)),
                ("allocator_resident", String(figures.resident)),
            ]
        }
        return fields
    }

    /// Resident set size of this process, from /proc (0 where unavailable).
    static func residentBytes() -> Int {
        guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = statm.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    static func humanBytes(_ bytes: Int) -> String {
        let units = ["B", "K", "M", "G", "T"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return String(format: "%.2f%@", value, units[unit])
    }
}
