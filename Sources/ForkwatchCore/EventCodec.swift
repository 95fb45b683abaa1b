/// Events as JSON lines: `{"v":1,"type":"fork","wall":…,"mono":…,…}`. Hand-written so that the
/// master does not load Foundation's JSONEncoder (several MB of RSS, copied on every fork).
/// The schema is documented in docs/events.md; `version` changes when a field changes meaning.
public enum EventCodec {
    public static let version = 1

    public static func encode(_ event: Event) -> String {
        var json = JSONObject()
        json.add("v", version)
        json.add("type", event.type)
        json.add("wall", event.wall, decimals: 6)
        json.add("mono", event.mono, decimals: 6)
        switch event.kind {
        case .masterStarted(let pid, let services, let config):
            json.add("pid", Int(pid))
            json.addRaw("services", "[" + services.map(serviceJSON).joined(separator: ",") + "]")
            json.add("config", config)
        case .fork(let pid, let service, let reason, let generation):
            json.add("pid", Int(pid))
            json.add("service", service)
            json.add("reason", reason.rawValue)
            json.add("generation", generation)
        case .forkFailed(let service, let errno, let message):
            json.add("service", service)
            json.add("errno", Int(errno))
            json.add("message", message)
        case .forkRefused(let service, let threads):
            json.add("service", service)
            json.add("threads", threads)
        case .ready(let pid, let service, let after):
            json.add("pid", Int(pid))
            json.add("service", service)
            json.add("after", after, decimals: 6)
        case .execFailed(let pid, let service, let errno, let message):
            json.add("pid", Int(pid))
            json.add("service", service)
            json.add("errno", Int(errno))
            json.add("message", message)
        case .exit(let pid, let service, let status, let raw, let uptime, let expected):
            json.add("pid", Int(pid))
            json.addOptional("service", service)
            switch status {
            case .exited(let code):
                json.add("how", "exited")
                json.add("code", Int(code))
            case .signaled(let signal, let core):
                json.add("how", "signaled")
                json.add("signal", signal.name)
                json.add("signo", Int(signal.rawValue))
                json.add("core_dumped", core)
            }
            json.add("status", Int(raw))
            if let uptime { json.add("uptime", uptime, decimals: 6) } else { json.addRaw("uptime", "null") }
            json.add("expected", expected)
        case .signalReceived(let signal, let sender):
            json.add("signal", signal.name)
            json.add("signo", Int(signal.rawValue))
            json.add("sender_pid", Int(sender))
        case .signalSent(let pid, let service, let signal, let reason, let origin, let error):
            json.add("pid", Int(pid))
            json.addOptional("service", service)
            json.add("signal", signal.name)
            json.add("signo", Int(signal.rawValue))
            json.add("reason", reason)
            json.add("origin", origin)
            json.addOptional("error", error)
        case .throttle(let service, let forks, let span, let window, let delay):
            json.add("service", service)
            json.add("forks", forks)
            json.add("span", span, decimals: 6)
            json.add("window", window, decimals: 6)
            json.add("delay", delay, decimals: 6)
        case .serviceState(let service, let state, let reason):
            json.add("service", service)
            json.add("state", state.rawValue)
            json.add("reason", reason)
        case .scale(let service, let from, let to, let reason):
            json.add("service", service)
            json.add("from", from)
            json.add("to", to)
            json.add("reason", reason)
        case .reload(let method, let changes):
            json.add("method", method.name)
            json.add("changes", changes)
        case .rollingStep(let service, let newPid, let oldPid, let remaining):
            json.add("service", service)
            json.add("new_pid", Int(newPid))
            json.add("old_pid", Int(oldPid))
            json.add("remaining", remaining)
        case .rollingDone(let service):
            json.add("service", service)
        case .stopping(let mode, let timeout, let workers):
            json.add("mode", mode.rawValue)
            if let timeout { json.add("timeout", timeout, decimals: 3) } else { json.addRaw("timeout", "null") }
            json.add("workers", workers)
        case .escalate(let reason, let survivors):
            json.add("reason", reason)
            json.add("survivors", survivors)
        case .stopped(let code):
            json.add("exit_code", Int(code))
        case .configError(let message):
            json.add("message", message)
        case .logReopened(let path, let error):
            json.add("path", path)
            json.addOptional("error", error)
        case .serviceRemoved(let service):
            json.add("service", service)
        case .subscriberDropped(let pid, let queued, let limit):
            json.add("pid", Int(pid))
            json.add("queued", queued)
            json.add("limit", limit)
        case .taskRun(
            let pid, let service, let task, let started, let duration, let ok, let error, let nextDue, let timings):
            json.add("pid", Int(pid))
            json.add("service", service)
            json.add("task", task)
            json.add("started", started, decimals: 6)
            json.add("duration", duration, decimals: 6)
            json.add("ok", ok)
            json.addOptional("error", error)
            if let nextDue { json.add("next_due", nextDue, decimals: 6) } else { json.addRaw("next_due", "null") }
            json.addRaw("timings", timingsJSON(timings))
        case .listening(let service, let address, let backlog):
            json.add("service", service)
            json.add("address", address)
            json.add("backlog", backlog)
        case .acceptQueue(let service, let address, let depth, let limit):
            json.add("service", service)
            json.add("address", address)
            json.add("depth", depth)
            json.add("limit", limit)
        case .heartbeat(let pid, let service, let ok, let count, let error):
            json.add("pid", Int(pid))
            json.add("service", service)
            json.add("ok", ok)
            if let count { json.add("report_count", count) } else { json.addRaw("report_count", "null") }
            json.addOptional("error", error)
        case .rpcStats(let pid, let service, let topic, let methods):
            json.add("pid", Int(pid))
            json.add("service", service)
            json.add("topic", topic)
            json.addRaw("methods", "[" + methods.map(rpcMethodJSON).joined(separator: ",") + "]")
        case .stats(let samples):
            json.addRaw("samples", "[" + samples.map(sampleJSON).joined(separator: ",") + "]")
        case .snapshot(let snapshot):
            json.add("pid", Int(snapshot.masterPid))
            json.add("started_at", snapshot.startedAt, decimals: 6)
            json.add("phase", snapshot.phase)
            json.add("config", snapshot.configuration)
            json.addRaw("services", "[" + snapshot.services.map(serviceInfoJSON).joined(separator: ",") + "]")
            json.addRaw("workers", "[" + snapshot.workers.map(workerInfoJSON).joined(separator: ",") + "]")
            json.addRaw(
                "tasks",
                "["
                    + snapshot.tasks.map { info in
                        var task = JSONObject()
                        task.add("service", info.service)
                        task.add("task", info.task)
                        task.addRaw("timings", timingsJSON(info.timings))
                        return task.string
                    }.joined(separator: ",") + "]")
        case .notice(let message):
            json.add("message", message)
        }
        return json.string
    }

