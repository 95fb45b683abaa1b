import CNcurses
import Forkwatch
import ForkwatchCore

#if canImport(Glibc)
import Glibc
#endif

/// The dashboard's one loop: poll(2) over the keyboard, the master's control socket (or the
/// replay clock) and a signalfd; every key becomes commands, every line an event for the model.
public final class DashboardApp {
    /// How the dashboard ended, for the CLI to report after the terminal is restored.
    public enum Outcome: Equatable {
        case stoppedMaster(exitCode: Int32?)
        case leftRunning(masterPid: Int32?, socket: String)
        case masterGone
        case interrupted(signal: Signal, masterPid: Int32?, socket: String)
        case replayFinished
    }

    private let terminal: Terminal
    private var model: DashboardModel
    private let signalFD: Int32
    private var refreshInterval = 1.0
    private var nextRefresh = 0.0

    /// Opens the terminal (throws `Terminal.NotATerminal` without one).
    public init(title: String, mode: DashboardModel.Mode) throws {
        terminal = try Terminal()
        var offset = 0
        var now = time(nil)
        var parts = tm()
        localtime_r(&now, &parts)
        offset = parts.tm_gmtoff
        model = DashboardModel(title: title, mode: mode, utcOffset: offset)
        // Signals the dashboard answers itself: a kill from outside restores the terminal, and
        // SIGWINCH comes here instead of to ncurses' own handler (which would interrupt poll).
        // SIGCONT (it still continues the process) says the screen needs drawing whole.
        let handled: [Signal] = [.term, .int, .hup, Signal(rawValue: SIGWINCH), Signal(rawValue: SIGCONT)]
        try Posix.block(handled)
        signalFD = try Posix.signalFD(handled)
    }

    deinit {
        terminal.close()
        Posix.close(signalFD)
    }

    public func close() { terminal.close() }

    // MARK: - Live

    /// Follows the master at `socketPath` until the user quits or the master goes away.
    public func runLive(socketPath: String, masterPid: Int32?) throws -> Outcome {
        var client = try ControlClient(path: socketPath)
        try client.send(.subscribe)
        Posix.setNonBlocking(client.fd)
        var stopping = false
        var knownMaster = masterPid
        /// The master's last word before it hung up on this dashboard (`"closing":true`).
        var droppedBecause: String?
        var masterStopped = false
        /// This connection brought a snapshot: the master was alive on it.
        var snapshotOnThisConnection = false
        render(force: true)
        while true {
            let now = Posix.monotonicNow()
            let revents = try Posix.poll([0, client.fd, signalFD], timeout: max(0, nextRefresh - now))
            if Self.hungUp(revents[0]) { return .interrupted(signal: .hup, masterPid: knownMaster, socket: socketPath) }
            if revents[2] != 0, let signal = handleSignals() {
                return .interrupted(signal: signal, masterPid: knownMaster, socket: socketPath)
            }
            if revents[1] != 0 {
                let (lines, closed) = client.readAvailable()
                for line in lines {
                    guard let json = try? JSONValue.parse(line) else { continue }
                    // A reply to a request has no "type"; events do (and some carry an "ok").
                    if json["type"] == nil {
                        if json["closing"]?.bool == true { droppedBecause = json["error"]?.string ?? line }
                        if json["ok"]?.bool == false { model.showMessage("master: " + (json["error"]?.string ?? line)) }
                        continue
                    }
                    guard let event = try? EventCodec.decode(json) else { continue }
                    if case .snapshot(let snapshot) = event.kind {
                        knownMaster = snapshot.masterPid
                        snapshotOnThisConnection = true
                    }
                    model.apply(event)
                    if case .stopped(let code) = event.kind {
                        if stopping { return .stoppedMaster(exitCode: code) }
                        masterStopped = true
                    }
                }
                if closed {
                    if stopping { return .stoppedMaster(exitCode: nil) }
                    // Hung up on while the master lives (this dashboard fell behind by more than
                    // control_buffer_limit, say while it was stopped): connect again and start
                    // over from a snapshot. Only after a connection that brought one, so a
                    // master that is going away is not chased.
                    if !masterStopped, snapshotOnThisConnection,
                        let again = try? ControlClient(path: socketPath), (try? again.send(.subscribe)) != nil
                    {
                        snapshotOnThisConnection = false
                        Posix.setNonBlocking(again.fd)
                        client = again
                        model.showMessage(
                            "reconnected: re-synced from a fresh snapshot ("
                                + (droppedBecause.map { "the master said: \($0)" } ?? "the master hung up") + ")")
                        droppedBecause = nil
                        render(force: true)
                        continue
                    }
                    model.showMessage("the master has exited; press q to leave")
                    render(force: true)
                    return try waitForQuitAfterMasterGone()
                }
            }
            if revents[0] != 0 {
                for command in readCommands() {
                    switch command {
                    case .signal(let pid, let signal): sendRequest(.signal(pid: pid, signal: signal), client)
                    case .scale(let service, let workers):
                        sendRequest(.scale(service: service, workers: workers), client)
                    case .reload: sendRequest(.reload, client)
                    case .stop(let mode): sendRequest(.stop(mode: mode), client)
                    case .quit(let stopServices):
                        guard stopServices else { return .leftRunning(masterPid: knownMaster, socket: socketPath) }
                        if stopping {
                            sendRequest(.stop(mode: .immediate), client)
                        } else {
                            stopping = true
                            model.showMessage("stopping the services… (q again: SIGKILL them now)")
                            sendRequest(.stop(mode: .graceful), client)
                        }
                    case .setFastRefresh(let fast): refreshInterval = fast ? 0.1 : 1
                    case .replayStep, .replaySpeed: break
                    }
                }
            }
            render(force: revents[0] != 0)
        }
    }

