#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A POSIX signal, named the way `kill -l` names it. A struct over a number, not an enum, so
/// that any signal the kernel may report (real-time ones included) can be represented.
public struct Signal: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    public static let hup = Signal(rawValue: SIGHUP)
    public static let int = Signal(rawValue: SIGINT)
    public static let quit = Signal(rawValue: SIGQUIT)
    public static let kill = Signal(rawValue: SIGKILL)
    public static let term = Signal(rawValue: SIGTERM)
    public static let chld = Signal(rawValue: SIGCHLD)
    public static let usr1 = Signal(rawValue: SIGUSR1)
    public static let usr2 = Signal(rawValue: SIGUSR2)
    public static let alrm = Signal(rawValue: SIGALRM)
    public static let ttin = Signal(rawValue: SIGTTIN)
    public static let ttou = Signal(rawValue: SIGTTOU)
    public static let segv = Signal(rawValue: SIGSEGV)
    public static let abrt = Signal(rawValue: SIGABRT)

    private static let names: [(Int32, String)] = [
        (SIGHUP, "HUP"), (SIGINT, "INT"), (SIGQUIT, "QUIT"), (SIGILL, "ILL"), (SIGTRAP, "TRAP"),
        (SIGABRT, "ABRT"), (SIGBUS, "BUS"), (SIGFPE, "FPE"), (SIGKILL, "KILL"), (SIGUSR1, "USR1"),
        (SIGSEGV, "SEGV"), (SIGUSR2, "USR2"), (SIGPIPE, "PIPE"), (SIGALRM, "ALRM"), (SIGTERM, "TERM"),
        (SIGCHLD, "CHLD"), (SIGCONT, "CONT"), (SIGSTOP, "STOP"), (SIGTSTP, "TSTP"), (SIGTTIN, "TTIN"),
        (SIGTTOU, "TTOU"), (SIGURG, "URG"), (SIGSTKFLT, "STKFLT"), (SIGPWR, "PWR"), (SIGXCPU, "XCPU"),
        (SIGXFSZ, "XFSZ"),
        (SIGVTALRM, "VTALRM"), (SIGPROF, "PROF"), (SIGWINCH, "WINCH"), (SIGIO, "IO"), (SIGSYS, "SYS"),
    ]

    /// `SIGTERM`, or `SIG37` for a signal without a classic name.
    public var name: String {
        if let entry = Self.names.first(where: { $0.0 == rawValue }) { return "SIG" + entry.1 }
        return "SIG\(rawValue)"
    }

    public var description: String { name }

    /// Parses `TERM`, `SIGTERM`, `term`, `15` or `SIG37` (what `name` writes for a signal without a
    /// classic name). Nil for anything else.
    public init?(name text: String) {
        let upper = text.uppercased()
        let bare = upper.hasPrefix("SIG") ? String(upper.dropFirst(3)) : upper
        if let number = Int32(bare), number > 0, number < 65 {
            self.init(rawValue: number)
            return
        }
        guard let entry = Self.names.first(where: { $0.1 == bare }) else { return nil }
        self.init(rawValue: entry.0)
    }

    /// One line on what the default action of this signal is and who usually sends it.
    public var meaning: String {
        switch rawValue {
        case SIGHUP: return "hang-up: terminal closed, or by convention 'reload your configuration'"
        case SIGINT: return "interrupt: Ctrl-C in a terminal; default action terminates"
        case SIGQUIT: return "quit: Ctrl-\\ in a terminal; default action terminates with a core dump"
        case SIGKILL: return "kill: cannot be caught, blocked or ignored; the kernel ends the process at once"
        case SIGTERM: return "terminate: the polite request to stop; can be caught for a graceful exit"
        case SIGSEGV: return "segmentation fault: invalid memory access; default action dumps core"
        case SIGABRT: return "abort: abort() or a failed assertion/precondition; default action dumps core"
        case SIGBUS: return "bus error: bad memory access (e.g. a truncated mmap); dumps core"
        case SIGFPE: return "arithmetic error (e.g. integer division by zero); dumps core"
        case SIGILL: return "illegal instruction (Swift traps use ud2, so a Swift fatalError shows as this)"
        case SIGTRAP: return "trace/breakpoint trap (also a Swift runtime trap on some builds)"
        case SIGPIPE: return "write to a pipe or socket with no reader; default action terminates"
        case SIGCHLD: return "a child stopped or exited; the parent reaps it with waitpid"
        case SIGUSR1: return "user-defined 1; forkwatch's master reopens its log file"
        case SIGUSR2: return "user-defined 2"
        case SIGTTIN: return "background read from the terminal; gunicorn and forkwatch use it for 'one worker more'"
        case SIGTTOU: return "background write to the terminal; gunicorn and forkwatch use it for 'one worker fewer'"
        case SIGALRM: return "alarm clock (alarm(2)); oslo uses it for graceful_shutdown_timeout"
        default: return "signal \(rawValue)"
        }
    }
}