    /// One method's counters in `rpc_stats` (also what a worker sends on its status pipe).
    public static func rpcMethodJSON(_ stats: RPCMethodStats) -> String {
        var json = JSONObject()
        json.add("method", stats.method)
        json.add("handled", stats.handled)
        json.add("failures", stats.failures)
        json.add("in_flight", stats.inFlight)
        if let p50 = stats.p50 { json.add("p50", p50, decimals: 6) } else { json.addRaw("p50", "null") }
        if let p95 = stats.p95 { json.add("p95", p95, decimals: 6) } else { json.addRaw("p95", "null") }
        return json.string
    }
    static func timingsJSON(_ timings: TaskTimings) -> String {
        var json = JSONObject()
        json.add("runs", timings.runs)
        json.add("failures", timings.failures)
        json.add("last", timings.last, decimals: 6)
        json.add("mean", timings.mean, decimals: 6)
        json.add("p95", timings.p95, decimals: 6)
        json.add("max", timings.max, decimals: 6)
        json.add("spacing", timings.spacing, decimals: 3)
        if let next = timings.nextDue {
            json.add("next_due", next, decimals: 6)
        } else {
            json.addRaw("next_due", "null")
        }
        json.addOptional("last_error", timings.lastError)
        return json.string
    }

    private static func sampleJSON(_ sample: ProcessSample) -> String {
        var json = JSONObject()
        json.add("pid", Int(sample.pid))
        json.add("cpu", sample.cpuPercent, decimals: 2)
        json.add("rss", sample.rssBytes)
        json.add("state", sample.state)
        json.add("threads", sample.threads)
        return json.string
    }

