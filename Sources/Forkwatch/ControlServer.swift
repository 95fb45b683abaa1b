import ForkwatchCore

/// The master's control socket: a Unix stream socket in a 0700 directory, mode 0600, the peer's
/// uid checked with SO_PEERCRED, newline-delimited JSON. Non-blocking and driven by the
/// master's poll loop: a client that stops reading fills its bounded outbox and is dropped,
/// never blocking the master.
final class ControlServer {
    struct Client {
        let fd: Int32
        let peer: Posix.PeerCredentials
        var inbox = LineFramer(maxLineBytes: ControlRequest.maxLineBytes)
        var outbox: [UInt8] = []
        var outboxStart = 0
        var subscribed = false
        /// Close once the outbox is flushed (after a refusal).
        var closeAfterFlush = false
        /// Close after the replies to this read's requests (a line over the limit ends the session).
        var hangUpAfterReplies = false
        /// The client shut its writing side: its requests are still answered (and a subscriber
        /// keeps receiving events) until it closes for good.
        var inputEnded = false

        var pending: Int { outbox.count - outboxStart }
    }

    /// What a client may have queued before it counts as stalled and is dropped.
    let outboxLimit: Int

    let path: String
    private let listenFD: Int32
    /// `PATH.lock`, held (flock) for as long as this master serves `path`: the one master per path.
    private let lockFD: Int32
    private(set) var clients: [Int32: Client] = [:]
    /// Notices for the master to emit (a refused or dropped client).
    private(set) var notices: [String] = []

    var subscriberCount: Int { clients.values.filter(\.subscribed).count }

    /// Binds `path`, replacing a stale socket left by a master that died. One master per path:
    /// the lock `PATH.lock` is taken before anything else (runit's and s6's rule), so two masters
    /// started together cannot both find the path stale; the second is refused, naming the first.
    init(path: String, outboxLimit: Int = 8 << 20) throws(PosixError) {
        self.path = path
        self.outboxLimit = outboxLimit
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
        for client in clients.values {
            _ = try? Posix.writeSome(client.fd, client.outbox[client.outboxStart...])
            Posix.close(client.fd)
        }
        clients.removeAll()
        Posix.close(listenFD)
        Posix.unlink(path)
        Posix.close(lockFD)  // after the unlink: the next master finds the path free
    }

    func takeNotices() -> [String] {
        defer { notices.removeAll() }
        return notices
    }

    /// The fds to poll and what to wait for on each (a client whose input has ended is watched
    /// only for writing; POLLHUP still reports it gone).
    var pollSet: [(fd: Int32, events: Int16)] {
        if let until = acceptPausedUntil, Posix.monotonicNow() >= until { acceptPausedUntil = nil }
        let listening: [(fd: Int32, events: Int16)] = acceptPausedUntil == nil ? [(listenFD, Int16(POLLIN))] : []
        return listening
            + clients.values.map {
                ($0.fd, ($0.inputEnded ? 0 : Int16(POLLIN)) | ($0.pending > 0 ? Int16(POLLOUT) : 0))
            }
    }

    /// Handles readiness on one of `pollSet`'s fds; returns complete requests (or parse errors).
    func handle(fd: Int32, revents: Int16) -> [(client: Int32, request: Result<ControlRequest, ControlError>)] {
        if fd == listenFD {
            acceptAll()
            return []
        }
        guard let client = clients[fd] else { return [] }
        if revents & Int16(POLLOUT) != 0 { flush(fd) }
        if client.inputEnded {
            if revents & Int16(POLLHUP | POLLERR) != 0 { drop(fd, reason: nil) }
            return []
        }
        guard clients[fd] != nil, revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 else { return [] }
        return read(fd)
    }

    /// After accept4 failed for want of file descriptors, the listening socket is left out of
    /// the poll set until then: polling it again at once would spin (it stays readable).
    private(set) var acceptPausedUntil: Double?

    private func acceptAll() {
        while true {
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
            clients[fd] = Client(fd: fd, peer: peer)
            if peer.uid != Posix.effectiveUID() {
                notices.append(
                    "control client pid \(peer.pid) refused: uid \(peer.uid) is not the master's uid \(Posix.effectiveUID())"
                )
                clients[fd]!.closeAfterFlush = true
                send(
                    fd,
                    ControlError(
                        "permission denied: uid \(peer.uid) may not control a master of uid \(Posix.effectiveUID())"
                    ).line)
            }
        }
    }

