import ForkwatchCore

@testable import ForkwatchTUI

/// Scripted master states for the dashboard tests: events built with the core's own types, on a
/// fake clock (mono starts at 1000 s; wall at 2023-11-14 22:13:20 UTC).
enum Fixture {
    static let masterPid: Int32 = 4211
    static let startMono = 1000.0
    static let startWall = 1_700_000_000.0
    /// 3 min 12 s after the master started, as in design.md.
    static let now = startMono + 192

    static func event(_ kind: Event.Kind, at mono: Double) -> Event {
        Event(mono: mono, wall: startWall + (mono - startMono), kind: kind)
    }

    static func service(
        _ name: String, workers: Int, state: ServiceState = .running, restarts: Int = 0,
        forkTimes: [Double]? = nil, pendingForkAt: Double? = nil
    ) -> Snapshot.ServiceInfo {
        Snapshot.ServiceInfo(
            name: name, program: name, workers: workers, state: state, restarts: restarts, generation: 1,
            forkTimes: forkTimes ?? Array(repeating: startMono, count: workers),
            pendingForkAt: pendingForkAt, throttleInterval: 1, quickDeaths: 0)
    }

    static func worker(
        _ pid: Int32, _ service: String, forkedAt: Double = startMono, ready: Bool = true
    ) -> Snapshot.WorkerInfo {
        Snapshot.WorkerInfo(
            pid: pid, service: service, generation: 1, forkedAt: forkedAt,
            readyAt: ready ? forkedAt + 0.01 : nil, restarts: 0, retiring: false)
    }

    static func snapshot(
        services: [Snapshot.ServiceInfo], workers: [Snapshot.WorkerInfo], phase: String = "running"
    ) -> Event {
        event(
            .snapshot(
                Snapshot(
                    masterPid: masterPid, startedAt: startMono, phase: phase, configuration: "demo",
                    services: services, workers: workers)), at: startMono + 0.5)
    }

    /// The design's demo: a scheduler with 4 workers (4212…4215) and an api with 2 (4216, 4217),
    /// with one stats sample each and a few events in the log.
    static func demo(mode: DashboardModel.Mode = .live) -> DashboardModel {
        var model = DashboardModel(title: "forkwatch demo", mode: mode)
        model.apply(
            snapshot(
                services: [service("scheduler", workers: 4), service("api", workers: 2)],
                workers: [
                    worker(4212, "scheduler"), worker(4213, "scheduler"), worker(4214, "scheduler"),
                    worker(4215, "scheduler"), worker(4216, "api"), worker(4217, "api"),
                ]))
        for (offset, pid) in [Int32(4212), 4213, 4214, 4215, 4216, 4217].enumerated() {
            model.apply(
                event(
                    .ready(pid: pid, service: pid < 4216 ? "scheduler" : "api", after: 0.012),
                    at: startMono + 1 + Double(offset) * 0.001))
        }
        model.apply(stats(at: now - 1))
        model.setNow(now)
        return model
    }

    /// A stats sample for the master and every demo worker: 12 MiB each, 9 MiB for the master.
    static func stats(at mono: Double, cpu: Double = 0.1) -> Event {
        let samples =
            [ProcessSample(pid: masterPid, cpuPercent: 0, rssBytes: 9 << 20, state: "S", threads: 1)]
            + (Int32(4212)...4217).map {
                ProcessSample(pid: $0, cpuPercent: cpu, rssBytes: 12 << 20, state: "S", threads: 3)
            }
        return event(.stats(samples: samples), at: mono)
    }

    /// A worker killed by SIGKILL and its respawn (4213 → 4390), as in design.md.
    static func killAndRespawn(_ model: inout DashboardModel, at mono: Double) {
        model.apply(
            event(
                .signalSent(
                    pid: 4213, service: "scheduler", signal: .kill, reason: "dashboard", origin: "you", error: nil),
                at: mono))
        model.apply(
            event(
                .exit(
                    pid: 4213, service: "scheduler", status: .signaled(.kill, coreDumped: false), rawStatus: 9,
                    uptime: mono - startMono, expected: false), at: mono + 0.001))
        model.apply(event(.fork(pid: 4390, service: "scheduler", reason: .respawn, generation: 1), at: mono + 0.002))
    }
}

extension Frame {
    /// The first row below the header whose text contains `needle`, trailing spaces trimmed
    /// (the header is asserted on its own, with `text(row: 0)`).
    func row(containing needle: String) -> String? {
        (1..<height).map { text(row: $0) }.first { $0.contains(needle) }.map { line in
            var line = line
            while line.last == " " { line.removeLast() }
            return line
        }
    }

    /// The left column (WORKERS, EXPLAIN, EVENTS) as one string, rows joined by spaces, so a
    /// sentence wrapped over several rows can be found whole.
    var leftColumnText: String {
        let width = DashboardLayout(width: self.width, height: height, workerRowCount: 0).leftWidth
        return (1..<height).map { row in
            var line = String(text(row: row).prefix(width))
            while line.last == " " { line.removeLast() }
            return line.drop { $0 == " " }
        }.joined(separator: " ")
    }

    /// The row drawn with the selection marker in the WORKERS panel (column 0 is '>' and reversed).
    var selectedWorkerRow: String? {
        (0..<height).first { self[$0, 0].character == ">" && self[$0, 0].style.reverse && self[$0, 5].style.reverse }
            .map { text(row: $0) }
    }
}

extension DashboardModel {
    /// Sends keys, returning every command they produced.
    @discardableResult
    mutating func press(_ keys: DashboardKey...) -> [DashboardCommand] {
        keys.flatMap { handle($0) }
    }

    @discardableResult
    mutating func type(_ text: String) -> [DashboardCommand] {
        text.flatMap { handle(.character($0)) }
    }
}
