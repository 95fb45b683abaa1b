#define _GNU_SOURCE
#include "CForkwatch.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spawn.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <unistd.h>

int fw_nsig(void) { return NSIG; }

int fw_pipe_cloexec(int fds[2], int nonblocking_read) {
    if (pipe2(fds, O_CLOEXEC) != 0) return -1;
    if (nonblocking_read) {
        int flags = fcntl(fds[0], F_GETFL);
        if (flags < 0 || fcntl(fds[0], F_SETFL, flags | O_NONBLOCK) != 0) {
            int saved = errno;
            close(fds[0]);
            close(fds[1]);
            errno = saved;
            return -1;
        }
    }
    return 0;
}

int fw_close_range(unsigned int first, unsigned int last) {
    if (first > last) return 0;
#ifdef SYS_close_range
    if (syscall(SYS_close_range, first, last, 0) == 0) return 0;
    if (errno != ENOSYS) return -1;
#endif
    // Old kernel: close one by one, bounded by the fd table size.
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0) max = 4096;
    for (unsigned int fd = first; fd <= last && fd < (unsigned int)max; fd++) close((int)fd);
    return 0;
}

static void fill_set(sigset_t *set, const int *signals, int n) {
    sigemptyset(set);
    for (int i = 0; i < n; i++) sigaddset(set, signals[i]);
}

int fw_signalfd(const int *signals, int n, int nonblocking) {
    sigset_t set;
    fill_set(&set, signals, n);
    return signalfd(-1, &set, SFD_CLOEXEC | (nonblocking ? SFD_NONBLOCK : 0));
}

int fw_sigmask(int how, const int *signals, int n) {
    sigset_t set;
    fill_set(&set, signals, n);
    // pthread_sigmask and sigprocmask are the same in a single-threaded process; in a worker
    // that later starts threads, threads inherit the mask of the thread that creates them.
    return pthread_sigmask(how, &set, NULL) == 0 ? 0 : -1;
}

int fw_signalfd_read(int fd, int32_t *sender_pid, uint32_t *sender_uid) {
    struct signalfd_siginfo info;
    for (;;) {
        ssize_t n = read(fd, &info, sizeof info);
        if (n == (ssize_t)sizeof info) {
            *sender_pid = (int32_t)info.ssi_pid;
            *sender_uid = info.ssi_uid;
            return (int)info.ssi_signo;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
        if (n >= 0) errno = EIO;
        return -1;
    }
}

pid_t fw_fork(void) { return fork(); }

int fw_accept_nonblocking(int fd) { return accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC); }

int fw_peer_credentials(int fd, int32_t *pid, uint32_t *uid) {
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return -1;
    *pid = (int32_t)cred.pid;
    *uid = (uint32_t)cred.uid;
    return 0;
}

pid_t fw_spawn_session(const char *path, char *const argv[], char *const envp[], int out_fd) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out_fd, 1);
    posix_spawn_file_actions_adddup2(&actions, out_fd, 2);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, path, &actions, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) { errno = rc; return -1; }
    return pid;
}

void fw_malloc_trim(void) { malloc_trim(0); }

/* The stretches to drop, collected first and dropped together: once a page is dropped, any code
   that runs touches it again and maps it back with its neighbours (fault-around, 64 KiB), so the
   less runs after the drops, the less comes back. */
enum { stretch_capacity = 512 };

struct stretches {
    unsigned long start[stretch_capacity], end[stretch_capacity];
    int count;
    long dropped;
};

static void drop_stretches(struct stretches *s) {
    for (int i = 0; i < s->count; i++)
        if (madvise((void *)s->start[i], s->end[i] - s->start[i], MADV_DONTNEED) == 0) s->dropped += (long)(s->end[i] - s->start[i]);
    s->count = 0;
}

static void add_stretch(struct stretches *s, unsigned long start, unsigned long end) {
    if (s->count == stretch_capacity) drop_stretches(s); /* a process with very many mappings: these go now */
    s->start[s->count] = start;
    s->end[s->count] = end;
    s->count++;
}

/* Collects the stretches of [start, end) between anonymous pages that hold file pages, leaving
   anonymous pages alone (a relocated or written page of a private mapping: dropping it would lose
   its contents). From pagemap: bit 63 present, bit 62 swapped (anonymous, not present), bit 61
   file page. One stretch per run between anonymous pages (pages not present in it are no-ops
   for madvise), so a code segment is one call. */