    private func read(_ fd: Int32) -> [(client: Int32, request: Result<ControlRequest, ControlError>)] {
        var requests: [(client: Int32, request: Result<ControlRequest, ControlError>)] = []
        while let client = clients[fd], !client.closeAfterFlush {
            let chunk: [UInt8]?
            do { chunk = try Posix.read(fd, max: 8192) } catch {
                drop(fd, reason: "read failed: \(error)")
                break
            }
            guard let chunk else { break }  // EAGAIN
            if chunk.isEmpty {
                // EOF on input: answer what was asked, then close unless it subscribed.
                clients[fd]!.inputEnded = true
                if !clients[fd]!.subscribed { clients[fd]!.hangUpAfterReplies = true }
                break
            }
            clients[fd]!.inbox.append(chunk)
            while let next = clients[fd]?.inbox.next() {
                let line: String
                switch next {
                case .success(let text): line = text
                case .failure(let tooLong):
                    return hangUp(
                        fd, requests,
                        "request line of \(tooLong.length) bytes is over the \(ControlRequest.maxLineBytes)-byte limit")
                }
                if line.allSatisfy({ $0 == " " || $0 == "\r" }) { continue }
                requests.append((fd, ControlRequest.parse(line)))
            }
            if clients[fd]?.inbox.isOverLimit == true {
                return hangUp(fd, requests, "request line over the \(ControlRequest.maxLineBytes)-byte limit")
            }
        }
        return requests
    }

    /// The requests read so far, then this error; the connection closes once they are answered.
    private func hangUp(
        _ fd: Int32, _ requests: [(client: Int32, request: Result<ControlRequest, ControlError>)],
        _ message: String
    ) -> [(client: Int32, request: Result<ControlRequest, ControlError>)] {
        clients[fd]?.inbox.reset()
        clients[fd]?.hangUpAfterReplies = true
        return requests + [(fd, .failure(ControlError(message)))]
    }

    /// Called after a read's requests are answered.
    func finishReplies(_ fd: Int32) {
        guard let client = clients[fd], client.hangUpAfterReplies else { return }
        // A subscriber that closed its writing side still reads the event stream.
        if client.inputEnded && client.subscribed {
            clients[fd]!.hangUpAfterReplies = false
            return
        }
        clients[fd]!.closeAfterFlush = true
        if client.pending == 0 { drop(fd, reason: nil) }
    }

    /// Queues `line` for one client and writes what the socket takes now.
    func send(_ fd: Int32, _ line: String) {
        guard clients[fd] != nil else { return }
        clients[fd]!.outbox += Array(line.utf8)
        if clients[fd]!.pending > outboxLimit {
            drop(fd, reason: "not reading: \(clients[fd]!.pending) bytes queued (limit \(outboxLimit))")
            return
        }
        flush(fd)
    }

    func subscribe(_ fd: Int32) { clients[fd]?.subscribed = true }

    /// Sends an event line to every subscriber.
    func broadcast(_ line: String) {
        for (fd, client) in clients where client.subscribed { send(fd, line) }
    }

    private func flush(_ fd: Int32) {
        guard let client = clients[fd], client.pending > 0 else { return }
        do {
            let written = try Posix.writeSome(fd, client.outbox[client.outboxStart...])
            clients[fd]!.outboxStart += written
            if clients[fd]!.pending == 0 {
                clients[fd]!.outbox.removeAll(keepingCapacity: true)
                clients[fd]!.outboxStart = 0
                if client.closeAfterFlush { drop(fd, reason: nil) }
            } else if clients[fd]!.outboxStart > 1 << 20 {
                clients[fd]!.outbox.removeFirst(clients[fd]!.outboxStart)
                clients[fd]!.outboxStart = 0
            }
        } catch {
            drop(fd, reason: nil)  // the client went away
        }
    }

    private func drop(_ fd: Int32, reason: String?) {
        guard let client = clients.removeValue(forKey: fd) else { return }
        // Closing with unread input makes the kernel reset the connection, and the peer loses
        // the replies it has not read yet: discard what is already there first (bounded).
        for _ in 0..<64 {
            guard let chunk = try? Posix.read(fd, max: 65_536), !chunk.isEmpty else { break }
        }
        Posix.close(fd)
        if let reason { notices.append("control client pid \(client.peer.pid) dropped: \(reason)") }
    }
}

#if canImport(Glibc)
import Glibc
#endif
