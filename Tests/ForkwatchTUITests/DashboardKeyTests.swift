import ForkwatchCore
import Testing

@testable import ForkwatchTUI

/// Keys in, commands out: the selection follows a pid, signals only reach live workers, and
/// every question takes exactly one key.
@Suite struct DashboardKeyTests {
    /// The demo with 4213 (the second scheduler worker) selected.
    private func demoOn4213() -> DashboardModel {
        var model = Fixture.demo()
        model.press(.down)
        #expect(model.selectedPid == 4213)
        return model
    }

    @Test func killAsksThenSendsOnYes() {
        var model = demoOn4213()
        #expect(model.press(.character("k")) == [], "nothing is sent before the answer")
        let frame = DashboardRenderer.render(model, width: 80, height: 24)
        #expect(frame.text.contains("Send SIGKILL to 4213 scheduler? y/N"))
        #expect(model.press(.character("y")) == [.signal(pid: 4213, signal: .kill)])
        let after = DashboardRenderer.render(model, width: 80, height: 24)
        #expect(!after.text.contains("Send SIGKILL"))
        #expect(after.text.contains("sent SIGKILL to 4213 scheduler"))
    }

    @Test(arguments: [DashboardKey.character("x"), .character("n"), .character("k"), .escape, .enter, .down])
    func killIsCancelledByAnyOtherKey(key: DashboardKey) {
        var model = demoOn4213()
        model.press(.character("k"))
        #expect(model.press(key) == [])
        let frame = DashboardRenderer.render(model, width: 80, height: 24)
        #expect(!frame.text.contains("Send SIGKILL"))
        #expect(frame.text.contains("SIGKILL cancelled"))
        #expect(model.press(.character("y")) == [], "a late y sends nothing")
        #expect(model.selectedPid == 4213, "the cancelling key did nothing else")
    }

    @Test func killIsNotSentToAWorkerThatDiedDuringTheQuestion() {
        var model = demoOn4213()
        model.press(.character("k"))
        model.apply(
            Fixture.event(
                .exit(
                    pid: 4213, service: "scheduler", status: .exited(code: 0), rawStatus: 0, uptime: 192,
                    expected: false), at: Fixture.now + 0.1))
        #expect(model.press(.character("y")) == [])
        #expect(DashboardRenderer.render(model, width: 80, height: 24).text.contains("4213 scheduler is gone"))
    }

