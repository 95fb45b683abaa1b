/// The master's state as a value: services, their workers, the throttle, the stop phase.
/// Every input (a child exit, a signal, a timer) is a mutating method that returns the actions
/// the caller must perform, in order. No syscalls and no clock here: `now` is a parameter
/// (CLOCK_MONOTONIC seconds), so every rule is testable with a scripted sequence.
public struct WorkerTable: Sendable {
    public enum Action: Sendable, Hashable {
        /// Fork one worker for `service`, then report `forked(...)` or `forkFailed(...)`.
        case fork(service: String, reason: ForkReason)
        /// Send `signal` to `pid`; `reason` and `origin` go into the signal_sent event.
        case signal(pid: Int32, signal: Signal, reason: String, origin: String)
        /// Re-read the configuration file and report `applyReload(...)`.
        case reloadConfiguration
        case reopenLog
        /// Every worker is gone: the master exits with this code.
        case exit(code: Int32)
        case emit(Event.Kind)
    }

    public struct Worker: Sendable, Hashable {
        public let pid: Int32
        public let service: String
        public let generation: Int
        public let forkedAt: Double
        public var readyAt: Double?
        /// Asked to stop and not to be replaced (scale down, rolling restart, master stop).
        public var retiring = false
        /// Asked to stop by forkwatch (any reason): its exit is expected.
        public var stopRequested = false
        /// execve failed in this child (errno); its exit is a boot error.
        public var execErrno: Int32?
        /// Why its replacement will be forked (a reload's SIGTERM: `.reload`).
        public var replacedFor: ForkReason?
        public var restarts: Int
        /// Its place among its service's live workers (0, 1, …): the lowest free one at its fork,
        /// so a replacement takes the place of the worker it replaces.
        public var slot = 0
    }

    public struct Service: Sendable, Hashable {
        public var spec: ServiceSpec
        public var state: ServiceState = .running
        public var throttle: ForkThrottle
        public var generation = 1
        public var quickDeaths = 0
        /// Deaths of running workers since launch (the dashboard's RST column).
        public var restarts = 0
        /// Forks asked for whose `forked`/`forkFailed` has not come back yet.
        public var forksInFlight = 0
        /// A fork the throttle delayed, due at this time, and why it is wanted.
        public var pendingForkAt: Double?
        public var pendingForkReason: ForkReason = .respawn
        /// When the service went crash-looping: only a worker forked since then that outlives
        /// boot_window ends the crash loop (an old healthy worker proves nothing).
        public var crashLoopSince: Double?
        /// The worker count the configuration file asked for, so a reload rescales only when
        /// the file changed it (not undoing a TTIN or a scale request).
        public var configuredWorkers: Int
        public var rolling: RollingRestart?
        /// A reload's file no longer names it: its workers are stopping and none is replaced;
        /// it leaves the table with the last one. `killAt`: when survivors get SIGKILL (nil:
        /// never, or already sent).
        public var removal: Removal?
    }

    public struct Removal: Sendable, Hashable {
        public var killAt: Double?
    }

    public enum Phase: Sendable, Hashable {
        case running
        /// `killAt`: when survivors get SIGKILL (nil: never, or already sent).
        case stopping(mode: StopMode, killAt: Double?, exitCode: Int32)
        case exited
    }

    /// The launcher's options. Its services live in `services[].spec` only (one home for each
    /// spec: a scale changes it there, and every reader, a new worker included, sees the change).
    private var options: LauncherConfiguration
    /// The options with the live service specs.
    public var configuration: LauncherConfiguration {
        var configuration = options
        configuration.services = services.map(\.spec)
        return configuration
    }
    public private(set) var services: [Service]
    public private(set) var workers: [Int32: Worker] = [:]
    public private(set) var phase: Phase = .running
    public struct TaskKey: Hashable, Sendable {
        public let service: String
        public let task: String
    }
    /// Periodic-task totals per (service, task), from every worker's reports.
    public private(set) var taskTimings: [TaskKey: TaskTimings] = [:]

    public init(configuration: LauncherConfiguration) {
        options = configuration
        options.services = []
        self.services = configuration.services.map {
            Service(
                spec: $0, throttle: ForkThrottle(interval: configuration.forkThrottleInterval),
                configuredWorkers: $0.workers)
        }
    }

