import ForkwatchCore
import Foundation
import Testing

/// The CLI's flags come from the option declarations: `run --help` offers every declared flag,
/// and `forkwatch options --markdown` prints the README's table.
@Suite struct OptionFlagsTests {
    @Test func runHelpOffersEveryDeclaredFlag() throws {
        let run = try LaunchedMaster(["run", "--help"], events: false, stdoutToLog: true)
        #expect(try run.waitExit() == 0)
        for option in Settings.all {
            guard let flag = option.flag else { continue }
            #expect(run.log.contains("\(flag) <"), "run --help lacks \(flag)")
        }
        // The declared help and range are what --help says.
        #expect(run.log.contains("1-100000"), "\(run.log)")
    }

    @Test func theOptionsCommandPrintsTheReadmeTable() throws {
        let options = try LaunchedMaster(["options", "--markdown"], events: false, stdoutToLog: true)
        #expect(try options.waitExit() == 0)
        #expect(options.log == Settings.markdownTable())
    }
}
