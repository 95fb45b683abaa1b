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
        subcommands: [Run.self, Demo.self, Top.self, Replay.self, Services.self, Status.self, SignalCommand.self, Scale.self, Reload.self, Stop.self, Events.self, RPCCommand.self, CheckTLS.self, OptionsCommand.self]
    )

    /// Bad input exits 2 with one line that names it (ArgumentParser's own default is 64).
    static func main() {
        // A master that goes away mid-request is an error to report, not a silent SIGPIPE death.
        Posix.ignoreBrokenPipes()
        // Every logger of this process prints forkwatch's lines (the library never bootstraps).
        LineLogHandler.bootstrap()
        do {
            // Everything after the first `--` is the command to supervise, verbatim: split it
            // off here because ArgumentParser cannot have it beside the SERVICE array.
            var arguments = Array(CommandLine.arguments.dropFirst())
            if let terminator = arguments.firstIndex(of: "--") {
                PassthroughCommand.argv = Array(arguments[(terminator + 1)...])
                PassthroughCommand.given = true
                arguments = Array(arguments[..<terminator])
            }
            var command = try parseAsRoot(arguments)
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

/// The `-- COMMAND ARGS…` part of the command line.
enum PassthroughCommand {
    nonisolated(unsafe) static var argv: [String] = []
    nonisolated(unsafe) static var given = false
}

/// Leaves the CLI: standard output is flushed first (`print` buffers when it is not a
/// terminal), then `_exit`, so no atexit handler of a library runs in a half-torn-down process.
func finish(_ code: Int32) -> Never {
    fflush(nil)  // every output stream, standard output included
    Posix.exitNow(code)
}
