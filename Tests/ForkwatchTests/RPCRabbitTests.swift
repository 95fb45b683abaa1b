import ForkwatchCore
import ForkwatchRPC
import Foundation
import Glibc
import Testing

/// The RabbitMQ transport against a real broker (a private node the tests start), and interop
/// both ways with Python oslo.messaging 18.x from PyPI. Skipped, and saying so, when
/// rabbitmq-server is not installed (`.ci/run` installs it).
@Suite(
    .enabled(if: RabbitNode.installed, "skipped: rabbitmq-server not installed (apt-get install rabbitmq-server)"),
    .serialized)
struct RPCRabbitTests {
    let directory: String

    init() throws {
        directory = NSTemporaryDirectory() + "forkwatch-rpcmq-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    /// Scheduler workers on the broker, under a control exchange of this test's own.
    private func startSchedulers(_ url: String, workers: Int = 4) throws -> (LaunchedMaster, Set<Int32>, RPCClient) {
        let config = directory + "/forkwatch.yaml"
        try
            "transport_url: \(url)\ndatabase: \(directory)/db.sqlite\nperiodic_fuzzy_delay: 0\nservices:\n  scheduler:\n    workers: \(workers)\n"
            .write(toFile: config, atomically: true, encoding: .utf8)
        let master = try LaunchedMaster(["--config", config])
        let pids = Set(try master.waitForReady(workers))
        let client = RPCClient(
            transport: try RabbitTransport(url: url), target: RPCTarget(topic: "scheduler", version: "4.0"), timeout: 10
        )
        // Purge what an earlier test left on the shared node's queue.
        _ = try? RabbitNode.ctl(["purge_queue", "scheduler"])
        return (master, pids, client)
    }

    private func handled(_ master: LaunchedMaster, _ method: String) -> [Int32: Int] {
        var latest: [Int32: Int] = [:]
        for event in master.all("rpc_stats") {
            let methods = event["methods"] as? [[String: Any]] ?? []
            if let entry = methods.first(where: { $0["method"] as? String == method }) {
                latest[Int32(event["pid"] as? Int ?? 0)] = entry["handled"] as? Int ?? 0
            }
        }
        return latest
    }

    private func waitForHandled(
        _ master: LaunchedMaster, _ method: String, atLeast total: Int, timeout: Double = 90
    ) throws -> [Int32: Int] {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if handled(master, method).values.reduce(0, +) >= total { return handled(master, method) }
            _ = try? master.waitFor("rpc_stats", timeout: 1)
        }
        throw TestFailure("\(method): handled \(handled(master, method)) of \(total)\nlog:\n\(master.log.suffix(2000))")
    }

    /// `messages` and `messages_unacknowledged` of a queue on the broker.
    private func brokerDepth(_ queue: String) throws -> Int {
        let output = try RabbitNode.ctl([
            "list_queues", "name", "messages", "messages_unacknowledged", "--no-table-headers", "-q",
        ])
        for line in output.split(separator: "\n") {
            let fields = line.split(whereSeparator: { $0 == "\t" || $0 == " " })
            if fields.count == 3, fields[0] == queue { return (Int(fields[1]) ?? 0) + (Int(fields[2]) ?? 0) }
        }
        return -1
    }

    @Test func castsFanoutCallsAndTimeoutsOverTheBroker() throws {
        let url = try RabbitNode.url()
        let (master, pids, client) = try startSchedulers(url)
        let total = 10_000
        try client.castMany("update_instance_info", args: (0..<total).map { ["host_name": .string("c\($0)")] })
        let counts = try waitForHandled(master, "update_instance_info", atLeast: total)
        #expect(handled(master, "update_instance_info").values.reduce(0, +) == total, "each cast handled exactly once")
        #expect(counts.count >= 2, "competing consumers: \(counts)")
        #expect(Proc.eventually(timeout: 10) { (try? brokerDepth("scheduler")) == 0 })

        try client.prepare(fanout: true).cast("sync_instance_info", args: ["host_name": .string("c1")])
        let fanout = try waitForHandled(master, "sync_instance_info", atLeast: pids.count)
        #expect(Set(fanout.keys) == pids)

        let hosts = try client.call("select_destinations", args: ["instance_name": .string("web-1")])
        #expect(hosts.array?.first?["scheduler_pid"]?.int32.map(pids.contains) == true)
        do {
            _ = try RPCClient(transport: client.transport, target: RPCTarget(topic: "nobody"), timeout: 1).call("ping")
            Issue.record("a call to a topic nobody serves returned")
        } catch {
            guard case .timeout = error else {
                Issue.record("expected a timeout, got \(error)")
                return
            }
        }
        if case .remote(let failure)? = { () -> RPCError? in
            do {
                _ = try client.call("no_such_method")
                return nil
            } catch { return error as? RPCError }
        }() {
            #expect(failure.className == "NoSuchMethod")
        } else {
            Issue.record("no NoSuchMethod failure")
        }
        #expect(master.all("exit").isEmpty)
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
    }

