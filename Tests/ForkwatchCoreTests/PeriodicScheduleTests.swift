import ForkwatchCore
import Testing

/// oslo's run_periodic_tasks rules, replayed on a fake clock and a scripted random source.
@Suite struct PeriodicScheduleTests {
    @Test(arguments: [(0.0, 60.0), (10.0, 10.0), (0.5, 0.5)])
    func spacingZeroMeansSixtySeconds(spacing: Double, effective: Double) {
        let schedule = PeriodicSchedule(tasks: [PeriodicTaskSpec(name: "t", spacing: spacing)], now: 0)
        #expect(schedule.entries.first?.spacing == effective)
    }

    @Test func negativeOrDisabledTasksAreNeverRegistered() {
        let schedule = PeriodicSchedule(
            tasks: [
                PeriodicTaskSpec(name: "negative", spacing: -1),
                PeriodicTaskSpec(name: "off", spacing: 5, enabled: false),
                PeriodicTaskSpec(name: "on", spacing: 5),
            ], now: 0)
        #expect(schedule.entries.map(\.spec.name) == ["on"])
        #expect(schedule.skipped.map(\.name) == ["negative", "off"])
        #expect(schedule.skipped[0].reason.contains("negative"))
    }

    @Test func aTaskRunsOneSpacingAfterStartUnlessImmediate() {
        var schedule = PeriodicSchedule(
            tasks: [
                PeriodicTaskSpec(name: "later", spacing: 10),
                PeriodicTaskSpec(name: "now", spacing: 10, runImmediately: true),
            ], now: 100)
        let first = schedule.runDue(now: 100) { 0 }
        #expect(first.due == ["now"])
        #expect(first.idleFor == 10)
        let second = schedule.runDue(now: 110) { 0 }
        #expect(second.due == ["later", "now"])
    }

    /// (last run, spacing, now, random, expected new last run)
    @Test(arguments: [
        (0.0, 10.0, 10.0, 0.0, 10.0),  // on the grid
        (0.0, 10.0, 13.0, 0.0, 10.0),  // late by 3 s: the boundary stays at 10, no drift
        (0.0, 10.0, 95.0, 0.0, 90.0),  // 8 missed periods collapse into this one run
        (0.0, 100.0, 150.0, 0.999, 104.0),  // jitter: int(100 × 0.999 / 20) = 4 s (under 5 %)
        (0.0, 100.0, 150.0, 0.0, 100.0),
        (0.0, 19.0, 20.0, 0.999, 19.0),  // under 20 s of spacing there is no jitter
        (0.0, 40.0, 45.0, 0.5, 41.0),  // int(40 × 0.5 / 20) = 1
    ])
    func nearestBoundaryFollowsOslo(lastRun: Double, spacing: Double, now: Double, random: Double, expected: Double) {
        #expect(
            PeriodicSchedule.nearestBoundary(lastRun: lastRun, spacing: spacing, now: now, random: random) == expected)
    }

    @Test(arguments: stride(from: 0.0, to: 1.0, by: 0.05).map { $0 })
    func jitterIsWithinFivePercent(random: Double) {
        let boundary = PeriodicSchedule.nearestBoundary(lastRun: 0, spacing: 600, now: 600, random: random)
        #expect(boundary >= 600 && boundary <= 630)
        #expect(boundary == boundary.rounded())
    }

    @Test func missedPeriodsCollapseIntoOneRun() {
        var schedule = PeriodicSchedule(tasks: [PeriodicTaskSpec(name: "t", spacing: 10)], now: 0)
        var runs = 0
        // The worker was stuck for 100 s: one run, then the grid continues from the boundary.
        runs += schedule.runDue(now: 100) { 0 }.due.count
        runs += schedule.runDue(now: 101) { 0 }.due.count
        #expect(runs == 1)
        #expect(schedule.nextDue("t") == 110)
    }

    @Test func idleForIsTheLeastOfSixtyEverySpacingAndTheNextDue() {
        var schedule = PeriodicSchedule(
            tasks: [
                PeriodicTaskSpec(name: "a", spacing: 30),
                PeriodicTaskSpec(name: "b", spacing: 120),
            ], now: 0)
        #expect(schedule.runDue(now: 25) { 0 }.idleFor == 5)  // a is due in 5 s
        #expect(schedule.runDue(now: 30) { 0 }.idleFor == 30)  // a ran: its spacing
        var long = PeriodicSchedule(tasks: [PeriodicTaskSpec(name: "b", spacing: 600)], now: 0)
        #expect(long.runDue(now: 1) { 0 }.idleFor == 60)  // never more than 60 s
    }

    @Test func periodicIntervalMaxCapsTheIdleTime() {
        var schedule = PeriodicSchedule(tasks: [PeriodicTaskSpec(name: "a", spacing: 30)], now: 0, intervalMax: 7)
        #expect(schedule.runDue(now: 1) { 0 }.idleFor == 7)
    }

    @Test func externalTasksAreSkippedWhenExternalRunsAreOff() {
        var schedule = PeriodicSchedule(
            tasks: [
                PeriodicTaskSpec(name: "external", spacing: 1, runImmediately: true, externalProcessOk: true),
                PeriodicTaskSpec(name: "local", spacing: 30, runImmediately: true),
            ], now: 0, runExternalPeriodicTasks: false)
        let pass = schedule.runDue(now: 0) { 0 }
        #expect(pass.due == ["local"])
        #expect(pass.idleFor == 30)  // the skipped task's 1 s does not count
    }

    @Test(arguments: [(0, 0.99, 0.0), (60, 0.0, 0.0), (60, 0.5, 30.0), (60, 0.9999, 60.0), (5, 0.5, 3.0)])
    func theFuzzyDelayIsAWholeNumberOfSecondsUpToTheLimit(fuzzy: Int, random: Double, expected: Double) {
        #expect(PeriodicSchedule.initialDelay(fuzzyDelay: fuzzy) { random } == expected)
    }
}

