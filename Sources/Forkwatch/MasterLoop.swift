import CForkwatch
import ForkwatchCore

/// The master: one thread, one poll(2) loop, one switch. It waits on the signalfd, one status
/// pipe per child and the table's next deadline; it never sleeps and never busy-polls.
/// Decisions are `WorkerTable`'s; this file performs them.
final class MasterLoop {
    /// Everything that can wake the master, as one enum handled in `handle(_:)`.
    enum Input {
        case signal(Signal, sender: Int32)
        case childExited(pid: Int32, rawStatus: Int32)
        case childMessage(pid: Int32, ChildMessage)
        case childPipeClosed(pid: Int32)
        case control(client: Int32, request: ControlRequest)
        case timer
    }

    /// The master's end of a child's status pipe.
    private struct ChildPipe {
        let fd: Int32
        let isCommand: Bool
        var lines = LineFramer(maxLineBytes: ChildMessage.maxLineBytes)
        var execFailed = false
    }

    static let masterSignals: [Signal] = [.chld, .term, .int, .hup, .ttin, .ttou, .usr1]

    private var table: WorkerTable
    private let sink: EventSink
    private let reloadConfiguration: (() throws -> LauncherConfiguration)?
    private let registry: ServiceRegistry
    private let masterPID = Posix.getpid()
    private var signalFD: Int32 = -1
    private var deathPipe: (read: Int32, write: Int32) = (-1, -1)
    private var pipes: [Int32: ChildPipe] = [:]
    private var exitCode: Int32?
    private let control: ControlServer?
    private let stats = StatsSampler()
    private var nextStatsAt: Double?
    private let startedAt = Posix.monotonicNow()
    /// The single-thread check before every fork (and before the page release).
    private let threadCounter = Posix.ThreadCounter()
    /// Events of the current pass, written out after its forks: a respawn does not wait for
    /// the exit's log line and JSON (order and timestamps are kept).
    private var pendingEvents: [Event] = []
    /// Listening sockets by service, bound before the first fork and kept across reloads.
    private let listeners: [String: (fd: Int32, address: String, backlog: Int)]
    private var acceptLocks: [String: Int32] = [:]
    /// Forks the table asked for, done after the reap loop and the other inputs of a pass, at
    /// most `forksPerPass` a pass: reaping never forks, so a crash loop (with no throttle, a
    /// child that dies as fast as it is forked) can never keep the master from its signals.
    private var forkQueue: [(service: String, reason: ForkReason)] = []
    private static let forksPerPass = 64
    /// Seconds of control requests a pass may spend before the loop looks at signals again.
    private static let controlBudget = 0.0005
    /// How long requests left over from a pass wait in poll: with the budget, a flood gets a
    /// fifth of the master's time at most, and the master mostly sleeps, so a SIGCHLD finds it
    /// asleep and the scheduler runs it at once.
    private static let controlPause = 0.002
    /// The workers' process groups and what they leave behind.
    private let groups: WorkerGroups
    /// The cgroup every worker joins, when one was given.
    private let cgroup: WorkersCgroup?
    /// End what a SIGKILLed predecessor on this socket path left (its workers' children).
    private let killPredecessorsLeftovers: Bool
    /// The worker count last written into each accept lock's memfd (its workers read it).
    private var publishedWorkers: [String: Int] = [:]

    init(
        configuration: LauncherConfiguration, sink: EventSink, control: ControlServer?,
        listeners: [String: (fd: Int32, address: String, backlog: Int)] = [:],
        registry: ServiceRegistry, reloadConfiguration: (() throws -> LauncherConfiguration)?,
        killPredecessorsLeftovers: Bool, cgroup: WorkersCgroup?
    ) {
        self.cgroup = cgroup
        groups = WorkerGroups(statePath: control.map { $0.path + ".groups" })
        self.killPredecessorsLeftovers = killPredecessorsLeftovers
        self.listeners = listeners
        self.table = WorkerTable(configuration: configuration)
        self.sink = sink
        self.control = control
        self.registry = registry
        self.reloadConfiguration = reloadConfiguration
    }

