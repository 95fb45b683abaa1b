import CForkwatch
import Forkwatch
import Foundation
import GRDB

/// The embedded transport (`transport_url: sqlite:`): RPC queues as rows of the services
/// database, so one host runs RPC with nothing installed.
///
/// - A queue is a name: `topic`, `topic.host`, `topic_fanout_<hex>` (one per server), `reply_<hex>`.
/// - Publishing inserts a row; a fanout inserts one row per registered fanout queue of the topic.
/// - Consuming claims the oldest unclaimed row of the consumer's queues in one statement
///   (`UPDATE … WHERE id = (SELECT … LIMIT 1) RETURNING`): SQLite runs one writer at a time, so
///   exactly one consumer gets each row (competing consumers).
/// - A row is deleted (acknowledged) after it was handled. A consumer that dies holding rows
///   leaves them claimed by a dead pid: `recoverAbandoned` gives them back (redelivery), so
///   no message is lost — at-least-once, like a RabbitMQ queue with acks after handling.
/// - Rows with `expires_at` (calls, with their timeout) are dropped once expired.
/// - Waking up: see `Doorbell`.
public final class EmbeddedTransport: @unchecked Sendable {
    public let path: String
    private let queue: DatabaseQueue
    private let pid = Int64(getpid())

    public init(path: String) throws {
        self.path = path
        var configuration = Configuration()
        // Many consumers claim at once: a writer that finds the database locked retries every
        // 0.1 ms (SQLite's own busy timeout sleeps 1, 2, 5 … 100 ms, which is what a call's
        // round trip would then cost), for 30 s at most.
        configuration.busyMode = .callback { tries in
            usleep(100)
            return tries < 300_000
        }
        configuration.label = "forkwatch.rpc"
        // WAL (set on the file by the services store) with synchronous=NORMAL: a commit costs no
        // fsync; a power cut may lose the last messages, never the file.
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = NORMAL") }
        do {
            queue = try DatabaseQueue(path: path, configuration: configuration)
            try queue.read { db in
                guard try db.tableExists("rpc_messages") else {
                    throw RPCTransportError(
                        description: "\(path): no RPC tables (run 'forkwatch services migrate --db \(path)')")
                }
            }
        } catch let error as RPCTransportError {
            throw error
        } catch {
            throw RPCTransportError(description: "\(path): \(error)")
        }
    }

    static var now: Double { Date().timeIntervalSince1970 }

    public func publish(to queueName: String, body: String, ttl: Double? = nil) throws {
        try queue.write { db in
            try db.execute(
                sql: "INSERT INTO rpc_messages (queue, body, created_at, expires_at) VALUES (?, ?, ?, ?)",
                arguments: [queueName, body, Self.now, ttl.map { Self.now + $0 }])
        }
    }

    /// Many messages to one queue in one transaction (a burst of casts).
    public func publish(to queueName: String, bodies: [String]) throws {
        try queue.write { db in
            let statement = try db.makeStatement(
                sql: "INSERT INTO rpc_messages (queue, body, created_at) VALUES (?, ?, ?)")
            let now = Self.now
            for body in bodies { try statement.execute(arguments: [queueName, body, now]) }
        }
    }

    /// One copy for every live server of `topic` (a server's fanout queue is dropped once its
    /// process is gone). Returns how many servers it went to; with none it is lost, as in oslo.
    @discardableResult
    public func publishFanout(topic: String, body: String) throws -> Int {
        try queue.write { db in
            let rows = try Row.fetchAll(
                db, sql: "SELECT name, pid FROM rpc_fanout_queues WHERE topic = ?", arguments: [topic])
            var delivered = 0
            for row in rows {
                let name: String = row["name"]
                let owner: Int64 = row["pid"]
                if !Self.isAlive(owner) {
                    try db.execute(sql: "DELETE FROM rpc_fanout_queues WHERE name = ?", arguments: [name])
                    try db.execute(sql: "DELETE FROM rpc_messages WHERE queue = ?", arguments: [name])
                    continue
                }
                try db.execute(
                    sql: "INSERT INTO rpc_messages (queue, body, created_at) VALUES (?, ?, ?)",
                    arguments: [name, body, Self.now])
                delivered += 1
            }
            return delivered
        }
    }

