import CForkwatch
import ForkwatchCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An errno value with the call that failed, thrown by every `Posix` wrapper.
public struct PosixError: Error, CustomStringConvertible, Equatable {
    public let call: String
    public let errno: Int32

    public init(_ call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    public var message: String { Posix.describe(errno: errno) }
    public var description: String { "\(call): \(message) (errno \(errno))" }
}

/// The one file of syscalls: every libc call the master makes goes through here. Calls that can
/// be interrupted are retried on EINTR; `close` never is (the fd is gone either way on Linux).
/// EBADF and EFAULT are programmer errors and stop the process.
package enum Posix {
    @discardableResult
    static func retrying<T: BinaryInteger>(_ call: String, _ body: () -> T) throws(PosixError) -> T {
        while true {
            let result = body()
            if result != -1 { return result }
            let err = errno
            if err == EINTR { continue }
            precondition(err != EBADF && err != EFAULT, "\(call): \(describe(errno: err)): a forkwatch bug")
            throw PosixError(call, errno: err)
        }
    }

    /// strerror(3) text for an errno value.
    package static func describe(errno value: Int32) -> String {
        guard let text = strerror(value) else { return "errno \(value)" }
        return String(cString: text)
    }

    // MARK: Clocks

    /// CLOCK_MONOTONIC in seconds. The corresponding C function is `clock_gettime`.
    package static func monotonicNow() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// CLOCK_REALTIME in seconds since the epoch. The corresponding C function is `clock_gettime`.
    package static func wallNow() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    // MARK: Processes

    package static func getpid() -> Int32 { Glibc.getpid() }
    package static func getppid() -> Int32 { Glibc.getppid() }

    /// The number of threads of this process: entries of /proc/self/task, -1 if /proc cannot be
    /// read. The corresponding C functions are `open` and `fw_count_directory_entries`.
    package static func threadCount() -> Int {
        ThreadCounter().count()
    }

    /// Counts this process's threads again and again from one open `/proc/self/task`: an lseek
    /// and a getdents64 per count, where opening the directory each time has the kernel build its
    /// inode and dentries anew (about 7 % of the master's respawn path in a perf profile). The
    /// master keeps one for its check before every fork; a forked child closes the fd with the
    /// others.
    package final class ThreadCounter {
        private let fd: Int32

        package init() { fd = Glibc.open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC) }

        deinit { if fd >= 0 { Glibc.close(fd) } }

        /// -1 if /proc cannot be read.
        package func count() -> Int {
            fd < 0 ? -1 : Int(fw_count_directory_entries(fd))
        }
    }

    /// The corresponding C function is `fork`.
    package static func fork() throws(PosixError) -> Int32 {
        try retrying("fork") { fw_fork() }
    }

    /// fork, then in the child the design's setup and `execve`. The corresponding C function is
    /// `fw_fork_exec` (CForkwatch), which stays async-signal-safe between fork and exec.
    package static func forkExec(
        path: String, argv: [String], statusFD: Int32, listen: (fd: Int32, name: String)?,
        stdoutToStderr: Bool, deathSignal: Signal, cgroupProcsFD: Int32? = nil
    ) throws(PosixError) -> Int32 {
        // Every allocation happens here, before fork: the child only reads these arrays (and
        // writes its pid into the LISTEN_PID entry's room).
        let cPath = strdup(path)
        let cArgv = argv.map { strdup($0) } + [nil]
        var environment: [UnsafeMutablePointer<CChar>?] = []
        var listenPidDigits: UnsafeMutablePointer<CChar>?
        var entry = environ
        while let variable = entry.pointee {
            let text = String(cString: variable)
            if !text.hasPrefix("LISTEN_FDS=") && !text.hasPrefix("LISTEN_PID=") && !text.hasPrefix("LISTEN_FDNAMES=") {
                environment.append(strdup(variable))
            }
            entry += 1
        }
        if let listen {
            environment.append(strdup("LISTEN_FDS=1"))
            environment.append(strdup("LISTEN_FDNAMES=" + listen.name))
            let pidEntry = strdup("LISTEN_PID=0000000000000")!
            listenPidDigits = pidEntry + 11
            environment.append(pidEntry)
        }
        environment.append(nil)
        defer {
            free(cPath)
            cArgv.forEach { free($0) }
            environment.forEach { free($0) }
        }
        let parent = getpid()
        return try retrying("fork") {
            cArgv.withUnsafeBufferPointer { argvBuffer in
                environment.withUnsafeBufferPointer { envBuffer in
                    fw_fork_exec(
                        cPath, argvBuffer.baseAddress, envBuffer.baseAddress, statusFD, listen?.fd ?? -1,
                        listenPidDigits, stdoutToStderr ? 1 : 0, deathSignal.rawValue, parent, cgroupProcsFD ?? -1)
                }
            }
        }
    }

