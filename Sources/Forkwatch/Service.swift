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

/// Services by name, for `forkwatch run SERVICE` and config files: a value the launcher is
/// given (the CLI builds one with the demo's services; a library user builds their own). A
/// factory runs in the worker, after fork, so nothing it builds is shared.
public struct ServiceRegistry: Sendable {
    public struct Entry: Sendable {
        public let name: String
        public let summary: String
        /// Opens the services database in its workers (the CLI checks it before the first fork).
        public let usesDatabase: Bool
        /// Serves on a socket the master binds: this address when none is configured.
        public let defaultListen: ListenSpec?
        /// Builds the service in the worker, from what the master handed it.
        public let make: @Sendable (WorkerContext) -> any Service
    }

    private var entries: [String: Entry] = [:]

    public init() {}

    public mutating func register(
        _ name: String, summary: String = "", usesDatabase: Bool = false,
        defaultListen: ListenSpec? = nil, _ make: @escaping @Sendable (WorkerContext) -> any Service
    ) {
        entries[name] = Entry(
            name: name, summary: summary, usesDatabase: usesDatabase, defaultListen: defaultListen, make: make)
    }

    public func entry(_ name: String) -> Entry? { entries[name] }
    public func contains(_ name: String) -> Bool { entries[name] != nil }
    public var names: [String] { entries.keys.sorted() }
    public func summary(_ name: String) -> String { entries[name]?.summary ?? "" }
    public func usesDatabase(_ name: String) -> Bool { entries[name]?.usesDatabase ?? false }
    public func defaultListen(_ name: String) -> ListenSpec? { entries[name]?.defaultListen }
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
