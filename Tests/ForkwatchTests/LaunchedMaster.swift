import CForkwatch
import Foundation
import Glibc
import Testing

/// The built `forkwatch` binary next to this test bundle (SwiftPM builds every product for `swift test`).
let forkwatchBinary: String = {
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    return URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("forkwatch").path
}()

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A forkwatch process started by a test: its events (`--events -`) come back over a pipe, its
/// log lines go to a file. Every wait is bounded; `deinit` kills and reaps whatever is left.
final class LaunchedMaster {
    let pid: pid_t
    let logPath: String
    /// The control socket (each master gets its own, so tests can run side by side).
    let socketPath: String
    private let eventsFD: Int32
    private var pending = Data()
    private(set) var events: [[String: Any]] = []
    /// Lines on the event stream that were not JSON events (a worker writing to stdout).
    private(set) var strayLines: [String] = []
    private var eventsClosed = false
    private var cursor = 0
    private var exitStatus: Int32?
    private var seenWorkers = Set<Int32>()

    /// `events`: run `forkwatch run --headless --events -` with these arguments; otherwise the
    /// arguments are the whole command line. `stdoutToLog`: standard output goes to the log too.
    /// `binary`: another program of this package (the embedding example), given whole command lines.
    init(
        _ arguments: [String], events: Bool = true, stdoutToLog: Bool = false, environment: [String: String] = [:],
        binary: String = forkwatchBinary
    ) throws {
        logPath = NSTemporaryDirectory() + "forkwatch-test-\(UUID().uuidString).log"
        // A directory of its own: the master makes it 0700, and a test may loosen it.
        socketPath = NSTemporaryDirectory() + "forkwatch-test-\(UUID().uuidString.prefix(8))/ctl.sock"
        var fds: [Int32] = [-1, -1]
        guard fw_pipe_cloexec(&fds, 0) == 0 else { throw TestFailure("pipe2 failed") }
        eventsFD = fds[0]
        _ = fcntl(eventsFD, F_SETFL, fcntl(eventsFD, F_GETFL) | O_NONBLOCK)

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, logPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        if stdoutToLog {
            posix_spawn_file_actions_adddup2(&actions, 2, 1)
        } else {
            posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        }

        // Its own process group (no stray terminal signals), default dispositions, empty mask.
        var attributes = cleanSpawnAttributes(ownProcessGroup: true)
        defer { posix_spawnattr_destroy(&attributes) }

        let argv =
            [binary] + (events ? ["run", "--headless", "--events", "-", "--control-socket", socketPath] : [])
            + arguments
        let cArgs = argv.map { strdup($0) } + [nil]
        defer { cArgs.forEach { free($0) } }
        var child: pid_t = 0
        var variables = ProcessInfo.processInfo.environment
        for (key, value) in environment { variables[key] = value }
        let cEnvironment = variables.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { cEnvironment.forEach { free($0) } }
        let rc = posix_spawn(&child, binary, &actions, &attributes, cArgs, cEnvironment)
        close(fds[1])
        guard rc == 0 else { throw TestFailure("posix_spawn \(binary): \(String(cString: strerror(rc)))") }
        pid = child
    }

