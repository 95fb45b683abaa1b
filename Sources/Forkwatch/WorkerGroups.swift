import ForkwatchCore

/// The process groups of a master's workers, and what they leave behind. Each worker leads a
/// group of its own; the master stops and kills the group, so a worker's children go with it.
/// A worker that exits may leave members in its group: they get SIGTERM at once and SIGKILL when
/// the master exits. The groups are written to a state file beside the control socket
/// (`PATH.groups`), so that the next master on that path finds what a SIGKILLed predecessor
/// left (its workers die with it; their children do not) and ends it.
final class WorkerGroups {
    /// Groups of exited workers that may still have members.
    private var leftovers: Set<Int32> = []
    private var stateFD: Int32?
    private var written: Set<Int32> = []
    /// A worker was forked or reaped since the state file was written.
    private var changed = true
    private let session = Posix.sessionID()

    /// `statePath`: the state file (nil without a control socket: nothing to hand on).
    init(statePath: String?) {
        stateFD = statePath.flatMap { try? Posix.openPrivate($0) }
    }

    deinit { if let stateFD { Posix.close(stateFD) } }

    /// What a previous master on this socket path left running: ends it with SIGKILL unless
    /// `kill` is false; returns a line for the event stream, or nil when nothing was left.
    /// Called once the socket's lock is held, so that master is gone.
    func endPredecessorsLeftovers(kill: Bool) -> String? {
        guard let stateFD, let text = try? Posix.readFile(fd: stateFD) else { return nil }
        var session: Int32?
        var groups: Set<Int32> = []
        for line in text.split(separator: "\n") {
            let words = line.split(separator: " ")
            if words.count == 2, words[0] == "session" { session = Int32(words[1]) }
            if words.count == 2, words[0] == "group", let pgid = Int32(words[1]), pgid > 1 { groups.insert(pgid) }
        }
        guard let session else { return nil }
        let found = Posix.processes(inGroups: groups, session: session)
        guard !found.isEmpty else { return nil }
        let pids = found.map { String($0.pid) }.joined(separator: ", ")
        if kill {
            for pgid in Set(found.map(\.pgid)) { Posix.killGroup(pgid, .kill) }
            return "the previous master on this socket left \(found.count) processes of its workers' groups "
                + "running (pids \(pids)): killed (SIGKILL)"
        }
        return "the previous master on this socket left \(found.count) processes of its workers' groups "
            + "running (pids \(pids)): left alone as asked"
    }

    /// A worker was forked: it leads its own group (the child makes itself leader too,
    /// whichever runs first).
    func workerForked(_ pid: Int32) {
        Posix.makeGroupLeader(pid)
        changed = true
    }

    /// A worker was reaped: what is left of its group gets SIGTERM.
    func workerExited(_ pid: Int32) {
        if Posix.killGroup(pid, .term) { leftovers.insert(pid) }
        changed = true
    }

    /// The master is about to exit: every group still populated gets SIGKILL.
    func killAll(workers: some Sequence<Int32>) {
        for pgid in leftovers.union(workers) { Posix.killGroup(pgid, .kill) }
        leftovers.removeAll()
        changed = true
        saveIfChanged(workers: [])
    }

    /// Writes the state file when a worker came or went since the last write (called once a
    /// loop pass).
    func saveIfChanged(workers: some Sequence<Int32>) {
        guard changed else { return }
        changed = false
        guard let stateFD else { return }
        leftovers = leftovers.filter { Posix.killGroup($0, Signal(rawValue: 0)) }
        let groups = leftovers.union(workers)
        guard groups != written else { return }
        written = groups
        Posix.rewrite(stateFD, "session \(session)\n" + groups.sorted().map { "group \($0)\n" }.joined())
    }
}