    /// Once a second while someone watches (a subscriber or an events file); never otherwise,
    /// so an unwatched master does not wake at all.
    private var statsWanted: Bool { (control?.subscriberCount ?? 0) > 0 || sink.writesEvents }

    /// Runs until the table says exit; returns the exit code.
    func run() throws -> Int32 {
        // Blocked before anything else, so no signal can take its default action (SIGTTOU would
        // stop us, SIGHUP kill us) and every one is read from the signalfd instead.
        try Posix.block(Self.masterSignals)
        Posix.ignoreBrokenPipes()
        // Whatever a worker leaves behind is re-parented here, reaped, and stopped with it.
        try Posix.becomeChildSubreaper()
        signalFD = try Posix.signalFD(Self.masterSignals)
        deathPipe = try Posix.pipe(nonblockingRead: false)
        defer {
            Posix.close(signalFD)
            Posix.close(deathPipe.read)
            Posix.close(deathPipe.write)
            for pipe in pipes.values { Posix.close(pipe.fd) }
            flushEvents()
            control?.close()
            for listener in listeners.values { Posix.close(listener.fd) }
            for lock in acceptLocks.values { Posix.close(lock) }
            // Nothing a worker started outlives the master's stop.
            groups.killAll(workers: table.workers.keys)
            cgroup?.killAll()
        }
        // One accept lock per socket: a Swift worker accepts only while it holds it (nginx's
        // accept_mutex), so exactly one worker is woken per connection. The master never takes it.
        for service in listeners.keys { acceptLocks[service] = try Posix.anonymousFile("forkwatch-accept-\(service)") }
        Posix.releaseFreeMemory()
        emit(
            .masterStarted(pid: masterPID, services: table.services.map(\.spec), config: describe(table.configuration)))
        for found in [
            groups.endPredecessorsLeftovers(kill: killPredecessorsLeftovers),
            cgroup?.endPredecessorsLeftovers(kill: killPredecessorsLeftovers),
        ] {
            if let found { emit(.notice(message: found)) }
        }
        for (service, listener) in listeners.sorted(by: { $0.key < $1.key }) {
            emit(.listening(service: service, address: listener.address, backlog: listener.backlog))
        }
        publishWorkerCounts()
        perform(table.start(now: Posix.monotonicNow()))
        runQueuedForks(limit: forkQueue.count, reapBetween: false)  // the first workers, all before the first poll
        flushEvents()
        warmUpLoopPaths()
        // From here on the master runs its loop's few paths: the code start-up ran once is unmapped.
        // (The data segments' too when single-threaded, as a master is unless a library user's
        // program started threads: then no fork happened either.)
        Posix.releaseFilePages(includeWritable: threadCounter.count() == 1)

        while exitCode == nil {
            let pids = Array(pipes.keys)
            let controlSet = control?.pollSet ?? []
            let watched = [(signalFD, Int16(POLLIN))] + controlSet + pids.map { (pipes[$0]!.fd, Int16(POLLIN)) }
            let revents = try Posix.poll(watched, timeout: nextDeadline().map { max(0, $0 - Posix.monotonicNow()) })
            // Signals and reaps first, then respawns, and only then the control socket, whose
            // work per pass is bounded: a flooding client costs latency to itself only.
            if revents[0] != 0 { drainSignals() }
            var forkBudget = Self.forksPerPass
            forkBudget -= runQueuedForks(limit: forkBudget)
            if let control {
                for (index, entry) in controlSet.enumerated() where revents[index + 1] != 0 {
                    control.handle(fd: entry.fd, revents: revents[index + 1])
                }
                // At most half a millisecond of requests a pass, then back to the signals.
                let until = Posix.monotonicNow() + Self.controlBudget
                control.beginRequests()
                while exitCode == nil, Posix.monotonicNow() < until, let (client, request) = control.nextRequest() {
                    switch request {
                    case .success(let request): handle(.control(client: client, request: request))
                    case .failure(let error): control.send(client, error.line)
                    }
                }
                for notice in control.takeNotices() { emit(.notice(message: notice)) }
                for dropped in control.takeDropped() {
                    emit(.subscriberDropped(pid: dropped.pid, queued: dropped.queued, limit: dropped.limit))
                }
            }
            let offset = 1 + controlSet.count
            for (index, pid) in pids.enumerated() where revents[offset + index] != 0 && exitCode == nil {
                readPipe(of: pid)
            }
            if exitCode == nil { handle(.timer) }
            runQueuedForks(limit: forkBudget)
            publishWorkerCounts()
            groups.saveIfChanged(workers: table.workers.keys)
            flushEvents()
            control?.finishPass()
        }
        return exitCode!
    }

