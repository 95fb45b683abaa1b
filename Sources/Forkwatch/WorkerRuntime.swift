import ForkwatchCore
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Runs one `Service` in the current process, oslo's child loop: SIGTERM = `stop()` and a
/// graceful exit 0, SIGHUP = `reset()` in place, SIGINT = exit 1 now, the parent-death pipe's
/// EOF = stop and exit 1. Used by a forked worker and by `ServiceLauncher` alike.
enum WorkerRuntime {
    static let handledSignals: [Signal] = [.term, .hup, .int, .usr1]

    /// `status`: where `ready` goes (the master's status pipe). `deathFD`: the read end of the
    /// parent-death pipe. `stopTimeout`: exit 1 if `stop()` has not ended `wait()` by then (only
    /// ServiceLauncher sets it; under a master, the master enforces graceful_shutdown_timeout).
    static func run(
        _ service: any Service, logger: Logger, status: StatusChannel, deathFD: Int32?, stopTimeout: Double?
    ) -> Never {
        // Blocked first, so every thread created from here inherits the mask and the signals
        // reach only the signalfd. (A forked worker has had them blocked since the fork: one that
        // arrived meanwhile is waiting there.)
        do { try Posix.block(handledSignals) } catch { Posix.exitNow(1) }
        if service.runsWithoutThreads {
            // No second thread ever runs, so no runtime lock is ever contended (see below): this
            // thread serves, and the worker stays a one-thread process.
            serve(service, log: logger, status: status, deathFD: deathFD, stopTimeout: stopTimeout, threadless: true)
        }
        // The service and the control loop run on new threads; this thread only parks. After a
        // fork, the Swift runtime still holds the parent's thread id for this thread (it caches
        // gettid() per thread) and its locks use that id as owner: contended with another thread,
        // a runtime lock (a metadata once) spun forever — both threads in once_slow, seen when
        // SIGTERM came at start-up. New threads have their own ids; this one stays out of it.
        Posix.startThread {
            serve(service, log: logger, status: status, deathFD: deathFD, stopTimeout: stopTimeout)
        }
        Posix.parkForever()
    }

    /// `threadless`: the control loop runs on this thread after `start()` and returns once the
    /// service was told to stop; otherwise it runs on a thread of its own from before `start()`.
    private static func serve(
        _ service: any Service, log: Logger, status: StatusChannel, deathFD: Int32?, stopTimeout: Double?,
        threadless: Bool = false
    ) -> Never {
        let outcome = Outcome()
        let signalFD: Int32
        do {
            signalFD = try Posix.signalFD(handledSignals)
            // Watching signals and the parent-death pipe starts before start(): a worker stuck
            // in start() still stops on SIGTERM and still dies with its master. (A threadless
            // service's start() returns at once; its signals wait in the signalfd meanwhile.)
            if !threadless {
                Posix.startThread {
                    controlLoop(
                        service: service, log: log, signalFD: signalFD, deathFD: deathFD,
                        stopTimeout: stopTimeout, outcome: outcome, returnWhenStopping: false)
                }
            }
            try service.start()
            status.send(.ready)
        } catch let error as BootError {
            log.error("\(error); exiting \(ExitCode.bootError)")
            Posix.exitNow(ExitCode.bootError)
        } catch {
            log.error("start failed: \(error)")
            Posix.exitNow(1)
        }
        if threadless {
            controlLoop(
                service: service, log: log, signalFD: signalFD, deathFD: deathFD,
                stopTimeout: stopTimeout, outcome: outcome, returnWhenStopping: true)
        }
        service.wait()
        Posix.exitNow(outcome.code)
    }

