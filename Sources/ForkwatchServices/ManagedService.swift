import Forkwatch
import ForkwatchCore
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// nova's `Service`: a manager, a topic, periodic tasks and a heartbeat into the `services`
/// table. Built before fork (cheap: no database, no thread); `start()` runs in the worker and
/// opens the database there.
public final class ManagedService: Service, @unchecked Sendable {
    public let host: String
    public let binary: String
    public let topic: String
    public let manager: Manager
    public let reportInterval: Double
    public let periodicEnable: Bool
    public let periodicFuzzyDelay: Int
    public let periodicIntervalMax: Double?
    public let database: String
    public let runExternalPeriodicTasks: Bool
    /// Where heartbeats and task timings go: the master's status pipe (nowhere without one).
    public let status: StatusChannel

    /// Starts the RPC server of a service's manager in the worker (ForkwatchRPC's
    /// `RPCServices.serverStarter`); nil = the service runs without RPC.
    public typealias RPCServerStarter = @Sendable (ManagedService) throws -> RPCServing?
    private let rpcServerStarter: RPCServerStarter?

    private var rpcServer: RPCServing?
    private let stopLatch = StopLatch()
    private var finished: [StopLatch] = []
    private var log: Logger

    public struct CreateError: Error, CustomStringConvertible {
        public let description: String
    }

    /// nova's `Service.create` with its defaults: host = this machine's name, binary = this
    /// program's name, topic = binary without its `nova-`/`forkwatch-` prefix, report_interval
    /// 10 s, periodic_enable true, periodic_fuzzy_delay 60 s.
    public static func create(
        host: String? = nil, binary: String? = nil, topic: String? = nil, manager: Manager,
        reportInterval: Double? = nil, periodicEnable: Bool? = nil, periodicFuzzyDelay: Int? = nil,
        periodicIntervalMax: Double? = nil, database: String? = nil,
        runExternalPeriodicTasks: Bool = true, status: StatusChannel = .none,
        rpcServer: RPCServerStarter? = nil
    ) throws -> ManagedService {
        let binary = binary ?? String(CommandLine.arguments[0].split(separator: "/").last ?? "forkwatch")
        let topic = topic ?? Self.topic(of: binary)
        let reportInterval = reportInterval ?? 10
        if let problem = Settings.reportInterval.check(reportInterval) { throw CreateError(description: problem) }
        if let database, let problem = Settings.database.check(database) { throw CreateError(description: problem) }
        // A URL is resolved once here: the RPC transport opens the same file by this path.
        let databasePath: String
        do { databasePath = try ServicesStore.filePath(of: database ?? ServicesStore.defaultPath) } catch {
            throw CreateError(description: error.description)
        }
        let fuzzy = periodicFuzzyDelay ?? 60
        if let problem = Settings.periodicFuzzyDelay.check(fuzzy) { throw CreateError(description: problem) }
        if let max = periodicIntervalMax, let problem = Settings.periodicIntervalMax.check(max) {
            throw CreateError(description: problem)
        }
        if let host, let problem = Settings.host.check(host) { throw CreateError(description: problem) }
        return ManagedService(
            host: host ?? Self.hostname(), binary: binary, topic: topic, manager: manager,
            reportInterval: reportInterval, periodicEnable: periodicEnable ?? true, periodicFuzzyDelay: fuzzy,
            periodicIntervalMax: periodicIntervalMax, database: databasePath,
            runExternalPeriodicTasks: runExternalPeriodicTasks, status: status, rpcServerStarter: rpcServer)
    }

    init(
        host: String, binary: String, topic: String, manager: Manager, reportInterval: Double, periodicEnable: Bool,
        periodicFuzzyDelay: Int, periodicIntervalMax: Double?, database: String, runExternalPeriodicTasks: Bool,
        status: StatusChannel, rpcServerStarter: RPCServerStarter?
    ) {
        self.status = status
        self.rpcServerStarter = rpcServerStarter
        self.host = host
        self.binary = binary
        self.topic = topic
        self.manager = manager
        self.reportInterval = reportInterval
        self.periodicEnable = periodicEnable
        self.periodicFuzzyDelay = periodicFuzzyDelay
        self.periodicIntervalMax = periodicIntervalMax
        self.database = database
        self.runExternalPeriodicTasks = runExternalPeriodicTasks
        log = Logger(label: topic)
        manager.host = host
    }

    /// In a worker: a service built from the launcher's options (nova's) that its context
    /// carries. Values were validated before the fork; should creation still fail, the worker
    /// boots into an error.
    public static func create(
        in context: WorkerContext, binary: String, manager: Manager,
        rpcServer: RPCServerStarter? = nil
    ) -> any Service {
        let configuration = context.configuration
        do {
            return try create(
                host: configuration.host, binary: binary, manager: manager,
                reportInterval: configuration.reportInterval, periodicEnable: configuration.periodicEnable,
                periodicFuzzyDelay: configuration.periodicFuzzyDelay,
                periodicIntervalMax: configuration.periodicIntervalMax, database: configuration.database,
                runExternalPeriodicTasks: configuration.runExternalPeriodicTasks, status: context.status,
                rpcServer: rpcServer)
        } catch {
            return UnbootableService(reason: "\(error)")
        }
    }

    /// `nova-scheduler` → `scheduler`, `forkwatch-api` → `api`.
    public static func topic(of binary: String) -> String {
        for prefix in ["nova-", "forkwatch-"] where binary.hasPrefix(prefix) {
            return String(binary.dropFirst(prefix.count))
        }
        return binary
    }

