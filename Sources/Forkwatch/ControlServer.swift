import ForkwatchCore

/// The master's control socket: a Unix stream socket in a 0700 directory, mode 0600, the peer's
/// uid checked with SO_PEERCRED, newline-delimited JSON. Non-blocking and driven by the
/// master's poll loop, and bounded everywhere, so no client can hold up a reap (issue 13):
/// - work: a pass reads at most `bytesPerRead` from a client and answers at most
///   `requestsPerClient` of its requests, the clients taking turns one request at a time, for at
///   most a millisecond (the master's budget); further lines wait for the next pass, after the
///   signals;
/// - memory: event lines are kept once for all subscribers (`BroadcastLog`); a client owed more
///   than `control_buffer_limit` bytes is dropped with a last line saying why (Redis's
///   client-output-buffer-limit); a client with replies piling up is not read until it reads
///   them; at most `control_max_clients` connections, the next refused with an error line.
final class ControlServer {
    struct Client {
        let fd: Int32
        let peer: Posix.PeerCredentials
        var inbox = LineFramer(maxLineBytes: ControlRequest.maxLineBytes)
        var output = ControlOutput()
        /// Bytes were read since `inbox` last ran out of complete lines.
        var mayHaveLines = false
        /// No more requests are taken: close once the ones taken are answered (`finishPass`).
        var hangUp = false
        /// Close once the output is written.
        var closeAfterFlush = false
        /// The client shut its writing side: its requests are still answered (and a subscriber
        /// keeps receiving events) until it closes for good.
        var inputEnded = false
        /// Dropped: only its last line is left to write, until this time at most.
        var closeBy: Double?
    }

    /// What a pass may spend on the control socket, and what a client may hold.
    struct Limits {
        /// Bytes a client may be owed (replies and events not read) before it is dropped.
        var bufferLimit: Int
        /// Connections at once; the next is refused.
        var maxClients: Int
        static let requestsPerClient = 16
        static let bytesPerRead = 65_536
        static let acceptsPerPass = 64
        /// A client owed this many bytes of replies is not read until it takes them.
        static let unreadRepliesPause = 65_536
        /// How long a dropped client is given to read its last line.
        static let lastLineGrace = 10.0

        init(_ configuration: LauncherConfiguration) {
            bufferLimit = configuration.controlBufferLimit
            maxClients = configuration.controlMaxClients
        }
    }

    /// A subscriber dropped for not reading: the `subscriber_dropped` event.
    struct Dropped {
        let pid: Int32
        let queued: Int
        let limit: Int
    }

    var limits: Limits
    let path: String
    private let listenFD: Int32
    /// `PATH.lock`, held (flock) for as long as this master serves `path`: the one master per path.
    private let lockFD: Int32
    private(set) var clients: [Int32: Client] = [:]
    private var log = BroadcastLog()
    /// Notices for the master to emit (a refused or dropped client).
    private var notices: [String] = []
    private var dropped: [Dropped] = []
    /// Which client's requests come first next pass.
    private var turn = 0
    /// This pass's clients with lines to answer, in turn order, and what each has had.
    private var waiting: [Int32] = []
    private var taken: [Int32: Int] = [:]
    private var nextInTurn = 0
    /// Connections refused at `maxClients` since the last notice (one notice a second at most).
    private var refusedAtCap = 0
    private var refusalNoticeAt = -Double.infinity

    private(set) var subscriberCount = 0

    /// Binds `path`, replacing a stale socket left by a master that died. One master per path:
    /// the lock `PATH.lock` is taken before anything else (runit's and s6's rule), so two masters
    /// started together cannot both find the path stale; the second is refused, naming the first.
    init(path: String, limits: Limits) throws(PosixError) {
        self.path = path
        self.limits = limits
        if let slash = path.lastIndex(of: "/") {
            let directory = String(path[..<slash])
            if !directory.isEmpty {
                try Posix.ensurePrivateDirectory(directory, ownedByUs: Posix.isRuntimeDirectory(directory))
            }
        }
        switch try Posix.lockFile(path + ".lock") {
        case .success(let fd): lockFD = fd
        case .failure(let held):
            let who = held.pid > 0 ? "pid \(held.pid)" : "another process"
            throw PosixError("another master (\(who)) holds \(path).lock and serves \(path)", errno: EADDRINUSE)
        }
        do throws(PosixError) {
            listenFD = try Self.bind(path)
        } catch {
            Posix.close(lockFD)
            throw error
        }
    }

