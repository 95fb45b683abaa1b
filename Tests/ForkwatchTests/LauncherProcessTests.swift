import Forkwatch
import Foundation
import Glibc
import Testing

/// The launcher as a user runs it: the real binary, real workers, real signals, /proc to check.
@Suite struct LauncherProcessTests {
    @Test func aKilledWorkerIsRespawnedWithANewPid() throws {
        let master = try LaunchedMaster(["--workers", "2", "idle"])
        let pids = try master.waitForReady(2)
        #expect(Proc.threadCount(of: master.pid) == 1)
        kill(pids[0], SIGKILL)
        let exit = try master.waitFor("exit") { $0.pid == pids[0] }
        #expect(exit["how"] as? String == "signaled")
        #expect(exit["signal"] as? String == "SIGKILL")
        #expect(exit["expected"] as? Bool == false)
        let fork = try master.waitFor("fork") { $0["reason"] as? String == "respawn" }
        #expect(!pids.contains(fork.pid))
        try master.waitFor("ready") { $0.pid == fork.pid }
        #expect(Set(Proc.children(of: master.pid)) == Set([pids[1], fork.pid]))
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
        #expect(!Proc.isRunning(pids[1]) && !Proc.isRunning(fork.pid))
    }

    /// `idle` is a ThreadlessService: its worker is one thread that still answers every signal.
    @Test func anIdleWorkerIsOneThreadThatObeysSignals() throws {
        let master = try LaunchedMaster(["--workers", "3", "idle"])
        let pids = try master.waitForReady(3)
        #expect(pids.allSatisfy { Proc.threadCount(of: $0) == 1 })
        kill(pids[0], SIGHUP)
        #expect(Proc.eventually { master.log.contains("reset: nothing to reload") })
        #expect(Proc.isRunning(pids[0]))
        kill(pids[1], SIGINT)
        let fast = try master.waitFor("exit") { $0.pid == pids[1] }
        #expect(fast["code"] as? Int == 1)
        kill(pids[2], SIGTERM)
        let graceful = try master.waitFor("exit") { $0.pid == pids[2] }
        #expect(graceful["code"] as? Int == 0)
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
        #expect(pids.allSatisfy { !Proc.isRunning($0) })
    }

    /// A second after start an idle worker drops the file pages it mapped and sleeps in the same
    /// C call, so it keeps almost none: the fewer it maps, the sooner a SIGKILL reaches the
    /// master (the kernel unmaps before it sends SIGCHLD). With Swift code between the drop and
    /// the poll, faulting code back 64 KiB at a time, the release build's idle worker held 2.4 MiB.
    @Test func anIdleWorkerSleepsWithFewFilePagesMapped() throws {
        let master = try LaunchedMaster(["--workers", "1", "idle"])
        let pid = try master.waitForReady(1)[0]
        #expect(Proc.eventually { (0..<1024).contains(Proc.statusKB("RssFile", of: pid)) })
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
    }

    /// A service that does not adopt ThreadlessService gets the threaded worker: the parked main
    /// thread, `start()`/`wait()` on a thread of their own and the control loop on another.
    /// `crashy` starts no thread itself, so those are its three. (The threadless side: an idle
    /// worker is one thread, anIdleWorkerIsOneThreadThatObeysSignals.)
    @Test func aServiceThatIsNotThreadlessRunsOnThreadsOfItsOwn() throws {
        let master = try LaunchedMaster(["--workers", "2", "crashy"])
        // crashy dies within 0-3 s and is respawned: whichever worker is alive will do.
        #expect(Proc.eventually { Proc.children(of: master.pid).contains { Proc.threadCount(of: $0) == 3 } })
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
    }

