import ForkwatchCore

#if canImport(Glibc)
import Glibc
#endif

/// The workers' cgroup (v2), when the master is given one (`workers_cgroup`, e.g. a directory
/// under a systemd unit's cgroup with `Delegate=yes`): every worker joins it in its first
/// instructions after fork, so everything it starts is in it too, even what leaves the worker's
/// process group (`setsid`). `cgroup.kill` then ends all of them at once: when the master stops,
/// and when the next master on it starts after one that was SIGKILLed.
final class WorkersCgroup {
    let directory: String
    /// `cgroup.procs`, open for the children to write "0" into (join).
    let procsFD: Int32

    /// Creates the directory when missing; refuses one that is not a cgroup v2 with
    /// `cgroup.kill` (Linux 5.14), or that holds the master itself (its kill would end it).
    init(directory: String) throws(PosixError) {
        self.directory = directory
        if mkdir(directory, 0o755) != 0 && errno != EEXIST { throw PosixError("mkdir \(directory)", errno: errno) }
        guard Posix.exists(directory + "/cgroup.kill") else {
            throw PosixError(
                "workers_cgroup \(directory): not a cgroup v2 directory with cgroup.kill (Linux 5.14 or later)",
                errno: ENOTSUP)
        }
        let relative = Self.relative(directory)
        if let own = Self.ownCgroup(), own == relative || own.hasPrefix(relative + "/") {
            throw PosixError(
                "workers_cgroup \(directory): the master itself is in it (cgroup \(own)); give a directory "
                    + "of its own beside or below the master's cgroup", errno: EINVAL)
        }
        procsFD = open(directory + "/cgroup.procs", O_WRONLY | O_CLOEXEC)
        guard procsFD >= 0 else { throw PosixError("open \(directory)/cgroup.procs", errno: errno) }
    }

    deinit { Posix.close(procsFD) }

    /// The pids in the cgroup now.
    func members() -> [Int32] {
        ((try? Posix.readFile(directory + "/cgroup.procs")) ?? "").split(separator: "\n").compactMap { Int32($0) }
    }

    /// What a previous master left in the cgroup (its workers' children): ended with
    /// `cgroup.kill` unless `kill` is false; a line for the event stream, nil when it is empty.
    func endPredecessorsLeftovers(kill: Bool) -> String? {
        let left = members()
        guard !left.isEmpty else { return nil }
        if kill { killAll() }
        return "the workers' cgroup \(directory) held \(left.count) processes a previous master left (pids "
            + left.map(String.init).joined(separator: ", ") + "): "
            + (kill ? "killed (cgroup.kill)" : "left alone as asked")
    }

    /// SIGKILL to every process in the cgroup (the kernel's `cgroup.kill`).
    @discardableResult
    func killAll() -> Bool {
        let fd = open(directory + "/cgroup.kill", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { Posix.close(fd) }
        return write(fd, "1", 1) == 1
    }

    /// This process's cgroup v2 path (`0::/path` in /proc/self/cgroup).
    private static func ownCgroup() -> String? {
        let text = (try? Posix.readFile("/proc/self/cgroup")) ?? ""
        return text.split(separator: "\n").first { $0.hasPrefix("0::") }.map { String($0.dropFirst(3)) }
    }

    /// `directory` below the cgroup2 mount it is on (`/sys/fs/cgroup/a/b` → `/a/b`), from
    /// /proc/self/mountinfo; the path itself when no mount matches.
    private static func relative(_ directory: String) -> String {
        let mounts = ((try? Posix.readFile("/proc/self/mountinfo")) ?? "").split(separator: "\n")
        for line in mounts where line.contains(" - cgroup2 ") {
            let fields = line.split(separator: " ")
            guard fields.count > 4 else { continue }
            let mount = String(fields[4])
            if directory.hasPrefix(mount + "/") { return String(directory.dropFirst(mount.count)) }
        }
        return directory
    }
}