    /// The child half of the design's setup for a Swift worker (no exec). Returns false if the
    /// parent is already gone. The corresponding C function is `fw_child_setup`.
    package static func childSetup(
        keep: [Int32], blocked: [Signal], stdoutToStderr: Bool, deathSignal: Signal, parent: Int32,
        cgroupProcsFD: Int32? = nil
    ) -> Bool {
        let numbers = blocked.map(\.rawValue)
        return keep.withUnsafeBufferPointer { keepBuffer in
            numbers.withUnsafeBufferPointer { blockedBuffer in
                fw_child_setup(
                    keepBuffer.baseAddress, Int32(keep.count), blockedBuffer.baseAddress, Int32(numbers.count),
                    stdoutToStderr ? 1 : 0, deathSignal.rawValue, parent, cgroupProcsFD ?? -1) == 0
            }
        }
    }

    /// Gives the heap's free pages back to the kernel: the argument parsing and config loading
    /// before the loop leave some, and every fork would copy their page tables.
    /// The corresponding C function is `malloc_trim`.
    package static func releaseFreeMemory() {
        fw_malloc_trim()
    }

    /// Unmaps the file pages this process has touched in its executable and libraries (they stay
    /// in the page cache). Start-up runs a lot of code once (argument parsing, configuration, the
    /// Swift runtime's first lookups), and the kernel maps 16 pages around each page faulted in:
    /// without this, a master that runs a few kilobytes of code per loop keeps ~10 MB of code
    /// mapped, and a dying worker spends most of its exit unmapping it. `includeWritable` (only
    /// while one thread runs) also drops the data segments' pages never written, which every fork
    /// would otherwise copy the entries of. Returns the bytes dropped (0 if /proc is unreadable).
    /// The corresponding C functions are `madvise(MADV_DONTNEED)` over `/proc/self/pagemap`.
    @discardableResult
    package static func releaseFilePages(includeWritable: Bool) -> Int {
        max(0, fw_release_file_pages(includeWritable ? 1 : 0))
    }

    /// Ignores SIGPIPE: a reader that goes away is an EPIPE to handle, not a death.
    /// The corresponding C function is `signal`.
    package static func ignoreBrokenPipes() {
        _ = Glibc.signal(SIGPIPE, SIG_IGN)
    }

    /// The corresponding C function is `kill`.
    package static func kill(_ pid: Int32, _ signal: Signal) throws(PosixError) {
        precondition(pid > 0, "kill(\(pid)) would signal a process group")
        try retrying("kill") { Glibc.kill(pid, signal.rawValue) }
    }

    /// One reaped child, or nil when none is ready (WNOHANG) or none is left (ECHILD).
    /// The corresponding C function is `waitpid`.
    package static func reapOne() throws(PosixError) -> (pid: Int32, status: Int32)? {
        var status: Int32 = 0
        while true {
            let pid = waitpid(-1, &status, WNOHANG)
            if pid > 0 { return (pid, status) }
            if pid == 0 { return nil }
            switch errno {
            case EINTR: continue
            case ECHILD: return nil
            case let err: throw PosixError("waitpid", errno: err)
            }
        }
    }

    /// The corresponding C function is `_exit`.
    package static func exitNow(_ code: Int32) -> Never { _exit(code) }

    /// Turns core dumps off for this process. The corresponding C function is `setrlimit`.
    package static func disableCoreDumps() {
        var limit = rlimit(rlim_cur: 0, rlim_max: 0)
        _ = setrlimit(__rlimit_resource_t(RLIMIT_CORE.rawValue), &limit)
    }

    /// Sends `signal` to this process with the default disposition restored and the signal
    /// unblocked, so it really ends the process. The corresponding C function is `raise`.
    package static func dieBy(_ signal: Signal) -> Never {
        Glibc.signal(signal.rawValue, SIG_DFL)
        var one = [signal.rawValue]
        _ = fw_sigmask(SIG_UNBLOCK, &one, 1)
        raise(signal.rawValue)
        _exit(128 + signal.rawValue)
    }

    // MARK: Signals

    /// Blocks `signals` for the calling thread (and the threads it creates later).
    /// The corresponding C function is `pthread_sigmask`.
    package static func block(_ signals: [Signal]) throws(PosixError) {
        var numbers = signals.map(\.rawValue)
        try retrying("sigprocmask") { fw_sigmask(SIG_BLOCK, &numbers, Int32(numbers.count)) }
    }

