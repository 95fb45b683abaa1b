import Forkwatch
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
final class AcceptGate: @unchecked Sendable {
    private let lockFD: Int32?
    private let poolSize: Int
    /// How long a worker with siblings naps after its turn.
    private static let handoff = 0.0001
    /// The worker count at fork, for when the memfd holds none.
    private let workersAtFork: Int
    private var mutex = pthread_mutex_t()
    private var changed = pthread_cond_t()
    private var open = 0
    private var reading = false
    private var stopping = false

    /// `sharedLock`: the master's memfd (nil without a master: no one to take turns with).
    init(sharedLock: Int32?, poolSize: Int, workers: Int) throws {
        lockFD = try sharedLock.map { fd throws(PosixError) in try Posix.reopen(fd) }
        self.poolSize = poolSize
        workersAtFork = workers
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&changed, nil)
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
            channel.read()
            wait(while: { $0.reading && !$0.stopping })
            if let lockFD {
                Posix.unlock(lockFD)
                if (Posix.readNumber(lockFD).map(Int.init) ?? workersAtFork) > 1 { Posix.sleep(seconds: Self.handoff) }
            }
        }
        if let lockFD { Posix.unlock(lockFD) }
    }

    // Called on the listening channel's event loop.

    func acceptDone() { update { $0.reading = false } }
    func opened() { update { $0.open += 1 } }
    func closed() { update { $0.open -= 1 } }

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
