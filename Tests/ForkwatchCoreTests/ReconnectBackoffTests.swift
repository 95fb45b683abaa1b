import Testing

@testable import ForkwatchCore

/// oslo.messaging's reconnect schedule: kombu's `retry_over_time` intervals (start, start + step,
/// … capped), oslo's `kombu_reconnect_delay` on top once a connection was lost, and the rounds of
/// oslo's listener poll (a `consume` call that times out starts the schedule over).
@Suite struct ReconnectBackoffTests {
    /// Attempt times of a broker down for good, each attempt failing at once.
    private func attempts(
        _ backoff: ReconnectBackoff, lostAt: Double?, lastMessage: Double? = nil, count: Int
    )
        -> [Double]
    {
        var backoff = backoff
        var now = lostAt ?? 0
        var times: [Double] = []
        if let lostAt {
            now = lostAt + backoff.lost(at: lostAt, lastMessage: lastMessage)
        }
        while times.count < count {
            times.append(now)
            now += backoff.failed(at: now)
        }
        return times
    }

    /// The first connection of all: kombu's intervals alone (oslo's `ensure_connection`).
    @Test(arguments: [
        (ReconnectBackoff(), [0.0, 1, 4, 9, 16, 25, 36, 49, 64, 81, 100, 121, 144, 169, 196, 225, 255, 285]),
        (ReconnectBackoff(retryInterval: 2, retryBackoff: 0, intervalMax: 30), [0.0, 2, 4, 6]),
        (ReconnectBackoff(retryInterval: 5, retryBackoff: 10, intervalMax: 12), [0.0, 5, 17, 29]),
    ])
    func aFirstConnectionWaitsKombusIntervals(backoff: ReconnectBackoff, times: [Double]) {
        #expect(attempts(backoff, lostAt: nil, count: times.count) == times)
    }

    /// An idle server (poll timeout 5 s) that lost its broker: 1, 3, 7 s into each round of
    /// oslo's consume, a new round at once after the 5 s timeout. What oslo 18.3.1 logged in the
    /// benchmark: "Trying again in 1 / 2 / 4 seconds", over and over.
    @Test func anIdleServerTriesWhenOslosDoes() {
        #expect(
            attempts(ReconnectBackoff(), lostAt: 100, count: 9) == [101, 103, 107, 108, 110, 114, 115, 117, 121])
    }

    /// Where in its 5 s poll round a listener lost its broker gives one of three schedules; a
    /// worker's consumers at phases ⅛, ⅜, ⅝, ⅞ have them all, and together try at least every 2 s
    /// (one listener: up to 4 s apart).
    @Test func thePhaseInThePollRoundPicksTheSchedule() {
        func at(_ phase: Double) -> [Double] {
            var backoff = ReconnectBackoff()
            backoff.phase = phase
            return attempts(backoff, lostAt: 0, count: 7)
        }
        #expect(at(0.125) == [1, 3, 7, 8, 10, 14, 15])
        #expect(at(0.375) == [1, 3, 7, 8, 10, 14, 15])
        #expect(at(0.625) == [1, 3, 4, 6, 10, 11, 13])
        #expect(at(0.875) == [1, 2, 4, 8, 9, 11, 15])
        let together = Set([0.125, 0.375, 0.625, 0.875].flatMap(at)).sorted()
        #expect(zip(together, together.dropFirst()).allSatisfy { $1 - $0 <= 2 }, "\(together)")
    }

    /// A busy server (a message just before the loss): its poll timeout is short, so each round
    /// ends after one attempt and it tries every second until the timeout has doubled past 1 s.
    @Test func aBusyServerTriesEverySecondAtFirst() {
        let times = attempts(ReconnectBackoff(), lostAt: 100, lastMessage: 100, count: 13)
        #expect(Array(times.prefix(11)) == (1...11).map { 100 + Double($0) })
        #expect(times[11] - times[10] == 2, "the poll timeout reached 1.024 s: a second attempt in the round")
    }

    /// oslo's options shape the rounds: a long `rabbit_retry_interval` is cut short by the round.
    @Test func theOptionsShapeTheRounds() {
        let backoff = ReconnectBackoff(retryInterval: 10, retryBackoff: 2, intervalMax: 30)
        #expect(attempts(backoff, lostAt: 0, count: 5) == [1, 12, 13, 24, 25])
        #expect(attempts(ReconnectBackoff(reconnectDelay: 0), lostAt: 0, count: 4) == [0, 1, 4, 9])
    }

    /// A connection made starts the schedule over: the next outage waits as little as the first.
    @Test func aConnectionResetsTheSchedule() {
        var backoff = ReconnectBackoff()
        _ = backoff.lost(at: 0, lastMessage: nil)
        for second in [1.0, 3, 7, 8, 10, 14] { _ = backoff.failed(at: second) }
        backoff.connected()
        #expect(backoff.failures == 0 && !backoff.reconnecting)
        #expect(backoff.lost(at: 50, lastMessage: nil) == 1)
        #expect(backoff.failed(at: 51) == 2)
    }
}
