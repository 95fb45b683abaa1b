/// How a child ended, decoded once from the status word `waitpid(2)` filled in.
public enum TerminationStatus: Hashable, Sendable, CustomStringConvertible {
    case exited(code: Int32)
    case signaled(Signal, coreDumped: Bool)

    /// Decodes a Linux wait status word: low 7 bits = terminating signal (0 = normal exit),
    /// bit 7 = core dumped, bits 8–15 = exit code. (Stopped/continued words are never passed
    /// here: the master does not ask for WUNTRACED.)
    public init(waitStatus status: Int32) {
        let low = status & 0x7f
        if low == 0 {
            self = .exited(code: (status >> 8) & 0xff)
        } else {
            self = .signaled(Signal(rawValue: low), coreDumped: status & 0x80 != 0)
        }
    }

    public var description: String {
        switch self {
        case .exited(let code): return "exited with status \(code)"
        case .signaled(let signal, let core):
            return "killed by \(signal.name) (\(signal.rawValue))" + (core ? ", core dumped" : "")
        }
    }

    /// What the status word's bits meant, for the teaching view.
    public func explain(rawStatus: Int32) -> String {
        let hex = "0x" + String(UInt32(bitPattern: rawStatus), radix: 16)
        switch self {
        case .exited(let code):
            var text =
                "waitpid status \(hex): low 7 bits are 0, so WIFEXITED is true; "
                + "WEXITSTATUS = bits 8-15 = \(code)."
            if code == ExitCode.bootError {
                text += " Exit code 3 means 'boot error': forkwatch stops respawning this service."
            }
            return text
        case .signaled(let signal, let core):
            return "waitpid status \(hex): low 7 bits = \(signal.rawValue), so WIFSIGNALED is true and "
                + "WTERMSIG = \(signal.rawValue) (\(signal.name): \(signal.meaning)); bit 7 (WCOREDUMP) is "
                + (core ? "set: the kernel wrote a core dump." : "clear: no core dump.")
        }
    }
}

/// Named worker exit codes.
public enum ExitCode {
    /// The worker could not boot; respawning it would only loop (gunicorn's WORKER_BOOT_ERROR).
    public static let bootError: Int32 = 3
    /// A child whose `execve` failed (the shell's convention for "command not found").
    public static let execFailed: Int32 = 127
}
