import CForkwatchAMQP
import Forkwatch
import ForkwatchCore
import Foundation
import Logging

/// The RabbitMQ transport (`transport_url: rabbit://user:pass@host:5672/vhost`), speaking
/// oslo.messaging 18.x's rabbit driver on the wire (shared/reference/oslo-messaging-rabbit.md):
///
/// - the control exchange (`openstack`, topic, not durable) with the topic queue `T` and the
///   server queue `T.S` bound by their names; the fanout exchange `T_fanout` (fanout,
///   auto-delete) with one queue `T_fanout_<hex>` per server (x-expires 30 min); reply queues
///   `reply_<hex>` (x-expires 30 min), answered through the default exchange, mandatory;
/// - JSON bodies with oslo's envelope, `application/json`, `utf-8`, persistent, empty headers;
///   calls carry `expiration` = their timeout in ms;
/// - publishing waits for the broker's confirm (oslo's send connections run in confirm mode);
/// - consumers acknowledge after handling (at-least-once; oslo acks before), with prefetch 1
///   so that the workers' threads share a topic queue fairly;
/// - a consumer whose connection fails makes it again when an oslo server's listener would
///   (`ReconnectBackoff`: `rabbit_retry_interval`, `rabbit_retry_backoff`, `rabbit_interval_max`,
///   `kombu_reconnect_delay`, the rounds of oslo's poll) and declares its queues again; a
///   message not acknowledged before the failure is delivered again by the broker;
/// - a message whose content type is not `application/json` is rejected without requeue, as
///   oslo's consumers do.
///
/// librabbitmq connections are not thread-safe: every consumer has its own; publishing goes
/// through one connection under a lock.
public final class RabbitTransport: RPCTransport, @unchecked Sendable {
    public struct Address: Sendable, Equatable {
        public var host: String
        public var port: Int
        public var user: String
        public var password: String
        public var virtualHost: String

        public init(host: String, port: Int, user: String, password: String, virtualHost: String) {
            self.host = host
            self.port = port
            self.user = user
            self.password = password
            self.virtualHost = virtualHost
        }
    }

    public let address: Address
    public let controlExchange: String
    /// Seconds of the AMQP heartbeat (oslo's heartbeat_timeout_threshold, 60).
    public let heartbeat: Int
    /// When a consumer tries its connection again (oslo's `rabbit_retry_*`).
    public let reconnect: ReconnectBackoff
    /// Where a worker's consumer reports a lost or found broker (as a `notice`).
    public let status: StatusChannel
    private let log = Logger(label: "rpc.rabbit")
    private let publishLock = NSLock()
    private var publisher: AMQPConnection?
    private var declaredExchanges: Set<String> = []
    private let consumersLock = NSLock()
    private var consumersMade = 0
    private let replyPoolLock = NSLock()
    private var replyPool: [RabbitConsumer] = []

    public var consumerThreads: Int { 4 }

    public var name: String {
        "rabbit://\(address.user)@\(address.host):\(address.port)/\(address.virtualHost == "/" ? "" : address.virtualHost)"
    }

    public init(
        url: String, controlExchange: String = "openstack", heartbeat: Int = 60,
        reconnect: ReconnectBackoff = ReconnectBackoff(), status: StatusChannel = .none
    ) throws {
        address = try Self.parse(url)
        self.status = status
        self.controlExchange = controlExchange
        self.heartbeat = heartbeat
        self.reconnect = reconnect
    }

