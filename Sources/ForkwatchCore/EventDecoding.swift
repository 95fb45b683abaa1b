/// Reading events back (the dashboard, `forkwatch replay`, `forkwatch events`): the inverse of
/// `EventCodec.encode`. Unknown types decode as a notice, so an older reader survives a newer master.
extension EventCodec {
    public struct DecodeError: Error, CustomStringConvertible, Equatable {
        public let message: String
        public var description: String { message }
    }

    public static func decode(_ line: String) throws(DecodeError) -> Event {
        let json: JSONValue
        do { json = try JSONValue.parse(line) } catch { throw DecodeError(message: error.description) }
        return try decode(json)
    }

    public static func decode(_ json: JSONValue) throws(DecodeError) -> Event {
        guard let type = json["type"]?.string else { throw DecodeError(message: "not an event: no 'type'") }
        guard let version = json["v"]?.int, version <= EventCodec.version else {
            throw DecodeError(message: "event version \(json["v"]?.int.map(String.init) ?? "?") is newer than this reader (\(EventCodec.version))")
        }
        let wall = try need(json["wall"]?.double, "wall")
        let mono = try need(json["mono"]?.double, "mono")
        func str(_ key: String) throws(DecodeError) -> String { try need(json[key]?.string, key) }
        func int(_ key: String) throws(DecodeError) -> Int { try need(json[key]?.int, key) }
        func pid(_ key: String = "pid") throws(DecodeError) -> Int32 { try need(json[key]?.int32, key) }
        func num(_ key: String) throws(DecodeError) -> Double { try need(json[key]?.double, key) }
        func signal(_ key: String = "signo") throws(DecodeError) -> Signal { Signal(rawValue: Int32(try int(key))) }

        let kind: Event.Kind
        switch type {
        case "master_started":
            let services = try need(json["services"]?.array, "services").map { (item: JSONValue) throws(DecodeError) -> ServiceSpec in
                let program: Program = if let argv = item["command"]?.array {
                    .command(argv.compactMap(\.string))
                } else {
                    .builtin(item["builtin"]?.string ?? "?")
                }
                return ServiceSpec(name: try need(item["name"]?.string, "name"), program: program, workers: item["workers"]?.int ?? 0)
            }
            kind = .masterStarted(pid: try pid(), services: services, config: json["config"]?.string ?? "")
        case "fork":
            kind = .fork(pid: try pid(), service: try str("service"),
                         reason: ForkReason(rawValue: try str("reason")) ?? .respawn, generation: json["generation"]?.int ?? 1)
        case "fork_failed":
            kind = .forkFailed(service: try str("service"), errno: Int32(try int("errno")), message: try str("message"))
        case "fork_refused":
            kind = .forkRefused(service: try str("service"), threads: try int("threads"))
        case "ready":
            kind = .ready(pid: try pid(), service: try str("service"), after: try num("after"))
        case "exec_failed":
            kind = .execFailed(pid: try pid(), service: try str("service"), errno: Int32(try int("errno")), message: try str("message"))
        case "exit":
            let status: TerminationStatus = try str("how") == "signaled"
                ? .signaled(try signal(), coreDumped: json["core_dumped"]?.bool ?? false)
                : .exited(code: Int32(try int("code")))
            kind = .exit(pid: try pid(), service: json["service"]?.string, status: status,
                         rawStatus: Int32(json["status"]?.int ?? 0), uptime: json["uptime"]?.double,
                         expected: json["expected"]?.bool ?? false)
        case "signal_received":
            kind = .signalReceived(signal: try signal(), senderPid: json["sender_pid"]?.int32 ?? 0)
        case "signal_sent":
            kind = .signalSent(pid: try pid(), service: json["service"]?.string, signal: try signal(),
                               reason: json["reason"]?.string ?? "", origin: json["origin"]?.string ?? "master",
                               error: json["error"]?.string)
        case "throttle":
            kind = .throttle(service: try str("service"), forks: try int("forks"), span: try num("span"),
                             window: try num("window"), delay: try num("delay"))
        case "service_state":
            kind = .serviceState(service: try str("service"), state: ServiceState(rawValue: try str("state")) ?? .running,
                                 reason: json["reason"]?.string ?? "")
        case "scale":
            kind = .scale(service: try str("service"), from: try int("from"), to: try int("to"), reason: json["reason"]?.string ?? "")
        case "reload":
            kind = .reload(method: RestartMethod(name: try str("method")) ?? .rolling, changes: json["changes"]?.string ?? "")
        case "rolling_step":
            kind = .rollingStep(service: try str("service"), newPid: try pid("new_pid"), oldPid: try pid("old_pid"),
                                remaining: try int("remaining"))
        case "rolling_done":
            kind = .rollingDone(service: try str("service"))
        case "stopping":
            kind = .stopping(mode: StopMode(rawValue: try str("mode")) ?? .graceful, timeout: json["timeout"]?.double,
                             workers: try int("workers"))
        case "escalate":
            kind = .escalate(reason: try str("reason"), survivors: try int("survivors"))
        case "stopped":
            kind = .stopped(exitCode: Int32(try int("exit_code")))
        case "config_error":
            kind = .configError(message: try str("message"))
        case "log_reopened":
            kind = .logReopened(path: try str("path"), error: json["error"]?.string)
        case "task_run":
            kind = .taskRun(pid: try pid(), service: try str("service"), task: try str("task"),
                            started: try num("started"), duration: try num("duration"), ok: json["ok"]?.bool ?? true,
                            error: json["error"]?.string, nextDue: json["next_due"]?.double,
                            timings: decodeTimings(json["timings"]))
        case "listening":
            kind = .listening(service: try str("service"), address: try str("address"), backlog: json["backlog"]?.int ?? 0)
        case "accept_queue":
            kind = .acceptQueue(service: try str("service"), address: try str("address"), depth: try int("depth"),
                                limit: json["limit"]?.int ?? 0)
        case "heartbeat":
            kind = .heartbeat(pid: try pid(), service: try str("service"), ok: json["ok"]?.bool ?? false,
                              reportCount: json["report_count"]?.int, error: json["error"]?.string)
        case "rpc_stats":
            kind = .rpcStats(pid: try pid(), service: try str("service"), topic: json["topic"]?.string ?? "",
                             methods: RPCMethodStats.decodeList(json["methods"]))
        case "stats":
            kind = .stats(samples: try need(json["samples"]?.array, "samples").map { (item: JSONValue) throws(DecodeError) -> ProcessSample in
                ProcessSample(pid: try need(item["pid"]?.int32, "pid"), cpuPercent: item["cpu"]?.double ?? 0,
                              rssBytes: item["rss"]?.int ?? 0, state: item["state"]?.string ?? "?",
                              threads: item["threads"]?.int ?? 0)
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

    static func decodeTimings(_ json: JSONValue?) -> TaskTimings {
        var timings = TaskTimings()
        guard let json else { return timings }
        timings.runs = json["runs"]?.int ?? 0
        timings.failures = json["failures"]?.int ?? 0
        timings.last = json["last"]?.double ?? 0
        timings.max = json["max"]?.double ?? 0
        timings.total = (json["mean"]?.double ?? 0) * Double(timings.runs)
        // The window is not shipped; the p95 is kept as one sample so it reads back the same.
        if let p95 = json["p95"]?.double, timings.runs > 0 { timings.recent = [p95] }
        timings.spacing = json["spacing"]?.double ?? 0
        timings.nextDue = json["next_due"]?.double
        timings.lastError = json["last_error"]?.string
        return timings
    }

    private static func need<T>(_ value: T?, _ key: String) throws(DecodeError) -> T {
        guard let value else { throw DecodeError(message: "event field '\(key)' missing or of the wrong type") }
        return value
    }

    private static func decodeSnapshot(_ json: JSONValue) throws(DecodeError) -> Snapshot {
        let services = try need(json["services"]?.array, "services").map { (item: JSONValue) throws(DecodeError) -> Snapshot.ServiceInfo in
            Snapshot.ServiceInfo(
                name: try need(item["name"]?.string, "name"), program: item["program"]?.string ?? "",
                workers: item["workers"]?.int ?? 0, state: ServiceState(rawValue: item["state"]?.string ?? "") ?? .running,
                restarts: item["restarts"]?.int ?? 0, generation: item["generation"]?.int ?? 1,
                forkTimes: item["fork_times"]?.array?.compactMap(\.double) ?? [],
                pendingForkAt: item["pending_fork_at"]?.double, throttleInterval: item["throttle_interval"]?.double ?? 1,
                quickDeaths: item["quick_deaths"]?.int ?? 0)
        }
        let workers = try need(json["workers"]?.array, "workers").map { (item: JSONValue) throws(DecodeError) -> Snapshot.WorkerInfo in
            Snapshot.WorkerInfo(
                pid: try need(item["pid"]?.int32, "pid"), service: item["service"]?.string ?? "?",
                generation: item["generation"]?.int ?? 1, forkedAt: item["forked_at"]?.double ?? 0,
                readyAt: item["ready_at"]?.double, restarts: item["restarts"]?.int ?? 0,
                retiring: item["retiring"]?.bool ?? false)
        }
        let tasks = (json["tasks"]?.array ?? []).map { item in
            Snapshot.TaskInfo(service: item["service"]?.string ?? "?", task: item["task"]?.string ?? "?",
                              timings: decodeTimings(item["timings"]))
        }
        return Snapshot(masterPid: try need(json["pid"]?.int32, "pid"), startedAt: json["started_at"]?.double ?? 0,
                        phase: json["phase"]?.string ?? "running", configuration: json["config"]?.string ?? "",
                        services: services, workers: workers, tasks: tasks)
    }
}

extension RPCMethodStats {
    /// The `methods` array of `rpc_stats` (or of a worker's `rpc` status line); malformed items are skipped.
    public static func decodeList(_ value: JSONValue?) -> [RPCMethodStats] {
        (value?.array ?? []).compactMap { item in
            guard let method = item["method"]?.string else { return nil }
            return RPCMethodStats(method: method, handled: item["handled"]?.int ?? 0, failures: item["failures"]?.int ?? 0,
                                  inFlight: item["in_flight"]?.int ?? 0, p50: item["p50"]?.double, p95: item["p95"]?.double)
        }
    }
}