@Suite struct TaskTimingsTests {
    @Test func keepsRunsFailuresMeanP95AndMax() {
        var timings = TaskTimings()
        for i in 1...100 {
            timings.record(
                duration: Double(i) / 1000, ok: i % 10 != 0, error: i % 10 == 0 ? "boom \(i)" : nil, nextDue: Double(i),
                spacing: 2)
        }
        #expect(timings.runs == 100)
        #expect(timings.failures == 10)
        #expect(timings.max == 0.1)
        #expect(abs(timings.mean - 0.0505) < 1e-9)
        #expect(timings.p95 == 0.095)
        #expect(timings.lastError == "boom 100")
        #expect(timings.nextDue == 100)
    }
}

@Suite struct ServiceLivenessTests {
    /// (last_seen_up, created_at, forced_down, now, service_down_time, report_interval, up)
    @Test(arguments: [
        (100.0 as Double?, 0.0, false, 150.0, 60.0, 10.0, true),
        (100.0 as Double?, 0.0, false, 161.0, 60.0, 10.0, false),
        (nil as Double?, 100.0, false, 150.0, 60.0, 10.0, true),  // never reported: created_at
        (100.0 as Double?, 0.0, true, 100.0, 60.0, 10.0, false),  // forced_down wins
        (200.0 as Double?, 0.0, false, 150.0, 60.0, 10.0, true),  // clock skew: |elapsed|
        (100.0 as Double?, 0.0, false, 170.0, 60.0, 30.0, false),  // 60 <= 30? no: stays 60, 70 s is down
        (100.0 as Double?, 0.0, false, 170.0, 20.0, 30.0, true),  // 20 <= 30: raised to 75
        (100.0 as Double?, 0.0, false, 176.0, 20.0, 30.0, false),
    ])
    func isUpFollowsNova(
        lastSeenUp: Double?, createdAt: Double, forcedDown: Bool, now: Double,
        serviceDownTime: Double, reportInterval: Double, up: Bool
    ) {
        #expect(
            ServiceLiveness.isUp(
                lastSeenUp: lastSeenUp, createdAt: createdAt, forcedDown: forcedDown, now: now,
                serviceDownTime: serviceDownTime, reportInterval: reportInterval) == up)
    }
}
