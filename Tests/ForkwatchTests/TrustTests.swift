import Foundation
import Glibc
import Testing

/// A master that trusts nothing it did not make: crash loops that cannot starve it, a run-time
/// directory and files another user could have planted, listeners that are not a master, two
/// masters on one path, and what a worker leaves behind.
@Suite struct TrustTests {
    let directory: String

    init() throws {
        directory = NSTemporaryDirectory() + "forkwatch-trust-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700])
    }

    private func pids(matching pattern: String) -> [pid_t] {
        let output = (try? runToCompletion(["/usr/bin/pgrep", "-x", "-f", pattern]).output) ?? ""
        return output.split(separator: "\n").compactMap { pid_t($0) }
    }

    /// Throttle 0: a child that dies as fast as it is forked never keeps the master from SIGTERM
    /// (reaping records exits; forks come after the reap loop, a bounded number a pass).
    @Test func aCrashLoopWithoutThrottleStillStopsOnSigterm() throws {
        let master = try LaunchedMaster(["--workers", "32", "--fork-throttle-interval", "0", "--", "/bin/true"])
        _ = try master.waitFor("fork")
        usleep(2_000_000)  // the crash loop at full speed
        master.signal(SIGTERM)
        let sent = Date()
        let code = try master.waitExit(timeout: 10)
        let took = Date().timeIntervalSince(sent)
        _ = try? master.waitFor("stopped", timeout: 5)
        let forks = master.all("fork").count
        #expect(code == 0)
        #expect(took < 5, "stopped \(took) s after SIGTERM (target: under 1 s)")
        #expect(forks > 32, "the crash loop ran (\(forks) forks seen)")
    }

    /// The run-time directory must be ours and private: a directory another user made first (or
    /// a symbolic link, or one others may write in) is refused, naming what is wrong.
    @Test(arguments: ["other-owner", "symlink", "world-writable"])
    func aRunTimeDirectoryThatIsNotOursIsRefused(kind: String) throws {
        let runtime = directory + "/xdg-\(kind)"
        try FileManager.default.createDirectory(atPath: runtime, withIntermediateDirectories: true)
        let planted = runtime + "/forkwatch"
        switch kind {
        case "other-owner":
            guard getuid() == 0 else { return }  // chown needs root; CI runs as root
            mkdir(planted, 0o700)
            chown(planted, 65534, 65534)
        case "symlink":
            mkdir(runtime + "/elsewhere", 0o700)
            symlink(runtime + "/elsewhere", planted)
        default:
            mkdir(planted, 0o700)
            chmod(planted, 0o777)
        }
        let result = try LaunchedMaster(
            ["run", "--headless", "idle"], events: false,
            environment: ["XDG_RUNTIME_DIR": runtime])
        #expect(try result.waitExit() == 2)
        let expected = [
            "other-owner": "owned by uid 65534", "symlink": "symbolic link", "world-writable": "lets other users write",
        ]
        #expect(result.log.contains("refusing \(planted)") && result.log.contains(expected[kind]!), "\(result.log)")
        #expect(!FileManager.default.fileExists(atPath: planted + "/forkwatch.sock"))
    }

    /// A log file planted as a symbolic link is never followed.
    @Test func aLogFileThatIsASymbolicLinkIsRefused() throws {
        let target = directory + "/precious"
        FileManager.default.createFile(atPath: target, contents: Data("keep\n".utf8))
        symlink(target, directory + "/master.log")
        let result = try LaunchedMaster(
            ["run", "--headless", "--control-socket", "none", "--log-file", directory + "/master.log", "idle"],
            events: false)
        #expect(try result.waitExit() == 2)
        #expect(result.log.contains("symbolic link"), "\(result.log)")
        #expect((try? String(contentsOfFile: target, encoding: .utf8)) == "keep\n")
    }

