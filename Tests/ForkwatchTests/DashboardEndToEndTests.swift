import Forkwatch
import ForkwatchCore
import Foundation
import Glibc
import Testing

/// A terminal the test drives as a person would: a tmux session running bash.
final class TmuxSession {
    let name = "fw-\(UUID().uuidString.prefix(8))"

    init(width: Int = 120, height: Int = 36) throws {
        // This may start the tmux server, which would hold a captured stdout open forever.
        try tmux(
            captureOutput: false,
            [
                "new-session", "-d", "-s", name, "-x", "\(width)", "-y", "\(height)",
                "-e", "LANG=C.UTF-8", "-e", "PS1=$ ", "bash", "--norc", "--noprofile",
            ])
    }

    deinit { _ = try? tmux(captureOutput: false, ["kill-session", "-t", name]) }

    static var available: Bool { FileManager.default.isExecutableFile(atPath: "/usr/bin/tmux") }

    /// Runs tmux and returns what it printed (never through a pipe: a `new-session` may start the
    /// tmux server, which keeps the stdout it inherited).
    @discardableResult
    func tmux(captureOutput: Bool = true, _ arguments: [String]) throws -> String {
        try runToCompletion(["/usr/bin/tmux"] + arguments, captureOutput: captureOutput).output
    }

    func type(_ text: String) throws { try tmux(captureOutput: false, ["send-keys", "-t", name, "-l", text]) }
    func press(_ key: String) throws { try tmux(captureOutput: false, ["send-keys", "-t", name, key]) }
    func screen() throws -> String { try tmux(["capture-pane", "-p", "-t", name]) }

    /// Waits until the screen satisfies `condition`; returns that screen.
    @discardableResult
    func waitFor(_ what: String, timeout: Double = 20, _ condition: (String) -> Bool) throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        var last = ""
        while Date() < deadline {
            last = try screen()
            if condition(last) { return last }
            usleep(50_000)
        }
        throw TestFailure("the screen never showed \(what) within \(timeout) s; it shows:\n\(last)")
    }
}

@Suite(.serialized) struct DashboardEndToEndTests {
    @Test func killAWorkerFromTheKeyboardThenQuitAndStop() throws {
        guard TmuxSession.available else {
            Issue.record("tmux is not installed (.ci/run installs it)")
            return
        }
        let socket = NSTemporaryDirectory() + "forkwatch-e2e-\(UUID().uuidString.prefix(8))/ctl.sock"
        let session = try TmuxSession()
        try session.waitFor("a shell prompt") { $0.contains("$") }
        try session.type("\(forkwatchBinary) run --workers 3 --control-socket \(socket) idle")
        try session.press("Enter")
        try session.waitFor("the dashboard with 3 workers") { $0.contains("WORKERS") && $0.contains("3/3") }

        // The workers, from the master itself.
        let client = try ControlClient(path: socket)
        let before = try workerPids(client)
        let masterPid = try snapshot(client).masterPid
        #expect(before.count == 3)
        // Whatever happens below, nothing is left behind (the master outlives a dashboard by design).
        defer {
            kill(masterPid, SIGKILL)
            for pid in before { kill(pid, SIGKILL) }
        }

        // Select a worker: the cursor starts on the first one; one ↓ moves it to the next.
        let first = try session.waitFor("the first worker selected") {
            selectedPid(in: $0).map(before.contains) ?? false
        }
        let initial = selectedPid(in: first)!
        try session.press("Down")
        let moved = try session.waitFor("the selection moved") { screen in
            selectedPid(in: screen).map { $0 != initial && before.contains($0) } ?? false
        }
        let victim = selectedPid(in: moved)!

        try session.type("k")
        try session.waitFor("the kill confirmation for \(victim)") { $0.contains("Send SIGKILL to \(victim)") }
        try session.type("y")
        let afterKill = try session.waitFor("the decoded exit") { $0.contains("killed by SIGKILL") }
        #expect(afterKill.contains("\(victim)"))
        let after = try waitForRespawn(client, replacing: victim, among: before)
        let replacement = after.subtracting(before).first!
        defer { kill(replacement, SIGKILL) }
        try session.waitFor("the respawned pid \(replacement)") { $0.contains("\(replacement)") }

        // Quit, asking to stop the services.
        try session.type("q")
        try session.waitFor("the quit question") { $0.lowercased().contains("stop the services") }
        try session.type("s")
        try session.waitFor("the shell back") { $0.contains("services stopped") }
        let shellPid = try #require(
            Int32(
                try session.tmux(["display-message", "-p", "-t", session.name, "#{pane_pid}"])
                    .trimmingCharacters(in: .whitespacesAndNewlines)))
        // Nothing is left: not the master, not a worker, nothing under the shell.
        #expect(Proc.eventually(timeout: 5) { !Proc.isRunning(masterPid) && after.allSatisfy { !Proc.isRunning($0) } })
        #expect(Proc.children(of: shellPid).isEmpty)

