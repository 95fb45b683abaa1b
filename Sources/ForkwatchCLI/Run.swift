import ArgumentParser
import Forkwatch
import ForkwatchCore
import ForkwatchServices

/// Options shared by `run` and `demo`.
struct LauncherOptions: ParsableArguments {
    @Option(name: .long, help: "Write every event as a JSON line to FILE ('-' for standard output).")
    var events: String?

    @Option(
        name: .long, help: "The control socket to serve (default: \(ControlSocket.defaultPath)); 'none' for no socket.")
    var controlSocket: String?

    @Option(name: .customLong(Settings.controlBufferLimit.long), help: Settings.controlBufferLimit.argumentHelp)
    var controlBufferLimit: Int?

    @Option(name: .customLong(Settings.controlMaxClients.long), help: Settings.controlMaxClients.argumentHelp)
    var controlMaxClients: Int?

    @Option(name: .customLong(Settings.scaleSignalService.long), help: Settings.scaleSignalService.argumentHelp)
    var scaleSignalService: String?

    @Option(name: .customLong(Settings.logFile.long), help: Settings.logFile.argumentHelp)
    var logFile: String?

    @Option(name: .customLong(Settings.maxWorkers.long), help: Settings.maxWorkers.argumentHelp)
    var maxWorkers: Int?

    @Option(
        name: .customLong(Settings.gracefulShutdownTimeout.long), help: Settings.gracefulShutdownTimeout.argumentHelp)
    var gracefulShutdownTimeout: Double?

    @Option(name: .customLong(Settings.restartMethod.long), help: Settings.restartMethod.argumentHelp)
    var restartMethod: String?

    @Option(name: .customLong(Settings.forkThrottleInterval.long), help: Settings.forkThrottleInterval.argumentHelp)
    var forkThrottleInterval: Double?

    @Option(name: .customLong(Settings.bootWindow.long), help: Settings.bootWindow.argumentHelp)
    var bootWindow: Double?

    @Option(name: .customLong(Settings.crashLoopThreshold.long), help: Settings.crashLoopThreshold.argumentHelp)
    var crashLoopThreshold: Int?

    @Option(name: .customLong(Settings.workersCgroup.long), help: Settings.workersCgroup.argumentHelp)
    var workersCgroup: String?

    @Option(name: .customLong(Settings.database.long), help: Settings.database.argumentHelp)
    var db: String?

    @Option(name: .customLong(Settings.reportInterval.long), help: Settings.reportInterval.argumentHelp)
    var reportInterval: Double?

    @Option(name: .customLong(Settings.periodicFuzzyDelay.long), help: Settings.periodicFuzzyDelay.argumentHelp)
    var periodicFuzzyDelay: Int?

    @Option(name: .customLong(Settings.periodicIntervalMax.long), help: Settings.periodicIntervalMax.argumentHelp)
    var periodicIntervalMax: Double?

    /// Flags win over the file. Each is checked against its declared range (`Settings`).
    func apply(to configuration: inout LauncherConfiguration) throws {
        try Settings.gracefulShutdownTimeout.apply(flag: gracefulShutdownTimeout, to: &configuration)
        if let name = restartMethod {
            try Settings.restartMethod.apply(flag: try Settings.restartMethod.flagValue(name), to: &configuration)
        }
        try Settings.forkThrottleInterval.apply(flag: forkThrottleInterval, to: &configuration)
        try Settings.bootWindow.apply(flag: bootWindow, to: &configuration)
        try Settings.crashLoopThreshold.apply(flag: crashLoopThreshold, to: &configuration)
        try Settings.logFile.apply(flag: logFile, to: &configuration)
        try Settings.workersCgroup.apply(flag: workersCgroup, to: &configuration)
        try Settings.database.apply(flag: db, to: &configuration)
        try Settings.reportInterval.apply(flag: reportInterval, to: &configuration)
        try Settings.periodicFuzzyDelay.apply(flag: periodicFuzzyDelay, to: &configuration)
        try Settings.periodicIntervalMax.apply(flag: periodicIntervalMax, to: &configuration)
        try Settings.maxWorkers.apply(flag: maxWorkers, to: &configuration)
        try Settings.controlBufferLimit.apply(flag: controlBufferLimit, to: &configuration)
        try Settings.controlMaxClients.apply(flag: controlMaxClients, to: &configuration)
        try Settings.scaleSignalService.apply(flag: scaleSignalService, to: &configuration)
    }