static void collect_file_pages(int pagemap, unsigned long start, unsigned long end, long page, struct stretches *s) {
    enum { batch = 1024 };
    uint64_t entries[batch];
    unsigned long stretch = start; /* start of the stretch with no anonymous page */
    int files = 0;                 /* the stretch holds a present file page */
    unsigned long at = start;
    while (at < end) {
        unsigned long count = (end - at) / page;
        if (count > batch) count = batch;
        ssize_t got = pread(pagemap, entries, count * sizeof(uint64_t), (off_t)(at / page * sizeof(uint64_t)));
        if (got <= 0) break;
        count = (unsigned long)got / sizeof(uint64_t);
        for (unsigned long i = 0; i < count; i++, at += page) {
            uint64_t e = entries[i];
            int present = e >> 63 & 1, swapped = e >> 62 & 1, file = e >> 61 & 1;
            if ((present && !file) || swapped) {
                if (files) add_stretch(s, stretch, at);
                stretch = at + page;
                files = 0;
            } else if (present) {
                files = 1;
            }
        }
    }
    /* A short read leaves the rest unknown: only what was read is dropped. */
    if (files) add_stretch(s, stretch, at);
}

long fw_release_file_pages(int include_writable) {
    FILE *maps = fopen("/proc/self/maps", "re");
    if (!maps) return -1;
    int pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (pagemap < 0) { fclose(maps); return -1; }
    long page = sysconf(_SC_PAGESIZE);
    struct stretches s;
    s.count = 0;
    s.dropped = 0;
    char line[4352];
    while (fgets(line, sizeof line, maps)) {
        unsigned long start, end;
        char perms[5], path[4097] = "";
        if (sscanf(line, "%lx-%lx %4s %*s %*s %*s %4096s", &start, &end, perms, path) < 3) continue;
        /* Private file mappings only: [vdso], [stack], the heap and shared mappings stay. */
        if (path[0] != '/' || perms[3] != 'p' || perms[0] != 'r') continue;
        if (perms[1] == 'w' && !include_writable) continue;
        collect_file_pages(pagemap, start, end, page, &s);
    }
    /* Closed before the drop: closing after it maps ~1 MiB back (fclose runs through libc and the
       dynamic linker). Safe with include_writable: what fclose writes (the stream list, malloc's
       state) fopen or earlier code wrote already, so those pages are anonymous and kept. */
    close(pagemap);
    fclose(maps);
    drop_stretches(&s);
    return s.dropped;
}

int fw_release_file_pages_then_poll(struct pollfd *fds, unsigned long nfds, int timeout, int include_writable) {
    fw_release_file_pages(include_writable);
    return poll(fds, (nfds_t)nfds, timeout);
}

int fw_count_directory_entries(int fd) {
    if (lseek(fd, 0, SEEK_SET) < 0) return -1;
    struct entry {
        uint64_t ino;
        int64_t off;
        unsigned short reclen;
        unsigned char type;
        char name[];
    };
    char buffer[2048] __attribute__((aligned(8)));
    int count = 0;
    for (;;) {
        long n = syscall(SYS_getdents64, fd, buffer, sizeof buffer);
        if (n < 0) return -1;
        if (n == 0) return count;
        for (long at = 0; at < n;) {
            struct entry *e = (struct entry *)(buffer + at);
            if (e->name[0] != '.') count++;
            at += e->reclen;
        }
    }
}

int fw_memfd(const char *name) { return memfd_create(name, MFD_CLOEXEC); }