        // The terminal is back in cooked mode with echo.
        try session.type("stty -a | tr ' ' '\\n' | grep -xE -- '-?(icanon|echo)' | tr '\\n' ' '; echo END")
        try session.press("Enter")
        let stty = try session.waitFor("stty's answer") {
            $0.contains("icanon echo END") || $0.contains("-icanon") || $0.contains("-echo ")
        }
        #expect(stty.contains("icanon echo END"), "\(stty)")
    }

    @Test func theDemoFillsThePeriodicTasksPanel() throws {
        guard TmuxSession.available else {
            Issue.record("tmux is not installed (.ci/run installs it)")
            return
        }
        let directory = NSTemporaryDirectory() + "forkwatch-e2e-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let session = try TmuxSession(width: 130, height: 40)
        try session.waitFor("a shell prompt") { $0.contains("$") }
        try session.type(
            "\(forkwatchBinary) demo --periodic-fuzzy-delay 0 --control-socket \(directory)/ctl.sock --db \(directory)/services.sqlite"
        )
        try session.press("Enter")
        let client = try ControlClient(path: try waitForSocket(directory + "/ctl.sock"))
        let demo = try snapshot(client)
        defer {
            kill(demo.masterPid, SIGKILL)
            for worker in demo.workers { kill(worker.pid, SIGKILL) }
        }
        let screen = try session.waitFor("the periodic tasks with their timings", timeout: 30) { screen in
            screen.contains("PERIODIC TASKS") && screen.contains("_discover_hosts") && screen.contains("_sync_host_ca")
                && (screen.contains("heartbeat: report_count") || screen.contains("heartbeat #"))
        }
        #expect(screen.contains("every"))
        #expect(screen.contains("ms"))
        try session.type("q")
        try session.waitFor("the quit question") { $0.lowercased().contains("stop the services") }
        try session.type("s")
        try session.waitFor("the shell back", timeout: 30) { $0.contains("services stopped") }
    }

    @Test func replayARecordingThenSigtermRestoresTheTerminal() throws {
        guard TmuxSession.available else {
            Issue.record("tmux is not installed (.ci/run installs it)")
            return
        }
        // Record a short run: a worker killed, its exit decoded, its respawn.
        let recorder = try LaunchedMaster(["--workers", "2", "idle"])
        let pids = try recorder.waitForReady(2)
        kill(pids[0], SIGKILL)
        try recorder.waitFor("fork") { $0["reason"] as? String == "respawn" }
        recorder.signal(SIGTERM)
        #expect(try recorder.waitExit() == 0)
        let recording = NSTemporaryDirectory() + "forkwatch-replay-\(UUID().uuidString.prefix(8)).events"
        defer { try? FileManager.default.removeItem(atPath: recording) }
        let lines = recorder.events.compactMap { try? JSONSerialization.data(withJSONObject: $0) }
            .map { String(decoding: $0, as: UTF8.self) }
        try (lines.joined(separator: "\n") + "\n").write(toFile: recording, atomically: true, encoding: .utf8)

        let session = try TmuxSession()
        try session.waitFor("a shell prompt") { $0.contains("$") }
        try session.type("\(forkwatchBinary) replay --speed 4 \(recording)")
        try session.press("Enter")
        try session.waitFor("the replayed kill and respawn") {
            $0.contains("REPLAY") && $0.contains("killed by SIGKILL")
        }
        try session.type(" ")
        try session.waitFor("the pause") { $0.lowercased().contains("paused") }
        // SIGTERM to the dashboard from outside: it must give the terminal back.
        let replayPid = try #require(
            Int32(
                try session.tmux(["display-message", "-p", "-t", session.name, "#{pane_pid}"])
                    .trimmingCharacters(in: .whitespacesAndNewlines)
            ).flatMap { Proc.children(of: $0).first })
        kill(replayPid, SIGTERM)
        try session.waitFor("the shell back") { $0.contains("dashboard closed by SIGTERM") }
        try session.type("stty -a | tr ' ' '\\n' | grep -xE -- '-?(icanon|echo)' | tr '\\n' ' '; echo END")
        try session.press("Enter")
        let stty = try session.waitFor("stty's answer") {
            $0.contains("icanon echo END") || $0.contains("-icanon") || $0.contains("-echo ")
        }
        #expect(stty.contains("icanon echo END"), "\(stty)")
    }

    private func waitForSocket(_ path: String) throws -> String {
        for _ in 0..<400 {
            if (try? ControlClient(path: path)) != nil { return path }
            usleep(25_000)
        }
        throw TestFailure("no control socket at \(path)")
    }

    @Test func aDashboardDroppedForFallingBehindReconnectsFromASnapshotAndSaysSo() throws {
        guard TmuxSession.available else {
            Issue.record("tmux is not installed (.ci/run installs it)")
            return
        }
        let socket = NSTemporaryDirectory() + "forkwatch-e2e-\(UUID().uuidString.prefix(8))/ctl.sock"
        let eventsFile = NSTemporaryDirectory() + "forkwatch-e2e-\(UUID().uuidString.prefix(8)).events"
        defer { try? FileManager.default.removeItem(atPath: eventsFile) }
        let session = try TmuxSession()
        try session.waitFor("a shell prompt") { $0.contains("$") }
        try session.type(
            "\(forkwatchBinary) run --workers 4 --fork-throttle-interval 0 --control-buffer-limit 65536 "
                + "--control-socket \(socket) --events \(eventsFile) -- /bin/sh -c 'exit 1'")
        try session.press("Enter")
        try session.waitFor("the dashboard") { $0.contains("WORKERS") }
        let watcher = try ControlClient(path: socket)
        let masterPid = try snapshot(watcher).masterPid
        defer { kill(masterPid, SIGKILL) }
        let shellPid = try #require(
            Int32(
                try session.tmux(["display-message", "-p", "-t", session.name, "#{pane_pid}"])
                    .trimmingCharacters(in: .whitespacesAndNewlines)))
        let dashboard = try #require(Proc.children(of: shellPid).first { Proc.comm(of: $0) == "forkwatch" })

        // Stopped (kill -STOP: the dashboard reads Ctrl-Z as a key), it reads nothing while the
        // crash loop writes events at full speed; the shell takes the terminal back meanwhile.
        kill(dashboard, SIGSTOP)
        let dropped = Proc.eventually(timeout: 30) {
            let events = (try? String(contentsOfFile: eventsFile, encoding: .utf8)) ?? ""
            return events.contains("\"type\":\"subscriber_dropped\"")
                && events.contains("\"pid\":\(dashboard),\"queued\"")
        }
        #expect(dropped, "the master never dropped the stopped dashboard")
        try session.waitFor("the shell's job report") { $0.contains("Stopped") }
        try session.type("fg")
        try session.press("Enter")
        try session.waitFor("the reconnection message") { $0.contains("reconnected: re-synced from a fresh snapshot") }
        try session.waitFor("the whole screen again") { $0.contains("WORKERS") && $0.contains("/4 workers") }
        try session.type("q")
        try session.waitFor("the quit question") { $0.lowercased().contains("stop the services") }
        try session.type("s")
        try session.waitFor("the shell back") { $0.contains("services stopped") }
        #expect(Proc.eventually(timeout: 30) { !Proc.isRunning(masterPid) && !Proc.isRunning(dashboard) })
    }

    private func snapshot(_ client: ControlClient) throws -> Snapshot {
        try client.send(.status)
        let line = try #require(try client.readLine())
        guard case .snapshot(let snapshot) = try EventCodec.decode(line).kind else { throw TestFailure("no snapshot") }
        return snapshot
    }

    private func workerPids(_ client: ControlClient) throws -> Set<Int32> {
        Set(try snapshot(client).workers.map(\.pid))
    }

    private func waitForRespawn(
        _ client: ControlClient, replacing victim: Int32, among before: Set<Int32>
    ) throws -> Set<Int32> {
        var now: Set<Int32> = []
        for _ in 0..<400 {
            now = try workerPids(client)
            if now.count == 3, !now.contains(victim) { return now }
            usleep(50_000)
        }
        throw TestFailure("no replacement for \(victim): workers \(now), before \(before)")
    }
}

/// The pid on the row marked as selected ('>' before the pid).
func selectedPid(in screen: String) -> Int32? {
    for line in screen.split(separator: "\n") {
        guard let marker = line.firstIndex(of: ">") else { continue }
        // After the marker come the tree's branch characters, then the pid.
        let rest = line[line.index(after: marker)...].drop { !$0.isNumber }
        if let pid = Int32(rest.prefix { $0.isNumber }) { return pid }
    }
    return nil
}
