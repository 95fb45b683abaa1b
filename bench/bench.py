#!/usr/bin/env python3
"""Benchmark harness: forkwatch vs oslo.service ProcessLauncher vs gunicorn.

Stdlib only. Every figure is taken from OUTSIDE the launchers, through /proc:
the harness spawns each master itself, then watches
/proc/MASTER/task/*/children (the master's children are exactly its workers),
/proc/MASTER/stat and /proc/MASTER/status.

Usage (normally through bench/run.sh):
    python3 bench/bench.py --forkwatch .build/release/forkwatch \
        --venv bench/.venv --out docs/benchmarks.md

See bench/README.md for what each figure means.
"""
import argparse
import ctypes
import datetime
import hashlib
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ANCHORS = os.path.join(HERE, "anchors")
CLK_TCK = os.sysconf("SC_CLK_TCK")
now = time.perf_counter

# ---------------------------------------------------------------- /proc ----


# Between two reads of a children list the poller gives its CPU away
# (sched_yield): on a 2-CPU machine a poller that never yields holds one CPU,
# and a worker woken by our SIGKILL (or the master woken by SIGCHLD) that the
# scheduler places on that CPU waits behind it for 1-4 ms. --poll spin keeps
# the old behaviour for comparison.
def _no_pause():
    pass


POLL_PAUSE = os.sched_yield


def children(pid):
    """Pids of all children of pid (union over its threads), or None if the
    process is gone. A child forked by a non-main thread is listed under that
    thread only, hence the union."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except (FileNotFoundError, ProcessLookupError):
        return None
    out = set()
    for tid in tids:
        try:
            fd = os.open(f"/proc/{pid}/task/{tid}/children", os.O_RDONLY)
        except (FileNotFoundError, ProcessLookupError):
            continue
        try:
            data = b""
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                data += chunk
        finally:
            os.close(fd)
        out.update(int(x) for x in data.split())
    return out


def _stat_fields(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm may contain spaces and parens: split after the LAST ')'.
    return data[data.rindex(b")") + 2:].split()


def proc_state(pid):
    f = _stat_fields(pid)
    return None if f is None else f[0].decode()


def alive(pid):
    st = proc_state(pid)
    return st is not None and st not in ("Z", "X")


def cpu_ticks(pid):
    """utime + stime of the whole thread group, in clock ticks."""
    f = _stat_fields(pid)
    if f is None:
        return None
    # after "pid (comm) ": state=0 ppid=1 ... utime=11 stime=12
    return int(f[11]) + int(f[12])


def sched_ns(pid):
    """Sum over threads of time on CPU (ns) from schedstat; None if absent."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return None
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError, IndexError):
            pass
    return total