    deinit {
        if exitStatus == nil {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
        // Workers die with the master (PR_SET_PDEATHSIG); make sure of it.
        for worker in seenWorkers { kill(worker, SIGKILL) }
        if !eventsClosed { close(eventsFD) }
        try? FileManager.default.removeItem(atPath: logPath)
        try? FileManager.default.removeItem(atPath: (socketPath as NSString).deletingLastPathComponent)
    }

    /// Stops reading the event stream and closes it, as a consumer that goes away would.
    func closeEvents() {
        close(eventsFD)
        eventsClosed = true
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    func signal(_ signal: Int32) { kill(pid, signal) }

    /// Reads whatever events have arrived, waiting up to `timeout` for at least one more.
    @discardableResult
    private func pump(timeout: Double) -> Bool {
        guard !eventsClosed else {
            usleep(UInt32(timeout * 1e6))
            return false
        }
        var entry = pollfd(fd: eventsFD, events: Int16(POLLIN), revents: 0)
        guard poll(&entry, 1, Int32(timeout * 1000)) > 0 else { return false }
        var buffer = [UInt8](repeating: 0, count: 65_536)
        var any = false
        while true {
            let n = read(eventsFD, &buffer, buffer.count)
            if n <= 0 { break }
            pending.append(contentsOf: buffer[0..<n])
            any = true
        }
        while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
            let line = pending[pending.startIndex..<newline]
            pending.removeSubrange(pending.startIndex...newline)
            guard let object = try? JSONSerialization.jsonObject(with: line) as? [String: Any] else {
                strayLines.append(String(decoding: line, as: UTF8.self))
                continue
            }
            events.append(object)
            if object["type"] as? String == "fork", let pid = object["pid"] as? Int { seenWorkers.insert(Int32(pid)) }
        }
        return any
    }

    /// Reads what has arrived without waiting: a test busy elsewhere keeps the master's blocking
    /// event writes to this pipe from stalling it.
    func readArrivedEvents() {
        while pump(timeout: 0) {}
    }

    /// The next event of `type` (after the last one returned) that satisfies `predicate`.
    @discardableResult
    func waitFor(
        _ type: String, timeout: Double = 15, where predicate: ([String: Any]) -> Bool = { _ in true }
    ) throws -> [String: Any] {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            while cursor < events.count {
                let event = events[cursor]
                cursor += 1
                if event["type"] as? String == type && predicate(event) { return event }
            }
            let left = deadline.timeIntervalSinceNow
            if left <= 0 {
                throw TestFailure(
                    "no '\(type)' event within \(timeout) s; events: \(events.suffix(8).map { $0["type"] as? String ?? "?" })\nlog:\n\(log.suffix(3000))"
                )
            }
            pump(timeout: min(left, 0.2))
        }
    }

    /// `count` ready events; returns their pids.
    func waitForReady(_ count: Int, service: String? = nil) throws -> [Int32] {
        try (0..<count).map { _ in
            Int32(try waitFor("ready") { service == nil || $0["service"] as? String == service }["pid"] as! Int)
        }
    }

    /// All events of `type` read so far.
    func all(_ type: String) -> [[String: Any]] { events.filter { $0["type"] as? String == type } }

    func index(of type: String, where predicate: ([String: Any]) -> Bool) -> Int? {
        events.firstIndex { $0["type"] as? String == type && predicate($0) }
    }

    /// Waits for the master to exit; returns its exit code (or 128 + signal).
    func waitExit(timeout: Double = 15) throws -> Int32 {
        if let exitStatus { return exitStatus }
        let deadline = Date().addingTimeInterval(timeout)
        var status: Int32 = 0
        while Date() < deadline {
            let rc = waitpid(pid, &status, WNOHANG)
            if rc == pid {
                let low = status & 0x7f
                exitStatus = low == 0 ? (status >> 8) & 0xff : 128 + low
                while pump(timeout: 0.05) {}
                return exitStatus!
            }
            pump(timeout: 0.02)
        }
        throw TestFailure("master \(pid) did not exit within \(timeout) s\nlog:\n\(log.suffix(3000))")
    }
}

// MARK: - /proc

enum Proc {
    /// Direct children of `pid`.
    static func children(of pid: pid_t) -> [pid_t] {
        let text = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? ""
        return text.split(separator: " ").compactMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// The one-letter state (R, S, Z, …) or nil when the process is gone.
    static func state(of pid: pid_t) -> Character? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        return stat[stat.index(close, offsetBy: 2)]
    }

    /// Alive and not a zombie.
    static func isRunning(_ pid: pid_t) -> Bool {
        guard let state = state(of: pid) else { return false }
        return state != "Z" && state != "X"
    }

