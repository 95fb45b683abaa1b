import Foundation
import Glibc
import Testing

/// The launcher embedded in another program (`ForkwatchEmbeddedExample`), as a library user runs it.
@Suite struct EmbeddingTests {
    private let example = URL(fileURLWithPath: forkwatchBinary).deletingLastPathComponent()
        .appendingPathComponent("ForkwatchEmbeddedExample").path

    /// The program bootstrapped swift-log before making its launcher: the library must not
    /// bootstrap it again (swift-log allows one bootstrap, a second one traps), and the master's
    /// and the workers' lines go through the program's own handler.
    @Test func aProgramThatBootstrappedLoggingRunsTheLauncher() throws {
        let master = try LaunchedMaster(["--workers", "2"], events: false, binary: example)
        let pids = try master.waitForReady(2, service: "greeter")
        // Each worker was handed its own slot and the live worker count, and its status channel works.
        // (Sent from start(), before `ready`.)
        let notices = master.all("notice").compactMap { $0["message"] as? String }.filter { $0.contains("says hello") }
        #expect(
            Set(notices.map { $0.contains("slot 0") ? 0 : $0.contains("slot 1") ? 1 : -1 }) == [0, 1], "\(notices)")
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
        let log = master.log
        // StreamLogHandler's format (`… info greeter: …`), not forkwatch's line handler.
        #expect(log.contains("info greeter:") && log.contains("of 2 serving"), "\(log)")
        #expect(log.contains("example-master:"), "\(log)")
        #expect(!log.contains("Fatal error"), "\(log)")
        #expect(pids.count == 2)
    }

    /// A master that gained a thread after it started (the program's reload hook started one)
    /// must not fork: every fork is refused with the thread count, and the workers it has keep
    /// serving until it is stopped.
    @Test func aMasterWithASecondThreadRefusesEveryFork() throws {
        let master = try LaunchedMaster(["--workers", "1", "--thread-on-reload"], events: false, binary: example)
        let pids = try master.waitForReady(1, service: "greeter")
        master.signal(SIGHUP)  // the rolling restart's first fork comes after the hook started its thread
        let refused = try master.waitFor("fork_refused")
        #expect(refused["service"] as? String == "greeter")
        #expect((refused["threads"] as? Int ?? 0) >= 2, "\(refused)")
        #expect(master.all("fork").count == 1, "no fork after the refusal: \(master.all("fork"))")
        #expect(kill(pids[0], 0) == 0, "the old worker still serves")
        master.signal(SIGTERM)
        #expect(try master.waitExit() == 0)
    }
}