    // MARK: - The one switch

    private func handle(_ input: Input) {
        let now = Posix.monotonicNow()
        switch input {
        case .signal(let signal, let sender):
            perform(table.signalReceived(signal, senderPid: sender, now: now))
        case .childExited(let pid, let rawStatus):
            perform(table.childExited(pid: pid, rawStatus: rawStatus, now: now))
        case .childMessage(let pid, let message):
            switch message {
            case .ready:
                perform(table.childReady(pid: pid, now: now))
            case .execFailed(let errno):
                pipes[pid]?.execFailed = true
                perform(table.execFailed(pid: pid, errno: errno, message: Posix.describe(errno: errno), now: now))
            case .taskRan(let run):
                perform(
                    table.taskRan(
                        pid: pid, task: run.task, started: run.started, duration: run.duration, ok: run.ok,
                        error: run.error, nextDue: run.nextDue, spacing: run.spacing))
            case .heartbeat(let ok, let reportCount, let error):
                perform(table.heartbeat(pid: pid, ok: ok, reportCount: reportCount, error: error))
            case .rpcStats(let topic, let methods):
                perform(table.rpcStats(pid: pid, topic: topic, methods: methods))
            case .notice(let text):
                perform(table.workerNotice(pid: pid, message: text))
            }
        case .childPipeClosed(let pid):
            // A command's close-on-exec status pipe closes at a successful execve: it is running.
            if let pipe = pipes.removeValue(forKey: pid) {
                Posix.close(pipe.fd)
                if pipe.isCommand && !pipe.execFailed { perform(table.childReady(pid: pid, now: now)) }
            }
        case .control(let client, let request):
            answer(request, from: client, now: now)
        case .timer:
            perform(table.tick(now: now))
            sampleStatsIfDue(now: now)
        }
    }

    private func nextDeadline() -> Double? {
        if statsWanted, nextStatsAt == nil { nextStatsAt = Posix.monotonicNow() }
        if !statsWanted { nextStatsAt = nil }
        let now = Posix.monotonicNow()
        if !forkQueue.isEmpty { return now }  // more forks due: poll, then go on
        // Requests read and not answered wait `controlPause` (see there).
        let unanswered = control?.hasUnansweredLines == true ? now + Self.controlPause : nil
        return [table.nextDeadline, nextStatsAt, control?.acceptPausedUntil, control?.nextDeadline, unanswered]
            .compactMap { $0 }.min()
    }

    private func sampleStatsIfDue(now: Double) {
        guard let due = nextStatsAt, now >= due, statsWanted else { return }
        nextStatsAt = now + 1
        let pids = [masterPID] + table.workers.keys.sorted()
        emit(.stats(samples: stats.sample(pids, now: now)))
        for (service, listener) in listeners.sorted(by: { $0.key < $1.key }) {
            if let queue = Posix.acceptQueue(listener.fd) {
                emit(.acceptQueue(service: service, address: listener.address, depth: queue.depth, limit: queue.limit))
            }
        }
    }

    // MARK: - Control requests

    private func answer(_ request: ControlRequest, from client: Int32, now: Double) {
        guard let control else { return }
        // The table decides what acts on the master; the reply goes out before the actions,
        // so a stop that ends the loop has already answered.
        guard let outcome = table.control(request, now: now) else {
            // Out with the pass's events first, so a new subscriber's snapshot is never
            // followed by an event it already contains.
            flushEvents()
            let snapshot = Event(
                mono: now, wall: Posix.wallNow(),
                kind: .snapshot(
                    table.snapshot(
                        masterPid: masterPID, startedAt: startedAt,
                        configuration: describe(table.configuration))))
            control.send(client, EventCodec.encode(snapshot) + "\n")
            if request == .subscribe {
                control.subscribe(client)
            }
            return
        }
        control.send(client, outcome.line)
        perform(outcome.actions)
    }