    /// A listener of another user at the socket path is not a master: `stop` refuses to talk to
    /// it instead of reporting success.
    @Test func aFakeMasterOfAnotherUserIsRefusedByStop() throws {
        guard getuid() == 0 else { return }  // needs root to become another user; CI runs as root
        // A directory the other user can reach (ours is 0700).
        let shared = NSTemporaryDirectory() + "forkwatch-fake-\(UUID().uuidString.prefix(8))"
        mkdir(shared, 0o777)
        chmod(shared, 0o777)
        defer { try? FileManager.default.removeItem(atPath: shared) }
        let socket = shared + "/fake.sock"
        let script = """
            import os, socket, sys, time
            os.setgid(65534); os.setuid(65534)
            s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o777); s.listen(8)
            print("listening", flush=True)
            s.settimeout(10)
            try:
                c, _ = s.accept(); c.settimeout(2)
                data = c.recv(4096)
                open(sys.argv[2], "wb").write(data)
                c.sendall(b'{"ok":true,"op":"stop"}\\n'); time.sleep(1)
            except Exception:
                pass
            """
        let fake = try LaunchedMaster(
            ["-c", script, socket, shared + "/received"], events: false,
            stdoutToLog: true, binary: "/usr/bin/python3")
        for _ in 0..<500 where !fake.log.contains("listening") { usleep(10_000) }
        let stop = try runToCompletion([forkwatchBinary, "stop", "--socket", socket])
        #expect(stop.status != 0, "\(stop.output)")
        #expect(stop.output.contains("runs as uid 65534"), "\(stop.output)")
        usleep(200_000)
        let received = (try? String(contentsOfFile: shared + "/received", encoding: .utf8)) ?? ""
        #expect(!received.contains("stop"), "the fake master was sent: \(received)")
    }

    /// One master per socket path: started together, one serves and the other exits 1 naming it.
    @Test func twoMastersRacedForOnePathOneWinsEveryTime() throws {
        let socket = directory + "/race.sock"
        for round in 0..<20 {
            let first = try LaunchedMaster(
                ["run", "--headless", "--events", "-", "--control-socket", socket, "idle"], events: false)
            let second = try LaunchedMaster(
                ["run", "--headless", "--events", "-", "--control-socket", socket, "idle"], events: false)
            var loser: LaunchedMaster?
            let deadline = Date().addingTimeInterval(10)
            while loser == nil && Date() < deadline {
                if !Proc.isRunning(first.pid) { loser = first } else if !Proc.isRunning(second.pid) { loser = second }
                usleep(5_000)
            }
            let lost = try #require(loser, "round \(round): both masters still run")
            let winner = lost === first ? second : first
            #expect(try lost.waitExit() == 1, "round \(round): \(lost.log)")
            #expect(lost.log.contains("another master (pid \(winner.pid))"), "round \(round): \(lost.log)")
            try winner.waitForReady(1)
            winner.signal(SIGTERM)
            #expect(try winner.waitExit() == 0)
        }
    }

    /// What a worker starts goes with it: after a graceful stop nothing is left; after the master
    /// is SIGKILLed, the workers die with it and their children are ended by the next master on
    /// the same socket path.
    @Test func aWorkersChildrenDieWithTheService() throws {
        let digits = UUID().uuidString.utf8.prefix(8).map { String($0 % 10) }.joined()
        try childrenEndWithTheService(
            child: "sleep 1000.\(digits)", options: [], socket: directory + "/orphans.sock",
            leftoversNotice: "previous master", killedBy: "killed (SIGKILL)")
    }