    @Test(arguments: [("t" as Character, Signal.term), ("h", .hup), ("i", .int)])
    func signalKeysGoToTheSelectedWorker(key: Character, signal: Signal) {
        var model = demoOn4213()
        #expect(model.press(.character(key)) == [.signal(pid: 4213, signal: signal)])
        #expect(
            DashboardRenderer.render(model, width: 80, height: 24).text.contains(
                "sent \(signal.name) to 4213 scheduler"))
    }

    @Test(arguments: ["t", "h", "i", "k"] as [Character])
    func signalsNeverTargetTheMaster(key: Character) {
        var model = Fixture.demo()
        model.press(.home)
        #expect(model.selectedPid == Fixture.masterPid)
        #expect(model.press(.character(key)) == [])
        #expect(model.press(.character("y")) == [], "no confirmation was pending")
        #expect(DashboardRenderer.render(model, width: 80, height: 24).text.contains("4211 is the master"))
    }

    @Test func signalsNeverTargetAGoneWorker() {
        var model = demoOn4213()
        model.apply(
            Fixture.event(
                .exit(
                    pid: 4213, service: "scheduler", status: .signaled(.segv, coreDumped: true), rawStatus: 11 | 0x80,
                    uptime: 192, expected: false), at: Fixture.now + 0.1))
        // The row lingers (state "gone") so the selection does not jump under the user's finger.
        #expect(model.selectedPid == 4213)
        #expect(DashboardRenderer.render(model, width: 80, height: 24).selectedWorkerRow?.contains("gone") == true)
        #expect(model.press(.character("t")) == [])
        #expect(model.press(.character("k")) == [])
        #expect(DashboardRenderer.render(model, width: 80, height: 24).text.contains("4213 is gone"))
    }

    @Test func selectionFollowsThePidWhenARowIsInsertedAbove() {
        var model = Fixture.demo()
        model.press(.down, .down)
        #expect(model.selectedPid == 4214)
        let before = DashboardRenderer.render(model, width: 80, height: 24)
        #expect(before.selectedWorkerRow?.contains("4214") == true)
        // pid numbers wrapped: the respawned worker sorts above the selection.
        model.apply(
            Fixture.event(.fork(pid: 300, service: "scheduler", reason: .respawn, generation: 1), at: Fixture.now + 1))
        let after = DashboardRenderer.render(model, width: 80, height: 24)
        #expect(model.selectedPid == 4214)
        #expect(after.selectedWorkerRow?.contains("4214") == true)
        #expect(
            after.rowIndexOfSelection == before.rowIndexOfSelection.map { $0 + 1 }, "the bar moved down with its row")
        #expect(model.press(.character("t")) == [.signal(pid: 4214, signal: .term)])
    }

    @Test func whenTheSelectedPidLeavesTheNextRowAtItsPlaceIsSelected() {
        var model = demoOn4213()
        model.apply(
            Fixture.event(
                .exit(
                    pid: 4213, service: "scheduler", status: .signaled(.kill, coreDumped: false), rawStatus: 9,
                    uptime: 192, expected: false), at: Fixture.now + 0.1))
        model.setNow(Fixture.now + 5)  // the gone row has left the list
        #expect(model.selectedPid == 4214)
        #expect(DashboardRenderer.render(model, width: 80, height: 24).selectedWorkerRow?.contains("4214") == true)
    }

    @Test func theFirstSelectionIsAWorkerNotTheMaster() {
        var model = DashboardModel(title: "t", mode: .live)
        model.apply(Fixture.snapshot(services: [Fixture.service("scheduler", workers: 1)], workers: []))
        #expect(model.selectedPid == Fixture.masterPid, "only the master so far")
        model.apply(
            Fixture.event(
                .fork(pid: 5000, service: "scheduler", reason: .initial, generation: 1), at: Fixture.startMono + 1))
        #expect(model.selectedPid == 5000)
    }

    @Test func scaleKeysAskForOneMoreOrOneFewer() {
        var model = demoOn4213()
        #expect(model.press(.character("+")) == [.scale(service: "scheduler", workers: 5)])
        #expect(model.press(.character("-")) == [.scale(service: "scheduler", workers: 3)])
        model.apply(Fixture.event(.scale(service: "api", from: 2, to: 1, reason: "you"), at: Fixture.now + 1))
        model.press(.end)
        #expect(model.selectedWorker?.service == "api")
        #expect(model.press(.character("-")) == [], "never below one worker")
        #expect(model.press(.character("r")) == [.reload])
    }

    @Test func quitAsksWhetherToStopTheServices() {
        var model = Fixture.demo()
        #expect(model.press(.character("q")) == [])
        #expect(
            DashboardRenderer.render(model, width: 80, height: 24).text.contains(
                "Stop the services (s) / leave them running (l) / cancel (any other key)"))
        #expect(model.press(.character("s")) == [.quit(stopServices: true)])
        model.press(.character("q"))
        #expect(model.press(.character("l")) == [.quit(stopServices: false)])
        model.press(.character("q"))
        #expect(model.press(.character("x")) == [])
        #expect(!DashboardRenderer.render(model, width: 80, height: 24).text.contains("Stop the services"))
    }

    @Test func pauseFreezesTheScreenButNotTheModel() {
        var model = Fixture.demo()
        model.press(.character(" "))
        #expect(model.isPaused)
        model.apply(Fixture.event(.fork(pid: 4500, service: "api", reason: .scale, generation: 1), at: Fixture.now + 1))
        var frame = DashboardRenderer.render(model, width: 80, height: 24)
        #expect(frame.text(row: 0).contains("PAUSED"))
        #expect(frame.row(containing: "4500") == nil, "the screen is frozen")
        model.press(.character(" "))
        frame = DashboardRenderer.render(model, width: 80, height: 24)
        #expect(frame.row(containing: "4500") != nil, "and catches up on resume")
        #expect(!frame.text(row: 0).contains("PAUSED"))
    }

    @Test func fastRefreshToggles() {
        var model = Fixture.demo()
        #expect(model.press(.character("f")) == [.setFastRefresh(true)])
        #expect(model.press(.character("f")) == [.setFastRefresh(false)])
    }

    @Test func tabMovesTheArrowsToTheEvents() {
        var model = Fixture.demo()
        let selected = model.selectedPid
        model.press(.character("\t"), .up, .up)
        #expect(model.selectedPid == selected, "the arrows moved the event cursor, not the worker")
        #expect(model.explainedEvent?.summary.contains("4215 scheduler ready") == true)
        model.press(.end)
        #expect(model.explainedEvent?.summary.contains("4217 api ready") == true)
    }

    @Test func filterPromptEditsAndClears() {
        var model = Fixture.demo()
        model.type("/schx")
        model.press(.backspace, .enter)
        #expect(model.filter == "sch")
        #expect(model.press(.character("t")) == [.signal(pid: 4212, signal: .term)], "keys work again after Enter")
        model.type("/")
        model.press(.escape)
        #expect(model.filter == "")
    }
}

extension Frame {
    var rowIndexOfSelection: Int? {
        (0..<height).first { self[$0, 0].character == ">" && self[$0, 5].style.reverse }
    }
}
