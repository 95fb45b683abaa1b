import ForkwatchCore
import Testing

@testable import ForkwatchTUI

/// The dashboard rendered into a character grid, asserted as text a person would read.
@Suite struct DashboardRenderTests {
    @Test func normalStateAt80x24() {
        var model = Fixture.demo()
        Fixture.killAndRespawn(&model, at: Fixture.now - 2)
        let frame = DashboardRenderer.render(model, width: 80, height: 24)
        let header = frame.text(row: 0)
        #expect(header.contains("forkwatch demo"))
        #expect(header.contains("master 4211"))
        #expect(header.contains("up 0:03:12"))
        #expect(header.contains("6/6 workers"))
        #expect(header.contains("1 fork in last 4 s"))
        // The tree: master at the root, workers by service, a selection on the first worker.
        #expect(frame.row(containing: "4211")?.contains("master") == true)
        for pid in [4212, 4214, 4215, 4216, 4217, 4390] {
            #expect(frame.row(containing: "\(pid) ") != nil, "worker \(pid) has a row")
        }
        let respawned = frame.row(containing: "4390")
        #expect(respawned?.contains("KILL") == true, "LAST says how the replaced worker ended")
        #expect(respawned?.contains("start") == true)
        #expect(frame.row(containing: "4212")?.contains("12M") == true)
        #expect(frame.row(containing: "4212")?.contains("ready") == true)
        #expect(frame.row(containing: "PID")?.contains("LAST") == true)
        // Events as in the design.
        #expect(frame.text.contains("you → SIGKILL 4213 scheduler"))
        #expect(frame.text.contains("SIGCHLD: 4213 scheduler killed by SIG"))
        #expect(frame.text.contains("fork → 4390 scheduler (respawn"))
        // The right column.
        #expect(frame.text.contains("THROTTLE"))
        #expect(frame.text.contains("scheduler ×4"))
        #expect(frame.text.contains("crash-loop: no"))
        #expect(frame.text.contains("no periodic tasks"))
        #expect(frame.text.contains("no listening socket"))
        #expect(frame.text(row: 23).contains("q quit"))
        #expect(frame.text.split(separator: "\n").allSatisfy { $0.count <= 80 })
    }

    @Test func widerTerminalShowsMoreColumnsAndMoreEvents() {
        var model = Fixture.demo()
        for index in 0..<40 {
            model.apply(Fixture.event(.notice(message: "notice \(index) end"), at: Fixture.now - 60 + Double(index)))
        }
        for second in 0..<10 {
            model.apply(Fixture.stats(at: Fixture.now - 10 + Double(second), cpu: Double(second * 10)))
        }
        let small = DashboardRenderer.render(model, width: 80, height: 24)
        let large = DashboardRenderer.render(model, width: 160, height: 50)
        let shown: (Frame) -> Int = { frame in (0..<40).filter { frame.text.contains("notice \($0) end") }.count }
        #expect(shown(small) >= 5)
        #expect(shown(large) > shown(small) + 10, "more event rows when taller")
        #expect(large.text.contains("notice 39 end"), "the newest stays at the bottom")
        #expect(!small.text.contains("CPU HISTORY"))
        #expect(large.row(containing: "PID")?.contains("THR") == true)
        #expect(large.row(containing: "PID")?.contains("CPU HISTORY") == true)
        #expect(large.row(containing: "4212")?.contains("▁▂") == true, "a CPU sparkline for each worker")
        #expect(large.text(row: 0).contains("0 forks in last 4 s"))
        #expect(large.text(row: 0).contains("? help"))
        #expect(large.text(row: 49).contains("space pause"))
    }

    @Test func crashLoopShowsStateAndPendingFork() {
        var model = Fixture.demo()
        let t = Fixture.now
        model.apply(
            Fixture.event(
                .exit(
                    pid: 4216, service: "api", status: .exited(code: 1), rawStatus: 1 << 8, uptime: 0.2, expected: false
                ), at: t - 0.5))
        model.apply(
            Fixture.event(
                .serviceState(
                    service: "api", state: .crashLooping,
                    reason: "5 workers in a row died within boot_window (1.0 s) of their fork"), at: t - 0.5))
        model.apply(Fixture.event(.throttle(service: "api", forks: 3, span: 0.4, window: 2, delay: 1), at: t - 0.2))
        model.setNow(t)
        let frame = DashboardRenderer.render(model, width: 80, height: 24)
        #expect(frame.text.contains("api ×2 CRASH-LOOP"))
        #expect(frame.text.contains("crash-loop: yes"))
        #expect(frame.text.contains("next fork in 0.8 s"))
        #expect(frame.text.contains("service api is crash-looping"))
        #expect(frame.row(containing: "4216")?.contains("exit 1") == true)
    }