int fw_watch_directory(const char *directory) {
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) return -1;
    if (inotify_add_watch(fd, directory, IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE | IN_MOVED_TO) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int fw_drain_watch(int fd, const char *file) {
    char buffer[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    int seen = 0;
    for (;;) {
        ssize_t n = read(fd, buffer, sizeof buffer);
        if (n < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? seen : (errno == EINTR ? seen : -1);
        if (n == 0) return seen;
        for (char *p = buffer; p < buffer + n;) {
            struct inotify_event *event = (struct inotify_event *)p;
            if (event->mask & IN_Q_OVERFLOW) seen = 1;
            else if (event->len > 0 && strcmp(event->name, file) == 0) seen = 1;
            p += sizeof(struct inotify_event) + event->len;
        }
    }
}

int fw_accept_queue(int fd, uint32_t *depth, uint32_t *limit) {
    struct tcp_info info;
    socklen_t len = sizeof info;
    memset(&info, 0, sizeof info);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return -1;
    *depth = info.tcpi_unacked;
    *limit = info.tcpi_sacked;
    return 0;
}

int fw_set_tcp_keepidle(int fd, int seconds) {
    return setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &seconds, sizeof seconds);
}

int fw_set_pdeathsig(int sig) { return prctl(PR_SET_PDEATHSIG, (unsigned long)sig, 0, 0, 0); }

long long fw_process_limit(void) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NPROC, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return -1;
    return (long long)limit.rlim_cur;
}

int fw_set_child_subreaper(void) { return prctl(PR_SET_CHILD_SUBREAPER, 1UL, 0UL, 0UL, 0UL); }

int fw_child_setup(const int *keep, int nkeep, const int *blocked, int nblocked, int stdout_to_stderr,
                   int pdeathsig, pid_t parent, int cgroup_procs_fd) {
    // 0. Lead a process group of its own (the master calls setpgid too, whichever runs first):
    //    a stop or a kill reaches the worker and everything it started, as one group. And join
    //    the workers' cgroup, if the master has one, before anything else can be started: what
    //    a worker starts is then in it too, even if it leaves the group (setsid).
    setpgid(0, 0);
    if (cgroup_procs_fd >= 0 && write(cgroup_procs_fd, "0", 1) != 1) return -1;
    // 1. Signal dispositions back to default, mask unblocked: the master blocks the signals it
    //    reads through signalfd, and a blocked mask survives fork and exec.
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        sigaction(sig, &dfl, NULL);  // EINVAL for the glibc-reserved RT signals is fine
    }
    sigset_t mask;
    sigemptyset(&mask);
    for (int i = 0; i < nblocked; i++) sigaddset(&mask, blocked[i]);
    sigprocmask(SIG_SETMASK, &mask, NULL);
    if (stdout_to_stderr) dup2(2, 1);

    // 2. Close every fd >= 3 except `keep`: insertion-sort a stack copy (no malloc here).
    int sorted[16];
    int n = nkeep > 16 ? 16 : nkeep;
    for (int i = 0; i < n; i++) {
        int v = keep[i], j = i;
        while (j > 0 && sorted[j - 1] > v) { sorted[j] = sorted[j - 1]; j--; }
        sorted[j] = v;
    }
    unsigned int next = 3;
    for (int i = 0; i < n; i++) {
        if (sorted[i] < 3) continue;
        if ((unsigned int)sorted[i] > next) fw_close_range(next, (unsigned int)sorted[i] - 1);
        if ((unsigned int)sorted[i] + 1 > next) next = (unsigned int)sorted[i] + 1;
    }
    fw_close_range(next, ~0U);

    // 3. Die with the master. The parent may have died between fork and prctl: re-check.
    if (pdeathsig > 0) prctl(PR_SET_PDEATHSIG, (unsigned long)pdeathsig, 0, 0, 0);
    if (getppid() != parent) return -1;
    return 0;
}

static void write_execfail(int fd, int err) {
    char buf[32] = "execfail ";
    int len = 9;
    char digits[12];
    int nd = 0;
    unsigned int v = err < 0 ? 0 : (unsigned int)err;
    do { digits[nd++] = (char)('0' + v % 10); v /= 10; } while (v && nd < 11);
    while (nd) buf[len++] = digits[--nd];
    buf[len++] = '\n';
    ssize_t ignored = write(fd, buf, (size_t)len);
    (void)ignored;
}

static void write_decimal(char *out, long value) {
    char digits[24];
    int n = 0;
    do { digits[n++] = (char)('0' + value % 10); value /= 10; } while (value && n < 23);
    int i = 0;
    while (n) out[i++] = digits[--n];
    out[i] = '\0';
}

pid_t fw_fork_exec(const char *path, char *const argv[], char *const envp[], int status_fd,
                   int listen_fd, char *listen_pid_digits, int stdout_to_stderr, int pdeathsig, pid_t parent,
                   int cgroup_procs_fd) {
    pid_t pid = fork();
    if (pid != 0) return pid;

    int keep[2];
    int n = 0;
    if (listen_fd >= 0) {
        // The socket goes to fd 3 (SD_LISTEN_FDS_START); move the status pipe out of the way first.
        if (status_fd == 3) {
            status_fd = fcntl(status_fd, F_DUPFD_CLOEXEC, 10);
            if (status_fd < 0) _exit(1);
        }
        if (listen_fd != 3 && dup2(listen_fd, 3) < 0) {
            write_execfail(status_fd, errno);
            _exit(127);
        }
        keep[n++] = 3;
    }
    keep[n++] = status_fd;
    if (fw_child_setup(keep, n, NULL, 0, stdout_to_stderr, pdeathsig, parent, cgroup_procs_fd) != 0) _exit(1);
    if (listen_fd >= 0) {
        int flags = fcntl(3, F_GETFD);
        if (flags >= 0) fcntl(3, F_SETFD, flags & ~FD_CLOEXEC);
        if (listen_pid_digits) write_decimal(listen_pid_digits, (long)getpid());
    }
    execve(path, argv, envp);
    write_execfail(status_fd, errno);
    _exit(127);
}
