import ForkwatchCore
import ForkwatchRPC
import Foundation
import Glibc
import Testing

/// RPC on the embedded transport across 4 forked scheduler workers: a real master, real
/// workers consuming from the services database, a client in this process.
@Suite struct RPCEmbeddedTests {
    let directory: String
    let database: String

    init() throws {
        directory = NSTemporaryDirectory() + "forkwatch-rpc-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        database = directory + "/db.sqlite"
    }

    private func startSchedulers(
        _ workers: Int = 4
    ) throws -> (LaunchedMaster, Set<Int32>, RPCClient, EmbeddedTransport) {
        let master = try LaunchedMaster([
            "--workers", "\(workers)", "--db", database, "--periodic-fuzzy-delay", "0", "scheduler",
        ])
        let pids = Set(try master.waitForReady(workers))
        // A worker is ready once its RPC server consumes (start() returns after it started).
        let transport = try EmbeddedTransport(path: database)
        let client = RPCClient(transport: transport, target: RPCTarget(topic: "scheduler", version: "4.0"), timeout: 10)
        return (master, pids, client, transport)
    }

    /// The latest `rpc_stats` of each worker, as handled counts for `method`.
    private func handled(_ master: LaunchedMaster, _ method: String) -> [Int32: Int] {
        var latest: [Int32: Int] = [:]
        for event in master.all("rpc_stats") {
            let pid = Int32(event["pid"] as? Int ?? 0)
            let methods = event["methods"] as? [[String: Any]] ?? []
            if let entry = methods.first(where: { $0["method"] as? String == method }) {
                latest[pid] = entry["handled"] as? Int ?? 0
            }
        }
        return latest
    }

