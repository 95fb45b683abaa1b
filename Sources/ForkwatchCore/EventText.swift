/// Events in words: `summary` is the log line, `explanation` the teaching text behind it
/// (what syscall happened, what a status word meant, why the throttle waited).
extension Event {
    public var summary: String {
        switch kind {
        case .masterStarted(let pid, let services, _):
            let list = services.map { "\($0.name) ×\($0.workers) (\($0.program.summary))" }.joined(separator: ", ")
            return "master \(pid) started: \(list)"
        case .fork(let pid, let service, let reason, let generation):
            return "fork → \(pid) \(service) (\(reason.rawValue), generation \(generation))"
        case .forkFailed(let service, let errno, let message):
            return "fork for \(service) failed: \(message) (errno \(errno)); retrying after the throttle interval"
        case .forkRefused(let service, let threads):
            return "REFUSED to fork \(service): the master has \(threads) threads, forking is only safe with 1"
        case .ready(let pid, let service, let after):
            return "\(pid) \(service) ready after \(Self.duration(after))"
        case .execFailed(let pid, let service, let errno, let message):
            return "\(pid) \(service): execve failed: \(message) (errno \(errno))"
        case .exit(let pid, let service, let status, _, let uptime, let expected):
            let who = service.map { "\(pid) \($0)" } ?? "\(pid) (not a worker)"
            let up = uptime.map { " after \(Self.duration($0))" } ?? ""
            return "SIGCHLD: \(who) \(status)\(up)" + (expected ? "" : (service == nil ? "" : " (unexpected)"))
        case .signalReceived(let signal, let sender):
            return "master received \(signal.name)" + (sender > 0 ? " from pid \(sender)" : "")
        case .signalSent(let pid, let service, let signal, let reason, let origin, let error):
            let target = service.map { "\(pid) \($0)" } ?? "\(pid)"
            return "\(origin) → \(signal.name) \(target) (\(reason))" + (error.map { ": FAILED, \($0)" } ?? "")
        case .throttle(let service, let forks, let span, let window, let delay):
            return
                "throttle: \(service) forked \(forks) times in \(Self.duration(span)) < \(Self.duration(window)); next fork delayed \(Self.duration(delay))"
        case .serviceState(let service, let state, let reason):
            return "service \(service) is \(state.rawValue): \(reason)"
        case .scale(let service, let from, let to, let reason):
            return "scale \(service) \(from) → \(to) (\(reason))"
        case .reload(let method, let changes):
            return "reload (\(method.name)): \(changes)"
        case .rollingStep(let service, let newPid, let oldPid, let remaining):
            return "rolling \(service): \(newPid) ready, stopping \(oldPid); \(remaining) old left"
        case .rollingDone(let service):
            return "rolling restart of \(service) done"
        case .stopping(let mode, let timeout, let workers):
            let limit =
                timeout.map { ", SIGKILL after \(Self.duration($0))" } ?? (mode == .graceful ? ", waiting forever" : "")
            return "stopping (\(mode.rawValue)): \(workers) workers\(limit)"
        case .escalate(let reason, let survivors):
            return "escalating to SIGKILL for \(survivors) workers: \(reason)"
        case .stopped(let code):
            return "master stopped, exit \(code)"
        case .configError(let message):
            return "configuration error: \(message)"
        case .logReopened(let path, let error):
            return "log file \(path) reopened" + (error.map { ": FAILED, \($0)" } ?? "")
        case .serviceRemoved(let service):
            return "service \(service) removed: the configuration no longer names it and its last worker is gone"
        case .subscriberDropped(let pid, let queued, let limit):
            return "control subscriber pid \(pid) dropped: \(queued) bytes not read (control_buffer_limit \(limit))"
        case .taskRun(let pid, let service, let task, _, let duration, let ok, let error, _, let timings):
            return "\(pid) \(service): periodic task \(task) " + (ok ? "ran" : "FAILED")
                + " in \(Self.duration(duration))"
                + (error.map { ": \($0)" } ?? "")
                + " (runs \(timings.runs), failures \(timings.failures), p95 \(Self.duration(timings.p95)))"
        case .listening(let service, let address, let backlog):
            return "\(service) listens on \(address) (backlog \(backlog)); its workers share the socket"
        case .acceptQueue(let service, let address, let depth, let limit):
            return "accept queue \(service) \(address): \(depth)/\(limit)"
        case .heartbeat(let pid, let service, let ok, let count, let error):
            return ok
                ? "\(pid) \(service): heartbeat, report_count \(count.map(String.init) ?? "?")"
                : "\(pid) \(service): heartbeat FAILED: \(error ?? "unknown error") (it keeps beating)"
        case .rpcStats(let pid, let service, let topic, let methods):
            return "\(pid) \(service): rpc on \(topic): "
                + methods.map {
                    "\($0.method) \($0.handled)" + ($0.failures > 0 ? " (\($0.failures) failed)" : "")
                        + ($0.inFlight > 0 ? " +\($0.inFlight)" : "")
                        + ($0.p95.map { " p95 \(Self.duration($0))" } ?? "")
                }.joined(separator: ", ")
        case .stats(let samples):
            return "stats: "
                + samples.map {
                    "\($0.pid) \(JSONObject.number($0.cpuPercent, decimals: 1))% \($0.rssBytes / 1024) KiB"
                }.joined(separator: ", ")
        case .snapshot(let snapshot):
            return "snapshot: master \(snapshot.masterPid), \(snapshot.workers.count) workers, \(snapshot.phase)"
        case .notice(let message):
            return message
        }
    }

