@_spi(Fuzzing) import IdemEngine

/// Arbitrary bytes as an SSTable: opening, looking up and walking it must
/// fail cleanly or succeed — never crash, hang or read out of bounds.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FuzzingHooks.readTable(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
