import Forkwatch
import ForkwatchCore

#if canImport(Glibc)
import Glibc
#endif

/// A recorded events file, read as playback needs it: 64 KiB at a time through an
/// `EventFileReader`, so a file of any size opens at once and costs one chunk of memory.
/// Lines that give no event are counted and named (`FILE:LINE: why`), never fatal.
public final class ReplayFile {
    public enum Pull {
        case event(Event)
        /// A chunk was read and held no event yet (a run of bad lines): ask again.
        case nothingYet
        case end
    }

    public let path: String
    private let fd: Int32
    private var reader = EventFileReader()
    private var atEnd = false
    public private(set) var eventsRead = 0
    public private(set) var problemCount = 0
    /// `FILE:LINE: why`, for the first and the latest line that gave no event.
    public private(set) var firstProblem: String?
    public private(set) var latestProblem: String?
    /// A read(2) that failed midway (EIO): the playback ends there.
    public private(set) var readError: String?

    /// Opens `path` read-only: nothing is created, and a missing or unreadable file is an error
    /// naming it (`open(2)`).
    public init(path: String) throws(PosixError) {
        self.path = path
        var opened: Int32
        repeat { opened = open(path, O_RDONLY | O_CLOEXEC) } while opened < 0 && errno == EINTR
        guard opened >= 0 else { throw PosixError("open", errno: errno) }
        fd = opened
    }

    deinit { Posix.close(fd) }

    /// The next event; reads at most one chunk of the file per call.
    public func next() -> Pull {
        var readOne = false
        while true {
            if let item = reader.next() {
                switch item {
                case .event(let event, _):
                    eventsRead += 1
                    return .event(event)
                case .problem(let problem):
                    record(problem)
                    continue
                }
            }
            if atEnd { return .end }
            if readOne { return .nothingYet }
            readOne = true
            do {
                guard let chunk = try Posix.read(fd, max: 65_536) else { continue }
                if chunk.isEmpty {
                    atEnd = true
                    reader.finish()
                } else {
                    reader.append(chunk)
                }
            } catch {
                readError = "\(path): \(error.message)"
                atEnd = true
                reader.finish()
            }
        }
    }

    /// The first event, however many bad lines come before it; nil when the file has none.
    public func firstEvent() -> Event? {
        while true {
            switch next() {
            case .event(let event): return event
            case .nothingYet: continue
            case .end: return nil
            }
        }
    }

    private func record(_ problem: EventFileReader.Problem) {
        problemCount += 1
        let text = "\(path):\(problem.line): \(problem.message)"
        if firstProblem == nil { firstProblem = text }
        latestProblem = text
    }
}
