import ForkwatchCore
import Logging

/// Where the master's events go: a log line each (human-readable) and, when asked, a JSON line
/// each to the events file (`--events FILE`, `-` for standard output).
public final class EventSink {
    /// The master's logger: every event is a line in it.
    private let log: Logger
    private var eventsFD: Int32?
    private var ownsFD = false
    /// Extra observers (tests, an embedding program). Called in the master loop: keep them short.
    public var observers: [(Event) -> Void] = []

    public init(logger: Logger = Logger(label: "master")) { log = logger }

    /// Opens the events file; `-` is standard output.
    public func writeEvents(to path: String) throws(PosixError) {
        if path == "-" {
            eventsFD = 1
        } else {
            eventsFD = try Posix.openAppend(path)
            ownsFD = true
        }
    }

    deinit {
        if ownsFD, let eventsFD { Posix.close(eventsFD) }
    }

    var writesEvents: Bool { eventsFD != nil }
    /// Workers must not write into the JSON stream: their stdout goes to stderr then.
    var eventsOnStandardOutput: Bool { eventsFD == 1 }

    /// Logs `event` and writes its JSON `line` (encoded once by the caller) to the events file.
    func emit(_ event: Event, line: String? = nil) {
        log.log(level: Self.level(of: event.kind), "\(event.summary)")
        if let eventsFD {
            // A blocking write: a consumer that stops reading a pipe holds up the master. The
            // control socket (with its bounded per-client buffers) is the way to follow events live.
            do {
                try Posix.writeAll(eventsFD, line ?? EventCodec.encode(event) + "\n")
            } catch {
                // The reader went away (EPIPE) or the disk is full: stop writing events, say so once.
                log.error("events output closed: \(error); events are no longer written")
                if ownsFD { Posix.close(eventsFD) }
                self.eventsFD = nil
            }
        }
        for observer in observers { observer(event) }
    }

    static func level(of kind: Event.Kind) -> Logger.Level {
        switch kind {
        case .exit(_, _, _, _, _, let expected): return expected ? .info : .warning
        case .throttle, .escalate, .configError, .subscriberDropped: return .warning
        case .forkFailed, .forkRefused, .execFailed: return .error
        case .serviceState(_, let state, _): return state == .running ? .info : .error
        case .signalSent(_, _, _, _, _, let error): return error == nil ? .info : .warning
        case .stats, .snapshot, .acceptQueue, .rpcStats: return .debug
        case .taskRun(_, _, _, _, _, let ok, _, _, _): return ok ? .debug : .warning
        case .heartbeat(_, _, let ok, _, _): return ok ? .debug : .warning
        default: return .info
        }
    }
}
