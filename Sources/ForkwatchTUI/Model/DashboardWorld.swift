import ForkwatchCore

/// What the master has told the dashboard, folded from its events: master, services, workers,
/// resource samples and the event log. This is the part a pause freezes; the keyboard state
/// lives in `DashboardModel`.
struct DashboardWorld: Sendable {
    enum Phase: Sendable, Equatable {
        case running
        /// `killAt`: when the master will SIGKILL the survivors (nil: never, or unknown).
        case stopping(mode: StopMode?, killAt: Double?)
        case escalated(survivors: Int)
        case stopped(exitCode: Int32?)
    }

    enum WorkerState: String, Sendable {
        case starting, ready, stopping, gone
    }

    struct Worker: Sendable {
        let pid: Int32
        let service: String
        var state: WorkerState
        let forkedAt: Double
        var readyAt: Double?
        /// The service's restart count when this worker was forked (the RST column).
        var restarts: Int
        /// How the worker this one replaced ended (the LAST column).
        var replacedExit: TerminationStatus?
        /// How this worker ended, once gone.
        var exit: TerminationStatus?
        var goneAt: Double?
    }

    struct Throttle: Sendable {
        let forks: Int
        let span: Double
        let window: Double
        let delay: Double
        let at: Double
    }

    struct Service: Sendable {
        let name: String
        /// The worker count the master aims for (nil until a snapshot, master_started or scale says).
        var wanted: Int?
        var state: ServiceState = .running
        var stateReason = ""
        var restarts = 0
        /// The throttle's seconds per worker (oslo: 1).
        var interval = 1.0
        /// The throttle's sliding window: the last `wanted + 1` fork times.
        var forkTimes: [Double] = []
        var pendingForkAt: Double?
        var lastThrottle: Throttle?
        var throttleCount = 0
        /// Fork times of the last couple of minutes, for the forks-per-second sparkline.
        var forkHistory: [Double] = []
        /// Exits not yet replaced by a fork, oldest first, to fill the new worker's LAST.
        var unreplacedExits: [(status: TerminationStatus, expected: Bool, at: Double)] = []
        var lastExit: (pid: Int32, status: TerminationStatus)?
        var rollingRemaining: Int?
    }

    /// The latest /proc sample of one process and its recent CPU%, for sparklines.
    struct Usage: Sendable {
        var sample: ProcessSample
        var cpuHistory: [Double]
    }

    static let goneLinger = 2.0
    static let historyLength = 120
    static let forkHistorySeconds = 120.0

    var masterPid: Int32?
    var startedAt: Double?
    var phase: Phase = .running
    var services: [Service] = []
    var workers: [Int32: Worker] = [:]
    var usage: [Int32: Usage] = [:]
    var log = EventLog()
    var now: Double = 0
    var lastReload: RestartMethod?
    /// Periodic-task totals per service and task, as the master keeps them.
    var tasks: [TaskRow] = []
    /// Listening sockets per service: address, backlog, the latest accept-queue depth and its history.
    var acceptQueues: [String: AcceptQueue] = [:]

    struct AcceptQueue: Sendable {
        var address: String
        var limit: Int
        var depth = 0
        var history: [Int] = []
    }

    /// The latest RPC counters of each worker that serves RPC (kept after it exits: totals stay).
    var rpc: [Int32: (service: String, topic: String, methods: [RPCMethodStats])] = [:]

    /// The last heartbeat per service: its report_count, or the error.
    var heartbeats: [String: (ok: Bool, reportCount: Int?, error: String?, at: Double)] = [:]

    struct TaskRow: Sendable {
        let service: String
        let task: String
        var timings: TaskTimings
    }
    /// Bumped when the set or order of worker rows may have changed (the selection re-checks).
    private(set) var rowsVersion = 0
    /// Workers shown as gone until `goneLinger` has passed (kept apart so that pruning costs
    /// nothing while nobody is dying).
    private var gonePids: Set<Int32> = []
    /// The same deaths in the order they came, so pruning looks only at those old enough
    /// (a burst of 20,000 exits must not be scanned again at every event).
    private var goneQueue: [(pid: Int32, at: Double)] = []
    private var goneQueueHead = 0

    // MARK: - Queries

    func service(named name: String) -> Service? { services.first { $0.name == name } }

    var aliveWorkers: Int { workers.values.filter { $0.state != .gone }.count }

    var wantedWorkers: Int {
        services.reduce(0) { sum, service in
            sum + (service.wanted ?? workers.values.filter { $0.service == service.name && $0.state != .gone }.count)
        }
    }

    func forks(within seconds: Double) -> Int {
        services.reduce(0) { $0 + $1.forkHistory.filter { now - $0 <= seconds && $0 <= now + 1e-9 }.count }
    }

    // MARK: - Folding events

