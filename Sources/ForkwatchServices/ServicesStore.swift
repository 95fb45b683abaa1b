import Forkwatch
import ForkwatchCore
import Foundation
import GRDB

/// nova's `services` table in SQLite, through GRDB: one connection per process, opened after
/// fork (never in the master), WAL so many workers write while readers read, a busy timeout so
/// a locked database waits instead of failing at once.
public final class ServicesStore {
    /// The database file (a `sqlite:///` URL given is resolved to it).
    public let path: String
    let queue: DatabaseQueue
    /// The file this connection opened (device and inode), to notice it unlinked or replaced.
    public let identity: FileIdentity?

    /// One row of the table, with nova's columns.
    public struct Row: Codable, FetchableRecord, PersistableRecord, Equatable {
        public static let databaseTableName = "services"
        public var id: Int64?
        public var uuid: String?
        public var host: String
        public var binary: String
        public var topic: String
        public var report_count: Int
        public var disabled: Bool
        public var disabled_reason: String?
        public var last_seen_up: Date?
        public var forced_down: Bool
        public var version: Int
        public var created_at: Date?
        public var updated_at: Date?
        public var deleted_at: Date?
        public var deleted: Int

        /// nova's servicegroup rule, with this row's times.
        public func isUp(now: Date = Date(), serviceDownTime: Double = 60, reportInterval: Double = 10) -> Bool {
            ServiceLiveness.isUp(
                lastSeenUp: last_seen_up?.timeIntervalSince1970,
                createdAt: created_at?.timeIntervalSince1970 ?? 0, forcedDown: forced_down,
                now: now.timeIntervalSince1970, serviceDownTime: serviceDownTime, reportInterval: reportInterval)
        }
    }

    public struct StoreError: Error, CustomStringConvertible {
        public let description: String
        /// The database does not exist: a read-only command exits 1 (it never creates one).
        public var isMissing = false
    }

    /// A file as the kernel knows it: a path now naming another file (or none) has another identity.
    public struct FileIdentity: Equatable, Sendable {
        public let device: UInt64
        public let inode: UInt64

        /// What `path` names now (following symlinks, as SQLite does); nil when nothing is there.
        public static func of(_ path: String) -> FileIdentity? {
            var info = stat()
            guard stat(path, &info) == 0 else { return nil }
            return FileIdentity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
        }
    }

    /// The schemes `database` / `--db` accept, for errors.
    public static let supportedLocations = "an SQLite file path, or sqlite:///path"