    /// This process's fanout queue for `topic`.
    public func declareFanoutQueue(topic: String) throws -> String {
        let name = "\(topic)_fanout_\(RPCIds.hex())"
        try queue.write { db in
            try db.execute(
                sql: "INSERT INTO rpc_fanout_queues (name, topic, pid, created_at) VALUES (?, ?, ?, ?)",
                arguments: [name, topic, pid, Self.now])
        }
        return name
    }

    public func deleteQueue(_ name: String) {
        _ = try? queue.write { db in
            try db.execute(sql: "DELETE FROM rpc_fanout_queues WHERE name = ?", arguments: [name])
            try db.execute(sql: "DELETE FROM rpc_messages WHERE queue = ?", arguments: [name])
        }
    }

    /// Acknowledges `previous` (deletes it) and claims the oldest unclaimed, unexpired message of
    /// `queues` for this process, in one transaction: one write per message handled.
    public func claim(from queues: [String], acknowledging previous: Int64? = nil) throws -> RPCDelivery? {
        try queue.write { db in
            if let previous { try db.execute(sql: "DELETE FROM rpc_messages WHERE id = ?", arguments: [previous]) }
            let marks = Array(repeating: "?", count: queues.count).joined(separator: ",")
            let now = Self.now
            let row = try Row.fetchOne(
                db,
                sql: """
                    UPDATE rpc_messages SET claimed_by = ?, claimed_at = ?
                    WHERE id = (SELECT id FROM rpc_messages
                                WHERE queue IN (\(marks)) AND claimed_by IS NULL AND (expires_at IS NULL OR expires_at > ?)
                                ORDER BY id LIMIT 1)
                    RETURNING id, queue, body
                    """,
                arguments: StatementArguments([pid, now] + queues.map { $0 as DatabaseValueConvertible } + [now]))
            return row.map { RPCDelivery(tag: $0["id"], queue: $0["queue"], body: $0["body"]) }
        }
    }

    /// Whether one of `queues` has a message to take: a read, which in WAL mode takes no lock, so
    /// that consumers woken for nothing never queue up for the write lock.
    public func hasMessage(in queues: [String]) throws -> Bool {
        let marks = Array(repeating: "?", count: queues.count).joined(separator: ",")
        return try queue.read { db in
            try Bool.fetchOne(
                db,
                sql: """
                    SELECT EXISTS (SELECT 1 FROM rpc_messages WHERE queue IN (\(marks)) AND claimed_by IS NULL
                                   AND (expires_at IS NULL OR expires_at > ?))
                    """, arguments: StatementArguments(queues.map { $0 as DatabaseValueConvertible } + [Self.now]))
                ?? false
        }
    }

    /// Takes and deletes the oldest message of `queueName` in one statement (replies: nothing to
    /// redeliver once the caller has it).
    public func take(from queueName: String) throws -> RPCDelivery? {
        try queue.write { db in
            try Row.fetchOne(
                db,
                sql: """
                    DELETE FROM rpc_messages WHERE id = (SELECT id FROM rpc_messages WHERE queue = ? ORDER BY id LIMIT 1)
                    RETURNING id, queue, body
                    """, arguments: [queueName]
            ).map { RPCDelivery(tag: $0["id"], queue: $0["queue"], body: $0["body"]) }
        }
    }

    public func acknowledge(_ id: Int64) throws {
        try queue.write { db in try db.execute(sql: "DELETE FROM rpc_messages WHERE id = ?", arguments: [id]) }
    }

    /// Gives back the messages claimed by processes that are gone (they are delivered again),
    /// and drops expired ones. Returns how many were given back.
    @discardableResult
    public func recoverAbandoned() throws -> Int {
        try queue.write { db in
            try db.execute(
                sql: "DELETE FROM rpc_messages WHERE expires_at IS NOT NULL AND expires_at <= ?", arguments: [Self.now])
            let owners = try Int64.fetchAll(
                db, sql: "SELECT DISTINCT claimed_by FROM rpc_messages WHERE claimed_by IS NOT NULL")
            var released = 0
            for owner in owners where !Self.isAlive(owner) {
                try db.execute(
                    sql: "UPDATE rpc_messages SET claimed_by = NULL, claimed_at = NULL WHERE claimed_by = ?",
                    arguments: [owner])
                released += db.changesCount
            }
            return released
        }
    }

