/// A periodic task as a manager declares it (oslo's `@periodic_task` arguments).
public struct PeriodicTaskSpec: Hashable, Sendable {
    public var name: String
    /// Seconds between runs: 0 means oslo's DEFAULT_INTERVAL (60 s); negative means never.
    public var spacing: Double
    /// Run on the first pass instead of one spacing after start.
    public var runImmediately: Bool
    public var enabled: Bool
    /// Skipped when `run_external_periodic_tasks` is off.
    public var externalProcessOk: Bool

    public init(
        name: String, spacing: Double = 0, runImmediately: Bool = false, enabled: Bool = true,
        externalProcessOk: Bool = false
    ) {
        self.name = name
        self.spacing = spacing
        self.runImmediately = runImmediately
        self.enabled = enabled
        self.externalProcessOk = externalProcessOk
    }
}

/// oslo.service's `run_periodic_tasks`, as a pure value: the clock and the random source are
/// parameters, so every rule can be replayed in a test.
///
/// - spacing 0 → 60 s; negative or disabled → never registered;
/// - each pass returns `idleFor`: the least of 60 s, every task's spacing and the time until the
///   next task is due, capped by `periodic_interval_max`;
/// - a due task's last run moves to the nearest boundary *before* it runs (so a failure does not
///   disturb the schedule): `now - ((now - lastRun) % spacing) + jitter`, jitter = whole seconds
///   of 0–5 % of the spacing (none under 20 s); missed periods collapse into one run.
public struct PeriodicSchedule: Sendable {
    public static let defaultInterval = 60.0

    public struct Entry: Hashable, Sendable {
        public let spec: PeriodicTaskSpec
        /// The effective spacing (0 became 60).
        public let spacing: Double
        /// nil until the first run of a `runImmediately` task.
        public var lastRun: Double?
    }

    public private(set) var entries: [Entry]
    /// Tasks not registered, with oslo's reason (negative interval, disabled).
    public let skipped: [(name: String, reason: String)]
    public var runExternalPeriodicTasks: Bool
    public var intervalMax: Double?

    public init(
        tasks: [PeriodicTaskSpec], now: Double, runExternalPeriodicTasks: Bool = true, intervalMax: Double? = nil
    ) {
        var entries: [Entry] = []
        var skipped: [(String, String)] = []
        for task in tasks {
            if task.spacing < 0 {
                skipped.append((task.name, "its interval is negative"))
            } else if !task.enabled {
                skipped.append((task.name, "it is disabled"))
            } else {
                entries.append(
                    Entry(
                        spec: task, spacing: task.spacing == 0 ? Self.defaultInterval : task.spacing,
                        lastRun: task.runImmediately ? nil : now))
            }
        }
        self.entries = entries
        self.skipped = skipped
        self.runExternalPeriodicTasks = runExternalPeriodicTasks
        self.intervalMax = intervalMax
    }

    /// One pass at `now`: the names of the tasks to run now, in registration order, and how long
    /// to idle before the next pass. `random()` returns a value in [0, 1) for the jitter.
    public mutating func runDue(now: Double, random: () -> Double) -> (due: [String], idleFor: Double) {
        var idleFor = Self.defaultInterval
        var due: [String] = []
        for index in entries.indices {
            let entry = entries[index]
            if entry.spec.externalProcessOk && !runExternalPeriodicTasks { continue }
            idleFor = min(idleFor, entry.spacing)
            if let lastRun = entry.lastRun {
                let delta = lastRun + entry.spacing - now
                if delta > 0 {
                    idleFor = min(idleFor, delta)
                    continue
                }
            }
            entries[index].lastRun = Self.nearestBoundary(
                lastRun: entry.lastRun, spacing: entry.spacing, now: now, random: random())
            due.append(entry.spec.name)
        }
        if let intervalMax { idleFor = min(idleFor, intervalMax) }
        return (due, idleFor)
    }

    /// oslo's `_nearest_boundary`.
    public static func nearestBoundary(lastRun: Double?, spacing: Double, now: Double, random: Double) -> Double {
        guard let lastRun else { return now }
        let jitter = (spacing * random / 20).rounded(.towardZero)
        let sinceLast = now - lastRun
        return now - sinceLast.truncatingRemainder(dividingBy: spacing) + jitter
    }

    /// When `name` is next due (nil: on the next pass).
    public func nextDue(_ name: String) -> Double? {
        entries.first { $0.spec.name == name }.flatMap { entry in entry.lastRun.map { $0 + entry.spacing } }
    }

    /// nova's fuzzy delay: a whole number of seconds in 0…`periodic_fuzzy_delay` before the first
    /// pass, so that many workers restarting together do not run their tasks in step.
    public static func initialDelay(fuzzyDelay: Int, random: () -> Double) -> Double {
        guard fuzzyDelay > 0 else { return 0 }
        return Double(min(fuzzyDelay, Int(random() * Double(fuzzyDelay + 1))))
    }
}

/// Per task: what the master keeps from the timings its workers report.
public struct TaskTimings: Hashable, Sendable {
    public var runs = 0
    public var failures = 0
    public var last: Double = 0
    public var max: Double = 0
    public var total: Double = 0
    /// The latest durations (a bounded window for the p95).
    public var recent: [Double] = []
    public var lastError: String?
    /// CLOCK_MONOTONIC time the reporting worker expects to run it next.
    public var nextDue: Double?
    public var spacing: Double = 0

    public init() {}

    public var mean: Double { runs == 0 ? 0 : total / Double(runs) }

    public var p95: Double {
        guard !recent.isEmpty else { return 0 }
        let sorted = recent.sorted()
        return sorted[Swift.min(sorted.count - 1, Int((Double(sorted.count) * 0.95).rounded(.up)) - 1)]
    }

    public mutating func record(duration: Double, ok: Bool, error: String?, nextDue: Double?, spacing: Double) {
        runs += 1
        if !ok {
            failures += 1
            lastError = error
        }
        last = duration
        max = Swift.max(max, duration)
        total += duration
        recent.append(duration)
        if recent.count > 200 { recent.removeFirst(recent.count - 200) }
        self.nextDue = nextDue
        self.spacing = spacing
    }
}

/// nova's `servicegroup` DB driver rule for whether a service is up.
public enum ServiceLiveness {
    /// `service_down_time` as nova uses it: raised to 2.5 × report_interval when not above it.
    public static func effectiveDownTime(serviceDownTime: Double, reportInterval: Double) -> Double {
        serviceDownTime <= reportInterval ? (reportInterval * 2.5).rounded(.towardZero) : serviceDownTime
    }

    /// forced_down wins; otherwise up when |now − (last_seen_up ?? created_at)| ≤ service_down_time
    /// (clock skew either way counts).
    public static func isUp(
        lastSeenUp: Double?, createdAt: Double, forcedDown: Bool, now: Double,
        serviceDownTime: Double = 60, reportInterval: Double = 10
    ) -> Bool {
        if forcedDown { return false }
        let heartbeat = lastSeenUp ?? createdAt
        return abs(now - heartbeat)
            <= effectiveDownTime(serviceDownTime: serviceDownTime, reportInterval: reportInterval)
    }
}
