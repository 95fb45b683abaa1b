import Forkwatch
import ForkwatchCore
import Foundation

/// Where a message goes (oslo.messaging's routing, reference §1).
public enum RPCDestination: Sendable, Equatable {
    /// The topic's shared queue: one server of any host takes it.
    case topic(String)
    /// `topic.server`: one of that host's servers takes it.
    case server(topic: String, server: String)
    /// Every server of the topic gets a copy.
    case fanout(topic: String)
    /// A caller's reply queue.
    case reply(queue: String)
}

/// A message handed to a consumer; acknowledge it once it was handled.
public struct RPCDelivery: Sendable {
    /// The transport's handle for it (a row id, a delivery tag).
    public let tag: Int64
    public let queue: String
    public let body: String
    /// The AMQP content-type property ("" for none); the embedded transport's are all JSON.
    public let contentType: String

    public init(tag: Int64, queue: String, body: String, contentType: String = RPCEnvelope.contentType) {
        self.tag = tag
        self.queue = queue
        self.body = body
        self.contentType = contentType
    }
}

/// A message transport: the embedded one (`sqlite:`, `EmbeddedTransport`) or a broker.
public protocol RPCTransport: AnyObject, Sendable {
    /// How it is named in logs (`sqlite:/path`, `rabbit://host:5672/`).
    var name: String { get }
    /// Consumer threads a server runs on it (oslo's executor pool, smaller).
    var consumerThreads: Int { get }
    /// Sends one message; `ttl` (seconds) drops it when nobody took it in time (calls).
    func send(_ body: String, to destination: RPCDestination, ttl: Double?) throws
    /// Sends several messages to one destination (a burst of casts).
    func send(_ bodies: [String], to destination: RPCDestination) throws
    /// A consumer of `topic` and `topic.server` and, with `fanout`, of a fanout queue of its own.
    /// Used from one thread; a server runs several, each on its own thread.
    func serverConsumer(topic: String, server: String, fanout: Bool) throws -> RPCConsumer
    /// A consumer of a new reply queue (`replyQueue` names it), for one call.
    func replyConsumer() throws -> RPCConsumer
    /// Messages waiting in a queue (a benchmark's "all handled", a test's "nothing left").
    func depth(of queue: String) throws -> Int
}

/// Messages of some queues, one at a time, each acknowledged after it was handled. A message
/// given to a consumer that dies unacknowledged is delivered again.
public protocol RPCConsumer: AnyObject {
    /// The reply queue this consumer reads (reply consumers only).
    var replyQueue: String? { get }
    /// The next message, or nil when none came within `timeout` (or `interrupt` was called).
    func next(timeout: Double) throws -> RPCDelivery?
    func acknowledge(_ delivery: RPCDelivery) throws
    /// Drops a message that could not be read (oslo's reject without requeue).
    func reject(_ delivery: RPCDelivery) throws
    /// Wakes a `next` waiting on another thread (to stop).
    func interrupt()
    /// Stops consuming; a fanout or reply queue of its own is deleted.
    func close()
}

extension RPCConsumer {
    /// Where rejecting is not a thing of its own (the embedded transport), the message is done with.
    public func reject(_ delivery: RPCDelivery) throws { try acknowledge(delivery) }
}

/// A transport that cannot be built or used (a bad URL, a database without the RPC tables).
public struct RPCTransportError: Error, CustomStringConvertible {
    public let description: String
}

/// Transports by URL (oslo's `transport_url`).
public enum RPCTransports {
    /// Builds the transport a URL names. `sqlite:` (or nothing) is the embedded transport in the
    /// services database `database`.
    /// scheme → (url, services database, control exchange, reconnect schedule, status channel) → transport.
    static let factories:
        [String: @Sendable (String, String, String, ReconnectBackoff, StatusChannel) throws -> RPCTransport] = [
            "sqlite": { _, database, _, _, _ in try EmbeddedTransport(path: database) },
            "rabbit": { url, _, exchange, reconnect, status in
                try RabbitTransport(url: url, controlExchange: exchange, reconnect: reconnect, status: status)
            },
        ]

    /// `controlExchange`: oslo's `control_exchange` (`openstack`), for a broker. `reconnect`:
    /// oslo's `rabbit_retry_*` schedule, for a broker. `status`: where a worker's transport
    /// reports a lost broker.
    public static func make(
        url: String?, database: String, controlExchange: String = "openstack",
        reconnect: ReconnectBackoff = ReconnectBackoff(), status: StatusChannel = .none
    ) throws -> RPCTransport {
        let url = url ?? "sqlite:"
        guard let colon = url.firstIndex(of: ":") else {
            throw RPCTransportError(description: "transport_url '\(url)' has no scheme")
        }
        let scheme = String(url[..<colon])
        guard let factory = factories[scheme] else {
            throw RPCTransportError(
                description:
                    "transport_url: no '\(scheme)' transport (known: \(factories.keys.sorted().joined(separator: ", ")))"
            )
        }
        return try factory(url, database, controlExchange, reconnect, status)
    }
}
