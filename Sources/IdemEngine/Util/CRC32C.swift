import CIdemHardware

/// CRC-32C (Castagnoli), the checksum on every on-disk record.
///
/// The CPU's CRC-32C instruction where there is one (SSE4.2 on x86-64,
/// the CRC extension on arm64: several times faster, and every block read
/// and log record pays for it), else table-driven, eight bytes per step
/// ("slicing-by-8"). The checksum is
/// streaming: `CRC32C()` starts, `update` feeds bytes in any number of
/// pieces, `value` reads the result. Stored checksums are *masked* (see
/// `masked`) so that a checksum computed over bytes that themselves contain
/// an embedded checksum does not degenerate.
public struct CRC32C: Sendable {
    private var state: UInt32 = 0xFFFF_FFFF

    public init() {}

    public var value: UInt32 { ~state }

    /// The value, masked for storage (LevelDB's rotate-and-add).
    public var masked: UInt32 {
        let crc = value
        return ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
    }

    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var crc = CRC32C()
        crc.update(bytes)
        return crc.value
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }

    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    public mutating func update(_ value: UInt64) {
        withUnsafeBytes(of: value.littleEndian) { update($0) }
    }

    public mutating func update(_ value: UInt32) {
        withUnsafeBytes(of: value.littleEndian) { update($0) }
    }

    public mutating func update(_ value: UInt8) {
        withUnsafeBytes(of: value) { update($0) }
    }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        if Self.hardware {
            state = idem_crc32c_update(state, base, bytes.count)
        } else {
            updateBySoftware(bytes)
        }
    }

    private static let hardware = idem_crc32c_hardware_available() != 0

    /// The table-driven update (also the reference the hardware path is
    /// tested against).
    mutating func updateBySoftware(_ bytes: UnsafeRawBufferPointer) {
        let table = CRC32CTable.shared
        var crc = state
        var index = 0
        let count = bytes.count
        table.entries.withUnsafeBufferPointer { t in
            while count - index >= 8 {
                let word = bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self).littleEndian
                let low = UInt32(truncatingIfNeeded: word) ^ crc
                let high = UInt32(truncatingIfNeeded: word >> 32)
                crc = t[7 * 256 + Int(low & 0xFF)]
                    ^ t[6 * 256 + Int((low >> 8) & 0xFF)]
                    ^ t[5 * 256 + Int((low >> 16) & 0xFF)]
                    ^ t[4 * 256 + Int(low >> 24)]
                    ^ t[3 * 256 + Int(high & 0xFF)]
                    ^ t[2 * 256 + Int((high >> 8) & 0xFF)]
                    ^ t[1 * 256 + Int((high >> 16) & 0xFF)]
                    ^ t[Int(high >> 24)]
                index += 8
            }
            while index < count {
                crc = t[Int((crc ^ UInt32(bytes[index])) & 0xFF)] ^ (crc >> 8)
                index += 1
            }
        }
        state = crc
    }

    /// Reverses `masked`.
    public static func unmask(_ masked: UInt32) -> UInt32 {
        let rotated = masked &- 0xA282_EAD8
        return (rotated >> 17) | (rotated << 15)
    }
}

/// Eight 256-entry tables for slicing-by-8, built once.
private final class CRC32CTable: Sendable {
    static let shared = CRC32CTable()
    let entries: [UInt32]

    private init() {
        let polynomial: UInt32 = 0x82F6_3B78
        var table = [UInt32](repeating: 0, count: 8 * 256)
        for byte in 0..<256 {
            var crc = UInt32(byte)
            for _ in 0..<8 {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ polynomial : crc >> 1
            }
            table[byte] = crc
        }
        for slice in 1..<8 {
            for byte in 0..<256 {
                let previous = table[(slice - 1) * 256 + byte]
                table[slice * 256 + byte] = (previous >> 8) ^ table[Int(previous & 0xFF)]
            }
        }
        entries = table
    }
}
