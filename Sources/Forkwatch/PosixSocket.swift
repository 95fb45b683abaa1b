import CForkwatch
import ForkwatchCore

#if canImport(Glibc)
import Glibc
#endif

/// Unix-domain sockets and directories for the control socket. Part of the one file of
/// syscalls, split only to keep files short.
extension Posix {
    package struct PeerCredentials: Equatable {
        package let pid: Int32
        package let uid: UInt32
    }

    private static func withAddress<T>(
        _ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T
    ) throws(PosixError) -> T {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else {
            throw PosixError("socket path \(path) is longer than \(capacity - 1) bytes", errno: ENAMETOOLONG)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }

    /// A listening Unix stream socket at `path`, mode 0600, non-blocking, close-on-exec.
    /// The corresponding C functions are `socket`, `bind`, `chmod` and `listen`.
    package static func listenUnix(_ path: String, backlog: Int32 = 64) throws(PosixError) -> Int32 {
        let fd = try retrying("socket") {
            socket(
                AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        }
        do throws(PosixError) {
            // umask first so the socket never exists with wider permissions, even for an instant.
            let old = umask(0o177)
            let rc = try withAddress(path) { bind(fd, $0, $1) }
            umask(old)
            if rc != 0 { throw PosixError("bind \(path)", errno: errno) }
            try retrying("chmod \(path)") { chmod(path, 0o600) }
            try retrying("listen") { listen(fd, backlog) }
            return fd
        } catch {
            close(fd)
            throw error
        }
    }

    /// A connected (blocking) Unix stream socket. The corresponding C function is `connect`.
    package static func connectUnix(_ path: String) throws(PosixError) -> Int32 {
        let fd = try retrying("socket") {
            socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        }
        let rc = try withAddress(path) { connect(fd, $0, $1) }
        if rc != 0 {
            let err = errno
            close(fd)
            throw PosixError("connect \(path)", errno: err)
        }
        return fd
    }

    /// A new client, non-blocking and close-on-exec, or nil when none is waiting.
    /// The corresponding C function is `accept4`.
    package static func accept(_ listenFD: Int32) throws(PosixError) -> Int32? {
        while true {
            let fd = fw_accept_nonblocking(listenFD)
            if fd >= 0 { return fd }
            switch errno {
            case EINTR, ECONNABORTED: continue
            case EAGAIN: return nil
            case EMFILE, ENFILE, ENOBUFS, ENOMEM: throw PosixError("accept4", errno: errno)
            case let err: throw PosixError("accept4", errno: err)
            }
        }
    }

    /// Who is on the other end of a Unix socket. The corresponding C function is `getsockopt(SO_PEERCRED)`.
    package static func peerCredentials(_ fd: Int32) throws(PosixError) -> PeerCredentials {
        var pid: Int32 = 0
        var uid: UInt32 = 0
        try retrying("getsockopt(SO_PEERCRED)") { fw_peer_credentials(fd, &pid, &uid) }
        return PeerCredentials(pid: pid, uid: uid)
    }

    /// Writes what the socket takes now: the number of bytes written (0 when it would block).
    /// The corresponding C function is `send` (MSG_NOSIGNAL: a gone reader is EPIPE, not SIGPIPE).
    package static func writeSome(_ fd: Int32, _ bytes: ArraySlice<UInt8>) throws(PosixError) -> Int {
        while true {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n >= 0 { return n }
            switch errno {
            case EINTR: continue
            case EAGAIN: return 0
            case let err: throw PosixError("send", errno: err)
            }
        }
    }

    package static func effectiveUID() -> UInt32 { geteuid() }

    /// Creates `path` as a directory of mode 0700 when it does not exist. An existing one must
    /// be a real directory (not a symbolic link) that another user cannot plant files in: with
    /// `ownedByUs` (the run-time directory, tmux's and OpenSSH's rule) owned by this user and
    /// writable by nobody else; otherwise (the directory of a socket path given on the command
    /// line, /tmp say) writable by others only when sticky, so nobody can replace what we put
    /// there. Its mode is left as it is. The corresponding C functions are `mkdir` and `lstat`.
    package static func ensurePrivateDirectory(_ path: String, ownedByUs: Bool = true) throws(PosixError) {
        if mkdir(path, 0o700) == 0 { return }
        guard errno == EEXIST else { throw PosixError("mkdir \(path)", errno: errno) }
        var info = stat()
        try retrying("lstat \(path)") { lstat(path, &info) }
        let mode = String(info.st_mode & 0o7777, radix: 8)
        if info.st_mode & S_IFMT == S_IFLNK {
            throw PosixError(
                "refusing \(path): it is a symbolic link; remove it (forkwatch makes its own directory)", errno: ELOOP)
        }
        guard info.st_mode & S_IFMT == S_IFDIR else { throw PosixError("\(path) is not a directory", errno: ENOTDIR) }
        let me = geteuid()
        if ownedByUs && info.st_uid != me {
            throw PosixError(
                "refusing \(path): it is owned by uid \(info.st_uid), not by you (uid \(me)); "
                    + "remove it, or set XDG_RUNTIME_DIR to a directory of yours", errno: EPERM)
        }
        let othersWrite = info.st_mode & (S_IWGRP | S_IWOTH) != 0
        if othersWrite && (ownedByUs || info.st_mode & S_ISVTX == 0) {
            throw PosixError(
                "refusing \(path): mode \(mode) lets other users write in it; chmod 700 \(path) "
                    + "(or remove it)", errno: EPERM)
        }
    }

    /// Takes the exclusive lock of `path` (created 0600, never through a symbolic link) without
    /// waiting, and writes this process's pid in it. The lock lasts as long as the returned fd.
    /// `.failure(pid)`: another process holds it (its pid as it wrote it, 0 if unreadable).
    /// The corresponding C functions are `open(O_NOFOLLOW)` and `flock(LOCK_EX | LOCK_NB)`.
    package static func lockFile(_ path: String) throws(PosixError) -> Result<Int32, LockHeld> {
        let fd = try retrying("open \(path)") { open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600) }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let err = errno
            defer { close(fd) }
            guard err == EWOULDBLOCK else { throw PosixError("flock \(path)", errno: err) }
            // The holder writes its pid right after it took the lock: give it a moment.
            for _ in 0..<100 {
                var buffer = [UInt8](repeating: 0, count: 32)
                let n = pread(fd, &buffer, buffer.count, 0)
                if n > 0, String(decoding: buffer[0..<n], as: UTF8.self).hasSuffix("\n") {
                    return .failure(
                        LockHeld(pid: Int32(String(decoding: buffer[0..<n], as: UTF8.self).filter(\.isNumber)) ?? 0))
                }
                usleep(1000)
            }
            return .failure(LockHeld(pid: 0))
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        return .success(fd)
    }

    package struct LockHeld: Error {
        package let pid: Int32
    }

    /// True when `path` is a Unix socket. The corresponding C function is `lstat`.
    package static func isSocket(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFSOCK
    }

    /// The corresponding C function is `unlink`.
    package static func unlink(_ path: String) { _ = Glibc.unlink(path) }

    package static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// The run-time directory for sockets and state: `$XDG_RUNTIME_DIR/forkwatch`, else
    /// `/tmp/forkwatch-UID`.
    /// Whether `directory` is (one of) the run-time directory: there, every rule of
    /// `ensurePrivateDirectory` applies.
    package static func isRuntimeDirectory(_ directory: String) -> Bool {
        directory == runtimeDirectory()
    }

    package static func runtimeDirectory() -> String {
        if let xdg = getenv("XDG_RUNTIME_DIR"), xdg.pointee != 0 { return String(cString: xdg) + "/forkwatch" }
        return "/tmp/forkwatch-\(geteuid())"
    }
}

extension Posix {
    /// Sets O_NONBLOCK. The corresponding C function is `fcntl`.
    package static func setNonBlocking(_ fd: Int32) {
        let flags = fcntl(fd, F_GETFL)
        if flags >= 0 { _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
    }
}

extension Posix {
    /// Starts `argv` in a new session (the dashboard's background master), output to `logPath`.
    /// The corresponding C function is `posix_spawn` (with POSIX_SPAWN_SETSID).
    package static func spawnInNewSession(_ argv: [String], logPath: String) throws(PosixError) -> Int32 {
        let out = try openAppend(logPath)
        defer { close(out) }
        let cArgs = argv.map { strdup($0) } + [nil]
        defer { cArgs.forEach { free($0) } }
        return try retrying("posix_spawn \(argv[0])") { fw_spawn_session(argv[0], cArgs, environ, out) }
    }

