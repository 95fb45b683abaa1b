import ForkwatchCore

/// oslo.service's `ServiceBase`: what a worker runs. `start()` returns once the service is
/// serving (the worker then reports ready); `wait()` blocks until it has stopped; `stop()` asks
/// it to stop (from another thread); `reset()` reloads in place (SIGHUP, restart_method=mutate).
public protocol Service: AnyObject {
    func start() throws
    func wait()
    func stop()
    func reset()
    /// True for a `ThreadlessService`; nothing else sets it. A requirement, not an `is` check in
    /// the worker: the first cast to a protocol in a process scans every conformance record of
    /// the binary, and each new worker would pay for it again (seen in profiles of respawns,
    /// on pages the master had released).
    var runsWithoutThreads: Bool { get }
}

extension Service {
    public func reset() {}
    public var runsWithoutThreads: Bool { false }
}

/// A service that starts no threads and whose `wait()` only waits for `stop()`. Its worker needs
/// no thread to block in `wait()`: the one thread it has runs `start()`, then the signal loop,
/// and calls `wait()` once `stop()` was called. An idle worker is then a single-threaded process
/// like a C one: a SIGKILL has one thread to end, where three threads may have to wait for CPU
/// time one after the other (traced: 1–4 ms more before the master hears of the death).
/// Adopt it where the class first conforms to `Service` (a subclass adopting it later keeps its
/// superclass's `runsWithoutThreads`).
public protocol ThreadlessService: Service {}

extension ThreadlessService {
    public var runsWithoutThreads: Bool { true }
}

/// Thrown from `start()` when retrying cannot help (bad configuration, missing resource): the
/// worker exits 3 and the launcher stops respawning its service.
public struct BootError: Error, CustomStringConvertible {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { "boot error: \(reason)" }
}

/// Services by name, for `forkwatch run SERVICE` and config files. Registered before the master
/// starts; a factory runs in the worker, after fork, so nothing it builds is shared.
public enum ServiceRegistry {
    nonisolated(unsafe) private static var factories: [String: () -> any Service] = [
        "idle": { IdleService() },
        "crashy": { CrashyService() },
        "scheduler": { ManagedService.fromConfiguration(binary: "forkwatch-scheduler") },
    ]
    nonisolated(unsafe) private static var summaries: [String: String] = [
        "idle": "does nothing until told to stop",
        "crashy": "dies after a random 0-3 s, by a random exit code or signal (shows crash loops)",
        "scheduler": "nova-scheduler's shape: periodic tasks (quick, slow, flaky) and a heartbeat into the services table",
    ]
    /// Services that open the services database in their workers (checked before the first fork).
    nonisolated(unsafe) private static var databaseUsers: Set<String> = ["scheduler"]
    /// Services that serve on a socket the master binds; this address when none is configured.
    nonisolated(unsafe) private static var defaultListeners: [String: ListenSpec] = [:]

    public static func usesDatabase(_ name: String) -> Bool { databaseUsers.contains(name) }
    public static func defaultListen(_ name: String) -> ListenSpec? { defaultListeners[name] }

    public static func register(_ name: String, summary: String, usesDatabase: Bool = false, defaultListen: ListenSpec? = nil,
                                _ factory: @escaping () -> any Service) {
        factories[name] = factory
        summaries[name] = summary
        if usesDatabase { databaseUsers.insert(name) }
        if let defaultListen { defaultListeners[name] = defaultListen }
    }

    public static func make(_ name: String) -> (any Service)? { factories[name]?() }
    public static func contains(_ name: String) -> Bool { factories[name] != nil }
    public static var names: [String] { factories.keys.sorted() }
    public static func summary(_ name: String) -> String { summaries[name] ?? "" }
}

/// A one-shot latch on a pipe: `wait` blocks until `release` is called from any thread or a
/// timeout passes. A pipe rather than a condition variable so it can join a poll(2) set.
public final class StopLatch: @unchecked Sendable {
    private let fds: (read: Int32, write: Int32)

    public init() {
        fds = (try? Posix.pipe(nonblockingRead: false)) ?? (-1, -1)
    }

    deinit {
        Posix.close(fds.read)
        Posix.close(fds.write)
    }

    public func release() {
        try? Posix.writeAll(fds.write, [1])
    }

    /// True when released, false when `timeout` passed first.
    @discardableResult
    public func wait(timeout: Double? = nil) -> Bool {
        let deadline = timeout.map { Posix.monotonicNow() + $0 }
        while true {
            let left = deadline.map { max(0, $0 - Posix.monotonicNow()) }
            guard let revents = try? Posix.poll([fds.read], timeout: left) else { return false }
            if revents[0] != 0 { return true }
            if let left, left <= 0 { return false }
        }
    }
}