    private static func bind(_ path: String) throws(PosixError) -> Int32 {
        if Posix.exists(path) {
            guard Posix.isSocket(path) else {
                throw PosixError("\(path) exists and is not a socket; not replacing it", errno: EEXIST)
            }
            if let fd = try? Posix.connectUnix(path) {
                Posix.close(fd)
                throw PosixError(
                    "a master is already listening on \(path) (use --control-socket PATH for another)",
                    errno: EADDRINUSE)
            }
            Posix.unlink(path)
        }
        return try Posix.listenUnix(path)
    }

    func close() {
        for fd in Array(clients.keys) {
            flush(fd)
            if clients[fd] != nil { drop(fd, reason: nil) }
        }
        Posix.close(listenFD)
        Posix.unlink(path)
        Posix.close(lockFD)  // after the unlink: the next master finds the path free
    }

    func takeNotices() -> [String] {
        defer { notices.removeAll() }
        return notices
    }

    func takeDropped() -> [Dropped] {
        defer { dropped.removeAll() }
        return dropped
    }

    // MARK: - Polling

    /// The fds to poll and what to wait for on each. A client is read only when its last read's
    /// lines are answered and it has taken most of its replies; it is always watched, so
    /// POLLHUP still reports it gone.
    var pollSet: [(fd: Int32, events: Int16)] {
        if let until = acceptPausedUntil, Posix.monotonicNow() >= until { acceptPausedUntil = nil }
        let listening: [(fd: Int32, events: Int16)] = acceptPausedUntil == nil ? [(listenFD, Int16(POLLIN))] : []
        return listening
            + clients.values.map { client in
                let reading =
                    !client.inputEnded && !client.hangUp && !client.closeAfterFlush && !client.mayHaveLines
                    && client.output.replyBytes < Limits.unreadRepliesPause
                let writing = client.output.pending(logEnd: log.end) > 0
                return (client.fd, (reading ? Int16(POLLIN) : 0) | (writing ? Int16(POLLOUT) : 0))
            }
    }

    /// Some client has request lines read and not yet answered: poll without waiting.
    var hasUnansweredLines: Bool { clients.values.contains { $0.mayHaveLines && !$0.hangUp && !$0.closeAfterFlush } }

    /// After accept4 failed for want of file descriptors, the listening socket is left out of
    /// the poll set until then: polling it again at once would spin (it stays readable).
    private(set) var acceptPausedUntil: Double?

    /// Handles readiness on one of `pollSet`'s fds: accepts, writes what a client can take,
    /// reads (bounded) what it sent. Requests are taken with `beginRequests` and `nextRequest`.
    func handle(fd: Int32, revents: Int16) {
        if fd == listenFD {
            acceptSome()
            return
        }
        guard let client = clients[fd] else { return }
        if revents & Int16(POLLOUT) != 0 { flush(fd) }
        guard clients[fd] != nil else { return }
        if client.inputEnded || client.hangUp || client.closeAfterFlush {
            if revents & Int16(POLLHUP | POLLERR) != 0 { drop(fd, reason: nil) }
            return
        }
        if revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 { read(fd) }
    }

    private func acceptSome() {
        for _ in 0..<Limits.acceptsPerPass {
            let accepted: Int32?
            do { accepted = try Posix.accept(listenFD) } catch {
                notices.append("control socket: \(error); not accepting for 1 s")
                acceptPausedUntil = Posix.monotonicNow() + 1
                return
            }
            guard let fd = accepted else { return }
            guard let peer = try? Posix.peerCredentials(fd) else {
                Posix.close(fd)
                continue
            }
            if clients.count >= limits.maxClients {
                refuseAtCap(fd)
                continue
            }
            clients[fd] = Client(fd: fd, peer: peer)
            if peer.uid != Posix.effectiveUID() {
                notices.append(
                    "control client pid \(peer.pid) refused: uid \(peer.uid) is not the master's uid \(Posix.effectiveUID())"
                )
                clients[fd]!.closeAfterFlush = true
                send(
                    fd,
                    ControlError(
                        "permission denied: uid \(peer.uid) may not control a master of uid \(Posix.effectiveUID())",
                        closing: true
                    ).line)
            }
        }
    }

