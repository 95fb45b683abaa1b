import ForkwatchCore

/// The whole dashboard state, pure: events and keys go in, commands come out, and
/// `DashboardRenderer` turns it into a `Frame`. No syscalls and no clock: the app passes
/// CLOCK_MONOTONIC seconds to `setNow`.
public struct DashboardModel: Sendable {
    public enum Mode: Sendable, Equatable {
        /// A master this dashboard started, or one it attached to.
        case live
        /// A recorded event file, played on the app's replay clock.
        case replay
    }

    /// One line of the WORKERS panel.
    struct WorkerRow: Sendable, Equatable {
        enum Branch: Sendable { case root, middle, last }
        let pid: Int32
        let branch: Branch
        var isMaster: Bool { branch == .root }
    }

    enum Focus: Sendable { case workers, events }

    /// A question that takes the next key.
    enum Prompt: Sendable, Equatable {
        case help
        case confirmKill(pid: Int32, service: String)
        case confirmQuit
    }

    struct Message: Sendable {
        let text: String
        let at: Double
    }

    static let messageLifetime = 6.0

    public let title: String
    public let mode: Mode
    /// Seconds east of UTC for the EVENTS clock (the app passes the local offset).
    public var utcOffset: Int

    var live = DashboardWorld()
    /// While paused (live mode), what the screen keeps showing; `live` keeps following the master.
    var frozen: DashboardWorld?
    var shown: DashboardWorld { frozen ?? live }

    public private(set) var isPaused = false
    public private(set) var isFastRefresh = false
    public private(set) var replaySpeed = 1.0

    var selectedPid: Int32?
    /// Where the selection was, to land nearby when its pid leaves the list.
    var selectedRowHint = 0
    /// Until the user moves, the selection prefers the first worker over the master row.
    var userMovedSelection = false
    var workerScrollTop = 0
    private var seenRowsVersion = -1

    /// Sequence number of the event under the EVENTS cursor; nil follows the newest one.
    var eventCursor: Int?
    var focus = Focus.workers
    var explainOpen = false
    var prompt: Prompt?
    var filter = ""
    var editingFilter = false
    var message: Message?
    var layoutSize = (width: DashboardLayout.minimumWidth, height: DashboardLayout.minimumHeight)

    public init(title: String, mode: Mode, utcOffset: Int = 0) {
        self.title = title
        self.mode = mode
        self.utcOffset = utcOffset
    }

    // MARK: - Inputs from the app loop

    /// Feeds one event from the master (or the replay file).
    public mutating func apply(_ event: Event) {
        live.apply(event)
        if frozen == nil { reconcileSelection() }
    }

    /// Feeds many events, then settles the selection once: a burst of thousands of forks costs
    /// one pass over the rows, not one per fork.
    public mutating func apply(_ events: some Sequence<Event>) {
        for event in events { live.apply(event) }
        if frozen == nil { reconcileSelection() }
    }

    /// The clock (CLOCK_MONOTONIC seconds, the events' `mono`): uptimes, rates, countdowns.
    public mutating func setNow(_ mono: Double) {
        live.advance(to: mono)
        if frozen == nil { reconcileSelection() }
    }

    /// A line in the status bar: what a key did, or an error from the app (socket, master).
    public mutating func showMessage(_ text: String) {
        message = Message(text: text, at: live.now)
    }

    /// The terminal size, for paging (PgUp/PgDn) and keeping the selection on screen.
    public mutating func setTerminalSize(width: Int, height: Int) {
        layoutSize = (width, height)
        reconcileSelection(force: true)
    }

    /// Replay: the app feeds no events while paused (only `.replayStep` ones).
    /// Live: the screen is frozen while paused; events keep being applied underneath.
    public var isReplay: Bool { mode == .replay }

    /// The master's pid, once a snapshot or master_started has said it.
    public var masterPid: Int32? { live.masterPid }

    /// The pid under the selection bar (a worker, or the master row).
    public var selection: Int32? { selectedPid }

    // MARK: - Derived views

    /// The EVENTS panel's entries (filtered), oldest first.
    var visibleEvents: [EventLog.Entry] { shown.log.entries(matching: filter) }

    /// Index in `entries` of the event under the cursor: the newest when following, else the
    /// cursor's event or the nearest older one still shown.
    func eventCursorIndex(in entries: [EventLog.Entry]) -> Int? {
        guard !entries.isEmpty else { return nil }
        guard let cursor = eventCursor else { return entries.count - 1 }
        if let index = entries.lastIndex(where: { $0.sequence <= cursor }) { return index }
        return 0
    }

