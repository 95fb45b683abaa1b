/// Every launcher option, declared once (project issue #12). `LauncherConfiguration.validate()`,
/// the config-file reader, the CLI's flags and `--help`, `ManagedService.create`, the control
/// socket's `scale` and the README's option table (`forkwatch options --markdown`) all read these.
public enum Settings {
    // MARK: The launcher (top-level keys)

    public static let gracefulShutdownTimeout = Setting<LauncherConfiguration, Double>(
        "graceful_shutdown_timeout", flag: "graceful-shutdown-timeout", default: 60, range: .atLeast(0),
        help: "seconds from SIGTERM to the workers until SIGKILL to survivors; 0 waits forever (oslo)",
        at: \.gracefulShutdownTimeout)
    public static let restartMethod = Setting<LauncherConfiguration, RestartMethod>(
        "restart_method", flag: "restart-method", default: .rolling, range: .anyMethod,
        help: "what SIGHUP does: `reload` (oslo: SIGTERM all, re-fork), `mutate` (oslo: SIGHUP, `reset()` in place), "
            + "`rolling` (one at a time, the new worker ready before the old one stops)",
        at: \.restartMethod)
    public static let bootWindow = Setting<LauncherConfiguration, Double>(
        "boot_window", flag: "boot-window", default: 1, range: .atLeast(0),
        help: "a worker dying within this many seconds of its fork is a quick death", at: \.bootWindow)
    public static let crashLoopThreshold = Setting<LauncherConfiguration, Int>(
        "crash_loop_threshold", flag: "crash-loop-threshold", default: 5, range: .atLeast(1),
        help: "quick deaths in a row that mark a service `crash-looping`", at: \.crashLoopThreshold)
    public static let forkThrottleInterval = Setting<LauncherConfiguration, Double>(
        "fork_throttle_interval", flag: "fork-throttle-interval", default: 1, range: .atLeast(0),
        help: "oslo's throttle wait (and seconds per worker of its window); 0 turns it off", at: \.forkThrottleInterval)
    public static let logFile = Setting<LauncherConfiguration, String>(
        "log_file", flag: "log-file", defaultText: "stderr", range: .nonEmpty("a path"),
        help: "the log of the master and its Swift workers; SIGUSR1 reopens it (workers too)", at: \.logFile)
    public static let maxWorkers = Setting<LauncherConfiguration, Int>(
        "max_workers", flag: "max-workers", defaultText: "fits the host: 4096, less if RLIMIT_NPROC or memory is short",
        range: .within(1...100_000),
        help: "the most workers of all services together, wherever a count enters (flags, file, scale, TTIN)",
        at: \.maxWorkers)
    public static let workersCgroup = Setting<LauncherConfiguration, String>(
        "workers_cgroup", flag: "workers-cgroup", defaultText: "none", range: .nonEmpty("a path"),
        help: "a cgroup v2 directory delegated to the master (not its own): every worker joins it at its fork, "
            + "and what is left in it is killed (cgroup.kill) when the master stops and when the next one starts",
        at: \.workersCgroup)
    public static let scaleSignalService = Setting<LauncherConfiguration, String>(
        "scale_signal_service", flag: "scale-signal-service", defaultText: "the first service",
        range: .nonEmpty("a service name"),
        help: "the service SIGTTIN adds a worker to and SIGTTOU takes one from (gunicorn's signals)",
        at: \.scaleSignalService)
    public static let controlBufferLimit = Setting<LauncherConfiguration, Int>(
        "control_buffer_limit", flag: "control-buffer-limit", default: 1 << 20, defaultText: "1 MiB",
        range: .within(4096...(1 << 30)),
        help: "bytes a control client may be owed (replies and events it has not read) before the master drops it",
        at: \.controlBufferLimit)
    public static let controlMaxClients = Setting<LauncherConfiguration, Int>(
        "control_max_clients", flag: "control-max-clients", default: 512, range: .within(1...100_000),
        help: "control-socket connections at once; the next one is refused with an error line",
        at: \.controlMaxClients)
    public static let reportInterval = Setting<LauncherConfiguration, Double>(
        "report_interval", flag: "report-interval", default: 10, range: .above(0),
        help: "seconds between heartbeats into the services table (nova)", at: \.reportInterval)
    public static let periodicEnable = Setting<LauncherConfiguration, Bool>(
        "periodic_enable", default: true, range: .either,
        help: "run the managers' periodic tasks", at: \.periodicEnable)
    public static let periodicFuzzyDelay = Setting<LauncherConfiguration, Int>(
        "periodic_fuzzy_delay", flag: "periodic-fuzzy-delay", default: 60, range: .atLeast(0),
        help: "random delay up to this many seconds before the first periodic pass (the demo uses 2)",
        at: \.periodicFuzzyDelay)
    public static let periodicIntervalMax = Setting<LauncherConfiguration, Double>(
        "periodic_interval_max", flag: "periodic-interval-max", defaultText: "none", range: .above(0),
        help: "cap on the idle time between periodic passes, seconds", at: \.periodicIntervalMax)
    public static let runExternalPeriodicTasks = Setting<LauncherConfiguration, Bool>(
        "run_external_periodic_tasks", default: true, range: .either,
        help: "run tasks marked `external_process_ok`", at: \.runExternalPeriodicTasks)
    public static let serviceDownTime = Setting<LauncherConfiguration, Double>(
        "service_down_time", default: 60, range: .above(0),
        help: "a service is down when its last heartbeat is older (raised to 2.5 × `report_interval`)",
        at: \.serviceDownTime)
    public static let database = Setting<LauncherConfiguration, String>(
        "database", flag: "db", defaultText: "`$XDG_STATE_HOME/forkwatch/forkwatch.sqlite`", range: .nonEmpty("a path"),
        help: "the services table: an SQLite path or `sqlite:///path` (checked before any fork; other schemes refused)",
        at: \.database)
    public static let host = Setting<LauncherConfiguration, String>(
        "host", defaultText: "hostname", range: .nonEmpty("a name"),
        help: "this host's name in the services table", at: \.host)
    public static let transportURL = Setting<LauncherConfiguration, String>(
        "transport_url", defaultText: "`sqlite:`",
        range: SettingRange("sqlite: or rabbit://user:pass@host:5672/vhost") {
            $0.hasPrefix("sqlite:") || $0.hasPrefix("rabbit://")
        },
        help: "RPC: `sqlite:` is the embedded transport in the services database; `rabbit://user:pass@host:5672/vhost` "
            + "RabbitMQ (oslo.messaging's rabbit wire protocol)",
        at: \.transportURL)
    public static let controlExchange = Setting<LauncherConfiguration, String>(
        "control_exchange", default: "openstack", range: .nonEmpty("a name"),
        help: "the RPC topic exchange on a broker (oslo's)", at: \.controlExchange)
    public static let rabbitRetryInterval = Setting<LauncherConfiguration, Int>(
        "rabbit_retry_interval", default: 1, range: .atLeast(1),
        help: "RabbitMQ: seconds before the first retry of a connection that failed (oslo's; kombu's interval_start)",
        at: \.rabbitRetryInterval)
    public static let rabbitRetryBackoff = Setting<LauncherConfiguration, Int>(
        "rabbit_retry_backoff", default: 2, range: .atLeast(0),
        help: "RabbitMQ: seconds each failed retry adds to the wait (oslo's; kombu's interval_step)",
        at: \.rabbitRetryBackoff)
    public static let rabbitIntervalMax = Setting<LauncherConfiguration, Int>(
        "rabbit_interval_max", default: 30, range: .atLeast(1),
        help: "RabbitMQ: the longest wait between retries, seconds (oslo's); oslo's kombu_reconnect_delay (1 s) "
            + "comes on top after a lost connection",
        at: \.rabbitIntervalMax)

