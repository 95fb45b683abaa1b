import ArgumentParser
import Forkwatch
import ForkwatchCore

#if canImport(Glibc)
import Glibc
#endif

/// `--socket PATH` for the commands that talk to a running master.
struct SocketOption: ParsableArguments {
    @Option(name: .long, help: "The master's control socket (default: \(ControlSocket.defaultPath)).")
    var socket: String?

    /// The named socket, or the one running master's (see `ControlSocket.discover`).
    func resolvedPath() throws -> String {
        if let socket { return socket }
        do { return try ControlSocket.discover() } catch let error as ControlError { throw UsageError(error.message) }
    }

    func connect() throws -> ControlClient {
        let path = try resolvedPath()
        do {
            return try ControlClient(path: path)
        } catch  where error.errno == EPERM {
            throw UsageError(error.call)  // not a master of ours: what listens there, and why not
        } catch {
            let hint =
                error.errno == 2 || error.errno == 111
                ? "; is a master running? (forkwatch run … / forkwatch demo)" : ""
            throw UsageError("cannot reach a master at \(path): \(error.message)\(hint)")
        }
    }

    /// The snapshot a `status` or `subscribe` answers with; the master's refusal as an error.
    static func snapshotLine(_ client: ControlClient) throws -> String {
        guard let line = try client.readLine() else {
            throw UsageError("the master at \(client.path) closed the connection")
        }
        if let reply = try? JSONValue.parse(line), reply["type"] == nil, reply["ok"]?.bool == false {
            throw UsageError(reply["error"]?.string ?? line)
        }
        return line
    }

    func request(_ request: ControlRequest) throws -> JSONValue {
        let client = try connect()
        do { return try client.request(request) } catch let error as ControlError {
            throw UsageError(error.message)
        }
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a running master's services and workers.")
    @OptionGroup var socket: SocketOption
    @Flag(help: "Print the snapshot as one JSON line.") var json = false

    func run() throws {
        let client = try socket.connect()
        do { try client.send(.status) } catch {
            throw UsageError("the master at \(client.path) refused the request: \(error.message)")
        }
        let line = try SocketOption.snapshotLine(client)
        if json {
            print(line)
            return
        }
        let event = try EventCodec.decode(line)
        guard case .snapshot(let snapshot) = event.kind else { throw UsageError("unexpected reply: \(line)") }
        print(StatusReport.text(snapshot, now: Posix.monotonicNow()))
    }
}

enum StatusReport {
    static func text(_ snapshot: Snapshot, now: Double) -> String {
        func pad(_ text: String, _ width: Int) -> String {
            text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
        }
        func lpad(_ text: String, _ width: Int) -> String {
            text.count >= width ? text : String(repeating: " ", count: width - text.count) + text
        }
        var lines = [
            "master \(snapshot.masterPid) · \(snapshot.phase) · up \(clock(now - snapshot.startedAt)) · \(snapshot.configuration)",
            "",
        ]
        lines.append(
            "\(pad("SERVICE", 14)) \(lpad("WANT", 4)) \(lpad("LIVE", 4)) \(pad("STATE", 14)) \(lpad("RESTARTS", 8))  PROGRAM"
        )
        for service in snapshot.services {
            let live = snapshot.workers.filter { $0.service == service.name && !$0.retiring }.count
            lines.append(
                "\(pad(service.name, 14)) \(lpad("\(service.workers)", 4)) \(lpad("\(live)", 4)) \(pad(service.state.rawValue, 14)) \(lpad("\(service.restarts)", 8))  \(service.program)"
            )
        }
        lines.append("")
        lines.append("\(lpad("PID", 7))  \(pad("SERVICE", 14)) \(lpad("GEN", 3))  \(lpad("UP", 9))  STATE")
        for worker in snapshot.workers {
            let state = worker.retiring ? "stopping" : worker.readyAt == nil ? "starting" : "ready"
            lines.append(
                "\(lpad("\(worker.pid)", 7))  \(pad(worker.service, 14)) \(lpad("\(worker.generation)", 3))  \(lpad(clock(now - worker.forkedAt), 9))  \(state)"
            )
        }
        if !snapshot.tasks.isEmpty {
            lines.append("")
            lines.append(
                "\(pad("SERVICE", 14)) \(pad("PERIODIC TASK", 28)) \(lpad("EVERY", 6)) \(lpad("RUNS", 6)) \(lpad("FAIL", 5)) \(lpad("LAST", 9)) \(lpad("MEAN", 9)) \(lpad("P95", 9)) \(lpad("MAX", 9))"
            )
            for task in snapshot.tasks {
                let t = task.timings
                func ms(_ seconds: Double) -> String { JSONObject.number(seconds * 1000, decimals: 1) + "ms" }
                lines.append(
                    "\(pad(task.service, 14)) \(pad(task.task, 28)) \(lpad(JSONObject.number(t.spacing, decimals: 0) + "s", 6)) \(lpad("\(t.runs)", 6)) \(lpad("\(t.failures)", 5)) \(lpad(ms(t.last), 9)) \(lpad(ms(t.mean), 9)) \(lpad(ms(t.p95), 9)) \(lpad(ms(t.max), 9))"
                )
            }
        }
        return lines.joined(separator: "\n")
    }

