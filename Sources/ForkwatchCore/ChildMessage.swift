/// What a worker tells its master on its status pipe: one line per message, `KIND` or
/// `KIND PAYLOAD`, each line one `write(2)` under PIPE_BUF so the threads of one worker never
/// interleave theirs. Documented in docs/architecture.md ("The status pipe").
///
/// The C child path writes `execfail ERRNO` itself (`fw_fork_exec`, before `execve` returns);
/// every other line is written through `line`.
public enum ChildMessage: Hashable, Sendable {
    /// `start()` returned: the worker serves.
    case ready
    /// `execve` failed in a command's child with this errno.
    case execFailed(errno: Int32)
    /// A periodic task ran.
    case taskRan(TaskReport)
    /// A heartbeat into the services table, done or failed.
    case heartbeat(ok: Bool, reportCount: Int?, error: String?)
    /// The worker's RPC server's per-method counters.
    case rpcStats(topic: String, methods: [RPCMethodStats])
    /// Something the worker wants in the event stream (its RPC broker lost, found again).
    case notice(String)

    /// One periodic task's run, as the worker measured it.
    public struct TaskReport: Hashable, Sendable {
        public var task: String
        /// Wall clock at its start, seconds since the epoch.
        public var started: Double
        public var duration: Double
        public var ok: Bool
        public var error: String?
        /// The worker's monotonic time of its next run; nil = it runs no more.
        public var nextDue: Double?
        public var spacing: Double

        public init(
            task: String, started: Double, duration: Double, ok: Bool, error: String?, nextDue: Double?,
            spacing: Double
        ) {
            self.task = task
            self.started = started
            self.duration = duration
            self.ok = ok
            self.error = error
            self.nextDue = nextDue
            self.spacing = spacing
        }
    }

    /// Longest text a message carries (an error, a notice): a line stays far under PIPE_BUF (4096).
    public static let maxTextBytes = 500
    /// Longest line the master accepts; past it the line is garbage, not a message.
    public static let maxLineBytes = 4000

    /// The line to write, newline included; never more than `maxLineBytes` + 1.
    public var line: String {
        switch self {
        case .ready:
            return "ready\n"
        case .execFailed(let errno):
            return "execfail \(errno)\n"
        case .taskRan(let report):
            var json = JSONObject()
            json.add("task", Self.bounded(report.task))
            json.add("started", report.started, decimals: 6)
            json.add("duration", report.duration, decimals: 6)
            json.add("ok", report.ok)
            json.addOptional("error", report.error.map(Self.bounded))
            if let next = report.nextDue {
                json.add("next_due", next, decimals: 6)
            } else {
                json.addRaw("next_due", "null")
            }
            json.add("spacing", report.spacing, decimals: 3)
            return "task \(json.string)\n"
        case .heartbeat(let ok, let reportCount, let error):
            var json = JSONObject()
            json.add("ok", ok)
            if let reportCount { json.add("report_count", reportCount) }
            json.addOptional("error", error.map(Self.bounded))
            return "beat \(json.string)\n"
        case .rpcStats(let topic, let methods):
            var json = JSONObject()
            json.add("topic", Self.bounded(topic))
            // A worker has a handful of methods; the cap keeps a line under PIPE_BUF whatever it has.
            json.addRaw("methods", "[" + methods.prefix(16).map(EventCodec.rpcMethodJSON).joined(separator: ",") + "]")
            return "rpc \(json.string)\n"
        case .notice(let text):
            // Plain text after the kind: one line, so line breaks become spaces.
            return "notice \(String(Self.bounded(text).map { $0 == "\n" || $0 == "\r" ? " " : $0 }))\n"
        }
    }

    /// Parses one line (without its newline). The error says what was wrong, for a notice.
    public static func parse(_ line: String) -> Result<ChildMessage, ChildMessageError> {
        guard line.utf8.count <= maxLineBytes else {
            return .failure(ChildMessageError(line: line, problem: "longer than \(maxLineBytes) bytes"))
        }
        // Split at the first space by UTF-8 bytes: walking Characters would pull the grapheme
        // breaking code into the master, whose start-up pages are dropped.
        let bytes = line.utf8
        let space = bytes.firstIndex(of: UInt8(ascii: " "))
        let kind = String(decoding: bytes[..<(space ?? bytes.endIndex)], as: UTF8.self)
        let payload = space.map { String(decoding: bytes[bytes.index(after: $0)...], as: UTF8.self) } ?? ""
        func fail(_ problem: String) -> Result<ChildMessage, ChildMessageError> {
            .failure(ChildMessageError(line: line, problem: problem))
        }
        func object() -> JSONValue? {
            guard let json = try? JSONValue.parse(payload), case .object = json else { return nil }
            return json
        }
        switch kind {
        case "ready":
            return payload.isEmpty ? .success(.ready) : fail("ready takes nothing after it")
        case "execfail":
            guard let errno = Int32(payload), errno > 0 else { return fail("execfail needs an errno") }
            return .success(.execFailed(errno: errno))
        case "task":
            guard let json = object(), let task = json["task"]?.string, let ok = json["ok"]?.bool else {
                return fail("task needs a JSON object with \"task\" and \"ok\"")
            }
            return .success(
                .taskRan(
                    TaskReport(
                        task: task, started: json["started"]?.double ?? 0,
                        duration: json["duration"]?.double ?? 0, ok: ok,
                        error: json["error"]?.string, nextDue: json["next_due"]?.double,
                        spacing: json["spacing"]?.double ?? 0)))
        case "beat":
            guard let json = object(), let ok = json["ok"]?.bool else {
                return fail("beat needs a JSON object with \"ok\"")
            }
            return .success(.heartbeat(ok: ok, reportCount: json["report_count"]?.int, error: json["error"]?.string))
        case "rpc":
            guard let json = object(), let topic = json["topic"]?.string else {
                return fail("rpc needs a JSON object with \"topic\"")
            }
            return .success(.rpcStats(topic: topic, methods: RPCMethodStats.decodeList(json["methods"])))
        case "notice":
            return .success(.notice(bounded(payload)))
        default:
            return fail("unknown kind '\(kind.prefix(40))'")
        }
    }

    /// At most `maxTextBytes` of UTF-8, cut on a character boundary.
    static func bounded(_ text: String) -> String {
        guard text.utf8.count > maxTextBytes else { return text }
        var result = ""
        var bytes = 0
        for character in text {
            bytes += character.utf8.count
            if bytes > maxTextBytes - 3 { break }
            result.append(character)
        }
        return result + "…"
    }
}

/// A status line the master could not read: it becomes a `notice` event naming the worker.
public struct ChildMessageError: Error, Hashable, Sendable, CustomStringConvertible {
    public let line: String
    public let problem: String

    public var description: String { "unreadable status message (\(problem)): \(line.prefix(200))" }
}
