import Testing
import IdemEngine
#if canImport(Glibc)
import Glibc
#endif
@testable import Idempotency

@Suite struct KeyGeneratorTests {
    let generator = try! KeyGenerator(secret: Array("0123456789abcdef-server-secret".utf8))

    @Test func hybridKeysVerifyAndForgeriesDoNot() throws {
        let key = try generator.hybrid(prefix: "checkout_v2")
        #expect(key.hasPrefix("checkout_v2."))
        #expect(generator.verify(key))
        let bytes = Array(key.utf8)
        // Every single-byte change of the payload is caught.
        for index in ("checkout_v2.".utf8.count)..<bytes.count {
            var flipped = bytes
            flipped[index] = flipped[index] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
            #expect(!generator.verify(flipped), "flipped byte \(index)")
        }
        // Another secret, another prefix.
        let other = try KeyGenerator(secret: Array("another-secret-of-sufficient-length".utf8))
        #expect(!other.verify(key))
        #expect(!generator.verify("checkout_v3" + key.dropFirst("checkout_v2".count)))
        #expect(!generator.verify(Array("no-dot-at-all".utf8)))
        #expect(!generator.verify(KeyGenerator.uuid4()))
        #expect(try generator.hybrid(prefix: "checkout_v2") != key, "keys are random")
    }

    @Test func invalidPrefixesAndSecretsAreRefused() {
        #expect(throws: KeyGenerator.Failure.self) { _ = try generator.hybrid(prefix: "") }
        #expect(throws: KeyGenerator.Failure.self) { _ = try generator.hybrid(prefix: "has.dot") }
        #expect(throws: KeyGenerator.Failure.self) { _ = try generator.hybrid(prefix: String(repeating: "a", count: 65)) }
        #expect(throws: KeyGenerator.Failure.secretTooShort(5)) { _ = try KeyGenerator(secret: Array("short".utf8)) }
        #expect(!"\(generator)".contains("secret-of"), "the secret is never printed")
    }

    @Test func secretsLoadFromFileAndEnvironment() throws {
        let fileSystem = SimulatedFileSystem()
        let file = try fileSystem.openForAppending("/secret")
        try file.append(Array("file-secret-0123456789\n".utf8)[...])
        let fromFile = try KeyGenerator.loadingSecret(fromFile: "/secret", fileSystem: fileSystem)
        let direct = try KeyGenerator(secret: Array("file-secret-0123456789".utf8))
        #expect(direct.verify(try fromFile.hybrid(prefix: "x")), "the trailing newline is not part of the secret")
        setenv("IDEM_TEST_KEY_SECRET", "environment-secret-0123", 1)
        let fromEnvironment = try KeyGenerator.loadingSecret(fromEnvironment: "IDEM_TEST_KEY_SECRET")
        #expect(try KeyGenerator(secret: Array("environment-secret-0123".utf8)).verify(try fromEnvironment.hybrid(prefix: "y")))
        #expect(throws: KeyGenerator.Failure.self) { _ = try KeyGenerator.loadingSecret(fromEnvironment: "IDEM_TEST_UNSET_VARIABLE") }
        #expect(throws: KeyGenerator.Failure.self) { _ = try KeyGenerator.loadingSecret(fromFile: "/missing", fileSystem: fileSystem) }
    }

    /// The CSPRNG draw behind tokens and keys: the length asked for, every
    /// byte value reachable at every position (a draw that left a tail
    /// unfilled, or filled it from the wrong offset, shows up as a
    /// position stuck at one value), no two draws alike.
    @Test func randomBytesFillEveryPosition() {
        for count in [0, 1, 7, 8, 9, 16, 33, 300] { #expect(randomBytes(count).count == count) }
        var seen = [Set<UInt8>](repeating: [], count: 300)
        var draws = Set<[UInt8]>()
        for _ in 0..<200 {
            let draw = randomBytes(300)
            for (position, byte) in draw.enumerated() { seen[position].insert(byte) }
            draws.insert(Array(draw.prefix(16)))
        }
        #expect(seen.allSatisfy { $0.count > 64 }, "200 draws give each position many values")
        #expect(draws.count == 200)
    }

    /// Small draws come from the pool: across many refills, every byte
    /// value still reaches every position, no draw repeats (a refill that
    /// reused or skipped the pool's bytes would), and draws of odd sizes
    /// that straddle a refill are whole.
    @Test func pooledDrawsAreFreshAcrossRefills() {
        var seen = [Set<UInt8>](repeating: [], count: 16)
        var draws = Set<[UInt8]>()
        for _ in 0..<2000 {
            let draw = randomBytes(16)
            for (position, byte) in draw.enumerated() { seen[position].insert(byte) }
            draws.insert(draw)
        }
        #expect(seen.allSatisfy { $0.count > 200 })
        #expect(draws.count == 2000)
        #expect(randomBytes(1).count == 1)
        for count in [15, 33, 64] {
            var odd = Set<[UInt8]>()
            for _ in 0..<100 {
                let draw = randomBytes(count)
                #expect(draw.count == count)
                odd.insert(draw)
            }
            #expect(odd.count == 100, "\(count)-byte draws repeat")
        }
    }

    @Test func uuidsHaveTheirVersionAndVariant() {
        let four = Array(KeyGenerator.uuid4().utf8)
        #expect(four.count == 36 && four[14] == UInt8(ascii: "4") && [UInt8]("89ab".utf8).contains(four[19]))
        let millis: Int64 = 0x0189_ABCD_EF01
        let seven = KeyGenerator.uuid7(milliseconds: millis)
        #expect(seven.hasPrefix("0189abcd-ef01-7"))
        #expect([UInt8]("89ab".utf8).contains(Array(seven.utf8)[19]))
        #expect(KeyGenerator.uuid7(milliseconds: millis + 1) > seven, "time-ordered")
    }

    @Test func requiredIssuedKeysAreEnforcedByTheStore() async throws {
        var configuration = IdempotencyConfiguration()
        configuration.requireIssuedKeysFrom = generator
        let store = try Harness().open(configuration)
        await #expect(throws: IdempotencyError.keyNotIssued) { _ = try await store.begin(Array("made-up-key".utf8)) }
        let issued = Array(try generator.hybrid(prefix: "pay").utf8)
        guard case .acquired = try await store.begin(issued) else { Issue.record("issued key refused"); return }
    }

    @Test func base64URLRoundTrips() {
        var random = SystemRandomNumberGenerator()
        for length in 0..<40 {
            let data = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
            let text = Base64URL.encode(data)
            #expect(!text.contains("=") && !text.contains("+") && !text.contains("/"))
            #expect(Base64URL.decode(Array(text.utf8)) == data)
        }
        #expect(Base64URL.decode(Array("a".utf8)) == nil)
        #expect(Base64URL.decode(Array("ab!d".utf8)) == nil)
    }
}
