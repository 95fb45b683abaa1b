import ArgumentParser
import Forkwatch
import ForkwatchCore
import ForkwatchRPC
import ForkwatchServices

/// `forkwatch rpc call|cast`: talk to the services' managers over the embedded transport, as
/// another service would (`oslo-messaging-send-notification`-style, for trying RPC by hand).
struct RPCCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rpc",
        abstract: "Call or cast a method of a service's manager over RPC (embedded transport by default, or RabbitMQ).",
        subcommands: [Call.self, Cast.self]
    )

    struct Target: ParsableArguments {
        @Argument(help: "The topic (a service's topic: scheduler).") var topic: String
        @Argument(help: "The method.") var method: String
        @Argument(help: "Keyword arguments as a JSON object, e.g. '{\"instance_name\": \"web-1\"}'.") var args: String =
            "{}"
        @Option(name: .long, help: "Aim at one host's servers (topic.HOST), as prepare(server:).") var server: String?
        @Option(name: .long, help: "The request context as a JSON object.") var context: String = "{}"
        @Option(name: .long, help: "Target version, e.g. 4.5.") var version: String?
        @Option(name: .long, help: "The endpoint's namespace (oslo's Target.namespace), e.g. baseapi.")
        var namespace: String?
        @Option(name: .long, help: "The services database (default: \(ServicesStore.defaultPath)).") var db: String?
        @Option(
            name: .long,
            help:
                "oslo's transport_url: sqlite: (the embedded transport, default) or rabbit://user:pass@host:5672/vhost."
        ) var transportUrl: String?
        @Option(name: .long, help: "oslo's control_exchange on a broker (default openstack).") var controlExchange =
            "openstack"

        func parsed() throws -> (args: [String: JSONValue], context: [String: JSONValue], client: RPCClient) {
            func object(_ text: String, _ name: String) throws -> [String: JSONValue] {
                guard case .object(let fields) = try? JSONValue.parse(text) else {
                    throw UsageError("\(name) must be a JSON object, got '\(text)'")
                }
                return fields
            }
            let args = try object(self.args, "args")
            let context = try object(self.context, "--context")
            let path = db ?? ServicesStore.defaultPath
            let transport: RPCTransport
            do {
                transport = try RPCTransports.make(url: transportUrl, database: path, controlExchange: controlExchange)
            } catch {
                throw UsageError("\(error)")
            }
            let client = RPCClient(
                transport: transport,
                target: RPCTarget(topic: topic, server: server, namespace: namespace, version: version))
            return (args, context, client)
        }
    }

    struct Call: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Call a method and print its result (exit 1 on a remote error or a timeout).")
        @OptionGroup var target: Target
        @Option(name: .long, help: "Seconds to wait for the reply (oslo's rpc_response_timeout, 60).") var timeout:
            Double = 60

        func run() throws {
            let (args, context, client) = try target.parsed()
            guard timeout > 0 else { throw UsageError("--timeout must be > 0") }
            do {
                let result = try client.prepare(timeout: timeout).call(target.method, context: context, args: args)
                print(result.serialized)
                finish(0)
            } catch {
                if case .remote(let failure) = error {
                    try? Posix.writeAll(
                        2, "forkwatch: remote error: \(failure.module).\(failure.className): \(failure.message)\n")
                } else {
                    try? Posix.writeAll(2, "forkwatch: \(error)\n")
                }
                finish(1)
            }
        }
    }

    struct Cast: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Cast a method (fire and forget); --fanout sends it to every server of the topic.")
        @OptionGroup var target: Target
        @Flag(help: "Every server of the topic gets it.") var fanout = false
        @Option(name: .long, help: "Send it this many times (one transaction).") var count = 1

        func run() throws {
            let (args, context, client) = try target.parsed()
            guard count >= 1 else { throw UsageError("--count must be >= 1") }
            do {
                if fanout {
                    for _ in 0..<count {
                        try client.prepare(fanout: true).cast(target.method, context: context, args: args)
                    }
                } else {
                    try client.castMany(target.method, context: context, args: Array(repeating: args, count: count))
                }
            } catch {
                try? Posix.writeAll(2, "forkwatch: \(error)\n")
                finish(1)
            }
            finish(0)
        }
    }
}
