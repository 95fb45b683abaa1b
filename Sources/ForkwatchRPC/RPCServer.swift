import Forkwatch
import ForkwatchCore
import Foundation
import Logging

/// oslo.messaging's RPC server for one worker, started by `Service.start()` after the fork: it
/// consumes `topic` (shared by every worker of every host: competing consumers), `topic.host`
/// and a fanout queue of its own, runs each request through the dispatcher on the manager's
/// endpoints, answers calls on their reply queue, and acknowledges a message only after it was
/// handled (a worker killed mid-message leaves it to be delivered again).
///
/// `threads` consumers claim messages independently (oslo's executor thread pool). Once a
/// second the counters go to the master on the status pipe (`rpc {…}` → `rpc_stats` events).
public final class RPCServer: RPCServing, @unchecked Sendable {
    public let topic: String
    public let host: String
    private let transport: EmbeddedTransport
    private let endpoints: [RPCEndpoint]
    private let threads: Int
    private let log: Logger
    private var fanoutQueue: String?
    private var doorbells: [Doorbell] = []
    private var finished: [StopLatch] = []

    private let lock = NSLock()
    private var stopping = false
    private var stats = RPCStatsRecorder()
    private var statsChanged = false
    /// oslo's `_MsgIdCache`: the last 16 `_unique_id`s, a repeat is dropped.
    private var recentIds: [String] = []

    public init(transport: EmbeddedTransport, topic: String, host: String, endpoints: [RPCEndpoint], threads: Int = 4) {
        self.transport = transport
        self.topic = topic
        self.host = host
        self.endpoints = endpoints
        self.threads = max(1, threads)
        log = Log.logger("\(topic).rpc")
    }

    public var queues: [String] { [topic, "\(topic).\(host)"] + (fanoutQueue.map { [$0] } ?? []) }

    public func start() throws {
        fanoutQueue = try transport.declareFanoutQueue(topic: topic)
        let queues = self.queues
        for _ in 0..<threads {
            let doorbell = try transport.doorbell()
            let done = StopLatch()
            doorbells.append(doorbell)
            finished.append(done)
            Posix.startThread { [self] in
                consume(queues, doorbell: doorbell)
                done.release()
            }
        }
        let reporterDone = StopLatch()
        finished.append(reporterDone)
        Posix.startThread { [self] in
            reportStats()
            reporterDone.release()
        }
        log.info("RPC server on \(queues.joined(separator: ", ")) (embedded transport, \(threads) threads)")
    }

    /// Stops taking messages; returns when the ones in hand are handled and acknowledged.
    public func stop() {
        lock.withLock { stopping = true }
        for doorbell in doorbells { doorbell.ring() }
        for done in finished { done.wait(timeout: 10) }
        if let fanoutQueue { transport.deleteQueue(fanoutQueue) }
        sendStats(force: true)
    }

    private var isStopping: Bool { lock.withLock { stopping } }

    private func consume(_ queues: [String], doorbell: Doorbell) {
        var handled: Int64?
        var lastRecovery = Date.distantPast
        while !isStopping {
            if Date().timeIntervalSince(lastRecovery) >= 1 {
                lastRecovery = Date()
                if let released = try? transport.recoverAbandoned(), released > 0 {
                    log.warning("gave back \(released) message(s) claimed by a process that is gone; they are delivered again")
                }
            }
            doorbell.reset()
            let delivery: EmbeddedTransport.Delivery?
            do {
                delivery = try transport.claim(from: queues, acknowledging: handled)
                handled = nil
            } catch {
                log.error("claiming a message failed: \(error)")
                doorbell.wait(timeout: 1)
                continue
            }
            guard let delivery else {
                doorbell.wait(timeout: 1)
                continue
            }
            handle(delivery)
            handled = delivery.id
        }
        if let handled { try? transport.acknowledge(handled) }
    }

    private func handle(_ delivery: EmbeddedTransport.Delivery) {
        let request: RPCRequest
        do {
            request = try RPCRequest.decode(delivery.body)
        } catch {
            // Not a message oslo could read: logged and dropped (oslo rejects it without requeue).
            log.error("Failed to process message from \(delivery.queue) ... skipping it: \(error)")
            record("(malformed)", seconds: 0, failed: true)
            return
        }
        let duplicate = lock.withLock { () -> Bool in
            if !request.uniqueId.isEmpty && recentIds.contains(request.uniqueId) { return true }
            recentIds.append(request.uniqueId)
            if recentIds.count > 16 { recentIds.removeFirst() }
            return false
        }
        if duplicate {
            log.info("ignoring duplicate message \(request.uniqueId)")
            return
        }
        lock.withLock { stats.began(request.method); statsChanged = true }
        let started = Date()
        let outcome = RPCDispatcher.dispatch(request, to: endpoints)
        let seconds = Date().timeIntervalSince(started)
        var failed = false
        if case .failure(let failure) = outcome {
            failed = true
            if request.isCall {
                log.info("\(request.method) raised \(failure.className): \(failure.message)")
            } else {
                log.error("Exception during message handling (cast \(request.method)): \(failure.className): \(failure.message)")
            }
        }
        if let msgId = request.msgId, let replyQueue = request.replyQueue {
            let reply: RPCReply
            switch outcome {
            case .success(let result): reply = RPCReply(result: result, msgId: msgId, uniqueId: RPCIds.hex())
            case .failure(let failure): reply = RPCReply(failure: failure, msgId: msgId, uniqueId: RPCIds.hex())
            }
            do { try transport.publish(to: replyQueue, body: reply.body, ttl: 60) } catch {
                log.error("could not send the reply to \(replyQueue): \(error)")
            }
        }
        lock.withLock { stats.ended(request.method, seconds: seconds, failed: failed); statsChanged = true }
    }

    private func record(_ method: String, seconds: Double, failed: Bool) {
        lock.withLock {
            stats.began(method)
            stats.ended(method, seconds: seconds, failed: failed)
            statsChanged = true
        }
    }

    private func reportStats() {
        while !isStopping {
            sendStats(force: false)
            doorbellSleep(1)
        }
    }

    /// Sleeps up to `seconds`, cut short by stop.
    private func doorbellSleep(_ seconds: Double) {
        let deadline = Date().addingTimeInterval(seconds)
        while !isStopping && Date() < deadline { Posix.sleep(seconds: min(0.1, max(0, deadline.timeIntervalSinceNow))) }
    }

    private func sendStats(force: Bool) {
        let snapshot: [RPCMethodStats]? = lock.withLock {
            guard statsChanged || force else { return nil }
            statsChanged = false
            return stats.snapshot
        }
        guard let snapshot, !snapshot.isEmpty else { return }
        var json = JSONObject()
        json.add("topic", topic)
        json.addRaw("methods", "[" + snapshot.map(EventCodec.rpcMethodJSON).joined(separator: ",") + "]")
        WorkerChannel.send("rpc " + json.string)
    }
}

/// Registers the RPC layer with the launcher: managed services start an RPC server for their
/// manager's endpoints. Call before running a master (the CLI does).
public enum RPCServices {
    public static func register() { _ = registered }

    private static let registered: Void = {
        ManagedService.rpcServerStarter = { service in
            let endpoints = service.manager.rpcEndpoints
            guard !endpoints.isEmpty else { return nil }
            let transport = try EmbeddedTransport(path: service.database)
            let server = RPCServer(transport: transport, topic: service.topic, host: service.host, endpoints: endpoints)
            try server.start()
            return server
        }
    }()
}
