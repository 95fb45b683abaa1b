/// What a reload changes, decided from the running services and the re-read configuration
/// before anything is touched: which services are new, which keep running with a new program
/// or a new count, which the file no longer names. `WorkerTable.applyReload` applies it, then
/// restarts every service's workers by `restart_method`.
///
/// Counts: a service's running count may differ from its file's (SIGTTIN, a `scale` request).
/// A reload rescales only when the file's count changed since it was last read, so reloading
/// an unchanged file does not undo a scale.
public struct ReloadPlan: Sendable, Hashable {
    /// A service as the table runs it.
    public struct RunningService: Sendable, Hashable {
        /// `workers` is the running count.
        public var spec: ServiceSpec
        /// The count the file asked for when it was last read.
        public var configuredWorkers: Int

        public init(spec: ServiceSpec, configuredWorkers: Int) {
            self.spec = spec
            self.configuredWorkers = configuredWorkers
        }
    }

    /// A running service the new file still names.
    public struct Update: Sendable, Hashable {
        public let service: String
        /// Workers forked from now on run this.
        public let program: Program
        /// The file's count when it changed since the last read (the new configured count).
        public let configuredWorkers: Int?
        /// Scale the running service to this: the file changed its count, and it is not the
        /// running count already.
        public let scaleTo: Int?
    }

    /// One entry per change, for the reload event.
    public private(set) var changes: [String] = []
    /// The running services the file still names, in the file's order.
    public private(set) var updates: [Update] = []
    /// Services the file names that are not running: started with the file's count.
    public private(set) var added: [ServiceSpec] = []
    /// Services the file no longer names: their workers are stopped (gracefully) and not replaced.
    public private(set) var removed: [String] = []

    /// `new` nil: the file was not re-read (no file); only the restart happens. Service names
    /// are unique in both (`LauncherConfiguration.validate`).
    public init(running: [RunningService], current: LauncherConfiguration, new: LauncherConfiguration?) {
        guard let new else { return }
        let options: [(name: String, old: String, new: String)] = [
            ("graceful_shutdown_timeout", "\(current.gracefulShutdownTimeout)", "\(new.gracefulShutdownTimeout)"),
            ("restart_method", current.restartMethod.name, new.restartMethod.name),
            ("boot_window", "\(current.bootWindow)", "\(new.bootWindow)"),
            ("crash_loop_threshold", "\(current.crashLoopThreshold)", "\(new.crashLoopThreshold)"),
            ("fork_throttle_interval", "\(current.forkThrottleInterval)", "\(new.forkThrottleInterval)"),
            ("log_file", current.logFile ?? "-", new.logFile ?? "-"),
        ]
        changes += options.filter { $0.old != $0.new }.map { "\($0.name) \($0.old) → \($0.new)" }
        for spec in new.services {
            guard let service = running.first(where: { $0.spec.name == spec.name }) else {
                changes.append("\(spec.name): new service")
                added.append(spec)
                continue
            }
            if service.spec.program != spec.program { changes.append("\(spec.name): program changed") }
            let countChanged = service.configuredWorkers != spec.workers
            if countChanged { changes.append("\(spec.name): workers \(service.configuredWorkers) → \(spec.workers)") }
            updates.append(
                Update(
                    service: spec.name, program: spec.program,
                    configuredWorkers: countChanged ? spec.workers : nil,
                    scaleTo: countChanged && spec.workers != service.spec.workers ? spec.workers : nil))
        }
        for service in running where !new.services.contains(where: { $0.name == service.spec.name }) {
            changes.append("\(service.spec.name): no longer in the configuration, its workers stopped")
            removed.append(service.spec.name)
        }
    }

    /// The reload event's `changes`.
    public var summary: String { changes.isEmpty ? "none" : changes.joined(separator: "; ") }
}
