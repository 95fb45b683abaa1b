/// Reading events back (the dashboard, `forkwatch replay`, `forkwatch events`): the inverse of
/// `EventCodec.encode`. Unknown types decode as a notice, so an older reader survives a newer master.
///
/// Every number is checked against the range its field can hold before it becomes a value: a
/// recorded file is input like any other, and a number the master never writes (a pid of -1, a
/// `mono` of 1e19, a signal of 2^40) is an error naming the field, never a trap further down
/// (`Int32(_:)` of an out-of-range Int, `Int(_:)` of a huge Double in a formatter).
extension EventCodec {
    public struct DecodeError: Error, CustomStringConvertible, Equatable {
        public let message: String
        public var description: String { message }
    }

    /// Times and durations are seconds within ±10^12 (31,700 years): anything a clock or a
    /// timeout gives, and small enough that seconds × 1000 fits any integer the dashboard makes.
    public static let secondsLimit = 1e12
    /// Counts (workers, forks, runs, report_count…) fit an Int32, so sums of them never overflow.
    public static let countRange = 0...Int(Int32.max)
    public static let pidRange = 1...Int(Int32.max)
    /// Linux signals 1–64 (SIGRTMAX).
    public static let signalRange = 1...64
    public static let exitCodeRange = 0...255
    public static let errnoRange = 0...4095
    /// Resident memory in bytes: up to 1 PiB.
    public static let byteRange = 0...(1 << 50)

    public static func decode(_ line: String) throws(DecodeError) -> Event {
        let json: JSONValue
        do { json = try JSONValue.parse(line) } catch { throw DecodeError(message: error.description) }
        return try decode(json)
    }