    @Test func throttledForkWaitsThenForks() {
        var model = Fixture.demo()
        let t = Fixture.now
        for (index, pid) in [Int32(4300), 4301, 4302, 4303, 4304].enumerated() {
            model.apply(
                Fixture.event(
                    .fork(pid: pid, service: "scheduler", reason: .respawn, generation: 1),
                    at: t - 3.2 + Double(index) * 0.1))
        }
        model.apply(
            Fixture.event(.throttle(service: "scheduler", forks: 5, span: 0.4, window: 4, delay: 1), at: t - 2.7))
        model.setNow(t - 2.5)
        var frame = DashboardRenderer.render(model, width: 80, height: 24)
        #expect(frame.text.contains("5 forks in 0.7 s < 4 s"))
        #expect(frame.text.contains("next fork in 0.8 s"))
        #expect(frame.text.contains("throttle: scheduler forked 5 times"))
        #expect(frame.text(row: 0).contains("5 forks in last 4 s"))

        model.apply(Fixture.event(.fork(pid: 4305, service: "scheduler", reason: .respawn, generation: 1), at: t - 1.7))
        model.setNow(t)
        frame = DashboardRenderer.render(model, width: 120, height: 40)
        #expect(frame.text.contains("no fork pending"))
        #expect(frame.text.contains("last wait 1 s: 5 forks in 0.4 s"))
    }

    @Test func stoppingIsShownInHeaderWorkersAndEvents() {
        var model = Fixture.demo()
        let t = Fixture.now
        model.apply(Fixture.event(.signalReceived(signal: .term, senderPid: 1), at: t))
        model.apply(Fixture.event(.stopping(mode: .graceful, timeout: 60, workers: 6), at: t))
        model.apply(
            Fixture.event(
                .signalSent(
                    pid: 4212, service: "scheduler", signal: .term, reason: "graceful stop", origin: "master",
                    error: nil), at: t))
        model.setNow(t + 18)
        var frame = DashboardRenderer.render(model, width: 100, height: 30)
        #expect(frame.text(row: 0).contains("STOPPING (graceful) · SIGKILL in 42 s"))
        #expect(frame.row(containing: "4212")?.contains("stop") == true)
        #expect(frame.row(containing: "4211")?.contains("stop") == true)
        #expect(frame.text.contains("stopping (graceful): 6 workers"))

        model.apply(
            Fixture.event(.escalate(reason: "graceful_shutdown_timeout (60.0 s) expired", survivors: 5), at: t + 60))
        frame = DashboardRenderer.render(model, width: 100, height: 30)
        #expect(frame.text(row: 0).contains("ESCALATED: SIGKILL to 5 workers"))
        #expect(frame.text.contains("escalating to SIGKILL for 5 workers"))

        model.apply(Fixture.event(.stopped(exitCode: 0), at: t + 61))
        frame = DashboardRenderer.render(model, width: 80, height: 24)
        #expect(frame.text(row: 0).contains("STOPPED (exit 0)"))
    }

    @Test func manyWorkersScrollAndKeepTheSelectionVisible() {
        var model = DashboardModel(title: "forkwatch", mode: .live)
        let pids = (0..<200).map { Int32(10_000 + $0) }
        model.apply(
            Fixture.snapshot(
                services: [Fixture.service("scheduler", workers: 200)],
                workers: pids.map { Fixture.worker($0, "scheduler") }))
        model.setTerminalSize(width: 80, height: 24)
        var frame = DashboardRenderer.render(model, width: 80, height: 24)
        #expect(frame.text.contains("1-10 of 201"))
        #expect(frame.selectedWorkerRow?.contains("10000") == true)

        for step in 1...57 {
            model.press(.down)
            frame = DashboardRenderer.render(model, width: 80, height: 24)
            #expect(frame.selectedWorkerRow?.contains("\(10_000 + step)") == true, "step \(step)")
        }
        model.press(.end)
        frame = DashboardRenderer.render(model, width: 80, height: 24)
        #expect(frame.selectedWorkerRow?.contains("10199") == true)
        #expect(frame.text.contains("192-201 of 201"))
        model.press(.pageUp)
        frame = DashboardRenderer.render(model, width: 80, height: 24)
        #expect(frame.selectedWorkerRow?.contains("10190") == true)
        // A terminal size other than the one the model was told about: still on screen.
        frame = DashboardRenderer.render(model, width: 120, height: 30)
        #expect(frame.selectedWorkerRow?.contains("10190") == true)
    }

