import Forkwatch
import ForkwatchCore
import Foundation
import Glibc
import Testing

/// The control socket over a real Unix socket, against a real master.
@Suite struct ControlSocketTests {
    private func connect(_ master: LaunchedMaster) throws -> ControlClient {
        for _ in 0..<500 {
            if let client = try? ControlClient(path: master.socketPath) { return client }
            usleep(10_000)
        }
        throw TestFailure("no control socket at \(master.socketPath)")
    }

    private func snapshot(_ line: String?) throws -> Snapshot {
        guard let line, case .snapshot(let snapshot) = try EventCodec.decode(line).kind else {
            throw TestFailure("expected a snapshot, got \(line ?? "nothing")")
        }
        return snapshot
    }

    @Test func statusAndSubscribeStartWithASnapshotThenStreamEvents() throws {
        let master = try LaunchedMaster(["--workers", "2", "idle"])
        let pids = try master.waitForReady(2)
        let client = try connect(master)
        try client.send(.status)
        let status = try snapshot(client.readLine())
        #expect(status.masterPid == master.pid)
        #expect(Set(status.workers.map(\.pid)) == Set(pids))
        #expect(status.services.first?.workers == 2)

        let watcher = try connect(master)
        try watcher.send(.subscribe)
        _ = try snapshot(watcher.readLine())
        let reply = try client.request(.signal(pid: pids[0], signal: .kill))
        #expect(reply["pid"]?.int32 == pids[0])
        // The subscriber sees who sent it, the decoded exit and the respawn.
        var seen: [String] = []
        while let line = try watcher.readLine(timeout: 10) {
            let event = try EventCodec.decode(line)
            seen.append(event.type)
            if case .signalSent(let pid, _, let signal, _, let origin, _) = event.kind {
                #expect(pid == pids[0] && signal == .kill && origin == "you")
            }
            if case .fork(_, _, .respawn, _) = event.kind { break }
        }
        #expect(seen.contains("signal_sent") && seen.contains("exit") && seen.contains("fork"))
        // Stats arrive once a second while someone subscribes, for the master and each worker.
        while let line = try watcher.readLine(timeout: 5) {
            if case .stats(let samples) = try EventCodec.decode(line).kind {
                #expect(samples.contains { $0.pid == master.pid && $0.threads == 1 && $0.rssBytes > 0 })
                break
            }
        }
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
    }

    @Test func scaleReloadAndStopRequests() throws {
        let master = try LaunchedMaster(["--workers", "1", "--restart-method", "reload", "idle"])
        try master.waitForReady(1)
        let client = try connect(master)
        _ = try client.request(.scale(service: "idle", workers: 3))
        try master.waitFor("scale") { $0["to"] as? Int == 3 }
        try master.waitForReady(2)
        _ = try client.request(.reload)
        try master.waitFor("reload")
        try master.waitFor("fork") { $0["generation"] as? Int == 2 }
        _ = try client.request(.stop(mode: .graceful))
        try master.waitFor("stopping") { $0["mode"] as? String == "graceful" }
        #expect(try master.waitExit() == 0)
        #expect(!FileManager.default.fileExists(atPath: master.socketPath))
    }

