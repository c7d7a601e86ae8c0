import Testing
@testable import Idempotency

@Suite struct KeyspaceTests {
    /// The temporary engine key a prefetch uses is byte for byte the one
    /// every read and write uses; a namespace over the limit gets none.
    @Test func temporaryEngineKeysMatchTheStoredOnes() throws {
        for namespace in [[], Array("tenant-a".utf8), [UInt8](repeating: 7, count: 255)] {
            for key in [[], Array("order:42".utf8), [UInt8](repeating: 0xFF, count: 1000)] {
                let expected = try Keyspace.engineKey(namespace: namespace, key: key)
                var built: [UInt8]?
                let called = key.withUnsafeBytes { raw in Keyspace.withEngineKey(namespace: namespace, key: raw) { built = Array($0) } }
                #expect(called && built == expected)
            }
        }
        let tooLong = [UInt8](repeating: 1, count: 256)
        let called = [UInt8]("k".utf8).withUnsafeBytes { raw in
            Keyspace.withEngineKey(namespace: tooLong, key: raw) { _ in Issue.record("body called") }
        }
        #expect(!called)
    }
}