    // MARK: - Queries

    public func service(named name: String) -> Service? { services.first { $0.spec.name == name } }

    public func workers(of service: String) -> [Worker] {
        workers.values.filter { $0.service == service }.sorted {
            $0.forkedAt < $1.forkedAt || ($0.forkedAt == $1.forkedAt && $0.pid < $1.pid)
        }
    }

    /// The earliest time at which `tick(now:)` has something to do.
    public var nextDeadline: Double? {
        var deadlines: [Double] = []
        if case .stopping(_, let killAt?, _) = phase { deadlines.append(killAt) }
        for service in services {
            if let at = service.pendingForkAt { deadlines.append(at) }
            if let at = service.removal?.killAt { deadlines.append(at) }
            if service.state == .crashLooping, let since = service.crashLoopSince {
                for worker in workers.values where worker.service == service.spec.name && worker.forkedAt >= since {
                    deadlines.append(worker.forkedAt + options.bootWindow)
                }
            }
        }
        return deadlines.min()
    }

    // MARK: - Inputs

    /// The first forks of every service.
    public mutating func start(now: Double) -> [Action] {
        var actions: [Action] = []
        for index in services.indices { actions += reconcile(index, now: now, reason: .initial) }
        return actions
    }

    /// A fork for `service` succeeded.
    public mutating func forked(pid: Int32, service name: String, reason: ForkReason, now: Double) -> [Action] {
        guard let index = index(of: name) else { return [] }
        services[index].forksInFlight = max(0, services[index].forksInFlight - 1)
        let slot = freeSlot(of: name)
        workers[pid] = Worker(
            pid: pid, service: name, generation: services[index].generation, forkedAt: now,
            restarts: services[index].restarts)
        workers[pid]!.slot = slot
        services[index].rolling?.forked(pid: pid)
        let forkEvent = Action.emit(
            .fork(pid: pid, service: name, reason: reason, generation: services[index].generation))
        guard services[index].removal == nil else {
            // Queued before a reload dropped its service: stopped like the others.
            workers[pid]!.retiring = true
            workers[pid]!.stopRequested = true
            return [
                forkEvent,
                .signal(
                    pid: pid, signal: .term, reason: "reload: \(name) is no longer in the configuration",
                    origin: "master"),
            ]
        }
        return [forkEvent]
    }

    /// Why `service` may not go to `count` workers, or nil: the one declared range of a worker
    /// count, and `max_workers` for all services together (a TTIN or a scale request past
    /// either is refused, not forked). An unknown service is the caller's to report.
    public func scaleRefusal(service name: String, to count: Int) -> String? {
        if let problem = Settings.workers.check(count) { return problem }
        guard let from = service(named: name)?.spec.workers, count > from else { return nil }
        return options.checkTotalWorkers(services.reduce(0) { $0 + $1.spec.workers } - from + count)
    }

    /// The slot the next worker of `service` gets: the lowest one no live worker holds.
    public func freeSlot(of service: String) -> Int {
        let taken = Set(workers.values.lazy.filter { $0.service == service }.map(\.slot))
        return (0...taken.count).first { !taken.contains($0) }!
    }

    /// A fork failed (EAGAIN, ENOMEM) or was refused: try again after the throttle interval.
    public mutating func forkFailed(service name: String, reason: ForkReason = .respawn, now: Double) -> [Action] {
        guard let index = index(of: name) else { return [] }
        services[index].forksInFlight = max(0, services[index].forksInFlight - 1)
        services[index].rolling?.forkFailed()
        if services[index].pendingForkAt == nil, phase == .running {
            services[index].pendingForkAt = now + max(options.forkThrottleInterval, 0.1)
            services[index].pendingForkReason = reason
        }
        return []
    }

