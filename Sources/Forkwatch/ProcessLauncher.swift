import ForkwatchCore
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Why a launcher refused to start.
public enum LauncherError: Error, CustomStringConvertible {
    /// Forking a multi-threaded process leaves locks held by vanished threads: refused.
    case multithreaded(threads: Int)
    case invalidConfiguration(String)
    case unknownService(String, known: [String])
    case controlSocket(PosixError)
    /// Another master serves the control socket path that was asked for.
    case anotherMaster(PosixError)

    public var description: String {
        switch self {
        case .multithreaded(let threads):
            return "refusing to fork: this process has \(threads) threads; the master must be single-threaded "
                + "(start no Dispatch, Swift concurrency, NIO or SQLite before ProcessLauncher.wait())"
        case .invalidConfiguration(let message): return message
        case .controlSocket(let error):
            return "control socket: \(error)"
        case .anotherMaster(let error):
            return "control socket: \(error.call)"
        case .unknownService(let name, let known):
            return "unknown service '\(name)' (built-in: \(known.joined(separator: ", ")))"
        }
    }
}

/// oslo.service's `ProcessLauncher`: runs services in forked workers, reaps and respawns them
/// through the throttle, and turns signals into stop, reload and scale.
///
///     let launcher = ProcessLauncher(logger: Logger(label: "master"))
///     launcher.launchService("api", workers: 4) { context in MyService(port: context.spec.listen?.port) }
///     exit(try launcher.wait())
///
/// The library never bootstraps swift-log: its lines go to the program's own handlers.
public final class ProcessLauncher {
    public var configuration: LauncherConfiguration
    public let events: EventSink
    /// The services a `.builtin(NAME)` program names (and those a reload may introduce).
    public var registry: ServiceRegistry
    /// The master's logger (workers log under their service's name).
    public let logger: Logger
    /// Re-reads the configuration on SIGHUP; nil restarts workers with the running one.
    public var reloadConfiguration: (() throws -> LauncherConfiguration)?
    /// Where the control socket listens; nil for none. Default: `ControlSocket.defaultPath`.
    public var controlSocketPath: String? = ControlSocket.defaultPath
    /// When the default path is taken by another live master, listen on `forkwatch-PID.sock`
    /// beside it instead of refusing (an explicit path is never replaced).
    public var controlSocketFallback = true
    /// At start, end what a SIGKILLed predecessor on the same control socket (or in the same
    /// `workers_cgroup`) left running; false only reports it (a `notice`).
    public var killPredecessorsLeftovers = true

    public init(
        configuration: LauncherConfiguration = LauncherConfiguration(), registry: ServiceRegistry = ServiceRegistry(),
        logger: Logger = Logger(label: "master")
    ) {
        self.configuration = configuration
        self.registry = registry
        self.logger = logger
        events = EventSink(logger: logger)
    }

    /// Runs `factory`'s service in `workers` forked workers. The factory runs in each worker,
    /// after fork, with what the master handed that worker.
    public func launchService(
        _ name: String, workers: Int, _ factory: @escaping @Sendable (WorkerContext) -> any Service
    ) {
        registry.register(name, factory)
        configuration.services.append(ServiceSpec(name: name, program: .builtin(name), workers: workers))
    }

    /// Runs a service from the registry, or any command, in `workers` workers.
    public func launchService(_ name: String, workers: Int, program: Program) {
        configuration.services.append(ServiceSpec(name: name, program: program, workers: workers))
    }