    static func fdCount(of pid: pid_t) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
    }

    /// What each open fd of `pid` points at (`pipe:[1234]`, a path), for failure messages.
    static func fdTargets(of pid: pid_t) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
        return names.sorted { Int($0) ?? 0 < Int($1) ?? 0 }.map {
            "\($0)→" + ((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\($0)")) ?? "?")
        }
    }

    /// A `/proc/PID/status` figure in kB (`VmRSS`, `RssFile`, ...), -1 if unreadable.
    static func statusKB(_ field: String, of pid: pid_t) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(field + ":") }) else { return -1 }
        return Int(
            line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.map {
                $0.trimmingCharacters(in: .whitespaces)
            } ?? "") ?? -1
    }

    /// Whether this process's page at `address` is mapped now (`/proc/self/pagemap` bit 63).
    static func isMapped(_ address: UnsafeMutableRawPointer) -> Bool {
        let fd = open("/proc/self/pagemap", O_RDONLY)
        defer { close(fd) }
        var entry: UInt64 = 0
        let offset = off_t(UInt(bitPattern: address) / UInt(sysconf(Int32(_SC_PAGESIZE))) * 8)
        guard pread(fd, &entry, 8, offset) == 8 else { return false }
        return entry >> 63 & 1 == 1
    }

    static func threadCount(of pid: pid_t) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task").count) ?? -1
    }

    static func comm(of pid: pid_t) -> String {
        ((try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)) ?? "").trimmingCharacters(
            in: .whitespacesAndNewlines)
    }

    /// Polls `condition` every 10 ms until it holds or `timeout` passes.
    static func eventually(timeout: Double = 10, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition() { return true }
            usleep(10_000)
        }
        return condition()
    }
}

extension Dictionary where Key == String, Value == Any {
    var pid: Int32 { Int32(self["pid"] as? Int ?? -1) }
}

/// Runs a program to its end and returns its exit status and output (stdout and stderr, via a
/// file). posix_spawn and waitpid on that pid, not Foundation's Process: its SIGCHLD-based reaping
/// was seen to leave a child a zombie, and the test waiting forever, in a run without a terminal.
@discardableResult
func runToCompletion(
    _ argv: [String], captureOutput: Bool = true, timeout: Double = 20
) throws -> (status: Int32, output: String) {
    let output = NSTemporaryDirectory() + "forkwatch-run-\(UUID().uuidString.prefix(8)).out"
    defer { try? FileManager.default.removeItem(atPath: output) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(
        &actions, 1, captureOutput ? output : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    let cArgs = argv.map { strdup($0) } + [nil]
    defer { cArgs.forEach { free($0) } }
    // Default dispositions and an empty mask: the test runner blocks signals in its threads, and a
    // tmux server started from here would otherwise never get the SIGHUP it relies on.
    var attributes = cleanSpawnAttributes(ownProcessGroup: false)
    defer { posix_spawnattr_destroy(&attributes) }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, argv[0], &actions, &attributes, cArgs, environ)
    guard rc == 0 else { throw TestFailure("posix_spawn \(argv[0]): \(String(cString: strerror(rc)))") }
    var status: Int32 = 0
    let deadline = Date().addingTimeInterval(timeout)
    while waitpid(pid, &status, WNOHANG) == 0 {
        if Date() > deadline {
            kill(pid, SIGKILL)
            waitpid(pid, &status, 0)
            throw TestFailure("\(argv.joined(separator: " ")) did not finish within \(timeout) s")
        }
        usleep(5_000)
    }
    let code = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    return (code, captureOutput ? ((try? String(contentsOfFile: output, encoding: .utf8)) ?? "") : "")
}

/// posix_spawn attributes for a child that starts clean: every signal at its default disposition
/// and none blocked (the test runner's threads block some), optionally in a process group of its
/// own. The caller destroys them.
func cleanSpawnAttributes(ownProcessGroup: Bool) -> posix_spawnattr_t {
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    var none = sigset_t()
    sigemptyset(&none)
    var all = sigset_t()
    sigfillset(&all)
    posix_spawnattr_setsigmask(&attributes, &none)
    posix_spawnattr_setsigdefault(&attributes, &all)
    var flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
    if ownProcessGroup {
        posix_spawnattr_setpgroup(&attributes, 0)
        flags |= POSIX_SPAWN_SETPGROUP
    }
    posix_spawnattr_setflags(&attributes, Int16(flags))
    return attributes
}