    public static func decode(_ json: JSONValue) throws(DecodeError) -> Event {
        guard let type = json["type"]?.string else { throw DecodeError(message: "not an event: no 'type'") }
        guard let version = json["v"]?.int, version <= EventCodec.version else {
            throw DecodeError(
                message:
                    "event version \(json["v"]?.int.map(String.init) ?? "?") is newer than this reader (\(EventCodec.version))"
            )
        }
        let fields = Fields(json)
        let wall = try fields.seconds("wall")
        let mono = try fields.seconds("mono")
        func str(_ key: String) throws(DecodeError) -> String { try need(json[key]?.string, key) }
        func int(_ key: String) throws(DecodeError) -> Int { try fields.int(key, in: countRange) }
        func pid(_ key: String = "pid") throws(DecodeError) -> Int32 { try fields.pid(key) }
        func num(_ key: String) throws(DecodeError) -> Double { try fields.seconds(key) }
        func signal(_ key: String = "signo") throws(DecodeError) -> Signal {
            Signal(rawValue: Int32(try fields.int(key, in: signalRange)))
        }
        func errno(_ key: String = "errno") throws(DecodeError) -> Int32 { Int32(try fields.int(key, in: errnoRange)) }

        let kind: Event.Kind
        switch type {
        case "master_started":
            let services = try need(json["services"]?.array, "services").map {
                (item: JSONValue) throws(DecodeError) -> ServiceSpec in
                let program: Program =
                    if let argv = item["command"]?.array {
                        .command(argv.compactMap(\.string))
                    } else {
                        .builtin(item["builtin"]?.string ?? "?")
                    }
                return ServiceSpec(
                    name: try need(item["name"]?.string, "name"), program: program,
                    workers: try Fields(item).int("workers", in: countRange, default: 0))
            }
            kind = .masterStarted(pid: try pid(), services: services, config: json["config"]?.string ?? "")
        case "fork":
            kind = .fork(
                pid: try pid(), service: try str("service"),
                reason: ForkReason(rawValue: try str("reason")) ?? .respawn,
                generation: try fields.int("generation", in: countRange, default: 1))
        case "fork_failed":
            kind = .forkFailed(service: try str("service"), errno: try errno(), message: try str("message"))
        case "fork_refused":
            kind = .forkRefused(
                service: try str("service"), threads: try fields.int("threads", in: -1...Int(Int32.max)))
        case "ready":
            kind = .ready(pid: try pid(), service: try str("service"), after: try num("after"))
        case "exec_failed":
            kind = .execFailed(
                pid: try pid(), service: try str("service"), errno: try errno(), message: try str("message"))
        case "exit":
            let status: TerminationStatus =
                try str("how") == "signaled"
                ? .signaled(try signal(), coreDumped: json["core_dumped"]?.bool ?? false)
                : .exited(code: Int32(try fields.int("code", in: exitCodeRange)))
            kind = .exit(
                pid: try pid(), service: json["service"]?.string, status: status,
                rawStatus: Int32(try fields.int("status", in: 0...0xFFFF, default: 0)),
                uptime: try fields.optionalSeconds("uptime"),
                expected: json["expected"]?.bool ?? false)
        case "signal_received":
            kind = .signalReceived(
                signal: try signal(), senderPid: Int32(try fields.int("sender_pid", in: 0...Int(Int32.max), default: 0))
            )
        case "signal_sent":
            kind = .signalSent(
                pid: try pid(), service: json["service"]?.string, signal: try signal(),
                reason: json["reason"]?.string ?? "", origin: json["origin"]?.string ?? "master",
                error: json["error"]?.string)
        case "throttle":
            kind = .throttle(
                service: try str("service"), forks: try int("forks"), span: try num("span"),
                window: try num("window"), delay: try num("delay"))
        case "service_state":
            kind = .serviceState(
                service: try str("service"), state: ServiceState(rawValue: try str("state")) ?? .running,
                reason: json["reason"]?.string ?? "")
        case "scale":
            kind = .scale(
                service: try str("service"), from: try int("from"), to: try int("to"),
                reason: json["reason"]?.string ?? "")
        case "reload":
            kind = .reload(
                method: RestartMethod(name: try str("method")) ?? .rolling, changes: json["changes"]?.string ?? "")
        case "rolling_step":
            kind = .rollingStep(
                service: try str("service"), newPid: try pid("new_pid"), oldPid: try pid("old_pid"),
                remaining: try int("remaining"))
        case "rolling_done":
            kind = .rollingDone(service: try str("service"))
        case "stopping":
            kind = .stopping(
                mode: StopMode(rawValue: try str("mode")) ?? .graceful, timeout: try fields.optionalSeconds("timeout"),
                workers: try int("workers"))
        case "escalate":
            kind = .escalate(reason: try str("reason"), survivors: try int("survivors"))
        case "stopped":
            kind = .stopped(exitCode: Int32(try fields.int("exit_code", in: exitCodeRange)))
        case "config_error":
            kind = .configError(message: try str("message"))
        case "log_reopened":
            kind = .logReopened(path: try str("path"), error: json["error"]?.string)
        case "service_removed":
            kind = .serviceRemoved(service: try str("service"))
        case "subscriber_dropped":
            kind = .subscriberDropped(pid: try pid(), queued: try int("queued"), limit: try int("limit"))
        case "task_run":
            kind = .taskRun(
                pid: try pid(), service: try str("service"), task: try str("task"),
                started: try num("started"), duration: try num("duration"), ok: json["ok"]?.bool ?? true,
                error: json["error"]?.string, nextDue: try fields.optionalSeconds("next_due"),
                timings: try decodeTimings(json["timings"]))
        case "listening":
            kind = .listening(
                service: try str("service"), address: try str("address"),
                backlog: try fields.int("backlog", in: countRange, default: 0))
        case "accept_queue":
            kind = .acceptQueue(
                service: try str("service"), address: try str("address"), depth: try int("depth"),
                limit: try fields.int("limit", in: countRange, default: 0))
        case "heartbeat":
            kind = .heartbeat(
                pid: try pid(), service: try str("service"), ok: json["ok"]?.bool ?? false,
                reportCount: try fields.optionalInt("report_count", in: countRange), error: json["error"]?.string)
        case "rpc_stats":
            kind = .rpcStats(
                pid: try pid(), service: try str("service"), topic: json["topic"]?.string ?? "",
                methods: try RPCMethodStats.decodeCheckedList(json["methods"]))
        case "stats":
            kind = .stats(
                samples: try need(json["samples"]?.array, "samples").map {
                    (item: JSONValue) throws(DecodeError) -> ProcessSample in
                    let sample = Fields(item, in: "samples")
                    return ProcessSample(
                        pid: try sample.pid("pid"), cpuPercent: try sample.double("cpu", limit: 1e6, default: 0),
                        rssBytes: try sample.int("rss", in: byteRange, default: 0), state: item["state"]?.string ?? "?",
                        threads: try sample.int("threads", in: countRange, default: 0))
                })
        case "snapshot":
            kind = .snapshot(try decodeSnapshot(json))
        case "notice":
            kind = .notice(message: try str("message"))
        default:
            kind = .notice(message: "event of unknown type '\(type)'")
        }
        return Event(mono: mono, wall: wall, kind: kind)
    }

