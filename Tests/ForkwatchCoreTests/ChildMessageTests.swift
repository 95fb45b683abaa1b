import ForkwatchCore
import Testing

/// The status pipe's messages: every case written by `line` reads back as itself, and what a
/// worker cannot mean is refused with a reason (the master makes it a notice).
@Suite struct ChildMessageTests {
    static let messages: [ChildMessage] = [
        .ready,
        .execFailed(errno: 2),
        .taskRan(
            .init(
                task: "_sync_host_capacity", started: 1_764_000_000.25, duration: 0.003125, ok: true, error: nil,
                nextDue: 1234.5, spacing: 5)),
        .taskRan(
            .init(
                task: "_expire_reservations", started: 1_764_000_001, duration: 0.01, ok: false,
                error: "placement answered 503: \"quoted\"\nand a second line", nextDue: nil, spacing: 3)),
        .heartbeat(ok: true, reportCount: 42, error: nil),
        .heartbeat(ok: false, reportCount: nil, error: "database is locked"),
        .rpcStats(
            topic: "scheduler",
            methods: [
                RPCMethodStats(
                    method: "select_destinations", handled: 40, failures: 1, inFlight: 1, p50: 0.002, p95: 0.004)
            ]),
        .notice("RPC: AMQP connection lost; reconnecting"),
    ]

    @Test(arguments: messages)
    func roundTrips(_ message: ChildMessage) throws {
        let line = message.line
        #expect(line.hasSuffix("\n"))
        #expect(line.dropLast().allSatisfy { $0 != "\n" && $0 != "\r" }, "one line: \(line)")
        #expect(line.utf8.count <= ChildMessage.maxLineBytes + 1)
        #expect(try ChildMessage.parse(String(line.dropLast())).get() == message)
    }

    /// `fw_fork_exec` writes this line in C, not through `line`.
    @Test func theCChildsExecFailureLineParses() throws {
        #expect(try ChildMessage.parse("execfail 13").get() == .execFailed(errno: 13))
    }

    @Test func longTextIsCutAndANoticeStaysOneLine() throws {
        let long = String(repeating: "é", count: 3000)
        let line = ChildMessage.notice("first\nsecond " + long).line
        #expect(line.utf8.count <= ChildMessage.maxTextBytes + "notice \n".utf8.count)
        guard case .notice(let text) = try ChildMessage.parse(String(line.dropLast())).get() else {
            Issue.record("not a notice: \(line)")
            return
        }
        #expect(text.hasPrefix("first second éé") && text.hasSuffix("…"))
        let beat = ChildMessage.heartbeat(ok: false, reportCount: nil, error: long).line
        guard case .heartbeat(_, _, let error) = try ChildMessage.parse(String(beat.dropLast())).get() else {
            Issue.record("not a heartbeat: \(beat)")
            return
        }
        #expect(error?.utf8.count ?? 0 <= ChildMessage.maxTextBytes)
    }

    @Test(arguments: [
        ("", "unknown kind ''"),
        ("hello", "unknown kind 'hello'"),
        ("ready now", "ready takes nothing after it"),
        ("execfail", "execfail needs an errno"),
        ("execfail x", "execfail needs an errno"),
        ("task {\"ok\":true}", "task needs a JSON object with \"task\" and \"ok\""),
        ("task not json", "task needs a JSON object"),
        ("beat []", "beat needs a JSON object with \"ok\""),
        ("rpc {\"methods\":[]}", "rpc needs a JSON object with \"topic\""),
    ])
    func malformedLinesAreRefusedWithAReason(line: String, problem: String) {
        guard case .failure(let error) = ChildMessage.parse(line) else {
            Issue.record("\(line) parsed")
            return
        }
        #expect(error.problem.hasPrefix(problem), "\(error)")
        #expect(line.isEmpty || error.description.contains(line), "\(error)")
    }

    @Test func anOverlongLineIsRefused() {
        let line = "notice " + String(repeating: "x", count: ChildMessage.maxLineBytes)
        guard case .failure(let error) = ChildMessage.parse(line) else {
            Issue.record("parsed")
            return
        }
        #expect(error.problem == "longer than \(ChildMessage.maxLineBytes) bytes")
    }
}
