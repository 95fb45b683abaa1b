/// A value as it arrives from a config file or a flag, before it is parsed: one scalar's text,
/// or a YAML list's items.
public enum SettingInput: Hashable, Sendable {
    case text(String)
    case list([String])
    /// A YAML mapping where a value belongs: no option takes one.
    case mapping

    /// What the error shows for a value that did not parse.
    public var display: String {
        switch self {
        case .text(let text): return "'\(text)'"
        case .list(let items): return "[\(items.joined(separator: ", "))]"
        case .mapping: return "a mapping"
        }
    }
}

/// A type an option's value can have: parsed from config-file or flag text, shown in errors.
public protocol SettingValue: Equatable, Sendable {
    /// What a value of this type looks like, for the error about one that does not parse:
    /// `report_interval must be a number > 0, got 'soon'`.
    static var typeText: String { get }
    static func parse(_ input: SettingInput) -> Self?
    /// The value as an error message or the README shows it.
    var settingText: String { get }
}

extension Int: SettingValue {
    public static var typeText: String { "a whole number" }
    public static func parse(_ input: SettingInput) -> Int? {
        if case .text(let text) = input { return Int(text) }
        return nil
    }
    public var settingText: String { String(self) }
}

extension Double: SettingValue {
    public static var typeText: String { "a number" }
    public static func parse(_ input: SettingInput) -> Double? {
        if case .text(let text) = input { return Double(text) }
        return nil
    }
    /// `60`, not `60.0`.
    public var settingText: String {
        if isFinite, rounded() == self, abs(self) < 1e15 { return String(Int(self)) }
        return String(self)
    }
}

extension Bool: SettingValue {
    public static var typeText: String { "true or false" }
    /// YAML 1.1's spellings, which oslo's and gunicorn's users write.
    public static func parse(_ input: SettingInput) -> Bool? {
        guard case .text(let text) = input else { return nil }
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: return nil
        }
    }
    public var settingText: String { self ? "true" : "false" }
}

extension String: SettingValue {
    public static var typeText: String { "a string" }
    public static func parse(_ input: SettingInput) -> String? {
        if case .text(let text) = input { return text }
        return nil
    }
    public var settingText: String { "'\(self)'" }
}

extension Array: SettingValue where Element == String {
    public static var typeText: String { "a list of names" }
    /// A YAML list, or nova's comma-separated string.
    public static func parse(_ input: SettingInput) -> [String]? {
        switch input {
        case .list(let items): return items
        case .text(let text): return text.split(separator: ",").map { String($0).trimmingBlanks }
        case .mapping: return nil
        }
    }
    public var settingText: String { "[\(joined(separator: ", "))]" }
}

extension RestartMethod: SettingValue {
    public static var typeText: String { "one of \(all.map(\.name).joined(separator: ", "))" }
    public static func parse(_ input: SettingInput) -> RestartMethod? {
        if case .text(let text) = input { return RestartMethod(name: text) }
        return nil
    }
    public var settingText: String { "'\(name)'" }
}

extension String {
    /// Without leading and trailing spaces and tabs.
    var trimmingBlanks: String {
        let blank: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        return String(drop(while: blank).reversed().drop(while: blank).reversed())
    }
}

/// The values an option accepts, with the words that say so (`>= 0`, `1-100000`).
public struct SettingRange<Value: SettingValue>: Sendable {
    /// Completes "must be …": `>= 0`, `0-65535`, `one of reload, mutate, rolling`, `a path`.
    public let text: String
    private let accepts: @Sendable (Value) -> Bool

    public init(_ text: String, accepts: @escaping @Sendable (Value) -> Bool) {
        self.text = text
        self.accepts = accepts
    }

    public func contains(_ value: Value) -> Bool { accepts(value) }
}

extension SettingRange where Value == Double {
    /// Finite and at least `bound`.
    public static func atLeast(_ bound: Double) -> Self {
        Self(">= \(bound.settingText)") { $0.isFinite && $0 >= bound }
    }
    /// Finite and more than `bound`.
    public static func above(_ bound: Double) -> Self { Self("> \(bound.settingText)") { $0.isFinite && $0 > bound } }
}

extension SettingRange where Value == Int {
    public static func atLeast(_ bound: Int) -> Self { Self(">= \(bound)") { $0 >= bound } }
    public static func within(_ bounds: ClosedRange<Int>) -> Self {
        Self("\(bounds.lowerBound)-\(bounds.upperBound)") { bounds.contains($0) }
    }
}

