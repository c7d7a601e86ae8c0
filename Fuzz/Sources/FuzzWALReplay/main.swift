import IdemEngine

/// Arbitrary bytes as the only WAL segment of a data directory: opening it
/// strictly must either succeed or fail with an `EngineError` (never crash,
/// hang or touch memory it should not); salvage must always open, and a
/// strict open after a salvage must succeed.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let fileSystem = SimulatedFileSystem()
    let directory = "/db"
    var options = EngineOptions(durability: .never)
    options.fileSystem = fileSystem
    options.clock = ManualClock()
    options.backgroundMaintenance = false
    do {
        try fileSystem.createDirectory(directory)
        let file = try fileSystem.openForAppending(directory + "/wal-00000000000000000001.log")
        try file.append(UnsafeRawBufferPointer(start: data, count: size))
        try file.sync()
        try fileSystem.syncDirectory(directory)
    } catch {
        fatalError("simulated file system failed: \(error)")
    }

    if let engine = try? Engine.open(directory: directory, options: options) {
        _ = try? engine.scan(limit: 100)
        try? engine.close()
    }
    options.recovery = .salvage
    guard let salvaged = try? Engine.open(directory: directory, options: options) else {
        fatalError("salvage must open any log")
    }
    guard let survivors = try? salvaged.scan() else {
        fatalError("a salvaged engine must scan (its data is all in memory)")
    }
    try? salvaged.close()
    options.recovery = .strict
    guard let reopened = try? Engine.open(directory: directory, options: options) else {
        fatalError("a strict open after salvage must succeed")
    }
    precondition((try? reopened.scan())?.count == survivors.count, "salvage must be stable across reopen")
    try? reopened.close()
    return 0
}
