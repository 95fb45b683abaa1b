import ForkwatchCore
import Testing

@testable import ForkwatchTUI

/// The PERIODIC TASKS, ACCEPT QUEUE and RPC panels, fed the events the master sends.
@Suite struct PanelRenderTests {
    private func model() -> DashboardModel {
        var model = Fixture.demo()
        let at = Fixture.startMono + 100
        var timings = TaskTimings()
        timings.record(duration: 0.003, ok: true, error: nil, nextDue: at + 2, spacing: 2)
        timings.record(duration: 0.005, ok: false, error: "boom", nextDue: at + 4, spacing: 2)
        model.apply(
            Fixture.event(
                .taskRun(
                    pid: 4212, service: "scheduler", task: "_discover_hosts_in_cells",
                    started: 0, duration: 0.005, ok: false, error: "boom", nextDue: at + 4,
                    timings: timings), at: at))
        model.apply(
            Fixture.event(.heartbeat(pid: 4212, service: "scheduler", ok: true, reportCount: 42, error: nil), at: at))
        model.apply(Fixture.event(.listening(service: "api", address: "127.0.0.1:8080", backlog: 128), at: at))
        for depth in [0, 1, 3] {
            model.apply(
                Fixture.event(.acceptQueue(service: "api", address: "127.0.0.1:8080", depth: depth, limit: 128), at: at)
            )
        }
        model.setNow(at + 1)
        return model
    }

    @Test(arguments: [(80, 24), (160, 50)])
    func theRpcPanelSumsTheWorkersPerMethod(width: Int, height: Int) {
        var model = model()
        let at = Fixture.startMono + 101
        #expect(DashboardRenderer.render(model, width: width, height: height).text.contains("no RPC traffic"))
        model.apply(
            Fixture.event(
                .rpcStats(
                    pid: 4212, service: "scheduler", topic: "scheduler",
                    methods: [
                        RPCMethodStats(
                            method: "select_destinations", handled: 40, failures: 1, inFlight: 1, p50: 0.002, p95: 0.004
                        )
                    ]), at: at))
        model.apply(
            Fixture.event(
                .rpcStats(
                    pid: 4213, service: "scheduler", topic: "scheduler",
                    methods: [
                        RPCMethodStats(
                            method: "select_destinations", handled: 2, failures: 0, inFlight: 0, p50: 0.002, p95: 0.009)
                    ]), at: at))
        model.setNow(at + 0.5)
        let text = DashboardRenderer.render(model, width: width, height: height).text
        #expect(text.contains("RPC"))
        #expect(text.contains(width >= 100 ? "select_destinations" : "select_des"))
        #expect(text.contains("42+1"), "\(text)")  // 40 + 2 handled, 1 in flight
        #expect(text.contains("9ms"))  // the slowest worker's p95
        #expect(!text.contains("no RPC traffic"))
    }

    @Test(arguments: [(80, 24), (160, 50)])
    func theRightColumnShowsTasksHeartbeatAndBacklog(width: Int, height: Int) {
        let frame = DashboardRenderer.render(model(), width: width, height: height)
        #expect(frame.text.contains("PERIODIC TASKS"))
        #expect(frame.text.contains("_discover"))
        #expect(frame.text.contains("5ms"))
        // The column is wide enough for the option's name from 100 columns on.
        #expect(frame.text.contains(width >= 100 ? "heartbeat: report_count 42" : "heartbeat #42"))
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