extension SettingRange where Value == Bool {
    public static var either: Self { Self("true or false") { _ in true } }
}

extension SettingRange where Value == String {
    /// Any text but the empty one; `what` says what it names: `a path`, `an address`.
    public static func nonEmpty(_ what: String) -> Self { Self(what) { !$0.isEmpty } }
}

extension SettingRange where Value == [String] {
    public static func nonEmptyNames(_ what: String) -> Self { Self(what) { !$0.isEmpty && !$0.contains("") } }
}

extension SettingRange where Value == RestartMethod {
    public static var anyMethod: Self { Self(RestartMethod.typeText) { _ in true } }
}

/// Where an option sits in the config file.
public enum SettingScope: Hashable, Sendable {
    /// A top-level key: `graceful_shutdown_timeout: 60`.
    case launcher
    /// A key of one service: `services.NAME.workers`.
    case service
    /// A key of one HTTP service (`api`): `services.NAME.pool_size`.
    case http
}

/// One option, described without its value type: what the README table, the unknown-key errors
/// and the tests iterate over.
public struct SettingSummary: Hashable, Sendable {
    public let key: String
    public let scope: SettingScope
    /// `--graceful-shutdown-timeout`, or nil when only the config file sets it.
    public let flag: String?
    public let defaultText: String
    public let rangeText: String
    public let help: String

    /// As the config file spells it: `report_interval`, `services.NAME.workers`.
    public var documentedKey: String { scope == .launcher ? key : "services.NAME.\(key)" }
}

/// One launcher option declared once, gunicorn's `Setting`: its config key (oslo's spelling), its
/// flag, default, range and help, and where it lives in the configuration. Validation, the config
/// reader, the flags, `--help` and the README's table all come from these (`Settings`).
public struct Setting<Root, Value: SettingValue>: Sendable {
    /// oslo's spelling: `graceful_shutdown_timeout`.
    public let key: String
    public let scope: SettingScope
    /// The long flag's name without dashes, for ArgumentParser's `.customLong`; nil = config file only.
    public let flagName: String?
    /// nil where the option has no value until set (`log_file`: standard error).
    public let defaultValue: Value?
    /// The default as the README shows it (`stderr`, `hostname`): for options whose default is not a value.
    public let defaultText: String
    public let range: SettingRange<Value>
    /// One line, for `--help` and the README.
    public let help: String
    private let read: @Sendable (Root) -> Value?
    private let write: @Sendable (inout Root, Value) -> Void

    private init(
        key: String, scope: SettingScope, flag: String?, defaultValue: Value?, defaultText: String,
        range: SettingRange<Value>, help: String,
        read: @escaping @Sendable (Root) -> Value?, write: @escaping @Sendable (inout Root, Value) -> Void
    ) {
        self.key = key
        self.scope = scope
        self.flagName = flag
        self.defaultValue = defaultValue
        self.defaultText = defaultText
        self.range = range
        self.help = help
        self.read = read
        self.write = write
    }

    /// An option with a default value; `defaultText` only where the README says it better.
    public init(
        _ key: String, _ scope: SettingScope = .launcher, flag: String? = nil, default defaultValue: Value,
        defaultText: String? = nil, range: SettingRange<Value>, help: String,
        at keyPath: WritableKeyPath<Root, Value> & Sendable
    ) {
        self.init(
            key: key, scope: scope, flag: flag, defaultValue: defaultValue,
            defaultText: defaultText ?? defaultValue.settingText.readmeText, range: range, help: help,
            read: { $0[keyPath: keyPath] }, write: { $0[keyPath: keyPath] = $1 })
    }

    /// An option that is unset (nil) by default: `defaultText` says what happens then.
    public init(
        _ key: String, _ scope: SettingScope = .launcher, flag: String? = nil, defaultText: String,
        range: SettingRange<Value>, help: String, at keyPath: WritableKeyPath<Root, Value?> & Sendable
    ) {
        self.init(
            key: key, scope: scope, flag: flag, defaultValue: nil, defaultText: defaultText, range: range, help: help,
            read: { $0[keyPath: keyPath] }, write: { $0[keyPath: keyPath] = $1 })
    }