    private func sendRequest(_ request: ControlRequest, _ client: ControlClient) {
        do {
            try Posix.writeAll(client.fd, request.line)
            if case .signal(let pid, let signal) = request { model.showMessage("you → \(signal.name) \(pid)") }
        } catch {
            model.showMessage("could not reach the master: \(error.message)")
        }
    }

    private func waitForQuitAfterMasterGone() throws -> Outcome {
        while true {
            let revents = try Posix.poll([0, signalFD], timeout: refreshInterval)
            if Self.hungUp(revents[0]) { return .masterGone }
            if revents[1] != 0, handleSignals() != nil { return .masterGone }
            if revents[0] != 0 {
                let (keys, resized) = terminal.readKeys()
                if resized { terminal.invalidate() }
                if keys.contains(where: { $0 == .character("q") || $0 == .escape || $0 == .enter }) {
                    return .masterGone
                }
            }
            model.setNow(Posix.monotonicNow())
            render(force: true)
        }
    }

    // MARK: - Replay

    /// Longest stretch of reading due events before they are applied and the keyboard and the
    /// signals are looked at.
    static let replayBatchSeconds = 0.02

    /// Plays a recorded file, from its `first` event, on a clock the user can pause, step and
    /// speed up. Time-driven: each turn applies the events due by the clock, for at most
    /// `replayBatchSeconds`, then reads keys and signals; the screen is drawn at the refresh
    /// rate. When the file holds more events than can be applied in time, the display lags and
    /// frames are skipped, never keys: `q` is answered within one batch at any density.
    /// Events play in file order (the master writes them in order). Gaps longer than 2 s are
    /// shortened to 2 s; a clock that goes back by more (runs appended across a reboot) restarts
    /// the replay clock at that event.
    public func runReplay(_ file: ReplayFile, first: Event, speed: Double = 1) throws -> Outcome {
        model.setReplaySpeed(speed)
        var pending: Event? = first
        var ended = false
        var clock = first.mono  // the recording's time now showing
        var lastMono = first.mono
        var last = Posix.monotonicNow()
        var problemsShown = 0

        /// Takes the next event from the file into `pending`, unless one is waiting.
        func refill() {
            guard pending == nil, !ended else { return }
            switch file.next() {
            case .event(let event):
                if event.mono < lastMono - 2 { clock = event.mono }
                lastMono = event.mono
                pending = event
            case .nothingYet: break
            case .end: ended = true
            }
        }

        var forceFrame = true  // the first frame, and one after each key
        while true {
            let now = Posix.monotonicNow()
            var behind = false
            if !model.isPaused {
                clock += (now - last) * model.replaySpeed
                let deadline = now + Self.replayBatchSeconds
                var batch: [Event] = []
                refill()
                while !ended || pending != nil {
                    guard let event = pending else {
                        refill()
                        if pending == nil && !ended {
                            behind = true
                            break
                        }  // a run of bad lines: go on next turn
                        continue
                    }
                    if event.mono - clock > 2 { clock = event.mono - 2 }
                    guard event.mono <= clock else { break }
                    batch.append(event)
                    pending = nil
                    refill()
                    if batch.count % 64 == 0, Posix.monotonicNow() >= deadline {
                        behind = pending.map { $0.mono <= clock } ?? !ended
                        break
                    }
                }
                // One apply per turn: the selection is settled once, however many events came.
                model.apply(batch)
            }
            last = now
            model.setNow(clock)
            if file.problemCount > problemsShown, let latest = file.latestProblem {
                problemsShown = file.problemCount
                model.showMessage(latest + (problemsShown > 1 ? " (\(problemsShown) unreadable lines so far)" : ""))
            }
            if ended && pending == nil {
                let unreadable =
                    file.problemCount == 0
                    ? "" : ", \(file.problemCount) unreadable line\(file.problemCount == 1 ? "" : "s") skipped"
                model.showMessage(
                    file.readError.map { "stopped: \($0)" }
                        ?? "end of the recording (\(file.eventsRead) events\(unreadable)); q to leave")
            }
            // Frames come at the refresh rate (or at a key): a burst of events is drawn once.
            render(force: forceFrame)
            forceFrame = false

            // Wait for the next event due, the next frame or a key, whichever comes first.
            var timeout = max(0, nextRefresh - Posix.monotonicNow())
            if behind {
                timeout = 0
            } else if !model.isPaused, let event = pending {
                timeout = min(timeout, max(0, (event.mono - clock) / model.replaySpeed))
            }
            let revents = try Posix.poll([0, signalFD], timeout: min(timeout, 0.25))
            if Self.hungUp(revents[0]) { return .interrupted(signal: .hup, masterPid: nil, socket: "") }
            if revents[1] != 0, let signal = handleSignals() {
                return .interrupted(signal: signal, masterPid: nil, socket: "")
            }
            if revents[0] != 0 {
                forceFrame = true
                for command in readCommands() {
                    switch command {
                    case .quit: return .replayFinished
                    case .replayStep:
                        refill()
                        if let event = pending {
                            clock = event.mono
                            model.apply(event)
                            pending = nil
                            refill()
                        }
                    case .setFastRefresh(let fast): refreshInterval = fast ? 0.1 : 1
                    default: break
                    }
                }
            }
        }
    }

