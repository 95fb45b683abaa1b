import ForkwatchCore
import Testing

/// Rules found wrong in review, each pinned by a scripted run.
@Suite struct WorkerTableRegressionTests {
    @Test func anOldHealthyWorkerDoesNotEndACrashLoop() {
        var master = ScriptedMaster([("api", 2)]) {
            $0.crashLoopThreshold = 2
            $0.forkThrottleInterval = 0
        }
        master.start()
        master.advance(30)  // 100 and 101 are long-lived and healthy
        master.exit(101, status: 1 << 8)  // 101 dies; 102 replaces it
        master.advance(0.1)
        master.exit(102, status: 1 << 8)  // quick death 1
        master.advance(0.1)
        master.exit(103, status: 1 << 8)  // quick death 2: crash-looping
        #expect(master.state("api") == .crashLooping)
        master.advance(0.2)  // 100 is old, but proves nothing about new forks
        #expect(master.state("api") == .crashLooping)
        master.advance(1)  // 104 has now lived past boot_window
        #expect(master.state("api") == .running)
        let transitions = master.events.filter {
            if case .serviceState = $0 { return true }
            return false
        }
        #expect(transitions.count == 2)
    }

    @Test func anOldWorkerDyingLateDoesNotEndACrashLoopEither() {
        var master = ScriptedMaster([("api", 2)]) {
            $0.crashLoopThreshold = 2
            $0.forkThrottleInterval = 0
        }
        master.start()
        master.advance(30)
        master.exit(101, status: 1 << 8)
        master.advance(0.1)
        master.exit(102, status: 1 << 8)
        master.advance(0.1)
        master.exit(103, status: 1 << 8)
        #expect(master.state("api") == .crashLooping)
        master.exit(100, status: 1 << 8)  // the old worker, 30 s old, dies: no proof of recovery
        #expect(master.state("api") == .crashLooping)
    }

    @Test func kernelJobControlTtinIsIgnored() {
        var master = ScriptedMaster([("api", 2)])
        master.start()
        master.perform(master.table.signalReceived(.ttin, senderPid: 0, now: master.now))
        #expect(master.livePids.count == 2)
        #expect(master.table.service(named: "api")?.spec.workers == 2)
        master.perform(master.table.signalReceived(.ttin, senderPid: 4242, now: master.now))
        #expect(master.livePids.count == 3)
    }

    @Test func failedIsSaidOnceAndNoDelayedForkFollowsIt() {
        var master = ScriptedMaster([("api", 3), ("db", 1)])
        master.start()  // api: 100 101 102, db: 103
        master.exit(100, status: 1 << 8)  // api respawns 104 (4 forks in the window)
        master.exit(104, status: 1 << 8)  // the 5th fork in 0 s: delayed by the throttle
        #expect(master.throttleEvents == 1)
        master.exit(101, status: 3 << 8)  // boot error: failed
        master.exit(102, status: 3 << 8)  // another one: not announced again
        let failed = master.events.filter {
            if case .serviceState(_, .failed, _) = $0 { return true }
            return false
        }
        #expect(failed.count == 1)
        let apiForks = master.forks.filter { $0.service == "api" }.count
        master.advance(5)  // the delayed fork's time passes: it must not happen
        #expect(master.forks.filter { $0.service == "api" }.count == apiForks)
    }

    @Test func aReloadWithTheSameConfigurationChangesNothingAndKeepsAScale() {
        var configuration = LauncherConfiguration()
        configuration.services = [ServiceSpec(name: "api", program: .builtin("idle"), workers: 2)]
        configuration.restartMethod = .mutate
        var master = ScriptedMaster([("api", 2)]) { $0.restartMethod = .mutate }
        master.start()
        master.signal(.ttin)  // now 3
        master.events.removeAll()
        master.perform(master.table.applyReload(configuration, error: nil, now: master.now))
        #expect(master.events.contains(.reload(method: .mutate, changes: "none")))
        #expect(master.table.service(named: "api")?.spec.workers == 3)
        // The file changes the count: that is applied.
        configuration.services[0].workers = 5
        master.perform(master.table.applyReload(configuration, error: nil, now: master.now))
        #expect(master.table.service(named: "api")?.spec.workers == 5)
    }

    @Test func reloadReplacementsAndDelayedForksKeepTheirReason() {
        var master = ScriptedMaster([("api", 1)]) { $0.restartMethod = .reload }
        master.start()
        master.perform(master.table.applyReload(nil, error: nil, now: master.now))
        master.exit(100)
        #expect(master.forks.last?.reason == .reload)
        // Third fork within a second for 1 worker: delayed, and still a reload when it happens.
        master.perform(master.table.applyReload(nil, error: nil, now: master.now))
        master.exit(101)
        #expect(master.throttleEvents == 1)
        master.advance(1)
        #expect(master.forks.last?.reason == .reload)
    }

    @Test func theThrottleWindowShrinksWithAScaleDown() {
        var throttle = ForkThrottle()
        for i in 0..<5 { _ = throttle.admit(now: Double(i) * 0.01, workers: 4) }
        #expect(throttle.forkTimes.count == 5)
        guard case .delay(_, let forks, _, _) = throttle.admit(now: 0.1, workers: 1) else {
            Issue.record("expected a delay")
            return
        }
        #expect(forks == 2)
    }
}