    /// One line and a close: a fresh socket's buffer always takes it.
    private func refuseAtCap(_ fd: Int32) {
        let line = ControlError(
            "too many control connections: \(limits.maxClients) open (control_max_clients); try again later",
            closing: true
        ).line
        _ = try? Posix.writeSome(fd, Array(line.utf8)[...])
        Posix.close(fd)
        refusedAtCap += 1
        let now = Posix.monotonicNow()
        if now - refusalNoticeAt >= 1 {
            notices.append(
                "control socket: refused \(refusedAtCap) connection(s) at control_max_clients (\(limits.maxClients))")
            refusedAtCap = 0
            refusalNoticeAt = now
        }
    }

    /// Reads what the client sent, up to `bytesPerRead` this pass.
    private func read(_ fd: Int32) {
        var budget = Limits.bytesPerRead
        while budget > 0, clients[fd] != nil {
            let chunk: [UInt8]?
            do { chunk = try Posix.read(fd, max: min(budget, 16_384)) } catch {
                drop(fd, reason: "read failed: \(error)")
                return
            }
            guard let chunk else { return }  // EAGAIN
            if chunk.isEmpty {
                // EOF on input: answer what was asked, then close unless it subscribed.
                clients[fd]!.inputEnded = true
                clients[fd]!.mayHaveLines = true
                return
            }
            budget -= chunk.count
            clients[fd]!.inbox.append(chunk)
            clients[fd]!.mayHaveLines = true
        }
    }

    // MARK: - Requests

    /// Starts a pass's requests: the clients with lines to answer take turns, from a different
    /// one each pass.
    func beginRequests() {
        waiting = clients.values.filter { $0.mayHaveLines && !$0.hangUp && !$0.closeAfterFlush }.map(\.fd).sorted()
        taken.removeAll(keepingCapacity: true)
        nextInTurn = 0
        guard !waiting.isEmpty else { return }
        turn = (turn + 1) % waiting.count
        waiting = Array(waiting[turn...] + waiting[..<turn])
    }

    /// The next request (or parse error) of this pass, one client after another, at most
    /// `requestsPerClient` from any one; nil when none is left for this pass.
    func nextRequest() -> (client: Int32, request: Result<ControlRequest, ControlError>)? {
        while !waiting.isEmpty {
            nextInTurn %= waiting.count
            let fd = waiting[nextInTurn]
            if taken[fd, default: 0] < Limits.requestsPerClient, let request = takeLine(of: fd) {
                taken[fd, default: 0] += 1
                nextInTurn += 1
                return request
            }
            waiting.remove(at: nextInTurn)  // nothing more from it this pass
        }
        return nil
    }

    private func takeLine(of fd: Int32) -> (client: Int32, request: Result<ControlRequest, ControlError>)? {
        while let client = clients[fd], !client.hangUp, !client.closeAfterFlush {
            guard let next = clients[fd]!.inbox.next() else {
                clients[fd]!.mayHaveLines = false
                if client.inbox.isOverLimit {
                    return refuse(fd, "request line over the \(ControlRequest.maxLineBytes)-byte limit")
                }
                if client.inputEnded, !client.output.isSubscribed {
                    // Everything it asked is taken: close once the answers are out.
                    clients[fd]!.hangUp = true
                }
                return nil
            }
            switch next {
            case .success(let line):
                if line.allSatisfy({ $0 == " " || $0 == "\r" }) { continue }
                return (fd, ControlRequest.parse(line))
            case .failure(let tooLong):
                return refuse(
                    fd, "request line of \(tooLong.length) bytes is over the \(ControlRequest.maxLineBytes)-byte limit")
            }
        }
        return nil
    }

    /// A line over the limit ends the session: this error is its last reply.
    private func refuse(
        _ fd: Int32, _ message: String
    ) -> (client: Int32, request: Result<ControlRequest, ControlError>) {
        clients[fd]?.inbox.reset()
        clients[fd]?.mayHaveLines = false
        clients[fd]?.hangUp = true
        return (fd, .failure(ControlError(message, closing: true)))
    }

    // MARK: - Output

    /// Queues `line` for one client (after the events it is owed) and writes what it takes now.
    func send(_ fd: Int32, _ line: String) {
        guard clients[fd] != nil else { return }
        clients[fd]!.output.queueReply(Array(line.utf8), logEnd: log.end)
        flush(fd)
        enforceBufferLimit(fd)
    }

