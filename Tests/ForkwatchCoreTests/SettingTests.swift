import ForkwatchCore
import Foundation
import Testing

/// The option declarations (issue #12): each range accepts its default and its edges and refuses
/// just outside them, naming the option, the value and the range; the config keys, the flags and
/// the README's table list the same options.
@Suite struct SettingTests {
    /// Stores `text` into a default root through the declaration of `key`; the problem, or nil.
    static func assign(_ key: String, _ input: SettingInput, as name: String? = nil) -> String? {
        if let setting = Settings.launcher.first(where: { $0.key == key }) {
            var root = LauncherConfiguration()
            return setting.assign(input, to: &root, as: name)?.message
        }
        if let setting = Settings.service.first(where: { $0.key == key }) {
            var root = ServiceSpec(name: "s", program: .builtin("idle"), workers: 1)
            return setting.assign(input, to: &root, as: name)?.message
        }
        if let setting = Settings.listenSocket.first(where: { $0.key == key }) {
            var root = ListenSpec(port: 0)
            return setting.assign(input, to: &root, as: name)?.message
        }
        if let setting = Settings.http.first(where: { $0.key == key }) {
            var root = HTTPOptions()
            return setting.assign(input, to: &root, as: name)?.message
        }
        return "no setting '\(key)'"
    }

    /// Every option: values at the edges of its range, and the error for values just outside.
    static let edges: [(key: String, accepted: [String], refused: [(String, String)])] = [
        (
            "graceful_shutdown_timeout", ["0", "60", "1e9"],
            [
                ("-0.001", "graceful_shutdown_timeout must be >= 0, got -0.001"),
                ("inf", "graceful_shutdown_timeout must be >= 0, got inf"),
                ("soon", "graceful_shutdown_timeout must be a number >= 0, got 'soon'"),
            ]
        ),
        (
            "restart_method", ["reload", "mutate", "rolling"],
            [("sideways", "restart_method must be one of reload, mutate, rolling, got 'sideways'")]
        ),
        ("boot_window", ["0", "1"], [("-1", "boot_window must be >= 0, got -1")]),
        (
            "crash_loop_threshold", ["1", "5"],
            [
                ("0", "crash_loop_threshold must be >= 1, got 0"),
                ("1.5", "crash_loop_threshold must be a whole number >= 1, got '1.5'"),
            ]
        ),
        ("fork_throttle_interval", ["0", "1"], [("-1", "fork_throttle_interval must be >= 0, got -1")]),
        ("log_file", ["/tmp/f.log"], [("", "log_file must be a path, got ''")]),
        (
            "max_workers", ["1", "4096", "100000"],
            [
                ("0", "max_workers must be 1-100000, got 0"),
                ("100001", "max_workers must be 1-100000, got 100001"),
            ]
        ),
        (
            "workers_cgroup", ["/sys/fs/cgroup/forkwatch.service/workers"],
            [("", "workers_cgroup must be a path, got ''")]
        ),
        ("scale_signal_service", ["api"], [("", "scale_signal_service must be a service name, got ''")]),
        (
            "control_buffer_limit", ["4096", "1073741824"],
            [
                ("4095", "control_buffer_limit must be 4096-1073741824, got 4095"),
                ("1073741825", "control_buffer_limit must be 4096-1073741824, got 1073741825"),
            ]
        ),
        (
            "control_max_clients", ["1", "100000"],
            [("0", "control_max_clients must be 1-100000, got 0")]
        ),
        (
            "report_interval", ["0.001", "10"],
            [("0", "report_interval must be > 0, got 0"), ("-1", "report_interval must be > 0, got -1")]
        ),
        ("periodic_enable", ["true", "no", "ON"], [("maybe", "periodic_enable must be true or false, got 'maybe'")]),
        ("periodic_fuzzy_delay", ["0", "60"], [("-1", "periodic_fuzzy_delay must be >= 0, got -1")]),
        ("periodic_interval_max", ["0.5", "3600"], [("0", "periodic_interval_max must be > 0, got 0")]),
        (
            "run_external_periodic_tasks", ["false", "yes"],
            [("2", "run_external_periodic_tasks must be true or false, got '2'")]
        ),
        ("service_down_time", ["0.1", "60"], [("0", "service_down_time must be > 0, got 0")]),
        ("database", ["/tmp/db.sqlite"], [("", "database must be a path, got ''")]),
        ("host", ["compute-1"], [("", "host must be a name, got ''")]),
        (
            "transport_url", ["sqlite:", "rabbit://u:p@mq:5672/"],
            [("kafka://x", "transport_url must be sqlite: or rabbit://user:pass@host:5672/vhost, got 'kafka://x'")]
        ),
        ("control_exchange", ["nova"], [("", "control_exchange must be a name, got ''")]),
        (
            "rabbit_retry_interval", ["1", "60"],
            [
                ("0", "rabbit_retry_interval must be >= 1, got 0"),
                ("0.5", "rabbit_retry_interval must be a whole number >= 1, got '0.5'"),
            ]
        ),
        ("rabbit_retry_backoff", ["0", "2"], [("-1", "rabbit_retry_backoff must be >= 0, got -1")]),
        ("rabbit_interval_max", ["1", "30"], [("0", "rabbit_interval_max must be >= 1, got 0")]),
        (
            "workers", ["1", "100000"],
            [
                ("0", "workers must be 1-100000, got 0"), ("100001", "workers must be 1-100000, got 100001"),
                ("2147483648", "workers must be 1-100000, got 2147483648"),
            ]
        ),
        ("listen", ["127.0.0.1", "::"], [("", "listen must be an address, got ''")]),
        (
            "port", ["0", "65535"],
            [("-1", "port must be 0-65535, got -1"), ("65536", "port must be 0-65535, got 65536")]
        ),
        (
            "backlog", ["1", "65535"],
            [("0", "backlog must be 1-65535, got 0"), ("65536", "backlog must be 1-65535, got 65536")]
        ),
        (
            "tcp_keepidle", ["1", "32767"],
            [("0", "tcp_keepidle must be 1-32767, got 0"), ("32768", "tcp_keepidle must be 1-32767, got 32768")]
        ),
        (
            "enabled_apis", ["osapi_compute", "osapi_compute, metadata"],
            [
                ("", "enabled_apis must be one or more app names, got []"),
                (" , x", "enabled_apis must be one or more app names, got [, x]"),
            ]
        ),
        ("pool_size", ["1", "1000"], [("0", "pool_size must be >= 1, got 0")]),
        ("keep_alive", ["true", "off"], [("sometimes", "keep_alive must be true or false, got 'sometimes'")]),
        ("client_socket_timeout", ["0", "900"], [("-1", "client_socket_timeout must be >= 0, got -1")]),
        ("client_header_timeout", ["0", "60"], [("-1", "client_header_timeout must be >= 0, got -1")]),
        ("max_header_line", ["64", "16384"], [("63", "max_header_line must be >= 64, got 63")]),
        ("cert_file", ["/c.pem"], [("", "cert_file must be a path, got ''")]),
        ("key_file", ["/k.pem"], [("", "key_file must be a path, got ''")]),
        ("ca_file", ["/ca.pem"], [("", "ca_file must be a path, got ''")]),
        ("access_log", ["false", "yes"], [("loud", "access_log must be true or false, got 'loud'")]),
    ]

