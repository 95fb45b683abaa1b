/// An events file read as a stream (`forkwatch replay`): bytes in, in any chunks, then numbered
/// events — or numbered problems — out, one line at a time. It holds one chunk and one line at
/// most, so a file of any size is read in bounded memory; a line longer than `maxLineBytes` is
/// skipped as it arrives, never buffered whole. No I/O here: the caller reads the file.
public struct EventFileReader: Sendable {
    /// One line of the file that did not give an event.
    public struct Problem: Error, Equatable, Sendable, CustomStringConvertible {
        /// 1-based, counting every line of the file (blank ones too).
        public let line: Int
        public let message: String
        public var description: String { "line \(line): \(message)" }
    }

    public enum Item: Sendable {
        case event(Event, line: Int)
        case problem(Problem)
    }

    /// Events are a few hundred bytes; the largest (`master_started` with many services, a
    /// `stats` line of 1000 workers) stay far below this.
    public static let defaultMaxLineBytes = 1 << 20

    public let maxLineBytes: Int
    private var framer: LineFramer
    /// Lines handed out so far (the next one is `linesRead + 1`).
    public private(set) var linesRead = 0
    /// Inside a line already over the limit: its bytes are dropped up to its newline.
    private var skippingLongLine = false
    private var finished = false

    public init(maxLineBytes: Int = EventFileReader.defaultMaxLineBytes) {
        self.maxLineBytes = maxLineBytes
        framer = LineFramer(maxLineBytes: maxLineBytes)
    }

    /// Feeds the next bytes of the file. Call `next()` until it returns nil before feeding more.
    public mutating func append(_ bytes: [UInt8]) {
        guard skippingLongLine else {
            framer.append(bytes)
            return
        }
        guard let newline = bytes.firstIndex(of: UInt8(ascii: "\n")) else { return }
        skippingLongLine = false
        framer.append(Array(bytes[(newline + 1)...]))
    }

    /// The end of the file: a last line without a newline (a write cut short) is read too.
    public mutating func finish() {
        guard !finished else { return }
        finished = true
        if skippingLongLine {
            skippingLongLine = false
        } else if framer.pendingBytes > 0 {
            framer.append([UInt8(ascii: "\n")])
        }
    }

    /// The next event or problem from the bytes fed so far; nil when more bytes are needed
    /// (or, after `finish()`, at the end). Blank lines are passed over.
    public mutating func next() -> Item? {
        while true {
            guard let framed = framer.next() else {
                if framer.isOverLimit {
                    // The line under way is already too long: drop what is held, then the rest of
                    // it as it comes (`append`), and report it once, now.
                    framer.reset()
                    linesRead += 1
                    if !finished { skippingLongLine = true }
                    return .problem(Problem(line: linesRead, message: "longer than \(maxLineBytes) bytes, skipped"))
                }
                return nil
            }
            linesRead += 1
            switch framed {
            case .failure(let tooLong):
                return .problem(
                    Problem(line: linesRead, message: "longer than \(maxLineBytes) bytes (\(tooLong.length)), skipped"))
            case .success(let line):
                if line.utf8.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0d }) { continue }
                do {
                    return .event(try EventCodec.decode(line), line: linesRead)
                } catch {
                    return .problem(Problem(line: linesRead, message: error.message))
                }
            }
        }
    }
}
