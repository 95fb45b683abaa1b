/// The order of the WORKERS panel: the master at the root, then workers grouped by service (in
/// the master's service order, unknown services after them by name) and by pid, filtered on
/// service name or pid.
extension DashboardModel {
    var workerRows: [WorkerRow] { Self.rows(of: shown, filter: filter) }

    static func rows(of world: DashboardWorld, filter: String) -> [WorkerRow] {
        let matches = matcher(filter)
        var byService: [String: [Int32]] = [:]
        for worker in world.workers.values where matches(worker) {
            byService[worker.service, default: []].append(worker.pid)
        }
        var pids: [Int32] = []
        pids.reserveCapacity(world.workers.count)
        for service in world.services { pids += (byService.removeValue(forKey: service.name) ?? []).sorted() }
        for name in byService.keys.sorted() { pids += byService[name]!.sorted() }
        var rows: [WorkerRow] = []
        rows.reserveCapacity(pids.count + 1)
        if let master = world.masterPid { rows.append(WorkerRow(pid: master, branch: .root)) }
        for (index, pid) in pids.enumerated() {
            rows.append(WorkerRow(pid: pid, branch: index == pids.count - 1 ? .last : .middle))
        }
        return rows
    }

    /// `rows(of:filter:).count` without building them.
    static func rowCount(of world: DashboardWorld, filter: String) -> Int {
        let matches = matcher(filter)
        return (world.masterPid == nil ? 0 : 1)
            + (filter.isEmpty ? world.workers.count : world.workers.values.filter(matches).count)
    }

    /// The row index of `pid` in `rows(of:filter:)`, found in one pass without sorting (this
    /// runs after every fork and exit, with up to thousands of workers).
    static func position(of pid: Int32, in world: DashboardWorld, filter: String) -> Int? {
        if let master = world.masterPid, pid == master { return 0 }
        guard let target = world.workers[pid] else { return nil }
        let matches = matcher(filter)
        guard matches(target) else { return nil }
        var rank: [String: Int] = [:]
        for (index, service) in world.services.enumerated() where rank[service.name] == nil {
            rank[service.name] = index
        }
        let unknown = world.services.count
        func key(_ worker: DashboardWorld.Worker) -> (Int, String, Int32) {
            let known = rank[worker.service]
            return (known ?? unknown, known == nil ? worker.service : "", worker.pid)
        }
        let targetKey = key(target)
        var before = world.masterPid == nil ? 0 : 1
        for worker in world.workers.values where worker.pid != pid && matches(worker) && key(worker) < targetKey {
            before += 1
        }
        return before
    }

    private static func matcher(_ filter: String) -> (DashboardWorld.Worker) -> Bool {
        let needle = filter.lowercased()
        guard !needle.isEmpty else { return { _ in true } }
        return { worker in worker.service.lowercased().contains(needle) || String(worker.pid).contains(needle) }
    }
}
