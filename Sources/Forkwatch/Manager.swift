import ForkwatchCore

/// nova's word for a service's business object: it owns the periodic tasks (and, with RPC, the
/// methods other services call). Subclass it and list `periodicTasks`.
open class Manager: @unchecked Sendable {
    /// The host this manager serves (nova's `self.host`), set by the service that runs it.
    public internal(set) var host: String = ""

    public init() {}

    /// The manager's periodic tasks, in the order oslo would register them.
    open var periodicTasks: [PeriodicTask] { [] }

    /// Called in the worker before the first heartbeat and periodic pass (nova's `init_host`).
    open func initHost() throws {}

    /// SIGHUP with restart_method=mutate: reload in place.
    open func reset() {}

    /// The methods other services reach by `cast` and `call` on this manager's topic (nova's
    /// manager methods, behind oslo's RPC dispatcher). None: no RPC server is started.
    open var rpcEndpoints: [RPCEndpoint] { [] }
}

/// A running RPC server, as the service that started it sees it.
public protocol RPCServing: AnyObject {
    /// Stops consuming; returns when the messages in hand are handled.
    func stop()
}

/// A periodic task: oslo's `@periodic_task(spacing:run_immediately:enabled:external_process_ok:)`
/// and the code it runs. A task that throws is counted and logged; the others carry on.
public struct PeriodicTask: @unchecked Sendable {
    public let spec: PeriodicTaskSpec
    public let run: () throws -> Void

    public init(_ name: String, spacing: Double = 0, runImmediately: Bool = false, enabled: Bool = true,
                externalProcessOk: Bool = false, _ run: @escaping () throws -> Void) {
        spec = PeriodicTaskSpec(name: name, spacing: spacing, runImmediately: runImmediately, enabled: enabled,
                                externalProcessOk: externalProcessOk)
        self.run = run
    }
}

/// Managers by topic, for `ManagedService.create` when no manager is given (nova's
/// `SERVICE_MANAGERS`).
public enum ManagerRegistry {
    nonisolated(unsafe) private static var factories: [String: () -> Manager] = [
        "scheduler": { SchedulerManager() },
    ]

    public static func register(topic: String, _ factory: @escaping () -> Manager) { factories[topic] = factory }
    public static func make(topic: String) -> Manager? { factories[topic]?() }
    public static var topics: [String] { factories.keys.sorted() }
}

/// Where a running worker reports to its master: its status pipe. Lines are single writes under
/// PIPE_BUF, so threads of one worker never interleave them.
public enum WorkerChannel {
    nonisolated(unsafe) static var statusFD: Int32?
    /// The service's listening socket, inherited from the master (nil when it has none).
    nonisolated(unsafe) public internal(set) static var listenFD: Int32?
    /// The service's accept lock (a memfd the master made): reopen it, then flock it to take
    /// your turn at accepting. Nil without a master.
    nonisolated(unsafe) public internal(set) static var acceptLockFD: Int32?
    nonisolated(unsafe) public internal(set) static var configuration = LauncherConfiguration()
    nonisolated(unsafe) public internal(set) static var serviceName = ""

    /// For a service run in this process without a master (`--no-fork`): the options it reads.
    public static func adopt(configuration: LauncherConfiguration, serviceName: String) {
        self.configuration = configuration
        self.serviceName = serviceName
    }

    /// Sends one status line ("task {…}", "beat {…}"); dropped when not under a master.
    public static func send(_ line: String) {
        guard let statusFD else { return }
        // One line, one write under PIPE_BUF.
        let flat = String(line.map { $0 == "\n" || $0 == "\r" ? " " : $0 }.prefix(3500))
        try? Posix.writeAll(statusFD, flat + "\n")
    }
}
