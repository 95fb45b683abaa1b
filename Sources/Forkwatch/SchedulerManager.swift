import ForkwatchCore

/// The demo's nova-scheduler-shaped manager: periodic tasks of different spacing — a quick one,
/// a slow one, one that fails now and then.
final class SchedulerManager: Manager, @unchecked Sendable {
    struct TransientFailure: Error, CustomStringConvertible {
        let description = "placement answered 503 (a simulated transient failure)"
    }

    override var periodicTasks: [PeriodicTask] {
        [
            // nova-scheduler's _discover_hosts_in_cells: cheap and frequent.
            PeriodicTask("_discover_hosts_in_cells", spacing: 2, runImmediately: true) {
                Posix.sleep(seconds: Double.random(in: 0.001...0.004))
            },
            // A slow one: a full resync, a few hundred milliseconds.
            PeriodicTask("_sync_host_capacity", spacing: 5) {
                Posix.sleep(seconds: Double.random(in: 0.15...0.35))
            },
            // One that fails now and then; it never stops the others.
            PeriodicTask("_expire_reservations", spacing: 3) {
                Posix.sleep(seconds: Double.random(in: 0.002...0.01))
                if Double.random(in: 0..<1) < 0.25 { throw TransientFailure() }
            },
        ]
    }
}
