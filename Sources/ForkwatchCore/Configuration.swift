/// How SIGHUP restarts workers.
public struct RestartMethod: Hashable, Sendable, CustomStringConvertible {
    private enum Kind: String { case reload, mutate, rolling }
    private let kind: Kind

    /// SIGTERM every worker and fork replacements as they exit (oslo's `reload`).
    public static let reload = RestartMethod(kind: .reload)
    /// SIGHUP every worker; built-in workers call `reset()` in place (oslo's `mutate`, nova's choice).
    public static let mutate = RestartMethod(kind: .mutate)
    /// One worker at a time: a new worker is ready before an old one is stopped.
    public static let rolling = RestartMethod(kind: .rolling)

    public static let all: [RestartMethod] = [.reload, .mutate, .rolling]

    public init?(name: String) {
        guard let kind = Kind(rawValue: name) else { return nil }
        self.kind = kind
    }

    private init(kind: Kind) { self.kind = kind }

    public var name: String { kind.rawValue }
    public var description: String { kind.rawValue }
}

/// What a service's workers run.
public enum Program: Hashable, Sendable {
    /// A Swift service registered under this name, run in a forked worker without exec.
    case builtin(String)
    /// Any program: fork, then execve in the child.
    case command([String])

    public var summary: String {
        switch self {
        case .builtin(let name): return name
        case .command(let argv): return argv.joined(separator: " ")
        }
    }
}

/// A TCP socket the master binds and listens on once, before forking, for all the workers of a
/// service (oslo/nova's `listen`, `port`, `backlog`, `tcp_keepidle`).
public struct ListenSpec: Hashable, Sendable {
    public var host: String
    public var port: Int
    public var backlog: Int
    public var tcpKeepidle: Int

    public init(host: String = "0.0.0.0", port: Int, backlog: Int = 128, tcpKeepidle: Int = 600) {
        self.host = host
        self.port = port
        self.backlog = backlog
        self.tcpKeepidle = tcpKeepidle
    }

    /// The problem with these values, or nil (`Settings.listenSocket`'s ranges).
    public func validate() -> String? {
        Settings.listenSocket.lazy.compactMap { $0.check(self) }.first
    }
}

/// How a built-in HTTP service's workers serve (nova's `[wsgi]` options and oslo's `[ssl]`).
/// Read in the worker; the master only checks them.
public struct HTTPOptions: Hashable, Sendable {
    /// The apps to mount, by name, each at its own path prefix (nova `enabled_apis`).
    public var enabledAPIs: [String]
    /// Connections one worker serves at once; past it the worker stops accepting and the
    /// kernel queue holds the rest (nova `default_pool_size`, 1000).
    public var poolSize: Int
    /// HTTP keep-alive (nova `keep_alive`); off = every response closes its connection.
    public var keepAlive: Bool
    /// Seconds a connection may sit without sending anything before it is closed; 0 = forever
    /// (nova `client_socket_timeout`, 900).
    public var clientSocketTimeout: Double
    /// Seconds a connection may take to send a whole request head (nginx `client_header_timeout`,
    /// 60); 0 = forever.
    public var clientHeaderTimeout: Double = 60
    /// Longest request line or header line accepted, in bytes (nova `max_header_line`, 16384).
    public var maxHeaderLine: Int
    /// TLS (oslo's `use_ssl`): both or neither. With `caFile`, clients must present a certificate.
    public var certFile: String?
    public var keyFile: String?
    public var caFile: String?
    /// One log line per request, in oslo's `wsgi_log_format` (off by default: it costs throughput).
    public var accessLog: Bool

    public static let defaultAPIs = ["osapi_compute", "metadata"]

    public init(
        enabledAPIs: [String] = HTTPOptions.defaultAPIs, poolSize: Int = 1000, keepAlive: Bool = true,
        clientSocketTimeout: Double = 900, maxHeaderLine: Int = 16384, certFile: String? = nil,
        keyFile: String? = nil, caFile: String? = nil, accessLog: Bool = false
    ) {
        self.enabledAPIs = enabledAPIs
        self.poolSize = poolSize
        self.keepAlive = keepAlive
        self.clientSocketTimeout = clientSocketTimeout
        self.maxHeaderLine = maxHeaderLine
        self.certFile = certFile
        self.keyFile = keyFile
        self.caFile = caFile
        self.accessLog = accessLog
    }

    public var usesTLS: Bool { certFile != nil || keyFile != nil }

    /// The problem with these values, or nil (files are checked before the fork, by the CLI).
    public func validate() -> String? {
        if let problem = Settings.http.lazy.compactMap({ $0.check(self) }).first { return problem }
        // oslo sslutils: one of the pair alone is an error, not a silent plain-text server.
        if (certFile == nil) != (keyFile == nil) { return "cert_file and key_file must be given together" }
        if caFile != nil && certFile == nil { return "ca_file needs cert_file and key_file" }
        return nil
    }
}

/// One supervised service: a name, what it runs, how many workers, and the socket they share.
public struct ServiceSpec: Hashable, Sendable {
    public var name: String
    public var program: Program
    public var workers: Int
    public var listen: ListenSpec?
    /// For built-in HTTP services (`api`); ignored by the others.
    public var http: HTTPOptions