    @Test func filterKeepsMatchingEventsAndWorkers() {
        var model = Fixture.demo()
        model.type("/api")
        var frame = DashboardRenderer.render(model, width: 80, height: 24)
        #expect(frame.row(containing: " / api") != nil, "the prompt shows what is typed")
        model.press(.enter)
        frame = DashboardRenderer.render(model, width: 80, height: 24)
        #expect(frame.row(containing: "4216") != nil)
        #expect(frame.row(containing: "4217") != nil)
        #expect(frame.row(containing: "4212") == nil)
        #expect(frame.text.contains("4216 api ready"))
        #expect(!frame.text.contains("4212 scheduler ready"))
        #expect(frame.row(containing: "filter \"api\"") != nil)

        model.press(.escape)
        frame = DashboardRenderer.render(model, width: 80, height: 24)
        #expect(frame.row(containing: "4212") != nil)
        #expect(frame.text.contains("4212 scheduler ready"))
    }

    @Test func helpOverlayListsEveryKey() {
        var model = Fixture.demo()
        model.type("?")
        let frame = DashboardRenderer.render(model, width: 80, height: 24)
        for (keys, meaning) in [
            ("t", "SIGTERM"), ("h", "SIGHUP"), ("i", "SIGINT"), ("k", "SIGKILL"), ("+ -", "one worker more"),
            ("r", "reload"), ("e  Enter", "explain"), ("/", "filter"), ("space", "pause"), ("f", "fast refresh"),
            ("?", "this help"), ("q", "quit"), ("[ ]", "older / newer event"), ("Tab", "WORKERS and EVENTS"),
            ("↑ ↓ PgUp PgDn", "select a worker"), ("Home End", "first / last"),
        ] {
            let row = frame.row(containing: meaning)
            #expect(row?.contains(" \(keys) ") == true, "help lists \(keys): \(meaning)")
        }
        // Any key closes it, and does nothing else.
        #expect(model.press(.character("t")) == [])
        #expect(!DashboardRenderer.render(model, width: 80, height: 24).text.contains("this help"))
    }

