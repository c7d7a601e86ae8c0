import Idempotency

/// Arbitrary bytes as a stored keyspace value: decoding must fail with a
/// named error or succeed — never crash — and a record that decodes must
/// survive an encode/decode round trip unchanged.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let record = try? IdempotencyStore.record(from: bytes) else { return 0 }
    let encoded = IdempotencyStore.encode(record)
    guard let again = try? IdempotencyStore.record(from: encoded), again == record else {
        fatalError("round trip changed the record: \(record)")
    }
    return 0
}
