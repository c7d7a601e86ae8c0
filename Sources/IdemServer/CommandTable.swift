/// Every command the server answers, by lower-case name.
enum CommandTable {
    static let all: [String: Command] = {
        let groups = [ConnectionCommands.table, ServerCommands.table, StringCommands.table, KeyCommands.table,
                      ScanCommands.table, IdempotencyCommands.table]
        return Dictionary(groups.joined().map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
    }()
}