    @Test(arguments: [
        (TerminationStatus.signaled(.kill, coreDumped: false), Int32(9), ["WIFSIGNALED", "WTERMSIG = 9"]),
        (.signaled(.segv, coreDumped: true), 11 | 0x80, ["WCOREDUMP", "core dump"]),
        (.exited(code: 3), 3 << 8, ["WIFEXITED", "boot error"]),
    ])
    func explainPaneShowsTheStatusWord(status: TerminationStatus, raw: Int32, words: [String]) {
        var model = Fixture.demo()
        model.apply(
            Fixture.event(
                .exit(pid: 4214, service: "scheduler", status: status, rawStatus: raw, uptime: 12, expected: false),
                at: Fixture.now))
        #expect(!DashboardRenderer.render(model, width: 80, height: 24).text.contains("EXPLAIN"))
        model.type("e")
        let frame = DashboardRenderer.render(model, width: 80, height: 24)
        #expect(frame.text.contains("EXPLAIN"))
        let text = frame.leftColumnText
        #expect(text.contains("SIGCHLD: 4214 scheduler \(status)"))
        for word in words { #expect(text.contains(word), "explains \(word)") }
        #expect(frame.selectedWorkerRow != nil, "the worker list stays on screen")
    }

    @Test func eventCursorPicksWhatIsExplained() {
        var model = Fixture.demo()
        model.apply(
            Fixture.event(
                .throttle(service: "scheduler", forks: 5, span: 0.4, window: 4, delay: 1), at: Fixture.now - 0.3))
        model.apply(Fixture.event(.notice(message: "newest"), at: Fixture.now - 0.1))
        model.type("[e")
        let frame = DashboardRenderer.render(model, width: 100, height: 30)
        #expect(frame.leftColumnText.contains("oslo.service's rule"))
        let cursorRows = frame.text.split(separator: "\n").filter { $0.hasPrefix(">") }
        #expect(cursorRows.contains { $0.contains("throttle: scheduler") }, "the cursor is on the explained event")
    }

    @Test func replayHeaderShowsSpeedAndPause() {
        var model = Fixture.demo(mode: .replay)
        #expect(DashboardRenderer.render(model, width: 80, height: 24).text(row: 0).contains("REPLAY ×1"))
        #expect(model.press(.character(">")) == [.replaySpeed(2)])
        #expect(DashboardRenderer.render(model, width: 80, height: 24).text(row: 0).contains("REPLAY ×2"))
        #expect(model.press(.character("<"), .character("<")) == [.replaySpeed(1), .replaySpeed(0.5)])
        #expect(DashboardRenderer.render(model, width: 80, height: 24).text(row: 0).contains("REPLAY ×0.5"))
        model.type(" ")
        #expect(model.isPaused)
        let frame = DashboardRenderer.render(model, width: 80, height: 24)
        #expect(frame.text(row: 0).contains("REPLAY paused"))
        #expect(frame.text.contains(". step"))
        #expect(model.press(.character(".")) == [.replayStep])
        #expect(model.press(.character("t")) == [], "a recording cannot be signalled")
        #expect(model.press(.character("q")) == [.quit(stopServices: false)])
    }

    @Test(arguments: [(79, 24), (80, 23), (40, 10), (20, 5)])
    func tooSmallTerminalSaysWhatItNeeds(width: Int, height: Int) {
        let frame = DashboardRenderer.render(Fixture.demo(), width: width, height: height)
        // Centred rows joined, for the narrow terminals where the message wraps.
        let text = frame.text.split(separator: "\n").map { $0.drop { $0 == " " } }.joined(separator: " ")
        #expect(text.contains("terminal too small"))
        #expect(text.contains("need 80×24, have \(width)×\(height)"))
        #expect(!text.contains("WORKERS"))
    }

    @Test(arguments: [(80, 24), (132, 40)])
    func asciiFallbackUsesNoUnicode(width: Int, height: Int) {
        var model = Fixture.demo()
        Fixture.killAndRespawn(&model, at: Fixture.now - 1)
        for second in 0..<5 {
            model.apply(Fixture.stats(at: Fixture.now - 5 + Double(second), cpu: Double(second) * 20))
        }
        let unicode = DashboardRenderer.render(model, width: width, height: height, unicode: true)
        #expect(
            unicode.text.unicodeScalars.contains { (0x2500...0x259F).contains($0.value) },
            "the unicode frame does draw boxes")
        let ascii = DashboardRenderer.render(model, width: width, height: height, unicode: false)
        let foreign = ascii.text.unicodeScalars.filter { !$0.isASCII }
        #expect(foreign.isEmpty, "non-ASCII: \(String(String.UnicodeScalarView(foreign)))")
        #expect(ascii.text.contains("you -> SIGKILL 4213"))
        #expect(ascii.row(containing: "PID")?.contains("|") == true)
        #expect(ascii.text.contains("scheduler x4"))
    }

    @Test func eventTimesUseTheGivenUTCOffset() {
        var model = DashboardModel(title: "t", mode: .live, utcOffset: 3600)
        model.apply(Event(mono: 5, wall: 1_700_000_000.123, kind: .notice(message: "hello")))
        var frame = DashboardRenderer.render(model, width: 80, height: 24)
        #expect(frame.row(containing: "hello")?.contains("23:13:20.123 hello") == true)
        model.utcOffset = 0
        frame = DashboardRenderer.render(model, width: 80, height: 24)
        #expect(frame.row(containing: "hello")?.contains("22:13:20.123 hello") == true)
    }

    @Test(arguments: [80, 200])
    func footerListsEveryKey(width: Int) {
        let frame = DashboardRenderer.render(Fixture.demo(), width: width, height: 24)
        let footer = width < 120 ? frame.text(row: 22) + " " + frame.text(row: 23) : frame.text(row: 23)
        for key in [
            "t TERM", "h HUP", "k KILL", "i INT", "+/- scale", "r restart", "e explain", "/ filter", "space pause",
            "f fast", "Tab focus", "[ ] event", "? help", "q quit",
        ] {
            #expect(footer.contains(key), "footer has \(key)")
        }
    }
}
