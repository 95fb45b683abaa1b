import ForkwatchCore
import Testing

/// Plays the master's part against a `WorkerTable`: forks get pids 100, 101, …; every other
/// action is recorded. Time only moves when a test says so.
struct ScriptedMaster {
    var table: WorkerTable
    var now = 1000.0
    var nextPid: Int32 = 100
    var forks: [(pid: Int32, service: String, reason: ForkReason)] = []
    var signals: [(pid: Int32, signal: Signal)] = []
    var events: [Event.Kind] = []
    var other: [WorkerTable.Action] = []
    var exitCode: Int32?

    init(_ services: [(String, Int)], _ configure: (inout LauncherConfiguration) -> Void = { _ in }) {
        var configuration = LauncherConfiguration()
        configuration.services = services.map { ServiceSpec(name: $0.0, program: .builtin("idle"), workers: $0.1) }
        configure(&configuration)
        table = WorkerTable(configuration: configuration)
    }

    mutating func perform(_ actions: [WorkerTable.Action]) {
        for action in actions {
            switch action {
            case .fork(let service, let reason):
                let pid = nextPid
                nextPid += 1
                forks.append((pid, service, reason))
                perform(table.forked(pid: pid, service: service, reason: reason, now: now))
            case .signal(let pid, let signal, _, _):
                signals.append((pid, signal))
            case .emit(let kind):
                events.append(kind)
            case .exit(let code):
                exitCode = code
            default:
                other.append(action)
            }
        }
    }

    mutating func start() { perform(table.start(now: now)) }
    mutating func exit(_ pid: Int32, status: Int32 = 0) {
        perform(table.childExited(pid: pid, rawStatus: status, now: now))
    }
    mutating func ready(_ pid: Int32) { perform(table.childReady(pid: pid, now: now)) }
    mutating func signal(_ signal: Signal) { perform(table.signalReceived(signal, senderPid: 1, now: now)) }
    mutating func advance(_ seconds: Double) {
        now += seconds
        perform(table.tick(now: now))
    }

    var livePids: [Int32] { table.workers.keys.sorted() }
    func pids(of service: String) -> [Int32] { table.workers(of: service).map(\.pid) }
    var throttleEvents: Int {
        events.filter {
            if case .throttle = $0 { return true }
            return false
        }.count
    }
    func state(_ service: String) -> ServiceState? { table.service(named: service)?.state }
}

@Suite struct WorkerTableTests {
    @Test func startForksEveryServiceToItsCount() {
        var master = ScriptedMaster([("api", 2), ("scheduler", 4)])
        master.start()
        #expect(master.forks.map(\.service) == ["api", "api", "scheduler", "scheduler", "scheduler", "scheduler"])
        #expect(master.forks.allSatisfy { $0.reason == .initial })
        #expect(master.throttleEvents == 0)
    }

    @Test func aDeadWorkerIsRespawnedWithANewPid() {
        var master = ScriptedMaster([("api", 2)])
        master.start()
        master.advance(5)
        master.exit(100, status: 9)  // SIGKILL
        #expect(master.forks.last?.reason == .respawn)
        #expect(master.livePids == [101, 102])
        #expect(master.table.service(named: "api")?.restarts == 1)
    }

    @Test func anUnknownPidIsReapedQuietly() {
        var master = ScriptedMaster([("api", 1)])
        master.start()
        master.exit(4242)
        #expect(master.forks.count == 1)
        #expect(master.livePids == [100])
    }

    @Test func theThrottleSchedulesTheForkInsteadOfSleeping() {
        var master = ScriptedMaster([("api", 1)])
        master.start()  // fork 1 at t
        master.exit(100)  // fork 2 at t (window: 2 entries, not > 1)
        master.exit(101)  // third fork: the oldest is 0 s old < 1 s: delay
        #expect(master.forks.count == 2)
        #expect(master.throttleEvents == 1)
        #expect(master.table.nextDeadline == master.now + 1)
        // Nothing forks before the deadline, and the master is free meanwhile.
        master.advance(0.5)
        #expect(master.forks.count == 2)
        master.advance(0.5)
        #expect(master.forks.count == 3)
        #expect(master.livePids == [102])
    }

