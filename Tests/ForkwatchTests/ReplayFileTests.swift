import Forkwatch
import Foundation
import Glibc
import Testing

/// `forkwatch replay` on files no master would write: very large, very dense, or wrong.
@Suite(.serialized) struct ReplayFileTests {
    private func temporaryDirectory() throws -> String {
        let directory = NSTemporaryDirectory() + "forkwatch-replay-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return directory
    }

    /// `12.345678` from microseconds, as the master writes times.
    private static func seconds(_ micros: Int) -> String {
        let fraction = String(micros % 1_000_000)
        return "\(micros / 1_000_000)." + String(repeating: "0", count: 6 - fraction.count) + fraction
    }

    /// Writes a recording: a master_started line, then `lines(i)` for i in 0..<count, in 1 MiB writes.
    private static func write(_ path: String, count: Int, _ line: (Int) -> String) throws {
        FileManager.default.createFile(atPath: path, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        var chunk =
            #"{"v":1,"type":"master_started","wall":1700000000.000000,"mono":100.000000,"pid":4211,"services":[{"name":"idle","workers":2,"builtin":"idle"}],"config":""}"#
            + "\n"
        for i in 0..<count {
            chunk += line(i)
            chunk += "\n"
            if chunk.utf8.count >= 1 << 20 {
                try handle.write(contentsOf: Data(chunk.utf8))
                chunk = ""
            }
        }
        try handle.write(contentsOf: Data(chunk.utf8))
    }

    /// The replay's pid: the child of the tmux pane's shell.
    private func replayPid(_ session: TmuxSession) throws -> pid_t {
        let shell = try #require(
            Int32(
                try session.tmux(["display-message", "-p", "-t", session.name, "#{pane_pid}"])
                    .trimmingCharacters(in: .whitespacesAndNewlines)))
        for _ in 0..<100 {
            if let pid = Proc.children(of: shell).first { return pid }
            usleep(20_000)
        }
        throw TestFailure("no replay process under the shell \(shell)")
    }

    /// `q`, then the time until the shell prompt is back; the terminal must be in cooked mode again.
    private func quit(_ session: TmuxSession, marker: String) throws -> Double {
        let start = Date()
        try session.type("q")
        try session.waitFor("the shell back", timeout: 10) { $0.contains(marker) }
        let latency = Date().timeIntervalSince(start)
        try session.type("stty -a | tr ' ' '\\n' | grep -xE -- '-?(icanon|echo)' | tr '\\n' ' '; echo END")
        try session.press("Enter")
        let stty = try session.waitFor("stty's answer") {
            $0.contains("icanon echo END") || $0.contains("-icanon") || $0.contains("-echo ")
        }
        #expect(stty.contains("icanon echo END"), "\(stty)")
        return latency
    }

    @Test func aHundredMebibyteFileOpensAtOncePlaysInBoundedMemoryAndQuitsOnQ() throws {
        guard TmuxSession.available else {
            Issue.record("tmux is not installed (.ci/run installs it)")
            return
        }
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/big.events"
        // Forks and exits 1 ms apart over 30,000 pids: about 650,000 lines.
        let generation = Date()
        var count = 0
        try Self.write(path, count: 700_000) { i in
            count = i + 1
            let micros = 100_000_000 + i * 1000
            let pid = 1000 + (i / 2) % 30_000
            let times = #""wall":\#(Self.seconds(1_600_000_000_000_000 + micros)),"mono":\#(Self.seconds(micros))"#
            return i % 2 == 0
                ? #"{"v":1,"type":"fork",\#(times),"pid":\#(pid),"service":"idle","reason":"respawn","generation":1}"#
                : #"{"v":1,"type":"exit",\#(times),"pid":\#(pid),"service":"idle","how":"signaled","signal":"SIGKILL","signo":9,"core_dumped":false,"status":9,"uptime":0.001000,"expected":false}"#
        }
        let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        #expect(size > 100 << 20, "the file is \(size) bytes")
        print(
            "generated \(count) lines, \(size) bytes in \(String(format: "%.1f", Date().timeIntervalSince(generation))) s"
        )

        let session = try TmuxSession()
        try session.waitFor("a shell prompt") { $0.contains("$") }
        try session.type("\(forkwatchBinary) replay --speed 64 \(path); echo REPLAY-EXIT=$?")
        let start = Date()
        try session.press("Enter")
        try session.waitFor("the first frame", timeout: 10) { $0.contains("REPLAY") && $0.contains("master 4211") }
        let firstFrame = Date().timeIntervalSince(start)
        let pid = try replayPid(session)
        // Let it play (64× real time: 64,000 events a second) and check it is playing.
        try session.waitFor("replayed kills", timeout: 10) { $0.contains("killed by SIGKILL") }
        usleep(3_000_000)
        let peakKB = Proc.statusKB("VmHWM", of: pid)
        let rssKB = Proc.statusKB("VmRSS", of: pid)
        #expect(peakKB > 0 && peakKB < 64 * 1024, "peak RSS \(peakKB) KiB for a \(size >> 20) MiB file")
        let latency = try quit(session, marker: "REPLAY-EXIT=0")
        #expect(latency < 3, "q took \(latency) s")
        print(
            String(
                format: "100 MiB replay: first frame %.2f s, RSS %d KiB (peak %d KiB), q answered in %.2f s",
                firstFrame, rssKB, peakKB, latency))
    }

