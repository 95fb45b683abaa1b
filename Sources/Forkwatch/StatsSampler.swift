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

    func sample(_ pids: [Int32], now: Double) -> [ProcessSample] {
        var samples: [ProcessSample] = []
        var seen: [Int32: (ticks: Int, at: Double)] = [:]
        for pid in pids {
            guard let stat = try? Posix.readFile("/proc/\(pid)/stat"),
                  let statm = try? Posix.readFile("/proc/\(pid)/statm"),
                  let reading = ProcStat.parse(stat: stat, statm: statm) else { continue }
            let cpu = previous[pid].map {
                ProcStat.cpuPercent(from: $0.ticks, to: reading.cpuTicks, seconds: now - $0.at, ticksPerSecond: ticksPerSecond)
            } ?? 0
            seen[pid] = (reading.cpuTicks, now)
            samples.append(ProcessSample(pid: pid, cpuPercent: cpu, rssBytes: reading.rssPages * pageSize,
                                         state: reading.state, threads: reading.threads))
        }
        previous = seen
        return samples
    }
}
