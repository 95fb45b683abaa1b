import Forkwatch
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

    public init(
        _ name: String, spacing: Double = 0, runImmediately: Bool = false, enabled: Bool = true,
        externalProcessOk: Bool = false, _ run: @escaping () throws -> Void
    ) {
        spec = PeriodicTaskSpec(
            name: name, spacing: spacing, runImmediately: runImmediately, enabled: enabled,
            externalProcessOk: externalProcessOk)
        self.run = run
    }
}
