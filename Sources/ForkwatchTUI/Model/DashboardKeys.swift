import ForkwatchCore

extension DashboardModel {
    /// One key from the terminal. Returns what the app loop must do (send a signal, scale,
    /// quit, …); everything else (selection, overlays, filter, pause) changes the model.
    /// Tab arrives as `.character("\t")`.
    public mutating func handle(_ key: DashboardKey) -> [DashboardCommand] {
        if editingFilter {
            editFilter(key)
            return []
        }
        if let prompt {
            self.prompt = nil
            return answer(prompt, with: key)
        }
        switch KeyBinding.lookup(key, in: mode) {
        case .perform(let action): return perform(action)
        case .readOnly: showMessage(Self.replayIsReadOnly)
        case .unbound: break
        }
        return []
    }

    static let replayIsReadOnly = "replay is read-only: signals, scaling and reloads need a live master"

    /// Carries out what a key is bound to (`KeyBinding.all`).
    private mutating func perform(_ action: KeyAction) -> [DashboardCommand] {
        switch action {
        case .move(let delta): move(by: delta)
        case .page(let pages): move(by: pages * pageSize)
        case .moveToFirst: move(by: Int.min / 2)
        case .moveToLast: move(by: Int.max / 2)
        case .switchFocus: focus = focus == .workers ? .events : .workers
        case .moveEventCursor(let delta): moveEventCursor(by: delta)
        case .toggleExplain: explainOpen.toggle()
        case .explainFromEvents:
            if focus == .events { explainOpen.toggle() }
        case .dismiss:
            if explainOpen { explainOpen = false } else if !filter.isEmpty { setFilter("") } else { message = nil }
        case .editFilter: editingFilter = true
        case .togglePause: togglePause()
        case .toggleFastRefresh:
            setFastRefresh(!isFastRefresh)
            showMessage(isFastRefresh ? "fast refresh: every 100 ms" : "refresh: every second")
            return [.setFastRefresh(isFastRefresh)]
        case .showHelp: prompt = .help
        case .askQuit: prompt = .confirmQuit
        case .quitReplay: return [.quit(stopServices: false)]
        case .signal(let signal): return signalSelected(signal)
        case .askKill:
            if let (pid, service) = signalTarget() { prompt = .confirmKill(pid: pid, service: service) }
        case .scale(let delta): return scaleSelected(by: delta)
        case .reload:
            showMessage("asked the master to reload: workers restart by restart_method")
            return [.reload]
        case .replayStep: return [.replayStep]
        case .replaySpeed(let factor):
            setReplaySpeed(replaySpeed * factor)
            showMessage("replay speed ×\(Self.speedText(replaySpeed))")
            return [.replaySpeed(replaySpeed)]
        }
        return []
    }

    /// A prompt takes exactly one key; anything but its yes-keys cancels it.
    private mutating func answer(_ prompt: Prompt, with key: DashboardKey) -> [DashboardCommand] {
        switch prompt {
        case .help:
            return []
        case .confirmKill(let pid, let service):
            guard key == .character("y") || key == .character("Y") else {
                showMessage("SIGKILL cancelled: nothing sent")
                return []
            }
            // The worker may have died while the question was on screen.
            guard let worker = live.workers[pid], worker.state != .gone else {
                showMessage("\(pid) \(service) is gone: SIGKILL not sent")
                return []
            }
            showMessage("sent SIGKILL to \(pid) \(service)")
            return [.signal(pid: pid, signal: .kill)]
        case .confirmQuit:
            switch key {
            case .character("s"), .character("S"): return [.quit(stopServices: true)]
            case .character("l"), .character("L"): return [.quit(stopServices: false)]
            default:
                showMessage("quit cancelled")
                return []
            }
        }
    }

    private mutating func editFilter(_ key: DashboardKey) {
        switch key {
        case .character(let character) where character != "\t": setFilter(filter + String(character))
        case .backspace: if !filter.isEmpty { setFilter(String(filter.dropLast())) }
        case .enter: editingFilter = false
        case .escape:
            editingFilter = false
            setFilter("")
        default: break
        }
    }

    mutating func setFilter(_ text: String) {
        filter = text
        reconcileSelection(force: true)
    }

    private var pageSize: Int {
        max(1, focus == .workers ? layout.workerRows - 1 : layout.eventRows - 1)
    }

    private mutating func move(by delta: Int) {
        switch focus {
        case .workers: selectRow((selectedRowIndex ?? 0) + delta)
        case .events: moveEventCursor(by: delta)
        }
    }

    /// The selected worker if a signal may go to it: never the master, never a pid that has
    /// already gone (checked against the live state even while the screen is paused).
    private mutating func signalTarget() -> (Int32, String)? {
        guard let pid = selectedPid else {
            showMessage("no worker selected")
            return nil
        }
        if pid == live.masterPid || pid == shown.masterPid {
            showMessage("\(pid) is the master: signals go to workers only (q stops the services)")
            return nil
        }
        guard let worker = live.workers[pid], worker.state != .gone else {
            showMessage("\(pid) is gone: no signal sent")
            return nil
        }
        return (pid, worker.service)
    }

    private mutating func signalSelected(_ signal: Signal) -> [DashboardCommand] {
        guard let (pid, service) = signalTarget() else { return [] }
        showMessage("sent \(signal.name) to \(pid) \(service)")
        return [.signal(pid: pid, signal: signal)]
    }

    private mutating func scaleSelected(by delta: Int) -> [DashboardCommand] {
        guard let worker = selectedWorker, let service = live.service(named: worker.service) else {
            showMessage("select a worker of the service to scale")
            return []
        }
        let current =
            service.wanted ?? live.workers.values.filter { $0.service == service.name && $0.state != .gone }.count
        let target = max(1, current + delta)
        guard target != current else {
            showMessage("\(service.name) keeps at least 1 worker")
            return []
        }
        showMessage("asked the master to scale \(service.name) \(current) → \(target)")
        return [.scale(service: service.name, workers: target)]
    }

    static func speedText(_ speed: Double) -> String {
        speed >= 1
            ? JSONObject.number(speed, decimals: 0)
            : JSONObject.number(speed, decimals: speed >= 0.25 ? 2 : 4)
                .replacingTrailingZeros()
    }
}

extension String {
    /// `0.50` → `0.5`.
    fileprivate func replacingTrailingZeros() -> String {
        guard contains(".") else { return self }
        var text = self
        while text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
        return text
    }
}