    static func decodeTimings(_ json: JSONValue?) throws(DecodeError) -> TaskTimings {
        var timings = TaskTimings()
        guard let json, !json.isNull else { return timings }
        let fields = Fields(json, in: "timings")
        timings.runs = try fields.int("runs", in: countRange, default: 0)
        timings.failures = try fields.int("failures", in: countRange, default: 0)
        timings.last = try fields.seconds("last", default: 0)
        timings.max = try fields.seconds("max", default: 0)
        timings.total = try fields.seconds("mean", default: 0) * Double(timings.runs)
        // The window is not shipped; the p95 is kept as one sample so it reads back the same.
        if let p95 = try fields.optionalSeconds("p95"), timings.runs > 0 { timings.recent = [p95] }
        timings.spacing = try fields.seconds("spacing", default: 0)
        timings.nextDue = try fields.optionalSeconds("next_due")
        timings.lastError = json["last_error"]?.string
        return timings
    }

    /// The numeric fields of one JSON object, each read within its range: absent (or null) is
    /// the default given, present but out of range or of another type is an error naming it.
    struct Fields {
        let json: JSONValue
        /// Where the object sits (`samples`, `timings`), for the error.
        let path: String?

        init(_ json: JSONValue, in path: String? = nil) {
            self.json = json
            self.path = path
        }

        private func name(_ key: String) -> String { path.map { "\($0).\(key)" } ?? key }

        private func present(_ key: String) -> JSONValue? {
            guard let value = json[key], !value.isNull else { return nil }
            return value
        }

        private func problem(_ key: String, _ value: JSONValue, _ expected: String) -> DecodeError {
            DecodeError(message: "event field '\(name(key))' is \(Self.shown(value)): expected \(expected)")
        }

        static func shown(_ value: JSONValue) -> String {
            switch value {
            case .number(let n):
                if let whole = Int64(exactly: n) { return "\(whole)" }
                return "\(n)"  // 1e+19, 0.5
            case .string(let s): return "the string \"\(s.prefix(40))\""
            case .bool(let b): return "\(b)"
            case .null: return "null"
            case .array: return "an array"
            case .object: return "an object"
            }
        }

        private static func range(_ range: ClosedRange<Int>) -> String {
            "an integer from \(range.lowerBound) to \(range.upperBound)"
        }

        func optionalInt(_ key: String, in range: ClosedRange<Int>) throws(DecodeError) -> Int? {
            guard let value = present(key) else { return nil }
            // `int` is nil for a fraction and for anything beyond ±9e15: both are out of every range here.
            guard let n = value.int, range.contains(n) else { throw problem(key, value, Self.range(range)) }
            return n
        }

        func int(_ key: String, in range: ClosedRange<Int>) throws(DecodeError) -> Int {
            guard let n = try optionalInt(key, in: range) else {
                throw DecodeError(message: "event field '\(name(key))' missing")
            }
            return n
        }

        func int(_ key: String, in range: ClosedRange<Int>, default fallback: Int) throws(DecodeError) -> Int {
            try optionalInt(key, in: range) ?? fallback
        }

        func pid(_ key: String) throws(DecodeError) -> Int32 { Int32(try int(key, in: pidRange)) }

        func optionalDouble(_ key: String, limit: Double) throws(DecodeError) -> Double? {
            guard let value = present(key) else { return nil }
            // The parser refuses NaN and infinities; this keeps the finite ones a formatter can hold.
            guard let n = value.double, n.isFinite, abs(n) <= limit else {
                throw problem(key, value, "a number within ±\(Int(limit))")
            }
            return n
        }

        func double(_ key: String, limit: Double, default fallback: Double) throws(DecodeError) -> Double {
            try optionalDouble(key, limit: limit) ?? fallback
        }

        func optionalSeconds(_ key: String) throws(DecodeError) -> Double? {
            guard let value = present(key) else { return nil }
            guard let n = value.double, n.isFinite, abs(n) <= secondsLimit else {
                throw problem(key, value, "seconds within ±10^12")
            }
            return n
        }

        func seconds(_ key: String) throws(DecodeError) -> Double {
            guard let n = try optionalSeconds(key) else {
                throw DecodeError(message: "event field '\(name(key))' missing")
            }
            return n
        }

        func seconds(_ key: String, default fallback: Double) throws(DecodeError) -> Double {
            try optionalSeconds(key) ?? fallback
        }
    }

