import Forkwatch
import ForkwatchCore
import Foundation

/// oslo.messaging's `Target`: where a message goes.
public struct RPCTarget: Sendable, Equatable {
    public var topic: String
    /// `topic.server` instead of `topic`: one host's servers only.
    public var server: String?
    /// Every server of the topic (casts only).
    public var fanout: Bool
    public var namespace: String?
    public var version: String?

    public init(
        topic: String, server: String? = nil, fanout: Bool = false, namespace: String? = nil, version: String? = nil
    ) {
        self.topic = topic
        self.server = server
        self.fanout = fanout
        self.namespace = namespace
        self.version = version
    }

    /// Where a cast or call goes.
    var destination: RPCDestination {
        if fanout { return .fanout(topic: topic) }
        return server.map { .server(topic: topic, server: $0) } ?? .topic(topic)
    }
}

/// Why a call did not return a result.
public enum RPCError: Error, CustomStringConvertible, Equatable {
    /// oslo's MessagingTimeout: no reply within the timeout.
    case timeout(String)
    /// The server raised: oslo's RemoteError (or the rebuilt exception).
    case remote(RPCFailure)
    /// A call with `fanout` (oslo: InvalidTarget).
    case invalidTarget(String)
    case transport(String)

    public var description: String {
        switch self {
        case .timeout(let message): return "MessagingTimeout: \(message)"
        case .remote(let failure): return "RemoteError: \(failure.className) \(failure.message)"
        case .invalidTarget(let message): return "InvalidTarget: \(message)"
        case .transport(let message): return "transport: \(message)"
        }
    }
}

/// oslo.messaging's `RPCClient`: `cast` (fire and forget), `call` (a reply or a timeout),
/// fanout casts, and `prepare` to aim at one server or change the timeout or version.
///
///     let scheduler = RPCClient(transport: transport, target: RPCTarget(topic: "scheduler"))
///     let hosts = try scheduler.call("select_destinations", args: ["instance_name": "web-1"])
///     try scheduler.prepare(fanout: true).cast("update_instance_info", args: [...])
///
/// Each call waits on a reply queue of its own (`reply_<hex>`); oslo shares one per transport,
/// which needs a reader thread — a queue per call needs none, and costs a queue declaration.
public struct RPCClient: Sendable {
    public let transport: RPCTransport
    public var target: RPCTarget
    /// Seconds a call waits for its reply (oslo's `rpc_response_timeout`, 60).
    public var timeout: Double

    public init(transport: RPCTransport, target: RPCTarget, timeout: Double = 60) {
        self.transport = transport
        self.target = target
        self.timeout = timeout
    }

    public func prepare(
        server: String? = nil, fanout: Bool? = nil, timeout: Double? = nil, version: String? = nil,
        namespace: String? = nil
    ) -> RPCClient {
        var copy = self
        if let server { copy.target.server = server }
        if let fanout { copy.target.fanout = fanout }
        if let timeout { copy.timeout = timeout }
        if let version { copy.target.version = version }
        if let namespace { copy.target.namespace = namespace }
        return copy
    }

    private func request(_ method: String, context: [String: JSONValue], args: [String: JSONValue]) -> RPCRequest {
        RPCRequest(
            method: method, args: args, namespace: target.namespace, version: target.version,
            uniqueId: RPCIds.hex(), context: context)
    }

    public func cast(
        _ method: String, context: [String: JSONValue] = [:], args: [String: JSONValue] = [:]
    ) throws(RPCError) {
        do {
            try transport.send(request(method, context: context, args: args).body, to: target.destination, ttl: nil)
        } catch {
            throw .transport("\(error)")
        }
    }

    /// Many casts of one method in one transaction.
    public func castMany(
        _ method: String, context: [String: JSONValue] = [:], args: [[String: JSONValue]]
    ) throws(RPCError) {
        guard !target.fanout else { throw .invalidTarget("castMany does not fan out") }
        do {
            try transport.send(args.map { request(method, context: context, args: $0).body }, to: target.destination)
        } catch {
            throw .transport("\(error)")
        }
    }

    public func call(
        _ method: String, context: [String: JSONValue] = [:], args: [String: JSONValue] = [:]
    ) throws(RPCError) -> JSONValue {
        guard !target.fanout else { throw .invalidTarget("A call cannot be used with fanout (target \(target.topic))") }
        var message = request(method, context: context, args: args)
        let msgId = RPCIds.hex()
        let deadline = Date().addingTimeInterval(timeout)
        let replies: RPCConsumer
        do {
            replies = try transport.replyConsumer()
            message.msgId = msgId
            message.replyQueue = replies.replyQueue
            // The request expires with the call: nobody handles it after its caller gave up.
            try transport.send(message.body, to: target.destination, ttl: timeout)
        } catch {
            throw .transport("\(error)")
        }
        defer { replies.close() }
        while true {
            let left = deadline.timeIntervalSinceNow
            if left <= 0 { throw .timeout("Timed out waiting for a reply to message ID \(msgId)") }
            let delivery: RPCDelivery?
            do { delivery = try replies.next(timeout: left) } catch { throw .transport("\(error)") }
            guard let delivery else { continue }
            try? replies.acknowledge(delivery)
            guard let reply = try? RPCReply.decode(delivery.body), reply.msgId == msgId else { continue }
            if let failure = reply.failure { throw .remote(failure) }
            if reply.ending { return reply.result }
            // ending false: a call-monitor heartbeat; keep waiting.
        }
    }
}