    /// oslo's `TransportURL.parse` for one broker: `rabbit://user:pass@host:port/vhost`,
    /// percent-encoded user and password, port 5672, `/` or empty for the default vhost.
    public static func parse(_ url: String) throws -> Address {
        guard url.hasPrefix("rabbit://") else {
            throw RabbitError("transport_url must start with rabbit://, got '\(url)'")
        }
        var rest = Substring(url.dropFirst("rabbit://".count))
        if let query = rest.firstIndex(of: "?") { rest = rest[..<query] }
        var virtualHost = "/"
        if let slash = rest.firstIndex(of: "/") {
            let path = String(rest[rest.index(after: slash)...])
            if !path.isEmpty && path != "/" { virtualHost = path.removingPercentEncoding ?? path }
            rest = rest[..<slash]
        }
        if rest.contains(",") { throw RabbitError("transport_url: several brokers are not supported; give one host") }
        var user = "guest"
        var password = "guest"
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            let parts = credentials.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            user = String(parts[0]).removingPercentEncoding ?? String(parts[0])
            if parts.count > 1 { password = String(parts[1]).removingPercentEncoding ?? String(parts[1]) }
        }
        var host = String(rest)
        var port = 5672
        if let colon = rest.lastIndex(of: ":"), !rest.hasPrefix("[") || rest[..<colon].hasSuffix("]") {
            guard let number = Int(rest[rest.index(after: colon)...]), (1...65535).contains(number) else {
                throw RabbitError("transport_url: bad port in '\(url)'")
            }
            port = number
            host = String(rest[..<colon])
        }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host.isEmpty { host = "localhost" }
        return Address(host: host, port: port, user: user, password: password, virtualHost: virtualHost)
    }

    func connect(purpose: String) throws -> AMQPConnection {
        try AMQPConnection(
            address: address, heartbeat: heartbeat,
            name: "\(ProcessInfo.processInfo.processName):\(getpid()):\(purpose):\(RPCIds.hex().prefix(8))")
    }

    // MARK: Sending

    public func send(_ body: String, to destination: RPCDestination, ttl: Double?) throws {
        try send([body], to: destination, ttl: ttl)
    }

    public func send(_ bodies: [String], to destination: RPCDestination) throws {
        try send(bodies, to: destination, ttl: nil)
    }

    private func send(_ bodies: [String], to destination: RPCDestination, ttl: Double?) throws {
        let exchange: String
        let key: String
        let mandatory: Bool
        switch destination {
        case .topic(let topic): (exchange, key, mandatory) = (controlExchange, topic, false)
        case .server(let topic, let server): (exchange, key, mandatory) = (controlExchange, "\(topic).\(server)", false)
        case .fanout(let topic): (exchange, key, mandatory) = ("\(topic)_fanout", "", false)
        case .reply(let queue): (exchange, key, mandatory) = ("", queue, true)
        }
        let expiration = ttl.map { String(Int(($0 * 1000).rounded())) }
        try publishLock.withLock {
            // One retry on a fresh connection: a broker restart between two sends is not an error.
            for attempt in 0..<2 {
                do {
                    let connection = try publisherConnection()
                    if !exchange.isEmpty && !declaredExchanges.contains(exchange) {
                        let fanout = exchange.hasSuffix("_fanout") && exchange != controlExchange
                        try connection.declareExchange(
                            exchange, type: fanout ? "fanout" : "topic", durable: false, autoDelete: fanout)
                        declaredExchanges.insert(exchange)
                    }
                    for body in bodies {
                        if try connection.publish(
                            exchange: exchange, key: key, body: body, expiration: expiration, mandatory: mandatory)
                        {
                            log.warning(
                                "The reply to \(key) could not be delivered: no such queue (the caller is gone)")
                        }
                    }
                    return
                } catch {
                    publisher = nil  // its deinit closes it
                    declaredExchanges.removeAll()
                    if attempt == 1 { throw error }
                    log.warning("AMQP publish failed (\(error)); reconnecting once")
                }
            }
        }
    }

    /// Messages ready in a queue on the broker (not counting those delivered and unacknowledged).
    public func depth(of queue: String) throws -> Int {
        try publishLock.withLock {
            let connection = try publisherConnection()
            do { return try connection.depth(of: queue) } catch {
                publisher = nil
                declaredExchanges.removeAll()
                throw error
            }
        }
    }

    private func publisherConnection() throws -> AMQPConnection {
        if let publisher { return publisher }
        let connection = try connect(purpose: "send")
        try connection.confirmSelect()
        publisher = connection
        return connection
    }

    // MARK: Consuming

    /// A server's consumers, one per thread, sit at different phases of oslo's poll round
    /// (`ReconnectBackoff.phase`): after a loss they try at different moments, as several oslo
    /// listeners do, so that the worker finds its broker again sooner than any one of them.
    public func serverConsumer(topic: String, server: String, fanout: Bool) throws -> RPCConsumer {
        let index = consumersLock.withLock {
            defer { consumersMade += 1 }
            return consumersMade % consumerThreads
        }
        var schedule = reconnect
        schedule.phase = (Double(index) + 0.5) / Double(consumerThreads)
        return RabbitConsumer(
            transport: self, kind: .server(topic: topic, server: server, fanout: fanout), backoff: schedule)
    }

    /// Reply consumers are kept and reused (a connection and a queue per call would cost a
    /// handshake each): a stale reply to an earlier call is skipped by its `_msg_id`. One whose
    /// broker went away since (a restart: its queue is gone) is dropped, not handed out: the
    /// reply would come back undelivered and the call would wait for its timeout.
    public func replyConsumer() throws -> RPCConsumer {
        while let pooled = replyPoolLock.withLock({ replyPool.popLast() }) {
            if pooled.isConnected() { return pooled }
        }
        let consumer = RabbitConsumer(transport: self, kind: .reply(queue: "reply_\(RPCIds.hex())"))
        try consumer.connectIfNeeded(throwing: true)
        return consumer
    }

    func recycle(_ consumer: RabbitConsumer) {
        replyPoolLock.withLock { replyPool.append(consumer) }
    }
}

