import Testing

@testable import ForkwatchCLI

/// Where a configuration error is reported: a line of the file, even when it is found at the end
/// of the input (libyaml puts its mark on a line after the last one there). Found by fuzzing
/// (Fuzz/ConfigFileFuzz.swift): `forkwatch.yaml:3` for a file of two lines.
@Suite struct ConfigFileErrorLineTests {
    @Test(arguments: [
        ("control_exchange: nova\ntraan", 2),
        ("control_exchange: nova\ntraan\n", 2),
        ("services:\n  web: [\n", 2),
        ("services:\n  web: \"unterminated", 2),
        ("key: 'open\r\n", 1),
        // A key without a value: the empty value's mark is at the end of the input too.
        ("services:\n  ? nosuch\n", 2),
    ])
    func anErrorAtTheEndOfTheFileNamesItsLastLine(yaml: String, line: Int) {
        #expect(throws: ConfigError.self) { try ConfigFile.parse(yaml, path: "t.yaml") }
        do {
            _ = try ConfigFile.parse(yaml, path: "t.yaml")
        } catch {
            #expect(error.line == line, "\(error)")
        }
    }

    /// Found by fuzzing: Yams reports duplicated keys with a snippet of the file (several lines)
    /// and a position it picks through an order that is not total, so the same file gave another
    /// error from one run to the next. The error is one line, the same every time, with the line
    /// of the first duplicated key when that key is well defined.
    @Test(
        arguments: [
            (
                "graceful_shutdown_timeout: 1\ngraceful_shutdown_timeout: 2\n", 1,
                "key 'graceful_shutdown_timeout' given more than once"
            ),
            ("services:\n  idle:\n    workers: 1\n    workers: 2\n", 3, "key 'workers' given more than once"),
            (
                "? [x]\n: 1\n? [x]\n: 2\n? {y: 1}\n: 3\n? {y: 1}\n: 4\n", nil,
                "keys '<uncovertable>', '<uncovertable>' given more than once"
            ),
            ("1: a\n1: b\n\"1\": c\n\"1\": d\n", nil, "keys '1', '1' given more than once"),
        ] as [(String, Int?, String)])
    func duplicatedKeysAreOneStableLine(yaml: String, line: Int?, message: String) {
        var errors: [ConfigError] = []
        for _ in 0..<20 {
            do {
                _ = try ConfigFile.parse(yaml, path: "t.yaml")
            } catch { errors.append(error) }
        }
        #expect(errors.count == 20)
        #expect(Set(errors.map(\.description)).count == 1, "\(Set(errors.map(\.description)))")
        #expect(errors.first?.line == line)
        #expect(errors.first?.message == "not valid YAML: \(message)")
    }

    /// A character YAML refuses (a control character) is located like any other YAML error.
    @Test func aReaderErrorNamesItsLine() {
        do {
            _ = try ConfigFile.parse("restart_method: rolling\nboot_window: \u{1}\n", path: "t.yaml")
            Issue.record("no error")
        } catch {
            #expect(error.line == 2)
            #expect(!error.message.contains("\n"), "\(error.message)")
        }
    }
}
