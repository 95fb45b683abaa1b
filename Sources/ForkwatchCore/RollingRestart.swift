/// One service's rolling restart: fork one new worker (the surge), wait until it is ready,
/// then retire the oldest old worker, and again until no old worker is left. The service runs
/// with one worker more than its count while a step is on, so capacity never drops.
///
/// A value without workers or signals: `WorkerTable` reports forks, readiness and exits to it
/// and performs the retirement it decides.
public struct RollingRestart: Sendable, Hashable {
    /// Old workers still to replace, oldest first.
    public private(set) var remaining: [Int32]
    /// The new worker forked for the current step, until it is ready.
    public private(set) var surgePid: Int32?
    /// A surge fork was asked for and its pid is not known yet.
    public private(set) var surgeForking = false

    /// A restart replacing `oldPids` (oldest first); nil when there is nothing to replace.
    public init?(replacing oldPids: [Int32]) {
        guard !oldPids.isEmpty else { return nil }
        remaining = oldPids
    }

    /// Whether the service wants one worker above its count now.
    public var wantsSurge: Bool { surgePid != nil || surgeForking || !remaining.isEmpty }

    /// Called for each fork the table is about to ask for: true when that fork is the surge
    /// worker of a new step (then it is marked as forking, so a second fork is an ordinary one).
    public mutating func claimSurgeFork() -> Bool {
        guard surgePid == nil, !surgeForking, !remaining.isEmpty else { return false }
        surgeForking = true
        return true
    }

    /// A fork of the service succeeded: if it was the surge fork, `pid` is the surge worker.
    public mutating func forked(pid: Int32) {
        guard surgeForking else { return }
        surgeForking = false
        surgePid = pid
    }

    /// A fork of the service failed: the surge fork, if one was on, will be asked for again.
    public mutating func forkFailed() {
        surgeForking = false
    }

    /// A worker of the service exited: an old one needs no replacing any more; a surge worker
    /// that died before it was ready is replaced by a new surge fork.
    public mutating func exited(pid: Int32) {
        remaining.removeAll { $0 == pid }
        if surgePid == pid { surgePid = nil }
    }

    /// What a step does once its surge worker is ready.
    public struct Step: Sendable, Hashable {
        /// The old worker to stop now (nil: every old one had already gone or was retiring).
        public let retire: Int32?
        /// No old worker is left: the restart is over.
        public let isDone: Bool

        public init(retire: Int32?, isDone: Bool) {
            self.retire = retire
            self.isDone = isDone
        }
    }

    /// `pid` is ready. Nil when it is not this restart's surge worker. Otherwise the oldest
    /// old worker that `isServing` (still alive and not already retiring) is to be retired.
    public mutating func ready(pid: Int32, isServing: (Int32) -> Bool) -> Step? {
        guard surgePid == pid else { return nil }
        surgePid = nil
        while let old = remaining.first, !isServing(old) { remaining.removeFirst() }
        let retire = remaining.isEmpty ? nil : remaining.removeFirst()
        return Step(retire: retire, isDone: remaining.isEmpty)
    }
}
