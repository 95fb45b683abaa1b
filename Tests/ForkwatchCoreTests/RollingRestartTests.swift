import ForkwatchCore
import Testing

/// The rolling restart alone: forks, readiness and exits in, the step out.
@Suite struct RollingRestartTests {
    @Test func nothingToReplaceIsNoRestart() {
        #expect(RollingRestart(replacing: []) == nil)
    }

    @Test func eachStepForksOneSurgeAndRetiresTheOldestWhenItIsReady() throws {
        var rolling = try #require(RollingRestart(replacing: [1, 2]))
        #expect(rolling.wantsSurge)
        #expect(rolling.claimSurgeFork() == true)
        #expect(rolling.claimSurgeFork() == false, "one surge worker at a time")
        rolling.forked(pid: 10)
        #expect(rolling.surgePid == 10)
        #expect(rolling.ready(pid: 11, isServing: { _ in true }) == nil, "not the surge worker")
        #expect(rolling.ready(pid: 10, isServing: { _ in true }) == RollingRestart.Step(retire: 1, isDone: false))
        #expect(rolling.remaining == [2])
        #expect(rolling.claimSurgeFork() == true, "the next step starts")
        rolling.forked(pid: 11)
        rolling.exited(pid: 2)  // the last old worker died on its own meanwhile
        #expect(rolling.remaining.isEmpty)
        #expect(rolling.wantsSurge, "the surge worker is still on its way")
        #expect(rolling.ready(pid: 11, isServing: { _ in true }) == RollingRestart.Step(retire: nil, isDone: true))
        #expect(!rolling.wantsSurge)
        #expect(rolling.claimSurgeFork() == false)
    }

    @Test(
        arguments: [
            // (old workers still serving, retired, done, left)
            ([1, 2, 3], 1, false, [2, 3]),
            ([2, 3], 2, false, [3]),  // 1 exited or is retiring already: skipped, not stopped twice
            ([3], 3, true, []),
            ([], nil, true, []),
        ] as [(Set<Int32>, Int32?, Bool, [Int32])])
    func aReadySurgeRetiresTheOldestOldWorkerStillServing(
        serving: Set<Int32>, retired: Int32?, done: Bool, left: [Int32]
    ) throws {
        var rolling = try #require(RollingRestart(replacing: [1, 2, 3]))
        #expect(rolling.claimSurgeFork() == true)
        rolling.forked(pid: 10)
        let step = rolling.ready(pid: 10, isServing: { serving.contains($0) })
        #expect(step == RollingRestart.Step(retire: retired, isDone: done))
        #expect(rolling.remaining == left)
        #expect(rolling.surgePid == nil)
    }

    @Test func aFailedSurgeForkIsAskedForAgain() throws {
        var rolling = try #require(RollingRestart(replacing: [1]))
        #expect(rolling.claimSurgeFork() == true)
        rolling.forkFailed()
        #expect(!rolling.surgeForking)
        #expect(rolling.claimSurgeFork() == true)
    }

    @Test func aSurgeThatDiesBeforeReadyIsReplacedAndRetiresNobody() throws {
        var rolling = try #require(RollingRestart(replacing: [1]))
        #expect(rolling.claimSurgeFork() == true)
        rolling.forked(pid: 10)
        rolling.exited(pid: 10)
        #expect(rolling.surgePid == nil)
        #expect(rolling.remaining == [1])
        #expect(rolling.ready(pid: 10, isServing: { _ in true }) == nil)
        #expect(rolling.claimSurgeFork() == true)
    }

    @Test func anOrdinaryForkIsNotTheSurge() throws {
        var rolling = try #require(RollingRestart(replacing: [1]))
        rolling.forked(pid: 20)  // a respawn, no surge fork asked for
        #expect(rolling.surgePid == nil)
        #expect(rolling.ready(pid: 20, isServing: { _ in true }) == nil)
    }
}
