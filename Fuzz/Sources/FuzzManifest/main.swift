@_spi(Fuzzing) import IdemEngine

/// Arbitrary bytes as the live manifest: reading it must fail cleanly or
/// succeed — never crash or hang.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FuzzingHooks.readManifest(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
