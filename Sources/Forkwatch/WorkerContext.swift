import ForkwatchCore
import Logging

/// What a worker is handed in the child, right after fork: everything its service may read of
/// the master, as one value (no process-wide state to set and read back).
public struct WorkerContext: Sendable {
    /// The service's spec as the master holds it at this fork: after a scale, its worker count
    /// is the new one.
    public let spec: ServiceSpec
    /// This worker's place among its service's live workers (0, 1, …).
    public let slot: Int
    /// The launcher's options (nova's `report_interval`, `database`, `transport_url`, …).
    public let configuration: LauncherConfiguration
    /// Where to report to the master (nowhere when run without one: `--no-fork`).
    public let status: StatusChannel
    /// The service's listening socket, bound by the master before the first fork; nil without one.
    public let listenFD: Int32?
    /// The service's accept lock (a memfd the master made): reopen it, then flock it to take
    /// your turn at accepting. Nil without a master.
    public let acceptLockFD: Int32?
    /// Labelled with the service's name.
    public let logger: Logger

    public init(
        spec: ServiceSpec, slot: Int = 0, configuration: LauncherConfiguration, status: StatusChannel = .none,
        listenFD: Int32? = nil, acceptLockFD: Int32? = nil, logger: Logger? = nil
    ) {
        self.spec = spec
        self.slot = slot
        self.configuration = configuration
        self.status = status
        self.listenFD = listenFD
        self.acceptLockFD = acceptLockFD
        self.logger = logger ?? Logger(label: spec.name)
    }

    public var name: String { spec.name }
}

/// A worker's end of its status pipe. Each message is one write under PIPE_BUF, so the
/// threads of one worker never interleave their lines.
public struct StatusChannel: Sendable {
    let fd: Int32?

    init(fd: Int32?) { self.fd = fd }

    /// Not under a master: messages go nowhere.
    public static let none = StatusChannel(fd: nil)

    public func send(_ message: ChildMessage) {
        guard let fd else { return }
        try? Posix.writeAll(fd, message.line)
    }
}
