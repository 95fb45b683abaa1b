// C where Swift cannot reach: wait-status macros, variadic prctl, signalfd, close_range,
// and the child side of fork+exec, which must use async-signal-safe calls only.
#ifndef CFORKWATCH_H
#define CFORKWATCH_H

#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <stdint.h>

static inline int fw_wifexited(int status) { return WIFEXITED(status); }
static inline int fw_wexitstatus(int status) { return WEXITSTATUS(status); }
static inline int fw_wifsignaled(int status) { return WIFSIGNALED(status); }
static inline int fw_wtermsig(int status) { return WTERMSIG(status); }
static inline int fw_wcoredump(int status) { return WCOREDUMP(status); }
static inline int fw_wifstopped(int status) { return WIFSTOPPED(status); }

/// Number of signals the kernel knows (the NSIG macro).
int fw_nsig(void);

/// pipe2(2) with O_CLOEXEC, and O_NONBLOCK on the read end when `nonblocking_read` is set.
int fw_pipe_cloexec(int fds[2], int nonblocking_read);

/// close_range(2); falls back to a close() loop where the kernel lacks it.
int fw_close_range(unsigned int first, unsigned int last);

/// signalfd(2) over `signals` (count `n`), O_CLOEXEC | O_NONBLOCK when `nonblocking`.
/// The signals must already be blocked with sigprocmask.
int fw_signalfd(const int *signals, int n, int nonblocking);
/// Blocks (how = SIG_BLOCK) or unblocks (SIG_UNBLOCK) `signals` for the calling thread/process.
int fw_sigmask(int how, const int *signals, int n);
/// Reads one signalfd_siginfo; returns the signal number, stores the sender pid and uid, 0 when
/// nothing is pending (EAGAIN), -1 on error (errno set).
int fw_signalfd_read(int fd, int32_t *sender_pid, uint32_t *sender_uid);

/// fork(2). Swift marks fork unavailable on some platforms; the master calls it through here.
pid_t fw_fork(void);

/// The child setup of the design, in order: every signal disposition back to default, the mask
/// emptied except `blocked` (a Swift worker keeps the signals its signalfd reads blocked, so one
/// arriving before its runtime is up waits instead of killing it), stdout pointed at stderr when
/// `stdout_to_stderr` (the master's stdout carries the event stream), every fd >= 3 closed
/// except `keep` (at most 16; close_range errors are ignored: nothing useful can be done about
/// them here), PR_SET_PDEATHSIG(pdeathsig), then getppid() re-checked against `parent`.
/// First of all, setpgid(0, 0) (the worker leads its own process group) and, when
/// `cgroup_procs_fd` >= 0, "0" written to it (the workers' cgroup.procs: join that cgroup).
/// Async-signal-safe. Returns -1 if the parent is already gone (or the cgroup refused it).
int fw_child_setup(const int *keep, int nkeep, const int *blocked, int nblocked, int stdout_to_stderr,
                   int pdeathsig, pid_t parent, int cgroup_procs_fd);

/// Forks and, in the child, runs fw_child_setup (nothing blocked) then execve(path, argv, envp).
/// When execve fails the child writes "execfail <errno>\n" to `status_fd` (O_CLOEXEC, so a
/// successful exec closes it: EOF means the program is running) and _exits 127; when the
/// parent is already gone it _exits 1. Returns the pid, or -1 (errno set).
/// `listen_fd` >= 0 is passed the systemd way: as fd 3, inheritable, and the child writes its
/// own pid into `listen_pid_digits` (the value part of a "LISTEN_PID=" entry of `envp`, with
/// room for 11 characters) — no allocation after fork.
pid_t fw_fork_exec(const char *path, char *const argv[], char *const envp[], int status_fd,
                   int listen_fd, char *listen_pid_digits, int stdout_to_stderr, int pdeathsig, pid_t parent,
                   int cgroup_procs_fd);

/// The accept queue of a listening TCP socket (TCP_INFO: tcpi_unacked = connections waiting to
/// be accepted, tcpi_sacked = the backlog limit). Returns 0, or -1 (errno set).
int fw_accept_queue(int fd, uint32_t *depth, uint32_t *limit);

/// setsockopt(IPPROTO_TCP, TCP_KEEPIDLE).
int fw_set_tcp_keepidle(int fd, int seconds);

/// accept4(2) with SOCK_NONBLOCK | SOCK_CLOEXEC.
int fw_accept_nonblocking(int fd);

/// getsockopt(SO_PEERCRED): the peer's pid and uid.
int fw_peer_credentials(int fd, int32_t *pid, uint32_t *uid);

/// posix_spawn with POSIX_SPAWN_SETSID (a new session: terminal signals never reach it), the
/// signal mask emptied and dispositions defaulted; stdin from /dev/null, stdout and stderr to
/// `out_fd`. Returns the pid or -1 (errno set).
pid_t fw_spawn_session(const char *path, char *const argv[], char *const envp[], int out_fd);

/// malloc_trim(0): free heap pages back to the kernel.
void fw_malloc_trim(void);

/// Drops this process's page-table entries for the file pages of its private file mappings (code
/// and constants of the executable and its libraries; with include_writable, the untouched pages
/// of their data segments too). The pages stay in the page cache and fault back in when used.
/// include_writable is only safe while one thread runs (a write between the check and the drop
/// would be lost). Returns the bytes dropped, or -1 with errno.
long fw_release_file_pages(int include_writable);

struct pollfd;

/// fw_release_file_pages, then poll(2) at once: no Swift code runs between the drop and the
/// wait, so a process that sleeps until it is killed keeps only the few pages of this return
/// path mapped (each page touched after a drop faults back with its neighbours: 64 KiB).
/// Returns what poll returns (-1 with errno, EINTR included).
int fw_release_file_pages_then_poll(struct pollfd *fds, unsigned long nfds, int timeout, int include_writable);

/// The entries of the open directory `fd` other than "." and "..", read again from its start
/// (lseek + getdents64). -1 with errno on error.
int fw_count_directory_entries(int fd);

/// memfd_create(name, MFD_CLOEXEC): an anonymous file (glibc declares it only with _GNU_SOURCE).
int fw_memfd(const char *name);

/// inotify_init1(IN_NONBLOCK | IN_CLOEXEC), then a watch on `directory` for files written,
/// created or renamed into it. Returns the inotify fd, or -1 with errno set.
int fw_watch_directory(const char *directory);

/// Reads the pending inotify events of `fd` (non-blocking) and returns 1 when one names `file`
/// (or the queue overflowed), 0 when none does, -1 on error.
int fw_drain_watch(int fd, const char *file);

/// prctl(PR_SET_PDEATHSIG, sig).
int fw_set_pdeathsig(int sig);

/// RLIMIT_NPROC's soft limit, or -1 when unlimited (the macro does not import into Swift).
long long fw_process_limit(void);

/// prctl(PR_SET_CHILD_SUBREAPER, 1): processes orphaned below this one are re-parented to it.
int fw_set_child_subreaper(void);

#endif