    @Test func twentyThousandForksOneMicrosecondApartStillAnswerQ() throws {
        guard TmuxSession.available else {
            Issue.record("tmux is not installed (.ci/run installs it)")
            return
        }
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/dense.events"
        try Self.write(path, count: 20_000) { i in
            let micros = 101_000_000 + i
            return
                #"{"v":1,"type":"fork","wall":\#(Self.seconds(1_600_000_000_000_000 + micros)),"mono":\#(Self.seconds(micros)),"pid":\#(10_000 + i),"service":"idle","reason":"respawn","generation":1}"#
        }
        let session = try TmuxSession()
        try session.waitFor("a shell prompt") { $0.contains("$") }
        try session.type("\(forkwatchBinary) replay \(path); echo REPLAY-EXIT=$?")
        try session.press("Enter")
        try session.waitFor("the first frame", timeout: 10) { $0.contains("REPLAY") && $0.contains("master 4211") }
        // The burst is due 1 s after the start: q in the middle of it.
        usleep(1_100_000)
        let latency = try quit(session, marker: "REPLAY-EXIT=0")
        #expect(latency < 2, "q took \(latency) s")
        print(String(format: "20k forks 1 µs apart: q answered in %.2f s", latency))

        // Played to the end, the burst is all there: 20,000 workers (and the master) on one screen's header.
        try session.type("clear; \(forkwatchBinary) replay \(path); echo REPLAY-EXIT=$?")
        try session.press("Enter")
        try session.waitFor("the whole burst", timeout: 20) { $0.contains("end of the recording (20001 events)") }
        let afterBurst = try quit(session, marker: "REPLAY-EXIT=0")
        #expect(afterBurst < 2, "q took \(afterBurst) s")
    }

    @Test func aFileWithNoReadableEventIsAnErrorNamingTheLine() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/bad.events"
        let lines = [
            "", #"{"v":1,"type":"fork","wall":1,"mono":1e19,"pid":7,"service":"x","reason":"initial","generation":1}"#,
            #"{"v":1,"type":"fork","wall":1,"mono":1,"pid":-7,"service":"x","reason":"initial","generation":1}"#,
        ]
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        let replay = try LaunchedMaster(["replay", path], events: false)
        #expect(try replay.waitExit() == 2)
        #expect(
            replay.log == "forkwatch: \(path):2: event field 'mono' is 1e+19: expected seconds within ±10^12\n",
            "\(replay.log)")

        let missing = directory + "/no/such.events"
        let absent = try LaunchedMaster(["replay", missing], events: false)
        #expect(try absent.waitExit() == 2)
        #expect(absent.log.contains("\(missing): No such file or directory"), "\(absent.log)")
        #expect(!FileManager.default.fileExists(atPath: directory + "/no"))
    }
}