def status_field(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return line.split()[1]
    except FileNotFoundError:
        return None
    return None


def pss_kb(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (FileNotFoundError, PermissionError, ProcessLookupError):
        return None
    return None


def pgid_members(pgid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if os.getpgid(int(d)) == pgid:
                    out.append(int(d))
            except ProcessLookupError:
                pass
    return out


def my_children_by_ppid():
    me = os.getpid()
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            f = _stat_fields(int(d))
            if f is not None and int(f[1]) == me:
                out.append(int(d))
    return out


# ------------------------------------------------------ process control ----

_reaped = {}          # pid -> wait status, for everything we reaped
_masters = []         # every master ever launched (for the final cleanup)


def set_subreaper():
    """Orphaned workers get reparented to us, so we can always reap them."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except Exception:
        pass


def reap_any():
    while True:
        try:
            pid, st = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _reaped[pid] = st


def _child_setup():
    # Master dies with us even if we are SIGKILLed (its workers then see
    # their parent die and exit by their own means).
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class Master:
    def __init__(self, argv, env, cwd, log_prefix):
        self.argv = argv
        self.out_path = log_prefix + ".out"
        self.err_path = log_prefix + ".err"
        out = open(self.out_path, "wb")
        err = open(self.err_path, "wb")
        self.status = None
        self.t0 = now()   # "launch": just before spawning the master
        self.wall0 = time.time()
        try:
            self.popen = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                env=env, cwd=cwd, start_new_session=True,
                preexec_fn=_child_setup, close_fds=True)
        finally:
            out.close()
            err.close()
        self.pid = self.popen.pid
        self.known = set()   # every worker pid ever seen, for cleanup
        _masters.append(self)

    def exited(self):
        if self.status is not None:
            return True
        if self.pid in _reaped:
            self.status = _reaped[self.pid]
        else:
            try:
                pid, st = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                pid, st = self.pid, -1
            if pid == 0:
                return False
            self.status = st
            _reaped[self.pid] = st
        self.popen.returncode = self.status  # keep subprocess quiet
        return True

    def children(self):
        c = children(self.pid)
        if c:
            self.known |= c
        return c

    def wait_exit(self, timeout):
        deadline = now() + timeout
        while now() < deadline:
            if self.exited():
                return True
            time.sleep(0.005)
        return self.exited()

    def stop(self, timeout=30.0):
        """Unmeasured stop: SIGTERM, then SIGKILL everything left."""
        try:
            if not self.exited():
                self.children()
                os.kill(self.pid, signal.SIGTERM)
                self.wait_exit(timeout)
        except ProcessLookupError:
            pass
        finally:
            self.kill_all()

    def kill_all(self):
        """SIGKILL the master and everything that is verifiably its: its
        process group, its current children and theirs, and known workers
        that are now reparented to us. Pids are never killed on the strength
        of an old record alone (pids get reused)."""
        me = os.getpid()
        victims = set(pgid_members(self.pid))
        if not self.exited():
            victims.add(self.pid)
            for w in self.children() or ():
                victims.add(w)
                victims |= children(w) or set()
        for p in self.known:
            f = _stat_fields(p)
            if f is not None and int(f[1]) in (me, self.pid):
                victims.add(p)
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for v in victims:
            try:
                os.kill(v, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = now() + 10
        while now() < deadline:
            reap_any()
            self.exited()
            if self.status is not None and not any(alive(v) for v in victims):
                break
            time.sleep(0.01)
        reap_any()
        self.known.clear()


def final_cleanup():
    for m in _masters:
        try:
            m.kill_all()
        except Exception as e:  # never let cleanup raise
            print(f"cleanup of {m.pid} failed: {e}", file=sys.stderr)
    for _ in range(3):
        left = my_children_by_ppid()
        if not left:
            break
        for p in left:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
        reap_any()


def describe_status(st):
    if st is None or st < 0:
        return "status unknown"
    if os.WIFSIGNALED(st):
        return f"killed by signal {os.WTERMSIG(st)}"
    return f"exit status {os.WEXITSTATUS(st)}"


class BenchError(Exception):
    pass


def wait_children(m, n, timeout):
    """Tight poll until master m has >= n children; returns (seconds since
    launch, children set)."""
    deadline = m.t0 + timeout
    next_exit_check = 0.0
    while True:
        t = now()
        c = m.children()
        if c is not None and len(c) >= n:
            return t - m.t0, c
        if t > next_exit_check:
            if m.exited():
                raise BenchError(f"master exited ({describe_status(m.status)}) "
                                 f"before reaching {n} workers; see {m.err_path}")
            next_exit_check = t + 0.05
        if t > deadline:
            raise BenchError(f"timeout: {len(c or ())}/{n} workers after {timeout}s")
        POLL_PAUSE()


def wait_live(m, n, timeout):
    deadline = now() + timeout
    while now() < deadline:
        c = m.children() or set()
        live = {p for p in c if alive(p)}
        if len(live) >= n:
            return live
        time.sleep(0.002)
    raise BenchError(f"timeout waiting for {n} live workers")


# ------------------------------------------------------------ launchers ----


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def count_lines(path, needle):
    try:
        with open(path, "rb") as f:
            return f.read().count(needle)
    except FileNotFoundError:
        return 0


def count_fork_events(path):
    n = 0
    try:
        with open(path, "rb") as f:
            for line in f:
                try:
                    if json.loads(line).get("type") == "fork":
                        n += 1
                except ValueError:
                    pass  # partial last line
    except FileNotFoundError:
        pass
    return n


def forkwatch_master_config(path):
    try:
        with open(path, "rb") as f:
            for line in f:
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if ev.get("type") == "master_started":
                    return ev.get("config")
    except FileNotFoundError:
        pass
    return None


class Launcher:
    name = label = ""

    def __init__(self, logdir):
        self.logdir = logdir
        self.seq = 0

    def launch(self, n, crash=False):
        self.seq += 1
        argv, env = self.argv(n, crash)
        prefix = os.path.join(self.logdir, f"{self.name}-{self.seq:03d}"
                              f"{'-crash' if crash else ''}-w{n}")
        return Master(argv, env, ROOT, prefix)

    def self_reported_forks(self, m):
        """Forks the launcher itself reports (events / logs); cross-check."""
        return None


class Forkwatch(Launcher):
    name, label = "forkwatch", "forkwatch"

    def __init__(self, logdir, binary):
        super().__init__(logdir)
        self.binary = binary

    def argv(self, n, crash):
        if crash:
            return ([self.binary, "run", "--headless", "--workers", str(n),
                     "--events", "-", "--", "/bin/sh", "-c", "exit 1"],
                    dict(os.environ))
        return ([self.binary, "run", "--headless", "--workers", str(n), "idle"],
                dict(os.environ))

    def self_reported_forks(self, m):
        return count_fork_events(m.out_path)


class Oslo(Launcher):
    name, label = "oslo", "oslo.service"

    def __init__(self, logdir, venv):
        super().__init__(logdir)
        self.python = os.path.join(venv, "bin", "python")

    def argv(self, n, crash):
        a = [self.python, os.path.join(ANCHORS, "oslo_app.py"), "--workers", str(n)]
        if crash:
            a += ["--crash", "--debug"]
        return a, dict(os.environ)

    def self_reported_forks(self, m):
        return count_lines(m.err_path, b"Started child ")


class Gunicorn(Launcher):
    name, label = "gunicorn", "gunicorn"

    def __init__(self, logdir, venv):
        super().__init__(logdir)
        self.gunicorn = os.path.join(venv, "bin", "gunicorn")

    def argv(self, n, crash):
        env = dict(os.environ)
        env.pop("BENCH_CRASH", None)
        if crash:
            env["BENCH_CRASH"] = "1"
        return ([self.gunicorn, "-w", str(n), "-k", "sync",
                 "--bind", f"127.0.0.1:{free_port()}",
                 "--no-control-socket", "--log-level", "info",
                 "--chdir", ANCHORS,
                 "-c", os.path.join(ANCHORS, "gunicorn_conf.py"),
                 "gunicorn_app:app"], env)

    def self_reported_forks(self, m):
        return count_lines(m.err_path, b"Booting worker with pid")


# ------------------------------------------------------------ scenarios ----


def percentile(xs, p):
    """Linear interpolation between closest ranks (numpy's default)."""
    xs = sorted(xs)
    if not xs:
        return None
    k = (len(xs) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def sc_time_to_n(L, n, reps):
    samples = []
    for r in range(reps):
        m = L.launch(n)
        try:
            t, _ = wait_children(m, n, timeout=120)
            samples.append(t)
        finally:
            m.stop()
        time.sleep(0.3)
    log(f"  {L.name}: time to {n} workers: "
        + ", ".join(f"{s * 1e3:.1f}" for s in samples) + " ms")
    return {"samples_s": samples, "median_s": statistics.median(samples),
            "min_s": min(samples), "max_s": max(samples)}


def sc_respawn(L, kills, spacing, settle):
    m = L.launch(4)
    lat = []
    fork_times = []
    try:
        _, c = wait_children(m, 4, timeout=60)
        t_up = now()
        time.sleep(settle)
        killed = set()
        for k in range(kills):
            live = wait_live(m, 4, timeout=15)
            victim = min(live - killed)
            before = m.children()
            t_kill = now()
            os.kill(victim, signal.SIGKILL)
            killed.add(victim)
            deadline = t_kill + 15
            while True:
                c = m.children()
                if c is None:
                    raise BenchError("master disappeared during respawn test")
                new = c - before
                if new:
                    t_new = now()
                    break
                if now() > deadline:
                    raise BenchError(f"no respawn 15 s after kill #{k + 1}")
                POLL_PAUSE()
            lat.append(t_new - t_kill)
            fork_times.append(t_new)
            # Space kills: next kill no earlier than t_kill + spacing.
            rest = t_kill + spacing - now()
            if rest > 0:
                time.sleep(rest)
        # oslo throttle check: with forktimes holding the last 5 forks, oslo
        # sleeps 1 s before a fork if the fork 5 back was < workers (4) s ago.
        # The 4 launch forks all happened at or before t_up.
        forks = [t_up] * 4 + fork_times
        windows = [forks[j] - forks[j - 5] for j in range(5, len(forks))]
        res = {
            "samples_s": lat, "n": len(lat),
            "p50_s": percentile(lat, 50), "p99_s": percentile(lat, 99),
            "max_s": max(lat), "mean_s": statistics.fmean(lat),
            "spacing_s": spacing, "settle_s": settle,
            "min_5fork_window_s": min(windows),
        }
        if isinstance(L, Oslo):
            m.stop()
            res["oslo_forking_too_fast_lines"] = count_lines(
                m.err_path, b"Forking too fast")
    finally:
        m.stop()
    log(f"  {L.name}: respawn p50 {res['p50_s'] * 1e3:.2f} ms, p99 "
        f"{res['p99_s'] * 1e3:.2f} ms, max {res['max_s'] * 1e3:.2f} ms "
        f"(n={len(lat)})")
    return res


def sc_idle(L, window, up_for):
    m = L.launch(4)
    try:
        _, c = wait_children(m, 4, timeout=60)
        time.sleep(up_for)
        workers = {p for p in m.children() if alive(p)}
        rss_kb = int(status_field(m.pid, "VmRSS"))
        threads = int(status_field(m.pid, "Threads"))
        t1 = now()
        c1, s1 = cpu_ticks(m.pid), sched_ns(m.pid)
        w1 = {p: cpu_ticks(p) for p in workers}
        time.sleep(window)
        t2 = now()
        c2, s2 = cpu_ticks(m.pid), sched_ns(m.pid)
        w2 = {p: cpu_ticks(p) for p in workers}
        wall = t2 - t1
        if m.exited():
            raise BenchError("master exited during the idle window")
        wdelta = sum((w2[p] or 0) - (w1[p] or 0) for p in workers
                     if w1[p] is not None and w2[p] is not None)
        pss = [pss_kb(p) for p in workers]
        pss = [x for x in pss if x is not None]
        res = {
            "rss_kb": rss_kb, "threads": threads, "window_s": wall,
            "cpu_pct": (c2 - c1) / CLK_TCK / wall * 100.0,
            "cpu_ticks": c2 - c1,
            "cpu_pct_schedstat": (None if s1 is None or s2 is None
                                  else (s2 - s1) / 1e9 / wall * 100.0),
            "workers_cpu_pct_total": wdelta / CLK_TCK / wall * 100.0,
            "worker_pss_kb_mean": statistics.fmean(pss) if pss else None,
            "master_pss_kb": pss_kb(m.pid),
        }
    finally:
        m.stop()
    log(f"  {L.name}: idle CPU {res['cpu_pct']:.2f}% (schedstat "
        f"{(res['cpu_pct_schedstat'] or 0):.3f}%), RSS {rss_kb / 1024:.1f} MiB")
    return res


def sc_crash(L, skip, window):
    m = L.launch(4, crash=True)
    try:
        t_start = m.t0 + skip
        t_end = t_start + window
        prev = set()
        seen_in_window = 0
        seen_total = 0
        self_start = None
        started = False
        nxt = now() + 0.05
        while True:
            t = now()
            if not started and t >= t_start:
                started = True
                self_start = L.self_reported_forks(m)
                t_start_real = now()
            if t >= t_end:
                break
            c = m.children()
            if c is None:
                raise BenchError("master exited during the crash loop; see "
                                 + m.err_path)
            new = c - prev
            if new:
                seen_total += len(new)
                if t >= t_start:
                    seen_in_window += len(new)
            prev = c
            if t > nxt:
                if m.exited():
                    raise BenchError("master exited during the crash loop "
                                     f"({describe_status(m.status)}); see "
                                     + m.err_path)
                nxt = t + 0.05
            POLL_PAUSE()
        t_end_real = now()
        self_end = L.self_reported_forks(m)
        span = t_end_real - t_start_real
        res = {
            "forks_polled": seen_in_window, "window_s": span,
            "forks_per_s": seen_in_window / span,
            "forks_polled_total": seen_total,
            "self_reported": (None if self_end is None
                              else self_end - self_start),
        }
        if res["self_reported"] is not None:
            res["self_reported_per_s"] = res["self_reported"] / span
        if isinstance(L, Oslo):
            res["oslo_forking_too_fast_lines"] = count_lines(
                m.err_path, b"Forking too fast")
        if isinstance(L, Forkwatch):
            res["master_config"] = forkwatch_master_config(m.out_path)
    finally:
        m.stop()
    log(f"  {L.name}: crash loop {res['forks_per_s']:.2f} forks/s polled "
        f"({seen_in_window} in {span:.2f} s), self-reported "
        f"{res['self_reported']}")
    return res


def sc_graceful(L, reps, settle, timeout=70):
    samples = []
    for r in range(reps):
        m = L.launch(4)
        try:
            wait_children(m, 4, timeout=60)
            time.sleep(settle)
            workers = set(m.children())
            t = now()
            os.kill(m.pid, signal.SIGTERM)
            deadline = t + timeout
            while True:
                c = children(m.pid)   # pick up anything spawned meanwhile
                if c:
                    workers |= c
                    m.known |= c
                done = m.exited() and not any(alive(w) for w in workers)
                if done:
                    samples.append(now() - t)
                    break
                if now() > deadline:
                    raise BenchError(f"not stopped {timeout} s after SIGTERM")
                reap_any()
                POLL_PAUSE()
        finally:
            m.kill_all()
        time.sleep(0.3)
    log(f"  {L.name}: graceful stop: "
        + ", ".join(f"{s * 1e3:.1f}" for s in samples) + " ms")
    return {"samples_s": samples, "median_s": statistics.median(samples),
            "min_s": min(samples), "max_s": max(samples)}


# --------------------------------------------------------------- report ----


def with_other_sections(report, path):
    """This script's report is the head of the file; the sections the other scripts write (from
    the first `<!-- NAME:start -->` marker on) are kept, so running this script alone does not
    drop them. Each of them says when and from which commit it was measured."""
    try:
        old = open(path).read()
    except FileNotFoundError:
        return report
    m = re.search(r"^<!-- [a-z-]+:start -->$", old, re.M)
    return report if m is None else report.rstrip("\n") + "\n\n" + old[m.start():]


def machine_info():
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = status = None
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1])
    try:
        with open("/etc/debian_version") as f:
            status = "Debian " + f.read().strip()
    except FileNotFoundError:
        status = platform.platform()
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "cpu_model": model,
        "mem_gib": round(mem / 1024 / 1024, 1) if mem else None,
        "os": status,
        "python_harness": platform.python_version(),
    }


def venv_versions(venv):
    code = ("import importlib.metadata as m, platform, json;"
            "print(json.dumps({'python': platform.python_version(), **{p: "
            "m.version(p) for p in ['oslo.service','oslo.config','eventlet',"
            "'greenlet','gunicorn']}}))")
    try:
        out = subprocess.run([os.path.join(venv, "bin", "python"), "-c", code],
                             capture_output=True, text=True, timeout=60)
        return json.loads(out.stdout)
    except Exception as e:
        return {"error": str(e)}


def forkwatch_info(binary):
    info = {"path": os.path.relpath(binary, ROOT) if binary.startswith(ROOT)
            else binary}
    try:
        with open(binary, "rb") as f:
            data = f.read()
        info["sha256"] = hashlib.sha256(data).hexdigest()[:16]
        info["size_mib"] = round(len(data) / 1048576, 1)
        info["standin"] = data[:2] == b"#!"
    except OSError as e:
        info["error"] = str(e)
    try:
        out = subprocess.run([binary, "--version"], capture_output=True,
                             text=True, timeout=10, stdin=subprocess.DEVNULL)
        v = (out.stdout or out.stderr).strip().splitlines()
        if out.returncode == 0 and v:
            info["version"] = v[0][:100]
    except Exception:
        pass
    try:
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        if rev.returncode == 0:
            info["git"] = rev.stdout.strip()
            dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain",
                                    "--untracked-files=no"],
                                   capture_output=True, text=True, timeout=10)
            if dirty.stdout.strip():
                info["git"] += " (+uncommitted changes)"
    except Exception:
        pass
    return info