    mutating func apply(_ event: Event) {
        now = max(now, event.mono)
        switch event.kind {
        case .stats(let samples):
            record(samples)
            return  // once a second: the WORKERS panel shows it, the log would drown in it
        case .taskRun(_, let service, let task, _, _, let ok, _, _, let timings):
            if let index = tasks.firstIndex(where: { $0.service == service && $0.task == task }) {
                tasks[index].timings = timings
            } else {
                tasks.append(TaskRow(service: service, task: task, timings: timings))
            }
            if ok { return }  // the PERIODIC TASKS panel shows runs; the log keeps the failures
        case .heartbeat(_, let service, let ok, let count, let error):
            heartbeats[service] = (ok, count, error, event.mono)
            if ok { return }
        case .rpcStats(let pid, let service, let topic, let methods):
            rpc[pid] = (service, topic, methods)
            return  // once a second per worker: the RPC panel shows it
        case .listening(let service, let address, let backlog):
            acceptQueues[service] = AcceptQueue(address: address, limit: backlog)
        case .acceptQueue(let service, let address, let depth, let limit):
            var queue = acceptQueues[service] ?? AcceptQueue(address: address, limit: limit)
            queue.depth = depth
            queue.limit = limit
            queue.history.append(depth)
            if queue.history.count > 60 { queue.history.removeFirst(queue.history.count - 60) }
            acceptQueues[service] = queue
            return  // once a second: the panel shows it
        case .snapshot(let snapshot):
            reset(to: snapshot)
        case .masterStarted(let pid, let specs, _):
            masterPid = pid
            startedAt = event.mono
            phase = .running
            for spec in specs { withService(spec.name) { $0.wanted = spec.workers } }
        case .fork(let pid, let name, let reason, _):
            forked(pid: pid, service: name, reason: reason, at: event.mono)
        case .forkFailed(let name, _, _):
            withService(name) { $0.pendingForkAt = event.mono + $0.interval }
        case .ready(let pid, _, _):
            if workers[pid]?.state == .starting { workers[pid]?.state = .ready }
            workers[pid]?.readyAt = event.mono
        case .exit(let pid, let name, let status, _, _, let expected):
            exited(pid: pid, service: name, status: status, expected: expected, at: event.mono)
        case .signalSent(let pid, _, let signal, _, _, let error):
            // HUP asks for a reset in place; the others end the worker.
            if error == nil, signal != .hup, let state = workers[pid]?.state, state != .gone {
                workers[pid]?.state = .stopping
            }
        case .throttle(let name, let forks, let span, let window, let delay):
            withService(name) {
                $0.lastThrottle = Throttle(forks: forks, span: span, window: window, delay: delay, at: event.mono)
                $0.throttleCount += 1
                $0.pendingForkAt = event.mono + delay
            }
        case .serviceState(let name, let state, let reason):
            withService(name) {
                $0.state = state
                $0.stateReason = reason
            }
        case .scale(let name, _, let to, _):
            withService(name) { $0.wanted = to }
        case .reload(let method, _):
            lastReload = method
        case .rollingStep(let name, _, let oldPid, let remaining):
            withService(name) { $0.rollingRemaining = remaining }
            if let state = workers[oldPid]?.state, state != .gone { workers[oldPid]?.state = .stopping }
        case .rollingDone(let name):
            withService(name) { $0.rollingRemaining = nil }
        case .stopping(let mode, let timeout, _):
            phase = .stopping(mode: mode, killAt: timeout.map { event.mono + $0 })
            for index in services.indices { services[index].pendingForkAt = nil }
        case .escalate(_, let survivors):
            phase = .escalated(survivors: survivors)
        case .stopped(let code):
            phase = .stopped(exitCode: code)
        case .serviceRemoved(let name):
            services.removeAll { $0.name == name }
            tasks.removeAll { $0.service == name }
        case .forkRefused, .execFailed, .signalReceived, .configError, .logReopened, .notice, .subscriberDropped:
            break
        }
        log.append(event)
        pruneGone()
    }

    /// The clock moved: gone workers leave the list after a short while.
    mutating func advance(to mono: Double) {
        now = mono
        pruneGone()
    }

    private mutating func forked(pid: Int32, service name: String, reason: ForkReason, at time: Double) {
        var replaced: TerminationStatus?
        withService(name) { service in
            replaced = Self.takeReplacedExit(from: &service, reason: reason, at: time)
            service.forkTimes.append(time)
            let keep = (service.wanted ?? service.forkTimes.count) + 1
            if service.forkTimes.count > keep { service.forkTimes.removeFirst(service.forkTimes.count - keep) }
            service.forkHistory.append(time)
            // Oldest first: drop the prefix that has aged out (not a scan of all 4096 at every fork).
            let aged = service.forkHistory.prefix { time - $0 > Self.forkHistorySeconds }.count
            if aged > 0 { service.forkHistory.removeFirst(aged) }
            if service.forkHistory.count > 4096 { service.forkHistory.removeFirst(service.forkHistory.count - 4096) }
            // The master forks nothing while a throttled fork is pending: this fork is that one.
            service.pendingForkAt = nil
        }
        let restarts = service(named: name)?.restarts ?? 0
        gonePids.remove(pid)  // a recycled pid replaces a row still shown as gone
        workers[pid] = Worker(
            pid: pid, service: name, state: .starting, forkedAt: time, restarts: restarts,
            replacedExit: replaced)
        rowsVersion += 1
    }