struct RabbitError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// One AMQP connection with channel 1 (librabbitmq through CForkwatchAMQP).
final class AMQPConnection {
    private let handle: OpaquePointer

    init(address: RabbitTransport.Address, heartbeat: Int, name: String) throws {
        var error = [CChar](repeating: 0, count: 512)
        guard
            let handle = fw_amqp_connect(
                address.host, Int32(address.port), address.virtualHost, address.user, address.password,
                Int32(heartbeat), name, &error, error.count)
        else {
            throw RabbitError(
                "AMQP server on \(address.host):\(address.port) is unreachable: \(String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))"
            )
        }
        self.handle = handle
    }

    deinit { fw_amqp_close(handle) }

    private func check(_ rc: Int32) throws {
        if rc < 0 { throw RabbitError(String(cString: fw_amqp_error(handle))) }
    }

    func declareExchange(_ name: String, type: String, durable: Bool, autoDelete: Bool) throws {
        try check(fw_amqp_declare_exchange(handle, name, type, durable ? 1 : 0, autoDelete ? 1 : 0))
    }

    func declareQueue(_ name: String, durable: Bool, autoDelete: Bool, expiresMs: Int) throws {
        try check(fw_amqp_declare_queue(handle, name, durable ? 1 : 0, autoDelete ? 1 : 0, expiresMs))
    }

    func bind(_ queue: String, to exchange: String, key: String) throws {
        try check(fw_amqp_bind(handle, queue, exchange, key))
    }
    func deleteQueue(_ name: String) throws { try check(fw_amqp_delete_queue(handle, name)) }
    func depth(of queue: String) throws -> Int {
        let count = fw_amqp_queue_depth(handle, queue)
        if count < 0 { throw RabbitError(String(cString: fw_amqp_error(handle))) }
        return count
    }

    func qos(prefetch: Int) throws { try check(fw_amqp_qos(handle, Int32(prefetch))) }
    func consume(_ queue: String, tag: String) throws { try check(fw_amqp_consume(handle, queue, tag)) }
    func confirmSelect() throws { try check(fw_amqp_confirm_select(handle)) }

    /// True when the broker returned the (mandatory) message: no queue took it.
    func publish(exchange: String, key: String, body: String, expiration: String?, mandatory: Bool) throws -> Bool {
        var bytes = Array(body.utf8)
        let rc = bytes.withUnsafeMutableBytes { raw in
            fw_amqp_publish(
                handle, exchange, key, raw.baseAddress?.assumingMemoryBound(to: CChar.self), raw.count, expiration,
                mandatory ? 1 : 0)
        }
        try check(rc)
        return rc == 1
    }

