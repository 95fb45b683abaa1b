import Forkwatch
import ForkwatchCore
import Logging

/// `idle`: does nothing until told to stop. The baseline worker for benchmarks and lessons.
final class IdleService: ThreadlessService {
    private let latch = StopLatch()
    private let log: Logger
    init(logger: Logger) { log = logger }

    func start() throws {}
    func wait() { latch.wait() }
    func stop() { latch.release() }
    func reset() { log.info("reset: nothing to reload") }
}

/// `crashy`: dies after a random 0–3 s, by a random exit code or signal, to show crash loops,
/// the throttle and status decoding. Never exits 3, which would mark its service failed.
final class CrashyService: Service {
    private let latch = StopLatch()
    private let log: Logger
    init(logger: Logger) { log = logger }
    private static let exitCodes: [Int32] = [0, 1, 2, 70, 139]
    private static let signals: [Signal] = [.segv, .abrt, .kill, .term, .int, Signal(rawValue: 7)]  // 7: SIGBUS

    func start() throws {
        // No core files in the working directory from deliberate crashes.
        Posix.disableCoreDumps()
    }

    func wait() {
        let lifetime = Double.random(in: 0...3)
        if latch.wait(timeout: lifetime) { return }
        if Bool.random() {
            let code = Self.exitCodes.randomElement()!
            log.info("crashing now: exit(\(code))")
            Posix.exitNow(code)
        } else {
            let signal = Self.signals.randomElement()!
            log.info("crashing now: \(signal.name)")
            Posix.dieBy(signal)
        }
    }

    func stop() { latch.release() }
}