    /// Messages waiting or being handled in `queueName`.
    public func depth(of queueName: String) throws -> Int {
        try queue.read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM rpc_messages WHERE queue = ?", arguments: [queueName]) ?? 0
        }
    }

    /// Messages waiting or being handled in every queue.
    public func depth() throws -> Int {
        try queue.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM rpc_messages") ?? 0 }
    }

    /// Same host only (the embedded transport is one host's): `kill(pid, 0)`.
    static func isAlive(_ pid: Int64) -> Bool {
        guard pid > 0, pid <= Int64(Int32.max) else { return false }
        return kill(Int32(pid), 0) == 0 || errno == EPERM
    }

    /// A doorbell on this database.
    public func doorbell() throws -> Doorbell { try Doorbell(databasePath: path) }
}

/// How an idle consumer sleeps without polling and wakes as soon as a message may be there:
/// inotify on the database's directory, for writes to its write-ahead log (`<db>-wal`). Every
/// commit appends to the WAL (the database runs in WAL mode), so a publish in any process wakes
/// every waiting consumer at once; each then tries one claim and sleeps again if it got nothing.
/// A 1 s timeout bounds the wait anyway (abandoned claims, a missed wake-up). `ring()` wakes a
/// waiter of this process (to stop).
public final class Doorbell: @unchecked Sendable {
    private let watch: Int32
    private let wake: (read: Int32, write: Int32)
    private let walName: String

    init(databasePath: String) throws {
        let directory = (databasePath as NSString).deletingLastPathComponent
        walName = (databasePath as NSString).lastPathComponent + "-wal"
        watch = fw_watch_directory(directory.isEmpty ? "." : directory)
        guard watch >= 0 else {
            throw RPCTransportError(description: "inotify on \(directory): \(String(cString: strerror(errno)))")
        }
        var fds: [Int32] = [-1, -1]
        guard fw_pipe_cloexec(&fds, 1) == 0 else {
            close(watch)
            throw RPCTransportError(description: "pipe: \(String(cString: strerror(errno)))")
        }
        _ = fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK)
        wake = (fds[0], fds[1])
    }

    deinit {
        close(watch)
        close(wake.read)
        close(wake.write)
    }

    /// Forgets what happened so far (call before checking the queues, then `wait`).
    public func reset() { _ = fw_drain_watch(watch, walName) }

    public enum Wakeup { case written, interrupted, timedOut }

    /// Waits until the WAL is written, `ring()` is called, or `timeout` passes.
    @discardableResult
    public func wait(timeout: Double) -> Wakeup {
        var entries = [
            pollfd(fd: watch, events: Int16(POLLIN), revents: 0),
            pollfd(fd: wake.read, events: Int16(POLLIN), revents: 0),
        ]
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let left = deadline.timeIntervalSinceNow
            if left <= 0 { return .timedOut }
            let rc = poll(&entries, 2, Int32(max(1, (left * 1000).rounded(.up))))
            if rc < 0 && errno == EINTR { continue }
            if rc <= 0 { return .timedOut }
            if entries[1].revents != 0 {
                var byte: UInt8 = 0
                _ = read(wake.read, &byte, 1)
                return .interrupted
            }
            if entries[0].revents != 0 {
                if fw_drain_watch(watch, walName) != 0 { return .written }
                entries[0].revents = 0
            }
        }
    }

    public func ring() {
        var byte: UInt8 = 1
        _ = write(wake.write, &byte, 1)
    }
}

/// oslo's ids: `uuid4().hex`.
public enum RPCIds {
    public static func hex() -> String { UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "") }
}

