import ForkwatchCore

#if canImport(Glibc)
import Glibc
#endif

/// htop's method: each process's /proc/PID/stat (state, utime + stime, threads) and
/// /proc/PID/statm (resident pages); CPU % from the tick delta since the previous sample.
final class StatsSampler {
    private var previous: [Int32: (ticks: Int, at: Double)] = [:]
    private let ticksPerSecond = Int(sysconf(Int32(_SC_CLK_TCK)))
    private let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
    /// Reused for every read: no allocation per process per second.
    private var statBuffer = [UInt8](repeating: 0, count: 1024)
    private var statmBuffer = [UInt8](repeating: 0, count: 256)

    func sample(_ pids: [Int32], now: Double) -> [ProcessSample] {
        var samples: [ProcessSample] = []
        samples.reserveCapacity(pids.count)
        var seen: [Int32: (ticks: Int, at: Double)] = [:]
        for pid in pids {
            let statCount = Posix.readProcFile(pid: pid, name: "stat", into: &statBuffer)
            let statmCount = Posix.readProcFile(pid: pid, name: "statm", into: &statmBuffer)
            guard statCount > 0, statmCount > 0 else { continue }
            let parsed = statBuffer.withUnsafeBufferPointer { stat in
                statmBuffer.withUnsafeBufferPointer { statm in
                    ProcStat.parse(
                        stat: UnsafeBufferPointer(rebasing: stat[..<statCount]),
                        statm: UnsafeBufferPointer(rebasing: statm[..<statmCount]))
                }
            }
            guard let reading = parsed else { continue }
            let cpu =
                previous[pid].map {
                    ProcStat.cpuPercent(
                        from: $0.ticks, to: reading.cpuTicks, seconds: now - $0.at, ticksPerSecond: ticksPerSecond)
                } ?? 0
            seen[pid] = (reading.cpuTicks, now)
            samples.append(
                ProcessSample(
                    pid: pid, cpuPercent: cpu, rssBytes: reading.rssPages * pageSize,
                    state: reading.state, threads: reading.threads))
        }
        previous = seen
        return samples
    }
}