    /// This program's path. The corresponding C function is `readlink("/proc/self/exe")`.
    package static func executablePath() -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return CommandLine.arguments[0] }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// A child's exit code if it has exited (reaping it), else nil. The corresponding C function
    /// is `waitpid(pid, WNOHANG)`.
    package static func exitCode(of pid: Int32) -> Int32? {
        var status: Int32 = 0
        guard waitpid(pid, &status, WNOHANG) == pid else { return nil }
        let low = status & 0x7f
        return low == 0 ? (status >> 8) & 0xff : 128 + low
    }

    package static func isTerminal(_ fd: Int32) -> Bool { isatty(fd) == 1 }
}

extension Posix {
    /// Runs `argv` to completion (in its own session), returning its exit status and what it
    /// wrote on stdout and stderr. The corresponding C functions are `posix_spawn` and `waitpid`.
    package static func spawnAndWait(_ argv: [String]) throws(PosixError) -> (status: Int32, output: String) {
        let pipe = try pipe(nonblockingRead: false)
        let cArgs = argv.map { strdup($0) } + [nil]
        defer { cArgs.forEach { free($0) } }
        let pid = fw_spawn_session(argv[0], cArgs, environ, pipe.write)
        close(pipe.write)
        guard pid > 0 else {
            let err = errno
            close(pipe.read)
            throw PosixError("posix_spawn \(argv[0])", errno: err)
        }
        var bytes: [UInt8] = []
        while let chunk = try? read(pipe.read, max: 65_536), !chunk.isEmpty { bytes += chunk }
        close(pipe.read)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        let low = status & 0x7f
        return (low == 0 ? (status >> 8) & 0xff : 128 + low, String(decoding: bytes, as: UTF8.self))
    }
}

extension Posix {
    /// The names in a directory (no "." or ".."); empty when it cannot be read.
    /// The corresponding C functions are `opendir`/`readdir`.
    package static func listDirectory(_ path: String) -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}

extension Posix {
    /// Reads /proc/PID/NAME into `buffer` (one read: these files are small); returns the byte
    /// count, 0 when the process is gone. The corresponding C functions are `open`, `read`, `close`.
    package static func readProcFile(pid: Int32, name: String, into buffer: inout [UInt8]) -> Int {
        let fd = open("/proc/\(pid)/\(name)", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        let count = buffer.count
        let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, count) }
        return max(0, n)
    }
}