    /// The child reported readiness on its status pipe (or, for a command, its exec succeeded).
    public mutating func childReady(pid: Int32, now: Double) -> [Action] {
        guard var worker = workers[pid], worker.readyAt == nil else { return [] }
        worker.readyAt = now
        workers[pid] = worker
        var actions: [Action] = [.emit(.ready(pid: pid, service: worker.service, after: now - worker.forkedAt))]
        if let index = index(of: worker.service), var rolling = services[index].rolling,
            let step = rolling.ready(pid: pid, isServing: { workers[$0].map { !$0.retiring } ?? false })
        {
            if let old = step.retire {
                workers[old]?.retiring = true
                workers[old]?.stopRequested = true
                actions.append(
                    .emit(
                        .rollingStep(
                            service: worker.service, newPid: pid, oldPid: old, remaining: rolling.remaining.count)))
                actions.append(
                    .signal(
                        pid: old, signal: .term, reason: "rolling restart: replacement \(pid) is ready",
                        origin: "master"))
            }
            services[index].rolling = step.isDone ? nil : rolling
            if step.isDone { actions.append(.emit(.rollingDone(service: worker.service))) }
            actions += reconcile(index, now: now, reason: .rolling)
        }
        return actions
    }

    /// The child's execve failed with `errno`.
    public mutating func execFailed(pid: Int32, errno: Int32, message: String, now: Double) -> [Action] {
        guard var worker = workers[pid] else { return [] }
        worker.execErrno = errno
        workers[pid] = worker
        return [.emit(.execFailed(pid: pid, service: worker.service, errno: errno, message: message))]
    }

    /// A worker reported one run of a periodic task.
    public mutating func taskRan(
        pid: Int32, task: String, started: Double, duration: Double, ok: Bool, error: String?,
        nextDue: Double?, spacing: Double
    ) -> [Action] {
        guard let worker = workers[pid] else { return [] }
        let key = TaskKey(service: worker.service, task: task)
        taskTimings[key, default: TaskTimings()].record(
            duration: duration, ok: ok, error: error, nextDue: nextDue, spacing: spacing)
        return [
            .emit(
                .taskRun(
                    pid: pid, service: worker.service, task: task, started: started, duration: duration,
                    ok: ok, error: error, nextDue: nextDue, timings: taskTimings[key]!))
        ]
    }

    /// A worker reported a heartbeat into the services table.
    public mutating func heartbeat(pid: Int32, ok: Bool, reportCount: Int?, error: String?) -> [Action] {
        guard let worker = workers[pid] else { return [] }
        return [.emit(.heartbeat(pid: pid, service: worker.service, ok: ok, reportCount: reportCount, error: error))]
    }

    /// A worker asked for a line in the event stream (its RPC broker lost, found again).
    public mutating func workerNotice(pid: Int32, message: String) -> [Action] {
        guard let worker = workers[pid] else { return [] }
        return [.emit(.notice(message: "\(pid) \(worker.service): \(message)"))]
    }

    /// A worker's RPC server reported its counters.
    public mutating func rpcStats(pid: Int32, topic: String, methods: [RPCMethodStats]) -> [Action] {
        guard let worker = workers[pid] else { return [] }
        return [.emit(.rpcStats(pid: pid, service: worker.service, topic: topic, methods: methods))]
    }

    /// waitpid reported `pid` gone with `rawStatus`.
    public mutating func childExited(pid: Int32, rawStatus: Int32, now: Double) -> [Action] {
        let status = TerminationStatus(waitStatus: rawStatus)
        guard let worker = workers.removeValue(forKey: pid) else {
            return [
                .emit(
                    .exit(pid: pid, service: nil, status: status, rawStatus: rawStatus, uptime: nil, expected: false)),
                .emit(.notice(message: "reaped pid \(pid), which is not a worker of this master")),
            ]
        }
        let uptime = now - worker.forkedAt
        var actions: [Action] = [
            .emit(
                .exit(
                    pid: pid, service: worker.service, status: status, rawStatus: rawStatus,
                    uptime: uptime, expected: worker.stopRequested))
        ]
        guard let index = index(of: worker.service) else { return actions }

        services[index].rolling?.exited(pid: pid)
        if services[index].removal != nil, phase == .running {
            if !workers.values.contains(where: { $0.service == worker.service }) {
                services.remove(at: index)
                actions.append(.emit(.serviceRemoved(service: worker.service)))
            }
            return actions + exitIfAllFailed()
        }

        switch phase {
        case .running:
            if !worker.stopRequested { services[index].restarts += 1 }
            actions += judgeExit(index, worker: worker, status: status, uptime: uptime)
            actions += reconcile(index, now: now, reason: worker.replacedFor ?? (worker.retiring ? .scale : .respawn))
        case .stopping(_, _, let code):
            if workers.isEmpty {
                phase = .exited
                actions += [.emit(.stopped(exitCode: code)), .exit(code: code)]
            }
        case .exited:
            break
        }
        actions += exitIfAllFailed()
        return actions
    }

