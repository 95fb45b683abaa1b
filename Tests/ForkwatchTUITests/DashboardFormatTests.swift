import ForkwatchCore
import Testing

@testable import ForkwatchTUI

/// The small formats that must fit their columns.
@Suite struct DashboardFormatTests {
    @Test(arguments: [
        (4.0, 7, "0:04"), (192, 7, "3:12"), (3599, 7, "59:59"), (3732, 7, "1:02:12"),
        (3732, 6, "1h02m"), (400_000, 6, "4d15h"), (-3, 7, "0:00"),
    ])
    func uptime(seconds: Double, width: Int, expected: String) {
        #expect(DashboardFormat.uptime(seconds, width: width) == expected)
    }

    @Test(arguments: [
        (900 << 10, "900K"), (1_250_000, "1.2M"), (9 << 20, "9M"), (12 << 20, "12M"),
        (120 << 20, "120M"), (3 << 30, "3.0G"),
    ])
    func rss(bytes: Int, expected: String) {
        #expect(DashboardFormat.bytes(bytes) == expected)
        #expect(expected.count <= 4)
    }

    @Test(arguments: [
        (TerminationStatus.signaled(.kill, coreDumped: false), 6, "KILL"),
        (.signaled(.segv, coreDumped: true), 9, "SEGV core"),
        (.signaled(.segv, coreDumped: true), 6, "SEGV"),
        (.exited(code: 1), 6, "exit 1"),
        (.exited(code: 127), 6, "ex127"),
    ])
    func lastExit(status: TerminationStatus, width: Int, expected: String) {
        #expect(DashboardFormat.exitShort(status, width: width) == expected)
    }

    @Test func sparklineScalesAndFallsBackToASCII() {
        #expect(DashboardFormat.sparkline([0, 1, 2, 4, 8], width: 5, unicode: true) == "▁▂▃▅█")
        #expect(DashboardFormat.sparkline([0, 1, 2, 4, 8], width: 5, unicode: false) == "_..-#")
        #expect(
            DashboardFormat.sparkline([1, 2, 3, 4], width: 2, ceiling: 4, unicode: true) == "▇█", "keeps the newest")
    }

    @Test func forksPerSecondBucketsEndAtNow() {
        let buckets = DashboardRenderer.forksPerSecond([94.5, 99.2, 99.9, 100], now: 100, seconds: 6)
        #expect(buckets == [1, 0, 0, 0, 0, 3])
    }

    @Test func wrapKeepsWordsAndCutsLongOnes() {
        #expect(
            DashboardFormat.wrap("waitpid status 0x9: low bits", width: 12) == ["waitpid", "status 0x9:", "low bits"])
        #expect(DashboardFormat.wrap("abcdefghij", width: 4) == ["abcd", "efgh", "ij"])
    }
}