    /// With a cgroup v2 for the workers, even what leaves its worker's process group (setsid)
    /// ends with the service: at a graceful stop, and when the next master starts after one was
    /// SIGKILLed (cgroup.kill).
    @Test(.enabled(if: CgroupV2.mount != nil, "skipped: no writable cgroup v2 with cgroup.kill on this machine"))
    func aCgroupEndsEvenWhatLeftItsProcessGroup() throws {
        let cgroup = try #require(CgroupV2.mount) + "/forkwatch-test-\(UUID().uuidString.prefix(8))"
        defer { rmdir(cgroup) }
        let digits = UUID().uuidString.utf8.prefix(8).map { String($0 % 10) }.joined()
        try childrenEndWithTheService(
            child: "sleep 1001.\(digits)", setsid: true, options: ["--workers-cgroup", cgroup],
            socket: directory + "/cgroup.sock", leftoversNotice: "workers' cgroup", killedBy: "killed (cgroup.kill)"
        ) { pids in
            let members = ((try? String(contentsOfFile: cgroup + "/cgroup.procs", encoding: .utf8)) ?? "")
                .split(separator: "\n")
            #expect(pids.allSatisfy { members.contains(Substring(String($0))) }, "\(pids) in \(members)")
        }
        for _ in 0..<100
        where !(((try? String(contentsOfFile: cgroup + "/cgroup.procs", encoding: .utf8)) ?? "").isEmpty) {
            usleep(10_000)
        }
    }

    /// Two workers each start `child` (a distinctive command line for pgrep): none is left after
    /// a graceful stop; after a SIGKILL of the master they are, until the next master on the same
    /// socket starts, says so (`leftoversNotice` … `killedBy`) and ends them.
    private func childrenEndWithTheService(
        child: String, setsid: Bool = false, options: [String], socket: String, leftoversNotice: String,
        killedBy: String, whileRunning: ([pid_t]) -> Void = { _ in }
    ) throws {
        let pattern = child.replacingOccurrences(of: ".", with: "\\.")
        let run = ["run", "--headless", "--events", "-", "--control-socket", socket] + options
        let workers = ["--workers", "2", "--", "/bin/sh", "-c", "\(setsid ? "setsid " : "")\(child) & wait"]
        func waitForChildren(_ count: Int) {
            for _ in 0..<200 where pids(matching: pattern).count != count { usleep(10_000) }
        }
        let master = try LaunchedMaster(run + workers, events: false)
        try master.waitForReady(2)
        waitForChildren(2)
        #expect(pids(matching: pattern).count == 2)
        whileRunning(pids(matching: pattern))
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
        waitForChildren(0)
        #expect(pids(matching: pattern).isEmpty, "left after a graceful stop: \(pids(matching: pattern))")

        let killed = try LaunchedMaster(run + workers, events: false)
        try killed.waitForReady(2)
        waitForChildren(2)
        killed.signal(SIGKILL)
        _ = try killed.waitExit()
        usleep(300_000)
        let survivors = pids(matching: pattern)
        defer { for pid in survivors { kill(pid, SIGKILL) } }
        #expect(survivors.count == 2, "a SIGKILLed master's workers' children outlive it: \(survivors)")
        let next = try LaunchedMaster(run + ["idle"], events: false)
        try next.waitForReady(1)
        // Said at start, before the first ready.
        let notice = next.all("notice").compactMap { $0["message"] as? String }.first { $0.contains(leftoversNotice) }
        #expect(notice?.contains(killedBy) == true, "\(next.all("notice"))")
        waitForChildren(0)
        #expect(pids(matching: pattern).isEmpty, "left after the next master started: \(pids(matching: pattern))")
        next.signal(SIGTERM)
        #expect(try next.waitExit() == 0)
    }
}

/// The cgroup v2 hierarchy, where this machine has one the tests may write in.
enum CgroupV2 {
    static let mount: String? = {
        let info = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        for line in info.split(separator: "\n") where line.contains(" - cgroup2 ") {
            let fields = line.split(separator: " ")
            guard fields.count > 4 else { continue }
            let mount = String(fields[4])
            if access(mount + "/cgroup.procs", W_OK) == 0, access(mount, W_OK) == 0 {
                let probe = mount + "/forkwatch-probe-\(getpid())"
                guard mkdir(probe, 0o755) == 0 else { continue }
                defer { rmdir(probe) }
                if FileManager.default.fileExists(atPath: probe + "/cgroup.kill") { return mount }
            }
        }
        return nil
    }()
}