    /// The file a `database` value names: a path as it is, or an SQLite URL (`sqlite:///PATH`;
    /// oslo.db's `sqlite:////PATH` reads the same). Anything else that looks like a URL — a
    /// `scheme://`, or a `scheme:` prefix — is an error naming what is supported, so a typo or
    /// another database's URL never becomes a file of that name.
    public static func filePath(of location: String) throws(StoreError) -> String {
        guard !location.isEmpty else {
            throw StoreError(description: "the database must be \(supportedLocations), got an empty string")
        }
        let colon = location.firstIndex(of: ":")
        let candidate = colon.map { String(location[..<$0]) } ?? ""
        let isScheme =
            !candidate.isEmpty && candidate.first!.isLetter
            && candidate.allSatisfy {
                $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "+" || $0 == "-" || $0 == ".")
            }
        guard isScheme, let colon else {
            guard !location.contains("://") else {
                throw StoreError(
                    description:
                        "database '\(location)' is neither a path nor a URL this forkwatch supports (\(supportedLocations))"
                )
            }
            return location
        }
        let scheme = candidate.lowercased()
        if scheme.hasPrefix("postgres") {
            throw StoreError(
                description:
                    "database '\(location)': postgresql:// is not supported yet; supported: \(supportedLocations)")
        }
        guard scheme == "sqlite" || scheme.hasPrefix("sqlite+") else {
            throw StoreError(
                description:
                    "database '\(location)': unknown URL scheme '\(candidate):'; supported: \(supportedLocations) (a file name with a colon: write it as ./\(location))"
            )
        }
        let rest = location[location.index(after: colon)...]
        guard rest.hasPrefix("//") else {
            throw StoreError(
                description: "database '\(location)': an SQLite URL is sqlite:///path (three slashes, then the file)")
        }
        let afterAuthority = rest.dropFirst(2)
        guard afterAuthority.hasPrefix("/") else {
            throw StoreError(description: "database '\(location)': an SQLite URL names no host: sqlite:///path")
        }
        guard !afterAuthority.contains("?") else {
            throw StoreError(
                description: "database '\(location)': URL parameters are not supported; give sqlite:///path")
        }
        let file = "/" + afterAuthority.drop { $0 == "/" }
        guard file != "/" else {
            throw StoreError(
                description:
                    "database '\(location)': no file in it (an in-memory database would keep no beat); give sqlite:///path"
            )
        }
        return file
    }

    /// The schema version written by this forkwatch (`services` rows keep nova's meaning).
    public static let serviceVersion = 1

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-services") { db in
            try db.execute(
                sql: """
                    CREATE TABLE services (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        uuid VARCHAR(36),
                        host VARCHAR(255) NOT NULL,
                        binary VARCHAR(255) NOT NULL,
                        topic VARCHAR(255) NOT NULL,
                        report_count INTEGER NOT NULL DEFAULT 0,
                        disabled BOOLEAN NOT NULL DEFAULT 0,
                        disabled_reason VARCHAR(255),
                        last_seen_up DATETIME,
                        forced_down BOOLEAN NOT NULL DEFAULT 0,
                        version INTEGER NOT NULL DEFAULT 0,
                        created_at DATETIME,
                        updated_at DATETIME,
                        deleted_at DATETIME,
                        deleted INTEGER NOT NULL DEFAULT 0,
                        CONSTRAINT uniq_services0host0topic0deleted UNIQUE (host, topic, deleted),
                        CONSTRAINT uniq_services0host0binary0deleted UNIQUE (host, binary, deleted)
                    );
                    CREATE UNIQUE INDEX services_uuid_idx ON services (uuid);
                    """)
        }
        // The demo compute API's servers (nova's `instances`, the columns it shows).
        migrator.registerMigration("v2-instances") { db in
            try db.execute(
                sql: """
                    CREATE TABLE instances (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        uuid VARCHAR(36) NOT NULL UNIQUE,
                        display_name VARCHAR(255) NOT NULL,
                        flavor VARCHAR(255) NOT NULL,
                        vm_state VARCHAR(255) NOT NULL,
                        host VARCHAR(255),
                        created_at DATETIME NOT NULL,
                        updated_at DATETIME,
                        deleted_at DATETIME,
                        deleted INTEGER NOT NULL DEFAULT 0
                    );
                    """)
        }
        // The embedded RPC transport's queues (ForkwatchRPC, docs/rpc.md).
        migrator.registerMigration("v3-rpc") { db in
            try db.execute(
                sql: """
                    CREATE TABLE rpc_messages (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        queue TEXT NOT NULL,
                        body TEXT NOT NULL,
                        created_at REAL NOT NULL,
                        expires_at REAL,
                        claimed_by INTEGER,
                        claimed_at REAL
                    );
                    CREATE INDEX rpc_messages_by_queue ON rpc_messages (queue, claimed_by, id);
                    CREATE TABLE rpc_fanout_queues (
                        name TEXT PRIMARY KEY,
                        topic TEXT NOT NULL,
                        pid INTEGER NOT NULL,
                        created_at REAL NOT NULL
                    );
                    """)
        }
        return migrator
    }

    /// How a command may open the database.
    public enum OpenMode: Sendable {
        /// Create the file and its directories when missing (`services migrate`, a service's start).
        case create
        /// The file must exist; it may be written (`services enable`, a heartbeat reopening its file).
        case existing
        /// The file must exist and is only read (`services list`): nothing is created or changed.
        case readOnly
    }

    /// Opens the database `location` names (a path or `sqlite:///path`). Errors name the file.
    public init(path location: String, mode: OpenMode = .create) throws {
        let path = try Self.filePath(of: location)
        self.path = path
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.label = "forkwatch.services"
        configuration.readonly = mode == .readOnly
        do {
            if mode == .create {
                let directory = (path as NSString).deletingLastPathComponent
                if !directory.isEmpty {
                    do {
                        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                    } catch {
                        throw StoreError(
                            description:
                                "\(path): cannot create the directory \(directory) (a file is in the way, or no permission)"
                        )
                    }
                }
            } else if FileIdentity.of(path) == nil {
                throw StoreError(
                    description:
                        "\(path): no such database (\(String(cString: strerror(errno)))); 'forkwatch services migrate --db \(path)' creates one",
                    isMissing: true)
            }
            queue = try DatabaseQueue(path: path, configuration: configuration)
            if mode != .readOnly {
                // WAL once per file; harmless to repeat. It fails here for a file that is not SQLite.
                // synchronous=NORMAL is SQLite's advice with WAL: a power cut may lose the last beats,
                // never the file's consistency; each beat then costs no fsync.
                _ = try queue.writeWithoutTransaction { db in
                    _ = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL")
                    try db.execute(sql: "PRAGMA synchronous = NORMAL")
                }
            }
        } catch {
            throw Self.explain(error, path: path)
        }
        // Right after the open: what the path names now is the file SQLite holds.
        identity = FileIdentity.of(path)
    }

    /// Throws when `path` no longer names the file this connection writes: unlinked (SQLite
    /// would go on writing into the deleted inode, which nobody can read) or replaced.
    public func checkFileIsStillAtPath() throws(StoreError) {
        guard let identity else { return }
        guard let now = FileIdentity.of(path) else {
            throw StoreError(
                description:
                    "\(path): the database file was deleted (unlinked) while in use; beats are not recorded until a database is back at that path",
                isMissing: true)
        }
        guard now == identity else {
            throw StoreError(
                description:
                    "\(path): the database file was replaced by another file (inode \(identity.inode) → \(now.inode)) while in use"
            )
        }
    }

    /// Creates or upgrades the schema; refuses a database written by a newer forkwatch.
    public func migrate() throws {
        do {
            let superseded = try queue.read { db in
                try db.tableExists("grdb_migrations") ? try Self.migrator.hasBeenSuperseded(db) : false
            }
            if superseded {
                throw StoreError(
                    description:
                        "\(path): the schema is from a newer forkwatch (unknown migrations); refusing to use it")
            }
            try Self.migrator.migrate(queue)
        } catch let error as StoreError {
            throw error
        } catch {
            throw Self.explain(error, path: path)
        }
    }

    /// nova's `Service.start()`: the row for (host, binary), created on first start. Sibling
    /// workers race to create it; the loser reads the winner's row.
    public func register(host: String, binary: String, topic: String) throws -> Row {
        try queue.write { db in
            if var row = try Row.filter(Column("host") == host && Column("binary") == binary && Column("deleted") == 0)
                .fetchOne(db)
            {
                if row.version != Self.serviceVersion {
                    row.version = Self.serviceVersion
                    row.updated_at = Date()
                    try row.update(db)
                }
                return row
            }
            let now = Date()
            var row = Row(
                id: nil, uuid: UUID().uuidString.lowercased(), host: host, binary: binary, topic: topic,
                report_count: 0, disabled: false, disabled_reason: nil, last_seen_up: nil, forced_down: false,
                version: Self.serviceVersion, created_at: now, updated_at: now, deleted_at: nil, deleted: 0)
            try row.insert(db)
            row.id = db.lastInsertedRowID
            return row
        }
    }

    /// nova's `_report_state`: report_count + 1 and last_seen_up = now, in one statement so that
    /// workers sharing the row never lose a beat. Returns the new count.
    public func beat(id: Int64) throws -> Int {
        // One statement in autocommit: atomic on its own, and RETURNING saves a second read.
        let count = try queue.writeWithoutTransaction { db in
            let now = Date()
            return try Int.fetchOne(
                db,
                sql: """
                    UPDATE services SET report_count = report_count + 1, last_seen_up = ?, updated_at = ?
                    WHERE id = ? AND deleted = 0 RETURNING report_count
                    """, arguments: [now, now, id])
        }
        guard let count else {
            throw StoreError(
                description: "services row \(id) is gone (deleted while the service runs); stop or restart the service")
        }
        return count
    }

    /// Closes the connection (a file no longer at its path: holding it keeps its `-wal` and
    /// `-shm` beside whatever file comes to the path next). The store is not used after this.
    public func close() {
        guard !closed else { return }
        closed = true
        try? queue.close()
    }

    private var closed = false

    public func list() throws -> [Row] {
        do {
            return try queue.read { db in
                guard try db.tableExists(Row.databaseTableName) else {
                    throw StoreError(
                        description:
                            "\(path): no services table in it (not a forkwatch database, or never migrated: 'forkwatch services migrate --db \(path)')",
                        isMissing: true)
                }
                return try Row.filter(Column("deleted") == 0).order(Column("id")).fetchAll(db)
            }
        } catch {
            throw Self.explain(error, path: path)
        }
    }

    /// Finds rows by id, or by `binary` (with an optional `host`), as `nova service-*` does.
    public func find(_ selector: String, host: String?) throws -> [Row] {
        try list().filter { row in
            if let id = Int64(selector) { return row.id == id }
            return row.binary == selector && (host == nil || row.host == host)
        }
    }

    public func update(_ ids: [Int64], _ change: (inout Row) -> Void) throws {
        try queue.write { db in
            for id in ids {
                guard var row = try Row.fetchOne(db, key: id) else { continue }
                change(&row)
                row.updated_at = Date()
                try row.update(db)
            }
        }
    }

    static func explain(_ error: Error, path: String) -> StoreError {
        if let error = error as? StoreError { return error }
        if let error = error as? DatabaseError {
            switch error.resultCode {
            case .SQLITE_NOTADB: return StoreError(description: "\(path): not an SQLite database")
            case .SQLITE_CANTOPEN, .SQLITE_READONLY, .SQLITE_PERM, .SQLITE_AUTH:
                return StoreError(
                    description: "\(path): cannot open it for writing (\(error.message ?? "\(error.resultCode)"))")
            case .SQLITE_CORRUPT: return StoreError(description: "\(path): the database is corrupt")
            case .SQLITE_FULL: return StoreError(description: "\(path): the disk is full")
            default: return StoreError(description: "\(path): \(error.message ?? "\(error)")")
            }
        }
        return StoreError(description: "\(path): \(error.localizedDescription)")
    }

    /// `$XDG_STATE_HOME/forkwatch/forkwatch.sqlite`, else `~/.local/state/forkwatch/forkwatch.sqlite`.
    /// (getenv, not ProcessInfo: the master computes this for its help text and must not wake
    /// Foundation up for it — every page it touches is copied into the page tables of each fork.)
    public static var defaultPath: String {
        func variable(_ name: String) -> String? {
            guard let value = getenv(name), value.pointee != 0 else { return nil }
            return String(cString: value)
        }
        if let state = variable("XDG_STATE_HOME") { return state + "/forkwatch/forkwatch.sqlite" }
        return (variable("HOME") ?? "/tmp") + "/.local/state/forkwatch/forkwatch.sqlite"
    }
}
