/// The table's answer to a control request that acts on the master: the reply line for the
/// client and the actions to perform (after the reply is sent). Docs: docs/control.md.
public struct ControlOutcome: Sendable, Hashable {
    /// `{"ok":true,"op":…}` when accepted, else the reason it was refused.
    public let reply: Result<String, ControlError>
    public let actions: [WorkerTable.Action]

    static func accepted(
        _ request: ControlRequest, _ extra: String = "", actions: [WorkerTable.Action]
    ) -> ControlOutcome {
        ControlOutcome(reply: .success("{\"ok\":true,\"op\":\"\(request.op)\"\(extra)}\n"), actions: actions)
    }

    static func refused(_ message: String) -> ControlOutcome {
        ControlOutcome(reply: .failure(ControlError(message)), actions: [])
    }

    /// The line to send back.
    public var line: String {
        switch reply {
        case .success(let line): return line
        case .failure(let error): return error.line
        }
    }
}

extension WorkerTable {
    /// Decides a `signal`, `scale`, `reload` or `stop` request. Nil for `status` and `subscribe`:
    /// they are answered with the master's snapshot, not by the table.
    public mutating func control(_ request: ControlRequest, now: Double) -> ControlOutcome? {
        switch request {
        case .status, .subscribe:
            return nil
        case .signal(let pid, let signal):
            // Only a live worker of this master: never the master itself, never a stranger
            // (a pid still in the table has not been reaped, so it cannot have been reused).
            guard workers[pid] != nil else { return .refused("pid \(pid) is not a live worker of this master") }
            return .accepted(
                request, ",\"pid\":\(pid),\"signal\":\"\(signal.name)\"",
                actions: [.signal(pid: pid, signal: signal, reason: "asked over the control socket", origin: "you")])
        case .scale(let service, let count):
            guard self.service(named: service) != nil else {
                return .refused(
                    "no service named '\(service)' (services: \(services.map(\.spec.name).joined(separator: ", ")))")
            }
            guard phase == .running else { return .refused("the master is stopping") }
            if let problem = scaleRefusal(service: service, to: count) { return .refused("scale: \(problem)") }
            return .accepted(
                request, actions: scale(service: service, to: count, reason: "asked over the control socket", now: now))
        case .reload:
            guard phase == .running else { return .refused("the master is stopping") }
            return .accepted(request, actions: [.reloadConfiguration])
        case .stop(let mode):
            return .accepted(request, actions: requestStop(mode: mode, now: now))
        }
    }
}
