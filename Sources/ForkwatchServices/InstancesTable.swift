import Forkwatch
import Foundation
import GRDB

/// The demo compute API's servers, in the same SQLite file as the `services` table (migration
/// `v2-instances`). Soft-deleted as nova does: `deleted` = the row's id, `deleted_at` set.
extension ServicesStore {
    public struct Instance: Codable, FetchableRecord, PersistableRecord, Equatable, Sendable {
        public static let databaseTableName = "instances"
        public var id: Int64?
        public var uuid: String
        public var display_name: String
        public var flavor: String
        public var vm_state: String
        public var host: String?
        public var created_at: Date
        public var updated_at: Date?
        public var deleted_at: Date?
        public var deleted: Int64
    }

    public func createInstance(
        name: String, flavor: String, host: String?, vmState: String = "building"
    ) throws -> Instance {
        try queue.write { db in
            var row = Instance(
                id: nil, uuid: UUID().uuidString.lowercased(), display_name: name, flavor: flavor,
                vm_state: vmState, host: host, created_at: Date(), updated_at: nil, deleted_at: nil, deleted: 0)
            try row.insert(db)
            row.id = db.lastInsertedRowID
            return row
        }
    }

    /// After scheduling: `active` on a host, or `error`.
    public func setInstanceState(uuid: String, vmState: String, host: String?) throws -> Instance? {
        try queue.write { db in
            try db.execute(
                sql: "UPDATE instances SET vm_state = ?, host = ?, updated_at = ? WHERE uuid = ? AND deleted = 0",
                arguments: [vmState, host, Date(), uuid])
            return try Instance.filter(Column("uuid") == uuid && Column("deleted") == 0).fetchOne(db)
        }
    }

    public func instances(limit: Int = 1000) throws -> [Instance] {
        try queue.read { db in
            try Instance.filter(Column("deleted") == 0).order(Column("id")).limit(limit).fetchAll(db)
        }
    }

    public func instance(uuid: String) throws -> Instance? {
        try queue.read { db in
            try Instance.filter(Column("uuid") == uuid && Column("deleted") == 0).fetchOne(db)
        }
    }

    /// True when a live row was deleted.
    public func deleteInstance(uuid: String) throws -> Bool {
        try queue.write { db in
            let now = Date()
            try db.execute(
                sql: "UPDATE instances SET deleted = id, deleted_at = ?, updated_at = ? WHERE uuid = ? AND deleted = 0",
                arguments: [now, now, uuid])
            return db.changesCount > 0
        }
    }
}
