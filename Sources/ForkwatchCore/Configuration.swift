/// How SIGHUP restarts workers.
public struct RestartMethod: Hashable, Sendable, CustomStringConvertible {
    private enum Kind: String { case reload, mutate, rolling }
    private let kind: Kind

    /// SIGTERM every worker and fork replacements as they exit (oslo's `reload`).
    public static let reload = RestartMethod(kind: .reload)
    /// SIGHUP every worker; built-in workers call `reset()` in place (oslo's `mutate`, nova's choice).
    public static let mutate = RestartMethod(kind: .mutate)
    /// One worker at a time: a new worker is ready before an old one is stopped.
    public static let rolling = RestartMethod(kind: .rolling)

    public static let all: [RestartMethod] = [.reload, .mutate, .rolling]

    public init?(name: String) {
        guard let kind = Kind(rawValue: name) else { return nil }
        self.kind = kind
    }

    private init(kind: Kind) { self.kind = kind }

    public var name: String { kind.rawValue }
    public var description: String { kind.rawValue }
}

/// What a service's workers run.
public enum Program: Hashable, Sendable {
    /// A Swift service registered under this name, run in a forked worker without exec.
    case builtin(String)
    /// Any program: fork, then execve in the child.
    case command([String])

    public var summary: String {
        switch self {
        case .builtin(let name): return name
        case .command(let argv): return argv.joined(separator: " ")
        }
    }
}

/// One supervised service: a name, what it runs, and how many workers.
public struct ServiceSpec: Hashable, Sendable {
    public var name: String
    public var program: Program
    public var workers: Int

    public init(name: String, program: Program, workers: Int) {
        self.name = name
        self.program = program
        self.workers = workers
    }
}

/// The launcher's options, with oslo.service's names and defaults where oslo has the option.
public struct LauncherConfiguration: Hashable, Sendable {
    /// oslo `graceful_shutdown_timeout`: seconds between SIGTERM to the workers and SIGKILL to
    /// the survivors. 0 waits forever.
    public var gracefulShutdownTimeout: Double = 60
    /// oslo `restart_method`, plus forkwatch's `rolling` (the default).
    public var restartMethod: RestartMethod = .rolling
    /// A worker that dies sooner than this after its fork counts as a quick death.
    public var bootWindow: Double = 1
    /// This many quick deaths in a row mark the service crash-looping.
    public var crashLoopThreshold: Int = 5
    /// The throttle's wait and its seconds-per-worker window (oslo: 1 s, hard-coded). 0 = off.
    public var forkThrottleInterval: Double = 1
    /// Where the master's log lines go (SIGUSR1 reopens it); nil = standard error.
    public var logFile: String?
    public var services: [ServiceSpec] = []

    public init() {}

    /// The options a config file and flags may set, with a short description each.
    public static let options: [(name: String, meaning: String)] = [
        ("graceful_shutdown_timeout", "seconds from SIGTERM to SIGKILL when stopping (0 = forever); default 60"),
        ("restart_method", "what SIGHUP does: reload, mutate or rolling (default)"),
        ("boot_window", "a worker dying sooner than this many seconds after fork is a quick death; default 1"),
        ("crash_loop_threshold", "quick deaths in a row that mark a service crash-looping; default 5"),
        ("fork_throttle_interval", "the throttle's wait in seconds (oslo: 1); 0 disables it"),
        ("log_file", "the master's log file (SIGUSR1 reopens it); default standard error"),
        ("services", "a map of service name → {workers, service, command}"),
    ]

    /// Checks values that no type can: returns the first problem, naming the option.
    public func validate() -> String? {
        if !(gracefulShutdownTimeout >= 0) { return "graceful_shutdown_timeout must be >= 0, got \(gracefulShutdownTimeout)" }
        if !(bootWindow >= 0) { return "boot_window must be >= 0, got \(bootWindow)" }
        if crashLoopThreshold < 1 { return "crash_loop_threshold must be >= 1, got \(crashLoopThreshold)" }
        if !(forkThrottleInterval >= 0) { return "fork_throttle_interval must be >= 0, got \(forkThrottleInterval)" }
        var seen = Set<String>()
        for service in services {
            if !seen.insert(service.name).inserted { return "service '\(service.name)' is defined twice" }
            if service.workers < 1 { return "service '\(service.name)': workers must be >= 1, got \(service.workers)" }
            if case .command(let argv) = service.program, argv.isEmpty {
                return "service '\(service.name)': command is empty"
            }
        }
        return nil
    }
}