    /// A respawn replaces an unexpected death, a reload fork replaces a worker forkwatch stopped;
    /// initial, scale and rolling forks add a worker and replace nobody.
    private static func takeReplacedExit(
        from service: inout Service, reason: ForkReason, at time: Double
    ) -> TerminationStatus? {
        service.unreplacedExits.removeAll { time - $0.at > 60 }
        let wantExpected: Bool
        switch reason {
        case .respawn: wantExpected = false
        case .reload: wantExpected = true
        case .initial, .scale, .rolling: return nil
        }
        let index =
            service.unreplacedExits.firstIndex { $0.expected == wantExpected } ?? service.unreplacedExits.indices.first
        guard let index else { return nil }
        return service.unreplacedExits.remove(at: index).status
    }

    private mutating func exited(
        pid: Int32, service name: String?, status: TerminationStatus, expected: Bool, at time: Double
    ) {
        guard let name else { return }  // a reaped stranger: logged, not a row
        if workers[pid] != nil {
            gonePids.insert(pid)
            goneQueue.append((pid, time))
            workers[pid]?.state = .gone
            workers[pid]?.exit = status
            workers[pid]?.goneAt = time
        }
        let running = phase == .running
        withService(name) { service in
            if running && !expected { service.restarts += 1 }
            service.lastExit = (pid, status)
            service.unreplacedExits.append((status, expected, time))
            if service.unreplacedExits.count > 64 { service.unreplacedExits.removeFirst() }
        }
    }

    private mutating func record(_ samples: [ProcessSample]) {
        for sample in samples {
            var entry = usage[sample.pid] ?? Usage(sample: sample, cpuHistory: [])
            entry.sample = sample
            entry.cpuHistory.append(sample.cpuPercent)
            if entry.cpuHistory.count > Self.historyLength { entry.cpuHistory.removeFirst() }
            usage[sample.pid] = entry
        }
    }

    private mutating func reset(to snapshot: Snapshot) {
        let old = self
        tasks = snapshot.tasks.map { TaskRow(service: $0.service, task: $0.task, timings: $0.timings) }
        masterPid = snapshot.masterPid
        startedAt = snapshot.startedAt
        phase =
            switch snapshot.phase {
            case "stopping": .stopping(mode: nil, killAt: nil)
            case "exited": .stopped(exitCode: nil)
            default: .running
            }
        services = snapshot.services.map { info in
            var service = old.service(named: info.name) ?? Service(name: info.name)
            service.wanted = info.workers
            service.state = info.state
            service.restarts = info.restarts
            service.interval = info.throttleInterval
            service.forkTimes = info.forkTimes
            service.pendingForkAt = info.pendingForkAt
            if service.forkHistory.isEmpty { service.forkHistory = info.forkTimes }
            return service
        }
        workers = [:]
        gonePids = []
        goneQueue = []
        goneQueueHead = 0
        for info in snapshot.workers {
            let state: WorkerState = info.retiring ? .stopping : info.readyAt == nil ? .starting : .ready
            workers[info.pid] = Worker(
                pid: info.pid, service: info.service, state: state, forkedAt: info.forkedAt,
                readyAt: info.readyAt, restarts: info.restarts,
                replacedExit: old.workers[info.pid]?.replacedExit)
        }
        usage = usage.filter { workers[$0.key] != nil || $0.key == snapshot.masterPid }
        rowsVersion += 1
    }

    private mutating func pruneGone() {
        guard !gonePids.isEmpty else {
            goneQueue.removeAll(keepingCapacity: true)
            goneQueueHead = 0
            return
        }
        var removed = false
        while goneQueueHead < goneQueue.count, now - goneQueue[goneQueueHead].at >= Self.goneLinger {
            let pid = goneQueue[goneQueueHead].pid
            goneQueueHead += 1
            // The pid may have been forked again (and be alive, or gone later: a later entry).
            guard gonePids.contains(pid) else { continue }
            if let worker = workers[pid], now - (worker.goneAt ?? now) < Self.goneLinger { continue }
            gonePids.remove(pid)
            workers[pid] = nil
            usage[pid] = nil
            removed = true
        }
        if goneQueueHead > 1024 && goneQueueHead * 2 > goneQueue.count {
            goneQueue.removeFirst(goneQueueHead)
            goneQueueHead = 0
        }
        if removed { rowsVersion += 1 }
    }

    /// Runs `change` on the named service, creating it (in order of appearance) if new.
    private mutating func withService(_ name: String, _ change: (inout Service) -> Void) {
        if let index = services.firstIndex(where: { $0.name == name }) {
            change(&services[index])
        } else {
            var service = Service(name: name)
            change(&service)
            services.append(service)
            rowsVersion += 1
        }
    }
}