    /// A signal reached the master.
    public mutating func signalReceived(_ signal: Signal, senderPid: Int32, now: Double) -> [Action] {
        var actions: [Action] = [.emit(.signalReceived(signal: signal, senderPid: senderPid))]
        switch (signal, phase) {
        case (.term, .running):
            actions += stop(mode: .graceful, now: now)
        case (.int, .running):
            actions += stop(mode: .fast, now: now)
        case (.term, .stopping), (.int, .stopping):
            actions += stop(mode: .immediate, now: now)
        case (.hup, .running):
            actions.append(.reloadConfiguration)
        case (.ttin, .running) where senderPid == 0, (.ttou, .running) where senderPid == 0:
            // The kernel's job-control signal (a process in the group touched the terminal from
            // the background), not a person's kill -TTIN: scaling on it would fork without end.
            actions.append(
                .emit(
                    .notice(
                        message:
                            "\(signal.name) from the kernel (terminal job control) ignored; scale with kill -\(signal.name == "SIGTTIN" ? "TTIN" : "TTOU") from a shell"
                    )))
        case (.ttin, .running), (.ttou, .running):
            actions += scaleBySignal(signal, senderPid: senderPid, now: now)
        case (.usr1, _):
            actions.append(.reopenLog)
            // gunicorn's USR1: the workers reopen the log file too. Built-in Swift workers only:
            // SIGUSR1's default action ends most programs a command could be.
            if options.logFile != nil {
                for worker in workers.values.sorted(by: { $0.pid < $1.pid }) {
                    guard case .builtin = service(named: worker.service)?.spec.program else { continue }
                    actions.append(
                        .signal(pid: worker.pid, signal: .usr1, reason: "reopen the log file", origin: "master"))
                }
            }
        case (_, .stopping):
            actions.append(.emit(.notice(message: "\(signal.name) ignored: the master is stopping")))
        default:
            break
        }
        return actions
    }

    /// SIGTTIN / SIGTTOU: one worker more or less for `scale_signal_service`, else the first
    /// service (and the scale event says which rule chose it).
    private mutating func scaleBySignal(_ signal: Signal, senderPid: Int32, now: Double) -> [Action] {
        let chosen = options.scaleSignalService
        guard let target = chosen.flatMap({ service(named: $0) }) ?? services.first(where: { $0.removal == nil }) else {
            return []
        }
        let name = target.spec.name
        let count = target.spec.workers + (signal == .ttin ? 1 : -1)
        guard count >= 1 else {
            return [.emit(.notice(message: "\(signal.name) ignored: \(name) has 1 worker, the fewest it can have"))]
        }
        let which =
            chosen == nil
            ? "\(name) is the first service; scale_signal_service names another" : "scale_signal_service is \(name)"
        return scale(service: name, to: count, reason: "\(signal.name) from pid \(senderPid); \(which)", now: now)
    }

    /// Timers: throttled forks now due, the stop deadline, crash-loop recovery.
    public mutating func tick(now: Double) -> [Action] {
        var actions: [Action] = []
        if case .stopping(let mode, let killAt?, let code) = phase, now >= killAt {
            phase = .stopping(mode: mode, killAt: nil, exitCode: code)
            let reason =
                mode == .graceful
                ? "graceful_shutdown_timeout (\(JSONObject.number(options.gracefulShutdownTimeout, decimals: 1)) s) expired"
                : "fast stop: workers still alive 1 s after SIGINT"
            actions += killAll(reason: reason)
        }
        for index in services.indices {
            if let killAt = services[index].removal?.killAt, now >= killAt {
                services[index].removal?.killAt = nil
                let name = services[index].spec.name
                let reason =
                    "\(name) was removed by a reload and graceful_shutdown_timeout "
                    + "(\(JSONObject.number(options.gracefulShutdownTimeout, decimals: 1)) s) expired"
                actions += workers(of: name).map {
                    .signal(pid: $0.pid, signal: .kill, reason: reason, origin: "master")
                }
            }
            if let due = services[index].pendingForkAt, now >= due {
                let reason = services[index].pendingForkReason
                services[index].pendingForkAt = nil
                if phase == .running, services[index].state != .failed, deficit(index) > 0 {
                    services[index].throttle.record(forkAt: now)
                    actions += forkAction(index, reason: reason)
                }
                actions += reconcile(index, now: now, reason: reason)
            }
            if services[index].state == .crashLooping, let since = services[index].crashLoopSince {
                let name = services[index].spec.name
                if workers.values.contains(where: {
                    $0.service == name && $0.forkedAt >= since && now - $0.forkedAt >= options.bootWindow
                }) {
                    services[index].state = .running
                    services[index].crashLoopSince = nil
                    services[index].quickDeaths = 0
                    actions.append(
                        .emit(
                            .serviceState(
                                service: name, state: .running,
                                reason:
                                    "a worker has stayed up longer than boot_window (\(JSONObject.number(options.bootWindow, decimals: 1)) s)"
                            )))
                }
            }
        }
        return actions
    }