extension EmbeddedTransport: RPCTransport {
    public var name: String { "sqlite:\(path)" }
    /// One per worker: every publish wakes every waiting consumer of the host (inotify), and all
    /// of them then queue for SQLite's one write lock; more threads only lengthen that queue.
    public var consumerThreads: Int { 1 }

    public func send(_ body: String, to destination: RPCDestination, ttl: Double?) throws {
        switch destination {
        case .topic(let topic): try publish(to: topic, body: body, ttl: ttl)
        case .server(let topic, let server): try publish(to: "\(topic).\(server)", body: body, ttl: ttl)
        case .fanout(let topic): try publishFanout(topic: topic, body: body)
        case .reply(let queue): try publish(to: queue, body: body, ttl: ttl ?? 60)
        }
    }

    public func send(_ bodies: [String], to destination: RPCDestination) throws {
        switch destination {
        case .topic(let topic): try publish(to: topic, bodies: bodies)
        case .server(let topic, let server): try publish(to: "\(topic).\(server)", bodies: bodies)
        case .fanout, .reply: for body in bodies { try send(body, to: destination, ttl: nil) }
        }
    }

    public func serverConsumer(topic: String, server: String, fanout: Bool) throws -> RPCConsumer {
        let fanoutQueue = fanout ? try declareFanoutQueue(topic: topic) : nil
        return try EmbeddedConsumer(
            transport: self, queues: [topic, "\(topic).\(server)"] + (fanoutQueue.map { [$0] } ?? []),
            ownQueue: fanoutQueue, isReply: false)
    }

    public func replyConsumer() throws -> RPCConsumer {
        let queue = "reply_\(RPCIds.hex())"
        return try EmbeddedConsumer(transport: self, queues: [queue], ownQueue: queue, isReply: true)
    }
}

/// Claims rows of its queues; sleeps on its own doorbell between them. Every second it also
/// gives back the rows of consumers that died (`recoverAbandoned`).
final class EmbeddedConsumer: RPCConsumer {
    private let transport: EmbeddedTransport
    private let queues: [String]
    private let ownQueue: String?
    private let doorbell: Doorbell
    let replyQueue: String?
    /// The last message handed out, acknowledged together with the next claim (one write).
    private var pendingAck: Int64?
    private var lastRecovery = Date.distantPast

    init(transport: EmbeddedTransport, queues: [String], ownQueue: String?, isReply: Bool) throws {
        self.transport = transport
        self.queues = queues
        self.ownQueue = ownQueue
        replyQueue = isReply ? ownQueue : nil
        doorbell = try transport.doorbell()
    }

    func next(timeout: Double) throws -> RPCDelivery? {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if replyQueue == nil, Date().timeIntervalSince(lastRecovery) >= 1 {
                lastRecovery = Date()
                try transport.recoverAbandoned()
            }
            doorbell.reset()
            if let replyQueue {
                if try transport.hasMessage(in: [replyQueue]), let delivery = try transport.take(from: replyQueue) {
                    return delivery
                }
            } else if try transport.hasMessage(in: queues) {
                let acknowledging = pendingAck
                pendingAck = nil
                if let delivery = try transport.claim(from: queues, acknowledging: acknowledging) { return delivery }
            } else if let acknowledging = pendingAck {
                pendingAck = nil
                try transport.acknowledge(acknowledging)
            }
            let left = deadline.timeIntervalSinceNow
            if left <= 0 { return nil }
            if doorbell.wait(timeout: min(left, 1)) == .interrupted { return nil }
        }
    }

    /// Deferred to the next claim (same transaction), or written when the queues are empty.
    /// (A reply was deleted when taken.)
    func acknowledge(_ delivery: RPCDelivery) throws {
        guard replyQueue == nil else { return }
        if let pendingAck { try transport.acknowledge(pendingAck) }
        pendingAck = delivery.tag
    }

    func interrupt() { doorbell.ring() }

    /// A fanout queue is deleted; a reply queue has nothing left (a late reply expires).
    func close() {
        if let pendingAck { try? transport.acknowledge(pendingAck) }
        pendingAck = nil
        if let ownQueue, replyQueue == nil { transport.deleteQueue(ownQueue) }
    }
}