    // MARK: One service (`services.NAME.…`)

    /// The one worker-count range, wherever a count enters: `--workers`, the config file, the
    /// control socket's `scale`, `forkwatch scale`, the demo's counts. 2^31 workers ran a host out of memory.
    public static let workers = Setting<ServiceSpec, Int>(
        "workers", .service, flag: "workers", default: 1, range: .within(1...100_000),
        help: "workers of that service", at: \.workers)
    public static let listen = Setting<ListenSpec, String>(
        "listen", .service, flag: "listen", default: "0.0.0.0", range: .nonEmpty("an address"),
        help: "the address to listen on (with `port`)", at: \.host)
    public static let port = Setting<ListenSpec, Int>(
        "port", .service, flag: "port", defaultText: "none", range: .within(0...65535),
        help: "bind and listen on this TCP port once, before forking; all the service's workers share the socket "
            + "(a command gets it as fd 3 with `LISTEN_FDS=1`, `LISTEN_PID`, `LISTEN_FDNAMES`, the systemd way); 0 picks a free port; `api` takes 8774 when unset",
        at: \.port)
    /// Passed to listen(2) as an int; the kernel caps it at net.core.somaxconn anyway.
    public static let backlog = Setting<ListenSpec, Int>(
        "backlog", .service, flag: "backlog", default: 128, range: .within(1...65535),
        help: "the listen backlog; the dashboard shows the accept queue against it (`backlog 3/128`)", at: \.backlog)
    /// Linux refuses a TCP_KEEPIDLE above MAX_TCP_KEEPIDLE (32767).
    public static let tcpKeepidle = Setting<ListenSpec, Int>(
        "tcp_keepidle", .service, flag: "tcp-keepidle", default: 600, range: .within(1...32767),
        help: "TCP_KEEPIDLE seconds for accepted connections (SO_REUSEADDR and SO_KEEPALIVE are always on)",
        at: \.tcpKeepidle)

