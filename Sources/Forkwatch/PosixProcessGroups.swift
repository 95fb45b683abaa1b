import CForkwatch
import ForkwatchCore

#if canImport(Glibc)
import Glibc
#endif

/// Process groups and the child subreaper: what keeps a worker's own children from outliving
/// the service. Part of the one file of syscalls, split only to keep files short.
extension Posix {
    /// Processes orphaned below the master are re-parented to it (not to pid 1), so it can reap
    /// and stop them. The corresponding C function is `prctl(PR_SET_CHILD_SUBREAPER)`.
    package static func becomeChildSubreaper() throws(PosixError) {
        _ = try retrying("prctl(PR_SET_CHILD_SUBREAPER)") { fw_set_child_subreaper() }
    }

    /// Makes `pid` lead its own process group (the child does the same: whichever runs first).
    /// Fails harmlessly once the child has exec'd. The corresponding C function is `setpgid`.
    package static func makeGroupLeader(_ pid: Int32) {
        _ = setpgid(pid, pid)
    }

    /// Signals every process of the group `pgid`; false when the group has no member left.
    /// The corresponding C function is `kill(-pgid)`.
    @discardableResult
    package static func killGroup(_ pgid: Int32, _ signal: Signal) -> Bool {
        precondition(pgid > 1, "killGroup(\(pgid))")
        return Glibc.kill(-pgid, signal.rawValue) == 0
    }

    /// How many workers this host fits, for `max_workers`' default: 4096, less when the
    /// process limit (RLIMIT_NPROC, less 64 for everything else of this user) or the memory
    /// available (at 4 MiB a worker) is short. The corresponding C functions are `getrlimit`
    /// and `/proc/meminfo`.
    package static func hostWorkerLimit() -> Int {
        var limit = 4096
        let processes = fw_process_limit()
        if processes >= 0 { limit = min(limit, max(1, Int(processes) - 64)) }
        let meminfo = (try? readFile("/proc/meminfo")) ?? ""
        if let line = meminfo.split(separator: "\n").first(where: { $0.hasPrefix("MemAvailable:") }),
            let kib = Int(line.split(separator: " ").dropFirst().first ?? "")
        {
            limit = min(limit, max(1, kib / 4096))
        }
        return limit
    }

    /// This process's session id. The corresponding C function is `getsid`.
    package static func sessionID() -> Int32 { getsid(0) }

    /// Every process (but this one) in one of `groups` and in session `session`, as (pid, pgid),
    /// read from `/proc/PID/stat`. A group id cannot be reused while the session that holds it
    /// lives on, so the pair names the processes a master of that session left, not strangers.
    package static func processes(inGroups groups: Set<Int32>, session: Int32) -> [(pid: Int32, pgid: Int32)] {
        guard !groups.isEmpty else { return [] }
        let me = getpid()
        var found: [(pid: Int32, pgid: Int32)] = []
        for name in listDirectory("/proc") {
            guard let pid = Int32(name), pid != me, let stat = try? readFile("/proc/\(name)/stat"),
                let close = stat.lastIndex(of: ")")
            else { continue }
            // After "(comm)": state ppid pgrp session …
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            // A zombie is dead already: its parent (or pid 1) reaps it.
            guard fields.count > 3, fields[0] != "Z", let pgid = Int32(fields[2]), let sid = Int32(fields[3]) else {
                continue
            }
            if sid == session && groups.contains(pgid) { found.append((pid, pgid)) }
        }
        return found
    }

    /// Replaces the contents of the open file `fd` with `text`. The corresponding C functions
    /// are `ftruncate` and `pwrite`.
    package static func rewrite(_ fd: Int32, _ text: String) {
        let bytes = Array(text.utf8)
        _ = ftruncate(fd, 0)
        _ = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
    }

    /// A file of the run-time directory for reading and writing, created 0600, never through a
    /// symbolic link. The corresponding C function is `open(O_NOFOLLOW)`.
    package static func openPrivate(_ path: String) throws(PosixError) -> Int32 {
        try retrying("open \(path)") { open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600) }
    }
}
