import Forkwatch
import ForkwatchCore
import ForkwatchServices
import Foundation
import Logging

/// oslo.messaging's RPC server for one worker, started by `Service.start()` after the fork: it
/// consumes `topic` (shared by every worker of every host: competing consumers), `topic.host`
/// and a fanout queue of its own, runs each request through the dispatcher on the manager's
/// endpoints, answers calls on their reply queue, and acknowledges a message only after it was
/// handled (a worker killed mid-message leaves it to be delivered again).
///
/// `threads` consumers take messages independently (oslo's executor thread pool), each on its
/// own thread with its own consumer. Once a second the counters go to the master on the status
/// pipe (`rpc {…}` → `rpc_stats` events).
public final class RPCServer: RPCServing, @unchecked Sendable {
    public let topic: String
    public let host: String
    private let transport: RPCTransport
    private let endpoints: [RPCEndpoint]
    private let threads: Int
    private let log: Logger
    private var consumers: [RPCConsumer] = []
    private var finished: [StopLatch] = []

    /// Released by `stop()`: the consumers and the reporter end.
    private let stopped = StopLatch()
    private let lock = NSLock()
    private var stats = RPCStatsRecorder()
    private var statsChanged = false
    /// oslo's `_MsgIdCache`: the last 16 `_unique_id`s, a repeat is dropped.
    private var recentIds: [String] = []

    /// Where the per-method counters and faults go (the master's status pipe).
    private let status: StatusChannel

    public init(
        transport: RPCTransport, topic: String, host: String, endpoints: [RPCEndpoint], threads: Int? = nil,
        status: StatusChannel = .none
    ) {
        self.transport = transport
        self.status = status
        self.topic = topic
        self.host = host
        self.endpoints = endpoints
        self.threads = max(1, threads ?? transport.consumerThreads)
        log = Logger(label: "\(topic).rpc")
    }

    public func start() throws {
        // Each thread consumes topic and topic.host; the first also this worker's fanout queue.
        for index in 0..<threads {
            let consumer = try transport.serverConsumer(topic: topic, server: host, fanout: index == 0)
            let done = StopLatch()
            consumers.append(consumer)
            finished.append(done)
            Posix.startThread { [self] in
                consume(consumer)
                done.release()
            }
        }
        let reporterDone = StopLatch()
        finished.append(reporterDone)
        Posix.startThread { [self] in
            reportStats()
            reporterDone.release()
        }
        log.info("RPC server on \(topic), \(topic).\(host) and a fanout queue (\(transport.name), \(threads) threads)")
    }

    /// Stops taking messages; returns when the ones in hand are handled and acknowledged.
    public func stop() {
        stopped.release()
        for consumer in consumers { consumer.interrupt() }
        for done in finished { done.wait(timeout: 10) }
        sendStats(force: true)
    }

    private var isStopping: Bool { stopped.wait(timeout: 0) }

    private func consume(_ consumer: RPCConsumer) {
        defer { consumer.close() }
        while !isStopping {
            let delivery: RPCDelivery?
            do {
                delivery = try consumer.next(timeout: 1)
            } catch {
                log.error("receiving a message failed: \(error)")
                Posix.sleep(seconds: 1)
                continue
            }
            guard let delivery else { continue }
            do {
                if handle(delivery) { try consumer.acknowledge(delivery) } else { try consumer.reject(delivery) }
            } catch {
                log.error("acknowledging a message failed: \(error)")
            }
        }
    }