    @Test(arguments: edges.map(\.key))
    func theRangeAcceptsItsEdgesAndRefusesJustOutside(key: String) {
        let entry = Self.edges.first { $0.key == key }!
        for text in entry.accepted {
            #expect(Self.assign(key, .text(text)) == nil, "\(key): \(text)")
        }
        for (text, message) in entry.refused {
            #expect(Self.assign(key, .text(text)) == message)
            // The same check, spelled as the config file's key or a flag.
            #expect(Self.assign(key, .text(text), as: "services.web.\(key)") == "services.web." + message)
        }
    }

    @Test func everyOptionHasEdgeCases() {
        #expect(Set(Self.edges.map(\.key)) == Set(Settings.all.map(\.key)))
        #expect(Self.edges.count == Settings.all.count)
    }

    @Test func everyDefaultIsInItsRangeAndIsTheTypesDefault() {
        for setting in Settings.launcher {
            #expect(setting.defaultProblem == nil, "\(setting.key)")
            #expect(setting.hasDefault(in: LauncherConfiguration()), "\(setting.key)")
        }
        for setting in Settings.http {
            #expect(setting.defaultProblem == nil, "\(setting.key)")
            #expect(setting.hasDefault(in: HTTPOptions()), "\(setting.key)")
        }
        for setting in Settings.listenSocket where setting.key != "port" {
            #expect(setting.defaultProblem == nil, "\(setting.key)")
            #expect(setting.hasDefault(in: ListenSpec(port: 0)), "\(setting.key)")
        }
        #expect(Settings.workers.defaultValue == 1 && Settings.workers.erased.defaultProblem == nil)
        #expect(Settings.port.defaultValue == nil && Settings.port.defaultText == "none")
    }

