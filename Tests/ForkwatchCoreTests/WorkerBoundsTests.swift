import ForkwatchCore
import Testing

/// One home for each service's spec, each worker's slot, and the one bound on all workers
/// (`max_workers`) wherever a count enters.
@Suite struct WorkerBoundsTests {
    @Test func aScaleChangesTheOneSpecEveryReaderSees() {
        var master = ScriptedMaster([("api", 1)])
        master.start()
        master.perform(master.table.scale(service: "api", to: 3, reason: "test", now: master.now))
        #expect(master.table.service(named: "api")?.spec.workers == 3)
        // What a worker forked now is handed: the live count, not the one the master started with.
        #expect(master.table.configuration.services.map(\.workers) == [3])
    }

    @Test func slotsAreTheLowestFreeAndAReplacementTakesItsPredecessors() {
        var master = ScriptedMaster([("api", 3)])
        master.start()
        #expect(master.forks.map(\.pid).map { master.table.workers[$0]!.slot } == [0, 1, 2])
        master.exit(101, status: 1 << 8)  // the worker in slot 1
        master.now += 2
        master.perform(master.table.tick(now: master.now))
        let replacement = master.forks.last!.pid
        #expect(replacement != 101 && master.table.workers[replacement]?.slot == 1)
    }

    @Test func aScaleOverMaxWorkersIsRefusedAndForksNothing() throws {
        var master = ScriptedMaster([("api", 2), ("db", 1)]) { $0.maxWorkers = 4 }
        master.start()
        let forks = master.forks.count
        master.perform(master.table.scale(service: "api", to: 4, reason: "TTIN", now: master.now))
        #expect(master.forks.count == forks)
        #expect(master.table.service(named: "api")?.spec.workers == 2)
        #expect(
            master.events.contains {
                if case .notice(let message) = $0 { return message.contains("over max_workers 4") }
                return false
            })
        // Within the bound: done.
        master.perform(master.table.scale(service: "api", to: 3, reason: "TTIN", now: master.now))
        #expect(master.table.service(named: "api")?.spec.workers == 3)
        // Down is always allowed.
        master.perform(master.table.scale(service: "api", to: 1, reason: "TTOU", now: master.now))
        #expect(master.table.service(named: "api")?.spec.workers == 1)
        // The control socket's scale is refused with the reason, before anything changes.
        let outcome = try master.control(.scale(service: "db", workers: 4))
        #expect(outcome.actions.isEmpty)
        guard case .failure(let error) = outcome.reply else {
            Issue.record("accepted: \(outcome)")
            return
        }
        #expect(error.message.contains("5 workers in all is over max_workers 4"), "\(error)")
    }

    @Test func aConfigurationOverMaxWorkersIsInvalid() {
        var configuration = LauncherConfiguration()
        configuration.maxWorkers = 4
        configuration.services = [
            ServiceSpec(name: "a", program: .builtin("idle"), workers: 3),
            ServiceSpec(name: "b", program: .builtin("idle"), workers: 2),
        ]
        #expect(configuration.validate()?.hasPrefix("5 workers in all is over max_workers 4") == true)
        configuration.maxWorkers = 5
        #expect(configuration.validate() == nil)
    }
}
