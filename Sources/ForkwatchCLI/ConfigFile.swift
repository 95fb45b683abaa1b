import Forkwatch
import ForkwatchCore
import Yams

/// A configuration problem, located: `forkwatch.yaml:7: restart_method must be one of …`.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let line: Int?
    public let message: String

    public init(path: String, line: Int?, message: String) {
        self.path = path
        self.line = line
        self.message = message
    }

    public var description: String { line.map { "\(path):\($0): \(message)" } ?? "\(path): \(message)" }
}

/// Reads the launcher's YAML configuration file, with oslo's option names:
///
///     graceful_shutdown_timeout: 60
///     restart_method: rolling        # reload | mutate | rolling
///     services:
///       web:
///         workers: 4
///         command: ["python3", "-m", "http.server", "8000"]
///       idle:
///         workers: 2                 # built-in service "idle" (the name, or `service: NAME`)
///
/// Unknown options, wrong types and bad values are errors with the line they are on.
public enum ConfigFile {
    public static func load(_ path: String, onto base: LauncherConfiguration = LauncherConfiguration()) throws(ConfigError) -> LauncherConfiguration {
        let text: String
        do {
            text = try Posix.readFile(path)
        } catch {
            throw ConfigError(path: path, line: nil, message: "cannot read: \(error.message)")
        }
        return try parse(text, path: path, onto: base)
    }

