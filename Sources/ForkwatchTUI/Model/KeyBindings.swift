import ForkwatchCore

/// What a key does, as a value: `DashboardModel.perform` carries it out.
enum KeyAction: Sendable, Equatable {
    case move(by: Int)
    case page(by: Int)
    case moveToFirst, moveToLast
    case switchFocus
    case moveEventCursor(by: Int)
    case toggleExplain
    /// Enter: opens the explanation only when the arrows are on the events.
    case explainFromEvents
    /// Esc: closes the explanation, else clears the filter, else the message.
    case dismiss
    case editFilter
    case togglePause
    case toggleFastRefresh
    case showHelp
    case askQuit
    case quitReplay
    case signal(Signal)
    /// SIGKILL, after a y/N question.
    case askKill
    case scale(by: Int)
    case reload
    case replayStep
    case replaySpeed(factor: Double)

    /// Signals, scaling and reloads change the master: a replay (a recording) refuses them.
    /// Exhaustive on purpose: a new action must say whether it does.
    var actsOnMaster: Bool {
        switch self {
        case .signal, .askKill, .scale, .reload: return true
        case .move, .page, .moveToFirst, .moveToLast, .switchFocus, .moveEventCursor, .toggleExplain,
            .explainFromEvents,
            .dismiss, .editFilter, .togglePause, .toggleFastRefresh, .showHelp, .askQuit, .quitReplay, .replayStep,
            .replaySpeed:
            return false
        }
    }
}

/// One row of the key table: keys and what each does, the modes it works in, its line in the
/// `?` help and its place in the footer. The dispatch, the replay's read-only guard, the help
/// and the footer are all read from `KeyBinding.all`, so a key cannot be listed in one and
/// forgotten in another.
struct KeyBinding: Sendable {
    enum Modes: Sendable { case live, replay, both }
    enum FooterLine: Sendable { case actions, views }

    struct Footer: Sendable {
        let key: String
        let label: String
        /// Order within the footer (lower first).
        let rank: Int
        let line: FooterLine
        /// Where replay puts it, when not on `line`.
        var replayLine: FooterLine?
    }

    let keys: [(key: DashboardKey, action: KeyAction)]
    let modes: Modes
    /// The help overlay's line: its keys and meaning (nil: covered by another line).
    let help: (keys: String, meaning: String)?
    let footer: Footer?

    init(
        _ keys: [(key: DashboardKey, action: KeyAction)], _ modes: Modes, help: (String, String)?, footer: Footer? = nil
    ) {
        self.keys = keys
        self.modes = modes
        self.help = help.map { (keys: $0.0, meaning: $0.1) }
        self.footer = footer
    }

    /// Several keys with the same action.
    init(_ characters: [Character], _ action: KeyAction, _ modes: Modes, help: (String, String)?, footer: Footer? = nil)
    {
        self.init(
            characters.map { (key: DashboardKey.character($0), action: action) }, modes, help: help, footer: footer)
    }

    func works(in mode: DashboardModel.Mode) -> Bool {
        switch modes {
        case .both: return true
        case .live: return mode == .live
        case .replay: return mode == .replay
        }
    }

    var actsOnMaster: Bool { keys.contains { $0.action.actsOnMaster } }

    func action(for key: DashboardKey) -> KeyAction? { keys.first { $0.key == key }?.action }

