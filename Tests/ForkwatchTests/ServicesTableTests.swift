import Forkwatch
import ForkwatchCore
import Foundation
import Glibc
import Testing

/// The services table and the heartbeat, with real workers writing into a real SQLite file.
@Suite struct ServicesTableTests {
    private func temporaryDatabase() -> String {
        NSTemporaryDirectory() + "forkwatch-db-\(UUID().uuidString.prefix(8))/services.sqlite"
    }

    /// `forkwatch services list --json` as rows.
    private func listRows(_ db: String, downTime: Double = 60, reportInterval: Double = 10) throws -> [[String: Any]] {
        let lister = try LaunchedMaster(
            [
                "services", "list", "--json", "--db", db, "--service-down-time", "\(downTime)",
                "--report-interval", "\(reportInterval)",
            ], events: false, stdoutToLog: true)
        #expect(try lister.waitExit() == 0)
        return lister.log.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    @Test func sixteenWorkersHeartbeatIntoOneFileAndNoBeatIsLost() throws {
        let db = temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: (db as NSString).deletingLastPathComponent) }
        let master = try LaunchedMaster([
            "--workers", "16", "--report-interval", "0.05", "--periodic-fuzzy-delay", "0",
            "--db", db, "scheduler",
        ])
        try master.waitForReady(16)
        // Let every worker beat a good number of times.
        try master.waitFor("heartbeat", timeout: 30) { ($0["report_count"] as? Int ?? 0) >= 400 }
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
        let beats = master.all("heartbeat")
        let ok = beats.filter { $0["ok"] as? Bool == true }
        let failed = beats.filter { $0["ok"] as? Bool != true }
        #expect(failed.isEmpty, "\(failed.prefix(3))")
        #expect(Set(ok.map(\.pid)).count == 16)
        let rows = try listRows(db, downTime: 1, reportInterval: 0.05)
        #expect(rows.count == 1)  // one row per (host, binary): all 16 workers share it, as in nova
        #expect(rows.first?["report_count"] as? Int == ok.count, "beats sent: \(ok.count), rows: \(rows)")
        #expect(rows.first?["binary"] as? String == "forkwatch-scheduler")
        #expect(rows.first?["topic"] as? String == "scheduler")
        // Up right after the last beat; down once service_down_time (1 s here) has passed.
        #expect(rows.first?["state"] as? String == "up")
        usleep(1_300_000)
        #expect(try listRows(db, downTime: 1, reportInterval: 0.05).first?["state"] as? String == "down")
    }

    @Test func periodicTaskTimingsReachTheMasterAndAFailingTaskStopsNoOther() throws {
        let db = temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: (db as NSString).deletingLastPathComponent) }
        let master = try LaunchedMaster(["--workers", "2", "--periodic-fuzzy-delay", "0", "--db", db, "scheduler"])
        try master.waitForReady(2)
        // _expire_reservations fails a quarter of the time; the quick task keeps its grid anyway.
        let failure = try master.waitFor("task_run", timeout: 60) { $0["ok"] as? Bool == false }
        #expect(failure["task"] as? String == "_expire_reservations")
        #expect((failure["error"] as? String)?.contains("503") == true)
        let after = try master.waitFor("task_run") {
            $0["task"] as? String == "_discover_hosts_in_cells" && $0["ok"] as? Bool == true
        }
        let timings = try #require(after["timings"] as? [String: Any])
        #expect((timings["runs"] as? Int ?? 0) >= 2)
        #expect((timings["p95"] as? Double ?? -1) >= 0)
        #expect(timings["spacing"] as? Double == 2)
        // The totals are in the master's snapshot too.
        let client = try ControlClient(path: master.socketPath)
        try client.send(.status)
        guard case .snapshot(let snapshot) = try EventCodec.decode(try #require(try client.readLine())).kind else {
            throw TestFailure("no snapshot")
        }
        let tasks = Set(snapshot.tasks.map(\.task))
        #expect(tasks.isSuperset(of: ["_discover_hosts_in_cells", "_expire_reservations"]))
        #expect(snapshot.tasks.first { $0.task == "_expire_reservations" }!.timings.failures >= 1)
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
    }

    @Test func enableDisableAndForceDown() throws {
        let db = temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: (db as NSString).deletingLastPathComponent) }
        let master = try LaunchedMaster(["--workers", "1", "--report-interval", "0.1", "--db", db, "scheduler"])
        try master.waitFor("heartbeat")
        for arguments in [["disable", "forkwatch-scheduler", "--reason", "maintenance window"], ["force-down", "1"]] {
            let command = try LaunchedMaster(["services"] + arguments + ["--db", db], events: false)
            #expect(try command.waitExit() == 0, "\(command.log)")
        }
        var row = try #require(try listRows(db).first)
        #expect(row["status"] as? String == "disabled")
        #expect(row["disabled_reason"] as? String == "maintenance window")
        #expect(row["forced_down"] as? Bool == true)
        #expect(row["state"] as? String == "down")  // forced_down wins over a fresh heartbeat
        for arguments in [["enable", "forkwatch-scheduler"], ["force-down", "1", "--unset"]] {
            let command = try LaunchedMaster(["services"] + arguments + ["--db", db], events: false)
            #expect(try command.waitExit() == 0)
        }
        row = try #require(try listRows(db).first)
        #expect(row["status"] as? String == "enabled")
        #expect(row["state"] as? String == "up")
        let missing = try LaunchedMaster(["services", "disable", "nova-nothing", "--db", db], events: false)
        #expect(try missing.waitExit() == 2)
        #expect(missing.log.contains("no service 'nova-nothing'"))
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
    }

    @Test func aDatabaseUnlinkedUnderARunningSchedulerIsAFailedHeartbeatNamingIt() throws {
        let db = temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: (db as NSString).deletingLastPathComponent) }
        let master = try LaunchedMaster(["--workers", "1", "--report-interval", "0.1", "--db", db, "scheduler"])
        try master.waitFor("heartbeat") { $0["ok"] as? Bool == true }
        #expect(unlink(db) == 0)
        let failed = try master.waitFor("heartbeat") { $0["ok"] as? Bool == false }
        let error = failed["error"] as? String ?? ""
        #expect(error.contains(db) && error.contains("deleted"), "\(error)")
        // While nothing is at the path, every beat says so: none is "ok" into the deleted file.
        for _ in 0..<3 {
            let beat = try master.waitFor("heartbeat")
            #expect(beat["ok"] as? Bool == false, "\(beat)")
        }
        #expect(master.log.contains("Unable to report status: \(db): the database file was deleted"), "\(master.log)")
        // The read-only list says the database is gone instead of making an empty one.
        let lister = try LaunchedMaster(["services", "list", "--db", db], events: false)
        #expect(try lister.waitExit() == 1)
        #expect(lister.log.contains("\(db): no such database"), "\(lister.log)")
        #expect(!FileManager.default.fileExists(atPath: db))

        // A database back at the path (here a new one): the worker reopens it and beats there.
        // The old file's -wal and -shm go first, as SQLite asks (the worker's RPC server still
        // holds the deleted file, and a new database must not read its write-ahead log).
        unlink(db + "-wal")
        unlink(db + "-shm")
        let migrate = try LaunchedMaster(["services", "migrate", "--db", db], events: false)
        #expect(try migrate.waitExit() == 0, "\(migrate.log)")
        let recovered = try master.waitFor("heartbeat") { $0["ok"] as? Bool == true }
        #expect(recovered["report_count"] as? Int == 1, "a new file, a new row: \(recovered)")
        #expect(master.log.contains("Reopened \(db)"), "\(master.log)")
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
        #expect(try listRows(db).first?["report_count"] as? Int ?? 0 >= 1)
    }

    @Test func readOnlyCommandsNeverCreateTheDatabaseOrItsDirectories() throws {
        let root = NSTemporaryDirectory() + "forkwatch-nodb-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let db = root + "/typo/dir/x.sqlite"
        for command in [
            ["services", "list"], ["services", "list", "--json"], ["services", "disable", "forkwatch-scheduler"],
        ] {
            let run = try LaunchedMaster(command + ["--db", db], events: false)
            #expect(try run.waitExit() == 1, "\(command): \(run.log)")
            #expect(
                run.log
                    == "forkwatch: \(db): no such database (No such file or directory); 'forkwatch services migrate --db \(db)' creates one\n",
                "\(run.log)")
            #expect(!FileManager.default.fileExists(atPath: root), "\(command) created \(root)")
        }
        // An empty file is not a services database: an error, and the file is left as it was.
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: root + "/empty.sqlite", contents: nil)
        let empty = try LaunchedMaster(["services", "list", "--db", root + "/empty.sqlite"], events: false)
        #expect(try empty.waitExit() == 1)
        #expect(empty.log.contains("no services table"), "\(empty.log)")
        #expect((try FileManager.default.attributesOfItem(atPath: root + "/empty.sqlite")[.size] as? Int) == 0)
    }

    @Test func anSQLiteURLNamesAFileAndAnyOtherSchemeIsAnErrorNamingTheSupportedOnes() throws {
        let db = temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: (db as NSString).deletingLastPathComponent) }
        for url in ["sqlite://" + db, "sqlite:///" + db] {  // three slashes, and oslo.db's four
            let migrate = try LaunchedMaster(["services", "migrate", "--db", url], events: false, stdoutToLog: true)
            #expect(try migrate.waitExit() == 0, "\(migrate.log)")
            #expect(migrate.log.contains("\(db): schema up to date"), "\(migrate.log)")
        }
        let cases: [(String, String)] = [
            (
                "postgresql://nova:secret@db/nova",
                "postgresql:// is not supported yet; supported: an SQLite file path, or sqlite:///path"
            ),
            ("postgres://db/nova", "postgresql:// is not supported yet"),
            (
                "mysql+pymysql://db/nova",
                "unknown URL scheme 'mysql+pymysql:'; supported: an SQLite file path, or sqlite:///path"
            ),
            ("file:services.sqlite", "unknown URL scheme 'file:'"),
            ("sqlite:services.sqlite", "an SQLite URL is sqlite:///path"),
            ("sqlite://host/x.sqlite", "names no host"),
            ("sqlite://", "an SQLite URL names no host"),
            ("sqlite:///", "no file in it"),
            ("./a://b", "neither a path nor a URL"),
        ]
        for (url, expected) in cases {
            let list = try LaunchedMaster(["services", "list", "--db", url], events: false)
            #expect(try list.waitExit() == 2, "\(url): \(list.log)")
            #expect(list.log.contains(expected), "\(url): \(list.log)")
        }
        // Before anything is forked, from the command line as from a config file's `database`.
        let master = try LaunchedMaster(
            [
                "run", "--headless", "--events", "-", "--control-socket", "none",
                "--db", "mongodb://db/nova", "scheduler",
            ], events: false)
        #expect(try master.waitExit() == 2)
        #expect(master.log.contains("unknown URL scheme 'mongodb:'"), "\(master.log)")
        #expect(!master.log.contains("fork →"))
    }

    enum BadDatabase: String, CaseIterable { case unwritable, notADatabase, newerSchema }

    @Test(arguments: BadDatabase.allCases)
    func aBadDatabaseIsAClearErrorNamingTheFileAndNothingIsForked(kind: BadDatabase) throws {
        let db = temporaryDatabase()
        let directory = (db as NSString).deletingLastPathComponent
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var path = db
        var expected = ""
        switch kind {
        case .unwritable:
            // Under a regular file: no user (root included) can create it.
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            FileManager.default.createFile(atPath: directory + "/plain-file", contents: Data("x".utf8))
            path = directory + "/plain-file/services.sqlite"
            expected = path
        case .notADatabase:
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            FileManager.default.createFile(
                atPath: db, contents: Data(String(repeating: "not sqlite ", count: 200).utf8))
            expected = "\(db): not an SQLite database"
        case .newerSchema:
            let migrate = try LaunchedMaster(["services", "migrate", "--db", db], events: false)
            #expect(try migrate.waitExit() == 0)
            let sqlite = try runToCompletion([
                "/usr/bin/sqlite3", db, "INSERT INTO grdb_migrations VALUES ('v99-from-the-future');",
            ])
            #expect(sqlite.status == 0, "\(sqlite.output)")
            expected = "\(db): the schema is from a newer forkwatch"
        }
        let master = try LaunchedMaster(
            [
                "run", "--headless", "--events", "-", "--control-socket", "none",
                "--db", path, "scheduler",
            ], events: false)
        #expect(try master.waitExit() == 2)
        let lines = master.log.split(separator: "\n")
        #expect(lines.count == 1, "\(master.log)")
        #expect(master.log.contains(expected), "\(master.log)")
        #expect(!master.log.contains("fork →"))
    }
}