    @Test func aWorkerKilledMidStreamLosesNoCast() throws {
        let url = try RabbitNode.url()
        let (master, pids, client) = try startSchedulers(url)
        let total = 3000
        try client.castMany("update_instance_info", args: (0..<total).map { ["host_name": .string("c\($0)")] })
        _ = try waitForHandled(master, "update_instance_info", atLeast: 100)
        let victim = try #require(pids.first)
        kill(victim, SIGKILL)
        try master.waitFor("exit") { $0["pid"] as? Int == Int(victim) }
        // The broker gives the victim's unacknowledged messages to the others: the queue drains.
        #expect(
            Proc.eventually(timeout: 60) { (try? brokerDepth("scheduler")) == 0 },
            "left: \((try? brokerDepth("scheduler")) ?? -1)")
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
    }

    @Test func pythonOsloMessagingCallsForkwatchAndForkwatchCallsPython() throws {
        let url = try RabbitNode.url()
        let python = try RabbitNode.python()
        let omrpc = RabbitNode.fixtures + "/omrpc.py"
        let (master, pids, client) = try startSchedulers(url, workers: 2)

        // Python client → forkwatch server: a result, a remote error, a fanout.
        func omrpcCall(_ arguments: [String]) throws -> [String: Any] {
            let result = try runToCompletion([python, omrpc] + arguments, timeout: 60)
            let line = try #require(result.output.split(separator: "\n").last { $0.hasPrefix("{") })
            return try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        }
        let echoed = try omrpcCall(["call", url, "scheduler", "echo", #"{"a": 1}"#])
        #expect(echoed["ok"] as? Bool == true, "\(echoed)")
        #expect(((echoed["result"] as? [String: Any])?["args"] as? [String: Any])?["a"] as? Int == 1)
        let failed = try omrpcCall(["call", url, "scheduler", "fail", #"{"msg": "kaboom"}"#])
        #expect(failed["error"] as? String == "ValueError", "\(failed)")
        let unknown = try omrpcCall(["call", url, "scheduler", "no_such", "{}"])
        #expect(unknown["exc_type"] as? String == "NoSuchMethod", "\(unknown)")
        _ = try omrpcCall(["fanout", url, "scheduler", "echo", #"{"fan": true}"#])
        let deadline = Date().addingTimeInterval(10)
        while handled(master, "echo").count < pids.count && Date() < deadline {
            _ = try? master.waitFor("rpc_stats", timeout: 0.5)
        }
        #expect(
            handled(master, "echo").count == pids.count,
            "every forkwatch worker got the Python fanout: \(handled(master, "echo"))")

        // forkwatch client → Python server: a result, a remote error, a fanout to two servers.
        var servers: [Int32] = []
        defer { for pid in servers { kill(pid, SIGTERM) } }
        let records = [directory + "/r1", directory + "/r2"]
        for (index, record) in records.enumerated() {
            servers.append(
                try spawn(
                    [python, omrpc, "serve", url, "pytopic", "py\(index)"], environment: ["OMRPC_RECORD": record],
                    log: directory + "/py\(index).log"))
        }
        #expect(
            Proc.eventually(timeout: 60) {
                records.indices.allSatisfy {
                    (try? String(contentsOfFile: directory + "/py\($0).log", encoding: .utf8))?.contains("READY")
                        == true
                }
            })
        let python1 = RPCClient(transport: client.transport, target: RPCTarget(topic: "pytopic"), timeout: 20)
        #expect(try python1.call("add", args: ["a": .number(40), "b": .number(2)]) == .number(42))
        #expect(
            try python1.call("echo", context: ["user": .string("alice")], args: ["x": .number(1)])["ctxt"]?["user"]?
                .string == "alice")
        do {
            _ = try python1.call("fail", args: ["msg": .string("nope")])
            Issue.record("fail returned")
        } catch {
            guard case .remote(let failure) = error else {
                Issue.record("\(error)")
                return
            }
            #expect(failure.className == "ValueError" && failure.module == "builtins" && failure.message == "nope")
            #expect(!failure.traceback.isEmpty)
        }
        try python1.prepare(fanout: true).cast("record", args: ["n": .number(7)])
        #expect(
            Proc.eventually(timeout: 10) {
                records.allSatisfy { (try? String(contentsOfFile: $0, encoding: .utf8))?.contains("7") == true }
            })
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
    }

    /// A call as a foreign peer could send it: `fields` (JSON object text) plus the reply routing,
    /// in oslo's envelope. Its reply, or nil when none came within `timeout`.
    private func rawCall(
        _ transport: RabbitTransport, _ fields: String, topic: String, timeout: Double = 10
    ) throws -> RPCReply? {
        let replies = try transport.replyConsumer()
        defer { replies.close() }
        guard case .object(var payload) = try JSONValue.parse(fields) else { throw TestFailure("not an object") }
        let msgId = UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        payload["_msg_id"] = .string(msgId)
        payload["_reply_q"] = .string(try #require(replies.replyQueue))
        payload["_timeout"] = .null
        payload["_unique_id"] = .string(UUID().uuidString)
        let body = JSONValue.serialize(fields: [
            ("oslo.version", .string("2.0")), ("oslo.message", .string(JSONValue.object(payload).serialized)),
        ])
        try transport.send(body, to: .topic(topic), ttl: timeout)
        let deadline = Date().addingTimeInterval(timeout)
        while deadline.timeIntervalSinceNow > 0 {
            guard let delivery = try replies.next(timeout: deadline.timeIntervalSinceNow) else { continue }
            try? replies.acknowledge(delivery)
            if let reply = try? RPCReply.decode(delivery.body), reply.msgId == msgId { return reply }
        }
        return nil
    }

    /// A call without a method, with a method that is not a string, or with args that are not
    /// an object is answered at once, with the failure a Python oslo.messaging server gives to the
    /// same bytes (it used to be dropped, and its caller waited for its timeout).
    @Test func aMalformedCallIsAnsweredAsOsloAnswersIt() throws {
        let url = try RabbitNode.url()
        let python = try RabbitNode.python()
        let (master, _, client) = try startSchedulers(url, workers: 2)
        let transport = try #require(client.transport as? RabbitTransport)
        let log = directory + "/pymalformed.log"
        let server = try spawn(
            [python, RabbitNode.fixtures + "/omrpc.py", "serve", url, "pymalformed", "pm0"], environment: [:], log: log)
        defer { kill(server, SIGTERM) }
        #expect(
            Proc.eventually(timeout: 60) {
                (try? String(contentsOfFile: log, encoding: .utf8))?.contains("READY") == true
            })
        let bodies = [
            #"{"args": {}}"#, #"{"method": 42, "args": {}}"#, #"{"method": "echo", "args": [1, 2]}"#,
            #"{"method": "echo", "args": "x"}"#, #"{"method": "echo", "args": null}"#,
        ]
        for fields in bodies {
            let ours = try rawCall(transport, fields, topic: "scheduler")?.failure
            let oslos = try rawCall(transport, fields, topic: "pymalformed")?.failure
            #expect(ours != nil, "forkwatch answered \(fields)")
            #expect(oslos != nil, "oslo.messaging answered \(fields)")
            #expect(
                ours?.className == oslos?.className && ours?.module == oslos?.module && ours?.message == oslos?.message,
                "\(fields): forkwatch \(ours.map(String.init(describing:)) ?? "nothing"), oslo \(oslos.map(String.init(describing:)) ?? "nothing")"
            )
        }
        // Still serving.
        #expect(try client.prepare(version: "1.0").call("echo")["pid"] != nil)
        #expect(master.all("exit").isEmpty)
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
    }

    /// A message whose AMQP content type is not application/json (text/plain, none) is rejected
    /// without requeue, as oslo's consumer does, and a call gets no reply: with a dead-letter
    /// policy on the topic queue, both land in the dead-letter queue (an acknowledged message
    /// would not), and by then no reply was sent.
    @Test func aMessageOfAnotherContentTypeIsRejected() throws {
        let url = try RabbitNode.url()
        let python = try RabbitNode.python()
        let (master, _, client) = try startSchedulers(url, workers: 2)
        _ = try RabbitNode.ctl([
            "set_policy", "fw-dlx-test", "^scheduler$", #"{"dead-letter-exchange": "fw-dlx"}"#, "--apply-to", "queues",
        ])
        defer { _ = try? RabbitNode.ctl(["clear_policy", "fw-dlx-test"]) }
        #expect(
            Proc.eventually(timeout: 20) {
                (try? RabbitNode.ctl(["list_queues", "name", "policy", "--no-table-headers", "-q"]))?.split(
                    separator: "\n"
                ).contains { $0.hasPrefix("scheduler") && $0.hasSuffix("fw-dlx-test") } == true
            })
        let port = try #require(url.split(separator: ":").last?.split(separator: "/").first.map(String.init))
        let result = try runToCompletion(
            [python, RabbitNode.fixtures + "/content_type_probe.py", port, "scheduler"], timeout: 60)
        let line = try #require(result.output.split(separator: "\n").last { $0.hasPrefix("{") }, "\(result.output)")
        let outcome = try JSONValue.parse(String(line))
        #expect(Set(outcome["dead"]?.array ?? []) == [.string("text/plain"), .null], "\(result.output)")
        #expect(outcome["replies"] == .number(0), "\(result.output)")
        #expect(master.log.contains("is not application/json"))
        // Still serving.
        #expect(try client.prepare(version: "1.0").call("echo")["pid"] != nil)
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
    }

    /// A process in the background, its output to `log`.
    private func spawn(_ argv: [String], environment: [String: String], log: String) throws -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var attributes = cleanSpawnAttributes(ownProcessGroup: true)
        defer { posix_spawnattr_destroy(&attributes) }
        var variables = ProcessInfo.processInfo.environment
        for (key, value) in environment { variables[key] = value }
        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnvironment = variables.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            cArgs.forEach { free($0) }
            cEnvironment.forEach { free($0) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, &attributes, cArgs, cEnvironment)
        guard rc == 0 else { throw TestFailure("posix_spawn \(argv[0]): \(String(cString: strerror(rc)))") }
        return pid
    }

    /// The broker goes away mid-run and comes back on the same port: the workers say so in the
    /// event stream, reconnect on oslo's schedule, declare their queues again and serve, soon
    /// (the time from the broker answering again to the first call served is printed; 20 s is
    /// the correctness bound: oslo's schedule tries again within 13 s of a 10 s outage). A client
    /// from before the restart calls again at once (its kept reply consumer, whose queue went
    /// with the old broker, is not reused).
    @Test func aBrokerLostMidRunIsFoundAgain() throws {
        let node = directory + "/own-node"
        let first = try runToCompletion(["/bin/bash", RabbitNode.fixtures + "/node.sh", "start", node], timeout: 90)
        let amqp = try #require(
            first.output.split(separator: "\n").last { $0.hasPrefix("amqp://") }.map(String.init), "\(first.output)")
        let url = "rabbit://" + amqp.dropFirst("amqp://".count)
        let port = try #require(url.split(separator: ":").last?.split(separator: "/").first.map(String.init))
        var stopped = false
        defer {
            if !stopped {
                _ = try? runToCompletion(["/bin/bash", RabbitNode.fixtures + "/node.sh", "stop", node], timeout: 60)
            }
        }
        let (master, _, client) = try startSchedulers(url, workers: 2)
        #expect(try client.prepare(version: "1.0").call("echo")["pid"] != nil)

        _ = try runToCompletion(["/bin/bash", RabbitNode.fixtures + "/node.sh", "stop", node], timeout: 60)
        try master.waitFor("notice", timeout: 20) { ($0["message"] as? String)?.contains("connection lost") == true }
        let again = directory + "/own-node-2"
        let starting = Date()
        let second = try runToCompletion(
            ["/usr/bin/env", "AMQP_PORT=\(port)", "/bin/bash", RabbitNode.fixtures + "/node.sh", "start", again],
            timeout: 90)
        #expect(second.status == 0, "\(second.output)")
        defer { _ = try? runToCompletion(["/bin/bash", RabbitNode.fixtures + "/node.sh", "stop", again], timeout: 60) }
        stopped = true
        // node.sh records when the new node first answered AMQP (before its CLI check).
        let environment = try String(contentsOfFile: again + "/node.env", encoding: .utf8)
        let answered = try #require(
            environment.split(separator: "\n").first { $0.hasPrefix("START_AMQP_SECONDS=") }
                .flatMap { Double($0.dropFirst("START_AMQP_SECONDS=".count)) })
        let back = starting.addingTimeInterval(answered)
        // A new client, calling until served (a call sent before the workers declared the
        // queues again is dropped by the new broker: short timeouts).
        let fresh = RPCClient(
            transport: try RabbitTransport(url: url), target: RPCTarget(topic: "scheduler", version: "1.0"),
            timeout: 0.5
        )
        var served: Date?
        while served == nil && Date().timeIntervalSince(back) < 20 {
            if (try? fresh.call("echo"))?["pid"] != nil { served = Date() }
        }
        let recovery = try #require(served, "not served within 20 s of the broker's return").timeIntervalSince(back)
        print("broker restart: served \(String(format: "%.2f", recovery)) s after the broker answered again")
        try master.waitFor("notice", timeout: 20) { ($0["message"] as? String)?.contains("reconnected") == true }
        // The client from before the restart: served on its first call.
        #expect(try client.prepare(version: "1.0").call("echo")["pid"] != nil)
        #expect(master.all("exit").isEmpty)
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
    }
}
