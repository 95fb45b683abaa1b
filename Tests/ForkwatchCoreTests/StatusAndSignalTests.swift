import CForkwatch
import ForkwatchCore
import Testing

@Suite struct TerminationStatusTests {
    /// Status words built the way the kernel builds them, checked against glibc's own macros.
    @Test(arguments: [
        (Int32(0) << 8, TerminationStatus.exited(code: 0)),
        (Int32(1) << 8, .exited(code: 1)),
        (Int32(3) << 8, .exited(code: 3)),
        (Int32(255) << 8, .exited(code: 255)),
        (Int32(9), .signaled(.kill, coreDumped: false)),
        (Int32(15), .signaled(.term, coreDumped: false)),
        (Int32(11) | 0x80, .signaled(.segv, coreDumped: true)),
        (Int32(6) | 0x80, .signaled(.abrt, coreDumped: true)),
        (Int32(34), .signaled(Signal(rawValue: 34), coreDumped: false)),
    ])
    func decodesLikeTheCMacros(raw: Int32, expected: TerminationStatus) {
        let decoded = TerminationStatus(waitStatus: raw)
        #expect(decoded == expected)
        switch decoded {
        case .exited(let code):
            #expect(fw_wifexited(raw) != 0)
            #expect(fw_wexitstatus(raw) == code)
        case .signaled(let signal, let core):
            #expect(fw_wifsignaled(raw) != 0)
            #expect(fw_wtermsig(raw) == signal.rawValue)
            #expect((fw_wcoredump(raw) != 0) == core)
        }
    }

    @Test func explainsTheBits() {
        let text = TerminationStatus(waitStatus: 11 | 0x80).explain(rawStatus: 11 | 0x80)
        #expect(text.contains("WTERMSIG = 11"))
        #expect(text.contains("core dump"))
        #expect(TerminationStatus(waitStatus: 3 << 8).explain(rawStatus: 3 << 8).contains("boot error"))
    }
}

@Suite struct SignalTests {
    @Test(arguments: [
        ("TERM", Signal.term), ("SIGTERM", .term), ("term", .term), ("9", .kill),
        ("HUP", .hup), ("SIGTTIN", .ttin), ("usr1", .usr1),
    ])
    func parsesNames(text: String, expected: Signal) {
        #expect(Signal(name: text) == expected)
    }

    @Test(arguments: ["", "SIGFOO", "0", "99", "-1", "TERMX", "SIG0", "SIG65"])
    func rejectsUnknownNames(text: String) {
        #expect(Signal(name: text) == nil)
    }

    @Test func namesRoundTrip() {
        for number in Int32(1)...31 {
            let signal = Signal(rawValue: number)
            #expect(Signal(name: signal.name) == signal)
        }
    }

    /// Found by fuzzing (Fuzz/ControlRequestFuzz.swift): `SIG49`, the name a signal without a
    /// classic name is written with, did not read back, so a signal request for it, as the CLI and
    /// the dashboard write it, was refused by the master ("no such signal: 'SIG49'").
    @Test(arguments: Int32(32)...64)
    func numberedNamesReadBackAndCrossTheControlSocket(number: Int32) {
        let signal = Signal(rawValue: number)
        #expect(Signal(name: signal.name) == signal)
        let request = ControlRequest.signal(pid: 1, signal: signal)
        #expect(ControlRequest.parse(String(request.line.dropLast())) == .success(request))
    }
}