    // MARK: - Sources

    private func drainSignals() {
        while exitCode == nil, let (signal, sender) = try? Posix.readSignal(signalFD) {
            if signal == .chld { reapChildren() } else { handle(.signal(signal, sender: sender)) }
        }
    }

    /// waitpid(-1, WNOHANG) until it returns 0 (or ECHILD: none left). A child's last status
    /// lines are read before its exit is handled, so an exec failure is known when it is judged.
    private func reapChildren() {
        while let (pid, status) = (try? Posix.reapOne()) ?? nil {
            guard table.workers[pid] != nil else {
                // Not a worker: a process a worker left behind, re-parented to this subreaper.
                emit(
                    .notice(
                        message: "reaped \(pid), a process a worker left behind (re-parented to the master): "
                            + TerminationStatus(waitStatus: status).description))
                continue
            }
            if pipes[pid] != nil { readPipe(of: pid, untilEOF: true) }
            handle(.childExited(pid: pid, rawStatus: status))
            groups.workerExited(pid)
        }
    }

    /// Reads a child's status lines: 64 KiB a pass at most (a worker writing as fast as it can
    /// waits for the next pass, after the signals), up to 1 MiB at once when it has been reaped.
    private func readPipe(of pid: Int32, untilEOF: Bool = false) {
        var budget = untilEOF ? 1 << 20 : 65_536
        while budget > 0, let pipe = pipes[pid] {
            let chunk: [UInt8]
            do {
                guard let bytes = try Posix.read(pipe.fd) else {
                    // EAGAIN: nothing more now. A reaped child's writers are gone unless it
                    // passed the pipe on; either way the pipe is of no more use then.
                    if untilEOF { handle(.childPipeClosed(pid: pid)) }
                    return
                }
                chunk = bytes
            } catch {
                handle(.childPipeClosed(pid: pid))
                return
            }
            if chunk.isEmpty {
                handle(.childPipeClosed(pid: pid))
                return
            }
            budget -= chunk.count
            pipes[pid]!.lines.append(chunk)
            while let next = pipes[pid]?.lines.next() {
                let line: String
                switch next {
                case .success(let text): line = text
                case .failure(let tooLong):
                    emit(
                        .notice(
                            message:
                                "\(pid) sent an unreadable status message (a line of \(tooLong.length) bytes); dropped")
                    )
                    continue
                }
                switch ChildMessage.parse(line) {
                case .success(let message): handle(.childMessage(pid: pid, message))
                case .failure(let error): emit(.notice(message: "\(pid) sent an \(error)"))
                }
            }
            if let pending = pipes[pid]?.lines, pending.isOverLimit {  // a child writing garbage
                emit(
                    .notice(
                        message:
                            "\(pid) sent an unreadable status message (no line end in \(pending.pendingBytes) bytes); dropped"
                    ))
                pipes[pid]!.lines.skipRestOfLine()
            }
        }
    }

    /// A scale or a reload changed a service's worker count: its running workers learn it from
    /// the accept lock's memfd (whether they have siblings to hand connections to).
    private func publishWorkerCounts() {
        for (name, fd) in acceptLocks {
            guard let workers = table.service(named: name)?.spec.workers, publishedWorkers[name] != workers else {
                continue
            }
            Posix.writeNumber(fd, Int64(workers))
            publishedWorkers[name] = workers
        }
    }

    // MARK: - Actions

    private func perform(_ actions: [WorkerTable.Action]) {
        for action in actions {
            switch action {
            case .emit(let kind):
                emit(kind)
            case .fork(let service, let reason):
                forkQueue.append((service, reason))
            case .signal(let pid, let signal, let reason, let origin):
                send(signal, to: pid, reason: reason, origin: origin)
            case .reloadConfiguration:
                reload()
            case .reopenLog:
                let path = LogOutput.shared.path ?? "(standard error)"
                do {
                    try LogOutput.shared.reopen()
                    emit(.logReopened(path: path, error: nil))
                } catch {
                    emit(.logReopened(path: path, error: error.description))
                }
            case .exit(let code):
                exitCode = code
            }
        }
    }

