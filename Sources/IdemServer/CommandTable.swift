/// Every command the server answers, by lower-case name.
enum CommandTable {
    static let all: [String: Command] = {
        let groups = [ConnectionCommands.table, ServerCommands.table, StringCommands.table, KeyCommands.table,
                      ScanCommands.table, IdempotencyCommands.table]
        var table = Dictionary(groups.joined().map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        for (index, name) in table.keys.sorted().enumerated() { table[name]!.index = index }
        return table
    }()

    /// Command names in `Command.index` order (what `ClientInfo` records
    /// per command, without allocating).
    static let names: [String] = all.keys.sorted()
}