    /// The file pages given back fault in again on use; anonymous memory is untouched.
    @Test func releasingFilePagesUnmapsCodeAndKeepsData() throws {
        let numbers = Array(0..<100_000)
        let before = Proc.statusKB("RssFile", of: getpid())
        #expect(Posix.releaseFilePages(includeWritable: false) > 0)
        #expect(Proc.statusKB("RssFile", of: getpid()) < before)
        #expect(numbers.reduce(0, +) == 4_999_950_000)

        // A read-only private file mapping with one written page, as a relocated RELRO segment
        // is: the written page (anonymous now) keeps its bytes, the page only read is dropped
        // and reads the file again.
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let path = NSTemporaryDirectory() + "forkwatch-release-\(UUID().uuidString)"
        try Data(repeating: 7, count: 2 * page).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let fd = open(path, O_RDONLY)
        defer { close(fd) }
        let base = try #require(
            mmap(nil, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0).flatMap { $0 == MAP_FAILED ? nil : $0 })
        defer { munmap(base, 2 * page) }
        let bytes = base.assumingMemoryBound(to: UInt8.self)
        bytes[0] = 42
        #expect(bytes[page] == 7)
        #expect(mprotect(base, 2 * page, PROT_READ) == 0)
        #expect(Proc.isMapped(base + page))
        Posix.releaseFilePages(includeWritable: false)
        #expect(bytes[0] == 42)
        #expect(Proc.isMapped(base))
        #expect(!Proc.isMapped(base + page))
        #expect(bytes[page] == 7)
    }

    @Test func theThrottleDelaysForksInACrashLoopWhileTheMasterAnswersSignals() throws {
        let master = try LaunchedMaster(["--workers", "2", "--", "/bin/sh", "-c", "exit 1"])
        let throttle = try master.waitFor("throttle")
        #expect(throttle["delay"] as? Double == 1.0)
        #expect(throttle["forks"] as? Int == 3)
        // While that fork waits, the master is in poll(2), not asleep: it takes a signal now.
        master.signal(SIGTERM)
        let received = try master.waitFor("signal_received") { $0["signal"] as? String == "SIGTERM" }
        let throttleAt = throttle["mono"] as! Double
        #expect((received["mono"] as! Double) < throttleAt + 1.0)
        #expect(try master.waitExit() == 0)
        // No fork happened after the stop began.
        let stopping = master.index(of: "stopping") { _ in true }!
        #expect(master.events[stopping...].allSatisfy { $0["type"] as? String != "fork" })
    }

    @Test func quickDeathsMarkTheServiceCrashLooping() throws {
        let master = try LaunchedMaster([
            "--workers", "1", "--crash-loop-threshold", "3", "--fork-throttle-interval", "0.05",
            "--", "/bin/sh", "-c", "exit 1",
        ])
        let state = try master.waitFor("service_state") { $0["state"] as? String == "crash-looping" }
        #expect((state["reason"] as? String)?.contains("boot_window") == true)
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
    }

    @Test func aWorkerIgnoringSigtermIsKilledAfterTheTimeout() throws {
        let master = try LaunchedMaster([
            "--workers", "1", "--graceful-shutdown-timeout", "1",
            "--", "/bin/sh", "-c", "trap '' TERM; exec sleep 1000",
        ])
        let pid = try master.waitForReady(1)[0]
        // SIG_IGN survives exec: once the worker is `sleep`, the trap is in place.
        #expect(Proc.eventually { Proc.comm(of: pid) == "sleep" })
        master.signal(SIGTERM)
        try master.waitFor("signal_sent") { $0.pid == pid && $0["signal"] as? String == "SIGTERM" }
        let escalate = try master.waitFor("escalate")
        #expect((escalate["reason"] as? String)?.contains("graceful_shutdown_timeout") == true)
        let exit = try master.waitFor("exit") { $0.pid == pid }
        #expect(exit["signal"] as? String == "SIGKILL")
        #expect(try master.waitExit() == 0)
        #expect(!Proc.isRunning(pid))
    }

    @Test func aSecondSigtermEscalatesAndExits1() throws {
        let master = try LaunchedMaster(["--workers", "1", "--", "/bin/sh", "-c", "trap '' TERM; exec sleep 1000"])
        let pid = try master.waitForReady(1)[0]
        #expect(Proc.eventually { Proc.comm(of: pid) == "sleep" })
        master.signal(SIGTERM)
        try master.waitFor("stopping")
        master.signal(SIGTERM)
        try master.waitFor("escalate")
        #expect(try master.waitExit() == 1)
        #expect(!Proc.isRunning(pid))
    }

    @Test func sigintIsAFastStopThatExits1() throws {
        let master = try LaunchedMaster(["--workers", "2", "idle"])
        let pids = try master.waitForReady(2)
        master.signal(SIGINT)
        let stopping = try master.waitFor("stopping")
        #expect(stopping["mode"] as? String == "fast")
        #expect(try master.waitExit() == 1)
        #expect(pids.allSatisfy { !Proc.isRunning($0) })
    }

    @Test func mutateSendsHupAndWorkersResetInPlace() throws {
        let master = try LaunchedMaster(["--workers", "2", "--restart-method", "mutate", "idle"])
        let pids = try master.waitForReady(2)
        master.signal(SIGHUP)
        try master.waitFor("reload") { $0["method"] as? String == "mutate" }
        for _ in pids { try master.waitFor("signal_sent") { $0["signal"] as? String == "SIGHUP" } }
        #expect(Proc.eventually { master.log.components(separatedBy: "reset: nothing to reload").count == 3 })
        #expect(Set(Proc.children(of: master.pid)) == Set(pids))
        #expect(master.all("fork").count == 2)
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
    }

    @Test func reloadReplacesEveryWorker() throws {
        let master = try LaunchedMaster(["--workers", "2", "--restart-method", "reload", "idle"])
        let old = try master.waitForReady(2)
        master.signal(SIGHUP)
        try master.waitFor("reload")
        let new = try (0..<2).map { _ in try master.waitFor("fork") { $0["generation"] as? Int == 2 }.pid }
        #expect(Set(new).isDisjoint(with: old))
        #expect(Proc.eventually { Set(Proc.children(of: master.pid)) == Set(new) })
        #expect(master.all("exit").allSatisfy { $0["expected"] as? Bool == true })
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
    }

    @Test func rollingStartsEachNewWorkerBeforeStoppingAnOldOne() throws {
        let master = try LaunchedMaster(["--workers", "3", "--restart-method", "rolling", "idle"])
        let old = try master.waitForReady(3)
        master.signal(SIGHUP)
        try master.waitFor("rolling_done")
        let events = master.events
        for oldPid in old {
            let stopped = master.index(of: "signal_sent") { $0.pid == oldPid && $0["signal"] as? String == "SIGTERM" }
            #expect(stopped != nil)
            // Every old worker's SIGTERM comes after at least as many new workers are ready.
            let newReady = events[..<stopped!].filter { $0["type"] as? String == "ready" && !old.contains($0.pid) }
                .count
            let oldStopped = events[..<stopped!].filter {
                $0["type"] as? String == "signal_sent" && old.contains($0.pid)
            }.count
            #expect(newReady >= oldStopped + 1)
        }
        #expect(
            Proc.eventually {
                Set(Proc.children(of: master.pid)).isDisjoint(with: old) && Proc.children(of: master.pid).count == 3
            })
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
    }

    @Test func ttinAndTtouAddAndRemoveOneWorker() throws {
        let master = try LaunchedMaster(["--workers", "2", "idle"])
        try master.waitForReady(2)
        let oldest = master.all("fork")[0].pid
        master.signal(SIGTTIN)
        let scaleUp = try master.waitFor("scale")
        #expect(scaleUp["to"] as? Int == 3)
        try master.waitForReady(1)
        #expect(Proc.eventually { Proc.children(of: master.pid).count == 3 })
        master.signal(SIGTTOU)
        try master.waitFor("scale") { $0["to"] as? Int == 2 }
        // The oldest worker is the one retired.
        try master.waitFor("exit") { $0.pid == oldest }
        #expect(Proc.eventually { Proc.children(of: master.pid).count == 2 })
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
    }

    @Test(arguments: [["idle"], ["--", "/bin/sleep", "1000"]])
    func sigkillOfTheMasterLeavesNoWorkerAliveAfterOneSecond(program: [String]) throws {
        let master = try LaunchedMaster(["--workers", "3"] + program)
        let pids = try master.waitForReady(3)
        kill(master.pid, SIGKILL)
        _ = try master.waitExit()
        let start = Date()
        while Date().timeIntervalSince(start) < 1.0 && pids.contains(where: Proc.isRunning) { usleep(5_000) }
        #expect(
            pids.allSatisfy { !Proc.isRunning($0) },
            "still alive 1 s after the master died: \(pids.filter(Proc.isRunning))")
    }

    @Test func noZombieOutlivesTheNextReap() throws {
        let master = try LaunchedMaster([
            "--workers", "4", "--fork-throttle-interval", "0.02", "--", "/bin/sh", "-c", "exit 1",
        ])
        try master.waitFor("throttle")
        var zombies: [pid_t: Int] = [:]  // pid → consecutive samples seen as a zombie
        for _ in 0..<100 {
            for child in Proc.children(of: master.pid) where Proc.state(of: child) == "Z" {
                zombies[child, default: 0] += 1
            }
            usleep(20_000)
        }
        // A zombie exists for the instant between exit and waitpid; none may last 10 samples (200 ms).
        #expect(zombies.values.allSatisfy { $0 < 10 }, "long-lived zombies: \(zombies)")
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
        #expect(Proc.children(of: master.pid).isEmpty)
    }

    @Test func theMastersOpenFdCountIsUnchangedAfter200Respawns() throws {
        let master = try LaunchedMaster(["--workers", "2", "--fork-throttle-interval", "0", "idle"])
        var live = try master.waitForReady(2)
        let before = Proc.fdCount(of: master.pid)
        let beforeTargets = Proc.fdTargets(of: master.pid)
        for _ in 0..<200 {
            // Killed right after it is ready, so the service also goes crash-looping: fine here.
            kill(live[0], SIGKILL)
            let replacement = try master.waitFor("fork") { $0["reason"] as? String == "respawn" }.pid
            try master.waitFor("ready") { $0.pid == replacement }
            live = [live[1], replacement]
        }
        #expect(
            Proc.fdCount(of: master.pid) == before, "before: \(beforeTargets)\nafter: \(Proc.fdTargets(of: master.pid))"
        )
        #expect(Proc.threadCount(of: master.pid) == 1)
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
    }

    @Test func aMissingCommandIsABootErrorWithItsErrno() throws {
        let master = try LaunchedMaster(["--workers", "3", "--", "/nonexistent/forkwatch-test-program"])
        let failure = try master.waitFor("exec_failed")
        #expect(failure["errno"] as? Int == Int(ENOENT))
        #expect(failure["message"] as? String == "No such file or directory")
        try master.waitFor("service_state") { $0["state"] as? String == "failed" }
        #expect(try master.waitExit() == 3)
        // Three workers were forked once each, none respawned.
        #expect(master.all("fork").count == 3)
        #expect(master.log.contains("execve failed: No such file or directory"))
    }

    @Test func usr1ReopensTheLogFile() throws {
        let logFile = NSTemporaryDirectory() + "forkwatch-usr1-\(UUID().uuidString).log"
        defer {
            try? FileManager.default.removeItem(atPath: logFile)
            try? FileManager.default.removeItem(atPath: logFile + ".1")
        }
        let master = try LaunchedMaster(["--workers", "1", "--log-file", logFile, "idle"])
        let worker = try master.waitForReady(1)[0]
        func logged(_ text: String, in path: String) -> Bool {
            Proc.eventually { (try? String(contentsOfFile: path, encoding: .utf8))?.contains(text) == true }
        }
        // A worker's lines go to the log file too, not to the master's standard error.
        kill(worker, SIGHUP)
        #expect(logged("idle[\(worker)] reset: nothing to reload", in: logFile))
        #expect(!master.log.contains("reset: nothing to reload"))
        try FileManager.default.moveItem(atPath: logFile, toPath: logFile + ".1")
        master.signal(SIGUSR1)
        try master.waitFor("log_reopened")
        // The master passes SIGUSR1 on; the worker reopens the file at the old path.
        try master.waitFor("signal_sent") { $0.pid == worker && $0["signal"] as? String == "SIGUSR1" }
        #expect(logged("reopened", in: logFile))
        #expect(
            Proc.eventually {
                kill(worker, SIGHUP)
                return (try? String(contentsOfFile: logFile, encoding: .utf8))?.contains("idle[\(worker)] reset")
                    == true
            })
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
        #expect((try? String(contentsOfFile: logFile + ".1", encoding: .utf8))?.contains("fork") == true)
    }

    @Test func workerOutputStaysOutOfTheEventStream() throws {
        let master = try LaunchedMaster([
            "--workers", "2", "--", "/bin/sh", "-c", "echo worker-says-hello; exec sleep 1000",
        ])
        try master.waitForReady(2)
        // The workers' own lines (the master's log quotes the command too, so count whole lines).
        #expect(
            Proc.eventually { master.log.split(separator: "\n").filter { $0 == "worker-says-hello" }.count == 2 },
            "\(master.log)")
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
        #expect(master.strayLines.isEmpty, "\(master.strayLines)")
    }

    @Test func anEventReaderThatGoesAwayDoesNotKillTheMaster() throws {
        let master = try LaunchedMaster(["--workers", "2", "idle"])
        let pids = try master.waitForReady(2)
        master.closeEvents()
        kill(pids[0], SIGKILL)  // events now hit a pipe with no reader: EPIPE, not SIGPIPE
        #expect(
            Proc.eventually {
                Proc.children(of: master.pid).count == 2 && !Proc.children(of: master.pid).contains(pids[0])
            })
        #expect(Proc.isRunning(master.pid))
        // The log line comes with the events flushed after the respawn's fork: wait for it too.
        #expect(Proc.eventually { master.log.contains("events output closed") }, "\(master.log)")
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
    }

    @Test func noForkRunsTheServiceInThisProcess() throws {
        let master = try LaunchedMaster(["run", "--no-fork", "idle"], events: false)
        #expect(Proc.eventually { master.log.contains("no fork") })
        usleep(100_000)
        #expect(Proc.children(of: master.pid).isEmpty)
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
    }
}