    public init(
        name: String, program: Program, workers: Int, listen: ListenSpec? = nil, http: HTTPOptions = HTTPOptions()
    ) {
        self.name = name
        self.program = program
        self.workers = workers
        self.listen = listen
        self.http = http
    }
}

/// The launcher's options, with oslo.service's names and defaults where oslo has the option.
public struct LauncherConfiguration: Hashable, Sendable {
    /// oslo `graceful_shutdown_timeout`: seconds between SIGTERM to the workers and SIGKILL to
    /// the survivors. 0 waits forever.
    public var gracefulShutdownTimeout: Double = 60
    /// oslo `restart_method`, plus forkwatch's `rolling` (the default).
    public var restartMethod: RestartMethod = .rolling
    /// A worker that dies sooner than this after its fork counts as a quick death.
    public var bootWindow: Double = 1
    /// This many quick deaths in a row mark the service crash-looping.
    public var crashLoopThreshold: Int = 5
    /// The throttle's wait and its seconds-per-worker window (oslo: 1 s, hard-coded). 0 = off.
    public var forkThrottleInterval: Double = 1
    /// Where the master's log lines go (SIGUSR1 reopens it); nil = standard error.
    public var logFile: String?
    /// The most workers of all services together; nil = what the host fits (filled in before
    /// the launcher starts: `hostWorkerLimit`).
    public var maxWorkers: Int?
    /// A cgroup v2 directory the workers join (and that is emptied with cgroup.kill); nil = none.
    public var workersCgroup: String?
    /// The service SIGTTIN / SIGTTOU scale; nil = the first one.
    public var scaleSignalService: String?
    /// Bytes a control client may be owed before it is dropped.
    public var controlBufferLimit = 1 << 20
    /// Control-socket connections at once.
    public var controlMaxClients = 512
    public var services: [ServiceSpec] = []

    // nova's options for managed services (`Service.create`), their workers read them.
    /// Seconds between heartbeats into the services table (nova `report_interval`).
    public var reportInterval: Double = 10
    /// Run the managers' periodic tasks (nova `periodic_enable`).
    public var periodicEnable = true
    /// Up to this many seconds of random delay before the first periodic pass (nova `periodic_fuzzy_delay`).
    public var periodicFuzzyDelay = 60
    /// Cap on the idle time between periodic passes (oslo `periodic_interval_max`); nil = none.
    public var periodicIntervalMax: Double?
    /// Tasks marked external_process_ok run only when this is on (oslo `run_external_periodic_tasks`).
    public var runExternalPeriodicTasks = true
    /// A service whose last heartbeat is older than this is down (nova `service_down_time`).
    public var serviceDownTime: Double = 60
    /// The SQLite file of the services table; nil = the default under the state directory.
    public var database: String?
    /// This host's name in the services table; nil = the machine's hostname (nova `host`).
    public var host: String?
    /// oslo's `transport_url`: `sqlite:` (nil, the default) is the embedded transport in the
    /// services database; `rabbit://user:pass@host:5672/vhost` a RabbitMQ broker.
    public var transportURL: String?
    /// oslo's `control_exchange`: the topic exchange of RPC on a broker.
    public var controlExchange = "openstack"
    /// oslo's `rabbit_retry_interval`, `rabbit_retry_backoff`, `rabbit_interval_max`: how a
    /// RabbitMQ connection is made again (`ReconnectBackoff`).
    public var rabbitRetryInterval = 1
    public var rabbitRetryBackoff = 2
    public var rabbitIntervalMax = 30

    /// The reconnect schedule these options give.
    public var reconnectBackoff: ReconnectBackoff {
        ReconnectBackoff(
            retryInterval: Double(rabbitRetryInterval), retryBackoff: Double(rabbitRetryBackoff),
            intervalMax: Double(rabbitIntervalMax))
    }

    public init() {}

    /// Checks values that no type can: returns the first problem, naming the option.
    public func validate() -> String? {
        if let problem = Settings.launcher.lazy.compactMap({ $0.check(self) }).first { return problem }
        var seen = Set<String>()
        for service in services {
            if !seen.insert(service.name).inserted { return "service '\(service.name)' is defined twice" }
            if let problem = Settings.service.lazy.compactMap({ $0.check(service) }).first {
                return "service '\(service.name)': \(problem)"
            }
            if case .command(let argv) = service.program, argv.isEmpty {
                return "service '\(service.name)': command is empty"
            }
            if let problem = service.listen?.validate() { return "service '\(service.name)': \(problem)" }
            if let problem = service.http.validate() { return "service '\(service.name)': \(problem)" }
        }
        if let problem = checkTotalWorkers(services.reduce(0) { $0 + $1.workers }) { return problem }
        if let name = scaleSignalService, !services.isEmpty, !seen.contains(name) {
            return
                "scale_signal_service names '\(name)', which is not a service here (\(services.map(\.name).joined(separator: ", ")))"
        }
        return nil
    }

    /// The one bound on all workers together (`max_workers`), for a configuration and a scale.
    public func checkTotalWorkers(_ total: Int) -> String? {
        guard let maxWorkers, total > maxWorkers else { return nil }
        return "\(total) workers in all is over max_workers \(maxWorkers) (what this host fits unless set); "
            + "raise max_workers (--max-workers) to allow more"
    }
}
