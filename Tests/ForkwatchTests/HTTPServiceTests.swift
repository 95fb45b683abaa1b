import Forkwatch
import ForkwatchCore
import Foundation
import Glibc
import Testing

/// The `api` service end to end: a real master, forked workers serving on the socket it bound,
/// real TCP clients.
@Suite struct HTTPServiceTests {
    let directory: String

    init() throws {
        directory = NSTemporaryDirectory() + "forkwatch-http-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    /// A config file for `api` on a free loopback port with these extra service options.
    private func config(
        _ options: [String: String] = [:], workers: Int = 2, top: String = "", scheduler: Bool = false,
        listen: String = "127.0.0.1"
    ) throws -> String {
        let path = directory + "/forkwatch-\(UUID().uuidString.prefix(6)).yaml"
        var text =
            "database: \(directory)/db.sqlite\n\(top)services:\n  api:\n    workers: \(workers)\n    listen: \(listen)\n    port: 0\n"
        for (key, value) in options.sorted(by: { $0.key < $1.key }) { text += "    \(key): \(value)\n" }
        if scheduler { text += "  scheduler:\n    workers: 2\n" }
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    private func start(_ configPath: String, workers: Int = 2) throws -> (LaunchedMaster, UInt16, Set<Int32>) {
        let master = try LaunchedMaster(["--config", configPath])
        let listening = try master.waitFor("listening")
        let port = try #require((listening["address"] as? String)?.split(separator: ":").last.flatMap { UInt16($0) })
        let pids = Set(try master.waitForReady(workers, service: "api"))
        return (master, port, pids)
    }

    @Test func requestsReachEveryWorkerAndEachResponseNamesItsWorker() throws {
        let (master, port, pids) = try start(try config(scheduler: true))
        // The scheduler's readies may have come before the api's: look at every event read so far.
        let deadline = Date().addingTimeInterval(15)
        while master.all("ready").filter({ $0["service"] as? String == "scheduler" }).count < 2 && Date() < deadline {
            _ = try? master.waitFor("ready", timeout: 0.2)
        }
        var answered = Set<Int32>()
        for _ in 0..<40 where answered != pids {
            let response = try HTTPConnection.get(port, "/healthcheck")
            #expect(response.status == 200 && response.body == "OK")
            answered.insert(try #require(response.workerPid))
        }
        #expect(answered == pids, "answered by \(answered), workers \(pids)")
        // The compute API's servers live in the shared database: one created through one worker
        // is listed by every worker.
        let connection = try HTTPConnection(port: port)
        let body = #"{"server": {"name": "web-1", "flavorRef": "1"}}"#
        try connection.send(
            "POST /v2.1/servers HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
        )
        let created = try connection.readResponse()
        #expect(created.status == 202, "\(created.body)")
        // The API called the scheduler (select_destinations over RPC): the server is ACTIVE on a host.
        #expect(created.body.contains("\"status\":\"ACTIVE\""), "\(created.body)")
        #expect(created.body.contains("forkwatch:scheduler_pid"))
        var listedBy = Set<Int32>()
        for _ in 0..<40 where listedBy != pids {
            let list = try HTTPConnection.get(port, "/v2.1/servers")
            #expect(list.status == 200 && list.body.contains("web-1"))
            if let pid = list.workerPid { listedBy.insert(pid) }
        }
        #expect(listedBy == pids)
        #expect(try HTTPConnection.get(port, "/openstack/latest/meta_data.json").status == 200)
        // The start-up log names the URL.
        #expect(master.log.contains("listening on http://127.0.0.1:\(port)/"), "\(master.log)")
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
    }

    /// A scale up reaches the workers: the new worker is forked with the live spec and the old
    /// one reads the new count from the accept lock, so both hand connections to each other.
    /// (Once, new workers read the worker count of the configuration the master started with,
    /// and the first worker, forked alone, kept every connection.)
    @Test func afterAScaleUpConnectionsAlternateBetweenTheWorkers() throws {
        let (master, port, first) = try start(try config(workers: 1), workers: 1)
        var client: ControlClient?
        for _ in 0..<500 where client == nil {
            client = try? ControlClient(path: master.socketPath)
            if client == nil { usleep(10_000) }
        }
        _ = try #require(client).request(.scale(service: "api", workers: 2))
        let second = try master.waitFor("ready") {
            $0["service"] as? String == "api" && !first.contains(Int32($0["pid"] as? Int ?? 0))
        }
        let pids = first.union([Int32(try #require(second["pid"] as? Int))])
        var answeredBy: [Int32] = []
        for _ in 0..<40 {
            let response = try HTTPConnection.get(port, "/healthcheck")
            #expect(response.status == 200)
            answeredBy.append(try #require(response.workerPid))
        }
        let counts = pids.map { pid in answeredBy.filter { $0 == pid }.count }
        // Each worker takes its turn: neither answers fewer than a quarter of 40 new connections.
        #expect(counts.allSatisfy { $0 >= 10 }, "answered by \(answeredBy), workers \(pids)")
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
    }

    @Test func malformedRequestsAndOverlongLinesAreRefused() throws {
        let (master, port, pids) = try start(try config(["max_header_line": "1024"]))
        func raw(_ bytes: String) throws -> HTTPConnection.Response {
            let connection = try HTTPConnection(port: port)
            try connection.send(bytes)
            let response = try connection.readResponse()
            #expect(connection.closedByServer(within: 5), "a refused request's connection is closed")
            return response
        }
        let garbage = try raw("NOT HTTP AT ALL\r\n\r\n")
        #expect(garbage.status == 400)
        #expect(garbage.workerPid.map(pids.contains) == true)
        let longHeader = try raw(
            "GET /healthcheck HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 2000))\r\n\r\n")
        #expect([400, 431].contains(longHeader.status))
        #expect(longHeader.workerPid != nil)
        let longTarget = try raw("GET /\(String(repeating: "b", count: 2000)) HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect([400, 414, 431].contains(longTarget.status))
        let badJSON = try HTTPConnection(port: port)
        try badJSON.send("POST /v2.1/servers HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n{oops")
        let refused = try badJSON.readResponse()
        #expect(refused.status == 400 && refused.body.contains("badRequest"))
        // Still serving, no worker lost.
        #expect(try HTTPConnection.get(port, "/healthcheck").status == 200)
        #expect(master.all("exit").isEmpty)
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
    }

    @Test func aClientThatSendsNothingIsClosedAfterClientSocketTimeout() throws {
        let (master, port, _) = try start(try config(["client_socket_timeout": "1"]))
        let silent = try HTTPConnection(port: port)
        #expect(silent.closedByServer(within: 10))
        // An active keep-alive client is not cut off by the same timer.
        let busy = try HTTPConnection(port: port)
        for _ in 0..<3 {
            try busy.send("GET /healthcheck HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try busy.readResponse().status == 200)
            usleep(300_000)
        }
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
    }

    @Test func poolSizeCapsTheConnectionsOfAWorker() throws {
        let (master, port, _) = try start(try config(["pool_size": "1"], workers: 1), workers: 1)
        let first = try HTTPConnection(port: port)
        try first.send("GET /healthcheck HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try first.readResponse().status == 200)
        // The second connection waits in the kernel's queue while the first is open ...
        let second = try HTTPConnection(port: port)
        try second.send("GET /healthcheck HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(throws: TestFailure.self) { try second.readResponse(timeout: 0.5) }
        // ... and is served once it closes.
        try first.send("GET /healthcheck HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(try first.readResponse().status == 200)
        #expect(try second.readResponse().status == 200)
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
    }

    @Test func gracefulStopFinishesTheRequestInFlightAndClosesIdleConnections() throws {
        let (master, port, _) = try start(try config())
        let idle = try HTTPConnection(port: port)
        try idle.send("GET /healthcheck HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try idle.readResponse().status == 200)
        // A request half sent: its head and part of its body (a flavor that does not exist: the
        // answer comes from the API alone, 400).
        let body = #"{"server": {"name": "in-flight", "flavorRef": "99"}}"#
        let inFlight = try HTTPConnection(port: port)
        try inFlight.send(
            "POST /v2.1/servers HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body.prefix(10))")
        usleep(200_000)
        master.signal(SIGTERM)
        usleep(200_000)
        try inFlight.send(String(body.dropFirst(10)))
        let response = try inFlight.readResponse()
        #expect(response.status == 400 && response.body.contains("Flavor 99"), "\(response.body)")
        #expect(response.headers["connection"] == "close")
        #expect(inFlight.closedByServer(within: 5))
        #expect(idle.closedByServer(within: 5))
        #expect(try master.waitExit() == 0)
        #expect(master.all("exit").allSatisfy { $0["code"] as? Int == 0 }, "\(master.all("exit"))")
    }

    /// Requests in a loop on keep-alive connections (reconnecting when told to close) while the
    /// master does two rolling restarts: every request gets a 200.
    @Test func aRollingRestartUnderASteadyRequestLoopLosesNothing() throws {
        let (master, port, firstPids) = try start(try config())
        final class Tally: @unchecked Sendable {
            let lock = NSLock()
            var ok = 0, failures: [String] = [], pids = Set<Int32>(), stop = false
        }
        let tally = Tally()
        let done = DispatchSemaphore(value: 0)
        for _ in 0..<2 {
            Thread.detachNewThread {
                var connection: HTTPConnection?
                while !tally.lock.withLock({ tally.stop }) {
                    do {
                        if connection == nil { connection = try HTTPConnection(port: port) }
                        try connection!.send("GET /healthcheck HTTP/1.1\r\nHost: x\r\n\r\n")
                        let response = try connection!.readResponse()
                        tally.lock.withLock {
                            if response.status == 200 {
                                tally.ok += 1
                            } else {
                                tally.failures.append("status \(response.status)")
                            }
                            if let pid = response.workerPid { tally.pids.insert(pid) }
                        }
                        if response.headers["connection"] == "close" { connection = nil }
                    } catch {
                        tally.lock.withLock { tally.failures.append("\(error)") }
                        connection = nil
                    }
                }
                done.signal()
            }
        }
        usleep(300_000)
        for _ in 0..<2 {
            master.signal(SIGHUP)
            _ = try master.waitForReady(2, service: "api")
            usleep(300_000)
        }
        tally.lock.withLock { tally.stop = true }
        done.wait()
        done.wait()
        let (ok, failures, pids) = tally.lock.withLock { (tally.ok, tally.failures, tally.pids) }
        #expect(failures.isEmpty, "\(failures.count) failed: \(failures.prefix(5))")
        #expect(ok > 50)
        #expect(pids.count > firstPids.count, "served by the old and the new workers: \(pids)")
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
    }

    @Test func tlsServesOverACertificateMadeHereAndABadOneStopsTheStart() throws {
        let cert = directory + "/cert.pem"
        let key = directory + "/key.pem"
        let made = try runToCompletion([
            "/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
            "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
        ])
        try #require(made.status == 0, "openssl: \(made.output)")
        let (master, port, _) = try start(try config(["cert_file": cert, "key_file": key]))
        #expect(master.log.contains("listening on https://127.0.0.1:\(port)/"))
        let client = """
            import socket, ssl, sys
            context = ssl.create_default_context(cafile=sys.argv[2])
            context.check_hostname = False
            with context.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1])))) as s:
                s.sendall(b"GET /healthcheck HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
                data = b""
                while chunk := s.recv(4096):
                    data += chunk
            print(data.decode())
            """
        let reply = try runToCompletion(["/usr/bin/python3", "-c", client, String(port), cert])
        #expect(reply.status == 0, "\(reply.output)")
        #expect(reply.output.hasPrefix("HTTP/1.1 200 OK"), "\(reply.output)")
        #expect(reply.output.contains("X-Worker-Pid: "))
        // Plain HTTP to the TLS port is not served.
        #expect((try? HTTPConnection.get(port, "/healthcheck"))?.status != 200)
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)

        // A certificate that is not one: a clear error before any fork.
        let bogus = directory + "/bogus.pem"
        try "not a certificate\n".write(toFile: bogus, atomically: true, encoding: .utf8)
        for (certFile, keyFile, expected) in [
            (bogus, key, "cert_file \(bogus)"), (cert, bogus, "key_file \(bogus)"),
            (directory + "/missing.pem", key, "cert_file \(directory)/missing.pem"),
        ] {
            let refused = try LaunchedMaster(["--config", try config(["cert_file": certFile, "key_file": keyFile])])
            #expect(try refused.waitExit() == 2)
            #expect(refused.log.contains(expected), "\(refused.log)")
            #expect(refused.all("fork").isEmpty)
        }
    }

    // MARK: Bounds

    /// A worker at its fd limit (the master started under `ulimit -n 96`, 150 connections
    /// opened): it backs off instead of spinning (once: 140 % CPU, no log line, no answer), says
    /// so at most once a second, and serves again as soon as the connections close.
    @Test func atItsFdLimitAWorkerBacksOffQuietlyAndServesAgainWhenFdsFree() throws {
        let runDirectory = directory + "/run-\(UUID().uuidString.prefix(6))"  // the master makes it
        let master = try LaunchedMaster(
            [
                "-c", #"ulimit -n 96 && exec "$0" run --headless --events - --control-socket "$1" --config "$2""#,
                forkwatchBinary, runDirectory + "/ctl.sock", try config(workers: 1),
            ],
            events: false, binary: "/bin/sh")
        let listening = try master.waitFor("listening")
        let port = try #require((listening["address"] as? String)?.split(separator: ":").last.flatMap { UInt16($0) })
        let worker = try #require(try master.waitForReady(1, service: "api").first)
        #expect(
            try String(contentsOfFile: "/proc/\(worker)/limits", encoding: .utf8)
                .split(separator: "\n").contains { $0.hasPrefix("Max open files") && $0.contains(" 96 ") })

        // More connections than the worker has fds: the rest wait in the kernel's queue (backlog 128).
        var connections = try (0..<150).map { _ in try HTTPConnection(port: port) }
        let backOffLine = "cannot accept: Too many open files (EMFILE"
        #expect(Proc.eventually(timeout: 10) { master.log.contains(backOffLine) }, "\(master.log.suffix(2000))")
        let waiting = try HTTPConnection(port: port)
        try waiting.send("GET /healthcheck HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")

        // Two seconds at the limit: next to no CPU, and a line a second at most.
        let linesBefore = master.log.components(separatedBy: backOffLine).count - 1
        let ticksBefore = try cpuTicks(of: worker)
        let start = Date()
        usleep(2_000_000)
        let seconds = Date().timeIntervalSince(start)
        let cpu = Double(try cpuTicks(of: worker) - ticksBefore) / Double(sysconf(Int32(_SC_CLK_TCK))) / seconds
        let lines = master.log.components(separatedBy: backOffLine).count - 1 - linesBefore
        print(
            "worker at its fd limit: \(String(format: "%.1f", cpu * 100)) % CPU, \(lines) back-off lines in \(String(format: "%.1f", seconds)) s"
        )
        #expect(cpu < 0.1, "worker CPU \(cpu * 100) % while backing off")
        #expect((1...3).contains(lines), "\(lines) back-off lines in \(seconds) s:\n\(master.log.suffix(2000))")
        #expect(throws: TestFailure.self) { try waiting.readResponse(timeout: 0.2) }

        // The fds free up: the request waiting in the queue is served within a second.
        let freed = Date()
        connections.removeAll()
        let response = try waiting.readResponse(timeout: 5)
        let servedAfter = Date().timeIntervalSince(freed)
        print("served \(String(format: "%.3f", servedAfter)) s after the connections closed")
        #expect(response.status == 200)
        #expect(servedAfter < 1, "served \(servedAfter) s after the fds were freed")
        #expect(Proc.eventually(timeout: 2) { master.log.contains("accepting again after") })
        #expect(try HTTPConnection.get(port, "/healthcheck").status == 200)
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
    }

    /// A head sent in part is answered 408 and closed after client_header_timeout; a connection
    /// that sent nothing is closed without a word; an idle keep-alive connection is not a
    /// half-sent head (client_socket_timeout governs it), but a head begun on it is.
    @Test func aHalfSentRequestHeadIsClosedAfterClientHeaderTimeout() throws {
        let (master, port, _) = try start(try config(["client_header_timeout": "1"]))
        let started = Date()
        let halfSent = try HTTPConnection(port: port)
        try halfSent.send("GET /healthcheck HTTP/1.1\r\nHost: x\r\n")  // no blank line: the head is not over
        let silent = try HTTPConnection(port: port)
        let keptAlive = try HTTPConnection(port: port)
        try keptAlive.send("GET /healthcheck HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try keptAlive.readResponse().status == 200)

        let response = try halfSent.readResponse(timeout: 5)
        let waited = Date().timeIntervalSince(started)
        #expect(response.status == 408)
        #expect(response.headers["connection"] == "close")
        #expect(waited > 0.8 && waited < 3, "408 after \(waited) s")
        #expect(halfSent.closedByServer(within: 2))
        #expect(silent.closedByServer(within: 2))

        // Idle past the header timeout between requests: still served.
        usleep(1_500_000)
        try keptAlive.send("GET /healthcheck HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try keptAlive.readResponse().status == 200)
        // A second head begun on it and left unfinished: 408 too.
        try keptAlive.send("GET /healthcheck HTTP/1.1\r\n")
        #expect(try keptAlive.readResponse(timeout: 5).status == 408)
        #expect(keptAlive.closedByServer(within: 2))
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
    }

    /// Listening beyond loopback with no authentication: one warning per start (the first worker
    /// says it, not each); none on 127.0.0.1.
    @Test func listeningOnEveryAddressWithoutAuthenticationIsWarnedAboutOnce() throws {
        let warning = "with no authentication"
        let (exposed, port, _) = try start(try config(listen: "0.0.0.0"))
        #expect(try HTTPConnection.get(port, "/healthcheck").status == 200)
        #expect(exposed.log.components(separatedBy: warning).count - 1 == 1, "\(exposed.log)")
        #expect(
            exposed.log.contains(
                "the API listens on 0.0.0.0:\(port) (every address of this host) with no authentication"))
        exposed.signal(SIGTERM)
        #expect(try exposed.waitExit() == 0)

        let (local, _, _) = try start(try config())
        #expect(local.log.contains("listening on http://127.0.0.1:"))
        #expect(!local.log.contains(warning), "\(local.log)")
        local.signal(SIGTERM)
        #expect(try local.waitExit() == 0)
    }

    /// utime + stime of `pid` in clock ticks (/proc/PID/stat fields 14 and 15).
    private func cpuTicks(of pid: Int32) throws -> Int {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        let fields = try #require(
            stat.lastIndex(of: ")").map { stat[stat.index($0, offsetBy: 2)...].split(separator: " ") })
        return (Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0)
    }
}
