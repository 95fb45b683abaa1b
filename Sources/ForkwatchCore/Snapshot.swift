/// One process's resource use, sampled by the master from /proc (htop's method).
public struct ProcessSample: Hashable, Sendable {
    public var pid: Int32
    /// Percent of one CPU over the last sampling interval.
    public var cpuPercent: Double
    public var rssBytes: Int
    /// /proc/PID/stat's state letter: R running, S sleeping, D disk wait, Z zombie, T stopped.
    public var state: String
    public var threads: Int

    public init(pid: Int32, cpuPercent: Double, rssBytes: Int, state: String, threads: Int) {
        self.pid = pid
        self.cpuPercent = cpuPercent
        self.rssBytes = rssBytes
        self.state = state
        self.threads = threads
    }
}

/// The master's whole state at one moment: what a subscriber gets before the event stream.
public struct Snapshot: Hashable, Sendable {
    public struct ServiceInfo: Hashable, Sendable {
        public var name: String
        public var program: String
        public var workers: Int
        public var state: ServiceState
        public var restarts: Int
        public var generation: Int
        /// The throttle's window: recorded fork times (CLOCK_MONOTONIC seconds), oldest first.
        public var forkTimes: [Double]
        public var pendingForkAt: Double?
        public var throttleInterval: Double
        public var quickDeaths: Int

        public init(
            name: String, program: String, workers: Int, state: ServiceState, restarts: Int, generation: Int,
            forkTimes: [Double], pendingForkAt: Double?, throttleInterval: Double, quickDeaths: Int
        ) {
            self.name = name
            self.program = program
            self.workers = workers
            self.state = state
            self.restarts = restarts
            self.generation = generation
            self.forkTimes = forkTimes
            self.pendingForkAt = pendingForkAt
            self.throttleInterval = throttleInterval
            self.quickDeaths = quickDeaths
        }
    }

    public struct WorkerInfo: Hashable, Sendable {
        public var pid: Int32
        public var service: String
        public var generation: Int
        public var forkedAt: Double
        public var readyAt: Double?
        public var restarts: Int
        public var retiring: Bool

        public init(
            pid: Int32, service: String, generation: Int, forkedAt: Double, readyAt: Double?, restarts: Int,
            retiring: Bool
        ) {
            self.pid = pid
            self.service = service
            self.generation = generation
            self.forkedAt = forkedAt
            self.readyAt = readyAt
            self.restarts = restarts
            self.retiring = retiring
        }
    }

    /// A periodic task's totals, per service (every worker of a service runs the same tasks).
    public struct TaskInfo: Hashable, Sendable {
        public var service: String
        public var task: String
        public var timings: TaskTimings
        public init(service: String, task: String, timings: TaskTimings) {
            self.service = service
            self.task = task
            self.timings = timings
        }
    }

    public var masterPid: Int32
    /// When the master started (CLOCK_MONOTONIC seconds).
    public var startedAt: Double
    /// "running", "stopping" or "exited".
    public var phase: String
    public var configuration: String
    public var services: [ServiceInfo]
    public var workers: [WorkerInfo]
    public var tasks: [TaskInfo]

    public init(
        masterPid: Int32, startedAt: Double, phase: String, configuration: String, services: [ServiceInfo],
        workers: [WorkerInfo], tasks: [TaskInfo] = []
    ) {
        self.tasks = tasks
        self.masterPid = masterPid
        self.startedAt = startedAt
        self.phase = phase
        self.configuration = configuration
        self.services = services
        self.workers = workers
    }
}

