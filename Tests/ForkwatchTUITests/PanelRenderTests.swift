import ForkwatchCore
@testable import ForkwatchTUI
import Testing

/// The PERIODIC TASKS and ACCEPT QUEUE panels, fed the events the master sends.
@Suite struct PanelRenderTests {
    private func model() -> DashboardModel {
        var model = Fixture.demo()
        let at = Fixture.startMono + 100
        var timings = TaskTimings()
        timings.record(duration: 0.003, ok: true, error: nil, nextDue: at + 2, spacing: 2)
        timings.record(duration: 0.005, ok: false, error: "boom", nextDue: at + 4, spacing: 2)
        model.apply(Fixture.event(.taskRun(pid: 4212, service: "scheduler", task: "_discover_hosts_in_cells",
                                                     started: 0, duration: 0.005, ok: false, error: "boom", nextDue: at + 4,
                                                     timings: timings), at: at))
        model.apply(Fixture.event(.heartbeat(pid: 4212, service: "scheduler", ok: true, reportCount: 42, error: nil), at: at))
        model.apply(Fixture.event(.listening(service: "api", address: "127.0.0.1:8080", backlog: 128), at: at))
        for depth in [0, 1, 3] {
            model.apply(Fixture.event(.acceptQueue(service: "api", address: "127.0.0.1:8080", depth: depth, limit: 128), at: at))
        }
        model.setNow(at + 1)
        return model
    }

    @Test(arguments: [(80, 24), (160, 50)])
    func theRightColumnShowsTasksHeartbeatAndBacklog(width: Int, height: Int) {
        let frame = DashboardRenderer.render(model(), width: width, height: height)
        #expect(frame.text.contains("PERIODIC TASKS"))
        #expect(frame.text.contains("_discover"))
        #expect(frame.text.contains("5ms"))
        #expect(frame.text.contains("heartbeat"))
        #expect(frame.text.contains("42"))
        #expect(frame.text.contains("ACCEPT QUEUE"))
        #expect(frame.text.contains("backlog 3/128"))
        #expect(!frame.text.contains("no listening socket"))
    }

    @Test func theBacklogSparklineIsAscii() {
        let frame = DashboardRenderer.render(model(), width: 120, height: 40, unicode: false)
        #expect(frame.text.contains("backlog 3/128"))
        let ascii = frame.text.unicodeScalars.allSatisfy { $0.isASCII }
        #expect(ascii)
    }
}