    /// Runs the master loop until the launcher stops; returns the process exit code (0 after a
    /// graceful stop, 1 after a fast or escalated one, 3 when every service failed to boot).
    public func wait() throws -> Int32 {
        // A server service with no address configured gets its default one (api: nova's 8774).
        for index in configuration.services.indices where configuration.services[index].listen == nil {
            if case .builtin(let name) = configuration.services[index].program,
                let listen = registry.defaultListen(name)
            {
                configuration.services[index].listen = listen
            }
        }
        // Unless set, as many workers in all as the host fits, for the reloaded configuration too.
        let hostLimit = Posix.hostWorkerLimit()
        if configuration.maxWorkers == nil { configuration.maxWorkers = hostLimit }
        let reload = reloadConfiguration.map { reload in
            {
                var configuration = try reload()
                if configuration.maxWorkers == nil { configuration.maxWorkers = hostLimit }
                return configuration
            }
        }
        if let problem = configuration.validate() { throw LauncherError.invalidConfiguration(problem) }
        for spec in configuration.services {
            if case .builtin(let name) = spec.program, !registry.contains(name) {
                throw LauncherError.unknownService(name, known: registry.names)
            }
        }
        let threads = Posix.threadCount()
        guard threads == 1 else { throw LauncherError.multithreaded(threads: threads) }
        var control: ControlServer?
        if let path = controlSocketPath {
            do {
                control = try ControlServer(path: path, limits: ControlServer.Limits(configuration))
            } catch  where error.errno == EADDRINUSE && controlSocketFallback {
                let own = ControlSocket.directory(of: path) + "/forkwatch-\(Posix.getpid()).sock"
                logger.notice("another master listens on \(path); this one listens on \(own)")
                do { control = try ControlServer(path: own, limits: ControlServer.Limits(configuration)) } catch {
                    throw LauncherError.controlSocket(error)
                }
            } catch  where error.errno == EADDRINUSE {
                throw LauncherError.anotherMaster(error)
            } catch {
                throw LauncherError.controlSocket(error)
            }
        }
        // Bound and listening once, here, before any fork: a port in use or a bad address is an
        // error now, with nothing started.
        var listeners: [String: (fd: Int32, address: String, backlog: Int)] = [:]
        for spec in configuration.services {
            guard let listen = spec.listen else { continue }
            do {
                let (fd, address) = try Posix.listenTCP(listen)
                listeners[spec.name] = (fd, address, listen.backlog)
            } catch {
                for listener in listeners.values { Posix.close(listener.fd) }
                control?.close()
                let what = error.errno == EINVAL ? error.call : "\(error.call): \(error.message)"
                throw LauncherError.invalidConfiguration("service '\(spec.name)': \(what)")
            }
        }
        var cgroup: WorkersCgroup?
        if let directory = configuration.workersCgroup {
            do { cgroup = try WorkersCgroup(directory: directory) } catch {
                for listener in listeners.values { Posix.close(listener.fd) }
                control?.close()
                throw LauncherError.invalidConfiguration(error.call)
            }
        }
        let loop = MasterLoop(
            configuration: configuration, sink: events, control: control, listeners: listeners,
            registry: registry, reloadConfiguration: reload,
            killPredecessorsLeftovers: killPredecessorsLeftovers, cgroup: cgroup)
        return try loop.run()
    }
}

/// Where masters listen by default, and where `forkwatch top` and the CLI look.
public enum ControlSocket {
    public static var defaultPath: String { Posix.runtimeDirectory() + "/forkwatch.sock" }

    static func directory(of path: String) -> String {
        path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
    }

    /// The socket of the master to talk to when none was named: the only live `*.sock` in the
    /// run-time directory (the default one, or a `forkwatch-PID.sock` a second master took).
    /// Several: an error listing them, rather than a silent pick.
    public static func discover() throws -> String {
        let directory = directory(of: defaultPath)
        let live = Posix.listDirectory(directory).filter { $0.hasSuffix(".sock") }.map { directory + "/" + $0 }
            .filter { (try? ControlClient(path: $0)) != nil }
        if live.count == 1 { return live[0] }
        if live.isEmpty { return defaultPath }  // the caller's connect reports "no master"
        throw ControlError("several masters are running; choose one with --socket: \(live.joined(separator: ", "))")
    }
}
