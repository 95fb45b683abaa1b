import ArgumentParser
import Forkwatch
import ForkwatchCore
import ForkwatchTUI

#if canImport(Glibc)
import Glibc
#endif

/// Runs the dashboard and reports how it ended once the terminal is back.
enum DashboardLauncher {
    /// `forkwatch demo` / `forkwatch run` without --headless: start the same command headless in
    /// its own session (so Ctrl-C and Ctrl-Z at this terminal never reach it), then watch it.
    static func launchAndWatch(title: String, headlessArguments: [String], socket: String?) throws -> Never {
        guard Posix.isTerminal(0), Posix.isTerminal(1) else { throw UsageError("\(Terminal.NotATerminal())") }
        guard let type = getenv("TERM"), type.pointee != 0 else {
            throw UsageError("\(Terminal.NotATerminal("TERM is not set"))")
        }
        var socketPath = socket ?? ControlSocket.defaultPath
        if (try? ControlClient(path: socketPath)) != nil {
            guard socket == nil else {
                throw UsageError(
                    "a master is already running on \(socketPath): attach with 'forkwatch top --socket \(socketPath)', or choose another path"
                )
            }
            // Another master has the default socket: this one gets its own beside it.
            socketPath = Posix.runtimeDirectory() + "/forkwatch-\(Posix.getpid()).sock"
        }
        let directory = Posix.runtimeDirectory()
        do { try Posix.ensurePrivateDirectory(directory) } catch { throw UsageError("\(error)") }
        let logPath = directory + "/master.log"
        var argv = [Posix.executablePath()] + headlessArguments
        if socket == nil { argv += ["--control-socket", socketPath] }  // exactly this one, no fallback
        if !headlessArguments.contains("--log-file") { argv += ["--log-file", logPath] }
        let masterPid: Int32
        do { masterPid = try Posix.spawnInNewSession(argv, logPath: logPath) } catch { throw UsageError("\(error)") }

        // Wait for its socket; if it dies first (bad input it found), show why.
        let deadline = Posix.monotonicNow() + 10
        while (try? ControlClient(path: socketPath)) == nil {
            if let code = Posix.exitCode(of: masterPid) {
                let tail =
                    (try? Posix.readFile(logPath))?.split(separator: "\n").suffix(3).joined(separator: "\n") ?? ""
                throw UsageError("the master exited with \(code) before it was ready:\n\(tail)")
            }
            if Posix.monotonicNow() > deadline {
                try? Posix.kill(masterPid, .kill)
                throw UsageError("the master did not open \(socketPath) within 10 s (log: \(logPath))")
            }
            Posix.sleep(seconds: 0.01)
        }
        try watch(title: title, socketPath: socketPath, masterPid: masterPid, logPath: logPath)
    }

    static func watch(title: String, socketPath: String, masterPid: Int32?, logPath: String?) throws -> Never {
        let outcome: DashboardApp.Outcome
        do {
            let app = try DashboardApp(title: title, mode: .live)
            outcome = try app.runLive(socketPath: socketPath, masterPid: masterPid)
            app.close()
        } catch let error as Terminal.NotATerminal {
            // A master this command started must not outlive a dashboard that never opened.
            if let masterPid, logPath != nil {
                try? Posix.kill(masterPid, .term)
                reap(masterPid)
            }
            throw UsageError(error.description)
        } catch let error as PosixError {
            throw UsageError("cannot follow the master at \(socketPath): \(error.message)")
        }
        switch outcome {
        case .stoppedMaster(let code):
            if let masterPid { reap(masterPid) }
            print("forkwatch: services stopped" + (code.map { " (master exit \($0))" } ?? ""))
            finish(0)
        case .leftRunning(let pid, let socket):
            print(
                "forkwatch: master \(pid.map(String.init) ?? "") left running. Attach: forkwatch top --socket \(socket)   Stop: forkwatch stop --socket \(socket)"
            )
            finish(0)
        case .masterGone:
            if let masterPid { reap(masterPid) }
            print("forkwatch: the master has exited" + (logPath.map { "; its log: \($0)" } ?? ""))
            finish(0)
        case .interrupted(let signal, let pid, let socket):
            try? Posix.writeAll(
                2,
                "forkwatch: dashboard closed by \(signal.name); master \(pid.map(String.init) ?? "") left running (forkwatch top --socket \(socket))\n"
            )
            finish(1)
        case .replayFinished:
            finish(0)
        }
    }

    /// The master is our child until we exit: collect its status so it is never a zombie.
    private static func reap(_ pid: Int32) {
        let deadline = Posix.monotonicNow() + 5
        while Posix.exitCode(of: pid) == nil && Posix.monotonicNow() < deadline { Posix.sleep(seconds: 0.01) }
    }
}

struct Top: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Open the dashboard on a running master.")
    @OptionGroup var socket: SocketOption

    func run() throws {
        guard Posix.isTerminal(0), Posix.isTerminal(1) else { throw UsageError("\(Terminal.NotATerminal())") }
        let path = try socket.resolvedPath()
        _ = try socket.connect()  // a clear error when nothing listens there
        try DashboardLauncher.watch(title: "top", socketPath: path, masterPid: nil, logPath: nil)
    }
}

struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Play a recorded event file (--events FILE) in the dashboard: space pause, n step, < > speed, q quit."
    )
    @Argument(help: "An events file written with --events.") var file: String
    @Option(help: "Playback speed (1 = real time).") var speed: Double = 1

    func run() throws {
        guard speed > 0, speed.isFinite else { throw UsageError("--speed must be > 0") }
        // Read as it plays (any size, one chunk in memory); only the first event is needed to start.
        let recording: ReplayFile
        do { recording = try ReplayFile(path: file) } catch { throw UsageError("\(file): \(error.message)") }
        guard let first = recording.firstEvent() else {
            throw UsageError(recording.readError ?? recording.firstProblem ?? "\(file): no events in it")
        }
        guard Posix.isTerminal(0), Posix.isTerminal(1) else { throw UsageError("\(Terminal.NotATerminal())") }
        let app: DashboardApp
        do { app = try DashboardApp(title: "replay \(file)", mode: .replay) } catch let error as Terminal.NotATerminal {
            throw UsageError(error.description)
        }
        let outcome = try app.runReplay(recording, first: first, speed: speed)
        app.close()
        if recording.problemCount > 0, let firstProblem = recording.firstProblem {
            try? Posix.writeAll(
                2,
                "forkwatch: skipped \(recording.problemCount) unreadable line\(recording.problemCount == 1 ? "" : "s") (first: \(firstProblem))\n"
            )
        }
        if case .interrupted(let signal, _, _) = outcome {
            try? Posix.writeAll(2, "forkwatch: dashboard closed by \(signal.name)\n")
            finish(1)
        }
        if let readError = recording.readError {
            try? Posix.writeAll(2, "forkwatch: the replay stopped at a read error: \(readError)\n")
            finish(1)
        }
        finish(0)
    }
}