@Suite struct BadInputTests {
    @Test(arguments: [
        ("restart_method: sideways\n", ":1: restart_method must be one of reload, mutate, rolling"),
        ("services:\n  idle:\n    workers: 2147483648\n", ":3: services.idle.workers must be 1-100000, got 2147483648"),
        ("report_interval: -1\n", ":1: report_interval must be > 0, got -1"),
        ("services:\n  idle:\n    workers: 0\n", ":3: services.idle.workers must be 1-100000, got 0"),
        ("services:\n  idle:\n    colour: red\n", ":3: unknown option 'services.idle.colour'"),
        ("graceful_shutdown_timeout: soon\n", ":1: graceful_shutdown_timeout must be a number"),
        ("bogus_option: 1\n", ":1: unknown option 'bogus_option'"),
        ("services: [\n", "not valid YAML"),
        ("services:\n  web:\n    command: sleep 100\n    listen: 127.0.0.1\n", "services.web: listen needs a port"),
        ("services:\n  web:\n    command: sleep 100\n    port: 99999\n", ":4: services.web.port must be 0-65535"),
    ])
    func aBadConfigFileIsOneLineExit2AndNothingForked(yaml: String, expected: String) throws {
        let path = NSTemporaryDirectory() + "forkwatch-bad-\(UUID().uuidString).yaml"
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let master = try LaunchedMaster(["run", "--headless", "--config", path], events: false)
        #expect(try master.waitExit() == 2)
        let lines = master.log.split(separator: "\n")
        #expect(lines.count == 1)
        #expect(lines.first?.contains(path) == true)
        #expect(master.log.contains(expected), "\(master.log)")
    }

