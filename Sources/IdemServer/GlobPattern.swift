/// Redis's glob patterns (`SCAN ... MATCH`, `CONFIG GET`): `*` any run,
/// `?` any byte, `[abc]`, `[^abc]`, `[a-z]`, and `\` to quote the next byte.
///
/// Matched without recursion — on a mismatch, resume after the last `*` —
/// so time is O(pattern × text) whatever the pattern: a hostile pattern
/// cannot stall the server.
struct GlobPattern: Sendable {
    private let pattern: [UInt8]

    init(_ pattern: [UInt8]) {
        self.pattern = pattern
    }

    /// Whether the pattern is `*` (matches everything; skip the work).
    var matchesEverything: Bool { pattern == [UInt8(ascii: "*")] }

    func matches(_ text: some Collection<UInt8>) -> Bool {
        let text = Array(text)
        var p = 0, t = 0
        var starPattern = -1, starText = 0
        while t < text.count {
            if p < pattern.count {
                switch pattern[p] {
                case UInt8(ascii: "*"):
                    while p < pattern.count && pattern[p] == UInt8(ascii: "*") { p += 1 }
                    if p == pattern.count { return true }
                    starPattern = p
                    starText = t
                    continue
                case UInt8(ascii: "?"):
                    p += 1
                    t += 1
                    continue
                case UInt8(ascii: "["):
                    if let (matched, next) = matchClass(at: p, byte: text[t]), matched {
                        p = next
                        t += 1
                        continue
                    }
                case UInt8(ascii: "\\") where p + 1 < pattern.count:
                    if pattern[p + 1] == text[t] {
                        p += 2
                        t += 1
                        continue
                    }
                default:
                    if pattern[p] == text[t] {
                        p += 1
                        t += 1
                        continue
                    }
                }
            }
            // Mismatch: let the last star swallow one more byte, or fail.
            guard starPattern >= 0 else { return false }
            starText += 1
            t = starText
            p = starPattern
        }
        while p < pattern.count && pattern[p] == UInt8(ascii: "*") { p += 1 }
        return p == pattern.count
    }

    /// Matches `byte` against the class starting at `pattern[start] == "["`;
    /// returns whether it matched and the index after the class. An
    /// unterminated class runs to the end of the pattern (as in Redis).
    private func matchClass(at start: Int, byte: UInt8) -> (Bool, Int)? {
        var index = start + 1
        let negate = index < pattern.count && pattern[index] == UInt8(ascii: "^")
        if negate { index += 1 }
        var matched = false
        while index < pattern.count && pattern[index] != UInt8(ascii: "]") {
            if pattern[index] == UInt8(ascii: "\\") && index + 1 < pattern.count {
                index += 1
                if pattern[index] == byte { matched = true }
            } else if index + 2 < pattern.count && pattern[index + 1] == UInt8(ascii: "-") && pattern[index + 2] != UInt8(ascii: "]") {
                let low = min(pattern[index], pattern[index + 2]), high = max(pattern[index], pattern[index + 2])
                if byte >= low && byte <= high { matched = true }
                index += 2
            } else if pattern[index] == byte {
                matched = true
            }
            index += 1
        }
        return (matched != negate, min(index + 1, pattern.count))
    }
}