extension WorkerTable {
    /// The table as a snapshot, for a subscriber.
    public func snapshot(masterPid: Int32, startedAt: Double, configuration summary: String) -> Snapshot {
        let phaseName: String =
            switch phase {
            case .running: "running"
            case .stopping: "stopping"
            case .exited: "exited"
            }
        return Snapshot(
            masterPid: masterPid, startedAt: startedAt, phase: phaseName, configuration: summary,
            services: services.map {
                Snapshot.ServiceInfo(
                    name: $0.spec.name, program: $0.spec.program.summary, workers: $0.spec.workers,
                    state: $0.state, restarts: $0.restarts, generation: $0.generation,
                    forkTimes: $0.throttle.forkTimes, pendingForkAt: $0.pendingForkAt,
                    throttleInterval: $0.throttle.interval, quickDeaths: $0.quickDeaths)
            },
            workers: workers.values.sorted { $0.pid < $1.pid }.map {
                Snapshot.WorkerInfo(
                    pid: $0.pid, service: $0.service, generation: $0.generation, forkedAt: $0.forkedAt,
                    readyAt: $0.readyAt, restarts: $0.restarts, retiring: $0.retiring)
            },
            tasks: taskTimings.keys.sorted { ($0.service, $0.task) < ($1.service, $1.task) }.map {
                Snapshot.TaskInfo(service: $0.service, task: $0.task, timings: taskTimings[$0]!)
            })
    }
}

/// Parses /proc/PID/stat and /proc/PID/statm text (the master reads the files, this decides).
public enum ProcStat {
    public struct Reading: Hashable, Sendable {
        public var state: String
        /// utime + stime, in clock ticks.
        public var cpuTicks: Int
        public var threads: Int
        public var rssPages: Int

        public init(state: String, cpuTicks: Int, threads: Int, rssPages: Int) {
            self.state = state
            self.cpuTicks = cpuTicks
            self.threads = threads
            self.rssPages = rssPages
        }
    }

    /// `stat`: "pid (comm) S ppid …" — comm may hold spaces and parentheses, so fields are
    /// counted after the last ')'. `statm`: "size resident shared …" in pages.
    public static func parse(stat: String, statm: String) -> Reading? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After ')': [0]=state [1]=ppid … [11]=utime [12]=stime … [17]=num_threads
        guard fields.count > 17, let utime = Int(fields[11]), let stime = Int(fields[12]),
            let threads = Int(fields[17])
        else { return nil }
        let statmFields = statm.split(separator: " ")
        guard statmFields.count > 1, let resident = Int(statmFields[1]) else { return nil }
        return Reading(state: String(fields[0]), cpuTicks: utime + stime, threads: threads, rssPages: resident)
    }

    /// The same parse straight from the files' bytes: the master samples every worker once a
    /// second, and with a thousand workers Strings and splits would cost more than the reads.
    public static func parse(stat: UnsafeBufferPointer<UInt8>, statm: UnsafeBufferPointer<UInt8>) -> Reading? {
        guard let close = stat.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        var field = -1  // index of the field after ')': 0 = state
        var value = 0
        var inField = false
        var state: UInt8 = 0
        var utime = 0
        var stime = 0
        var threads = 0
        var index = close + 1
        func finish(_ field: Int, _ value: Int) {
            switch field {
            case 11: utime = value
            case 12: stime = value
            case 17: threads = value
            default: break
            }
        }
        while index < stat.count, field < 18 {
            let byte = stat[index]
            if byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\n") {
                if inField { finish(field, value) }
                inField = false
            } else {
                if !inField {
                    field += 1
                    value = 0
                    inField = true
                    if field == 0 { state = byte }
                }
                if byte >= 48 && byte <= 57 { value = value * 10 + Int(byte - 48) }
            }
            index += 1
        }
        if inField { finish(field, value) }
        guard field >= 17, state != 0 else { return nil }
        // statm: "size resident shared …": the second number.
        var number = 0
        var seen = 0
        var resident = -1
        for byte in statm {
            if byte >= 48 && byte <= 57 {
                number = number * 10 + Int(byte - 48)
            } else {
                seen += 1
                if seen == 2 {
                    resident = number
                    break
                }
                number = 0
            }
        }
        guard resident >= 0 else { return nil }
        return Reading(
            state: String(UnicodeScalar(state)), cpuTicks: utime + stime, threads: threads, rssPages: resident)
    }

    /// CPU percent of one core between two readings `seconds` apart.
    public static func cpuPercent(from earlier: Int, to later: Int, seconds: Double, ticksPerSecond: Int) -> Double {
        guard seconds > 0, ticksPerSecond > 0, later >= earlier else { return 0 }
        return Double(later - earlier) / Double(ticksPerSecond) / seconds * 100
    }
}