    /// A stop asked for over the control socket: like the signals, a second request escalates.
    public mutating func requestStop(mode: StopMode, now: Double) -> [Action] {
        switch phase {
        case .running: return stop(mode: mode, now: now)
        case .stopping: return mode == .graceful ? [] : stop(mode: .immediate, now: now)
        case .exited: return []
        }
    }

    /// Sets a service's worker count: forks the missing ones, retires the oldest extra ones.
    public mutating func scale(service name: String, to count: Int, reason: String, now: Double) -> [Action] {
        guard phase == .running, let index = index(of: name) else { return [] }
        if services[index].removal != nil {
            return [.emit(.notice(message: "scale \(name): the service is being removed (a reload dropped it)"))]
        }
        if let problem = scaleRefusal(service: name, to: count) {
            return [.emit(.notice(message: "scale \(name): \(problem)"))]
        }
        let from = services[index].spec.workers
        guard from != count else { return [] }
        services[index].spec.workers = count
        var actions: [Action] = [.emit(.scale(service: name, from: from, to: count, reason: reason))]
        var excess = -deficit(index)
        if services[index].rolling != nil { excess -= 1 }
        for worker in workers(of: name) where excess > 0 && !worker.retiring {
            workers[worker.pid]?.retiring = true
            workers[worker.pid]?.stopRequested = true
            actions.append(
                .signal(pid: worker.pid, signal: .term, reason: "scale \(name) \(from) → \(count)", origin: "master"))
            excess -= 1
        }
        actions += reconcile(index, now: now, reason: .scale)
        return actions
    }

    /// The configuration was re-read after SIGHUP (nil: the file could not be read, keep the old
    /// one and restart nothing). Restarts workers by `restart_method`.
    public mutating func applyReload(
        _ newConfiguration: LauncherConfiguration?, error: String?, now: Double
    ) -> [Action] {
        guard phase == .running else { return [] }
        if let error {
            return [.emit(.configError(message: "reload refused, keeping the running configuration: \(error)"))]
        }
        let plan = ReloadPlan(
            running: services.map { ReloadPlan.RunningService(spec: $0.spec, configuredWorkers: $0.configuredWorkers) },
            current: configuration, new: newConfiguration)
        // Everything else (nova's options for managed services) reaches the workers forked
        // from now on; the running services' counts stay the table's (see ReloadPlan).
        if let newConfiguration {
            options = newConfiguration
            options.services = []
        }
        for update in plan.updates {
            guard let index = index(of: update.service) else { continue }
            services[index].spec.program = update.program
            services[index].removal = nil  // named again before its last worker was gone
            services[index].throttle.interval = options.forkThrottleInterval
            if let count = update.configuredWorkers { services[index].configuredWorkers = count }
        }
        for spec in plan.added {
            services.append(
                Service(
                    spec: spec, throttle: ForkThrottle(interval: options.forkThrottleInterval),
                    configuredWorkers: spec.workers))
        }
        let method = options.restartMethod
        var actions: [Action] = [.emit(.reload(method: method, changes: plan.summary))]
        for name in plan.removed {
            actions += remove(name, now: now)
        }
        for index in services.indices where services[index].removal == nil {
            let name = services[index].spec.name
            if services[index].state != .running {
                services[index].state = .running
                services[index].quickDeaths = 0
                services[index].crashLoopSince = nil
                actions.append(.emit(.serviceState(service: name, state: .running, reason: "reload: respawning again")))
            }
            services[index].generation += 1
            actions += restart(index, by: method)
            if let count = plan.updates.first(where: { $0.service == name })?.scaleTo {
                actions += scale(
                    service: name, to: count, reason: "reload: workers changed in the configuration", now: now)
            }
            actions += reconcile(index, now: now, reason: method == .rolling ? .rolling : .reload)
        }
        return actions
    }