    /// An option without a default whose value is stored unwrapped (a listen spec's `port`: no
    /// port, no spec).
    public init(
        _ key: String, _ scope: SettingScope = .launcher, flag: String? = nil, defaultText: String,
        range: SettingRange<Value>, help: String, at keyPath: WritableKeyPath<Root, Value> & Sendable
    ) {
        self.init(
            key: key, scope: scope, flag: flag, defaultValue: nil, defaultText: defaultText, range: range, help: help,
            read: { $0[keyPath: keyPath] }, write: { $0[keyPath: keyPath] = $1 })
    }

    /// `--report-interval`, or nil.
    public var flag: String? { flagName.map { "--\($0)" } }

    /// The flag's name for ArgumentParser; only for options that have one.
    public var long: String {
        guard let flagName else { preconditionFailure("\(key) has no flag") }
        return flagName
    }

    /// The one range check: nil when `value` is in range, else the error text naming the option
    /// (`name`: the key by default; the flag for a flag, `services.web.port` in a file), the value and the range.
    public func check(_ value: Value, as name: String? = nil) -> String? {
        range.contains(value) ? nil : "\(name ?? key) must be \(range.text), got \(value.settingText)"
    }

    /// `check` for a flag's value: the error names the flag.
    public func checkFlag(_ value: Value) -> String? { check(value, as: flag ?? key) }

    /// Parses and checks text from a file or a flag: the value, or the error naming `name`.
    public func parse(_ input: SettingInput, as name: String? = nil) -> Result<Value, SettingProblem> {
        guard let value = Value.parse(input) else {
            // "a number >= 0", "a whole number 1-100000"; "true or false", "a path" say it all.
            let bare = range.text.first.map { "<>0123456789".contains($0) } ?? false
            let what = bare ? "\(Value.typeText) \(range.text)" : range.text
            return .failure(SettingProblem("\(name ?? key) must be \(what), got \(input.display)"))
        }
        if let problem = check(value, as: name) { return .failure(SettingProblem(problem)) }
        return .success(value)
    }

    public func set(_ value: Value, in root: inout Root) { write(&root, value) }

    public var summary: SettingSummary {
        SettingSummary(key: key, scope: scope, flag: flag, defaultText: defaultText, rangeText: range.text, help: help)
    }

    /// Without its value type, for lists of options of one root.
    public var erased: AnySetting<Root> {
        AnySetting(
            summary: summary,
            assign: { input, root, name in
                switch parse(input, as: name) {
                case .success(let value):
                    write(&root, value)
                    return nil
                case .failure(let problem): return problem
                }
            },
            validate: { root, name in read(root).flatMap { check($0, as: name) } },
            defaultProblem: defaultValue.flatMap { check($0) },
            isDefault: { read($0) == defaultValue })
    }
}

/// A setting's problem: the one-line message naming the option, the value and the range.
public struct SettingProblem: Error, Hashable, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A `Setting` of one root without its value type: the config reader dispatches on these.
public struct AnySetting<Root>: Sendable {
    public let summary: SettingSummary
    private let assign: @Sendable (SettingInput, inout Root, String?) -> SettingProblem?
    private let validate: @Sendable (Root, String?) -> String?

    /// The declared default's problem with the declared range: nil unless the declaration is wrong.
    public let defaultProblem: String?
    private let isDefault: @Sendable (Root) -> Bool

    init(
        summary: SettingSummary, assign: @escaping @Sendable (SettingInput, inout Root, String?) -> SettingProblem?,
        validate: @escaping @Sendable (Root, String?) -> String?, defaultProblem: String?,
        isDefault: @escaping @Sendable (Root) -> Bool
    ) {
        self.summary = summary
        self.assign = assign
        self.validate = validate
        self.defaultProblem = defaultProblem
        self.isDefault = isDefault
    }

    /// Whether `root` holds the declared default (nil for an option without one).
    public func hasDefault(in root: Root) -> Bool { isDefault(root) }

    public var key: String { summary.key }

    /// Parses, checks and stores `input`; the problem names the option as `name` (default: its key).
    public func assign(_ input: SettingInput, to root: inout Root, as name: String? = nil) -> SettingProblem? {
        assign(input, &root, name)
    }

    /// The problem with the option's current value in `root`, or nil.
    public func check(_ root: Root, as name: String? = nil) -> String? { validate(root, name) }
}

extension String {
    /// `'rolling'` → `` `rolling` `` for the README.
    fileprivate var readmeText: String {
        hasPrefix("'") && hasSuffix("'") && count >= 2 ? "`\(dropFirst().dropLast())`" : self
    }
}