    @Test func signalsAreAnsweredWhileAForkIsDelayed() {
        var master = ScriptedMaster([("api", 1)])
        master.start()
        master.exit(100)
        master.exit(101)
        #expect(master.table.nextDeadline != nil)
        master.signal(.term)
        // Stopping cancels the pending fork; with no worker left the master exits at once.
        #expect(master.exitCode == 0)
        master.advance(2)
        #expect(master.forks.count == 2)
    }

    @Test func quickDeathsInARowMarkACrashLoopAndALongLifeClearsIt() {
        var master = ScriptedMaster([("api", 1)]) {
            $0.crashLoopThreshold = 3
            $0.forkThrottleInterval = 0
        }
        master.start()
        for pid: Int32 in 100...102 {
            master.advance(0.1)
            master.exit(pid, status: 1 << 8)
        }
        #expect(master.state("api") == .crashLooping)
        // The new worker stays up past boot_window: the timer notices, no exit needed.
        #expect(master.table.nextDeadline == master.now + 1)
        master.advance(1)
        #expect(master.state("api") == .running)
        #expect(master.livePids == [103])
    }

    @Test func exitCode3MarksTheServiceFailedAndStopsRespawning() {
        var master = ScriptedMaster([("api", 2), ("db", 1)])
        master.start()
        master.exit(100, status: 3 << 8)
        #expect(master.state("api") == .failed)
        #expect(master.forks.count == 3)
        master.exit(101, status: 1 << 8)
        #expect(master.forks.count == 3)
        #expect(master.exitCode == nil)  // db still runs
    }

    @Test func anExecFailureIsABootErrorAndTheMasterExits3WhenNothingIsLeft() {
        var master = ScriptedMaster([("cmd", 1)])
        master.start()
        master.perform(
            master.table.execFailed(pid: 100, errno: 2, message: "No such file or directory", now: master.now))
        master.exit(100, status: 127 << 8)
        #expect(master.state("cmd") == .failed)
        #expect(master.exitCode == 3)
        #expect(master.forks.count == 1)
    }

    @Test func gracefulStopTermsEveryWorkerAndExits0() {
        var master = ScriptedMaster([("api", 3)])
        master.start()
        master.signal(.term)
        #expect(master.signals.map(\.signal) == [.term, .term, .term])
        for pid: Int32 in 100...102 { master.exit(pid) }
        #expect(master.forks.count == 3)  // nothing respawned during a stop
        #expect(master.exitCode == 0)
    }

    @Test func survivorsAreKilledAfterGracefulShutdownTimeout() {
        var master = ScriptedMaster([("api", 2)]) { $0.gracefulShutdownTimeout = 5 }
        master.start()
        master.signal(.term)
        master.exit(100)
        master.advance(4.9)
        #expect(!master.signals.contains { $0.signal == .kill })
        master.advance(0.1)
        #expect(master.signals.filter { $0.signal == .kill }.map(\.pid) == [101])
        master.exit(101, status: 9)
        #expect(master.exitCode == 0)
    }

    @Test func timeoutZeroWaitsForever() {
        var master = ScriptedMaster([("api", 1)]) { $0.gracefulShutdownTimeout = 0 }
        master.start()
        master.signal(.term)
        #expect(master.table.nextDeadline == nil)
        master.advance(10_000)
        #expect(!master.signals.contains { $0.signal == .kill })
    }

    @Test(arguments: [Signal.term, Signal.int])
    func aSecondStopSignalEscalatesToKillAndExit1(second: Signal) {
        var master = ScriptedMaster([("api", 2)])
        master.start()
        master.signal(.term)
        master.signal(second)
        #expect(master.signals.filter { $0.signal == .kill }.count == 2)
        master.exit(100, status: 9)
        master.exit(101, status: 9)
        #expect(master.exitCode == 1)
    }

