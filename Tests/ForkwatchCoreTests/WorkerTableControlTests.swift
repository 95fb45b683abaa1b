import ForkwatchCore
import Testing

extension ScriptedMaster {
    /// The table's answer to a request it decides (not status or subscribe).
    mutating func control(
        _ request: ControlRequest, sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> ControlOutcome {
        let outcome = table.control(request, now: now)
        return try #require(outcome, sourceLocation: sourceLocation)
    }
}

/// Control requests decided by the table: the reply line and the actions, scripted.
@Suite struct WorkerTableControlTests {
    /// api: 100 101, db: 102.
    private func started(stopping: Bool = false) -> ScriptedMaster {
        var master = ScriptedMaster([("api", 2), ("db", 1)]) { $0.gracefulShutdownTimeout = 5 }
        master.start()
        if stopping { master.signal(.term) }
        master.signals.removeAll()
        master.events.removeAll()
        return master
    }

    @Test(arguments: [
        // (request, master stopping, the error sent back)
        (ControlRequest.signal(pid: 1, signal: .kill), false, "pid 1 is not a live worker of this master"),
        (.signal(pid: 4242, signal: .term), true, "pid 4242 is not a live worker of this master"),
        (.scale(service: "nope", workers: 2), false, "no service named 'nope' (services: api, db)"),
        (.scale(service: "nope", workers: 2), true, "no service named 'nope' (services: api, db)"),
        (.scale(service: "api", workers: 3), true, "the master is stopping"),
        (.reload, true, "the master is stopping"),
    ])
    func refusedRequestsSayWhyAndDoNothing(request: ControlRequest, stopping: Bool, error: String) throws {
        var master = started(stopping: stopping)
        let before = master.table
        let outcome = try master.control(request)
        #expect(outcome.reply == .failure(ControlError(error)))
        #expect(outcome.line == "{\"ok\":false,\"error\":\"\(error)\"}\n")
        #expect(outcome.actions.isEmpty)
        #expect(master.table.workers == before.workers)
        #expect(master.table.services == before.services)
    }

    @Test func aSignalGoesOnlyToALiveWorker() throws {
        var master = started()
        let outcome = try master.control(.signal(pid: 101, signal: .kill))
        #expect(outcome.line == "{\"ok\":true,\"op\":\"signal\",\"pid\":101,\"signal\":\"SIGKILL\"}\n")
        #expect(
            outcome.actions == [
                .signal(pid: 101, signal: .kill, reason: "asked over the control socket", origin: "you")
            ])
        master.exit(101, status: 9)
        let late = try master.control(.signal(pid: 101, signal: .kill))
        #expect(
            late.reply == .failure(ControlError("pid 101 is not a live worker of this master")),
            "reaped: the pid may be reused")
        #expect(late.actions.isEmpty)
    }

    @Test func aStoppingMasterStillSignalsItsWorkers() throws {
        var master = started(stopping: true)
        let outcome = try master.control(.signal(pid: 102, signal: .kill))
        #expect(
            outcome.actions == [
                .signal(pid: 102, signal: .kill, reason: "asked over the control socket", origin: "you")
            ])
    }

    @Test func scaleForksAndRetiresThroughTheTable() throws {
        var master = started()
        let up = try master.control(.scale(service: "api", workers: 3))
        #expect(up.line == "{\"ok\":true,\"op\":\"scale\"}\n")
        master.perform(up.actions)
        #expect(master.events.first == .scale(service: "api", from: 2, to: 3, reason: "asked over the control socket"))
        #expect(master.pids(of: "api") == [100, 101, 103])
        let down = try master.control(.scale(service: "api", workers: 1))
        master.perform(down.actions)
        #expect(master.signals.map(\.pid) == [100, 101], "the oldest two retire")
        // The same count again is accepted and does nothing.
        let same = try master.control(.scale(service: "api", workers: 1))
        #expect(same.reply == .success("{\"ok\":true,\"op\":\"scale\"}\n"))
        #expect(same.actions.isEmpty)
    }

    @Test func reloadIsAskedOfTheMaster() throws {
        var master = started()
        let outcome = try master.control(.reload)
        #expect(outcome.line == "{\"ok\":true,\"op\":\"reload\"}\n")
        #expect(outcome.actions == [.reloadConfiguration])
    }

    @Test func aSecondStopRequestEscalatesUnlessGraceful() throws {
        var master = started()
        let first = try master.control(.stop(mode: .graceful))
        #expect(first.line == "{\"ok\":true,\"op\":\"stop\"}\n")
        master.perform(first.actions)
        #expect(master.signals.map(\.signal) == [.term, .term, .term])
        let again = try master.control(.stop(mode: .graceful))
        #expect(again.reply == .success("{\"ok\":true,\"op\":\"stop\"}\n"))
        #expect(again.actions.isEmpty)
        let immediate = try master.control(.stop(mode: .immediate))
        master.perform(immediate.actions)
        #expect(master.signals.suffix(3).map(\.signal) == [.kill, .kill, .kill])
    }

    @Test(arguments: [ControlRequest.status, .subscribe])
    func statusAndSubscribeAreTheMastersToAnswer(request: ControlRequest) {
        var master = started()
        let outcome = master.table.control(request, now: master.now)
        #expect(outcome == nil)
    }
}
