/// A fast 64-bit hash for bloom filters (not cryptographic, not persisted
/// across format versions without a version bump: filters store hashes'
/// effects on disk, so this function is part of the table format).
///
/// Eight bytes at a time, each word mixed with a multiply and rotate, then
/// a murmur3-style finaliser so every input bit affects every output bit.
enum Hash64 {
    static func hash(_ bytes: UnsafeRawBufferPointer, seed: UInt64 = 0x9E37_79B9_7F4A_7C15) -> UInt64 {
        let multiplier: UInt64 = 0xC6A4_A793_5BD1_E995
        var h = seed ^ (UInt64(bytes.count) &* multiplier)
        var index = 0
        while bytes.count - index >= 8 {
            var word = bytes.loadFixed64(at: index) &* multiplier
            word = (word << 31) | (word >> 33)
            h = (h ^ (word &* 0x87C3_7B91_1142_53D5)) &* multiplier
            h = (h << 27) | (h >> 37)
            index += 8
        }
        if index < bytes.count {
            var tail: UInt64 = 0
            var shift: UInt64 = 0
            while index < bytes.count {
                tail |= UInt64(bytes[index]) << shift
                shift += 8
                index += 1
            }
            h = (h ^ (tail &* multiplier)) &* 0x87C3_7B91_1142_53D5
        }
        h ^= h >> 33
        h = h &* 0xFF51_AFD7_ED55_8CCD
        h ^= h >> 33
        h = h &* 0xC4CE_B9FE_1A85_EC53
        h ^= h >> 33
        return h
    }
}
