/// One atomic change to the set of live tables, as recorded in the manifest
/// (docs/FORMAT.md, "Manifest"). Applied in order, edits rebuild the
/// current version.
///
///     edit:  field*            field: tag varint ‖ body
///     tag 1  log number        varint: WAL segments below it are obsolete
///     tag 2  next file number  varint
///     tag 3  last sequence     varint
///     tag 4  add file          see `encodeFile`
///     tag 5  delete file       varint file number
///     tag 6  partition width   varint milliseconds (informational)
struct VersionEdit: Sendable, Equatable {
    var logNumber: UInt64?
    var nextFileNumber: UInt64?
    var lastSequence: UInt64?
    var partitionWidth: Int64?
    var addedFiles: [FileMetadata] = []
    var deletedFiles: [UInt64] = []

    private enum Tag: UInt64 {
        case logNumber = 1, nextFileNumber, lastSequence, addFile, deleteFile, partitionWidth
    }

    func encode(into bytes: inout [UInt8]) {
        func field(_ tag: Tag, _ value: UInt64) {
            bytes.appendVarint(tag.rawValue)
            bytes.appendVarint(value)
        }
        if let logNumber { field(.logNumber, logNumber) }
        if let nextFileNumber { field(.nextFileNumber, nextFileNumber) }
        if let lastSequence { field(.lastSequence, lastSequence) }
        if let partitionWidth { field(.partitionWidth, UInt64(partitionWidth)) }
        for number in deletedFiles { field(.deleteFile, number) }
        for file in addedFiles {
            bytes.appendVarint(Tag.addFile.rawValue)
            Self.encodeFile(file, into: &bytes)
        }
    }

    ///     number ‖ partition end (u64 bits) ‖ tier ‖ size ‖ entries ‖ tombstones ‖
    ///     min sequence ‖ max sequence ‖ min expiry ‖ max expiry ‖ created at
    ///     (all varints) ‖ smallest key (varint length ‖ bytes) ‖ largest key (same)
    private static func encodeFile(_ file: FileMetadata, into bytes: inout [UInt8]) {
        for value in [file.number, UInt64(bitPattern: file.partitionEnd), UInt64(file.tier.rawValue), file.size,
                      file.entries, file.tombstones, file.minSequence, file.maxSequence,
                      UInt64(bitPattern: file.minExpiry), UInt64(bitPattern: file.maxExpiry),
                      UInt64(bitPattern: file.createdAt)] {
            bytes.appendVarint(value)
        }
        for key in [file.smallestKey, file.largestKey] {
            bytes.appendVarint(UInt64(key.count))
            bytes.append(contentsOf: key)
        }
    }

    struct DecodingError: Error {
        var detail: String
    }

    static func decode(_ raw: UnsafeRawBufferPointer) throws(DecodingError) -> VersionEdit {
        var cursor = ByteCursor(raw)
        var edit = VersionEdit()
        while !cursor.isAtEnd {
            guard let rawTag = cursor.readVarint(), let tag = Tag(rawValue: rawTag) else {
                throw DecodingError(detail: "unknown field tag")
            }
            if tag == .addFile {
                edit.addedFiles.append(try decodeFile(&cursor))
                continue
            }
            guard let value = cursor.readVarint() else { throw DecodingError(detail: "truncated field") }
            switch tag {
            case .logNumber: edit.logNumber = value
            case .nextFileNumber: edit.nextFileNumber = value
            case .lastSequence: edit.lastSequence = value
            case .deleteFile: edit.deletedFiles.append(value)
            case .partitionWidth:
                guard value > 0, value <= UInt64(Int64.max) else { throw DecodingError(detail: "bad partition width") }
                edit.partitionWidth = Int64(value)
            case .addFile: break
            }
        }
        return edit
    }

    private static func decodeFile(_ cursor: inout ByteCursor) throws(DecodingError) -> FileMetadata {
        var numbers: [UInt64] = []
        for _ in 0..<11 {
            guard let value = cursor.readVarint() else { throw DecodingError(detail: "truncated file record") }
            numbers.append(value)
        }
        var keys: [[UInt8]] = []
        for _ in 0..<2 {
            guard let length = cursor.readVarint(), let key = cursor.readSlice(Int(clamping: length)) else {
                throw DecodingError(detail: "truncated key range")
            }
            keys.append(Array(key))
        }
        guard numbers[2] <= 255, let tier = Tier(rawValue: UInt8(numbers[2])) else { throw DecodingError(detail: "bad tier") }
        return FileMetadata(number: numbers[0], partitionEnd: Int64(bitPattern: numbers[1]), tier: tier, size: numbers[3],
                            entries: numbers[4], tombstones: numbers[5], smallestKey: keys[0], largestKey: keys[1],
                            minSequence: numbers[6], maxSequence: numbers[7], minExpiry: Int64(bitPattern: numbers[8]),
                            maxExpiry: Int64(bitPattern: numbers[9]), createdAt: Int64(bitPattern: numbers[10]))
    }
}