    // MARK: - Shared

    /// The terminal went away (its window closed, the ssh link dropped): stdin reports a hang-up
    /// forever after, so the loop must end rather than spin on it.
    static func hungUp(_ revents: Int16) -> Bool {
        revents & Int16(POLLHUP | POLLERR | POLLNVAL) != 0
    }

    private func readCommands() -> [DashboardCommand] {
        let (keys, resized) = terminal.readKeys()
        if resized { terminal.invalidate() }
        return keys.flatMap { model.handle($0) }
    }

    /// Handles pending signals; returns one that ends the dashboard.
    private func handleSignals() -> Signal? {
        while let (signal, _) = try? Posix.readSignal(signalFD) {
            if signal.rawValue == SIGWINCH {
                var size = winsize()
                if ioctl(1, UInt(TIOCGWINSZ), &size) == 0 {
                    resizeterm(Int32(size.ws_row), Int32(size.ws_col))
                }
                terminal.invalidate()
                render(force: true)
            } else if signal.rawValue == SIGCONT {
                terminal.resumeAfterStop()
                render(force: true)
            } else {
                return signal
            }
        }
        return nil
    }

    private func render(force: Bool) {
        let now = Posix.monotonicNow()
        guard force || now >= nextRefresh else { return }
        nextRefresh = now + refreshInterval
        if model.mode == .live { model.setNow(now) }
        let (width, height) = terminal.size
        model.setTerminalSize(width: width, height: height)
        terminal.draw(DashboardRenderer.render(model, width: width, height: height, unicode: terminal.unicode))
    }
}