    // MARK: An HTTP service (`api`, nova's [wsgi] and oslo's [ssl]); docs/http.md

    public static let enabledAPIs = Setting<HTTPOptions, [String]>(
        "enabled_apis", .http, default: HTTPOptions.defaultAPIs, defaultText: "`osapi_compute, metadata`",
        range: .nonEmptyNames("one or more app names"),
        help: "the apps to mount (a list, or nova's comma-separated string)", at: \.enabledAPIs)
    public static let poolSize = Setting<HTTPOptions, Int>(
        "pool_size", .http, default: 1000, range: .atLeast(1),
        help: "connections one worker serves at once; past it the kernel queue holds the rest", at: \.poolSize)
    public static let keepAlive = Setting<HTTPOptions, Bool>(
        "keep_alive", .http, default: true, range: .either, help: "HTTP keep-alive", at: \.keepAlive)
    public static let clientSocketTimeout = Setting<HTTPOptions, Double>(
        "client_socket_timeout", .http, default: 900, range: .atLeast(0),
        help: "seconds a connection may sit idle before it is closed; 0 = forever", at: \.clientSocketTimeout)
    public static let clientHeaderTimeout = Setting<HTTPOptions, Double>(
        "client_header_timeout", .http, default: 60, range: .atLeast(0),
        help:
            "seconds a client has to send a whole request head (nginx's, 60) before a 408 and the close; 0 = no limit",
        at: \.clientHeaderTimeout)
    public static let maxHeaderLine = Setting<HTTPOptions, Int>(
        "max_header_line", .http, default: 16384, range: .atLeast(64),
        help: "longest request line or header line accepted, in bytes", at: \.maxHeaderLine)
    public static let certFile = Setting<HTTPOptions, String>(
        "cert_file", .http, defaultText: "none", range: .nonEmpty("a path"),
        help: "TLS certificate (PEM), with `key_file`", at: \.certFile)
    public static let keyFile = Setting<HTTPOptions, String>(
        "key_file", .http, defaultText: "none", range: .nonEmpty("a path"),
        help: "TLS private key (PEM), with `cert_file`", at: \.keyFile)
    public static let caFile = Setting<HTTPOptions, String>(
        "ca_file", .http, defaultText: "none", range: .nonEmpty("a path"),
        help: "CA certificates (PEM): clients must present a certificate signed by one", at: \.caFile)
    public static let accessLog = Setting<HTTPOptions, Bool>(
        "access_log", .http, default: false, range: .either,
        help: "one log line per request, oslo's `wsgi_log_format` (it costs throughput)", at: \.accessLog)