    private func emit(_ kind: Event.Kind) {
        pendingEvents.append(Event(mono: Posix.monotonicNow(), wall: Posix.wallNow(), kind: kind))
    }

    private func flushEvents() {
        for event in pendingEvents {
            let line = sink.writesEvents || (control?.subscriberCount ?? 0) > 0 ? EventCodec.encode(event) + "\n" : nil
            sink.emit(event, line: line)
            if let line { control?.broadcast(line) }
        }
        pendingEvents.removeAll(keepingCapacity: true)
    }

    /// Runs the paths every worker takes through the master (its `ready`, its exit) once, on a
    /// scratch copy of the table, before the start-up pages are dropped. Their first run
    /// instantiates type metadata, and an uncached conformance lookup scans every conformance
    /// record of the binary: after the drop that faulted ~1.5 MiB of its data segment back in
    /// (perf, `exceptions:page_fault_user`: `swift_conformsToProtocol` under `readPipe`).
    private func warmUpLoopPaths() {
        var scratch = table
        guard let pid = scratch.workers.keys.first else { return }
        let now = Posix.monotonicNow()
        _ = ChildMessage.parse("ready")
        _ = scratch.childReady(pid: pid, now: now)
        _ = scratch.childExited(pid: pid, rawStatus: 0, now: now)
        _ = scratch.tick(now: now)
    }

    /// Forks up to `limit` queued workers; returns how many it took from the queue. A fork
    /// asked for while running and queued past a stop is given back to the table as failed.
    @discardableResult
    private func runQueuedForks(limit: Int, reapBetween: Bool = true) -> Int {
        let taken = Array(forkQueue.prefix(max(0, limit)))
        forkQueue.removeFirst(taken.count)
        for (index, (service, reason)) in taken.enumerated() {
            // A child that died meanwhile is reaped between two forks, not after the batch (but
            // every first worker is forked, as oslo starts them all, before any is judged).
            if reapBetween, index > 0 { drainSignals() }
            if exitCode == nil, table.phase == .running {
                fork(service: service, reason: reason)
            } else {
                perform(table.forkFailed(service: service, reason: reason, now: Posix.monotonicNow()))
            }
        }
        return taken.count
    }

    /// Only ever a live child of this master: a pid still in the table has not been reaped, so
    /// it cannot have been reused by another process.
    private func send(_ signal: Signal, to pid: Int32, reason: String, origin: String) {
        guard let worker = table.workers[pid] else { return }
        var failure: String?
        // A stop or a kill reaches the worker's whole group: what it started goes with it.
        let toGroup = [Signal.term, .int, .kill, .quit].contains(signal)
        if !(toGroup && Posix.killGroup(pid, signal)) {
            do { try Posix.kill(pid, signal) } catch { failure = error.description }
        }
        emit(
            .signalSent(
                pid: pid, service: worker.service, signal: signal, reason: reason, origin: origin, error: failure))
    }

    private func reload() {
        guard let reloadConfiguration else {
            perform(table.applyReload(nil, error: nil, now: Posix.monotonicNow()))
            return
        }
        do {
            let configuration = try reloadConfiguration()
            if let path = configuration.logFile, path != LogOutput.shared.path {
                try? LogOutput.shared.open(path: path)
            }
            perform(table.applyReload(configuration, error: nil, now: Posix.monotonicNow()))
            control?.limits = ControlServer.Limits(configuration)
        } catch {
            perform(table.applyReload(nil, error: "\(error)", now: Posix.monotonicNow()))
        }
    }

