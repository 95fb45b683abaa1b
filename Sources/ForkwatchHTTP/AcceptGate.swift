import Forkwatch
import Logging
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// Who accepts next, and how many connections this worker holds.
///
/// All workers of a service accept from one listening socket. Left to themselves, every
/// worker's epoll wakes for each new connection and all but one find nothing to accept (the
/// thundering herd; SwiftNIO's debug build even asserts on that empty accept). So, as nginx's
/// accept_mutex did, a worker asks to accept only while it holds the service's accept lock: an
/// flock on a memfd the master made before forking. A thread here waits for the lock, asks
/// the listening channel for one read (autoRead is off), waits until that accept is done,
/// and lets go. The kernel drops the lock of a worker that dies holding it.
///
/// flock is not fair: a worker that lets go and asks again at once would win again before the
/// woken waiter runs. So after its turn a worker with siblings naps `handoff` before asking
/// again; the waiter takes the lock meanwhile, and connections alternate between workers.
/// Whether it has siblings is read each turn from the memfd, where the master keeps the
/// service's worker count: a scale up or down reaches the workers already running.
///
/// `pool_size` lives here too: at that many open connections this worker stops asking, and new
/// connections wait in the kernel's queue for another worker (eventlet's full GreenPool).
///
/// An accept that fails for want of a resource (EMFILE: this worker's fd limit; ENFILE: the
/// system's; ENOBUFS, ENOMEM) leaves the connection in the kernel's queue and the socket
/// readable: asking again at once spins (two threads at 140 % CPU, once). So, as nginx does, the
/// worker backs off: it lets go of the lock (a sibling may have fds to spare) and waits
/// `backoff`, or less if one of its connections closes (an fd is free again). It says so at most
/// once a second, and once more when it accepts again.
final class AcceptGate: @unchecked Sendable {
    private let lockFD: Int32?
    private let poolSize: Int
    private let log: Logger
    /// How long a worker with siblings naps after its turn.
    private static let handoff = 0.0001
    /// How long a worker whose accept failed for want of fds waits before asking again, unless
    /// one of its connections closes first.
    static let backoff = 0.1
    /// The accept errors that mean "no resource now", worth a back-off (NIO keeps the listening
    /// channel open on each: `ServerSocketChannel.shouldCloseOnReadError`).
    static let resourceErrors: [Int32: String] = [
        EMFILE: "EMFILE", ENFILE: "ENFILE", ENOBUFS: "ENOBUFS", ENOMEM: "ENOMEM",
    ]
    /// The worker count at fork, for when the memfd holds none.
    private let workersAtFork: Int
    private var mutex = pthread_mutex_t()
    private var changed = pthread_cond_t()
    private var open = 0
    private var reading = false
    private var stopping = false
    /// The errno of this turn's accept, when it failed for want of a resource.
    private var failedAccept: Int32?
    /// Connections accepted and closed so far: a back-off ends early when `closes` moves.
    private var accepts = 0
    private var closes = 0