    /// From now on the client receives every event (its snapshot, sent before, comes first).
    func subscribe(_ fd: Int32) {
        guard let client = clients[fd], !client.output.isSubscribed else { return }
        clients[fd]!.output.subscribe(logEnd: log.end)
        subscriberCount += 1
    }

    /// Adds an event line to every subscriber's stream; `finishPass()` writes it out.
    func broadcast(_ line: String) {
        guard subscriberCount > 0 else { return }
        log.append(line.utf8)
    }

    /// After a pass's requests are answered and its events broadcast: writes the new events to
    /// the subscribers, drops those owed more than the limit, closes the clients whose last
    /// request is answered, and forgets what every subscriber has been sent.
    func finishPass() {
        var oldest = log.end
        let now = Posix.monotonicNow()
        for fd in Array(clients.keys) {
            guard let client = clients[fd] else { continue }
            if let by = client.closeBy, now >= by {
                drop(fd, reason: nil)
                continue
            }
            if client.hangUp {
                clients[fd]!.hangUp = false
                clients[fd]!.closeAfterFlush = true
                flush(fd)
                continue
            }
            guard let cursor = client.output.cursor else { continue }
            if cursor < log.end { flush(fd) }
            enforceBufferLimit(fd)
            if let cursor = clients[fd]?.output.cursor { oldest = min(oldest, cursor) }
        }
        log.discard(before: oldest)
    }

    /// Writes what the socket takes now, and closes a client that was only waiting for that.
    private func flush(_ fd: Int32) {
        while let client = clients[fd], let chunk = client.output.next(in: log) {
            let written: Int
            do { written = try Posix.writeSome(fd, chunk) } catch {
                drop(fd, reason: nil)  // the client went away
                return
            }
            clients[fd]!.output.wrote(written, of: chunk)
            if written < chunk.count { return }  // full: POLLOUT says when it takes more
        }
        if let client = clients[fd], client.closeAfterFlush { drop(fd, reason: nil) }
    }

    /// The earliest time a dropped client's grace ends (for the master's poll timeout).
    var nextDeadline: Double? { clients.values.compactMap(\.closeBy).min() }

    /// A client owed more than the limit loses what it is owed; only a last line saying why is
    /// left for it, and the connection closes once that is read or after `lastLineGrace`.
    private func enforceBufferLimit(_ fd: Int32) {
        guard let client = clients[fd], client.closeBy == nil else { return }
        let owed = client.output.pending(logEnd: log.end)
        guard owed > limits.bufferLimit else { return }
        let why =
            "dropped: \(owed) bytes of replies and events not read (control_buffer_limit \(limits.bufferLimit)); "
            + "connect again for a fresh snapshot"
        if client.output.isSubscribed {
            subscriberCount -= 1
            dropped.append(Dropped(pid: client.peer.pid, queued: owed, limit: limits.bufferLimit))
        } else {
            notices.append(
                "control client pid \(client.peer.pid) dropped: not reading, \(owed) bytes queued "
                    + "(control_buffer_limit \(limits.bufferLimit))")
        }
        // After a partial line, the last line starts on a line of its own.
        var last = ControlOutput()
        last.queueReply(
            Array(((client.output.endsMidLine ? "\n" : "") + ControlError(why, closing: true).line).utf8),
            logEnd: log.end)
        clients[fd]!.output = last
        clients[fd]!.inbox.reset()
        clients[fd]!.mayHaveLines = false
        clients[fd]!.closeAfterFlush = true
        clients[fd]!.closeBy = Posix.monotonicNow() + Limits.lastLineGrace
        flush(fd)
    }

    private func drop(_ fd: Int32, reason: String?) {
        guard let client = clients.removeValue(forKey: fd) else { return }
        if client.output.isSubscribed { subscriberCount -= 1 }
        // Closing with unread input makes the kernel reset the connection, and the peer loses
        // the replies it has not read yet: discard what is already there first (bounded).
        for _ in 0..<16 {
            guard let chunk = try? Posix.read(fd, max: 65_536), !chunk.isEmpty else { break }
        }
        Posix.close(fd)
        if let reason { notices.append("control client pid \(client.peer.pid) dropped: \(reason)") }
    }
}

#if canImport(Glibc)
import Glibc
#endif
