import ForkwatchCore
import Testing

@Suite struct ProcStatTests {
    /// A /proc/PID/stat line whose comm holds spaces and parentheses, as a process may name itself.
    static let stat =
        "4242 (my (odd) worker) S 1 4242 4242 0 -1 4194560 120 0 0 0 731 42 0 0 20 0 7 0 3300 123456 789 18446744073709551615\n"
    static let statm = "30000 2048 512 100 0 900 0\n"

    @Test func theStringAndByteParsersAgree() {
        let fromText = ProcStat.parse(stat: Self.stat, statm: Self.statm)
        let fromBytes = Array(Self.stat.utf8).withUnsafeBufferPointer { stat in
            Array(Self.statm.utf8).withUnsafeBufferPointer { statm in ProcStat.parse(stat: stat, statm: statm) }
        }
        #expect(fromText == ProcStat.Reading(state: "S", cpuTicks: 731 + 42, threads: 7, rssPages: 2048))
        #expect(fromBytes == fromText)
    }

    @Test(arguments: ["", "4242 (x", "4242 (x) S 1 2", "garbage"])
    func truncatedInputIsRejected(stat: String) {
        let parsed = Array(stat.utf8).withUnsafeBufferPointer { s in
            Array(Self.statm.utf8).withUnsafeBufferPointer { m in ProcStat.parse(stat: s, statm: m) }
        }
        #expect(parsed == nil)
    }

    @Test func cpuPercentIsTicksOverTime() {
        #expect(ProcStat.cpuPercent(from: 100, to: 150, seconds: 1, ticksPerSecond: 100) == 50)
        #expect(ProcStat.cpuPercent(from: 150, to: 100, seconds: 1, ticksPerSecond: 100) == 0)
    }
}