    @Test func fastStopSendsIntThenKillsAfterOneSecond() {
        var master = ScriptedMaster([("api", 2)])
        master.start()
        master.signal(.int)
        #expect(master.signals.map(\.signal) == [.int, .int])
        master.exit(100, status: 1 << 8)
        master.advance(1)
        #expect(master.signals.last?.signal == .kill)
        #expect(master.signals.last?.pid == 101)
        master.exit(101, status: 9)
        #expect(master.exitCode == 1)
    }

    /// TTIN and a scale request meet the declared range of `workers` here too.
    @Test(arguments: [0, 100_001])
    func aScaleOutsideTheWorkersRangeIsANoticeNotAFork(count: Int) {
        var master = ScriptedMaster([("api", 2)])
        master.start()
        master.perform(master.table.scale(service: "api", to: count, reason: "test", now: master.now))
        #expect(master.table.service(named: "api")?.spec.workers == 2)
        #expect(master.forks.count == 2 && master.signals.isEmpty)
        #expect(master.events.contains(.notice(message: "scale api: workers must be 1-100000, got \(count)")))
    }

    @Test func ttinAndTtouScaleTheFirstServiceByOne() {
        var master = ScriptedMaster([("api", 2)])
        master.start()
        master.signal(.ttin)
        #expect(master.livePids.count == 3)
        #expect(master.forks.last?.reason == .scale)
        master.signal(.ttou)
        // The oldest worker is retired, and its exit is not replaced.
        #expect(master.signals.map(\.pid) == [100])
        master.exit(100)
        #expect(master.livePids == [101, 102])
        #expect(master.forks.count == 3)
        // Never below one worker.
        master.signal(.ttou)
        master.exit(101)
        master.signal(.ttou)
        #expect(master.table.service(named: "api")?.spec.workers == 1)
    }

    @Test func mutateSendsHupAndKeepsTheWorkers() {
        var master = ScriptedMaster([("api", 2)]) { $0.restartMethod = .mutate }
        master.start()
        master.signal(.hup)
        #expect(master.other == [.reloadConfiguration])
        master.perform(master.table.applyReload(nil, error: nil, now: master.now))
        #expect(master.signals.map(\.signal) == [.hup, .hup])
        #expect(master.forks.count == 2)
    }

    @Test func usr1ReopensTheLogAndTellsTheSwiftWorkersOnly() {
        var master = ScriptedMaster([("api", 2), ("sh", 1)]) {
            $0.logFile = "/tmp/forkwatch.log"
            $0.services[1].program = .command(["/bin/sh"])
        }
        master.start()
        master.signal(.usr1)
        #expect(master.other == [.reopenLog])
        #expect(master.signals.map(\.pid) == master.pids(of: "api").sorted())
        #expect(master.signals.allSatisfy { $0.signal == .usr1 })
    }

    @Test func usr1WithoutALogFileSignalsNobody() {
        var master = ScriptedMaster([("api", 2)])
        master.start()
        master.signal(.usr1)
        #expect(master.other == [.reopenLog])
        #expect(master.signals.isEmpty)
    }

    @Test func reloadTermsEveryWorkerAndReplacesEachAsItExits() {
        var master = ScriptedMaster([("api", 2)]) { $0.restartMethod = .reload }
        master.start()
        master.advance(10)
        master.perform(master.table.applyReload(nil, error: nil, now: master.now))
        #expect(master.signals.map(\.signal) == [.term, .term])
        #expect(master.forks.count == 2)  // replacements come as the old ones exit
        master.exit(100)
        master.exit(101)
        #expect(master.forks.count == 4)
        #expect(master.table.workers.values.allSatisfy { $0.generation == 2 })
    }