    /// Runs the master over `configuration` and exits with its code. Every check that can fail
    /// happens before the first fork.
    func launch(_ configuration: LauncherConfiguration, reload: (() throws -> LauncherConfiguration)?) throws -> Never {
        if let problem = configuration.validate() { throw UsageError(problem) }
        try checkDatabase(configuration)
        try checkHTTP(configuration)
        do {
            try LogOutput.shared.open(path: configuration.logFile)
        } catch {
            throw UsageError("--log-file \(configuration.logFile ?? ""): \(error.message)")
        }
        let launcher = ProcessLauncher(configuration: configuration, registry: builtinServices)
        if let events {
            do { try launcher.events.writeEvents(to: events) } catch {
                throw UsageError("--events \(events): \(error.message)")
            }
        }
        launcher.reloadConfiguration = reload
        launcher.controlSocketPath = controlSocket == "none" ? nil : controlSocket ?? ControlSocket.defaultPath
        launcher.controlSocketFallback = controlSocket == nil
        do {
            finish(try launcher.wait())
        } catch LauncherError.anotherMaster(let error) {
            // Not bad input: the path is taken by a live master (exit 1, as runit's second
            // supervisor of one directory does).
            try? Posix.writeAll(2, "forkwatch: control socket: \(error.call)\n")
            finish(1)
        } catch let error as LauncherError {
            throw UsageError(error.description)
        }
    }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Supervise a built-in service or any command in forked workers.",
        discussion: """
            forkwatch run --headless --workers 4 idle
            forkwatch run --headless --workers 2 -- python3 -m http.server 8000
            forkwatch run --headless --config forkwatch.yaml

            Signals to the master: TERM graceful stop, INT fast stop, HUP reload (restart_method), \
            TTIN/TTOU one worker more/fewer, USR1 reopen the log file.
            Built-in services: \(builtinServices.names.map { "\($0) (\(builtinServices.summary($0)))" }.joined(separator: "; ")).
            """
    )

    @Flag(help: "No dashboard: the master runs in the foreground, log lines on standard error.")
    var headless = false

    @Flag(
        name: .customLong("no-fork"),
        help: "Run one built-in service in this process, without a master (oslo's ServiceLauncher).")
    var noFork = false

    @Option(name: .long, help: "A YAML configuration file with oslo's option names (see the README).")
    var config: String?

    @Option(name: .customLong(Settings.workers.long), help: Settings.workers.argumentHelp)
    var workers: Int?

    @Option(name: .customLong(Settings.port.long), help: Settings.port.argumentHelp)
    var port: Int?

    @Option(name: .customLong(Settings.listen.long), help: Settings.listen.argumentHelp)
    var listen: String?

    @Option(name: .customLong(Settings.backlog.long), help: Settings.backlog.argumentHelp)
    var backlog: Int?

    @Option(name: .customLong(Settings.tcpKeepidle.long), help: Settings.tcpKeepidle.argumentHelp)
    var tcpKeepidle: Int?

    @OptionGroup var options: LauncherOptions

    @Argument(
        help:
            "Built-in services to run (default: the services of --config), or '-- COMMAND ARGS…' to supervise any program."
    )
    var services: [String] = []

    /// Everything after `--`, verbatim: the program to supervise and its own arguments.
    var command: [String] { CommandLineSplit.parts.command ?? [] }

    func validate() throws {
        if let workers, let problem = Settings.workers.checkFlag(workers) { throw ValidationError(problem) }
        if command.isEmpty && CommandLineSplit.parts.command != nil {
            throw ValidationError("'--' must be followed by a command")
        }
        if !command.isEmpty && !services.isEmpty {
            throw ValidationError("give either service names or '-- COMMAND', not both")
        }
        for name in services where !builtinServices.contains(name) {
            throw ValidationError(
                "unknown service '\(name)' (built-in: \(builtinServices.names.joined(separator: ", ")))")
        }
        if config == nil && command.isEmpty && services.isEmpty {
            throw ValidationError(
                "nothing to run: name a service (\(builtinServices.names.joined(separator: ", "))), '-- COMMAND' or --config FILE"
            )
        }
    }

    /// The configuration file, then the command line on top of it.
    func resolveConfiguration() throws -> LauncherConfiguration {
        var configuration = LauncherConfiguration()
        if let config { configuration = try ConfigFile.load(config) }
        if !command.isEmpty {
            let name = String(command[0].split(separator: "/").last ?? "command")
            configuration.services = [ServiceSpec(name: name, program: .command(command), workers: workers ?? 1)]
        } else if !services.isEmpty {
            configuration.services = services.map { name in
                let fromFile = configuration.services.first { $0.name == name }
                return ServiceSpec(
                    name: name, program: .builtin(name), workers: workers ?? fromFile?.workers ?? 1,
                    listen: fromFile?.listen, http: fromFile?.http ?? HTTPOptions())
            }
        } else if let workers {
            for index in configuration.services.indices { configuration.services[index].workers = workers }
        }
        if configuration.services.isEmpty {
            throw UsageError("\(config ?? "the command line") names no service to run")
        }
        if let port {
            let problems = [
                Settings.port.checkFlag(port), listen.flatMap(Settings.listen.checkFlag),
                backlog.flatMap(Settings.backlog.checkFlag), tcpKeepidle.flatMap(Settings.tcpKeepidle.checkFlag),
            ]
            if let problem = problems.lazy.compactMap({ $0 }).first { throw UsageError(problem) }
            let spec = ListenSpec(
                host: listen ?? "0.0.0.0", port: port, backlog: backlog ?? 128, tcpKeepidle: tcpKeepidle ?? 600)
            for index in configuration.services.indices { configuration.services[index].listen = spec }
        } else if listen != nil || backlog != nil || tcpKeepidle != nil {
            throw UsageError("--listen, --backlog and --tcp-keepidle go with --port")
        }
        try options.apply(to: &configuration)
        return configuration
    }

    func run() throws {
        let configuration: LauncherConfiguration
        do {
            configuration = try resolveConfiguration()
        } catch let error as ConfigError {
            throw UsageError(error.description)
        }
        if noFork {
            guard configuration.services.count == 1, case .builtin(let name) = configuration.services[0].program else {
                throw UsageError("--no-fork runs exactly one built-in service in this process")
            }
            try checkDatabase(configuration)
            try checkHTTP(configuration)
            // The service reads its options as a worker would, with no master to report to.
            guard let entry = builtinServices.entry(name) else { throw UsageError("unknown service '\(name)'") }
            let context = WorkerContext(spec: configuration.services[0], configuration: configuration)
            ServiceLauncher(
                service: entry.make(context), name: name,
                gracefulShutdownTimeout: configuration.gracefulShutdownTimeout,
                logger: context.logger
            ).wait()
        }
        if !headless {
            let title = configuration.services.map(\.name).joined(separator: "+")
            try DashboardLauncher.launchAndWatch(
                title: title, headlessArguments: headlessArguments("run"),
                socket: options.controlSocket)
        }
        try options.launch(configuration, reload: config == nil ? nil : { try resolveConfiguration() })
    }
}