extension Posix {
    /// A listening TCP socket for `spec`, bound and listening once in the master: SO_REUSEADDR,
    /// SO_KEEPALIVE, TCP_KEEPIDLE, close-on-exec (a command gets it through fw_fork_exec).
    /// Returns the fd and the address it is bound to (the real port when 0 was asked).
    /// The corresponding C functions are `getaddrinfo`, `socket`, `setsockopt`, `bind`, `listen`.
    package static func listenTCP(_ spec: ListenSpec) throws(PosixError) -> (fd: Int32, address: String) {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var result: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(spec.host, String(spec.port), &hints, &result)
        guard rc == 0, let info = result else {
            let reason = rc == EAI_SYSTEM ? describe(errno: errno) : String(cString: gai_strerror(rc))
            throw PosixError("cannot resolve listen address '\(spec.host)': \(reason)", errno: EINVAL)
        }
        defer { freeaddrinfo(result) }
        let display = spec.host.contains(":") ? "[\(spec.host)]:\(spec.port)" : "\(spec.host):\(spec.port)"
        let fd = try retrying("socket") {
            socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        }
        do throws(PosixError) {
            var one: Int32 = 1
            try retrying("setsockopt(SO_REUSEADDR)") {
                setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            }
            try retrying("setsockopt(SO_KEEPALIVE)") {
                setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, socklen_t(MemoryLayout<Int32>.size))
            }
            try retrying("setsockopt(TCP_KEEPIDLE)") { fw_set_tcp_keepidle(fd, Int32(spec.tcpKeepidle)) }
            if bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) != 0 {
                throw PosixError("cannot bind \(display)", errno: errno)
            }
            try retrying("listen \(display)") { listen(fd, Int32(spec.backlog)) }
            return (fd, boundAddress(fd) ?? display)
        } catch {
            close(fd)
            throw error
        }
    }

    /// `host:port` of a bound socket. The corresponding C function is `getsockname`.
    package static func localAddress(_ fd: Int32) -> String? { boundAddress(fd) }

    static func boundAddress(_ fd: Int32) -> String? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) == 0 }
        }
        guard ok else { return nil }
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        var service = [CChar](repeating: 0, count: Int(NI_MAXSERV))
        let rc = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo(
                    $0, length, &host, socklen_t(host.count), &service, socklen_t(service.count),
                    NI_NUMERICHOST | NI_NUMERICSERV)
            }
        }
        guard rc == 0 else { return nil }
        let h = String(cString: host)
        let s = String(cString: service)
        return h.contains(":") ? "[\(h)]:\(s)" : "\(h):\(s)"
    }

    /// Connections waiting in a listening socket's accept queue, and its limit.
    /// The corresponding C function is `getsockopt(TCP_INFO)`.
    package static func acceptQueue(_ fd: Int32) -> (depth: Int, limit: Int)? {
        var depth: UInt32 = 0
        var limit: UInt32 = 0
        guard fw_accept_queue(fd, &depth, &limit) == 0 else { return nil }
        return (Int(depth), Int(limit))
    }
}