    func next(timeout: Double) throws -> (tag: UInt64, key: String, body: String, contentType: String)? {
        var body: UnsafeMutablePointer<CChar>?
        var length = 0
        var tag: UInt64 = 0
        var key = [CChar](repeating: 0, count: 256)
        var contentType = [CChar](repeating: 0, count: 256)
        let rc = fw_amqp_next(
            handle, Int32(max(0, (timeout * 1000).rounded())), &body, &length, &tag, &key, key.count, &contentType,
            contentType.count)
        try check(rc)
        guard rc == 1, let body else { return nil }
        defer { free(body) }
        let text = String(decoding: UnsafeRawBufferPointer(start: body, count: length), as: UTF8.self)
        func string(_ chars: [CChar]) -> String {
            String(decoding: chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        return (tag, string(key), text, string(contentType))
    }

    func ack(_ tag: UInt64) throws { try check(fw_amqp_ack(handle, tag)) }
    func reject(_ tag: UInt64) throws { try check(fw_amqp_reject(handle, tag)) }
}

/// A consumer on its own connection: declares what it consumes (oslo's server or reply queues),
/// consumes with prefetch 1, reconnects on oslo's schedule when the connection fails.
final class RabbitConsumer: RPCConsumer {
    enum Kind {
        case server(topic: String, server: String, fanout: Bool)
        case reply(queue: String)
    }

    private let transport: RabbitTransport
    private let kind: Kind
    private var connection: AMQPConnection?
    private var fanoutQueue: String?
    private var retryAt = Date.distantPast
    /// When the last message came (monotonic seconds): oslo's poll timeout follows it.
    private var lastMessage: Double?
    private var clock: Double { ProcessInfo.processInfo.systemUptime }
    private var backoff: ReconnectBackoff
    /// Set by `interrupt()` from the thread that stops the server.
    private let interruption = NSLock()
    private var interruptedFlag = false
    private var interrupted: Bool {
        get { interruption.withLock { interruptedFlag } }
        set { interruption.withLock { interruptedFlag = newValue } }
    }
    private let log = Logger(label: "rpc.rabbit")
    /// Delivery tags belong to a connection: one taken before a reconnect is not acked after.
    private var generation = 0
    /// Only one consumer of a worker (the one with the fanout queue) puts its connection's
    /// troubles in the event stream; the others log them.
    private var reports: Bool {
        if case .server(_, _, let fanout) = kind { return fanout }
        return false
    }

    init(transport: RabbitTransport, kind: Kind, backoff: ReconnectBackoff? = nil) {
        self.transport = transport
        self.kind = kind
        self.backoff = backoff ?? transport.reconnect
    }

    var replyQueue: String? {
        if case .reply(let queue) = kind { return queue }
        return nil
    }

    /// Connects and declares; on failure waits (`ReconnectBackoff`) before the next try.
    func connectIfNeeded(throwing: Bool = false) throws {
        guard connection == nil else { return }
        guard Date() >= retryAt else { return }
        do {
            let connection = try transport.connect(purpose: replyQueue == nil ? "listen" : "reply")
            let expires = 1_800_000  // oslo's rabbit_transient_queues_ttl, 30 min
            switch kind {
            case .server(let topic, let server, let fanout):
                let exchange = transport.controlExchange
                try connection.declareExchange(exchange, type: "topic", durable: false, autoDelete: false)
                try connection.declareQueue(topic, durable: false, autoDelete: false, expiresMs: 0)
                try connection.bind(topic, to: exchange, key: topic)
                try connection.declareQueue("\(topic).\(server)", durable: false, autoDelete: false, expiresMs: 0)
                try connection.bind("\(topic).\(server)", to: exchange, key: "\(topic).\(server)")
                try connection.qos(prefetch: 1)
                try connection.consume(topic, tag: "1")
                try connection.consume("\(topic).\(server)", tag: "2")
                if fanout {
                    let queue = fanoutQueue ?? "\(topic)_fanout_\(RPCIds.hex())"
                    fanoutQueue = queue
                    try connection.declareExchange("\(topic)_fanout", type: "fanout", durable: false, autoDelete: true)
                    try connection.declareQueue(queue, durable: false, autoDelete: false, expiresMs: expires)
                    try connection.bind(queue, to: "\(topic)_fanout", key: topic)
                    try connection.consume(queue, tag: "3")
                }
            case .reply(let queue):
                try connection.declareQueue(queue, durable: false, autoDelete: false, expiresMs: expires)
                try connection.consume(queue, tag: "1")
            }
            self.connection = connection
            generation += 1
            if generation > 1 {
                log.info("Reconnected to AMQP server on \(transport.address.host):\(transport.address.port)")
                if reports {
                    transport.status.send(
                        .notice(
                            "RPC: reconnected to AMQP server on \(transport.address.host):\(transport.address.port)"))
                }
            }
            backoff.connected()
        } catch {
            if throwing { throw error }
            let wait = backoff.failed(at: clock)
            log.error("\(error). Trying again in \(wait.settingText) seconds.")
            if reports { transport.status.send(.notice("RPC: \(error). Trying again in \(wait.settingText) seconds.")) }
            retryAt = Date().addingTimeInterval(wait)
        }
    }

    func next(timeout: Double) throws -> RPCDelivery? {
        let deadline = Date().addingTimeInterval(timeout)
        interrupted = false
        while !interrupted {
            try connectIfNeeded()
            guard let connection else {
                let left = min(deadline.timeIntervalSinceNow, retryAt.timeIntervalSinceNow)
                if deadline.timeIntervalSinceNow <= 0 { return nil }
                Posix.sleep(seconds: max(0.01, min(left, 0.25)))
                continue
            }
            let left = deadline.timeIntervalSinceNow
            if left <= 0 { return nil }
            do {
                guard let message = try connection.next(timeout: min(left, 0.5)) else { continue }
                lastMessage = clock
                // The tag carries the connection generation so a stale ack is recognised.
                return RPCDelivery(
                    tag: Int64(bitPattern: message.tag) | Int64(generation & 0x7fff) << 48,
                    queue: message.key, body: message.body, contentType: message.contentType)
            } catch {
                let wait = backoff.lost(at: clock, lastMessage: lastMessage)
                log.error(
                    "AMQP connection lost: \(error); reconnecting in \(wait.settingText) seconds (messages not acknowledged are delivered again)"
                )
                if reports { transport.status.send(.notice("RPC: AMQP connection lost (\(error)); reconnecting")) }
                self.connection = nil
                retryAt = Date().addingTimeInterval(wait)
            }
        }
        return nil
    }

    func acknowledge(_ delivery: RPCDelivery) throws { try settle(delivery) { try $0.ack($1) } }

    func reject(_ delivery: RPCDelivery) throws { try settle(delivery) { try $0.reject($1) } }

    private func settle(_ delivery: RPCDelivery, _ answer: (AMQPConnection, UInt64) throws -> Void) throws {
        guard let connection, Int(delivery.tag >> 48) == generation & 0x7fff else { return }
        do { try answer(connection, UInt64(delivery.tag & 0xffff_ffff_ffff)) } catch {
            self.connection = nil
            retryAt = Date().addingTimeInterval(backoff.lost(at: clock, lastMessage: lastMessage))
            throw error
        }
    }

    func interrupt() { interrupted = true }

    /// Whether the connection still stands, without a round trip: a broker that closed it (a
    /// restart) left its connection.close or the socket's end to read. A delivery waiting is
    /// a late reply to an earlier call: acknowledged and dropped.
    func isConnected() -> Bool {
        guard let connection else { return false }
        do {
            while let late = try connection.next(timeout: 0) { try connection.ack(late.tag) }
            return true
        } catch {
            self.connection = nil
            return false
        }
    }

    func close() {
        if case .reply = kind, connection != nil {
            transport.recycle(self)
            return
        }
        if let fanoutQueue, let connection { try? connection.deleteQueue(fanoutQueue) }
        connection = nil
    }
}