    /// A service the reloaded file no longer names: SIGTERM to its workers, none replaced,
    /// SIGKILL to survivors after graceful_shutdown_timeout (oslo's graceful stop, for one
    /// service); it leaves the table with its last worker.
    private mutating func remove(_ name: String, now: Double) -> [Action] {
        guard let index = index(of: name), services[index].removal == nil else { return [] }
        let timeout = options.gracefulShutdownTimeout
        services[index].removal = Removal(killAt: timeout > 0 ? now + timeout : nil)
        services[index].rolling = nil
        services[index].pendingForkAt = nil
        let running = workers(of: name)
        guard !running.isEmpty else {
            services.remove(at: index)
            return [.emit(.serviceRemoved(service: name))]
        }
        var actions: [Action] = []
        for worker in running {
            workers[worker.pid]?.stopRequested = true
            // One already retiring (a scale down, a rolling step) has had its SIGTERM.
            guard !worker.retiring else { continue }
            workers[worker.pid]?.retiring = true
            actions.append(
                .signal(
                    pid: worker.pid, signal: .term, reason: "reload: \(name) is no longer in the configuration",
                    origin: "master"))
        }
        return actions
    }

    /// A reload's restart of one service's workers (those not already retiring).
    private mutating func restart(_ index: Int, by method: RestartMethod) -> [Action] {
        let current = workers(of: services[index].spec.name).filter { !$0.retiring }
        switch method {
        case .mutate:
            return current.map {
                .signal(pid: $0.pid, signal: .hup, reason: "reload (mutate): reset in place", origin: "master")
            }
        case .reload:
            for worker in current {
                workers[worker.pid]?.stopRequested = true
                workers[worker.pid]?.replacedFor = .reload
            }
            return current.map {
                .signal(pid: $0.pid, signal: .term, reason: "reload: replaced when it exits", origin: "master")
            }
        default:
            services[index].rolling = RollingRestart(replacing: current.map(\.pid))
            return []
        }
    }

    // MARK: - Rules

    private func index(of name: String) -> Int? { services.firstIndex { $0.spec.name == name } }

    /// Workers wanted minus workers counted (retiring ones do not count; a rolling step wants one extra).
    private func deficit(_ index: Int) -> Int {
        let service = services[index]
        guard service.removal == nil else { return 0 }  // being removed: nothing is forked for it
        // Counted in place: this runs at least twice per exit, on the respawn path.
        var counted = service.forksInFlight
        for worker in workers.values where !worker.retiring && worker.service == service.spec.name { counted += 1 }
        let surge = service.rolling?.wantsSurge ?? false
        return service.spec.workers + (surge ? 1 : 0) - counted
    }

    private mutating func forkAction(_ index: Int, reason: ForkReason) -> [Action] {
        services[index].forksInFlight += 1
        if services[index].rolling?.claimSurgeFork() == true {
            return [.fork(service: services[index].spec.name, reason: .rolling)]
        }
        return [.fork(service: services[index].spec.name, reason: reason)]
    }

    /// Forks until the service has its workers, each fork through the throttle. A delayed fork
    /// becomes `pendingForkAt`, and the rest wait for it, as oslo's sequential sleeps would.
    private mutating func reconcile(_ index: Int, now: Double, reason: ForkReason) -> [Action] {
        guard phase == .running, services[index].state != .failed, services[index].pendingForkAt == nil else {
            return []
        }
        var actions: [Action] = []
        while deficit(index) > 0 {
            switch services[index].throttle.admit(now: now, workers: services[index].spec.workers) {
            case .forkNow:
                actions += forkAction(index, reason: reason)
            case .delay(let until, let forks, let span, let window):
                services[index].pendingForkAt = until
                services[index].pendingForkReason = reason
                actions.append(
                    .emit(
                        .throttle(
                            service: services[index].spec.name, forks: forks, span: span,
                            window: window, delay: until - now)))
                return actions
            }
        }
        return actions
    }

