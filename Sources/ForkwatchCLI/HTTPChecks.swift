import ArgumentParser
import Forkwatch
import ForkwatchCore
import ForkwatchDemo
import ForkwatchHTTP

/// Before the first fork: every HTTP service's apps exist and its TLS files load. The TLS check
/// runs in a child (`forkwatch check-tls`) so BoringSSL never runs in the master.
func checkHTTP(_ configuration: LauncherConfiguration) throws {
    for spec in configuration.services {
        guard case .builtin(let name) = spec.program, builtinServices.defaultListen(name) != nil else { continue }
        if let unknown = APICatalogue.unknown(in: spec.http.enabledAPIs) {
            throw UsageError(
                "service '\(spec.name)': enabled_apis: no app '\(unknown)' (known: \(APICatalogue.names.map(\.name).joined(separator: ", ")))"
            )
        }
        guard let cert = spec.http.certFile, let key = spec.http.keyFile else { continue }
        var argv = [Posix.executablePath(), "check-tls", "--cert-file", cert, "--key-file", key]
        if let ca = spec.http.caFile { argv += ["--ca-file", ca] }
        let result: (status: Int32, output: String)
        do { result = try Posix.spawnAndWait(argv) } catch {
            throw UsageError("service '\(spec.name)': cannot check its TLS files: \(error)")
        }
        guard result.status == 0 else {
            let line = result.output.split(separator: "\n").last.map(String.init) ?? "exit \(result.status)"
            throw UsageError(
                "service '\(spec.name)': " + (line.hasPrefix("forkwatch: ") ? String(line.dropFirst(11)) : line))
        }
    }
}

/// `forkwatch check-tls`: loads a certificate and key as a worker would (oslo's sslutils check).
struct CheckTLS: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-tls",
        abstract: "Check that a certificate and key load and match (run before any fork).",
        shouldDisplay: false
    )

    @Option(name: .long) var certFile: String
    @Option(name: .long) var keyFile: String
    @Option(name: .long) var caFile: String?

    func run() throws {
        do {
            _ = try TLSSetup.serverContext(HTTPOptions(certFile: certFile, keyFile: keyFile, caFile: caFile))
        } catch {
            throw UsageError(error.description)
        }
        finish(0)
    }
}
