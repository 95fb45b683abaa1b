import ForkwatchCore
import Testing

@Suite struct ForkThrottleTests {
    /// oslo's `_start_child` rule replayed: `workers + 1` fork times kept; when the oldest is
    /// younger than `workers` seconds the next fork waits 1 s, once.
    @Test func firstWorkersPlusOneForksNeverWait() {
        var throttle = ForkThrottle()
        for i in 0..<5 {
            #expect(throttle.admit(now: 100 + Double(i) * 0.001, workers: 4) == .forkNow)
        }
        // The sixth fork: 5 recorded (> 4 workers) and the oldest is 0.005 s old (< 4 s).
        guard case .delay(let until, let forks, let span, let window) = throttle.admit(now: 100.005, workers: 4) else {
            Issue.record("expected a delay")
            return
        }
        #expect(until == 101.005)
        #expect(forks == 5)
        #expect(abs(span - 0.005) < 1e-9)
        #expect(window == 4)
        // The caller forks at `until` and records it; the window is back to 5 entries.
        throttle.record(forkAt: until)
        #expect(throttle.forkTimes.count == 5)
    }

    @Test(arguments: [
        // (workers, spacing between forks, forks, expected delays)
        (1, 0.0, 6, 2),  // a crash loop with 1 worker: every other fork waits, about one a second
        (1, 1.0, 6, 0),  // one fork a second never trips a 1-worker window
        (4, 0.5, 10, 2),  // 5 forks in 2 s < 4 s: the 6th and 7th wait, then the window has spread out
        (4, 1.0, 10, 0),  // one fork a second with 4 workers: the window always spans >= 4 s
        (2, 0.4, 8, 2),  // hand-traced: the 4th and 7th forks wait
    ])
    func delaysMatchOslo(workers: Int, spacing: Double, forks: Int, delays: Int) {
        var throttle = ForkThrottle()
        var now = 0.0
        var delayed = 0
        for _ in 0..<forks {
            switch throttle.admit(now: now, workers: workers) {
            case .forkNow:
                break
            case .delay(let until, _, _, _):
                delayed += 1
                now = until
                throttle.record(forkAt: now)
            }
            now += spacing
        }
        #expect(delayed == delays)
    }

    @Test func intervalZeroTurnsItOff() {
        var throttle = ForkThrottle(interval: 0)
        for _ in 0..<50 { #expect(throttle.admit(now: 1, workers: 1) == .forkNow) }
        #expect(throttle.forkTimes.count == 2)
    }

    @Test func neverWaitsLongerThanOneInterval() {
        var throttle = ForkThrottle(interval: 1)
        var delays = 0
        for _ in 0..<100 {
            switch throttle.admit(now: 0, workers: 3) {
            case .forkNow:
                break
            case .delay(let until, _, _, _):
                delays += 1
                #expect(until == 1)
                throttle.record(forkAt: 0)
            }
        }
        // The first workers + 1 forks go at once; every later one in the same instant waits.
        #expect(delays == 96)
    }
}
