import ArgumentParser
import ForkwatchCore

/// The flags of the launcher's options come from their declarations (`Settings`): the name, the
/// help, and the range check, so a flag and a config file refuse a value with the same range.
extension Setting {
    /// The declaration's help, its default and its range, for `--help`.
    var argumentHelp: ArgumentHelp {
        // A sentence like the other flags' help; the README keeps the declaration's lower case.
        let text = "\(help) (default \(defaultText); \(range.text)).".filter { $0 != "`" }
        return ArgumentHelp(text.prefix(1).uppercased() + text.dropFirst())
    }

    /// Stores a flag's value after its range check; nil (the flag not given) leaves `root` alone.
    func apply(flag value: Value?, to root: inout Root) throws {
        guard let value else { return }
        if let problem = checkFlag(value) { throw UsageError(problem) }
        set(value, in: &root)
    }

    /// A flag's text parsed and checked as the declaration says (`--restart-method sideways`).
    func flagValue(_ text: String) throws -> Value {
        switch parse(.text(text), as: flag) {
        case .success(let value): return value
        case .failure(let problem): throw UsageError(problem.message)
        }
    }
}

/// `forkwatch options`: every option with its key, flag, default and range; `--markdown` prints
/// the README's table (a test keeps README.md equal to it).
struct OptionsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "options", abstract: "List the launcher's options: config key, flag, default, range.",
        shouldDisplay: false)

    @Flag(help: "Print the README's option table (Markdown).")
    var markdown = false

    func run() {
        if markdown {
            print(Settings.markdownTable(), terminator: "")
            return
        }
        for option in Settings.all {
            let flag = option.flag.map { " (\($0))" } ?? ""
            print(
                "\(option.documentedKey)\(flag): default \(option.defaultText), \(option.rangeText)".filter {
                    $0 != "`"
                })
            print("    \(option.help)".filter { $0 != "`" })
        }
    }
}
