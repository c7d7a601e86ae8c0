/// Serializes replies. Pure: appends bytes to an array, knows nothing of
/// sockets or channels.
public enum RESPEncoder {
    public static func encode(_ value: RESPValue, version: RESPVersion, into bytes: inout [UInt8]) {
        switch value {
        case .simpleString(let text):
            line(UInt8(ascii: "+"), sanitized(text), into: &bytes)
        case .error(let text):
            line(UInt8(ascii: "-"), sanitized(text), into: &bytes)
        case .integer(let number):
            line(UInt8(ascii: ":"), String(number), into: &bytes)
        case .bulkString(nil), .null:
            bytes.append(contentsOf: (version == .resp2 ? "$-1\r\n" : "_\r\n").utf8)
        case .bulkString(let payload?):
            line(UInt8(ascii: "$"), String(payload.count), into: &bytes)
            bytes.append(contentsOf: payload)
            bytes.append(contentsOf: [0x0D, 0x0A])
        case .array(nil):
            bytes.append(contentsOf: (version == .resp2 ? "*-1\r\n" : "_\r\n").utf8)
        case .array(let elements?):
            aggregate(UInt8(ascii: "*"), elements, version: version, into: &bytes)
        case .boolean(let flag):
            if version == .resp3 {
                bytes.append(contentsOf: (flag ? "#t\r\n" : "#f\r\n").utf8)
            } else {
                line(UInt8(ascii: ":"), flag ? "1" : "0", into: &bytes)
            }
        case .double(let number):
            let text = format(number)
            if version == .resp3 {
                line(UInt8(ascii: ","), text, into: &bytes)
            } else {
                encode(.bulk(text), version: version, into: &bytes)
            }
        case .map(let pairs):
            if version == .resp3 {
                line(UInt8(ascii: "%"), String(pairs.count), into: &bytes)
                for (key, value) in pairs {
                    encode(key, version: version, into: &bytes)
                    encode(value, version: version, into: &bytes)
                }
            } else {
                aggregate(UInt8(ascii: "*"), pairs.flatMap { [$0.0, $0.1] }, version: version, into: &bytes)
            }
        case .set(let elements):
            aggregate(version == .resp3 ? UInt8(ascii: "~") : UInt8(ascii: "*"), elements, version: version, into: &bytes)
        }
    }

    public static func encode(_ value: RESPValue, version: RESPVersion) -> [UInt8] {
        var bytes: [UInt8] = []
        encode(value, version: version, into: &bytes)
        return bytes
    }

    private static func aggregate(_ type: UInt8, _ elements: [RESPValue], version: RESPVersion, into bytes: inout [UInt8]) {
        line(type, String(elements.count), into: &bytes)
        for element in elements { encode(element, version: version, into: &bytes) }
    }

    private static func line(_ type: UInt8, _ text: String, into bytes: inout [UInt8]) {
        bytes.append(type)
        bytes.append(contentsOf: text.utf8)
        bytes.append(contentsOf: [0x0D, 0x0A])
    }

    /// Simple strings and errors cannot hold CR or LF: replace them, as
    /// Redis does, so a message can never break the framing.
    private static func sanitized(_ text: String) -> String {
        guard text.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A }) else { return text }
        return String(decoding: text.utf8.map { $0 == 0x0D || $0 == 0x0A ? UInt8(ascii: " ") : $0 }, as: UTF8.self)
    }

    private static func format(_ number: Double) -> String {
        if number.isNaN { return "nan" }
        if number.isInfinite { return number < 0 ? "-inf" : "inf" }
        if number == number.rounded(), abs(number) < 1e17 { return String(Int64(number)) }
        return String(number)
    }
}