    @Test func rollingStartsEachNewWorkerBeforeStoppingAnOldOne() {
        var master = ScriptedMaster([("api", 2)]) { $0.restartMethod = .rolling }
        master.start()
        master.ready(100)
        master.ready(101)
        master.advance(10)
        master.perform(master.table.applyReload(nil, error: nil, now: master.now))
        // Step 1: one new worker, no old one stopped yet.
        #expect(master.forks.map(\.reason).suffix(1) == [.rolling])
        #expect(master.signals.isEmpty)
        #expect(master.livePids == [100, 101, 102])
        master.ready(102)
        #expect(master.signals.map(\.pid) == [100])
        // Step 2 starts right away: capacity is 2 ready workers + the new one.
        #expect(master.livePids == [100, 101, 102, 103])
        master.exit(100)
        #expect(master.forks.count == 4)
        master.ready(103)
        #expect(master.signals.map(\.pid) == [100, 101])
        master.exit(101)
        #expect(master.livePids == [102, 103])
        #expect(
            master.events.contains {
                if case .rollingDone = $0 { return true }
                return false
            })
        master.advance(10)
        #expect(master.forks.count == 4)
    }

    @Test func aRollingReplacementThatDiesBeforeReadyIsRetriedAndNoOldWorkerIsStopped() {
        var master = ScriptedMaster([("api", 1)]) { $0.restartMethod = .rolling }
        master.start()
        master.ready(100)
        master.advance(10)
        master.perform(master.table.applyReload(nil, error: nil, now: master.now))
        master.exit(101, status: 1 << 8)  // the new worker crashes at boot
        #expect(master.signals.isEmpty)
        #expect(master.livePids == [100, 102])
        master.ready(102)
        #expect(master.signals.map(\.pid) == [100])
    }

    @Test func aBadConfigurationOnReloadChangesNothing() {
        var master = ScriptedMaster([("api", 2)])
        master.start()
        master.perform(master.table.applyReload(nil, error: "x.yaml:3: bad", now: master.now))
        #expect(master.signals.isEmpty)
        #expect(
            master.events.contains {
                if case .configError = $0 { return true }
                return false
            })
    }

    @Test func aMasterWhoseEveryServiceFailedExits3() {
        var master = ScriptedMaster([("api", 1)])
        master.start()
        master.exit(100, status: 3 << 8)
        #expect(master.exitCode == 3)
    }

    @Test func aReloadGivesAFailedServiceAnotherTry() {
        var master = ScriptedMaster([("api", 1), ("db", 1)])
        master.start()
        master.exit(100, status: 3 << 8)
        #expect(master.state("api") == .failed)
        master.perform(master.table.applyReload(nil, error: nil, now: master.now))
        #expect(master.state("api") == .running)
        #expect(master.pids(of: "api").count == 1)
    }
}

/// Issue 13: a reload that drops a service stops it; SIGTTIN/SIGTTOU say which service they scale.
@Suite struct WorkerTableRemovalTests {
    /// api: 100 101, db: 102 103.
    private func started(_ timeout: Double = 5) -> ScriptedMaster {
        var master = ScriptedMaster([("api", 2), ("db", 2)]) { $0.gracefulShutdownTimeout = timeout }
        master.start()
        master.events.removeAll()
        return master
    }

    private func reload(_ master: inout ScriptedMaster, keeping services: [(String, Int)]) {
        var configuration = master.table.configuration
        configuration.services = services.map { ServiceSpec(name: $0.0, program: .builtin("idle"), workers: $0.1) }
        configuration.restartMethod = .mutate
        master.perform(master.table.applyReload(configuration, error: nil, now: master.now))
    }

    @Test func aDroppedServiceGetsSIGTERMAndIsNotReplacedThenLeavesTheTable() {
        var master = started()
        reload(&master, keeping: [("api", 2)])
        #expect(master.signals.filter { $0.signal == .term }.map(\.pid) == [102, 103])
        #expect(master.signals.filter { $0.signal == .hup }.map(\.pid) == [100, 101], "api is reloaded as usual")
        let forksBefore = master.forks.count
        master.exit(102)
        #expect(master.forks.count == forksBefore, "not replaced")
        #expect(master.table.service(named: "db") != nil)
        master.exit(103)
        #expect(master.table.service(named: "db") == nil)
        #expect(master.events.last == .serviceRemoved(service: "db"))
        #expect(master.table.configuration.services.map(\.name) == ["api"])
    }

