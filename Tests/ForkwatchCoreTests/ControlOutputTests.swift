import ForkwatchCore
import Testing

/// The shared event log and each client's place in it: what is written, in which order, and
/// what a client is owed.
@Suite struct ControlOutputTests {
    private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    /// Writes everything owed, `chunk` bytes at a time (a socket that takes that much per call).
    private func drain(_ output: inout ControlOutput, _ log: BroadcastLog, chunk: Int = .max) -> String {
        var written: [UInt8] = []
        while let next = output.next(in: log) {
            let count = min(chunk, next.count)
            written += next.prefix(count)
            output.wrote(count, of: next)
        }
        return String(decoding: written, as: UTF8.self)
    }

    @Test func aSubscribersSnapshotComesFirstThenOnlyTheEventsAfterIt() {
        var log = BroadcastLog()
        log.append(bytes("old\n"))
        var output = ControlOutput()
        output.queueReply(bytes("snapshot\n"), logEnd: log.end)
        output.subscribe(logEnd: log.end)
        log.append(bytes("e1\n"))
        log.append(bytes("e2\n"))
        #expect(output.pending(logEnd: log.end) == 15)
        #expect(drain(&output, log, chunk: 4) == "snapshot\ne1\ne2\n")
        #expect(output.pending(logEnd: log.end) == 0)
    }

    @Test func aReplyGoesOutAfterTheEventsBeforeIt() {
        var log = BroadcastLog()
        var output = ControlOutput()
        output.subscribe(logEnd: log.end)
        log.append(bytes("e1\n"))
        output.queueReply(bytes("{\"ok\":true}\n"), logEnd: log.end)
        log.append(bytes("e2\n"))
        #expect(drain(&output, log, chunk: 5) == "e1\n{\"ok\":true}\ne2\n")
    }

    @Test func aPartialWriteIsRememberedAsMidLine() {
        var log = BroadcastLog()
        var output = ControlOutput()
        output.subscribe(logEnd: log.end)
        log.append(bytes("event\n"))
        let next = output.next(in: log)!
        output.wrote(3, of: next)
        #expect(output.endsMidLine)
        #expect(output.pending(logEnd: log.end) == 3)
        output.wrote(3, of: output.next(in: log)!)
        #expect(!output.endsMidLine)
    }

    @Test func aClientThatIsNotSubscribedIsOwedOnlyItsReplies() {
        var log = BroadcastLog()
        var output = ControlOutput()
        output.queueReply(bytes("r1\n"), logEnd: log.end)
        log.append(bytes("event\n"))
        #expect(output.pending(logEnd: log.end) == 3)
        #expect(drain(&output, log) == "r1\n")
        #expect(output.next(in: log) == nil)
    }

    @Test func theLogForgetsWhatEveryoneHasOnlyInLargeSteps() {
        var log = BroadcastLog()
        for _ in 0..<100 { log.append(bytes(String(repeating: "x", count: 99) + "\n")) }
        log.discard(before: 100)  // 1 % of it: not worth moving memory for
        #expect(log.start == 0 && log.count == 10_000)
        log.discard(before: 5_000)
        #expect(log.start == 5_000 && log.count == 5_000 && log.end == 10_000)
        #expect(log.bytes(from: 9_900, to: 10_000).count == 100)
        log.discard(before: log.end)
        #expect(log.count == 0 && log.end == 10_000)
    }
}
