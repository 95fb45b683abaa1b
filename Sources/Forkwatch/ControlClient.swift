import ForkwatchCore

#if canImport(Glibc)
import Glibc
#endif

/// A client of a master's control socket: sends request lines, reads reply and event lines.
/// Blocking by default (the CLI); the dashboard polls `fd` and calls `readLines()`.
public final class ControlClient {
    public let path: String
    public let fd: Int32
    private var lines = LineFramer()

    /// Connects and checks who answers (SO_PEERCRED): only a master of this user or of root is
    /// talked to, so a listener planted at the path by another user never sees a request nor
    /// fakes a reply.
    public init(path: String) throws(PosixError) {
        self.path = path
        fd = try Posix.connectUnix(path)
        let me = Posix.effectiveUID()
        let peer: Posix.PeerCredentials
        do { peer = try Posix.peerCredentials(fd) } catch {
            Posix.close(fd)
            throw error
        }
        guard peer.uid == me || peer.uid == 0 else {
            Posix.close(fd)
            throw PosixError(
                "refusing \(path): the process listening there (pid \(peer.pid)) runs as uid \(peer.uid), "
                    + "neither you (uid \(me)) nor root", errno: EPERM)
        }
    }

    deinit { Posix.close(fd) }

    public func send(_ request: ControlRequest) throws(PosixError) {
        try Posix.writeAll(fd, request.line)
    }

    /// The next line, waiting up to `timeout` seconds (nil = forever); nil at EOF or timeout.
    public func readLine(timeout: Double? = 10) throws(PosixError) -> String? {
        let deadline = timeout.map { Posix.monotonicNow() + $0 }
        while true {
            if case .success(let line) = lines.next() { return line }
            let left = deadline.map { max(0, $0 - Posix.monotonicNow()) }
            if let left, left <= 0 { return nil }
            let revents = try Posix.poll([fd], timeout: left)
            if revents[0] == 0 { continue }
            guard let chunk = try Posix.read(fd, max: 65_536) else { continue }
            if chunk.isEmpty { return nil }
            lines.append(chunk)
        }
    }

    /// The lines that have arrived, without waiting; `closed` once the master hung up.
    public func readAvailable() -> (lines: [String], closed: Bool) {
        var closed = false
        while true {
            guard let chunk = try? Posix.read(fd, max: 65_536) else { break }
            if chunk.isEmpty {
                closed = true
                break
            }
            lines.append(chunk)
            if chunk.count < 65_536 { break }
        }
        var complete: [String] = []
        while case .success(let line) = lines.next() { complete.append(line) }
        return (complete, closed)
    }

    /// Sends one request and returns its reply line, parsed; throws the master's error message.
    public func request(_ request: ControlRequest, timeout: Double = 10) throws -> JSONValue {
        try send(request)
        guard let line = try readLine(timeout: timeout) else {
            throw ControlError("no reply from the master at \(path) within \(Int(timeout)) s")
        }
        let reply = try JSONValue.parse(line)
        if reply["ok"]?.bool == false { throw ControlError(reply["error"]?.string ?? line) }
        return reply
    }
}