    private static func serviceInfoJSON(_ info: Snapshot.ServiceInfo) -> String {
        var json = JSONObject()
        json.add("name", info.name)
        json.add("program", info.program)
        json.add("workers", info.workers)
        json.add("state", info.state.rawValue)
        json.add("restarts", info.restarts)
        json.add("generation", info.generation)
        json.addRaw(
            "fork_times", "[" + info.forkTimes.map { JSONObject.number($0, decimals: 6) }.joined(separator: ",") + "]")
        if let at = info.pendingForkAt {
            json.add("pending_fork_at", at, decimals: 6)
        } else {
            json.addRaw("pending_fork_at", "null")
        }
        json.add("throttle_interval", info.throttleInterval, decimals: 3)
        json.add("quick_deaths", info.quickDeaths)
        return json.string
    }

    private static func workerInfoJSON(_ info: Snapshot.WorkerInfo) -> String {
        var json = JSONObject()
        json.add("pid", Int(info.pid))
        json.add("service", info.service)
        json.add("generation", info.generation)
        json.add("forked_at", info.forkedAt, decimals: 6)
        if let at = info.readyAt { json.add("ready_at", at, decimals: 6) } else { json.addRaw("ready_at", "null") }
        json.add("restarts", info.restarts)
        json.add("retiring", info.retiring)
        return json.string
    }

    private static func serviceJSON(_ spec: ServiceSpec) -> String {
        var json = JSONObject()
        json.add("name", spec.name)
        json.add("workers", spec.workers)
        switch spec.program {
        case .builtin(let name): json.add("builtin", name)
        case .command(let argv): json.addRaw("command", "[" + argv.map(JSONObject.quote).joined(separator: ",") + "]")
        }
        return json.string
    }
}

/// A flat JSON object writer: keys in insertion order, strings escaped per RFC 8259.
public struct JSONObject {
    private var body = ""

    public init() {}

    public var string: String { "{" + body + "}" }

    public mutating func addRaw(_ key: String, _ raw: String) {
        if !body.isEmpty { body += "," }
        body += Self.quote(key) + ":" + raw
    }

    public mutating func add(_ key: String, _ value: String) { addRaw(key, Self.quote(value)) }
    public mutating func add(_ key: String, _ value: Int) { addRaw(key, String(value)) }
    public mutating func add(_ key: String, _ value: Bool) { addRaw(key, value ? "true" : "false") }

    public mutating func add(_ key: String, _ value: Double, decimals: Int) {
        addRaw(key, Self.number(value, decimals: decimals))
    }

    public mutating func addOptional(_ key: String, _ value: String?) {
        if let value { add(key, value) } else { addRaw(key, "null") }
    }

    /// A fixed-point rendering (JSON has no NaN or infinity: those become null).
    public static func number(_ value: Double, decimals: Int) -> String {
        guard value.isFinite else { return "null" }
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let negative = value < 0
        let scaled = (abs(value) * scale).rounded()
        guard scaled < 9.0e18 else { return String(value) }
        let whole = Int64(scaled)
        let intPart = whole / Int64(scale)
        var frac = String(whole % Int64(scale))
        while frac.count < decimals { frac = "0" + frac }
        let text = decimals > 0 ? "\(intPart).\(frac)" : "\(intPart)"
        return negative && scaled != 0 ? "-" + text : text
    }

    public static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
