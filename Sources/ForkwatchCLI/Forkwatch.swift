import ArgumentParser
import Forkwatch
import ForkwatchCore
import ForkwatchDemo
import Logging

#if canImport(Glibc)
import Glibc
#endif

@main
struct ForkwatchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forkwatch",
        abstract: "Run services in pre-forked workers, oslo.service style, and watch every fork, signal and exit.",
        subcommands: [
            Run.self, Demo.self, Top.self, Replay.self, Services.self, Status.self, SignalCommand.self, Scale.self,
            Reload.self, Stop.self, Events.self, RPCCommand.self, CheckTLS.self, OptionsCommand.self,
        ]
    )

    /// Bad input exits 2 with one line that names it (ArgumentParser's own default is 64).
    static func main() {
        // A master that goes away mid-request is an error to report, not a silent SIGPIPE death.
        Posix.ignoreBrokenPipes()
        // Every logger of this process prints forkwatch's lines (the library never bootstraps).
        LineLogHandler.bootstrap()
        do {
            var command = try parseAsRoot(CommandLineSplit.parts.arguments)
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))
                finish(0)
            }
            if let exit = error as? ArgumentParser.ExitCode { finish(exit.rawValue) }
            let message = fullMessage(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            try? Posix.writeAll(2, "forkwatch: \(message.replacingOccurrences(of: "Error: ", with: ""))\n")
            finish(2)
        }
    }
}

/// The services `run NAME`, a config file's `service:` and the demo know by name.
let builtinServices = DemoServices.registry()

/// A problem found before anything was forked: exit 2 with this line.
struct UsageError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension String {
    func replacingOccurrences(of target: String, with replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}

/// The command line split at its first `--`: what ArgumentParser parses, and the command to
/// supervise, verbatim (ArgumentParser cannot have a second array beside the SERVICE array).
/// Read once from the process's arguments; nothing sets it.
enum CommandLineSplit {
    static let parts: (arguments: [String], command: [String]?) = {
        let arguments = Array(CommandLine.arguments.dropFirst())
        guard let terminator = arguments.firstIndex(of: "--") else { return (arguments, nil) }
        return (Array(arguments[..<terminator]), Array(arguments[(terminator + 1)...]))
    }()
}

/// Leaves the CLI: standard output is flushed first (`print` buffers when it is not a
/// terminal), then `_exit`, so no atexit handler of a library runs in a half-torn-down process.
func finish(_ code: Int32) -> Never {
    fflush(nil)  // every output stream, standard output included
    Posix.exitNow(code)
}
