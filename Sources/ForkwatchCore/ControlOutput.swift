/// The event lines every subscriber of the control socket is sent, kept once for all of them
/// (Redis's shared replication backlog): 500 subscribers that stop reading cost the master one
/// buffer, not 500 copies. Positions are absolute byte offsets since the master started; each
/// subscriber's `ControlOutput` holds its own position in it.
public struct BroadcastLog: Sendable {
    private var bytes: [UInt8] = []
    /// The position of the first byte still kept.
    public private(set) var start = 0

    public init() {}

    /// The position after the last byte appended.
    public var end: Int { start + bytes.count }
    /// Bytes kept (what the slowest subscriber has not been sent yet, and a little more).
    public var count: Int { bytes.count }

    public mutating func append(_ line: some Collection<UInt8>) { bytes += line }

    /// The bytes from `from` up to `to`; both within `start...end`.
    public func bytes(from: Int, to: Int) -> ArraySlice<UInt8> {
        precondition(from >= start && from <= to && to <= end, "position outside the log")
        return bytes[(from - start)..<(to - start)]
    }

    /// Forgets what lies before `position` (every subscriber is past it). Moves memory only when
    /// a quarter of the buffer or 64 KiB can go, so trimming costs linear time overall.
    public mutating func discard(before position: Int) {
        let drop = min(position, end) - start
        guard drop > 0, drop >= 65_536 || drop * 4 >= bytes.count else { return }
        bytes.removeSubrange(..<drop)
        start += drop
        if bytes.isEmpty { bytes = [] }  // give a drained burst's memory back
    }
}

/// What one control client has been sent and is still owed: its replies (a subscriber's
/// snapshot among them), each placed at the event-log position it was queued at, and, for a
/// subscriber, its position in the shared `BroadcastLog`. Replies and events go out in the
/// order they were made. Pure: the control server writes `next(in:)` and reports `wrote(_:of:)`.
public struct ControlOutput: Sendable {
    /// A subscriber's position in the log (nil: not subscribed).
    public private(set) var cursor: Int?
    private var replies: [(at: Int, bytes: [UInt8])] = []
    /// Bytes of `replies.first` already written.
    private var replyOffset = 0
    /// Bytes of replies not yet written.
    public private(set) var replyBytes = 0
    /// The last byte written was not a newline: the client holds part of a line.
    public private(set) var endsMidLine = false

    public init() {}

    public var isSubscribed: Bool { cursor != nil }

    /// Queues `line` (one or more whole lines) for this client, after the events it is owed so far.
    public mutating func queueReply(_ line: [UInt8], logEnd: Int) {
        guard !line.isEmpty else { return }
        replies.append((at: cursor == nil ? 0 : logEnd, bytes: line))
        replyBytes += line.count
    }

    /// From now on the client is sent every event appended to the log after `logEnd`.
    public mutating func subscribe(logEnd: Int) {
        if cursor == nil { cursor = logEnd }
    }

    /// Bytes owed: replies not written and, for a subscriber, events not written.
    public func pending(logEnd: Int) -> Int { replyBytes - replyOffset + (cursor.map { logEnd - $0 } ?? 0) }

    /// The bytes to write next (a reply, or events up to the next reply), nil when nothing is owed.
    public func next(in log: BroadcastLog) -> ArraySlice<UInt8>? {
        if let first = replies.first, cursor == nil || first.at <= cursor! {
            return first.bytes[replyOffset...]
        }
        guard let cursor, cursor < log.end else { return nil }
        return log.bytes(from: cursor, to: min(log.end, replies.first?.at ?? log.end))
    }

    /// `count` bytes of `next(in:)` were written.
    public mutating func wrote(_ count: Int, of chunk: ArraySlice<UInt8>) {
        guard count > 0 else { return }
        endsMidLine = chunk[chunk.startIndex + count - 1] != UInt8(ascii: "\n")
        if let first = replies.first, cursor == nil || first.at <= cursor! {
            replyOffset += count
            if replyOffset == first.bytes.count {
                replies.removeFirst()
                replyBytes -= replyOffset
                replyOffset = 0
            }
        } else {
            cursor! += count
        }
    }
}