    private static func need<T>(_ value: T?, _ key: String) throws(DecodeError) -> T {
        guard let value else { throw DecodeError(message: "event field '\(key)' missing or of the wrong type") }
        return value
    }

    private static func decodeSnapshot(_ json: JSONValue) throws(DecodeError) -> Snapshot {
        let fields = Fields(json)
        let services = try need(json["services"]?.array, "services").map {
            (item: JSONValue) throws(DecodeError) -> Snapshot.ServiceInfo in
            let service = Fields(item, in: "services")
            var forkTimes: [Double] = []
            for time in item["fork_times"]?.array ?? [] {
                guard let t = time.double, abs(t) <= secondsLimit else {
                    throw DecodeError(
                        message:
                            "event field 'services.fork_times' holds \(Fields.shown(time)): expected seconds within ±10^12"
                    )
                }
                forkTimes.append(t)
            }
            return Snapshot.ServiceInfo(
                name: try need(item["name"]?.string, "name"), program: item["program"]?.string ?? "",
                workers: try service.int("workers", in: countRange, default: 0),
                state: ServiceState(rawValue: item["state"]?.string ?? "") ?? .running,
                restarts: try service.int("restarts", in: countRange, default: 0),
                generation: try service.int("generation", in: countRange, default: 1),
                forkTimes: forkTimes, pendingForkAt: try service.optionalSeconds("pending_fork_at"),
                throttleInterval: try service.seconds("throttle_interval", default: 1),
                quickDeaths: try service.int("quick_deaths", in: countRange, default: 0))
        }
        let workers = try need(json["workers"]?.array, "workers").map {
            (item: JSONValue) throws(DecodeError) -> Snapshot.WorkerInfo in
            let worker = Fields(item, in: "workers")
            return Snapshot.WorkerInfo(
                pid: try worker.pid("pid"), service: item["service"]?.string ?? "?",
                generation: try worker.int("generation", in: countRange, default: 1),
                forkedAt: try worker.seconds("forked_at", default: 0), readyAt: try worker.optionalSeconds("ready_at"),
                restarts: try worker.int("restarts", in: countRange, default: 0),
                retiring: item["retiring"]?.bool ?? false)
        }
        let tasks = try (json["tasks"]?.array ?? []).map { (item: JSONValue) throws(DecodeError) -> Snapshot.TaskInfo in
            Snapshot.TaskInfo(
                service: item["service"]?.string ?? "?", task: item["task"]?.string ?? "?",
                timings: try decodeTimings(item["timings"]))
        }
        return Snapshot(
            masterPid: try fields.pid("pid"), startedAt: try fields.seconds("started_at", default: 0),
            phase: json["phase"]?.string ?? "running", configuration: json["config"]?.string ?? "",
            services: services, workers: workers, tasks: tasks)
    }
}

extension RPCMethodStats {
    /// The `methods` array of `rpc_stats` (or of a worker's `rpc` status line); malformed items are skipped.
    public static func decodeList(_ value: JSONValue?) -> [RPCMethodStats] {
        (value?.array ?? []).compactMap { item in
            guard let method = item["method"]?.string else { return nil }
            return RPCMethodStats(
                method: method, handled: item["handled"]?.int ?? 0, failures: item["failures"]?.int ?? 0,
                inFlight: item["in_flight"]?.int ?? 0, p50: item["p50"]?.double, p95: item["p95"]?.double)
        }
    }

    /// The `methods` array of an `rpc_stats` event: a malformed item is an error, like any field
    /// of an event read back (a worker's status line, read by the master, skips it instead).
    static func decodeCheckedList(_ value: JSONValue?) throws(EventCodec.DecodeError) -> [RPCMethodStats] {
        var list: [RPCMethodStats] = []
        for item in value?.array ?? [] {
            let fields = EventCodec.Fields(item, in: "methods")
            guard let method = item["method"]?.string else {
                throw EventCodec.DecodeError(message: "event field 'methods.method' missing or of the wrong type")
            }
            list.append(
                RPCMethodStats(
                    method: method, handled: try fields.int("handled", in: EventCodec.countRange, default: 0),
                    failures: try fields.int("failures", in: EventCodec.countRange, default: 0),
                    inFlight: try fields.int("in_flight", in: EventCodec.countRange, default: 0),
                    p50: try fields.optionalSeconds("p50"), p95: try fields.optionalSeconds("p95")))
        }
        return list
    }
}