    /// In the help's order: navigation, then the mode's own keys, then the common ones.
    static let all: [KeyBinding] = [
        KeyBinding(
            [(.up, .move(by: -1)), (.down, .move(by: 1)), (.pageUp, .page(by: -1)), (.pageDown, .page(by: 1))], .both,
            help: ("↑ ↓ PgUp PgDn", "select a worker (the selection follows its pid)")),
        KeyBinding(
            [(.home, .moveToFirst), (.end, .moveToLast)], .both, help: ("Home End", "first / last worker (or event)")),
        KeyBinding(
            [(.character("\t"), .switchFocus), (.left, .switchFocus), (.right, .switchFocus)], .both,
            help: ("Tab ← →", "move the keys between WORKERS and EVENTS"),
            footer: Footer(key: "Tab", label: "focus", rank: 61, line: .views)),
        KeyBinding(
            [(.character("["), .moveEventCursor(by: -1)), (.character("]"), .moveEventCursor(by: 1))], .both,
            help: ("[ ]", "older / newer event; ] past the newest follows again"),
            footer: Footer(key: "[ ]", label: "event", rank: 62, line: .views)),
        KeyBinding(
            ["e", "E"], .toggleExplain, .both,
            help: ("e  Enter", "explain the selected event (syscall, status word, throttle)"),
            footer: Footer(key: "e", label: "explain", rank: 30, line: .actions)),
        KeyBinding([(.enter, .explainFromEvents)], .both, help: nil),
        // Replay has fewer actions, so its first footer line has room for the filter.
        KeyBinding(
            ["/"], .editFilter, .both, help: ("/", "filter events and workers (Enter keeps, Esc clears)"),
            footer: Footer(key: "/", label: "filter", rank: 40, line: .views, replayLine: .actions)),

        KeyBinding(
            ["t"], .signal(.term), .live, help: ("t", "SIGTERM the selected worker: graceful stop, then respawn"),
            footer: Footer(key: "t", label: "TERM", rank: 10, line: .actions)),
        KeyBinding(
            ["h"], .signal(.hup), .live, help: ("h", "SIGHUP the selected worker: reset() in place"),
            footer: Footer(key: "h", label: "HUP", rank: 11, line: .actions)),
        KeyBinding(
            ["i"], .signal(.int), .live, help: ("i", "SIGINT the selected worker: exit 1 now"),
            footer: Footer(key: "i", label: "INT", rank: 13, line: .actions)),
        KeyBinding(
            ["k"], .askKill, .live, help: ("k", "SIGKILL the selected worker (asks y/N first)"),
            footer: Footer(key: "k", label: "KILL", rank: 12, line: .actions)),
        KeyBinding(
            [(.character("+"), .scale(by: 1)), (.character("="), .scale(by: 1)), (.character("-"), .scale(by: -1))],
            .live,
            help: ("+ -", "one worker more / fewer for the selected service"),
            footer: Footer(key: "+/-", label: "scale", rank: 14, line: .actions)),
        KeyBinding(
            ["r"], .reload, .live, help: ("r", "reload: restart the workers by restart_method"),
            footer: Footer(key: "r", label: "restart", rank: 15, line: .actions)),
        KeyBinding(
            [" "], .togglePause, .live, help: ("space", "pause the display (the master keeps running)"),
            footer: Footer(key: "space", label: "pause", rank: 50, line: .views)),

        KeyBinding(
            [" "], .togglePause, .replay, help: ("space", "pause / resume the replay"),
            footer: Footer(key: "space", label: "pause", rank: 20, line: .actions)),
        KeyBinding(
            [".", "n"], .replayStep, .replay, help: (". n", "step one event"),
            footer: Footer(key: ".", label: "step", rank: 21, line: .actions)),
        KeyBinding(
            [(.character("<"), .replaySpeed(factor: 0.5)), (.character(">"), .replaySpeed(factor: 2))], .replay,
            help: ("< >", "half / double replay speed"),
            footer: Footer(key: "< >", label: "speed", rank: 22, line: .actions)),

        KeyBinding(
            ["f", "F"], .toggleFastRefresh, .both, help: ("f", "fast refresh: every 100 ms instead of every second"),
            footer: Footer(key: "f", label: "fast", rank: 60, line: .views)),
        KeyBinding([(.escape, .dismiss)], .both, help: ("Esc", "close the explanation, clear the filter")),
        KeyBinding(
            ["?"], .showHelp, .both, help: ("?", "this help (any key closes it)"),
            footer: Footer(key: "?", label: "help", rank: 63, line: .views)),
        KeyBinding(
            ["q", "Q"], .askQuit, .live, help: ("q", "quit: stop the services or leave them running"),
            footer: Footer(key: "q", label: "quit", rank: 64, line: .views)),
        KeyBinding(
            ["q", "Q"], .quitReplay, .replay, help: ("q", "quit the replay"),
            footer: Footer(key: "q", label: "quit", rank: 64, line: .views)),
    ]

    /// What `key` does in `mode`, or why it does nothing.
    enum Lookup: Equatable {
        case perform(KeyAction)
        /// The key acts on a live master and this is a replay.
        case readOnly
        case unbound
    }

    static func lookup(_ key: DashboardKey, in mode: DashboardModel.Mode) -> Lookup {
        let bound = all.filter { $0.action(for: key) != nil }
        if let binding = bound.first(where: { $0.works(in: mode) }), let action = binding.action(for: key) {
            // A replay binds no key that acts on the master (KeyBindingTests holds the table to it).
            return .perform(action)
        }
        return mode == .replay && bound.contains(where: \.actsOnMaster) ? .readOnly : .unbound
    }

    /// The help overlay's lines for `mode`, in table order.
    static func helpEntries(_ mode: DashboardModel.Mode) -> [(keys: String, meaning: String)] {
        all.filter { $0.works(in: mode) }.compactMap(\.help)
    }

    /// The footer's two lines for `mode`, each in rank order.
    static func footer(_ mode: DashboardModel.Mode) -> (actions: [Footer], views: [Footer]) {
        let shown = all.filter { $0.works(in: mode) }.compactMap(\.footer).sorted { $0.rank < $1.rank }
        func line(_ footer: Footer) -> FooterLine { mode == .replay ? footer.replayLine ?? footer.line : footer.line }
        return (shown.filter { line($0) == .actions }, shown.filter { line($0) == .views })
    }
}
