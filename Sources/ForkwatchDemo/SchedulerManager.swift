import Forkwatch
import ForkwatchCore
import ForkwatchServices

/// The demo's nova-scheduler-shaped manager: periodic tasks of different spacing — a quick one,
/// a slow one, one that fails now and then.
final class SchedulerManager: Manager, @unchecked Sendable {

    struct TransientFailure: Error, CustomStringConvertible {
        let description = "placement answered 503 (a simulated transient failure)"
    }

    override var periodicTasks: [PeriodicTask] {
        [
            // nova-scheduler's _discover_hosts_in_cells: cheap and frequent.
            PeriodicTask("_discover_hosts_in_cells", spacing: 2, runImmediately: true) {
                Posix.sleep(seconds: Double.random(in: 0.001...0.004))
            },
            // A slow one: a full resync, a few hundred milliseconds.
            PeriodicTask("_sync_host_capacity", spacing: 5) {
                Posix.sleep(seconds: Double.random(in: 0.15...0.35))
            },
            // One that fails now and then; it never stops the others.
            PeriodicTask("_expire_reservations", spacing: 3) {
                Posix.sleep(seconds: Double.random(in: 0.002...0.01))
                if Double.random(in: 0..<1) < 0.25 { throw TransientFailure() }
            },
        ]
    }

    /// nova-scheduler's RPC API (version 4.5), reduced: `select_destinations` (call) picks a
    /// host for an instance; `update_instance_info` and `sync_instance_info` (casts, fanned out
    /// by nova's computes) are recorded. `echo` and `fail`, on an endpoint of version 1.0, are
    /// for trying RPC by hand, in tests and from Python. nova's `baseapi` endpoint (namespace
    /// `baseapi`, version 1.1, every nova service has it) answers `ping`.
    override var rpcEndpoints: [RPCEndpoint] {
        let host = self.host
        return [
            RPCEndpoint(
                version: "4.5",
                methods: [
                    RPCMethod("select_destinations") { call in
                        try call.only(["instance_name", "flavor", "num_instances"])
                        let name = try call.optionalString("instance_name") ?? "instance"
                        let count =
                            try call.args["num_instances"].map { (value: JSONValue) throws(RPCArgumentError) -> Int in
                                guard let n = value.int, n >= 1 else {
                                    throw RPCArgumentError("select_destinations(): num_instances must be >= 1")
                                }
                                return n
                            } ?? 1
                        // A little work, as a real filter/weigher pass would do.
                        Posix.sleep(seconds: 0.001)
                        let pid = Int(Posix.getpid())
                        return .array(
                            (0..<count).map { index in
                                .object([
                                    "host": .string(host), "nodename": .string(host),
                                    "instance": .string(count == 1 ? name : "\(name)-\(index + 1)"),
                                    "scheduler_pid": .number(Double(pid)),
                                ])
                            })
                    },
                    RPCMethod("update_instance_info") { call in
                        _ = try call.string("host_name")
                        return .null
                    },
                    RPCMethod("sync_instance_info") { call in
                        _ = try call.string("host_name")
                        return .null
                    },
                ]),
            // No target version, as an oslo endpoint without `target`: reachable by any client that
            // names no version (a Python oslo.messaging client's default, 1.0).
            RPCEndpoint(methods: [
                RPCMethod("echo") { call in
                    .object([
                        "args": .object(call.args), "ctxt": .object(call.context),
                        "pid": .number(Double(Posix.getpid())),
                    ])
                },
                RPCMethod("fail") { call in
                    throw RPCFailure(
                        className: "ValueError", module: "builtins", message: (try? call.string("msg")) ?? "boom")
                },
            ]),
            // nova/baseapi.py: `ping(context, arg, timeout=None)` returns {'service': …, 'arg': arg}.
            RPCEndpoint(
                namespace: "baseapi", version: "1.1",
                methods: [
                    RPCMethod("ping") { call in
                        try call.only(["arg", "timeout"])
                        return .object(["service": .string("scheduler"), "arg": try call.value("arg")])
                    }
                ]),
        ]
    }
}
