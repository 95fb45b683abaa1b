import ForkwatchCore
import Testing

@testable import ForkwatchTUI

/// What a replay feeds the model: the extremes the decoder lets through, and bursts of
/// thousands of events at once.
@Suite struct ReplayModelTests {
    /// The largest values the decoder accepts, rendered with fast refresh and a step (the keys
    /// of the reported SIGILL): every number on screen is formatted without a trap.
    @Test func theLargestValuesTheDecoderAcceptsRender() {
        let far = EventCodec.secondsLimit
        var model = DashboardModel(title: "replay", mode: .replay)
        let big = Int(Int32.max)
        let events: [Event.Kind] = [
            .masterStarted(
                pid: Int32.max, services: [ServiceSpec(name: "s", program: .builtin("idle"), workers: big)], config: ""),
            .fork(pid: 7, service: "s", reason: .initial, generation: big),
            .ready(pid: 7, service: "s", after: far),
            .throttle(service: "s", forks: big, span: far, window: far, delay: far),
            .stats(samples: [ProcessSample(pid: 7, cpuPercent: 1e6, rssBytes: 1 << 50, state: "R", threads: big)]),
            .heartbeat(pid: 7, service: "s", ok: true, reportCount: big, error: nil),
            .stopping(mode: .graceful, timeout: far, workers: big),
            .exit(pid: 7, service: "s", status: .exited(code: 255), rawStatus: 0xFFFF, uptime: far, expected: false),
        ]
        for (index, kind) in events.enumerated() {
            model.apply(Event(mono: index % 2 == 0 ? far : -far, wall: far, kind: kind))
        }
        for key in ["f", ".", "e", "]", "?"] { _ = model.handle(.character(Character(key))) }
        for now in [far, -far, 0] {
            model.setNow(now)
            let frame = DashboardRenderer.render(model, width: 120, height: 40)
            #expect(frame.text.contains("REPLAY"))
        }
        #expect(DashboardFormat.uptime(.nan) == "0:00")
        #expect(DashboardFormat.hours(1e300).hasPrefix("277777777777"))
        #expect(DashboardFormat.clock(wall: -1e300, utcOffset: 0).count == 12)
    }

    /// 20,000 forks 1 µs apart, then their exits, in one batch: applied at once, the gone rows
    /// leave together 2 s later, and nothing is left behind.
    @Test func aBurstOfTwentyThousandForksAppliesInOneBatch() {
        var model = DashboardModel(title: "replay", mode: .replay)
        model.apply(Event(mono: 0, wall: 0, kind: .masterStarted(pid: 1, services: [], config: "")))
        let forks = (0..<20_000).map { i in
            Event(
                mono: 1 + Double(i) * 1e-6, wall: 0,
                kind: .fork(pid: Int32(100 + i), service: "s", reason: .initial, generation: 1))
        }
        model.apply(forks)
        #expect(model.shown.workers.count == 20_000)
        #expect(model.workerRows.count == 20_001)
        #expect(model.selection != nil)
        let exits = (0..<20_000).map { i in
            Event(
                mono: 1.1 + Double(i) * 1e-6, wall: 0,
                kind: .exit(
                    pid: Int32(100 + i), service: "s", status: .exited(code: 0), rawStatus: 0, uptime: 0.1,
                    expected: true))
        }
        model.apply(exits)
        #expect(model.shown.workers.values.allSatisfy { $0.state == .gone })
        model.setNow(1.1 + 1.9)
        #expect(model.shown.workers.count == 20_000, "gone rows linger 2 s")
        model.setNow(1.1 + 2.1)
        #expect(model.shown.workers.isEmpty)
        // A pid forked again while its old row lingers keeps its new row.
        model.apply(Event(mono: 10, wall: 0, kind: .fork(pid: 100, service: "s", reason: .respawn, generation: 1)))
        model.apply(
            Event(
                mono: 10.1, wall: 0,
                kind: .exit(
                    pid: 100, service: "s", status: .exited(code: 1), rawStatus: 256, uptime: 0.1, expected: false)))
        model.apply(Event(mono: 11, wall: 0, kind: .fork(pid: 100, service: "s", reason: .respawn, generation: 1)))
        model.setNow(13)
        #expect(model.shown.workers[100]?.state == .starting)
    }
}