HEAVY = ("swift-frontend", "swift-build", "swiftc", "clang", "ld", "lld",
         "cc1", "cc1plus", "rustc", "cargo", "gcc", "pip")


def busy_processes():
    seen = set()
    me = os.getpid()
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == me:
            continue
        try:
            with open(f"/proc/{d}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        if comm in HEAVY or comm.startswith("swift-"):
            seen.add(comm)
    return sorted(seen)


def fmt_ms(s, nd=1):
    return "—" if s is None else f"{s * 1e3:.{nd}f} ms"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "n/a"
    if a == 0:
        return "0×"
    r = a / b
    if r >= 100:
        return f"{r:.0f}×"
    if r >= 10:
        return f"{r:.1f}×"
    if r >= 0.1:
        return f"{r:.2f}×"
    return f"{r:.3f}×"


def get(results, scen, lname, key):
    v = results.get(scen, {}).get(lname)
    if not isinstance(v, dict) or "error" in v:
        return None
    return v.get(key)


def cell(results, scen, lname, key, fmt):
    v = results.get(scen, {}).get(lname)
    if v is None:
        return "not run"
    if "error" in v:
        return "error"
    x = v.get(key)
    return "—" if x is None else fmt(x)


def build_report(results, meta, launchers):
    names = [L.name for L in launchers]
    labels = {L.name: L.label for L in launchers}
    has_fw = "forkwatch" in names
    anchors = [n for n in names if n != "forkwatch"]

    rows = [
        # (title, scenario, key, formatter)
        ("time to 4 workers (median of {reps})", "to4", "median_s", fmt_ms),
        ("time to 64 workers (median of {reps})", "to64", "median_s", fmt_ms),
        ("respawn latency p50", "respawn", "p50_s", lambda s: fmt_ms(s, 2)),
        ("respawn latency p99", "respawn", "p99_s", lambda s: fmt_ms(s, 2)),
        ("respawn latency max", "respawn", "max_s", lambda s: fmt_ms(s, 2)),
        ("master idle CPU, 4 idle workers, 10 s", "idle", "cpu_pct",
         lambda x: f"{x:.2f} %" if x else "0 % (0 ticks)"),
        ("master RSS (VmRSS), 4 idle workers", "idle", "rss_kb",
         lambda x: f"{x / 1024:.1f} MiB"),
        ("crash-loop fork rate, 4 workers", "crash", "forks_per_s",
         lambda x: f"{x:.2f} forks/s"),
        ("graceful stop, 4 idle workers (median of {reps})", "graceful",
         "median_s", fmt_ms),
    ]
    extra_rows = [
        ("master idle CPU from schedstat (ns resolution)", "idle",
         "cpu_pct_schedstat", lambda x: f"{x:.3f} %"),
        ("4 idle workers' CPU, total", "idle", "workers_cpu_pct_total",
         lambda x: f"{x:.2f} %"),
        ("worker PSS, mean of 4 idle workers", "idle", "worker_pss_kb_mean",
         lambda x: f"{x / 1024:.1f} MiB"),
        ("master PSS", "idle", "master_pss_kb", lambda x: f"{x / 1024:.1f} MiB"),
        ("master threads", "idle", "threads", str),
        ("crash loop: forks the launcher reported itself", "crash",
         "self_reported_per_s", lambda x: f"{x:.2f} forks/s"),
    ]

    def table(rowspec, with_ratio=True):
        hdr = ["figure"] + [labels[n] for n in names]
        if has_fw and with_ratio:
            hdr += [f"forkwatch / {labels[a]}" for a in anchors]
        out = ["| " + " | ".join(hdr) + " |",
               "|" + "|".join(["---"] + ["---:"] * (len(hdr) - 1)) + "|"]
        for title, scen, key, f in rowspec:
            line = [title.format(reps=meta["reps"])]
            line += [cell(results, scen, n, key, f) for n in names]
            if has_fw and with_ratio:
                fw = get(results, scen, "forkwatch", key)
                if key == "cpu_pct" and fw == 0:
                    line += ["0 (below 1 tick)"] * len(anchors)
                else:
                    line += [ratio(fw, get(results, scen, a, key))
                             for a in anchors]
            out.append("| " + " | ".join(line) + " |")
        return "\n".join(out)

    mi = meta["machine"]
    vv = meta["versions"]
    fw = meta.get("forkwatch")
    md = []
    md.append("# forkwatch benchmarks\n")
    if fw and fw.get("standin"):
        md.append("> **WARNING: forkwatch column measured a Python STAND-IN, "
                  "not the real binary. Do not publish these figures.**\n")
    if not has_fw:
        md.append("> **forkwatch was not measured in this run "
                  "(binary missing); only the anchors are shown.**\n")
    md.append(f"Generated by `{meta['command']}` on {meta['date']}.\n")
    md.append("All figures are measured from outside the launchers, through "
              "`/proc`, by `bench/bench.py` (see `bench/README.md`). forkwatch, "
              "oslo.service's `ProcessLauncher` (eventlet backend) and gunicorn "
              "(sync workers) ran side by side in the same run, interleaved "
              "scenario by scenario. Lower is better for every row except the "
              "crash-loop fork rate, which is a policy figure (how hard the "
              "launcher re-forks a worker that dies at once).\n")
    md.append("## Results\n")
    md.append(table(rows) + "\n")
    md.append("## Extra figures (same runs)\n")
    md.append(table(extra_rows) + "\n")

    # Notes
    md.append("## Notes\n")
    rs = results.get("respawn", {})
    notes = []
    sp = meta["respawn_spacing_s"]
    notes.append(
        f"- Respawn: {meta['kills']} SIGKILLs per launcher, one every "
        f"{sp:g} s, the first at least {meta['respawn_settle_s']:g} s after "
        f"the 4 workers were up. p99 is interpolated between the two "
        f"slowest of the {meta['kills']} samples. Poll: "
        + ("sched_yield between reads of /proc." if meta["poll"] == "yield"
           else "tight spin, no yield (--poll spin)."))
    o = rs.get("oslo")
    if isinstance(o, dict) and "error" not in o:
        spans = ", ".join(
            f"{labels[n]} {rs[n]['min_5fork_window_s']:.2f} s" for n in names
            if isinstance(rs.get(n), dict) and "error" not in rs[n])
        fast = o.get("oslo_forking_too_fast_lines")
        notes.append(
            f"- Respawn throttle check: oslo sleeps 1 s before a fork when the "
            f"fork 5 forks back (its `forktimes` list holds `workers`+1 = 5 "
            f"entries) was less than `workers` = 4 s ago (forkwatch keeps the "
            f"same rule by default). One kill every {sp:g} s makes 5 forks "
            f"span about {5 * sp:g} s in steady state, and the first kill "
            f"waits until the 4 launch forks are more than 4 s old. Measured "
            f"shortest span of 5 consecutive forks (launch forks counted at "
            f"the moment the 4th worker appeared): {spans}; all above 4 s. "
            f"The oslo log had {fast} \"Forking too fast\" lines, so the "
            f"throttle {'never engaged' if fast == 0 else 'ENGAGED: oslo respawn figures include 1 s sleeps'}.")
    cr = results.get("crash", {})
    parts = []
    for n in names:
        v = cr.get(n)
        if isinstance(v, dict) and "error" not in v:
            parts.append(f"{labels[n]} {v['forks_polled']} polled / "
                         f"{v['self_reported']} self-reported")
    notes.append(
        f"- Crash loop: forks counted over {meta['crash_window_s']:g} s after "
        f"the first {meta['crash_skip_s']:g} s, as new pids appearing in the "
        f"master's children list (tight poll). Cross-check against the "
        f"launchers' own reports (forkwatch `fork` events, oslo \"Started "
        f"child\" debug lines, gunicorn \"Booting worker\" lines): "
        + "; ".join(parts) + ". forkwatch's worker is `/bin/sh -c 'exit 1'`; "
        "oslo's is a Service whose `start()` calls `os._exit(1)`; gunicorn's "
        "worker calls `os._exit(1)` in the `post_worker_init` hook (exit "
        "status 1 because gunicorn halts the whole server on 3/4).")
    fc = cr.get("forkwatch")
    if isinstance(fc, dict) and fc.get("master_config"):
        notes.append(f"- forkwatch's own settings in the crash-loop run (from "
                     f"its `master_started` event): `{fc['master_config']}`.")
    oc = cr.get("oslo")
    if isinstance(oc, dict) and "error" not in oc:
        notes.append(f"- oslo's crash-loop rate is its throttle at work: "
                     f"{oc.get('oslo_forking_too_fast_lines')} "
                     f"\"Forking too fast, sleeping\" lines in that run.")
    notes.append(
        "- Time to N workers counts forks (a pid in the master's children "
        "list), not readiness: it includes the interpreter start and imports "
        "for the Python launchers; gunicorn also sleeps a random 0–100 ms "
        "after each spawn by design, which dominates its 64-worker figure.")
    notes.append(
        "- gunicorn runs with `--no-control-socket` (gunicorn ≥ 25 otherwise "
        "starts a control-socket thread in the master at a shared path), "
        "`-k sync`, bound to a free port on 127.0.0.1.")
    errs = []
    for scen, per in results.items():
        for n, v in per.items():
            if isinstance(v, dict) and "error" in v:
                errs.append(f"  - {scen} / {labels.get(n, n)}: {v['error']}")
    if errs:
        notes.append("- Errors in this run:\n" + "\n".join(errs))
    if meta["busy_before"] or meta["busy_after"]:
        notes.append(
            "- Other CPU-heavy processes were running during this run "
            f"(before: {', '.join(meta['busy_before']) or 'none'}; after: "
            f"{', '.join(meta['busy_after']) or 'none'}): figures may be noisy.")
    md.append("\n".join(notes) + "\n")

    md.append("## Machine and versions\n")
    md.append(f"- Machine: {mi['nproc']} CPUs (nproc), {mi['cpu_model']}, "
              f"{mi['mem_gib']} GiB RAM, kernel {mi['kernel']}, {mi['os']}")
    md.append(f"- Load average before / after: "
              f"{' '.join(f'{x:.2f}' for x in meta['load_before'])} / "
              f"{' '.join(f'{x:.2f}' for x in meta['load_after'])}")
    md.append(f"- Anchors (venv `bench/.venv`, Python {vv.get('python')}): "
              f"oslo.service {vv.get('oslo.service')} (eventlet backend, "
              f"eventlet {vv.get('eventlet')}, oslo.config "
              f"{vv.get('oslo.config')}), gunicorn {vv.get('gunicorn')}")
    if fw:
        desc = ", ".join(f"{k} {v}" for k, v in fw.items() if k != "standin")
        md.append(f"- forkwatch: {desc}")
    md.append(f"- Total benchmark time: {meta['elapsed_s']:.0f} s\n")

    md.append("## Raw samples\n")
    md.append("```")
    for scen in ("to4", "to64", "respawn", "graceful"):
        for n in names:
            v = results.get(scen, {}).get(n)
            if isinstance(v, dict) and "samples_s" in v:
                md.append(f"{scen:9s} {n:10s} ms: " + " ".join(
                    f"{s * 1e3:.2f}" for s in v["samples_s"]))
    md.append("```\n")
    md.append(f"Reproduce: `{meta['command']}` from the repository root.\n")
    return "\n".join(md)


# ----------------------------------------------------------------- main ----


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--forkwatch", help="forkwatch binary (omit to skip it)")
    ap.add_argument("--venv", default=os.path.join(HERE, ".venv"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    ap.add_argument("--json", default=os.path.join(HERE, ".results.json"))
    ap.add_argument("--logdir", default=os.path.join(HERE, ".logs"))
    ap.add_argument("--launchers", default="forkwatch,oslo,gunicorn")
    ap.add_argument("--scenarios",
                    default="to4,to64,respawn,idle,crash,graceful")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--kills", type=int, default=60,
                    help="respawn samples per launcher (see README: why 60)")
    ap.add_argument("--spacing", type=float, default=1.2,
                    help="seconds between respawn kills (>= 0.8 keeps oslo's "
                         "throttle off for workers=4; see README)")
    ap.add_argument("--settle", type=float, default=4.5,
                    help="seconds between workers up and the first kill")
    ap.add_argument("--idle-window", type=float, default=10.0)
    ap.add_argument("--crash-skip", type=float, default=2.0)
    ap.add_argument("--crash-window", type=float, default=10.0)
    ap.add_argument("--poll", choices=("yield", "spin"), default="yield",
                    help="between two reads of /proc in a tight poll: give the "
                         "CPU away (yield, default) or not (spin); see README")
    ap.add_argument("--command", default="bash bench/run.sh")
    ap.add_argument("--timeout", type=int, default=1200,
                    help="hard limit for the whole run, seconds")
    args = ap.parse_args()
    global POLL_PAUSE
    POLL_PAUSE = os.sched_yield if args.poll == "yield" else _no_pause

    if not os.path.exists("/proc/self/task/%d/children" % os.getpid()):
        sys.exit("this kernel has no /proc/PID/task/TID/children "
                 "(CONFIG_PROC_CHILDREN); cannot measure")

    def on_alarm(*_):
        raise TimeoutError(f"benchmark exceeded --timeout {args.timeout}s")

    def on_term(signo, _):
        raise SystemExit(128 + signo)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.alarm(args.timeout)
    set_subreaper()

    os.makedirs(args.logdir, exist_ok=True)
    for f in os.listdir(args.logdir):
        if f.endswith((".out", ".err")):
            os.unlink(os.path.join(args.logdir, f))

    want = args.launchers.split(",")
    launchers = []
    for n in want:
        if n == "forkwatch":
            if args.forkwatch:
                fwbin = os.path.abspath(args.forkwatch)
                if not os.access(fwbin, os.X_OK):
                    sys.exit(f"forkwatch binary not executable: {fwbin}")
                launchers.append(Forkwatch(args.logdir, fwbin))
            else:
                log("NOTE: no --forkwatch given: forkwatch is NOT measured")
        elif n == "oslo":
            launchers.append(Oslo(args.logdir, args.venv))
        elif n == "gunicorn":
            launchers.append(Gunicorn(args.logdir, args.venv))
        else:
            sys.exit(f"unknown launcher {n}")

    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M UTC"),
        "command": args.command, "reps": args.reps, "kills": args.kills, "poll": args.poll,
        "respawn_spacing_s": args.spacing, "respawn_settle_s": args.settle,
        "crash_skip_s": args.crash_skip, "crash_window_s": args.crash_window,
        "machine": machine_info(), "versions": venv_versions(args.venv),
        "load_before": os.getloadavg(), "busy_before": busy_processes(),
    }
    for L in launchers:
        if isinstance(L, Forkwatch):
            meta["forkwatch"] = forkwatch_info(L.binary)
    if meta["busy_before"]:
        log("WARNING: CPU-heavy processes are running: "
            + ", ".join(meta["busy_before"]) + " (figures may be noisy)")

    scen_fns = {
        "to4": ("time to 4 workers", lambda L: sc_time_to_n(L, 4, args.reps)),
        "to64": ("time to 64 workers", lambda L: sc_time_to_n(L, 64, args.reps)),
        "respawn": ("respawn latency", lambda L: sc_respawn(
            L, args.kills, args.spacing, args.settle)),
        "idle": ("idle master CPU and RSS", lambda L: sc_idle(
            L, args.idle_window, 2.0)),
        "crash": ("crash-loop fork rate", lambda L: sc_crash(
            L, args.crash_skip, args.crash_window)),
        "graceful": ("graceful stop", lambda L: sc_graceful(L, args.reps, 1.0)),
    }
    results = {}
    t_start = now()
    rc = 0
    try:
        for scen in args.scenarios.split(","):
            title, fn = scen_fns[scen]
            log(f"== {title}")
            results[scen] = {}
            for L in launchers:
                try:
                    results[scen][L.name] = fn(L)
                except (BenchError, OSError, ValueError, TypeError) as e:
                    log(f"  {L.name}: ERROR {e}")
                    results[scen][L.name] = {"error": str(e)}
                    rc = 1
    finally:
        signal.alarm(0)
        final_cleanup()
    meta["load_after"] = os.getloadavg()
    meta["busy_after"] = busy_processes()
    meta["elapsed_s"] = now() - t_start

    report = build_report(results, meta, launchers)
    if args.out and args.out != "-":
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            f.write(with_other_sections(report, args.out))
        log(f"wrote {args.out}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=1)
    print(report)
    return rc


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("interrupted (every launched process was killed and reaped)")