    static func clock(_ seconds: Double) -> String {
        let total = max(0, Int(seconds))
        let (h, m, s) = (total / 3600, total / 60 % 60, total % 60)
        return "\(h):\(m < 10 ? "0" : "")\(m):\(s < 10 ? "0" : "")\(s)"
    }
}

struct SignalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "signal", abstract: "Send a signal to one worker of a running master.")
    @OptionGroup var socket: SocketOption
    @Argument(help: "The worker's pid.") var pid: Int32
    @Argument(help: "The signal: TERM, SIGHUP, KILL, 9, …") var signal: String

    func run() throws {
        guard let parsed = Signal(name: signal) else { throw UsageError("no such signal: '\(signal)'") }
        _ = try socket.request(.signal(pid: pid, signal: parsed))
        print("sent \(parsed.name) to \(pid)")
    }
}

struct Scale: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Set a service's worker count on a running master.")
    @OptionGroup var socket: SocketOption
    @Argument var service: String
    @Argument var workers: Int

    func run() throws {
        if let problem = Settings.workers.check(workers, as: "workers") { throw UsageError(problem) }
        _ = try socket.request(.scale(service: service, workers: workers))
        print("\(service): \(workers) workers")
    }
}

struct Reload: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Reload a running master (like SIGHUP: restart_method decides how).")
    @OptionGroup var socket: SocketOption
    func run() throws {
        _ = try socket.request(.reload)
        print("reload requested")
    }
}

struct Stop: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stop a running master and its workers, and wait until it has.")
    @OptionGroup var socket: SocketOption
    @Flag(help: "Fast stop: SIGINT to workers, SIGKILL after 1 s (like SIGINT to the master).") var fast = false
    @Flag(help: "SIGKILL every worker now.") var immediate = false

    func run() throws {
        let client = try socket.connect()
        do { try client.send(.subscribe) } catch {
            throw UsageError("the master at \(client.path) refused the request: \(error.message)")
        }
        _ = try SocketOption.snapshotLine(client)
        let mode: StopMode = immediate ? .immediate : fast ? .fast : .graceful
        try client.send(.stop(mode: mode))
        // Wait for the master to finish: its `stopped` event, or the socket closing.
        while let line = try client.readLine(timeout: nil) {
            if let event = try? EventCodec.decode(line), case .stopped(let code) = event.kind {
                print("master stopped, exit \(code)")
                return
            }
            if let reply = try? JSONValue.parse(line), reply["ok"]?.bool == false {
                throw UsageError(reply["error"]?.string ?? line)
            }
        }
        print("master stopped")
    }
}

struct Events: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a running master's events as JSON lines (a snapshot first).")
    @OptionGroup var socket: SocketOption
    @Flag(name: .shortAndLong, help: "Keep printing events as they happen, until the master exits.") var follow = false

    func run() throws {
        let client = try socket.connect()
        try client.send(follow ? .subscribe : .status)
        while let line = try client.readLine(timeout: follow ? nil : 10) {
            try Posix.writeAll(1, line + "\n")
            if !follow { return }
        }
    }
}
