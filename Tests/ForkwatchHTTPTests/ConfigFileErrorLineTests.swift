import Testing

@testable import ForkwatchCLI

/// Where a YAML error is reported: a line of the file, even when libyaml finds the problem at the
/// end of the input (it puts its mark on a line after the last one there). Found by fuzzing
/// (Fuzz/ConfigFileFuzz.swift): `forkwatch.yaml:3` for a file of two lines.
@Suite struct ConfigFileErrorLineTests {
    @Test(arguments: [
        ("control_exchange: nova\ntraan", 2),
        ("control_exchange: nova\ntraan\n", 2),
        ("services:\n  web: [\n", 2),
        ("services:\n  web: \"unterminated", 2),
        ("key: 'open\r\n", 1),
    ])
    func anErrorAtTheEndOfTheFileNamesItsLastLine(yaml: String, line: Int) {
        #expect(throws: ConfigError.self) { try ConfigFile.parse(yaml, path: "t.yaml") }
        do {
            _ = try ConfigFile.parse(yaml, path: "t.yaml")
        } catch {
            #expect(error.line == line, "\(error)")
        }
    }
}