    private mutating func judgeExit(_ index: Int, worker: Worker, status: TerminationStatus, uptime: Double) -> [Action]
    {
        let name = worker.service
        if worker.stopRequested { return [] }
        if services[index].state == .failed { return [] }  // said once
        if let errno = worker.execErrno {
            services[index].state = .failed
            return [
                .emit(
                    .serviceState(
                        service: name, state: .failed,
                        reason: "execve failed (errno \(errno)): boot error, not respawning"))
            ]
        }
        if status == .exited(code: ExitCode.bootError) {
            services[index].state = .failed
            return [
                .emit(
                    .serviceState(
                        service: name, state: .failed,
                        reason: "worker \(worker.pid) exited with 3 (boot error): not respawning until a reload"))
            ]
        }
        if uptime < options.bootWindow {
            services[index].quickDeaths += 1
            if services[index].quickDeaths >= options.crashLoopThreshold, services[index].state == .running {
                services[index].state = .crashLooping
                services[index].crashLoopSince = worker.forkedAt + uptime
                return [
                    .emit(
                        .serviceState(
                            service: name, state: .crashLooping,
                            reason:
                                "\(services[index].quickDeaths) workers in a row died within boot_window (\(JSONObject.number(options.bootWindow, decimals: 1)) s) of their fork"
                        ))
                ]
            }
        } else if worker.forkedAt >= services[index].crashLoopSince ?? -.infinity {
            // Only a worker forked since the crash loop began proves the service boots again.
            services[index].quickDeaths = 0
            if services[index].state == .crashLooping {
                services[index].state = .running
                services[index].crashLoopSince = nil
                return [
                    .emit(
                        .serviceState(
                            service: name, state: .running,
                            reason: "worker \(worker.pid) lived \(JSONObject.number(uptime, decimals: 1)) s"))
                ]
            }
        }
        return []
    }

    private mutating func stop(mode: StopMode, now: Double) -> [Action] {
        var code: Int32 = mode == .graceful ? 0 : 1
        var wasStopping = false
        if case .stopping(_, _, let previous) = phase {
            code = max(code, previous)
            wasStopping = true
        }
        for index in services.indices {
            services[index].pendingForkAt = nil
            services[index].rolling = nil
        }
        let timeout: Double? =
            switch mode {
            case .graceful: options.gracefulShutdownTimeout > 0 ? options.gracefulShutdownTimeout : nil
            case .fast: 1
            case .immediate: nil
            }
        phase = .stopping(mode: mode, killAt: timeout.map { now + $0 }, exitCode: code)
        var actions: [Action] = [.emit(.stopping(mode: mode, timeout: timeout, workers: workers.count))]
        if mode == .immediate {
            actions += killAll(
                reason: wasStopping ? "second stop signal during a stop: escalating" : "immediate stop asked for")
        } else {
            let signal: Signal = mode == .graceful ? .term : .int
            for worker in workers.values.sorted(by: { $0.pid < $1.pid }) {
                workers[worker.pid]?.retiring = true
                workers[worker.pid]?.stopRequested = true
                actions.append(
                    .signal(pid: worker.pid, signal: signal, reason: "\(mode.rawValue) stop", origin: "master"))
            }
        }
        if workers.isEmpty {
            phase = .exited
            actions += [.emit(.stopped(exitCode: code)), .exit(code: code)]
        }
        return actions
    }

    private mutating func killAll(reason: String) -> [Action] {
        var actions: [Action] = [.emit(.escalate(reason: reason, survivors: workers.count))]
        for worker in workers.values.sorted(by: { $0.pid < $1.pid }) {
            workers[worker.pid]?.stopRequested = true
            actions.append(.signal(pid: worker.pid, signal: .kill, reason: reason, origin: "master"))
        }
        return actions
    }

    /// Nothing left to supervise: every service failed and its workers are gone.
    private mutating func exitIfAllFailed() -> [Action] {
        guard phase == .running, workers.isEmpty, !services.isEmpty, services.allSatisfy({ $0.state == .failed }) else {
            return []
        }
        phase = .exited
        return [.emit(.stopped(exitCode: ExitCode.bootError)), .exit(code: ExitCode.bootError)]
    }
}