    public static func hostname() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        gethostname(&buffer, buffer.count)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public func start() throws {
        log.info("Starting \(topic) node (host \(host), binary \(binary))")
        let store: ServicesStore
        let row: ServicesStore.Row
        do {
            store = try ServicesStore(path: database)
            row = try store.register(host: host, binary: binary, topic: topic)
        } catch {
            throw BootError("\(error)")
        }
        try manager.initHost()
        if let starter = rpcServerStarter {
            do { rpcServer = try starter(self) } catch { throw BootError("RPC server: \(error)") }
        }
        startThread { [self] in heartbeat(store: store, id: row.id!) }
        if periodicEnable { startThread { [self] in runPeriodicTasks() } }
    }

    public func wait() {
        stopLatch.wait()
        // Messages in hand are handled and acknowledged before the worker exits.
        rpcServer?.stop()
        for done in finished { done.wait(timeout: 5) }
    }

    public func stop() { stopLatch.release() }

    public func reset() { manager.reset() }

    private func startThread(_ body: @escaping () -> Void) {
        let done = StopLatch()
        finished.append(done)
        Posix.startThread {
            body()
            done.release()
        }
    }

    /// nova's `report_state`: a beat every report_interval, first one right after start; a
    /// failure is reported and logged, and the next beat is tried all the same. Before each beat
    /// the database path is checked against the file this connection opened (device and inode):
    /// SQLite would go on writing into a deleted file, so a beat into an unlinked or replaced
    /// file is a failure, never "ok". When a file is at the path again, it is reopened there.
    private func heartbeat(store: ServicesStore, id: Int64) {
        var store = store
        var id = id
        var failing: String?
        repeat {
            do {
                do {
                    try store.checkFileIsStillAtPath()
                } catch {
                    store.close()  // let go of the old file (and its -wal) at once
                    guard ServicesStore.FileIdentity.of(store.path) != nil else {
                        report(failure: error.description, failing: &failing)
                        continue
                    }
                    // A database is at the path again (restored, or made by `services migrate`):
                    // beat there from now on, on its row for this host and binary.
                    let reopened: ServicesStore
                    let row: ServicesStore.Row
                    do {
                        reopened = try ServicesStore(path: store.path, mode: .existing)
                        row = try reopened.register(host: host, binary: binary, topic: topic)
                    } catch let reopenError {
                        let why = ServicesStore.explain(reopenError, path: store.path)
                        report(failure: "\(error.description); reopening it failed: \(why)", failing: &failing)
                        continue
                    }
                    report(failure: error.description, failing: &failing)
                    (store, id) = (reopened, row.id!)
                    log.info("Reopened \(store.path): a database file is at the path again")
                }
                let count = try store.beat(id: id)
                if failing != nil { log.info("Recovered from being unable to report status.") }
                failing = nil
                status.send(.heartbeat(ok: true, reportCount: count, error: nil))
            } catch {
                report(failure: "\(ServicesStore.explain(error, path: store.path))", failing: &failing)
            }
        } while !stopLatch.wait(timeout: reportInterval)
    }

    /// A failed beat: an event every time, a log line when the reason changes.
    private func report(failure message: String, failing: inout String?) {
        if failing != message { log.error("Unable to report status: \(message)") }
        failing = message
        status.send(.heartbeat(ok: false, reportCount: nil, error: message))
    }

    /// oslo's DynamicLoopingCall over `run_periodic_tasks`: a random initial delay (the fuzzy
    /// delay), then each pass idles what the schedule returns.
    private func runPeriodicTasks() {
        let tasks = manager.periodicTasks
        var schedule = PeriodicSchedule(
            tasks: tasks.map(\.spec), now: Posix.monotonicNow(),
            runExternalPeriodicTasks: runExternalPeriodicTasks, intervalMax: periodicIntervalMax)
        for (name, reason) in schedule.skipped { log.info("Skipping periodic task \(name) because \(reason)") }
        let delay = PeriodicSchedule.initialDelay(fuzzyDelay: periodicFuzzyDelay) { Double.random(in: 0..<1) }
        if stopLatch.wait(timeout: delay) { return }
        while true {
            let (due, idleFor) = schedule.runDue(now: Posix.monotonicNow()) { Double.random(in: 0..<1) }
            for name in due {
                guard let task = tasks.first(where: { $0.spec.name == name }) else { continue }
                let startedWall = Posix.wallNow()
                let started = Posix.monotonicNow()
                var failure: String?
                do { try task.run() } catch {
                    failure = "\(error)"
                    log.error("Error during \(String(describing: type(of: manager))).\(name): \(error)")
                }
                let duration = Posix.monotonicNow() - started
                status.send(
                    .taskRan(
                        ChildMessage.TaskReport(
                            task: name, started: startedWall, duration: duration, ok: failure == nil,
                            error: failure.map { String($0.prefix(300)) }, nextDue: schedule.nextDue(name),
                            spacing: schedule.entries.first { $0.spec.name == name }?.spacing ?? 0)))
                if stopLatch.wait(timeout: 0) { return }
            }
            if stopLatch.wait(timeout: idleFor) { return }
        }
    }
}

/// A worker whose service could not be built: it exits with the boot-error code.
final class UnbootableService: Service {
    let reason: String
    init(reason: String) { self.reason = reason }
    func start() throws { throw BootError(reason) }
    func wait() {}
    func stop() {}
}
