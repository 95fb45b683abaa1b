import ArgumentParser
import Forkwatch
import ForkwatchCore
import ForkwatchServices
import Foundation

/// `forkwatch services`: nova's `service-list`, `service-enable`, `service-disable`,
/// `service-force-down` over the services table.
struct Services: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List and change the services table (nova service-list / enable / disable / force-down).",
        subcommands: [List.self, Enable.self, Disable.self, ForceDown.self, Migrate.self],
        defaultSubcommand: List.self)

    struct DatabaseOption: ParsableArguments {
        @Option(
            name: .long,
            help: "The services database: a path or sqlite:///path (default: \(ServicesStore.defaultPath)).")
        var db: String?

        /// Opens the database. Only `.create` (`services migrate`) makes a file or a directory;
        /// for the others a missing database is an error naming it, exit 1.
        func open(_ mode: ServicesStore.OpenMode) throws -> ServicesStore {
            let path = db ?? ServicesStore.defaultPath
            do {
                let store = try ServicesStore(path: path, mode: mode)
                if mode != .readOnly { try store.migrate() }
                return store
            } catch let error as ServicesStore.StoreError where error.isMissing {
                Self.exitMissing(error)
            } catch {
                throw UsageError("\(error)")
            }
        }

        /// Not a usage error: the command was right, the database is not there. Exit 1.
        static func exitMissing(_ error: ServicesStore.StoreError) -> Never {
            try? Posix.writeAll(2, "forkwatch: \(error.description)\n")
            finish(1)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show every service row, as nova service-list does.")
        @OptionGroup var database: DatabaseOption
        @Flag(help: "One JSON object per row.") var json = false
        @Option(help: "Seconds without a heartbeat before a service is down (nova service_down_time).")
        var serviceDownTime: Double = 60
        @Option(help: "The services' report_interval (service_down_time is raised to 2.5 × it when not above it).")
        var reportInterval: Double = 10

        func run() throws {
            let rows: [ServicesStore.Row]
            let store = try database.open(.readOnly)
            do { rows = try store.list() } catch let error as ServicesStore.StoreError {
                if error.isMissing { DatabaseOption.exitMissing(error) }
                throw UsageError(error.description)
            }
            let now = Date()
            if json {
                for row in rows {
                    var object = JSONObject()
                    object.add("id", Int(row.id ?? 0))
                    object.add("uuid", row.uuid ?? "")
                    object.add("binary", row.binary)
                    object.add("host", row.host)
                    object.add("topic", row.topic)
                    object.add("status", row.disabled ? "disabled" : "enabled")
                    object.add(
                        "state",
                        row.isUp(now: now, serviceDownTime: serviceDownTime, reportInterval: reportInterval)
                            ? "up" : "down")
                    object.add("report_count", row.report_count)
                    object.addOptional("last_seen_up", row.last_seen_up.map(Self.timestamp))
                    object.addOptional("updated_at", row.updated_at.map(Self.timestamp))
                    object.add("forced_down", row.forced_down)
                    object.addOptional("disabled_reason", row.disabled_reason)
                    print(object.string)
                }
                return
            }
            let header = ["Id", "Binary", "Host", "Status", "State", "Updated At", "Forced down", "Disabled Reason"]
            let table = rows.map { row in
                [
                    "\(row.id ?? 0)", row.binary, row.host, row.disabled ? "disabled" : "enabled",
                    row.isUp(now: now, serviceDownTime: serviceDownTime, reportInterval: reportInterval)
                        ? "up" : "down",
                    row.updated_at.map(Self.timestamp) ?? "-", row.forced_down ? "True" : "False",
                    row.disabled_reason ?? "-",
                ]
            }
            let widths = header.indices.map { column in ([header] + table).map { $0[column].count }.max() ?? 0 }
            func line(_ cells: [String]) -> String {
                "| "
                    + cells.enumerated().map { $1 + String(repeating: " ", count: widths[$0] - $1.count) }.joined(
                        separator: " | ") + " |"
            }
            let rule = "+" + widths.map { String(repeating: "-", count: $0 + 2) }.joined(separator: "+") + "+"
            print(([rule, line(header), rule] + table.map(line) + [rule]).joined(separator: "\n"))
        }

        static func timestamp(_ date: Date) -> String {
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            return formatter.string(from: date)
        }
    }

    /// The rows a command acts on: an id, or a binary (with --host).
    struct Selector: ParsableArguments {
        @Argument(help: "A service id, or a binary name (e.g. forkwatch-scheduler).") var service: String
        @Option(help: "Only the row of this host (with a binary name).") var host: String?

        func rows(in store: ServicesStore) throws -> [Int64] {
            let rows = try store.find(service, host: host)
            guard !rows.isEmpty else {
                throw UsageError("no service '\(service)'\(host.map { " on host \($0)" } ?? "") in \(store.path)")
            }
            return rows.compactMap(\.id)
        }
    }

    struct Enable: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Enable a service (nova service-enable).")
        @OptionGroup var database: DatabaseOption
        @OptionGroup var selector: Selector
        func run() throws {
            let store = try database.open(.existing)
            let ids = try selector.rows(in: store)
            try store.update(ids) {
                $0.disabled = false
                $0.disabled_reason = nil
            }
            print("enabled \(ids.count) service(s)")
        }
    }

    struct Disable: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Disable a service (nova service-disable).")
        @OptionGroup var database: DatabaseOption
        @OptionGroup var selector: Selector
        @Option(help: "Why (shown in the list).") var reason: String?
        func run() throws {
            let store = try database.open(.existing)
            let ids = try selector.rows(in: store)
            try store.update(ids) {
                $0.disabled = true
                $0.disabled_reason = reason
            }
            print("disabled \(ids.count) service(s)")
        }
    }

    struct ForceDown: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "force-down",
            abstract: "Mark a service forced down (nova service-force-down); --unset clears it.")
        @OptionGroup var database: DatabaseOption
        @OptionGroup var selector: Selector
        @Flag(help: "Clear forced_down.") var unset = false
        func run() throws {
            let store = try database.open(.existing)
            let ids = try selector.rows(in: store)
            try store.update(ids) { $0.forced_down = !unset }
            print("\(unset ? "cleared forced_down on" : "forced down") \(ids.count) service(s)")
        }
    }

    struct Migrate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create or upgrade the services database (run by 'forkwatch run' before it forks).")
        @OptionGroup var database: DatabaseOption
        func run() throws {
            let store = try database.open(.create)
            print("\(store.path): schema up to date")
        }
    }
}

/// Before the first fork: when a service will open the services database, check it in a child
/// process (the master itself must never hold an SQLite handle), and migrate it once there so
/// the workers do not race to.
func checkDatabase(_ configuration: LauncherConfiguration) throws {
    let needed = configuration.services.contains {
        if case .builtin(let name) = $0.program { return builtinServices.usesDatabase(name) }
        return false
    }
    guard needed else { return }
    let path = configuration.database ?? ServicesStore.defaultPath
    let result: (status: Int32, output: String)
    do {
        result = try Posix.spawnAndWait([Posix.executablePath(), "services", "migrate", "--db", path])
    } catch {
        throw UsageError("cannot check the services database \(path): \(error)")
    }
    guard result.status == 0 else {
        let line = result.output.split(separator: "\n").last.map(String.init) ?? "exit \(result.status)"
        throw UsageError(line.hasPrefix("forkwatch: ") ? String(line.dropFirst(11)) : line)
    }
}
