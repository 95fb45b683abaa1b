import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Where this process's log lines go: standard error or a file that SIGUSR1 reopens. Plain
/// write(2) on one fd, so a line never interleaves with another process's line (each is one
/// write, under PIPE_BUF for normal lengths).
public final class LogOutput: @unchecked Sendable {
    public static let shared = LogOutput()

    private(set) var fd: Int32 = 2
    private(set) var path: String?

    /// Sends lines to `path` (nil: standard error).
    public func open(path: String?) throws(PosixError) {
        guard let path else {
            if fd > 2 { Posix.close(fd) }
            fd = 2
            self.path = nil
            return
        }
        let newFD = try Posix.openAppend(path)
        if fd > 2 { Posix.close(fd) }
        fd = newFD
        self.path = path
    }

    /// Closes and opens the log file again (after logrotate moved it).
    public func reopen() throws(PosixError) {
        try open(path: path)
    }

    func write(_ line: String) {
        try? Posix.writeAll(fd, line)
    }

    /// `07:12:01.123`, local time.
    static func clockText(wall: Double) -> String {
        var seconds = time_t(wall)
        var parts = tm()
        localtime_r(&seconds, &parts)
        let millis = Int((wall - Double(Int(wall))) * 1000)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let ms = millis < 10 ? "00\(millis)" : millis < 100 ? "0\(millis)" : "\(millis)"
        return "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(ms)"
    }
}

/// A swift-log handler printing `07:12:01.123 INFO  master[4211] message key=value`.
public struct LineLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    private let label: String

    public init(label: String) { self.label = label }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { $1 } }
        let fields = all.sorted { $0.key < $1.key }.map { " \($0.key)=\($0.value)" }.joined()
        let level = event.level.rawValue.uppercased()
        let padded = level + String(repeating: " ", count: max(0, 8 - level.count))
        let line =
            "\(LogOutput.clockText(wall: Posix.wallNow())) \(padded)\(label)[\(Posix.getpid())] \(event.message)\(fields)\n"
        LogOutput.shared.write(line)
    }
}

extension LineLogHandler {
    /// Makes every logger of this process print forkwatch's lines. The program's to call, once
    /// (swift-log allows one bootstrap): the CLI does; the library never does, so a program that
    /// embeds `ProcessLauncher` keeps its own logging.
    public static func bootstrap() {
        LoggingSystem.bootstrap { LineLogHandler(label: $0) }
    }
}
