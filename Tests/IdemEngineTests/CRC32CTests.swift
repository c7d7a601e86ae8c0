import Testing
@testable import IdemEngine

@Suite struct CRC32CTests {
    @Test func knownVectors() {
        // RFC 3720 (iSCSI) B.4 and the common "123456789" check value.
        #expect(CRC32C.checksum(bytes("123456789")) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum(Array(0..<32)) == 0x46DD_794E)
        #expect(CRC32C.checksum([]) == 0)
    }

    @Test func streamingEqualsOneShot() {
        var generator = SplitMix64(seed: 7)
        let data = (0..<1000).map { _ in UInt8.random(in: 0...255, using: &generator) }
        for split in [0, 1, 7, 8, 9, 500, 999, 1000] {
            var crc = CRC32C()
            crc.update(Array(data[..<split]))
            crc.update(Array(data[split...]))
            #expect(crc.value == CRC32C.checksum(data))
        }
    }

    /// The CPU instruction path (when this machine has one) and the
    /// table-driven path agree on every length and alignment.
    @Test func hardwareAndSoftwareAgree() {
        var generator = SplitMix64(seed: 11)
        let data = (0..<4_200).map { _ in UInt8.random(in: 0...255, using: &generator) }
        data.withUnsafeBytes { raw in
            for start in [0, 1, 3, 8] {
                for length in [0, 1, 2, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000, 4096] {
                    let slice = UnsafeRawBufferPointer(rebasing: raw[start..<(start + length)])
                    var viaUpdate = CRC32C()
                    viaUpdate.update(slice)
                    var bySoftware = CRC32C()
                    bySoftware.updateBySoftware(slice)
                    #expect(viaUpdate.value == bySoftware.value, "start \(start) length \(length)")
                }
            }
        }
    }

    @Test func maskRoundTrips() {
        var crc = CRC32C()
        crc.update(bytes("idem"))
        #expect(CRC32C.unmask(crc.masked) == crc.value)
        #expect(crc.masked != crc.value)
    }
}