    /// What happened underneath, for learners (`e` in the dashboard, `forkwatch explain`).
    public var explanation: String {
        switch kind {
        case .masterStarted:
            return "The master blocked its signals and reads them from a signalfd in one poll(2) loop, so no Swift "
                + "code ever runs inside a signal handler. It stays single-threaded, which is what makes fork() "
                + "without exec safe for Swift workers."
        case .fork(_, _, let reason, _):
            let why: String =
                switch reason {
                case .initial: "the service was starting its workers"
                case .respawn: "a worker was gone and the service was below its count"
                case .scale: "the worker count was raised"
                case .reload: "a reload replaced a worker"
                case .rolling: "a rolling restart starts the new worker before stopping an old one"
                }
            return "fork(2) copied the master (copy-on-write) into a new process because \(why). In the child: "
                + "signal dispositions reset and the mask emptied (a Swift worker keeps SIGTERM, SIGHUP, SIGINT and "
                + "SIGUSR1 blocked for its own signalfd), fds it must not hold closed, PR_SET_PDEATHSIG set and "
                + "getppid() re-checked, then the service runs (or execve for a command)."
        case .forkFailed:
            return
                "fork(2) failed, usually EAGAIN (RLIMIT_NPROC or pid_max) or ENOMEM; the master schedules a retry instead of spinning."
        case .forkRefused(_, let threads):
            return "/proc/self/task listed \(threads) threads. fork() copies only the calling thread: a lock held "
                + "by another thread stays locked forever in the child, so the master refuses to fork."
        case .ready:
            return "The worker wrote 'ready' on its status pipe after start() returned (a command is ready when "
                + "execve succeeded: the close-on-exec status pipe reached EOF)."
        case .execFailed(_, _, let errno, let message):
            return "execve(2) returned \(errno) (\(message)) in the child, which wrote it on the status pipe and "
                + "_exit(127)ed. A program that cannot be executed will not start on a retry: a boot error."
        case .exit(_, _, let status, let raw, _, let expected):
            return "signalfd reported SIGCHLD; the master called waitpid(-1, WNOHANG) until it returned 0. "
                + status.explain(rawStatus: raw)
                + (expected ? " forkwatch had asked this worker to stop." : "")
        case .signalReceived(let signal, _):
            return "\(signal.name): \(signal.meaning). It was blocked with sigprocmask and read from the signalfd, "
                + "then handled in the master's single loop."
        case .signalSent(_, _, let signal, _, _, let error):
            return "kill(2) sent \(signal.name): \(signal.meaning)." + (error.map { " kill failed: \($0)." } ?? "")
        case .throttle(_, let forks, let span, let window, let delay):
            return "oslo.service's rule: when the last \(forks) forks (workers + 1) span less than workers × interval "
                + "(\(Self.duration(span)) < \(Self.duration(window))), the next fork waits \(Self.duration(delay)). "
                + "oslo sleeps; forkwatch schedules the fork and keeps reaping and answering signals meanwhile."
        case .serviceState(_, let state, _):
            switch state {
            case .crashLooping:
                return
                    "Workers keep dying right after fork. Respawns continue through the throttle (about one a second)."
            case .failed:
                return
                    "Exit code 3 (or an execve failure) means the worker cannot boot; respawning would loop, so the service waits for a reload (SIGHUP)."
            case .running: return "The service is kept at its worker count."
            }
        case .scale:
            return
                "SIGTTIN / SIGTTOU (gunicorn's convention) or a scale request changed the worker count; extra workers get SIGTERM, oldest first."
        case .reload(let method, _):
            return "SIGHUP re-read the configuration, then restart_method=\(method.name): "
                + (method == .mutate
                    ? "SIGHUP to each worker, which calls reset() in place."
                    : method == .reload
                        ? "SIGTERM to each worker; replacements are forked as they exit."
                        : "one at a time, a new worker is forked and must be ready before an old one gets SIGTERM.")
        case .rollingStep, .rollingDone:
            return "Rolling restart: capacity never drops below the worker count."
        case .stopping(let mode, _, _):
            switch mode {
            case .graceful:
                return
                    "SIGTERM: each worker gets SIGTERM; survivors get SIGKILL after graceful_shutdown_timeout; exit 0."
            case .fast: return "SIGINT: each worker gets SIGINT; survivors get SIGKILL after 1 s; exit 1."
            case .immediate: return "A second SIGTERM or a SIGINT during a stop: SIGKILL now; exit 1."
            }
        case .escalate:
            return "SIGKILL cannot be caught or ignored: the kernel ends each survivor."
        case .stopped:
            return "Every worker has been reaped; nothing is left behind."
        case .configError:
            return "The new configuration was rejected as a whole; the running one is unchanged."
        case .logReopened:
            return "SIGUSR1: the log file was closed and opened again (for logrotate)."
        case .serviceRemoved:
            return "A reload found the service gone from the file: its workers got SIGTERM (SIGKILL after "
                + "graceful_shutdown_timeout), none was replaced, and the service left the table with the last one."
        case .subscriberDropped:
            return "A subscriber that stops reading is owed every event since: past control_buffer_limit bytes the "
                + "master hangs up on it (Redis's client-output-buffer-limit) so its memory stays bounded; a "
                + "dashboard reconnects and starts again from a snapshot."
        case .taskRun:
            return
                "oslo's run_periodic_tasks: a due task's last run moves to the nearest spacing boundary before it runs "
                + "(0-5 % jitter, missed periods collapse into one run); a task that raises is counted and never stops the others. "
                + "The worker timed it and wrote the result on its status pipe."
        case .listening:
            return "The master called socket, setsockopt (SO_REUSEADDR, SO_KEEPALIVE, TCP_KEEPIDLE), bind and listen "
                + "once, before forking: every worker inherits the socket and accepts from one kernel queue, which keeps "
                + "queueing connections while a worker is respawned. A command gets it as fd 3 with LISTEN_FDS=1 and LISTEN_PID."
        case .acceptQueue:
            return "getsockopt(TCP_INFO) on the listening socket: tcpi_unacked is the number of connections the kernel "
                + "has completed and queued for accept(), tcpi_sacked the backlog limit; at the limit new SYNs are dropped."
        case .heartbeat:
            return
                "nova's report_state: every report_interval the worker adds 1 to report_count of its services row and "
                + "sets last_seen_up. A service is up while now - last_seen_up <= service_down_time."
        case .rpcStats:
            return "The worker's RPC server consumes its topic queue (shared by every worker: competing consumers), "
                + "topic.host and its own fanout queue; each message is claimed by one worker, handled by the manager's "
                + "method, acknowledged, and for a call answered on the caller's reply queue. These are its counters."
        case .stats:
            return "The master read /proc/PID/stat (state, utime+stime, threads) and /proc/PID/statm (resident pages) "
                + "for itself and each worker, as htop does; CPU % is the tick delta over the interval."
        case .snapshot:
            return "The master's state as a subscriber first sees it."
        case .notice:
            return ""
        }
    }

    /// `1.234 s` or `12 ms`.
    public static func duration(_ seconds: Double) -> String {
        if seconds < 1 { return JSONObject.number(seconds * 1000, decimals: seconds < 0.01 ? 2 : 0) + " ms" }
        return JSONObject.number(seconds, decimals: seconds < 10 ? 2 : 1) + " s"
    }
}