    // MARK: Lists, in the README's order

    public static let launcher: [AnySetting<LauncherConfiguration>] = [
        gracefulShutdownTimeout.erased, restartMethod.erased, bootWindow.erased, crashLoopThreshold.erased,
        forkThrottleInterval.erased, logFile.erased, maxWorkers.erased, workersCgroup.erased,
        scaleSignalService.erased, controlBufferLimit.erased, controlMaxClients.erased, reportInterval.erased,
        periodicEnable.erased,
        periodicFuzzyDelay.erased, periodicIntervalMax.erased, runExternalPeriodicTasks.erased, serviceDownTime.erased,
        database.erased, host.erased, transportURL.erased, controlExchange.erased, rabbitRetryInterval.erased,
        rabbitRetryBackoff.erased, rabbitIntervalMax.erased,
    ]
    public static let service: [AnySetting<ServiceSpec>] = [workers.erased]
    public static let listenSocket: [AnySetting<ListenSpec>] = [
        listen.erased, port.erased, backlog.erased, tcpKeepidle.erased,
    ]
    public static let http: [AnySetting<HTTPOptions>] = [
        enabledAPIs.erased, poolSize.erased, keepAlive.erased, clientSocketTimeout.erased, clientHeaderTimeout.erased,
        maxHeaderLine.erased,
        certFile.erased, keyFile.erased, caFile.erased, accessLog.erased,
    ]

    /// Every option, for the README's table, `--help` and the tests.
    public static var all: [SettingSummary] {
        launcher.map(\.summary) + service.map(\.summary) + listenSocket.map(\.summary) + http.map(\.summary)
    }

    /// The keys a service's mapping takes besides these options.
    public static let serviceStructureKeys = ["service", "command"]

    /// The keys of a service's mapping, for the unknown-key error.
    public static var serviceKeys: [String] {
        service.map(\.key) + serviceStructureKeys + listenSocket.map(\.key) + http.map(\.key)
    }

    /// The top-level keys of a config file: the launcher's options and `services`.
    public static var topLevelKeys: [String] { launcher.map(\.key) + ["services"] }

    /// The README's option table: one row per option, then the command line's own flags.
    public static func markdownTable() -> String {
        var lines = ["| option | flag | default | range | meaning |", "| --- | --- | --- | --- | --- |"]
        func cell(_ text: String) -> String { text.replacingAll("|", with: "\\|") }
        func row(_ summary: SettingSummary) -> String {
            let flag = summary.flag.map { "`\($0)`" } ?? ""
            // The HTTP service's options have no flags: it reads them from its entry in the file.
            let meaning =
                summary.scope == .http
                ? "HTTP services (`api`, [docs/http.md](docs/http.md)): \(summary.help)" : summary.help
            return
                "| `\(summary.documentedKey)` | \(flag) | \(cell(summary.defaultText)) | \(cell(summary.rangeText)) | \(cell(meaning)) |"
        }
        let summaries = all
        lines += summaries.filter { $0.scope == .launcher }.map(row)
        lines.append(
            "| `services.NAME.service` / `.command` | SERVICE / `-- COMMAND…` | the name | | a built-in Swift service, or any program |"
        )
        lines += summaries.filter { $0.scope == .service }.map(row)
        lines += summaries.filter { $0.scope == .http }.map(row)
        lines += [
            "| | `--events FILE` | | | every event as a JSON line (`-` = stdout) |",
            "| | `--control-socket PATH` | see below | | the control socket, or `none` |",
        ]
        return lines.joined(separator: "\n") + "\n"
    }
}

extension String {
    func replacingAll(_ target: Character, with replacement: String) -> String {
        var out = ""
        for character in self { if character == target { out += replacement } else { out.append(character) } }
        return out
    }
}
