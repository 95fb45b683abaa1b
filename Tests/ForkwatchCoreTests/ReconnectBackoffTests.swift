import Testing

@testable import ForkwatchCore

/// oslo.messaging's reconnect schedule: kombu's `retry_over_time` intervals (start, start + step,
/// … capped), with oslo's `kombu_reconnect_delay` on top once a connection was lost.
@Suite struct ReconnectBackoffTests {
    /// Waits before each attempt of a broker down for good, first connection vs after a loss.
    @Test(arguments: [
        // oslo's defaults: rabbit_retry_interval 1, rabbit_retry_backoff 2, rabbit_interval_max 30.
        (ReconnectBackoff(), false, [1.0, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 30, 30]),
        (ReconnectBackoff(), true, [1.0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 31, 31]),
        (ReconnectBackoff(retryInterval: 2, retryBackoff: 0, intervalMax: 30), false, [2.0, 2, 2]),
        (ReconnectBackoff(retryInterval: 5, retryBackoff: 10, intervalMax: 12), true, [1.0, 6, 13, 13]),
        (ReconnectBackoff(reconnectDelay: 0), true, [0.0, 1, 3, 5]),
    ])
    func theWaitsFollowKombusSchedule(backoff: ReconnectBackoff, afterALoss: Bool, waits: [Double]) {
        var backoff = backoff
        var seen: [Double] = []
        if afterALoss { seen.append(backoff.lost()) }
        while seen.count < waits.count { seen.append(backoff.failed()) }
        #expect(seen == waits)
    }

    /// With the defaults, attempts after a loss come 1, 3, 7, 13, 21, 31 s after it (oslo's log:
    /// "Trying again in 2/4/6/8/10 seconds").
    @Test func attemptsAfterALossComeWhenOslosDo() {
        var backoff = ReconnectBackoff()
        var at = backoff.lost()
        var attempts = [at]
        for _ in 0..<5 {
            at += backoff.failed()
            attempts.append(at)
        }
        #expect(attempts == [1, 3, 7, 13, 21, 31])
    }

    /// A connection made starts the schedule over: the next outage waits as little as the first.
    @Test func aConnectionResetsTheSchedule() {
        var backoff = ReconnectBackoff()
        _ = backoff.lost()
        for _ in 0..<6 { _ = backoff.failed() }
        backoff.connected()
        #expect(backoff.failures == 0 && !backoff.reconnecting)
        #expect(backoff.lost() == 1)
        #expect(backoff.failed() == 2)
    }
}
