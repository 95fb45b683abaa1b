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
    public static func load(
        _ path: String, onto base: LauncherConfiguration = LauncherConfiguration()
    ) throws(ConfigError) -> LauncherConfiguration {
        let text: String
        do {
            text = try Posix.readFile(path)
        } catch {
            throw ConfigError(path: path, line: nil, message: "cannot read: \(error.message)")
        }
        return try parse(text, path: path, onto: base)
    }

    public static func parse(
        _ text: String, path: String, onto base: LauncherConfiguration = LauncherConfiguration()
    ) throws(ConfigError) -> LauncherConfiguration {
        func fail(_ node: Node?, _ message: String) -> ConfigError {
            // An empty value at the end of the input is marked on a line after the last one.
            ConfigError(path: path, line: node?.mark.map { min($0.line, lineCount(text)) }, message: message)
        }
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            switch error {
            case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _),
                .composer(_, let problem, let mark, _):
                // libyaml marks a problem found at the end of the input on a line after the last one too.
                throw ConfigError(
                    path: path, line: min(mark.line, lineCount(text)), message: "not valid YAML: \(problem)")
            case .reader(let problem, let offset, _, _):
                // `offset` counts Characters: the problem is on the line holding the next one.
                throw ConfigError(
                    path: path, line: offset.map { lineCount(String(text.prefix($0)) + "x") },
                    message: "not valid YAML: \(problem)")
            case .duplicatedKeysInMapping(let duplicates, let context):
                // Yams's description holds a snippet (several lines), and the key it places is the
                // first in an order that is total only over distinct scalar keys: other keys get no
                // line rather than one that changes from run to run.
                let names = duplicates.sorted()
                let placed = Set(names).count == names.count && !names.contains("<uncovertable>")
                throw ConfigError(
                    path: path, line: placed ? context.mark.line : nil,
                    message:
                        "not valid YAML: \(names.count == 1 ? "key" : "keys") \(names.map { "'\($0)'" }.joined(separator: ", ")) given more than once"
                )
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
            if key == "services" {
                configuration.services = try services(value, fail)
                continue
            }
            guard let setting = Settings.launcher.first(where: { $0.key == key }) else {
                let known = Settings.topLevelKeys.joined(separator: ", ")
                throw fail(keyNode, "unknown option '\(key)' (known: \(known))")
            }
            if let problem = setting.assign(input(value), to: &configuration) { throw fail(value, problem.message) }
        }
        if let problem = configuration.validate() { throw ConfigError(path: path, line: nil, message: problem) }
        return configuration
    }

    private static func services(
        _ node: Node, _ fail: (Node?, String) -> ConfigError
    ) throws(ConfigError) -> [ServiceSpec] {
        guard case .mapping(let entries) = node else {
            throw fail(node, "services must be a mapping of name: {workers, service | command}")
        }
        var specs: [ServiceSpec] = []
        for (nameNode, body) in entries {
            guard let name = nameNode.string, !name.isEmpty else { throw fail(nameNode, "a service needs a name") }
            var spec = ServiceSpec(name: name, program: .builtin(name), workers: Settings.workers.defaultValue ?? 1)
            var builtin: String?
            var command: [String]?
            var listen = ListenSpec(port: 0)
            var given = Set<String>()
            var http = HTTPOptions()
            if case .mapping(let fields) = body {
                for (fieldNode, value) in fields {
                    let key = fieldNode.string ?? ""
                    let qualified = "services.\(name).\(key)"
                    var problem: SettingProblem?
                    switch key {
                    case "service":
                        guard let service = value.string else {
                            throw fail(value, "services.\(name).service must be a name")
                        }
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
                    default:
                        // The options of a service, its socket and its HTTP server, as declared in `Settings`.
                        if let setting = Settings.service.first(where: { $0.key == key }) {
                            problem = setting.assign(input(value), to: &spec, as: qualified)
                        } else if let setting = Settings.listenSocket.first(where: { $0.key == key }) {
                            problem = setting.assign(input(value), to: &listen, as: qualified)
                        } else if let setting = Settings.http.first(where: { $0.key == key }) {
                            problem = setting.assign(input(value), to: &http, as: qualified)
                        } else {
                            throw fail(
                                fieldNode,
                                "unknown option '\(qualified)' (known: \(Settings.serviceKeys.joined(separator: ", ")))"
                            )
                        }
                    }
                    if let problem { throw fail(value, problem.message) }
                    given.insert(key)
                }
            } else if !(body.null != nil || body.string == "") {
                throw fail(body, "services.\(name) must be a mapping with workers and service or command")
            }
            if builtin != nil && command != nil {
                throw fail(body, "services.\(name): give either service or command, not both")
            }
            let program: Program
            if let command {
                program = .command(command)
            } else {
                let builtinName = builtin ?? name
                guard builtinServices.contains(builtinName) else {
                    throw fail(
                        body.mark == nil ? nameNode : body,
                        "services.\(name): no built-in service '\(builtinName)' (built-in: \(builtinServices.names.joined(separator: ", "))); use command: for a program"
                    )
                }
                program = .builtin(builtinName)
            }
            if given.contains(Settings.listen.key) && !given.contains(Settings.port.key) {
                throw fail(body, "services.\(name): listen needs a port")
            }
            if let problem = http.validate() { throw fail(body, "services.\(name): \(problem)") }
            spec.program = program
            spec.listen = given.contains(Settings.port.key) ? listen : nil
            spec.http = http
            specs.append(spec)
        }
        return specs
    }

    /// The lines of `text` as libyaml counts them (breaks: LF, CR, CR LF, NEL, LS, PS); at least 1.
    static func lineCount(_ text: String) -> Int {
        var breaks = 0
        var previous: Unicode.Scalar?
        var endsWithBreak = false
        for scalar in text.unicodeScalars {
            let isBreak = ["\n", "\r", "\u{85}", "\u{2028}", "\u{2029}"].contains(scalar)
            if isBreak && !(scalar == "\n" && previous == "\r") { breaks += 1 }
            endsWithBreak = isBreak
            previous = scalar
        }
        return max(1, breaks + (endsWithBreak || text.isEmpty ? 0 : 1))
    }

    /// A YAML value as a setting takes it.
    private static func input(_ node: Node) -> SettingInput {
        switch node {
        case .scalar(let scalar): return .text(scalar.string)
        case .sequence(let items): return .list(items.map { $0.string ?? "" })
        default: return .mapping
        }
    }
}
