/// Why a worker was forked.
public enum ForkReason: String, Sendable, Hashable {
    case initial, respawn, scale, reload, rolling
}

/// A service's supervision state.
public enum ServiceState: String, Sendable, Hashable {
    /// Workers are kept at their count.
    case running
    /// Workers keep dying within `boot_window` of their fork; respawns continue through the throttle.
    case crashLooping = "crash-looping"
    /// A worker exited with the boot-error code (3) or could not exec: no more respawns until a reload.
    case failed
}

/// How the master is stopping.
public enum StopMode: String, Sendable, Hashable {
    /// SIGTERM to workers, SIGKILL after graceful_shutdown_timeout, exit 0.
    case graceful
    /// SIGINT to workers, SIGKILL after 1 s, exit 1.
    case fast
    /// SIGKILL to workers now, exit 1.
    case immediate
}

/// Everything the master does or sees, as one typed value. Encoded as a versioned JSON line
/// (`EventCodec`), rendered as a log line (`summary`) and explained (`explanation`).
public struct Event: Sendable, Hashable {
    /// CLOCK_MONOTONIC seconds: for ordering and durations.
    public var mono: Double
    /// Unix time in seconds: for people and for correlating with other logs.
    public var wall: Double
    public var kind: Kind

    public init(mono: Double, wall: Double, kind: Kind) {
        self.mono = mono
        self.wall = wall
        self.kind = kind
    }

    public enum Kind: Sendable, Hashable {
        case masterStarted(pid: Int32, services: [ServiceSpec], config: String)
        case fork(pid: Int32, service: String, reason: ForkReason, generation: Int)
        case forkFailed(service: String, errno: Int32, message: String)
        /// The single-thread invariant was broken: forking now would be unsafe.
        case forkRefused(service: String, threads: Int)
        case ready(pid: Int32, service: String, after: Double)
        case execFailed(pid: Int32, service: String, errno: Int32, message: String)
        /// `rawStatus` is the waitpid status word; `expected` is true when forkwatch asked it to stop.
        case exit(
            pid: Int32, service: String?, status: TerminationStatus, rawStatus: Int32, uptime: Double?, expected: Bool)
        case signalReceived(signal: Signal, senderPid: Int32)
        /// `origin` is who asked: "master" for its own decisions, "you" for a user request.
        case signalSent(pid: Int32, service: String?, signal: Signal, reason: String, origin: String, error: String?)
        case throttle(service: String, forks: Int, span: Double, window: Double, delay: Double)
        case serviceState(service: String, state: ServiceState, reason: String)
        case scale(service: String, from: Int, to: Int, reason: String)
        case reload(method: RestartMethod, changes: String)
        case rollingStep(service: String, newPid: Int32, oldPid: Int32, remaining: Int)
        case rollingDone(service: String)
        case stopping(mode: StopMode, timeout: Double?, workers: Int)
        case escalate(reason: String, survivors: Int)
        case stopped(exitCode: Int32)
        case configError(message: String)
        case logReopened(path: String, error: String?)
        /// A reload's file no longer names `service`: its last worker is gone, and so is it.
        case serviceRemoved(service: String)
        /// A control-socket subscriber owed more than `control_buffer_limit` bytes was disconnected.
        case subscriberDropped(pid: Int32, queued: Int, limit: Int)
        /// A periodic task ran in a worker: when (wall), how long, whether it raised, and when the
        /// worker will next run it (CLOCK_MONOTONIC). `timings` are the master's totals after it.
        case taskRun(
            pid: Int32, service: String, task: String, started: Double, duration: Double,
            ok: Bool, error: String?, nextDue: Double?, timings: TaskTimings)
        /// A worker's heartbeat into the services table (`report_state`): the row's report_count
        /// after it, or the error (the heartbeat keeps running either way).
        case heartbeat(pid: Int32, service: String, ok: Bool, reportCount: Int?, error: String?)
        /// A worker's RPC server, per method: handled, failures, in flight, handling time p50/p95.
        /// Sent once a second while the worker serves RPC (over its status pipe).
        case rpcStats(pid: Int32, service: String, topic: String, methods: [RPCMethodStats])
        /// A service's socket is bound and listening (before the first fork).
        case listening(service: String, address: String, backlog: Int)
        /// A listening socket's accept queue (TCP_INFO), once a second while someone watches.
        case acceptQueue(service: String, address: String, depth: Int, limit: Int)
        /// CPU, RSS, state and threads of the master and every worker, once a second while someone watches.
        case stats(samples: [ProcessSample])
        /// The master's whole state: the first line a subscriber gets.
        case snapshot(Snapshot)
        /// Something the master noticed and ignored (an unknown pid reaped, a HUP while stopping).
        case notice(message: String)
    }

    /// The `type` field of the JSON encoding.
    public var type: String {
        switch kind {
        case .masterStarted: return "master_started"
        case .fork: return "fork"
        case .forkFailed: return "fork_failed"
        case .forkRefused: return "fork_refused"
        case .ready: return "ready"
        case .execFailed: return "exec_failed"
        case .exit: return "exit"
        case .signalReceived: return "signal_received"
        case .signalSent: return "signal_sent"
        case .throttle: return "throttle"
        case .serviceState: return "service_state"
        case .scale: return "scale"
        case .reload: return "reload"
        case .rollingStep: return "rolling_step"
        case .rollingDone: return "rolling_done"
        case .stopping: return "stopping"
        case .escalate: return "escalate"
        case .stopped: return "stopped"
        case .configError: return "config_error"
        case .logReopened: return "log_reopened"
        case .serviceRemoved: return "service_removed"
        case .subscriberDropped: return "subscriber_dropped"
        case .listening: return "listening"
        case .acceptQueue: return "accept_queue"
        case .taskRun: return "task_run"
        case .heartbeat: return "heartbeat"
        case .rpcStats: return "rpc_stats"
        case .stats: return "stats"
        case .snapshot: return "snapshot"
        case .notice: return "notice"
        }
    }
}