/// This command line with `--headless` added: what the dashboard starts in the background.
func headlessArguments(_ subcommand: String) -> [String] {
    var arguments = Array(CommandLine.arguments.dropFirst())
    let at = arguments.firstIndex(of: subcommand).map { $0 + 1 } ?? 0
    arguments.insert("--headless", at: at)
    return arguments
}

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Run the demo: a scheduler, an HTTP API, idle and crashy workers, so forks, exits, the throttle, periodic tasks and the accept queue show.",
        discussion: "Stop it with Ctrl-C (fast stop) or SIGTERM (graceful stop)."
    )

    @Flag(help: "No dashboard: the master runs in the foreground, log lines on standard error.")
    var headless = false

    @Option(name: .long, help: "Workers of the crashy service.")
    var crashy = 4

    @Option(name: .long, help: "Workers of the idle service.")
    var idle = 2

    @Option(name: .long, help: "Workers of the scheduler service (periodic tasks and a heartbeat into SQLite).")
    var scheduler = 4

    @Option(name: .long, help: "Workers of the api service (compute and metadata APIs over HTTP).")
    var api = 2

    @Option(name: .long, help: "The api service's port on 127.0.0.1 (0 = any free port).")
    var apiPort = 8080

    @OptionGroup var options: LauncherOptions

    func run() throws {
        let problems = [
            Settings.workers.check(crashy, as: "--crashy"), Settings.workers.check(idle, as: "--idle"),
            Settings.workers.check(scheduler, as: "--scheduler"), Settings.workers.check(api, as: "--api"),
            Settings.port.check(apiPort, as: "--api-port"),
        ]
        if let problem = problems.lazy.compactMap({ $0 }).first { throw UsageError(problem) }
        var configuration = LauncherConfiguration()
        configuration.services = [
            ServiceSpec(name: "scheduler", program: .builtin("scheduler"), workers: scheduler),
            ServiceSpec(
                name: "api", program: .builtin("api"), workers: api,
                listen: ListenSpec(host: "127.0.0.1", port: apiPort)),
            ServiceSpec(name: "idle", program: .builtin("idle"), workers: idle),
            ServiceSpec(name: "crashy", program: .builtin("crashy"), workers: crashy),
        ]
        // A demo should show its periodic tasks within seconds, not after nova's 60 s fuzz.
        configuration.periodicFuzzyDelay = 2
        try options.apply(to: &configuration)
        if !headless {
            if let problem = configuration.validate() { throw UsageError(problem) }
            try DashboardLauncher.launchAndWatch(
                title: "demo", headlessArguments: headlessArguments("demo"),
                socket: options.controlSocket)
        }
        // The intro is for a person at a terminal, not for the log of a dashboard's master.
        if Posix.isTerminal(2) {
            try? Posix.writeAll(
                2,
                """
                forkwatch demo: \(scheduler) scheduler workers (periodic tasks, heartbeat into \(configuration.database ?? ServicesStore.defaultPath)),
                \(api) api workers on http://127.0.0.1:\(apiPort == 0 ? "(a free port)" : String(apiPort))/ (a POST /v2.1/servers calls the scheduler over RPC:
                  curl -s -XPOST -d '{"server": {"name": "web-1"}}' http://127.0.0.1:\(apiPort)/v2.1/servers),
                \(idle) idle workers and \(crashy) crashy workers (each dies after 0-3 s by a random exit code or signal).
                Watch the reaping, the decoded exits, the respawn throttle and the periodic tasks' timings.
                Try from another terminal: kill -TTIN/-TTOU/-HUP \(Posix.getpid()). Stop: Ctrl-C (fast) or kill \(Posix.getpid()) (graceful).

                """)
        }
        try options.launch(configuration, reload: nil)
    }
}