    @Test(arguments: [
        ("not json at all", "malformed JSON"),
        ("[1,2,3]", "a request is a JSON object"),
        ("{\"pid\": 3}", "missing \"op\""),
        ("{\"op\":\"launch-missiles\"}", "unknown op 'launch-missiles'"),
        ("{\"op\":\"signal\",\"pid\":1,\"signal\":\"SIGFOO\"}", "no such signal: 'SIGFOO'"),
        ("{\"op\":\"signal\",\"pid\":1,\"signal\":\"KILL\"}", "pid 1 is not a live worker"),
        ("{\"op\":\"signal\",\"pid\":-5,\"signal\":\"KILL\"}", "positive whole number"),
        ("{\"op\":\"scale\",\"service\":\"idle\",\"workers\":0}", "scale: workers must be 1-100000, got 0"),
        ("{\"op\":\"scale\",\"service\":\"idle\",\"workers\":100001}", "scale: workers must be 1-100000, got 100001"),
        ("{\"op\":\"scale\",\"service\":\"nope\",\"workers\":2}", "no service named 'nope'"),
        ("{\"op\":\"stop\",\"mode\":\"sideways\"}", "stop mode must be"),
    ])
    func aBadRequestGetsAnErrorAndChangesNothing(line: String, expected: String) throws {
        let master = try LaunchedMaster(["--workers", "2", "idle"])
        let pids = try master.waitForReady(2)
        let client = try connect(master)
        try Posix.writeAll(client.fd, line + "\n")
        let reply = try JSONValue.parse(try #require(try client.readLine()))
        #expect(reply["ok"]?.bool == false)
        #expect(reply["error"]?.string?.contains(expected) == true, "\(reply)")
        // The connection stays usable and nothing changed.
        try client.send(.status)
        let status = try snapshot(client.readLine())
        #expect(Set(status.workers.map(\.pid)) == Set(pids))
        #expect(status.phase == "running")
        #expect(master.all("signal_sent").isEmpty)
    }

    @Test func theMasterPidIsNotAWorker() throws {
        let master = try LaunchedMaster(["--workers", "1", "idle"])
        try master.waitForReady(1)
        let client = try connect(master)
        #expect(throws: ControlError.self) { try client.request(.signal(pid: master.pid, signal: .kill)) }
        #expect(Proc.isRunning(master.pid))
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
    }

    @Test func aLineOverTheLimitIsRefusedAfterTheEarlierRepliesAndTheClientClosed() throws {
        let master = try LaunchedMaster(["--workers", "1", "idle"])
        try master.waitForReady(1)
        let client = try connect(master)
        try Posix.writeAll(client.fd, "{\"op\":\"nope\"}\n" + String(repeating: "x", count: 10_000) + "\n")
        #expect(try client.readLine()?.contains("unknown op") == true)
        #expect(try client.readLine()?.contains("byte limit") == true)
        #expect(try client.readLine() == nil)  // closed
        #expect(Proc.isRunning(master.pid))
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
    }

    @Test func aClientThatClosesItsWritingSideStillGetsItsReplies() throws {
        let master = try LaunchedMaster(["--workers", "1", "idle"])
        try master.waitForReady(1)
        let client = try connect(master)
        // What `echo '…' | socat - UNIX-CONNECT:…` does: send, then shut down the writing side.
        try Posix.writeAll(client.fd, "{\"op\":\"status\"}\n{\"op\":\"nope\"}\n")
        shutdown(client.fd, Int32(SHUT_WR))
        #expect(try snapshot(client.readLine()).masterPid == master.pid)
        #expect(try client.readLine()?.contains("unknown op 'nope'") == true)
        #expect(try client.readLine() == nil)  // then the master closes
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
    }

    @Test func anExistingFileThatIsNotASocketIsNeverReplacedAndAnExistingDirectoryKeepsItsMode() throws {
        let directory = NSTemporaryDirectory() + "forkwatch-shared-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o755])
        defer { try? FileManager.default.removeItem(atPath: directory) }
        FileManager.default.createFile(atPath: directory + "/precious.txt", contents: Data("keep me".utf8))
        let refused = try LaunchedMaster(
            ["run", "--headless", "--control-socket", directory + "/precious.txt", "idle"], events: false)
        #expect(try refused.waitExit() == 2)
        #expect(refused.log.contains("exists and is not a socket"))
        #expect((try? String(contentsOfFile: directory + "/precious.txt", encoding: .utf8)) == "keep me")
        let master = try LaunchedMaster(
            ["run", "--headless", "--events", "-", "--control-socket", directory + "/ctl.sock", "idle"], events: false)
        try master.waitForReady(1)
        let mode = try FileManager.default.attributesOfItem(atPath: directory)[.posixPermissions] as? Int
        #expect(mode == 0o755)
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
    }

    @Test func manyClientsAtOnce() throws {
        let master = try LaunchedMaster(["--workers", "1", "idle"])
        try master.waitForReady(1)
        let clients = try (0..<40).map { _ in try connect(master) }
        for client in clients { try client.send(.subscribe) }
        for client in clients { #expect(try snapshot(client.readLine()).masterPid == master.pid) }
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
        for client in clients {
            // Each subscriber sees the stop and then the master hang up.
            var last: String?
            while let line = try client.readLine(timeout: 5) { last = line }
            #expect(last?.contains("\"type\":\"stopped\"") == true)
        }
    }

    @Test func theSocketIsPrivate() throws {
        let master = try LaunchedMaster(["--workers", "1", "idle"])
        try master.waitForReady(1)
        let socketMode = try FileManager.default.attributesOfItem(atPath: master.socketPath)[.posixPermissions] as? Int
        let dirMode =
            try FileManager.default.attributesOfItem(atPath: (master.socketPath as NSString).deletingLastPathComponent)[
                .posixPermissions] as? Int
        #expect(socketMode == 0o600)
        #expect(dirMode == 0o700)
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
    }

    @Test func anotherUsersUidIsRefused() throws {
        guard getuid() == 0 else { return }  // needs root to become another user; CI runs as root
        let master = try LaunchedMaster(["--workers", "1", "idle"])
        try master.waitForReady(1)
        _ = try connect(master)
        // Open the file-system permissions so only SO_PEERCRED stands in the way.
        let directory = (master.socketPath as NSString).deletingLastPathComponent
        chmod(directory, 0o755)
        chmod(master.socketPath, 0o666)
        defer { chmod(directory, 0o700) }
        let script = """
            import os, socket, sys
            os.setgid(65534); os.setuid(65534)
            s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(sys.argv[1])
            # The master answers at once and hangs up: read, do not send.
            print(s.recv(4096).decode().strip())
            """
        // Debian's python (not a pyenv shim under /root, which the other user cannot read).
        let reply = try runToCompletion(["/usr/bin/python3", "-c", script, master.socketPath]).output
        #expect(reply.contains("permission denied: uid 65534"), "\(reply)")
        #expect(Proc.isRunning(master.pid))
        try master.waitFor("notice") { ($0["message"] as? String)?.contains("refused") == true }
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
    }

    @Test func aStalledClientIsDroppedWhileTheMasterKeepsReaping() throws {
        let master = try LaunchedMaster([
            "--workers", "4", "--fork-throttle-interval", "0", "--control-buffer-limit", "65536",
            "--", "/bin/sh", "-c", "exit 1",
        ])
        let stalled = try connect(master)
        try stalled.send(.subscribe)  // and never read again
        let drop = try master.waitFor("subscriber_dropped", timeout: 30)
        #expect(drop["limit"] as? Int == 65536)
        // The master kept reaping and forking through it and after it.
        let seen = Set(master.all("fork").map(\.pid))
        let later = try master.waitFor("fork") { !seen.contains($0.pid) }
        #expect((later["mono"] as? Double ?? 0) > (drop["mono"] as? Double ?? .infinity))
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
    }

    @Test func withoutAnExplicitPathASecondMasterTakesItsOwnSocketAndClientsAskWhichOne() throws {
        let runtime = NSTemporaryDirectory() + "forkwatch-xdg-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: runtime, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: runtime) }
        let environment = ["XDG_RUNTIME_DIR": runtime]
        let first = try LaunchedMaster(
            ["run", "--headless", "--workers", "1", "idle"], events: false, environment: environment)
        #expect(Proc.eventually { FileManager.default.fileExists(atPath: runtime + "/forkwatch/forkwatch.sock") })
        // One master: found without --socket.
        let status = try LaunchedMaster(["status"], events: false, stdoutToLog: true, environment: environment)
        #expect(try status.waitExit() == 0)
        #expect(status.log.contains("master \(first.pid)"))
        let second = try LaunchedMaster(
            ["run", "--headless", "--workers", "1", "idle"], events: false, environment: environment)
        #expect(
            Proc.eventually {
                FileManager.default.fileExists(atPath: runtime + "/forkwatch/forkwatch-\(second.pid).sock")
            })
        #expect(second.log.contains("another master listens on"))
        // Two: the client asks which.
        let ambiguous = try LaunchedMaster(["status"], events: false, environment: environment)
        #expect(try ambiguous.waitExit() == 2)
        #expect(ambiguous.log.contains("several masters are running"))
        first.signal(SIGTERM)
        second.signal(SIGTERM)
        #expect(try first.waitExit() == 0)
        #expect(try second.waitExit() == 0)
    }

    @Test func aSecondMasterOnTheSameSocketIsRefusedAndAStaleOneReplaced() throws {
        let first = try LaunchedMaster(["--workers", "1", "idle"])
        try first.waitForReady(1)
        let second = try LaunchedMaster(
            ["run", "--headless", "--control-socket", first.socketPath, "idle"], events: false)
        // One master per path: the second exits 1, naming the first (issue 18: not bad input).
        #expect(try second.waitExit() == 1)
        #expect(second.log.contains("another master (pid \(first.pid))"), "\(second.log)")
        kill(first.pid, SIGKILL)  // leaves a stale socket file behind
        _ = try first.waitExit()
        #expect(FileManager.default.fileExists(atPath: first.socketPath))
        let third = try LaunchedMaster(
            ["run", "--headless", "--events", "-", "--control-socket", first.socketPath, "idle"], events: false)
        try third.waitForReady(1)
        third.signal(SIGTERM)
        #expect(try third.waitExit() == 0)
    }
}
