// A program that embeds forkwatch's launcher the way a library user would: it owns its logging
// (swift-log bootstrapped before anything else), runs its own service in forked workers, and
// reads each worker's context. The process tests run it (Tests/ForkwatchTests/EmbeddingTests.swift).
//
//     ForkwatchEmbeddedExample [--control-socket PATH] [--workers N] [--thread-on-reload]
//
// Events go to standard output as JSON lines, logs to standard error. `--thread-on-reload`: the
// reload hook starts a thread in the master, as a careless embedding program might; the master
// must then refuse every fork (a `fork_refused` event) rather than fork a multi-threaded process.
import Forkwatch
import ForkwatchCore
import Logging

#if canImport(Glibc)
import Glibc
#endif

LoggingSystem.bootstrap { label in
    var handler = StreamLogHandler.standardError(label: label)
    handler.logLevel = .info
    return handler
}

let logger = Logger(label: "example-master")
var arguments = CommandLine.arguments.dropFirst()
var socketPath: String?
var workers = 2
var threadOnReload = false
while let argument = arguments.popFirst() {
    switch argument {
    case "--control-socket": socketPath = arguments.popFirst()
    case "--workers": workers = arguments.popFirst().flatMap { Int($0) } ?? workers
    case "--thread-on-reload": threadOnReload = true
    default:
        logger.error("usage: ForkwatchEmbeddedExample [--control-socket PATH] [--workers N] [--thread-on-reload]")
        exit(2)
    }
}

/// Says who it is once it is serving, from what its context told it.
final class Greeter: ThreadlessService {
    private let context: WorkerContext
    private let stopped = StopLatch()

    init(context: WorkerContext) { self.context = context }

    func start() throws {
        context.logger.info("greeter slot \(context.slot) of \(context.spec.workers) serving")
        context.status.send(.notice("greeter slot \(context.slot) says hello"))
    }

    func wait() { stopped.wait() }
    func stop() { stopped.release() }
}

let launcher = ProcessLauncher(logger: logger)
launcher.configuration.gracefulShutdownTimeout = 5
launcher.controlSocketPath = socketPath
do { try launcher.events.writeEvents(to: "-") } catch { exit(2) }
launcher.launchService("greeter", workers: workers) { context in Greeter(context: context) }
if threadOnReload {
    launcher.reloadConfiguration = { [configuration = launcher.configuration] in
        startStrayThread()
        logger.warning("the reload hook started a thread in the master")
        return configuration
    }
}
do {
    exit(try launcher.wait())
} catch {
    logger.error("\(error)")
    exit(2)
}