    /// A non-blocking, close-on-exec signalfd for `signals`, which must be blocked already.
    /// The corresponding C function is `signalfd`.
    package static func signalFD(_ signals: [Signal], nonblocking: Bool = true) throws(PosixError) -> Int32 {
        var numbers = signals.map(\.rawValue)
        return try retrying("signalfd") { fw_signalfd(&numbers, Int32(numbers.count), nonblocking ? 1 : 0) }
    }

    /// The next pending signal and its sender's pid, or nil. The corresponding C function is `read`.
    package static func readSignal(_ fd: Int32) throws(PosixError) -> (Signal, sender: Int32)? {
        var pid: Int32 = 0
        var uid: UInt32 = 0
        let signo = try retrying("read(signalfd)") { fw_signalfd_read(fd, &pid, &uid) }
        return signo == 0 ? nil : (Signal(rawValue: signo), pid)
    }

    // MARK: Files and pipes

    /// A close-on-exec pipe, its read end non-blocking if asked. The corresponding C function is `pipe2`.
    package static func pipe(nonblockingRead: Bool) throws(PosixError) -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        try retrying("pipe2") { fw_pipe_cloexec(&fds, nonblockingRead ? 1 : 0) }
        return (fds[0], fds[1])
    }

    /// An anonymous in-memory file, close-on-exec: the accept lock a service's workers share.
    /// The corresponding C function is `memfd_create`.
    package static func anonymousFile(_ name: String) throws(PosixError) -> Int32 {
        try retrying("memfd_create") { fw_memfd(name) }
    }

    /// A new open file description of the file behind `fd` (through /proc/self/fd), so that a
    /// flock(2) taken on it belongs to this process alone, not to every process sharing `fd`.
    package static func reopen(_ fd: Int32) throws(PosixError) -> Int32 {
        try retrying("open /proc/self/fd/\(fd)") { open("/proc/self/fd/\(fd)", O_RDWR | O_CLOEXEC) }
    }

    /// Blocks until this description holds the file's exclusive lock. The corresponding C
    /// function is `flock(LOCK_EX)`; the kernel drops the lock when its holder dies.
    package static func lockExclusive(_ fd: Int32) throws(PosixError) {
        _ = try retrying("flock(LOCK_EX)") { flock(fd, LOCK_EX) }
    }

    /// Writes `value` at offset 0 of `fd` (the accept lock's memfd: the service's worker count,
    /// read by its workers). The corresponding C function is `pwrite`.
    package static func writeNumber(_ fd: Int32, _ value: Int64) {
        var value = value
        _ = withUnsafeBytes(of: &value) { Glibc.pwrite(fd, $0.baseAddress, 8, 0) }
    }

    /// What `writeNumber` left at offset 0 of `fd`; nil when nothing was written. The
    /// corresponding C function is `pread`.
    package static func readNumber(_ fd: Int32) -> Int64? {
        var value: Int64 = 0
        let n = withUnsafeMutableBytes(of: &value) { Glibc.pread(fd, $0.baseAddress, 8, 0) }
        return n == 8 ? value : nil
    }

    /// The corresponding C function is `flock(LOCK_UN)`.
    package static func unlock(_ fd: Int32) {
        _ = flock(fd, LOCK_UN)
    }

    /// The corresponding C function is `close`. Never retried: on Linux the fd is released even
    /// when close reports EINTR.
    package static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }

    /// Reads what is there: nil on EAGAIN, [] on EOF. The corresponding C function is `read`.
    package static func read(_ fd: Int32, max: Int = 4096) throws(PosixError) -> [UInt8]? {
        while true {
            // Read on the stack; only the bytes read are copied to the heap (none at EOF).
            var bytes: [UInt8] = []
            let n = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: max) { buffer in
                let n = Glibc.read(fd, buffer.baseAddress, max)
                if n > 0 { bytes = Array(buffer[..<n]) }
                return n
            }
            if n >= 0 { return bytes }
            switch errno {
            case EINTR: continue
            case EAGAIN: return nil
            case let err: throw PosixError("read", errno: err)
            }
        }
    }

    /// Writes all of `bytes` (blocking fds), retrying short writes and EINTR.
    /// The corresponding C function is `write`.
    package static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws(PosixError) {
        var offset = 0
        while offset < bytes.count {
            let n = try retrying("write") {
                bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, bytes.count - offset) }
            }
            offset += n
        }
    }

    package static func writeAll(_ fd: Int32, _ text: String) throws(PosixError) {
        try writeAll(fd, Array(text.utf8))
    }

    /// Opens `path` for appending, creating it 0644. The corresponding C function is `open`.
    /// Never through a symbolic link (`O_NOFOLLOW`): a file planted as a link in the run-time
    /// directory must not make a master append to whatever it points at.
    package static func openAppend(_ path: String) throws(PosixError) -> Int32 {
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0o644)
        if fd >= 0 { return fd }
        if errno == ELOOP { throw PosixError("open \(path): a symbolic link; refusing to follow it", errno: ELOOP) }
        return try retrying("open \(path)") {
            open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0o644)
        }
    }

    /// Finds `name` on $PATH the way execvp would, so the child can use execve (execvp is not
    /// async-signal-safe). Returns `name` unchanged when it has a slash or is not found; the
    /// child's execve then reports the errno. The corresponding C function is `access`.
    package static func resolveExecutable(_ name: String) -> String {
        guard !name.contains("/") else { return name }
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/local/bin:/usr/bin:/bin"
        for dir in path.split(separator: ":", omittingEmptySubsequences: false) {
            let candidate = (dir.isEmpty ? "." : String(dir)) + "/" + name
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return name
    }

    // MARK: Waiting

    /// Waits for any of `fds` to be readable, up to `timeout` seconds (nil = forever). Returns
    /// the revents for each fd. The corresponding C function is `poll`.
    package static func poll(
        _ fds: [Int32], timeout: Double?, releasingFilePages includeWritable: Bool? = nil
    ) throws(PosixError) -> [Int16] {
        try poll(fds.map { ($0, Int16(POLLIN)) }, timeout: timeout, releasingFilePages: includeWritable)
    }

    /// poll(2) over (fd, events) pairs; returns the revents for each. `releasingFilePages`: nil,
    /// or `releaseFilePages(includeWritable:)` first, in the same C call
    /// (`fw_release_file_pages_then_poll`): no Swift code runs between the drop and the wait to
    /// fault pages back in. A poll retried after EINTR does not drop again.
    package static func poll(
        _ watched: [(fd: Int32, events: Int16)], timeout: Double?,
        releasingFilePages includeWritable: Bool? = nil
    ) throws(PosixError) -> [Int16] {
        var entries = watched.map { pollfd(fd: $0.fd, events: $0.events, revents: 0) }
        let millis: Int32 = timeout.map { Int32(min(max(($0 * 1000).rounded(.up), 0), 86_400_000)) } ?? -1
        var release = includeWritable
        while true {
            let n = entries.withUnsafeMutableBufferPointer { buffer in
                guard let includeWritable = release else {
                    return Glibc.poll(buffer.baseAddress, nfds_t(buffer.count), millis)
                }
                return fw_release_file_pages_then_poll(
                    buffer.baseAddress, UInt(buffer.count), millis, includeWritable ? 1 : 0)
            }
            release = nil
            if n >= 0 { return entries.map(\.revents) }
            if errno == EINTR { continue }
            throw PosixError("poll", errno: errno)
        }
    }

    // MARK: Threads (workers only, after fork)

    private final class ThreadBody {
        let run: () -> Void
        init(_ run: @escaping () -> Void) { self.run = run }
    }

    /// Starts a detached thread. Workers only: the master never creates a thread.
    /// The corresponding C function is `pthread_create`.
    package static func startThread(_ body: @escaping () -> Void) {
        let box = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(
            &thread, nil,
            { raw in
                let body = Unmanaged<ThreadBody>.fromOpaque(raw!).takeRetainedValue()
                body.run()
                return nil
            }, box)
        precondition(rc == 0, "pthread_create failed: \(describe(errno: rc))")
        pthread_detach(thread)
    }

    /// Parks the calling thread for good, in C only (no Swift runtime call after this point).
    /// The process ends by another thread's `_exit`. The corresponding C function is `pause`.
    package static func parkForever() -> Never {
        while true { Glibc.pause() }
    }

    /// The corresponding C function is `usleep`-like `nanosleep`. Workers and tests only.
    package static func sleep(seconds: Double) {
        var request = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
        var remaining = timespec()
        while nanosleep(&request, &remaining) == -1 && errno == EINTR { request = remaining }
    }
}

extension Posix {
    /// A whole file as UTF-8 text (config files: small). The corresponding C functions are
    /// `open` and `read`.
    package static func readFile(_ path: String) throws(PosixError) -> String {
        let fd = try retrying("open") { open(path, O_RDONLY | O_CLOEXEC) }
        defer { close(fd) }
        return try readFile(fd: fd, path: path)
    }

    /// The whole of an open file, from offset 0. The corresponding C function is `pread`.
    package static func readFile(fd: Int32, path: String = "") throws(PosixError) -> String {
        guard lseek(fd, 0, SEEK_SET) == 0 else { throw PosixError("lseek \(path)", errno: errno) }
        var bytes: [UInt8] = []
        while true {
            guard let chunk = try read(fd, max: 65_536) else { continue }
            if chunk.isEmpty { break }
            bytes += chunk
            if bytes.count > 16 << 20 { throw PosixError("read \(path)", errno: EFBIG) }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
