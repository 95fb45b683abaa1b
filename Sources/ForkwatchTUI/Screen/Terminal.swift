import CNcurses
import Forkwatch

#if canImport(Glibc)
import Glibc
#endif

/// The ncurses screen: copies a `Frame` to the terminal and turns key presses into
/// `DashboardKey`s. Opened with `newterm` (never `initscr`, which exits the process when there
/// is no terminal), and restored on every way out, a crash included.
public final class Terminal {
    public struct NotATerminal: Error, CustomStringConvertible {
        /// Why: no terminal at all, or one whose type curses does not know.
        let problem: String
        public init(_ problem: String = "standard input and output are not one") { self.problem = problem }
        public var description: String {
            "the dashboard needs a terminal (\(problem)); use --headless, or 'forkwatch status' / 'forkwatch events --follow'"
        }
    }

    private var screen: OpaquePointer?
    public private(set) var unicode = false
    private var colors = false
    private var previous: Frame?

    public init() throws {
        guard isatty(0) == 1, isatty(1) == 1 else { throw NotATerminal() }
        setlocale(LC_ALL, "")
        unicode = cn_locale_is_utf8() != 0
        TerminalRescue.install()
        guard let type = getenv("TERM"), type.pointee != 0 else { throw NotATerminal("TERM is not set") }
        guard let screen = newterm(nil, fdopen(1, "w"), fdopen(0, "r")) else {
            throw NotATerminal("curses does not know the terminal type '\(String(cString: type))'")
        }
        self.screen = screen
        set_term(screen)
        // raw: Ctrl-C and Ctrl-Z arrive as keys (the quit prompt), not as signals.
        raw()
        noecho()
        keypad(cn_stdscr(), true)
        nodelay(cn_stdscr(), true)
        curs_set(0)
        if has_colors() {
            start_color()
            use_default_colors()
            let pairs: [(Frame.Color, Int16)] = [
                (.red, Int16(COLOR_RED)), (.green, Int16(COLOR_GREEN)), (.yellow, Int16(COLOR_YELLOW)),
                (.blue, Int16(COLOR_BLUE)), (.magenta, Int16(COLOR_MAGENTA)), (.cyan, Int16(COLOR_CYAN)),
            ]
            for (color, curses) in pairs { init_pair(Int16(color.rawValue), curses, -1) }
            colors = true
        }
    }

    deinit { close() }

    /// Leaves curses mode and puts the terminal back as it was.
    public func close() {
        guard let screen else { return }
        endwin()
        delscreen(screen)
        self.screen = nil
        TerminalRescue.restore()
    }

    public var size: (width: Int, height: Int) {
        (Int(cn_maxx(cn_stdscr())), Int(cn_maxy(cn_stdscr())))
    }

    /// Draws the rows that changed since the last frame.
    public func draw(_ frame: Frame) {
        let full = previous.map { $0.width != frame.width || $0.height != frame.height } ?? true
        if full { erase() }
        for row in 0..<frame.height {
            if !full, let previous, (0..<frame.width).allSatisfy({ previous[row, $0] == frame[row, $0] }) { continue }
            var column = 0
            while column < frame.width {
                let style = frame[row, column].style
                var run = ""
                let start = column
                while column < frame.width, frame[row, column].style == style {
                    run.append(frame[row, column].character)
                    column += 1
                }
                cn_attrset(attributes(style))
                // The bottom-right cell makes addstr report ERR (the cursor cannot advance); harmless.
                _ = mvaddstr(Int32(row), Int32(start), run)
            }
        }
        cn_attrset(cn_a_normal())
        refresh()
        previous = frame
    }

    /// Forces a full repaint (after a resize).
    /// After the process was stopped and continued (kill -STOP, a debugger, a shell's `fg`):
    /// whoever had the terminal meanwhile may have changed its modes and its contents, so the
    /// curses modes are set again and the next frame is drawn whole.
    public func resumeAfterStop() {
        raw()
        noecho()
        curs_set(0)
        invalidate()
    }

    public func invalidate() {
        previous = nil
        clearok(cn_stdscr(), true)
    }

    private func attributes(_ style: Frame.Style) -> attr_t {
        var value = cn_a_normal()
        if style.bold { value |= cn_a_bold() }
        if style.dim { value |= cn_a_dim() }
        if style.reverse { value |= cn_a_reverse() }
        if style.underline { value |= cn_a_underline() }
        if colors, style.color != .normal { value |= cn_color_pair(Int16(style.color.rawValue)) }
        // Without colours, coloured text is bold so the meaning still stands out.
        if !colors, style.color == .red || style.color == .yellow { value |= cn_a_bold() }
        return value
    }

    /// The keys typed since the last call; `resized` when the terminal changed size.
    public func readKeys() -> (keys: [DashboardKey], resized: Bool) {
        var keys: [DashboardKey] = []
        var resized = false
        while true {
            let code = getch()
            if code == cn_err() { break }
            switch code {
            case cn_key_resize(): resized = true
            case KEY_UP: keys.append(.up)
            case KEY_DOWN: keys.append(.down)
            case KEY_LEFT: keys.append(.left)
            case KEY_RIGHT: keys.append(.right)
            case KEY_PPAGE: keys.append(.pageUp)
            case KEY_NPAGE: keys.append(.pageDown)
            case KEY_HOME: keys.append(.home)
            case KEY_END: keys.append(.end)
            case KEY_ENTER, 10, 13: keys.append(.enter)
            case KEY_BACKSPACE, 127, 8: keys.append(.backspace)
            case 27: keys.append(.escape)
            case 3: keys.append(.character("q"))  // Ctrl-C: the quit prompt
            case 9: keys.append(.character("\t"))
            case 32...126: keys.append(.character(Character(Unicode.Scalar(UInt8(code)))))
            default: break
            }
        }
        return (keys, resized)
    }
}

/// Puts the terminal back even when the process dies of a signal: the termios saved before
/// curses started, and the escape sequences that leave the alternate screen and show the
/// cursor. Only async-signal-safe calls in the handler.
enum TerminalRescue {
    nonisolated(unsafe) private static var saved = termios()
    nonisolated(unsafe) private static var haveSaved = false
    private static let crashSignals: [Int32] = [SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP]

    static func install() {
        guard !haveSaved, tcgetattr(0, &saved) == 0 else { return }
        haveSaved = true
        for signal in crashSignals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { number in
                TerminalRescue.restore()
                Glibc.signal(number, SIG_DFL)
                raise(number)
            }
            action.sa_flags = Int32(truncatingIfNeeded: SA_RESETHAND)
            sigaction(signal, &action, nil)
        }
    }

    static func restore() {
        guard haveSaved else { return }
        tcsetattr(0, TCSANOW, &saved)
        let reset = "\u{1b}[0m\u{1b}[?25h\u{1b}[?1049l\r\n"
        _ = reset.withCString { write(1, $0, strlen($0)) }
    }
}