    @Test func aFlagsErrorNamesTheFlag() {
        #expect(Settings.reportInterval.checkFlag(-1) == "--report-interval must be > 0, got -1")
        #expect(Settings.database.checkFlag("") == "--db must be a path, got ''")
        #expect(Settings.workers.checkFlag(0) == "--workers must be 1-100000, got 0")
        #expect(Settings.workers.checkFlag(100_000) == nil)
        // An option without a flag is named by its key.
        #expect(Settings.serviceDownTime.checkFlag(0) == "service_down_time must be > 0, got 0")
    }

    @Test func aListOrAMappingIsRefusedWhereAScalarBelongs() {
        #expect(Self.assign("workers", .list(["1"])) == "workers must be a whole number 1-100000, got [1]")
        #expect(Self.assign("log_file", .mapping) == "log_file must be a path, got a mapping")
        #expect(Self.assign("enabled_apis", .list(["osapi_compute"])) == nil)
    }

    @Test func validateChecksThroughTheDeclarations() {
        var configuration = LauncherConfiguration()
        #expect(configuration.validate() == nil)
        configuration.reportInterval = -1
        #expect(configuration.validate() == "report_interval must be > 0, got -1")
        configuration = LauncherConfiguration()
        configuration.services = [ServiceSpec(name: "web", program: .builtin("idle"), workers: 1 << 31)]
        #expect(configuration.validate() == "service 'web': workers must be 1-100000, got 2147483648")
        configuration.services = [
            ServiceSpec(name: "web", program: .builtin("idle"), workers: 1, listen: ListenSpec(port: 80, backlog: 0))
        ]
        #expect(configuration.validate() == "service 'web': backlog must be 1-65535, got 0")
        #expect(HTTPOptions(maxHeaderLine: 10).validate() == "max_header_line must be >= 64, got 10")
        #expect(HTTPOptions(certFile: "/c.pem").validate() == "cert_file and key_file must be given together")
    }

    @Test func theControlSocketsScaleUsesTheWorkersRange() {
        func error(_ line: String) -> String? {
            if case .failure(let error) = ControlRequest.parse(line) { return error.message }
            return nil
        }
        #expect(error("{\"op\":\"scale\",\"service\":\"a\",\"workers\":100000}") == nil)
        #expect(
            error("{\"op\":\"scale\",\"service\":\"a\",\"workers\":100001}")
                == "scale: workers must be 1-100000, got 100001")
        #expect(error("{\"op\":\"scale\",\"service\":\"a\",\"workers\":0}") == "scale: workers must be 1-100000, got 0")
        #expect(
            error("{\"op\":\"scale\",\"service\":\"a\",\"workers\":2.5}")
                == "scale needs \"workers\": a whole number 1-100000")
    }

    /// The config file's keys, the flags and the README's table name the same options.
    @Test func theKeysTheFlagsAndTheTableCoverTheSameOptions() throws {
        let topLevel = Set(Settings.topLevelKeys)
        #expect(topLevel == Set(Settings.launcher.map(\.key) + ["services"]))
        #expect(
            Set(Settings.serviceKeys)
                == Set(
                    (Settings.service.map(\.key) + Settings.listenSocket.map(\.key)
                        + Settings.http.map(\.key) + Settings.serviceStructureKeys)))
        let table = Settings.markdownTable()
        for option in Settings.all {
            #expect(table.contains("| `\(option.documentedKey)` |"), "\(option.key) is not in the table")
            if let flag = option.flag { #expect(table.contains("| `\(flag)` |"), "\(flag) is not in the table") }
        }
        let flags = Settings.all.compactMap(\.flag)
        #expect(Set(flags).count == flags.count, "two options share a flag")
        #expect(Set(Settings.all.map(\.documentedKey)).count == Settings.all.count, "two options share a key")
    }

    /// README.md's option table is the generated one: regenerate it with
    /// `swift run forkwatch options --markdown` when an option changes.
    @Test func theReadmeTableIsGeneratedFromTheDeclarations() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        let lines = readme.split(separator: "\n", omittingEmptySubsequences: false)
        let start = try #require(
            lines.firstIndex { $0.hasPrefix("| option | flag | default |") }, "README.md has no option table")
        let end = lines[start...].firstIndex { !$0.hasPrefix("|") } ?? lines.endIndex
        let table = lines[start..<end].joined(separator: "\n") + "\n"
        #expect(
            table == Settings.markdownTable(),
            "README.md's option table differs: swift run forkwatch options --markdown")
    }
}