    public static func parse(_ text: String, path: String, onto base: LauncherConfiguration = LauncherConfiguration()) throws(ConfigError) -> LauncherConfiguration {
        func fail(_ node: Node?, _ message: String) -> ConfigError {
            ConfigError(path: path, line: node?.mark?.line, message: message)
        }
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            switch error {
            case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
                throw ConfigError(path: path, line: mark.line, message: "not valid YAML: \(problem)")
            default:
                throw ConfigError(path: path, line: nil, message: "not valid YAML: \(error)")
            }
        } catch {
            throw ConfigError(path: path, line: nil, message: "not valid YAML: \(error)")
        }
        var configuration = base
        guard let root else { return configuration }  // an empty file: all defaults
        guard case .mapping(let options) = root else {
            throw fail(root, "expected a mapping of option: value at the top level")
        }
        for (keyNode, value) in options {
            let key = keyNode.string ?? ""
            switch key {
            case "graceful_shutdown_timeout":
                configuration.gracefulShutdownTimeout = try number(value, key, min: 0, fail)
            case "restart_method":
                guard let name = value.string, let method = RestartMethod(name: name) else {
                    throw fail(value, "restart_method must be one of reload, mutate, rolling; got '\(value.string ?? "?")'")
                }
                configuration.restartMethod = method
            case "boot_window":
                configuration.bootWindow = try number(value, key, min: 0, fail)
            case "crash_loop_threshold":
                configuration.crashLoopThreshold = try integer(value, key, min: 1, fail)
            case "fork_throttle_interval":
                configuration.forkThrottleInterval = try number(value, key, min: 0, fail)
            case "log_file":
                configuration.logFile = try nonEmptyString(value, key, "a path", fail)
            case "report_interval":
                configuration.reportInterval = try number(value, key, min: 0.001, fail)
            case "periodic_enable":
                configuration.periodicEnable = try boolean(value, key, fail)
            case "periodic_fuzzy_delay":
                configuration.periodicFuzzyDelay = try integer(value, key, min: 0, fail)
            case "periodic_interval_max":
                configuration.periodicIntervalMax = try number(value, key, min: 0.001, fail)
            case "run_external_periodic_tasks":
                configuration.runExternalPeriodicTasks = try boolean(value, key, fail)
            case "service_down_time":
                configuration.serviceDownTime = try number(value, key, min: 0.001, fail)
            case "database":
                configuration.database = try nonEmptyString(value, key, "a path", fail)
            case "host":
                configuration.host = try nonEmptyString(value, key, "a name", fail)
            case "transport_url":
                configuration.transportURL = try nonEmptyString(value, key, "a URL", fail)
            case "control_exchange":
                configuration.controlExchange = try nonEmptyString(value, key, "a name", fail)
            case "services":
                configuration.services = try services(value, fail)
            default:
                let known = LauncherConfiguration.options.map(\.name).joined(separator: ", ")
                throw fail(keyNode, "unknown option '\(key)' (known: \(known))")
            }
        }
        if let problem = configuration.validate() { throw ConfigError(path: path, line: nil, message: problem) }
        return configuration
    }

    private static func services(_ node: Node, _ fail: (Node?, String) -> ConfigError) throws(ConfigError) -> [ServiceSpec] {
        guard case .mapping(let entries) = node else { throw fail(node, "services must be a mapping of name: {workers, service | command}") }
        var specs: [ServiceSpec] = []
        for (nameNode, body) in entries {
            guard let name = nameNode.string, !name.isEmpty else { throw fail(nameNode, "a service needs a name") }
            var workers = 1
            var builtin: String?
            var command: [String]?
            var host: String?
            var port: Int?
            var backlog = 128
            var keepidle = 600
            var http = HTTPOptions()
            if case .mapping(let fields) = body {
                for (fieldNode, value) in fields {
                    switch fieldNode.string ?? "" {
                    case "workers":
                        workers = try integer(value, "services.\(name).workers", min: 1, fail)
                    case "service":
                        guard let service = value.string else { throw fail(value, "services.\(name).service must be a name") }
                        builtin = service
                    case "command":
                        switch value {
                        case .scalar(let scalar):
                            command = scalar.string.split(separator: " ").map(String.init)
                        case .sequence(let items):
                            command = items.map { $0.string ?? "" }
                        default:
                            throw fail(value, "services.\(name).command must be a string or a list of strings")
                        }
                        if command?.isEmpty ?? true { throw fail(value, "services.\(name).command is empty") }
                    case "listen":
                        guard let value = value.string, !value.isEmpty else { throw fail(value, "services.\(name).listen must be an address") }
                        host = value
                    case "port":
                        port = try integer(value, "services.\(name).port", min: 0, fail)
                        if port! > 65535 { throw fail(value, "services.\(name).port must be 0-65535, got \(port!)") }
                    case "backlog":
                        backlog = try integer(value, "services.\(name).backlog", min: 1, fail)
                    case "tcp_keepidle":
                        keepidle = try integer(value, "services.\(name).tcp_keepidle", min: 1, fail)
                    case let key where httpKeys.contains(key):
                        try httpOption(key, value, into: &http, service: name, fail)
                    case let other:
                        throw fail(fieldNode, "unknown option 'services.\(name).\(other)' (known: workers, service, command, listen, port, backlog, tcp_keepidle, \(httpKeys.joined(separator: ", ")))")
                    }
                }
            } else if !(body.null != nil || body.string == "") {
                throw fail(body, "services.\(name) must be a mapping with workers and service or command")
            }
            if builtin != nil && command != nil { throw fail(body, "services.\(name): give either service or command, not both") }
            let program: Program
            if let command {
                program = .command(command)
            } else {
                let builtinName = builtin ?? name
                guard builtinServices.contains(builtinName) else {
                    throw fail(body.mark == nil ? nameNode : body,
                               "services.\(name): no built-in service '\(builtinName)' (built-in: \(builtinServices.names.joined(separator: ", "))); use command: for a program")
                }
                program = .builtin(builtinName)
            }
            if host != nil && port == nil { throw fail(body, "services.\(name): listen needs a port") }
            let listen = port.map { ListenSpec(host: host ?? "0.0.0.0", port: $0, backlog: backlog, tcpKeepidle: keepidle) }
            if let problem = http.validate() { throw fail(body, "services.\(name): \(problem)") }
            specs.append(ServiceSpec(name: name, program: program, workers: workers, listen: listen, http: http))
        }
        return specs
    }

    /// A service's HTTP options (nova's `[wsgi]` names, oslo's `[ssl]` ones).
    static let httpKeys = ["enabled_apis", "pool_size", "keep_alive", "client_socket_timeout", "client_header_timeout", "max_header_line",
                           "cert_file", "key_file", "ca_file", "access_log"]

    private static func httpOption(_ key: String, _ value: Node, into http: inout HTTPOptions, service: String,
                                   _ fail: (Node?, String) -> ConfigError) throws(ConfigError) {
        let qualified = "services.\(service).\(key)"
        func path() throws(ConfigError) -> String { try nonEmptyString(value, qualified, "a path", fail) }
        switch key {
        case "enabled_apis":
            // A list, or nova's comma-separated string.
            let names: [String]
            switch value {
            case .sequence(let items): names = items.map { $0.string ?? "" }
            case .scalar(let scalar): names = scalar.string.split(separator: ",").map { String($0).trimmingSpaces }
            default: throw fail(value, "\(qualified) must be a list of app names")
            }
            if names.isEmpty || names.contains("") { throw fail(value, "\(qualified) must name at least one app") }
            http.enabledAPIs = names
        case "pool_size": http.poolSize = try integer(value, qualified, min: 1, fail)
        case "keep_alive": http.keepAlive = try boolean(value, qualified, fail)
        case "client_socket_timeout": http.clientSocketTimeout = try number(value, qualified, min: 0, fail)
        case "client_header_timeout": http.clientHeaderTimeout = try number(value, qualified, min: 0, fail)
        case "max_header_line": http.maxHeaderLine = try integer(value, qualified, min: 64, fail)
        case "cert_file": http.certFile = try path()
        case "key_file": http.keyFile = try path()
        case "ca_file": http.caFile = try path()
        case "access_log": http.accessLog = try boolean(value, qualified, fail)
        default: break
        }
    }

    /// A non-empty string option ("`key` must be `what`" otherwise).
    private static func nonEmptyString(_ node: Node, _ key: String, _ what: String, _ fail: (Node?, String) -> ConfigError) throws(ConfigError) -> String {
        guard let text = node.string, !text.isEmpty else { throw fail(node, "\(key) must be \(what)") }
        return text
    }

    private static func number(_ node: Node, _ key: String, min: Double, _ fail: (Node?, String) -> ConfigError) throws(ConfigError) -> Double {
        guard let text = node.string, let value = Double(text), value.isFinite else {
            throw fail(node, "\(key) must be a number, got '\(node.string ?? "a collection")'")
        }
        guard value >= min else {
            throw fail(node, min == 0 ? "\(key) must be >= 0, got \(text)" : "\(key) must be > 0, got \(text)")
        }
        return value
    }

    private static func boolean(_ node: Node, _ key: String, _ fail: (Node?, String) -> ConfigError) throws(ConfigError) -> Bool {
        switch node.string?.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw fail(node, "\(key) must be true or false, got '\(node.string ?? "a collection")'")
        }
    }

    private static func integer(_ node: Node, _ key: String, min: Int, _ fail: (Node?, String) -> ConfigError) throws(ConfigError) -> Int {
        guard let text = node.string, let value = Int(text) else {
            throw fail(node, "\(key) must be a whole number, got '\(node.string ?? "a collection")'")
        }
        guard value >= min else { throw fail(node, "\(key) must be >= \(min), got \(text)") }
        return value
    }
}

extension String {
    /// Without leading and trailing spaces and tabs (no Foundation in the config path).
    var trimmingSpaces: String {
        let blank: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        return String(drop(while: blank).reversed().drop(while: blank).reversed())
    }
}
