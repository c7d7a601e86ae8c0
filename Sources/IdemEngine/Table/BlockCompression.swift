import CLZ4
import CZstd

/// How a block's bytes are stored. The raw value is part of the table
/// format (docs/FORMAT.md).
public enum CompressionKind: UInt8, Sendable, CaseIterable {
    case none = 0
    case lz4 = 1
    case zstd = 2
}

/// Compresses and decompresses table blocks. A compressed block is stored
/// as `varint uncompressed length ‖ compressed bytes`; a block that does not
/// shrink by at least 1/8 is stored raw instead (decoding it costs less).
enum BlockCompression {
    /// Refuse to inflate anything claiming to be larger than this: a corrupt
    /// length must not become a huge allocation.
    static let maxUncompressedSize = 1 << 30

    /// Returns the stored bytes and the kind actually used.
    static func compress(_ raw: [UInt8], kind: CompressionKind, zstdLevel: Int32) -> ([UInt8], CompressionKind) {
        guard kind != .none, !raw.isEmpty else { return (raw, .none) }
        var stored: [UInt8] = []
        stored.appendVarint(UInt64(raw.count))
        let headerSize = stored.count
        let bound: Int
        switch kind {
        case .lz4: bound = Int(LZ4_compressBound(Int32(raw.count)))
        case .zstd: bound = ZSTD_compressBound(raw.count)
        case .none: bound = 0
        }
        stored.append(contentsOf: repeatElement(0, count: bound))
        let written: Int = raw.withUnsafeBytes { source in
            stored.withUnsafeMutableBytes { target in
                let destination = target.baseAddress! + headerSize
                switch kind {
                case .lz4:
                    return Int(LZ4_compress_default(source.baseAddress!.assumingMemoryBound(to: CChar.self),
                                                    destination.assumingMemoryBound(to: CChar.self),
                                                    Int32(raw.count), Int32(bound)))
                case .zstd:
                    let result = ZSTD_compress(destination, bound, source.baseAddress!, raw.count, zstdLevel)
                    return ZSTD_isError(result) != 0 ? 0 : result
                case .none:
                    return 0
                }
            }
        }
        guard written > 0, headerSize + written < raw.count - raw.count / 8 else { return (raw, .none) }
        stored.removeLast(bound - written)
        return (stored, kind)
    }

    struct Failure: Error {
        var detail: String
    }

    static func decompress(_ stored: UnsafeRawBufferPointer, kind: CompressionKind) throws(Failure) -> [UInt8] {
        if kind == .none { return Array(stored) }
        let (size, source) = try compressedPayload(stored)
        var failure: Failure?
        let raw = [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            do throws(Failure) {
                try decompress(source, kind: kind, into: UnsafeMutableRawBufferPointer(buffer))
                initialized = size
            } catch {
                failure = error
                initialized = 0
            }
        }
        if let failure { throw failure }
        return raw
    }

    /// A compressed block's uncompressed size and its compressed bytes.
    static func compressedPayload(_ stored: UnsafeRawBufferPointer) throws(Failure) -> (size: Int, source: UnsafeRawBufferPointer) {
        var cursor = ByteCursor(stored)
        guard let length = cursor.readVarint(), length <= UInt64(maxUncompressedSize) else {
            throw Failure(detail: "bad uncompressed length")
        }
        return (Int(length), UnsafeRawBufferPointer(rebasing: stored[cursor.offset...]))
    }

    /// Decompresses `source` (a `compressedPayload`) into exactly `target`.
    static func decompress(_ source: UnsafeRawBufferPointer, kind: CompressionKind,
                           into target: UnsafeMutableRawBufferPointer) throws(Failure) {
        let size = target.count
        let ok: Bool
        switch kind {
        case .lz4:
            let result = LZ4_decompress_safe(source.baseAddress?.assumingMemoryBound(to: CChar.self),
                                             target.baseAddress?.assumingMemoryBound(to: CChar.self),
                                             Int32(source.count), Int32(size))
            ok = Int(result) == size
        case .zstd:
            let result = ZSTD_decompress(target.baseAddress, size, source.baseAddress, source.count)
            ok = ZSTD_isError(result) == 0 && result == size
        case .none:
            ok = false
        }
        guard ok else { throw Failure(detail: "\(kind) decompression failed") }
    }
}
