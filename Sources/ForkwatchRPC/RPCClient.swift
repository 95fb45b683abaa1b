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

    public init(topic: String, server: String? = nil, fanout: Bool = false, namespace: String? = nil, version: String? = nil) {
        self.topic = topic
        self.server = server
        self.fanout = fanout
        self.namespace = namespace
        self.version = version
    }

    /// The queue a cast or call goes to (`topic` or `topic.server`).
    var queue: String { server.map { "\(topic).\($0)" } ?? topic }
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
/// which needs a reader thread — with rows in a table a queue per call costs nothing more.
public struct RPCClient: Sendable {
    public let transport: EmbeddedTransport
    public var target: RPCTarget
    /// Seconds a call waits for its reply (oslo's `rpc_response_timeout`, 60).
    public var timeout: Double

    public init(transport: EmbeddedTransport, target: RPCTarget, timeout: Double = 60) {
        self.transport = transport
        self.target = target
        self.timeout = timeout
    }

    public func prepare(server: String? = nil, fanout: Bool? = nil, timeout: Double? = nil, version: String? = nil,
                        namespace: String? = nil) -> RPCClient {
        var copy = self
        if let server { copy.target.server = server }
        if let fanout { copy.target.fanout = fanout }
        if let timeout { copy.timeout = timeout }
        if let version { copy.target.version = version }
        if let namespace { copy.target.namespace = namespace }
        return copy
    }

    private func request(_ method: String, context: [String: JSONValue], args: [String: JSONValue]) -> RPCRequest {
        RPCRequest(method: method, args: args, namespace: target.namespace, version: target.version,
                   uniqueId: RPCIds.hex(), context: context)
    }

    public func cast(_ method: String, context: [String: JSONValue] = [:], args: [String: JSONValue] = [:]) throws(RPCError) {
        let body = request(method, context: context, args: args).body
        do {
            if target.fanout {
                try transport.publishFanout(topic: target.topic, body: body)
            } else {
                try transport.publish(to: target.queue, body: body)
            }
        } catch {
            throw .transport("\(error)")
        }
    }

    /// Many casts of one method in one transaction.
    public func castMany(_ method: String, context: [String: JSONValue] = [:], args: [[String: JSONValue]]) throws(RPCError) {
        guard !target.fanout else { throw .invalidTarget("castMany does not fan out") }
        do {
            try transport.publish(to: target.queue, bodies: args.map { request(method, context: context, args: $0).body })
        } catch {
            throw .transport("\(error)")
        }
    }

    public func call(_ method: String, context: [String: JSONValue] = [:], args: [String: JSONValue] = [:]) throws(RPCError) -> JSONValue {
        guard !target.fanout else { throw .invalidTarget("A call cannot be used with fanout (target \(target.topic))") }
        var message = request(method, context: context, args: args)
        let msgId = RPCIds.hex()
        let replyQueue = "reply_\(RPCIds.hex())"
        message.msgId = msgId
        message.replyQueue = replyQueue
        let deadline = Date().addingTimeInterval(timeout)
        let doorbell: Doorbell
        do {
            doorbell = try transport.doorbell()
            // The request expires with the call: nobody handles it after its caller gave up.
            try transport.publish(to: target.queue, body: message.body, ttl: timeout)
        } catch {
            throw .transport("\(error)")
        }
        defer { transport.deleteQueue(replyQueue) }
        while true {
            doorbell.reset()
            let delivery: EmbeddedTransport.Delivery?
            do { delivery = try transport.claim(from: [replyQueue]) } catch { throw .transport("\(error)") }
            if let delivery {
                try? transport.acknowledge(delivery.id)
                guard let reply = try? RPCReply.decode(delivery.body), reply.msgId == msgId else { continue }
                if let failure = reply.failure { throw .remote(failure) }
                if reply.ending { return reply.result }
                continue  // a call-monitor heartbeat
            }
            let left = deadline.timeIntervalSinceNow
            if left <= 0 { throw .timeout("Timed out waiting for a reply to message ID \(msgId)") }
            doorbell.wait(timeout: min(left, 1))
        }
    }
}