    @Test func survivorsGetSIGKILLAfterTheGracefulTimeout() {
        var master = started(5)
        reload(&master, keeping: [("api", 2)])
        master.signals.removeAll()
        #expect(master.table.nextDeadline == master.now + 5, "the master wakes for it")
        master.advance(4.9)
        #expect(master.signals.isEmpty)
        master.advance(0.2)
        #expect(master.signals.map(\.pid) == [102, 103] && master.signals.allSatisfy { $0.signal == .kill })
        master.advance(10)
        #expect(master.signals.count == 2, "once")
    }

    @Test func aServiceNamedAgainBeforeItsWorkersAreGoneIsBroughtBack() {
        var master = started()
        reload(&master, keeping: [("api", 2)])
        reload(&master, keeping: [("api", 2), ("db", 2)])
        master.exit(102)
        master.exit(103)
        master.advance(2)  // past the throttle: db forked 4 times at once
        // The two stopping workers did not count: two new ones were forked.
        #expect(master.table.service(named: "db") != nil)
        #expect(master.pids(of: "db").count == 2 && !master.pids(of: "db").contains(102))
        #expect(!master.events.contains(.serviceRemoved(service: "db")))
    }

    @Test func aForkQueuedBeforeTheReloadIsStoppedLikeTheOthers() {
        var master = started()
        reload(&master, keeping: [("api", 2)])
        master.signals.removeAll()
        master.perform(master.table.forked(pid: 500, service: "db", reason: .respawn, now: master.now))
        #expect(master.signals.map(\.pid) == [500] && master.signals.first?.signal == .term)
        master.exit(102)
        master.exit(103)
        #expect(master.table.service(named: "db") != nil, "500 still runs")
        master.exit(500)
        #expect(master.table.service(named: "db") == nil)
    }

    @Test func aScaleOfAServiceBeingRemovedIsRefused() {
        var master = started()
        reload(&master, keeping: [("api", 2)])
        master.perform(master.table.scale(service: "db", to: 5, reason: "test", now: master.now))
        #expect(master.events.last == .notice(message: "scale db: the service is being removed (a reload dropped it)"))
    }

    @Test func ttinScalesTheServiceTheOptionNames() {
        var master = ScriptedMaster([("api", 1), ("db", 1)]) { $0.scaleSignalService = "db" }
        master.start()
        master.signal(.ttin)
        #expect(master.table.service(named: "db")?.spec.workers == 2)
        #expect(master.table.service(named: "api")?.spec.workers == 1)
        #expect(
            master.events.contains(
                .scale(service: "db", from: 1, to: 2, reason: "SIGTTIN from pid 1; scale_signal_service is db")))
    }

    @Test func withoutTheOptionTheFirstServiceIsScaledAndTheEventSaysSo() {
        var master = ScriptedMaster([("api", 1), ("db", 1)])
        master.start()
        master.signal(.ttou)
        #expect(master.events.last == .notice(message: "SIGTTOU ignored: api has 1 worker, the fewest it can have"))
        master.signal(.ttin)
        #expect(
            master.events.contains(
                .scale(
                    service: "api", from: 1, to: 2,
                    reason: "SIGTTIN from pid 1; api is the first service; scale_signal_service names another")))
    }

    @Test func theOptionMustNameAService() {
        var configuration = LauncherConfiguration()
        configuration.services = [ServiceSpec(name: "api", program: .builtin("idle"), workers: 1)]
        configuration.scaleSignalService = "nope"
        #expect(configuration.validate() == "scale_signal_service names 'nope', which is not a service here (api)")
    }
}