    @Test(arguments: [
        (["run", "--workers", "0", "idle"], "--workers must be 1-100000, got 0"),
        (["run", "--workers", "2147483648", "idle"], "--workers must be 1-100000, got 2147483648"),
        (["run", "--report-interval=-1", "idle"], "--report-interval must be > 0, got -1"),
        (["run", "--bogus", "idle"], "Unknown option '--bogus'"),
        (["run", "nosuch"], "unknown service 'nosuch'"),
        (["run", "--restart-method", "sideways", "idle"], "--restart-method must be one of"),
        (["run", "--"], "'--' must be followed by a command"),
        (["run", "--config", "/nonexistent/forkwatch.yaml"], "/nonexistent/forkwatch.yaml: cannot read"),
        (["run", "--headless", "--events", "/nonexistent/dir/events", "idle"], "--events /nonexistent/dir/events"),
        (["run", "--workers", "2", "idle"], "the dashboard needs a terminal"),
        (["demo"], "the dashboard needs a terminal"),
        (["top", "--socket", "/nonexistent/forkwatch.sock"], "the dashboard needs a terminal"),
        (
            ["status", "--socket", "/nonexistent/forkwatch.sock"],
            "cannot reach a master at /nonexistent/forkwatch.sock"
        ),
        (["replay", "/nonexistent/recording.events"], "/nonexistent/recording.events: No such file"),
    ])
    func aBadFlagIsOneLineExit2(arguments: [String], expected: String) throws {
        let master = try LaunchedMaster(arguments, events: false)
        #expect(try master.waitExit() == 2)
        #expect(master.log.split(separator: "\n").count == 1, "\(master.log)")
        #expect(master.log.contains(expected), "\(master.log)")
        #expect(!master.log.contains("fork →"))
    }
}

@Suite struct ForkSafetyTests {
    /// The test runner has many threads: a launcher started here must refuse before any fork.
    @Test func aMultithreadedProcessRefusesToLaunch() throws {
        let launcher = ProcessLauncher()
        launcher.launchService("idle", workers: 1) { _ in NeverStarted() }
        let error = #expect(throws: LauncherError.self) { _ = try launcher.wait() }
        #expect(error?.description.contains("single-threaded") == true, "\(String(describing: error))")
    }

    /// A service the refused launcher must never fork.
    final class NeverStarted: Service {
        func start() throws { fatalError("forked by a launcher that should have refused") }
        func wait() {}
        func stop() {}
    }
}
