import Forkwatch
import ForkwatchCore
import Foundation
import Glibc
import Testing

/// The socket the master binds once for a service, passed to commands the systemd way.
@Suite struct ListeningSocketTests {
    /// A socket-activated server: checks LISTEN_PID/LISTEN_FDS, answers each connection with its pid.
    static let server = """
        import os, socket
        assert os.environ.get("LISTEN_PID") == str(os.getpid()), "LISTEN_PID"
        assert os.environ.get("LISTEN_FDS") == "1", "LISTEN_FDS"
        s = socket.socket(fileno=3)
        while True:
            c, _ = s.accept()
            c.sendall(f"{os.getpid()} {os.environ.get('LISTEN_FDNAMES')}\\n".encode())
            c.close()
        """

    private func port(_ address: String) throws -> UInt16 {
        try #require(address.split(separator: ":").last.flatMap { UInt16($0) })
    }

    /// Connects to 127.0.0.1:port and reads one line.
    private func ask(_ port: UInt16) throws -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else { throw TestFailure("connect: \(String(cString: strerror(errno)))") }
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = read(fd, &buffer, buffer.count)
        return String(decoding: buffer[0..<max(0, n)], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func commandWorkersShareOneSocketPassedAsFd3() throws {
        let master = try LaunchedMaster([
            "--workers", "2", "--listen", "127.0.0.1", "--port", "0",
            "--", "/usr/bin/python3", "-c", Self.server,
        ])
        let listening = try master.waitFor("listening")
        #expect(listening["backlog"] as? Int == 128)
        let pids = Set(try master.waitForReady(2))
        let port = try port(try #require(listening["address"] as? String))
        // "ready" for a command means exec succeeded; python may not be in accept() yet, so ask
        // until both have answered (bounded), each answer from one of the workers.
        var answered = Set<Int32>()
        let deadline = Date().addingTimeInterval(10)
        while answered != pids && Date() < deadline {
            let reply = try ask(port).split(separator: " ")
            #expect(reply.count == 2 && reply[1] == "python3", "\(reply)")
            if let pid = reply.first.flatMap({ Int32($0) }) { answered.insert(pid) }
            usleep(10_000)
        }
        // Both workers accepted from the one kernel queue, and nobody else did.
        #expect(answered == pids, "answered by \(answered), workers \(pids)")
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
    }

    @Test func theAcceptQueueIsSampledWhileWatched() throws {
        // A program that never accepts: connections pile up in the kernel's queue.
        let master = try LaunchedMaster([
            "--workers", "1", "--listen", "127.0.0.1", "--port", "0", "--backlog", "8",
            "--", "/bin/sleep", "1000",
        ])
        let port = try port(try #require(try master.waitFor("listening")["address"] as? String))
        try master.waitForReady(1)
        var clients: [Int32] = []
        defer { clients.forEach { close($0) } }
        for _ in 0..<5 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let rc = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            #expect(rc == 0)
            clients.append(fd)
        }
        let queue = try master.waitFor("accept_queue", timeout: 10) { $0["depth"] as? Int == 5 }
        #expect(queue["limit"] as? Int == 8)
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
    }

    @Test func aPortInUseOrABadAddressIsAnErrorWithNothingForked() throws {
        let holder = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(holder) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(holder, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        listen(holder, 1)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(holder, $0, &length) }
        }
        let busy = UInt16(bigEndian: address.sin_port)
        for (arguments, expected) in [
            (["--listen", "127.0.0.1", "--port", "\(busy)"], "cannot bind 127.0.0.1:\(busy): Address already in use"),
            (["--listen", "999.1.1.1", "--port", "80"], "cannot resolve listen address '999.1.1.1'"),
            (["--port", "70000"], "--port must be 0-65535"),
            (["--backlog", "5"], "go with --port"),
        ] {
            let master = try LaunchedMaster(
                ["run", "--headless", "--control-socket", "none", "--events", "-"] + arguments
                    + ["--", "/bin/sleep", "1000"], events: false)
            #expect(try master.waitExit() == 2)
            #expect(master.log.contains(expected), "\(master.log)")
            #expect(master.log.split(separator: "\n").count == 1, "\(master.log)")
            #expect(!master.log.contains("fork →"))
        }
    }
}
