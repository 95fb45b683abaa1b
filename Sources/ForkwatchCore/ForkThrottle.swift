/// oslo.service's respawn throttle (`ProcessLauncher._start_child`), per service, with the
/// one change forkwatch makes on purpose: the 1 s wait is returned as a deadline for the caller
/// to schedule, never slept, so the master keeps reaping and answering signals meanwhile.
///
/// oslo's rule, in its own order: when at least `workers + 1` fork times are recorded and the
/// oldest is younger than `workers` seconds, wait 1 s (once); then drop the oldest; then record
/// this fork's time and fork. `interval` generalises oslo's hard-coded 1 s (and the "seconds
/// per worker" of the window); 0 turns the throttle off.
public struct ForkThrottle: Sendable, Hashable {
    public var interval: Double
    public private(set) var forkTimes: [Double] = []

    public init(interval: Double = 1.0) {
        self.interval = interval
    }

    public enum Decision: Sendable, Hashable {
        /// Fork now; the fork time has been recorded.
        case forkNow
        /// Fork at `until` (now + interval) and call `record(forkAt:)` then. `forks` forks span
        /// `span` seconds, less than the `window` of `workers × interval` seconds.
        case delay(until: Double, forks: Int, span: Double, window: Double)
    }

    /// Asks to fork `now` for a service that wants `workers` workers.
    public mutating func admit(now: Double, workers: Int) -> Decision {
        var decision = Decision.forkNow
        // After a scale-down the window is shorter: keep only the last workers + 1 entries.
        if forkTimes.count > workers + 1 { forkTimes.removeFirst(forkTimes.count - workers - 1) }
        if forkTimes.count > workers {
            let oldest = forkTimes.removeFirst()
            let span = now - oldest
            let window = Double(workers) * interval
            if span < window && interval > 0 {
                decision = .delay(until: now + interval, forks: workers + 1, span: span, window: window)
            }
        }
        if decision == .forkNow { forkTimes.append(now) }
        return decision
    }

    /// Records the fork that a `.delay` decision scheduled, when it happens.
    public mutating func record(forkAt time: Double) {
        forkTimes.append(time)
    }

    /// Forks recorded in the last `seconds` before `now` (for the dashboard's rate).
    public func forks(within seconds: Double, of now: Double) -> Int {
        forkTimes.filter { now - $0 <= seconds }.count
    }
}