    /// Handles a message; false when it could not be read (it is rejected, and a call gets no
    /// reply: oslo's consumer callback fails before its dispatcher sees it).
    private func handle(_ delivery: RPCDelivery) -> Bool {
        let request: RPCRequest
        do {
            request = try RPCRequest.decode(delivery.body, contentType: delivery.contentType)
        } catch {
            log.error("Failed to process message from \(delivery.queue) ... skipping it: \(error)")
            record("(malformed)", seconds: 0, failed: true)
            notice("RPC: a message on \(delivery.queue) is not one (\(error)); rejected")
            return false
        }
        let duplicate = lock.withLock { () -> Bool in
            if !request.uniqueId.isEmpty && recentIds.contains(request.uniqueId) { return true }
            recentIds.append(request.uniqueId)
            if recentIds.count > 16 { recentIds.removeFirst() }
            return false
        }
        if duplicate {
            log.info("ignoring duplicate message \(request.uniqueId)")
            return true
        }
        lock.withLock {
            stats.began(request.method)
            statsChanged = true
        }
        let started = Date()
        let outcome = RPCDispatcher.dispatch(request, to: endpoints)
        let seconds = Date().timeIntervalSince(started)
        var failed = false
        if case .failure(let failure) = outcome {
            failed = true
            if request.isCall {
                log.info("\(request.method) raised \(failure.className): \(failure.message)")
            } else {
                log.error(
                    "Exception during message handling (cast \(request.method)): \(failure.className): \(failure.message)"
                )
                notice("RPC: cast \(request.method) failed: \(failure.className): \(failure.message)")
            }
        }
        if let msgId = request.msgId, let replyQueue = request.replyQueue {
            let reply: RPCReply
            switch outcome {
            case .success(let result): reply = RPCReply(result: result, msgId: msgId, uniqueId: RPCIds.hex())
            case .failure(let failure): reply = RPCReply(failure: failure, msgId: msgId, uniqueId: RPCIds.hex())
            }
            do { try transport.send(reply.body, to: .reply(queue: replyQueue), ttl: 60) } catch {
                log.error("could not send the reply to \(replyQueue): \(error)")
            }
        }
        lock.withLock {
            stats.ended(request.method, seconds: seconds, failed: failed)
            statsChanged = true
        }
        return true
    }

    private var lastNotice = Date.distantPast

    /// A fault into the event stream (a `notice`), one a second at most: a flood of bad
    /// messages must not become a flood of events. The log has every one.
    private func notice(_ text: String) {
        let due = lock.withLock { () -> Bool in
            guard Date().timeIntervalSince(lastNotice) >= 1 else { return false }
            lastNotice = Date()
            return true
        }
        if due { status.send(.notice(text)) }
    }

    private func record(_ method: String, seconds: Double, failed: Bool) {
        lock.withLock {
            stats.began(method)
            stats.ended(method, seconds: seconds, failed: failed)
            statsChanged = true
        }
    }

    /// Once a second until stopped (one wake-up a second, none in between).
    private func reportStats() {
        repeat { sendStats(force: false) } while !stopped.wait(timeout: 1)
    }

    private func sendStats(force: Bool) {
        let snapshot: [RPCMethodStats]? = lock.withLock {
            guard statsChanged || force else { return nil }
            statsChanged = false
            return stats.snapshot
        }
        guard let snapshot, !snapshot.isEmpty else { return }
        status.send(.rpcStats(topic: topic, methods: snapshot))
    }
}

/// The RPC layer for managed services: each worker's service starts an RPC server for its
/// manager's endpoints, on the transport its options name.
public enum RPCServices {
    /// For `ManagedService.create(in:…, rpcServer:)`: a server on `configuration`'s transport.
    public static func serverStarter(_ configuration: LauncherConfiguration) -> ManagedService.RPCServerStarter {
        { service in
            let endpoints = service.manager.rpcEndpoints
            guard !endpoints.isEmpty else { return nil }
            let transport = try RPCTransports.make(
                url: configuration.transportURL, database: service.database,
                controlExchange: configuration.controlExchange, reconnect: configuration.reconnectBackoff,
                status: service.status)
            let server = RPCServer(
                transport: transport, topic: service.topic, host: service.host, endpoints: endpoints,
                status: service.status)
            try server.start()
            return server
        }
    }
}
