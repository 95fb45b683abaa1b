// The configuration file: ConfigFile.parse (the CLI's reader, Sources/ForkwatchCLI/ConfigFile.swift)
// over Yams. bench/fuzz.sh compiles ConfigFile.swift into this target without its `import
// Forkwatch` lines (ForkwatchCore is compiled in; the two names it takes from the rest of the CLI
// are below), so the reader fuzzed is the CLI's own code.
//
// Properties:
// - parse never traps: a bad file is a ConfigError value, its line (when it has one) a line of
//   the file;
// - a configuration it accepts validates, names each service once and non-empty, gives each a
//   program and a worker count in range; parsing the same text again gives the same configuration.

import ForkwatchCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfigFile(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: bytes(data, size), as: UTF8.self)
    // Lines as an editor shows them, with libyaml's line breaks: a break ends a line, and a last
    // break ends the file rather than starting an empty line.
    let scalars = Array(text.unicodeScalars)
    let breaks: Set<Unicode.Scalar> = ["\n", "\r", "\u{85}", "\u{2028}", "\u{2029}"]
    var lineCount = 1
    for i in scalars.indices.dropLast() where breaks.contains(scalars[i]) {
        if scalars[i] == "\n" && i > 0 && scalars[i - 1] == "\r" { continue }
        if scalars[i] == "\r" && scalars[i + 1] == "\n" && i + 1 == scalars.count - 1 { continue }
        lineCount += 1
    }
    let first: Result<LauncherConfiguration, ConfigError> = Result { () throws(ConfigError) in
        try ConfigFile.parse(text, path: "fuzz.yaml")
    }
    switch first {
    case .success(let configuration):
        require(configuration.validate() == nil, "accepted but invalid: \(configuration.validate() ?? "")")
        var names = Set<String>()
        for service in configuration.services {
            require(!service.name.isEmpty, "a service without a name")
            require(names.insert(service.name).inserted, "service '\(service.name)' twice")
            if case .command(let argv) = service.program { require(!argv.isEmpty, "an empty command") }
            require(Settings.workers.check(service.workers) == nil, "\(service.name): \(service.workers) workers")
            require(service.http.validate() == nil, "\(service.name): http \(service.http.validate() ?? "")")
        }
    case .failure(let error):
        require(!error.message.isEmpty, "an error without a message")
        require(error.path == "fuzz.yaml", "error names \(error.path)")
        if let line = error.line {
            require(line >= 1 && line <= lineCount, "error on line \(line) of \(lineCount): \(error)")
        }
    }
    let second: Result<LauncherConfiguration, ConfigError> = Result { () throws(ConfigError) in
        try ConfigFile.parse(text, path: "fuzz.yaml")
    }
    require(first == second, "two parses of the same text differ:\n\(first)\n\(second)")
    return 0
}

// What ConfigFile.swift takes from the Forkwatch module and the CLI's main file.
enum Posix {
    struct Unreadable: Error { var message: String { "not read by the fuzz target" } }
    static func readFile(_ path: String) throws(Unreadable) -> String { throw Unreadable() }
}

/// The CLI's built-in service names (Sources/ForkwatchDemo/DemoServices.swift).
struct BuiltinNames {
    let names = ["api", "crashy", "idle", "scheduler"]
    func contains(_ name: String) -> Bool { names.contains(name) }
}
let builtinServices = BuiltinNames()