    var layout: DashboardLayout { layout(rowCount: Self.rowCount(of: shown, filter: filter)) }

    private func layout(rowCount: Int) -> DashboardLayout {
        layout(width: layoutSize.width, height: layoutSize.height, rowCount: rowCount)
    }

    /// The layout for a terminal size, with room for the explain pane when it is open.
    func layout(width: Int, height: Int, rowCount: Int) -> DashboardLayout {
        let footer = DashboardRenderer.footerLines(mode, width: width).count
        let plain = DashboardLayout(width: width, height: height, workerRowCount: rowCount, footerRows: footer)
        guard explainOpen else { return plain }
        let lines = DashboardRenderer.explainLines(self, panelWidth: plain.leftWidth).count
        return DashboardLayout(
            width: width, height: height, workerRowCount: rowCount, explainLines: lines, footerRows: footer)
    }

    var selectedWorker: DashboardWorld.Worker? { selectedPid.flatMap { shown.workers[$0] } }

    // MARK: - Selection

    /// Keeps the selection on its pid whatever the list does; when the pid has left the list,
    /// takes the row now at its place (the nearest one). Runs after every event that may add,
    /// remove or reorder rows, so its common case (the pid is still there) avoids sorting.
    mutating func reconcileSelection(force: Bool = false) {
        guard force || shown.rowsVersion != seenRowsVersion else { return }
        seenRowsVersion = shown.rowsVersion
        let world = shown
        let rowCount = Self.rowCount(of: world, filter: filter)
        guard rowCount > 0 else {
            selectedPid = nil
            return
        }
        if let pid = selectedPid, let found = Self.position(of: pid, in: world, filter: filter),
            userMovedSelection || pid != world.masterPid || rowCount == 1
        {
            selectedRowHint = found
        } else {
            let rows = Self.rows(of: world, filter: filter)
            var index = selectedPid == nil ? 1 : min(selectedRowHint, rows.count - 1)
            // Nothing chosen by hand yet: a worker is what a person wants to act on, not the master.
            if !userMovedSelection && (index >= rows.count || rows[index].isMaster) { index = 1 }
            index = min(index, rows.count - 1)
            selectedPid = rows[index].pid
            selectedRowHint = index
        }
        workerScrollTop = layout(rowCount: rowCount).workerScrollTop(
            selected: selectedRowHint, previousTop: workerScrollTop, rowCount: rowCount)
    }

    /// Moves the selection to row `index` (clamped), as a person did.
    mutating func selectRow(_ index: Int) {
        let rows = workerRows
        guard !rows.isEmpty else { return }
        let clamped = min(max(0, index), rows.count - 1)
        selectedPid = rows[clamped].pid
        selectedRowHint = clamped
        userMovedSelection = true
        workerScrollTop = layout.workerScrollTop(selected: clamped, previousTop: workerScrollTop, rowCount: rows.count)
    }

    /// The selection's row index now (the hint when the pid is gone from the list).
    var selectedRowIndex: Int? {
        let rows = workerRows
        guard !rows.isEmpty else { return nil }
        if let pid = selectedPid, let index = rows.firstIndex(where: { $0.pid == pid }) { return index }
        return min(selectedRowHint, rows.count - 1)
    }

    /// Moves the EVENTS cursor by `delta` entries (negative = older); past the newest it
    /// follows new events again.
    mutating func moveEventCursor(by delta: Int) {
        let entries = visibleEvents
        guard let current = eventCursorIndex(in: entries) else { return }
        let target = current + delta
        if target >= entries.count - 1 {
            eventCursor = nil
        } else {
            eventCursor = entries[max(0, target)].sequence
        }
    }

    /// The event the explain pane is about.
    var explainedEvent: EventLog.Entry? {
        let entries = visibleEvents
        return eventCursorIndex(in: entries).map { entries[$0] }
    }

    /// The message if it is still fresh.
    var currentMessage: String? {
        guard let message, live.now - message.at < Self.messageLifetime else { return nil }
        return message.text
    }

    // MARK: - Pause

    mutating func togglePause() {
        isPaused.toggle()
        if mode == .live { frozen = isPaused ? live : nil }
        reconcileSelection(force: true)
    }

    mutating func setFastRefresh(_ on: Bool) { isFastRefresh = on }
    mutating func setReplaySpeed(_ speed: Double) { replaySpeed = min(64, max(1.0 / 16, speed)) }
}
