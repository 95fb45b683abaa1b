import ForkwatchCore
import Testing

/// What a reload changes, decided before anything is touched.
@Suite struct ReloadPlanTests {
    private func configuration(_ services: [(String, Int)]) -> LauncherConfiguration {
        var configuration = LauncherConfiguration()
        configuration.services = services.map { ServiceSpec(name: $0.0, program: .builtin("idle"), workers: $0.1) }
        return configuration
    }

    private func running(_ name: String, workers: Int, configured: Int) -> ReloadPlan.RunningService {
        ReloadPlan.RunningService(
            spec: ServiceSpec(name: name, program: .builtin("idle"), workers: workers), configuredWorkers: configured)
    }

    @Test(arguments: [
        // (running count, count the file said last time, count the file says now, new configured, scale to, change)
        (2, 2, 2, nil as Int?, nil as Int?, nil as String?),
        (3, 2, 2, nil, nil, nil),  // a TTIN made it 3: an unchanged file keeps it
        (3, 2, 5, 5, 5, "api: workers 2 → 5"),  // the file changed: the file wins
        (5, 2, 5, 5, nil, "api: workers 2 → 5"),  // already running 5: nothing to scale
        (2, 2, 1, 1, 1, "api: workers 2 → 1"),
    ])
    func theFileRescalesOnlyWhenItsCountChanged(
        runningCount: Int, configured: Int, fileCount: Int,
        newConfigured: Int?, scaleTo: Int?, change: String?
    ) throws {
        let current = configuration([("api", configured)])
        let plan = ReloadPlan(
            running: [running("api", workers: runningCount, configured: configured)],
            current: current, new: configuration([("api", fileCount)]))
        let update = try #require(plan.updates.first)
        #expect(plan.updates.count == 1)
        #expect(update.service == "api")
        #expect(update.configuredWorkers == newConfigured)
        #expect(update.scaleTo == scaleTo)
        #expect(plan.changes == (change.map { [$0] } ?? []))
        #expect(plan.added.isEmpty && plan.removed.isEmpty)
    }

    @Test func newServicesAreAddedAndMissingOnesKept() {
        let current = configuration([("api", 2), ("db", 1)])
        let plan = ReloadPlan(
            running: [running("api", workers: 2, configured: 2), running("db", workers: 1, configured: 1)],
            current: current, new: configuration([("worker", 3), ("api", 2)]))
        #expect(plan.added.map(\.name) == ["worker"])
        #expect(plan.added.first?.workers == 3)
        #expect(plan.updates.map(\.service) == ["api"])
        #expect(plan.removed == ["db"])
        #expect(
            plan.summary
                == "worker: new service; db: no longer in the configuration, its workers stopped")
    }

    @Test func optionChangesComeFirstThenServicesInTheFilesOrder() {
        var new = configuration([("api", 2)])
        new.services[0].program = .command(["/bin/sleep", "100"])
        new.restartMethod = .mutate
        new.gracefulShutdownTimeout = 5
        new.logFile = "/tmp/f.log"
        let plan = ReloadPlan(
            running: [running("api", workers: 2, configured: 2)], current: configuration([("api", 2)]), new: new)
        #expect(
            plan.changes == [
                "graceful_shutdown_timeout 60.0 → 5.0",
                "restart_method rolling → mutate",
                "log_file - → /tmp/f.log",
                "api: program changed",
            ])
        #expect(plan.updates.first?.program == .command(["/bin/sleep", "100"]))
    }

    @Test func withoutANewFileNothingChanges() {
        let current = configuration([("api", 2)])
        let plan = ReloadPlan(running: [running("api", workers: 3, configured: 2)], current: current, new: nil)
        #expect(plan.changes.isEmpty && plan.updates.isEmpty && plan.added.isEmpty && plan.removed.isEmpty)
        #expect(plan.summary == "none")
    }

    @Test func theSameFileAgainChangesNothing() {
        let current = configuration([("api", 2), ("db", 1)])
        let plan = ReloadPlan(
            running: [running("api", workers: 2, configured: 2), running("db", workers: 1, configured: 1)],
            current: current, new: current)
        #expect(plan.summary == "none")
        #expect(plan.updates.allSatisfy { $0.configuredWorkers == nil && $0.scaleTo == nil })
    }
}