    /// `sharedLock`: the master's memfd (nil without a master: no one to take turns with).
    init(sharedLock: Int32?, poolSize: Int, workers: Int, log: Logger) throws {
        lockFD = try sharedLock.map { fd throws(PosixError) in try Posix.reopen(fd) }
        self.poolSize = poolSize
        self.log = log
        workersAtFork = workers
        pthread_mutex_init(&mutex, nil)
        // Timed waits (the back-off) on the monotonic clock.
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(&changed, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    /// Starts taking turns at accepting for `channel` (the listening channel, autoRead off).
    func start(_ channel: Channel) {
        Posix.startThread { [self] in takeTurns(channel) }
    }

    /// The worker is stopping: no more turns; a held lock is let go at once.
    func stop() {
        update { $0.stopping = true }
    }

    private func takeTurns(_ channel: Channel) {
        var backOff = AcceptBackOff()
        while true {
            wait(while: { !$0.stopping && $0.open >= $0.poolSize })
            if update({ $0.stopping }) { break }
            if let lockFD {
                do { try Posix.lockExclusive(lockFD) } catch { break }
            }
            let proceed = update { gate -> Bool in
                if gate.stopping { return false }
                gate.reading = true
                return true
            }
            guard proceed else { break }
            let acceptsBefore = update { $0.accepts }
            channel.read()
            wait(while: { $0.reading && !$0.stopping })
            if let lockFD { Posix.unlock(lockFD) }
            let (failure, accepted, open, closes) = update { gate in
                defer { gate.failedAccept = nil }
                return (gate.failedAccept, gate.accepts > acceptsBefore, gate.open, gate.closes)
            }
            if let failure {
                if let line = backOff.failed(
                    errno: failure, now: Posix.monotonicNow(), open: open, fdLimit: Self.fdLimit())
                {
                    log.warning("\(line)")
                }
                wait(while: { !$0.stopping && $0.closes == closes }, atMost: Self.backoff)
            } else {
                if accepted, backOff.isOn, let line = backOff.accepted(now: Posix.monotonicNow()) {
                    log.notice("\(line)")
                }
                if lockFD.map({ (Posix.readNumber($0).map(Int.init) ?? workersAtFork) > 1 }) ?? false {
                    Posix.sleep(seconds: Self.handoff)
                }
            }
        }
        if let lockFD { Posix.unlock(lockFD) }
    }

    /// This process's soft RLIMIT_NOFILE (for the back-off line). The C function is `getrlimit`.
    private static func fdLimit() -> UInt64 {
        var limit = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        return UInt64(limit.rlim_cur)
    }

    // Called on the listening channel's event loop.

    func acceptDone() { update { $0.reading = false } }
    func acceptFailed(errno: Int32) { update { $0.failedAccept = errno } }
    func opened() {
        update {
            $0.open += 1
            $0.accepts += 1
        }
    }
    func closed() {
        update {
            $0.open -= 1
            $0.closes += 1
        }
    }

    @discardableResult
    private func update<T>(_ body: (AcceptGate) -> T) -> T {
        pthread_mutex_lock(&mutex)
        let result = body(self)
        pthread_cond_broadcast(&changed)
        pthread_mutex_unlock(&mutex)
        return result
    }

    /// Waits while `condition` holds.
    private func wait(while condition: (AcceptGate) -> Bool) {
        pthread_mutex_lock(&mutex)
        while condition(self) { pthread_cond_wait(&changed, &mutex) }
        pthread_mutex_unlock(&mutex)
    }

    /// Waits while `condition` holds, `seconds` at most.
    private func wait(while condition: (AcceptGate) -> Bool, atMost seconds: Double) {
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        let nanoseconds = deadline.tv_nsec + Int(seconds * 1e9)
        deadline.tv_sec += nanoseconds / 1_000_000_000
        deadline.tv_nsec = nanoseconds % 1_000_000_000
        pthread_mutex_lock(&mutex)
        while condition(self) {
            if pthread_cond_timedwait(&changed, &mutex, &deadline) == ETIMEDOUT { break }
        }
        pthread_mutex_unlock(&mutex)
    }
}

/// What the gate says about failed accepts: the first failure, then at most one line a second
/// (with the number of failures in between), and one line when an accept succeeds again.
/// Time is a parameter.
struct AcceptBackOff {
    /// When the last line was said, while failing.
    private var lastLine: Double?
    private var since: Double?
    private var unreported = 0
    private var failures = 0
    /// Seconds between two lines about the same back-off.
    static let interval = 1.0

    /// Failing since the last accept.
    var isOn: Bool { since != nil }

    /// The line to log for a failed accept now, if one is due.
    mutating func failed(errno: Int32, now: Double, open: Int, fdLimit: UInt64) -> String? {
        if since == nil { since = now }
        failures += 1
        unreported += 1
        if let lastLine, now - lastLine < Self.interval { return nil }
        defer {
            lastLine = now
            unreported = 0
        }
        let name = AcceptGate.resourceErrors[errno] ?? "errno \(errno)"
        let more = unreported > 1 ? "; \(unreported - 1) more failed accepts since the last line" : ""
        return
            "cannot accept: \(Posix.describe(errno: errno)) (\(name); \(open) connections open, fd limit \(fdLimit)): "
            + "backing off, next try in \(Int(AcceptGate.backoff * 1000)) ms or when a connection closes\(more)"
    }

    /// The line to log for an accept that succeeded now, if it ends a back-off.
    mutating func accepted(now: Double) -> String? {
        guard let since else { return nil }
        defer { self = AcceptBackOff() }
        let tenths = Int(((now - since) * 10).rounded())
        return "accepting again after \(tenths / 10).\(tenths % 10) s of back-off (\(failures) failed accepts)"
    }
}

/// On the listening channel: tells the gate when an accept turn is over and counts the
/// connections this worker holds.
final class AcceptGateHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = Channel
    typealias InboundOut = Channel

    private let gate: AcceptGate

    init(gate: AcceptGate) { self.gate = gate }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let child = unwrapInboundIn(data)
        gate.opened()
        child.closeFuture.whenComplete { [gate] _ in gate.closed() }
        context.fireChannelRead(data)
    }

    /// An accept that failed for want of a resource (EMFILE, ...): the gate backs off. NIO fires
    /// this before the turn's `channelReadComplete`.
    ///
    /// NIO leaves the read pending after a failed accept (`ServerSocketChannel.readFromSocket`
    /// clears it only when a connection comes), so the socket stays registered for readable and
    /// level-triggered epoll reports it again at once: the event loop would spin however long
    /// the gate waits. Turning autoRead on and off is the public way to drop that registration
    /// (`pauseRead0`); the gate's next `read()` registers it again.
    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let error = error as? IOError, AcceptGate.resourceErrors[error.errnoCode] != nil {
            gate.acceptFailed(errno: error.errnoCode)
            if let options = context.channel.syncOptions {
                try? options.setOption(.autoRead, value: true)
                try? options.setOption(.autoRead, value: false)
            }
        }
        context.fireErrorCaught(error)
    }

    /// After each read of the listening socket: an accept, or an accept error (ECONNABORTED).
    func channelReadComplete(context: ChannelHandlerContext) {
        gate.acceptDone()
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        gate.stop()
        context.fireChannelInactive()
    }
}