    private func fork(service name: String, reason: ForkReason) {
        guard let spec = table.service(named: name)?.spec else { return }
        let threads = threadCounter.count()
        guard threads == 1 else {
            emit(.forkRefused(service: name, threads: threads))
            perform(table.forkFailed(service: name, reason: reason, now: Posix.monotonicNow()))
            return
        }
        var status: (read: Int32, write: Int32) = (-1, -1)
        do {
            status = try Posix.pipe(nonblockingRead: true)
            let pid: Int32
            switch spec.program {
            case .command(let argv):
                pid = try Posix.forkExec(
                    path: Posix.resolveExecutable(argv[0]), argv: argv, statusFD: status.write,
                    listen: listeners[name].map { ($0.fd, name) },
                    stdoutToStderr: sink.eventsOnStandardOutput, deathSignal: .kill,
                    cgroupProcsFD: cgroup?.procsFD)
            case .builtin(let builtin):
                guard let entry = registry.entry(builtin) else {
                    Posix.close(status.read)
                    Posix.close(status.write)
                    emit(.configError(message: "service '\(name)': no built-in service named '\(builtin)'"))
                    perform(table.forkFailed(service: name, reason: reason, now: Posix.monotonicNow()))
                    return
                }
                let slot = table.freeSlot(of: name)
                pid = try Posix.fork()
                if pid == 0 { runChild(spec: spec, slot: slot, make: entry.make, statusFD: status.write) }
            }
            Posix.close(status.write)
            groups.workerForked(pid)
            pipes[pid] = ChildPipe(
                fd: status.read,
                isCommand: {
                    if case .command = spec.program { return true }
                    return false
                }())
            perform(table.forked(pid: pid, service: name, reason: reason, now: Posix.monotonicNow()))
        } catch {
            if status.read >= 0 {
                Posix.close(status.read)
                Posix.close(status.write)
            }
            emit(.forkFailed(service: name, errno: error.errno, message: error.message))
            perform(table.forkFailed(service: name, reason: reason, now: Posix.monotonicNow()))
        }
    }

    /// The child side for a Swift service: the design's setup, then the service. Never returns.
    private func runChild(spec: ServiceSpec, slot: Int, make: (WorkerContext) -> any Service, statusFD: Int32) -> Never
    {
        let name = spec.name
        // The master's signalfd, events file and other children's pipes are closed here; the
        // status pipe and the parent-death pipe's read end are kept, and the log file (the
        // worker's lines go where the master's go, one O_APPEND write each; SIGUSR1 reopens it).
        // A Swift worker keeps its service's listening socket (for a server that adopts it).
        let listenFD = listeners[name]?.fd
        let acceptLock = acceptLocks[name]
        let logFD = LogOutput.shared.fd > 2 ? LogOutput.shared.fd : nil
        guard
            Posix.childSetup(
                keep: [statusFD, deathPipe.read] + [listenFD, acceptLock, logFD].compactMap { $0 },
                blocked: WorkerRuntime.handledSignals,
                stdoutToStderr: sink.eventsOnStandardOutput, deathSignal: .term, parent: masterPID,
                cgroupProcsFD: cgroup?.procsFD)
        else {
            Posix.exitNow(1)
        }
        let context = WorkerContext(
            spec: spec, slot: slot, configuration: table.configuration,
            status: StatusChannel(fd: statusFD), listenFD: listenFD, acceptLockFD: acceptLock)
        // Each worker must draw different random numbers (oslo's random.seed()); Swift's
        // generator reads getrandom(2) per call, so only C's srandom needs a new seed.
        srandom(UInt32(truncatingIfNeeded: Posix.getpid()) ^ UInt32(truncatingIfNeeded: Int(Posix.wallNow() * 1e6)))
        WorkerRuntime.run(
            make(context), logger: context.logger, status: context.status, deathFD: deathPipe.read, stopTimeout: nil)
    }

    private func describe(_ configuration: LauncherConfiguration) -> String {
        "graceful_shutdown_timeout=\(JSONObject.number(configuration.gracefulShutdownTimeout, decimals: 1)) "
            + "restart_method=\(configuration.restartMethod) boot_window=\(JSONObject.number(configuration.bootWindow, decimals: 1)) "
            + "crash_loop_threshold=\(configuration.crashLoopThreshold) "
            + "fork_throttle_interval=\(JSONObject.number(configuration.forkThrottleInterval, decimals: 2))"
    }
}

#if canImport(Glibc)
import Glibc
#endif