    private func waitForHandled(
        _ master: LaunchedMaster, _ method: String, atLeast total: Int, timeout: Double = 60
    ) throws -> [Int32: Int] {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let counts = handled(master, method)
            if counts.values.reduce(0, +) >= total { return counts }
            _ = try? master.waitFor("rpc_stats", timeout: 1)
        }
        throw TestFailure(
            "\(method): handled \(handled(master, method)) of \(total) within \(timeout) s\nlog:\n\(master.log.suffix(2000))"
        )
    }

    @Test func tenThousandCastsAreEachHandledOnceByCompetingWorkers() throws {
        let (master, pids, client, transport) = try startSchedulers()
        let total = 10_000
        try client.castMany("update_instance_info", args: (0..<total).map { ["host_name": .string("compute-\($0)")] })
        let counts = try waitForHandled(master, "update_instance_info", atLeast: total)
        // Every message acknowledged (deleted after handling) and the sum is exactly the number
        // sent: a message handled twice would push the sum over, one never handled would stay.
        #expect(Proc.eventually(timeout: 10) { (try? transport.depth()) == 0 })
        #expect(handled(master, "update_instance_info").values.reduce(0, +) == total)
        #expect(Set(counts.keys).isSubset(of: pids))
        // Which workers took them is up to who wins SQLite's write lock (not fair: one worker
        // may take nearly all); that another takes over when one dies is the kill test's.
        #expect(!counts.isEmpty)
        #expect(master.all("exit").isEmpty)
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
    }

    @Test func aFanoutReachesEveryWorkerAndACallComesBack() throws {
        let (master, pids, client, _) = try startSchedulers()
        try client.prepare(fanout: true).cast("sync_instance_info", args: ["host_name": .string("compute-1")])
        let counts = try waitForHandled(master, "sync_instance_info", atLeast: pids.count)
        #expect(Set(counts.keys) == pids, "every worker got its copy: \(counts)")
        #expect(counts.values.allSatisfy { $0 == 1 })

        let result = try client.call(
            "select_destinations", context: ["request_id": .string("req-1")],
            args: ["instance_name": .string("web-1"), "num_instances": .number(2)])
        let hosts = try #require(result.array)
        #expect(hosts.count == 2)
        #expect(hosts.first?["instance"]?.string == "web-1-1")
        #expect(hosts.first?["scheduler_pid"]?.int32.map(pids.contains) == true)
        // The version-1.0 endpoint: a client naming no version, and the context round trip.
        let echo = try client.prepare(version: "1.0").call(
            "echo", context: ["user": .string("alice")], args: ["a": .number(1)])
        #expect(echo["args"]?["a"]?.int == 1)
        #expect(echo["ctxt"]?["user"]?.string == "alice")
        #expect(echo["ctxt"]?["client_timeout"] == .null)
        // A call aimed at one host's servers (topic.host): this machine's name is the host.
        var name = [CChar](repeating: 0, count: 256)
        gethostname(&name, name.count)
        let host = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        #expect(try client.prepare(server: host).call("select_destinations").array?.first?["host"]?.string == host)
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
    }

    @Test func faultsComeBackAsFailuresAndNeverKillAWorker() throws {
        let (master, _, client, transport) = try startSchedulers(2)
        func failure(_ body: () throws -> JSONValue) -> RPCFailure? {
            do {
                _ = try body()
                return nil
            } catch {
                if case .remote(let failure)? = error as? RPCError { return failure }
                return nil
            }
        }
        #expect(failure { try client.call("no_such_method") }?.className == "NoSuchMethod")
        #expect(
            failure { try client.call("select_destinations", args: ["colour": .string("red")]) }?.className
                == "TypeError")
        #expect(
            failure { try client.prepare(version: "5.0").call("select_destinations") }?.className
                == "UnsupportedVersion")
        #expect(failure { try client.call("_private") }?.className == "NoSuchMethod")
        let valueError = failure { try client.prepare(version: "1.0").call("fail", args: ["msg": .string("kaboom")]) }
        #expect(
            valueError?.className == "ValueError" && valueError?.module == "builtins" && valueError?.message == "kaboom"
        )
        // Not JSON (rejected), a cast without a method and one of an unknown method (failed): logged.
        try transport.publish(to: "scheduler", body: "not json at all")
        try transport.publish(to: "scheduler", body: #"{"oslo.version": "2.0", "oslo.message": "{\"args\": {}}"}"#)
        try client.cast("no_such_cast")
        #expect(Proc.eventually(timeout: 10) { (try? transport.depth(of: "scheduler")) == 0 })
        #expect(master.log.contains("skipping it"))
        // Still serving, nobody died.
        #expect(try client.prepare(version: "1.0").call("echo")["pid"] != nil)
        #expect(master.all("exit").isEmpty)
        // A topic nobody serves: a timeout, with oslo's message.
        let nobody = RPCClient(transport: client.transport, target: RPCTarget(topic: "nobody"), timeout: 0.5)
        do {
            _ = try nobody.call("ping")
            Issue.record("a call to a topic nobody serves returned")
        } catch {
            guard case .timeout(let message) = error else {
                Issue.record("expected a timeout, got \(error)")
                return
            }
            #expect(message.hasPrefix("Timed out waiting for a reply to message ID "))
        }
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
    }

    /// `forkwatch rpc call --namespace`: a method of an endpoint with a namespace (nova's
    /// `baseapi` ping) is reachable from the command line, and only with its namespace.
    @Test func theCLICallsAMethodOfANamespacedEndpoint() throws {
        let (master, _, _, _) = try startSchedulers(1)
        let ping = try runToCompletion(
            [
                forkwatchBinary, "rpc", "call", "--db", database, "--namespace", "baseapi", "--version", "1.1",
                "--timeout", "10", "scheduler", "ping", #"{"arg": "hi"}"#,
            ], timeout: 30)
        #expect(ping.status == 0, "\(ping.output)")
        let result = try JSONValue.parse(try #require(ping.output.split(separator: "\n").last.map(String.init)))
        #expect(result == .object(["service": .string("scheduler"), "arg": .string("hi")]), "\(ping.output)")
        let without = try runToCompletion(
            [
                forkwatchBinary, "rpc", "call", "--db", database, "--version", "1.1", "--timeout", "10", "scheduler",
                "ping", #"{"arg": "hi"}"#,
            ], timeout: 30)
        #expect(without.status == 1 && without.output.contains("UnsupportedVersion"), "\(without.output)")
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
    }

    @Test func aWorkerKilledMidStreamLosesNoCast() throws {
        let (master, pids, client, transport) = try startSchedulers()
        let total = 3000
        try client.castMany("update_instance_info", args: (0..<total).map { ["host_name": .string("c\($0)")] })
        // Kill the busiest worker while the queue is still being worked through.
        let early = try waitForHandled(master, "update_instance_info", atLeast: 200)
        let victim = try #require(early.max(by: { $0.value < $1.value })?.key ?? pids.first)
        kill(victim, SIGKILL)
        try master.waitFor("exit") { $0["pid"] as? Int == Int(victim) }
        // Whatever the dead worker had claimed is given back and handled by the others: the
        // queue drains completely (nothing claimed by the dead pid stays behind).
        #expect(
            Proc.eventually(timeout: 30) { (try? transport.depth()) == 0 },
            "left: \((try? transport.depth()) ?? -1)")
        #expect(master.all("exit").count == 1)
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
    }

    /// transport_url names a broker that is not there: the workers start anyway, say so in the
    /// event stream, and keep trying (they would find it when it comes).
    @Test func aBrokerDownAtStartGivesNoticesAndTheWorkersStayUp() throws {
        // A port nobody listens on: bound, then closed.
        let probe = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(probe, $0, length) }
        }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(probe, $0, &length) }
        }
        close(probe)
        let port = UInt16(bigEndian: address.sin_port)
        let config = directory + "/down.yaml"
        try
            "transport_url: rabbit://guest:guest@127.0.0.1:\(port)/\ndatabase: \(database)\nservices:\n  scheduler:\n    workers: 2\n"
            .write(toFile: config, atomically: true, encoding: .utf8)
        let master = try LaunchedMaster(["--config", config])
        try master.waitForReady(2)
        let notice = try master.waitFor("notice", timeout: 10) {
            ($0["message"] as? String)?.contains("unreachable") == true
        }
        #expect((notice["message"] as? String)?.contains("Trying again in") == true, "\(notice)")
        usleep(1_500_000)
        #expect(master.all("exit").isEmpty, "the workers stay up while the broker is away")
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
    }
}
