/// Bytes in, complete lines out: the framing of every line protocol here (a worker's status
/// pipe, the control socket on both sides). Each byte is looked at once however the lines
/// arrive, so a client writing thousands of lines in one read costs linear time, not quadratic.
public struct LineFramer: Sendable {
    /// A line (or the unterminated rest) longer than this is refused; nil = no limit.
    public let maxLineBytes: Int?
    private var buffer: [UInt8] = []
    /// Where the next line starts (bytes before it were handed out already).
    private var start = 0
    /// Inside a refused line: bytes are dropped until its newline.
    private var skipping = false
    /// Where the search for the next newline resumes (bytes before it hold none after `start`).
    private var scanned = 0

    public init(maxLineBytes: Int? = nil) {
        self.maxLineBytes = maxLineBytes
    }

    /// A line the framer would not hand out: its length in bytes (the newline not counted).
    public struct LineTooLong: Error, Hashable, Sendable {
        public let length: Int
    }

    public mutating func append(_ bytes: [UInt8]) {
        if start > 0 && (start >= 65_536 || start * 2 >= buffer.count) {
            buffer.removeSubrange(..<start)
            scanned -= start
            start = 0
        }
        buffer += bytes
    }

    /// The next complete line without its newline, nil when none is complete. A complete line
    /// over the limit is dropped and reported as `LineTooLong`; the lines after it still come.
    public mutating func next() -> Result<String, LineTooLong>? {
        if skipping {
            // The rest of a line already refused: dropped up to its newline.
            guard let newline = buffer[scanned...].firstIndex(of: UInt8(ascii: "\n")) else {
                start = buffer.count
                scanned = start
                return nil
            }
            start = newline + 1
            scanned = start
            skipping = false
        }
        guard let newline = buffer[scanned...].firstIndex(of: UInt8(ascii: "\n")) else {
            scanned = buffer.count
            return nil
        }
        let line = buffer[start..<newline]
        start = newline + 1
        scanned = start
        if let maxLineBytes, line.count > maxLineBytes { return .failure(LineTooLong(length: line.count)) }
        return .success(String(decoding: line, as: UTF8.self))
    }

    /// Bytes received that are not yet a complete line.
    public var pendingBytes: Int { buffer.count - start }

    /// The unterminated rest is already over the limit: no line it becomes can be taken.
    public var isOverLimit: Bool { maxLineBytes.map { pendingBytes > $0 } ?? false }

    /// Drops the unterminated line in hand (over the limit: `isOverLimit`) and what follows of it
    /// up to its newline; the lines after it still come.
    public mutating func skipRestOfLine() {
        start = buffer.count
        scanned = start
        skipping = true
    }

    /// Forgets everything received.
    public mutating func reset() {
        skipping = false
        buffer.removeAll()
        start = 0
        scanned = 0
    }
}