    private static func controlLoop(
        service: any Service, log: Logger, signalFD: Int32, deathFD: Int32?,
        stopTimeout: Double?, outcome: Outcome, returnWhenStopping: Bool
    ) {
        var watchDeath = deathFD
        var hardDeadline: Double?
        var stopping = false
        // A second in, the code start-up ran once (the master's image, the runtime's first
        // lookups) is unmapped, so a worker killed later does not unmap it page by page on its
        // way out (the kernel tears the mappings down before it tells the master). Not at once:
        // workers starting together (64 in 50 ms, 1000 in half a second) would take the CPUs from
        // the master's forks. The drop is made by the poll itself, so nothing runs between it and
        // the wait to fault code back in.
        var releasePagesAt: Double? = Posix.monotonicNow() + 1
        while true {
            var release: Bool?
            if let at = releasePagesAt, Posix.monotonicNow() >= at {
                // With one thread (a forked threadless worker), the data segments' untouched pages go
                // too: no other thread can write to one between the check and the drop.
                release = Posix.threadCount() == 1
                releasePagesAt = nil
            }
            let fds = [signalFD] + (watchDeath.map { [$0] } ?? [])
            let timeout = [hardDeadline, releasePagesAt].compactMap { $0 }.min().map {
                max(0, $0 - Posix.monotonicNow())
            }
            guard let revents = try? Posix.poll(fds, timeout: timeout, releasingFilePages: release) else {
                Posix.exitNow(1)
            }
            if let deadline = hardDeadline, Posix.monotonicNow() >= deadline {
                log.error("stop() did not finish in time; exiting 1")
                Posix.exitNow(1)
            }
            if revents[0] != 0 {
                while let (signal, _) = try? Posix.readSignal(signalFD) {
                    switch signal {
                    case .term:
                        guard !stopping else { continue }
                        stopping = true
                        log.info("SIGTERM: stopping gracefully")
                        hardDeadline = stopTimeout.map { Posix.monotonicNow() + $0 }
                        service.stop()
                        if returnWhenStopping { return }
                    case .hup:
                        log.info("SIGHUP: reset in place")
                        service.reset()
                    case .int:
                        log.info("SIGINT: exiting 1 now")
                        Posix.exitNow(1)
                    case .usr1:
                        try? LogOutput.shared.reopen()
                    default:
                        break
                    }
                }
            }
            if fds.count > 1, revents[1] != 0 {
                // oslo's _pipe_watcher: only the master held the write end; EOF = it is gone.
                log.error("Parent process has died unexpectedly, exiting")
                watchDeath = nil
                outcome.code = 1
                // Bounded: a worker with no master must not outlive it by more than a second.
                hardDeadline = Posix.monotonicNow() + 1
                if !stopping {
                    stopping = true
                    service.stop()
                }
                if returnWhenStopping { return }
            }
        }
    }

    /// The exit code the main thread uses once `wait()` returns, set by the control thread.
    final class Outcome: @unchecked Sendable {
        private var mutex = pthread_mutex_t()
        private var value: Int32 = 0
        init() { pthread_mutex_init(&mutex, nil) }
        var code: Int32 {
            get {
                pthread_mutex_lock(&mutex)
                defer { pthread_mutex_unlock(&mutex) }
                return value
            }
            set {
                pthread_mutex_lock(&mutex)
                value = newValue
                pthread_mutex_unlock(&mutex)
            }
        }
    }
}

/// oslo's `ServiceLauncher`: runs one service in this process, no fork (`--no-fork`, as
/// nova-compute does). Signals as in a worker; SIGTERM waits `gracefulShutdownTimeout` for
/// `stop()` to end `wait()`, then exits 1.
public struct ServiceLauncher {
    public let service: any Service
    public let name: String
    public var gracefulShutdownTimeout: Double
    public let logger: Logger

    public init(service: any Service, name: String, gracefulShutdownTimeout: Double = 60, logger: Logger? = nil) {
        self.service = service
        self.name = name
        self.gracefulShutdownTimeout = gracefulShutdownTimeout
        self.logger = logger ?? Logger(label: name)
    }

    /// Runs the service until it stops, then exits the process.
    public func wait() -> Never {
        Logger(label: "master").info("running \(name) in this process (no fork), pid \(Posix.getpid())")
        WorkerRuntime.run(
            service, logger: logger, status: .none, deathFD: nil,
            stopTimeout: gracefulShutdownTimeout > 0 ? gracefulShutdownTimeout : nil)
    }
}
