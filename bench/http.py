#!/usr/bin/env python3
"""HTTP throughput and a rolling restart under load, written into docs/benchmarks.md.

  python3 bench/http.py --forkwatch .build/release/forkwatch --venv bench/.venv \\
      --out docs/benchmarks.md [--reps 3 --duration 10]

Four servers, 2 worker processes each, on loopback, all answering GET /healthcheck with 200 "OK":

  nginx      worker_processes 2, `location = /healthcheck { return 200 "OK"; }`, access_log off
  gunicorn   -w 2 -k sync, bench/anchors/http_app.py
  eventlet   bench/anchors/eventlet_wsgi.py: one socket (backlog 128), 2 forked workers running
             eventlet.wsgi.server with a GreenPool of 1000 (nova's API stack), same app
  forkwatch  forkwatch run --headless --control-socket none --port P --listen 127.0.0.1 --workers 2 api

Each round starts one server at a time (own session and process group), waits for its workers
and a 200 from /healthcheck, warms up with wrk, then measures with
`wrk -t2 -c64 -d10s --latency`, stops the server and checks that nothing of it is left (pgrep on
its process group and session, and every descendant pid seen). Rounds are interleaved
(nginx, gunicorn, eventlet, forkwatch, nginx, ...) and the report gives the median per server.

Then a rolling restart under load: forkwatch (restart_method rolling, its default) and gunicorn
get SIGHUP three times (at 20 %, 50 % and 80 % of the wrk run); wrk's requests, socket errors and
HTTP errors are reported.

forkwatch is skipped, with the reason, when the binary has no built-in `api` service.
Stdlib only (the anchors run in the venv). wrk shares the machine's CPUs with the servers.

This file is named http.py: bench/ is taken off sys.path below so that it never shadows the
standard library's `http` package; report.py is loaded by path.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != HERE]

import argparse  # noqa: E402
import ctypes  # noqa: E402
import datetime  # noqa: E402
import grp  # noqa: E402
import hashlib  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import pwd  # noqa: E402
import re  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402


def _load_report():
    spec = importlib.util.spec_from_file_location("report", os.path.join(HERE, "report.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


replace_section = _load_report().replace_section

ROOT = os.path.dirname(HERE)
ANCHORS = os.path.join(HERE, "anchors")
START, END = "<!-- http:start -->", "<!-- http:end -->"
SERVERS = ("nginx", "gunicorn", "eventlet", "forkwatch")
WORKERS = 2
CLK_TCK = os.sysconf("SC_CLK_TCK")
HEAVY = ("swift-frontend", "swift-build", "swiftc", "swift-driver", "clang", "ld", "lld",
         "ld.gold", "cc1", "cc1plus", "rustc", "cargo", "go")
libc = ctypes.CDLL(None, use_errno=True)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------ processes ----


def set_subreaper():
    """Orphaned workers are reparented to us, so they can always be found and reaped."""
    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def _pdeathsig(sig):
    def setup():
        libc.prctl(1, sig, 0, 0, 0)  # PR_SET_PDEATHSIG: dies (or is told to stop) with us
    return setup


def children(pid):
    """The children of pid, over all of its threads."""
    kids = set()
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return kids
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids |= {int(x) for x in f.read().split()}
        except OSError:
            pass
    return kids


def descendants(pid):
    out, todo = set(), [pid]
    while todo:
        for c in children(todo.pop()):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def stat_fields(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def alive(pid):
    f = stat_fields(pid)
    return f is not None and f[0] != "Z"


def cpu_ticks(pids):
    total = 0
    for p in pids:
        f = stat_fields(p)
        if f is not None:
            total += int(f[11]) + int(f[12])
    return total


def pgrep(flag, value):
    out = subprocess.run(["pgrep", flag, str(value)], capture_output=True, text=True)
    return sorted(int(x) for x in out.stdout.split())


def reap_orphans():
    """Reaps whatever exited among our children (only called when no wrk is running)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


class Server:
    """One server under test: its own session / process group, stopped with SIGTERM, then
    SIGKILL for anything left, then checked with pgrep."""
    live = []

    def __init__(self, name, argv, logdir, cwd=None):
        self.name = name
        self.argv = argv
        self.log_path = os.path.join(logdir, f"{name}.log")
        self.status = None
        self.known = set()
        with open(self.log_path, "ab") as logf:
            logf.write(f"\n=== {time.strftime('%H:%M:%S')} {shlex.join(argv)}\n".encode())
            logf.flush()
            self.popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                          cwd=cwd, start_new_session=True, close_fds=True,
                                          preexec_fn=_pdeathsig(signal.SIGTERM))
        self.pid = self.popen.pid
        Server.live.append(self)

    def exited(self):
        if self.status is None:
            try:
                pid, st = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                pid, st = self.pid, -1
            if pid:
                self.status = st
                self.popen.returncode = st
        return self.status is not None

    def workers(self):
        c = children(self.pid)
        self.known |= c
        for w in c:
            self.known |= descendants(w)
        return c

    def stop(self, timeout=20.0):
        """Returns (seconds to stop after SIGTERM or None, leftover pids found by pgrep after the
        kill, whether SIGKILL was needed)."""
        self.workers()
        stop_s, killed = None, False
        if not self.exited():
            t0 = time.monotonic()
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = t0 + timeout
            while time.monotonic() < deadline and not self.exited():
                self.workers()
                time.sleep(0.01)
            if self.exited():
                stop_s = time.monotonic() - t0
        # Workers may outlive the master for a moment (or be orphaned to us): wait a little for
        # them, then SIGKILL whatever of this server is still there.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            reap_orphans()
            if not self._remaining():
                break
            time.sleep(0.01)
        left = self._remaining()
        if left or not self.exited():
            killed = True
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            for p in left:
                try:
                    os.kill(p, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                reap_orphans()
                self.exited()
                if self.exited() and not self._remaining():
                    break
                time.sleep(0.01)
        reap_orphans()
        self.exited()
        if self in Server.live:
            Server.live.remove(self)
        return stop_s, self._remaining(), killed

    def _remaining(self):
        """pids of this server that are still alive: its process group and session (pgrep) and
        every descendant ever seen that is still ours (parent is the master, a worker or us)."""
        left = set(pgrep("-g", self.pid)) | set(pgrep("-s", self.pid))
        ours = {os.getpid(), self.pid} | self.known
        for p in self.known:
            f = stat_fields(p)
            if f is not None and f[0] != "Z" and int(f[1]) in ours:
                left.add(p)
        if not self.exited() and alive(self.pid):
            left.add(self.pid)
        return sorted(p for p in left if alive(p))


def cleanup_all():
    for s in list(Server.live):
        try:
            s.stop(timeout=5)
        except Exception as e:  # cleanup never raises
            log(f"cleanup of {s.name} ({s.pid}) failed: {e}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthcheck(port, timeout=1.0):
    """(status, body) of GET /healthcheck, over a raw socket (no http.client: see the docstring)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"GET /healthcheck HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                m = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.I)
                if m and len(body) >= int(m.group(1)):
                    break
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    return status, body


def wait_ready(server, port, timeout=60.0):
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if server.exited():
            raise RuntimeError(f"{server.name} exited during start-up (status {server.status}); "
                               f"see {server.log_path}")
        if len(server.workers()) >= WORKERS:
            try:
                status, body = healthcheck(port)
                if status == 200:
                    return body
                last = f"HTTP {status}"
            except OSError as e:
                last = str(e)
        time.sleep(0.05)
    raise RuntimeError(f"{server.name} not ready after {timeout:.0f} s "
                       f"({len(server.workers())} workers, last: {last}); see {server.log_path}")


def heavy_processes():
    names = []
    me = os.getpid()
    for d in os.listdir("/proc"):
        if d.isdigit() and int(d) != me:
            try:
                with open(f"/proc/{d}/comm") as f:
                    c = f.read().strip()
            except OSError:
                continue
            if c in HEAVY:
                names.append(c)
    return sorted(set(names))


# ------------------------------------------------------------------ wrk ----

UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def parse_wrk(text):
    def need(pattern, flags=0):
        m = re.search(pattern, text, flags)
        if not m:
            raise RuntimeError(f"cannot parse wrk output ({pattern!r}):\n{text}")
        return m
    r = {"rps": float(need(r"Requests/sec:\s+([\d.]+)").group(1))}
    m = need(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h),")
    r["requests"] = int(m.group(1))
    r["seconds"] = float(m.group(2)) * UNITS_MS[m.group(3)] / 1000
    for pct in ("50", "90", "99"):
        m = need(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.M)
        r[f"p{pct}_ms"] = float(m.group(1)) * UNITS_MS[m.group(2)]
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    r["connect"], r["read"], r["write"], r["timeout"] = (int(x) for x in m.groups()) if m else (0, 0, 0, 0)
    r["errors"] = r["connect"] + r["read"] + r["write"] + r["timeout"]
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    r["non2xx"] = int(m.group(1)) if m else 0
    return r


def run_wrk(a, port, duration, logdir, label, on_tick=None):
    """Runs wrk (own session, dies with us) and returns the parsed figures plus wrk's own CPU
    time. on_tick(elapsed) is called every 10 ms while wrk runs."""
    url = f"http://127.0.0.1:{port}/healthcheck"
    argv = ["wrk", f"-t{a.threads}", f"-c{a.connections}", f"-d{duration}s", "--latency", url]
    out_path = os.path.join(logdir, f"wrk-{label}.txt")
    with open(out_path, "w+b") as out:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                             start_new_session=True, close_fds=True,
                             preexec_fn=_pdeathsig(signal.SIGKILL))
        t0 = time.monotonic()
        try:
            while True:
                pid, status, ru = os.wait4(p.pid, os.WNOHANG)
                if pid:
                    break
                elapsed = time.monotonic() - t0
                if elapsed > duration + 30:
                    raise RuntimeError(f"wrk did not finish within {duration + 30:.0f} s")
                if on_tick:
                    on_tick(elapsed)
                time.sleep(0.01)
        except BaseException:
            try:
                os.killpg(p.pid, signal.SIGKILL)
                os.waitpid(p.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            p.returncode = -9
            raise
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    if p.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} exited with {p.returncode}:\n{text}")
    r = parse_wrk(text)
    r["wrk_cpu_s"] = ru.ru_utime + ru.ru_stime
    r["wall_s"] = time.monotonic() - t0
    r["argv"] = shlex.join(argv)
    return r


# -------------------------------------------------------------- servers ----


def nginx_conf(d, port):
    user = ""
    if os.geteuid() == 0:  # as root the workers would switch to nobody; keep the current user
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};\n"
    conf = f"""# written by bench/http.py
worker_processes {WORKERS};
{user}pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    default_type text/plain;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location = /healthcheck {{ return 200 "OK"; }}
    }}
}}
"""
    path = os.path.join(d, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    return path


def start_server(a, name, port, logdir):
    d = tempfile.mkdtemp(prefix=f"http-{name}-", dir=a.tmp)
    if name == "nginx":
        conf = nginx_conf(d, port)
        argv = [a.nginx, "-p", d + "/", "-e", f"{d}/error.log", "-c", conf, "-g", "daemon off;"]
        return Server(name, argv, logdir)
    if name == "gunicorn":
        argv = [os.path.join(a.venv, "bin", "gunicorn"), "-w", str(WORKERS), "-k", "sync",
                "--bind", f"127.0.0.1:{port}", "--no-control-socket", "--chdir", ANCHORS,
                "http_app:app"]
        return Server(name, argv, logdir, cwd=d)
    if name == "eventlet":
        argv = [os.path.join(a.venv, "bin", "python"), "-W", "ignore",
                os.path.join(ANCHORS, "eventlet_wsgi.py"), "--host", "127.0.0.1",
                "--port", str(port), "--workers", str(WORKERS), "--backlog", "128"]
        return Server(name, argv, logdir, cwd=d)
    if name == "forkwatch":
        argv = [a.forkwatch, "run", "--headless", "--control-socket", "none",
                "--port", str(port), "--listen", "127.0.0.1", "--workers", str(WORKERS),
                "--db", os.path.join(d, "forkwatch.sqlite")] + a.fw_service
        return Server(name, argv, logdir, cwd=ROOT)
    raise ValueError(name)


def forkwatch_usable(a):
    """(True, None) or (False, why)."""
    if not a.forkwatch:
        return False, "no --forkwatch given"
    if not (os.path.isfile(a.forkwatch) and os.access(a.forkwatch, os.X_OK)):
        return False, f"{a.forkwatch} is not an executable file"
    out = subprocess.run([a.forkwatch, "run", "--help"], capture_output=True, text=True,
                         timeout=30, stdin=subprocess.DEVNULL)
    text = out.stdout + out.stderr
    if a.fw_service == ["api"]:
        m = re.search(r"Built-in services:(.*?)(?:\n\s*\n|USAGE:)", text, re.S)
        if not re.search(r"\bapi\b", m.group(1) if m else text):
            return False, (f"{os.path.relpath(a.forkwatch)} has no built-in `api` service yet "
                           "(`forkwatch run --help` does not list it)")
    return True, None


# ------------------------------------------------------------- measures ----


def measure(a, name, rep, logdir):
    port = free_port()
    heavy = heavy_processes()
    server = start_server(a, name, port, logdir)
    try:
        t0 = time.monotonic()
        body = wait_ready(server, port)
        ready_s = time.monotonic() - t0
        if a.warmup > 0:
            run_wrk(a, port, a.warmup, logdir, f"{name}-{rep}-warmup")
        pids = {server.pid} | server.workers()
        c0 = cpu_ticks(pids)
        r = run_wrk(a, port, a.duration, logdir, f"{name}-{rep}")
        r["server_cpu_s"] = (cpu_ticks(pids) - c0) / CLK_TCK
        r["workers_after"] = len(server.workers())
        r["ready_s"] = ready_s
        r["body"] = body.decode(errors="replace")
        heavy = sorted(set(heavy) | set(heavy_processes()))
    finally:
        stop_s, left, killed = server.stop()
    r["stop_s"], r["leftover"], r["sigkill"], r["heavy"] = stop_s, left, killed, heavy
    return r


def rolling(a, name, logdir):
    port = free_port()
    heavy = heavy_processes()
    server = start_server(a, name, port, logdir)
    try:
        wait_ready(server, port)
        if a.warmup > 0:
            run_wrk(a, port, a.warmup, logdir, f"{name}-rolling-warmup")
        initial = server.workers()
        seen = set(initial)
        due = [f * a.duration for f in (0.2, 0.5, 0.8)]
        sent = []

        def tick(elapsed):
            seen.update(server.workers())
            if due and elapsed >= due[0]:
                due.pop(0)
                os.kill(server.pid, signal.SIGHUP)
                sent.append(round(elapsed, 2))

        r = run_wrk(a, port, a.duration, logdir, f"{name}-rolling", on_tick=tick)
        # Let the last restart finish: 2 workers and no change for 1 s (at most 15 s).
        deadline, stable_since, last = time.monotonic() + 15, time.monotonic(), None
        while time.monotonic() < deadline:
            now_workers = server.workers()
            seen.update(now_workers)
            if now_workers != last or len(now_workers) != WORKERS:
                last, stable_since = now_workers, time.monotonic()
            elif time.monotonic() - stable_since >= 1.0:
                break
            time.sleep(0.01)
        r["hups_at_s"] = sent
        r["new_workers"] = len(seen - initial)
        r["workers_end"] = len(server.workers())
        r["master_alive"] = not server.exited()
        try:
            r["after_status"] = healthcheck(port)[0]
        except OSError as e:
            r["after_status"] = str(e)
        heavy = sorted(set(heavy) | set(heavy_processes()))
    finally:
        stop_s, left, killed = server.stop()
    r["stop_s"], r["leftover"], r["sigkill"], r["heavy"] = stop_s, left, killed, heavy
    return r


# ---------------------------------------------------------------- report ----


def tool_version(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return ((out.stdout or "") + (out.stderr or "")).strip().splitlines()[0]
    except Exception as e:
        return f"unknown ({e})"


def venv_versions(venv):
    code = ("import importlib.metadata as m, platform, json;"
            "print(json.dumps({'python': platform.python_version(), **{p: m.version(p) "
            "for p in ['gunicorn', 'eventlet', 'greenlet']}}))")
    try:
        out = subprocess.run([os.path.join(venv, "bin", "python"), "-c", code],
                             capture_output=True, text=True, timeout=60)
        return json.loads(out.stdout)
    except Exception as e:
        return {"error": str(e)}


def forkwatch_info(binary):
    info = {"path": os.path.relpath(binary, ROOT) if os.path.abspath(binary).startswith(ROOT + "/")
            else binary}
    try:
        h = hashlib.sha256()
        with open(binary, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        info["sha256"] = h.hexdigest()[:16]
    except OSError:
        pass
    rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True)
    if rev.returncode == 0:
        info["git"] = rev.stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True)
        if dirty.stdout.strip():
            info["git"] += " (+uncommitted changes)"
    return info


def machine_info():
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        with open("/etc/debian_version") as f:
            os_name = "Debian " + f.read().strip()
    except OSError:
        os_name = platform.platform()
    return {"nproc": len(os.sched_getaffinity(0)), "kernel": platform.release(),
            "cpu_model": model, "os": os_name}


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def verdict(value, target, ok):
    return f"**{value}** (target {target}): {'met' if ok else '**NOT met**'}"


def build_report(a, meta, results, roll):
    labels = {
        "nginx": f"nginx {meta['nginx'].split('/')[-1]}, `worker_processes 2`, `return 200 \"OK\"`",
        "gunicorn": f"gunicorn {meta['venv'].get('gunicorn')}, `-w 2 -k sync`",
        "eventlet": f"eventlet {meta['venv'].get('eventlet')} `wsgi.server`, 2 forked workers, GreenPool(1000)",
        "forkwatch": f"forkwatch `api`, `--workers 2`" if a.fw_service == ["api"]
                     else f"forkwatch `{shlex.join(a.fw_service)}` (harness test, not `api`)",
    }
    L = []
    L.append(START)
    L.append("## HTTP: requests per second, and a rolling restart under load\n")
    L.append(f"Generated by `bench/http.py` on {meta['date']}. Every server runs 2 worker processes on "
             "127.0.0.1 and answers `GET /healthcheck` with 200 `OK`; the load is "
             f"`wrk -t{a.threads} -c{a.connections} -d{a.duration:g}s --latency`, after a {a.warmup:g} s "
             f"wrk warm-up. {a.reps} round{'s' if a.reps != 1 else ''}, interleaved (one server at a "
             "time, each started fresh and stopped after its run); figures are medians over the "
             "rounds. **wrk runs on the same "
             f"{meta['machine']['nproc']} cores as the servers**, so every server shares the CPUs "
             "with its load generator: the figures compare the servers with each other, they are not "
             "the servers' capacity on dedicated cores.\n")
    L.append(f"Command: `{meta['command']}`\n")
    if meta["skipped"]:
        L.append(f"**forkwatch was not measured: {meta['skipped']}.**\n")
    L.append("| server | requests/s | p99 latency | p50 latency | socket errors | non-2xx/3xx | "
             "server CPU | wrk CPU | requests/s per round |")
    L.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for name in a.servers:
        rs = results.get(name) or []
        if not rs:
            L.append(f"| {labels[name]} | not measured | | | | | | | |")
            continue
        errs = sum(r["errors"] for r in rs)
        kinds = {k: sum(r[k] for r in rs) for k in ("connect", "read", "write", "timeout")}
        err_txt = str(errs) + (" (" + ", ".join(f"{k} {v}" for k, v in kinds.items() if v) + ")" if errs else "")
        wall = [r["seconds"] for r in rs]
        L.append(f"| {labels[name]} | {med([r['rps'] for r in rs]):,.0f} | "
                 f"{med([r['p99_ms'] for r in rs]):.2f} ms | {med([r['p50_ms'] for r in rs]):.2f} ms | "
                 f"{err_txt} | {sum(r['non2xx'] for r in rs)} | "
                 f"{med([r['server_cpu_s'] / w for r, w in zip(rs, wall)]) * 100:.0f} % | "
                 f"{med([r['wrk_cpu_s'] / w for r, w in zip(rs, wall)]) * 100:.0f} % | "
                 + " / ".join(f"{r['rps']:,.0f}{' †' if r['heavy'] else ''}" for r in rs) + " |")
    L.append("")
    L.append("Socket errors are wrk's connect / read / write / timeout counts summed over the rounds "
             "(wrk's request timeout is its default, 2 s); non-2xx/3xx is wrk's \"Non-2xx or 3xx "
             "responses\" (it counts status ≥ 400), summed. CPU is the share of one CPU used during "
             "the measured run (utime + stime from `/proc`, master and workers; wrk's from its "
             f"rusage), so {meta['machine']['nproc'] * 100} % is the whole machine. † marks a round "
             "during which a compiler or build (see the notes) was running too.\n")

    fw = results.get("forkwatch") or []
    L.append("Targets:\n")
    for anchor, target, name in (("nginx", 0.9, "nginx"), ("eventlet", 10.0, "eventlet.wsgi")):
        base = results.get(anchor) or []
        if fw and base:
            ratio = med([r["rps"] for r in fw]) / med([r["rps"] for r in base])
            L.append(f"- forkwatch ÷ {name} requests/s: "
                     + verdict(f"{ratio:.2f}×", f"≥ {target:g}×", ratio >= target))
        else:
            L.append(f"- forkwatch ÷ {name} requests/s (target ≥ {target:g}×): not measured")
    fr = roll.get("forkwatch")
    if fr:
        failed = fr["errors"] + fr["non2xx"]
        L.append("- failed requests during forkwatch's rolling restarts: "
                 + verdict(str(failed), "0", failed == 0))
    else:
        L.append("- failed requests during forkwatch's rolling restarts (target 0): not measured")
    L.append("")

    if roll:
        L.append(f"### Rolling restart under load\n")
        L.append(f"One server at a time, started as above; during one `wrk -t{a.threads} "
                 f"-c{a.connections} -d{a.duration:g}s` run its master gets SIGHUP three times (at "
                 f"{', '.join(f'{f * a.duration:g}' for f in (0.2, 0.5, 0.8))} s). forkwatch's "
                 "`restart_method` is `rolling` (its default): it replaces the workers one at a "
                 "time on the same listening socket. gunicorn's SIGHUP reloads its configuration, "
                 "starts new workers and stops the old ones gracefully. \"New worker pids\" counts "
                 "the worker pids seen in the master's children list (polled every 10 ms) that "
                 "were not there before the first SIGHUP.\n")
        L.append("| server | requests | requests/s | socket errors | non-2xx/3xx | p99 latency | "
                 "SIGHUPs sent at | new worker pids | workers after | /healthcheck after |")
        L.append("| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |")
        for name in ("forkwatch", "gunicorn"):
            r = roll.get(name)
            if not r:
                continue
            kinds = ", ".join(f"{k} {r[k]}" for k in ("connect", "read", "write", "timeout") if r[k])
            L.append(f"| {labels[name]} | {r['requests']:,}{' †' if r['heavy'] else ''} | {r['rps']:,.0f} | {r['errors']}"
                     f"{' (' + kinds + ')' if kinds else ''} | {r['non2xx']} | {r['p99_ms']:.2f} ms | "
                     f"{', '.join(f'{t:.1f}' for t in r['hups_at_s'])} s | {r['new_workers']} | "
                     f"{r['workers_end']}{'' if r['master_alive'] else ' (master exited!)'} | "
                     f"{r['after_status']} |")
        L.append("")

    mi, vv, fwi = meta["machine"], meta["venv"], meta.get("forkwatch")
    L.append("Notes:\n")
    L.append("- Setups: nginx with `access_log off`, `default_type text/plain`, its default listen "
             "backlog (511) and `keepalive_requests` (1000: it closes a keep-alive connection after "
             "1000 requests and wrk reconnects), config and pid/log/temp paths in a temporary "
             "directory, `nginx -c CONF -g 'daemon off;'` as the current user. gunicorn "
             "`--no-control-socket`, backlog 2048 (default); its sync workers close the "
             "connection after every response, so every request is a new TCP connection. "
             "eventlet: `bench/anchors/eventlet_wsgi.py`, one `eventlet.listen` socket (backlog "
             "128) inherited by 2 forked workers, each `eventlet.monkey_patch()` then "
             "`eventlet.wsgi.server(sock, app, custom_pool=GreenPool(1000), keepalive=True, "
             "log_output=False)`. gunicorn and eventlet serve the same WSGI app "
             "(`bench/anchors/http_app.py`). forkwatch: `forkwatch run --headless "
             "--control-socket none --port PORT --listen 127.0.0.1 --workers 2 --db TMP "
             f"{shlex.join(a.fw_service)}` (backlog 128, its default).")
    L.append("- Readiness: the harness waits until the master has 2 children and a raw "
             "`GET /healthcheck` returns 200, then runs the warm-up. Bodies seen: "
             + ", ".join(f"{n} `{results[n][0]['body']}`" for n in a.servers if results.get(n)) + ".")
    stops = [r for rs in results.values() for r in rs] + list(roll.values())
    left = sum(len(r["leftover"]) for r in stops)
    sk = sum(1 for r in stops if r["sigkill"])
    L.append(f"- Every server was stopped with SIGTERM to its master and checked with `pgrep -g` / "
             f"`pgrep -s` on its process group and session plus every descendant pid seen: "
             f"{left} process{'es' if left != 1 else ''} left over, SIGKILL needed "
             f"{sk} time{'s' if sk != 1 else ''} in {len(stops)} stops.")
    heavy = sorted({h for r in stops for h in r["heavy"]})
    L.append(f"- Load average before / after: {meta['load_before']} / {meta['load_after']}. "
             + ("Other CPU-heavy processes seen during the runs: " + ", ".join(f"`{h}`" for h in heavy)
                + " (figures are noisier than on an idle machine)." if heavy
                else "No compiler or build was running during the runs."))
    L.append(f"- Machine: {mi['nproc']} CPUs (nproc), {mi['cpu_model']}, kernel {mi['kernel']}, {mi['os']}.")
    L.append(f"- Versions: {meta['nginx']}; {meta['wrk']}; gunicorn {vv.get('gunicorn')}, "
             f"eventlet {vv.get('eventlet')} (greenlet {vv.get('greenlet')}), Python {vv.get('python')} "
             f"(venv `{os.path.relpath(a.venv, ROOT) if os.path.abspath(a.venv).startswith(ROOT) else a.venv}`); "
             + (f"forkwatch {fwi['path']}, git {fwi.get('git', '?')}, sha256 {fwi.get('sha256', '?')}."
                if fwi else "forkwatch not measured."))
    L.append(f"- Total time: {meta['total_s']:.0f} s. Raw wrk output and server logs: "
             f"`{os.path.relpath(a.logdir, ROOT) if os.path.abspath(a.logdir).startswith(ROOT) else a.logdir}/`.")
    L.append(END)
    return "\n".join(L) + "\n"


# ------------------------------------------------------------------ main ----


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--forkwatch", help="the forkwatch binary (skipped when absent or without `api`)")
    ap.add_argument("--venv", default=os.path.join(HERE, ".venv"),
                    help="virtualenv with gunicorn and eventlet (default bench/.venv)")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks.md"),
                    help="markdown file whose http section is replaced ('-' for stdout only)")
    ap.add_argument("--reps", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument("--duration", type=int, default=10,
                    help="whole seconds of each wrk run (default 10; wrk takes whole seconds)")
    ap.add_argument("--warmup", type=int, default=2, help="seconds of wrk warm-up (default 2; 0: none)")
    ap.add_argument("--connections", type=int, default=64, help="wrk -c (default 64)")
    ap.add_argument("--threads", type=int, default=2, help="wrk -t (default 2)")
    ap.add_argument("--servers", default=",".join(SERVERS),
                    help="comma-separated subset of " + ",".join(SERVERS))
    ap.add_argument("--no-rolling", action="store_true", help="skip the rolling-restart run")
    ap.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    ap.add_argument("--logdir", default=os.path.join(HERE, ".logs", "http"))
    ap.add_argument("--forkwatch-service", default="api",
                    help="what forkwatch runs (default `api`); anything else is only for testing "
                         "the harness and is labelled so in the report, e.g. "
                         "\"-- bench/.venv/bin/python bench/anchors/eventlet_wsgi.py --fd 3\"")
    ap.add_argument("--timeout", type=int, default=3600, help="hard limit for the whole run, seconds")
    a = ap.parse_args()
    a.fw_service = shlex.split(a.forkwatch_service)
    if a.duration < 1 or a.warmup < 0 or a.reps < 1:
        ap.error("--duration must be ≥ 1, --warmup ≥ 0, --reps ≥ 1")
    a.servers = [s.strip() for s in a.servers.split(",") if s.strip()]
    for s in a.servers:
        if s not in SERVERS:
            ap.error(f"unknown server {s!r}")
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (apt-get install wrk; bench/run.sh does it)")
    if "nginx" in a.servers and not os.access(a.nginx, os.X_OK):
        sys.exit("nginx is not installed (apt-get install nginx; bench/run.sh does it)")
    if {"gunicorn", "eventlet"} & set(a.servers) and not os.access(os.path.join(a.venv, "bin", "python"), os.X_OK):
        sys.exit(f"no virtualenv at {a.venv} (bash bench/run.sh creates it)")
    a.venv, a.logdir = os.path.abspath(a.venv), os.path.abspath(a.logdir)
    if a.forkwatch:
        a.forkwatch = os.path.abspath(a.forkwatch)

    skipped = None
    if "forkwatch" in a.servers:
        ok, skipped = forkwatch_usable(a)
        if not ok:
            log(f"forkwatch: SKIPPED: {skipped}")
            a.servers.remove("forkwatch")
    elif a.forkwatch:
        skipped = "left out with --servers"

    def on_alarm(*_):
        raise TimeoutError(f"bench/http.py exceeded --timeout {a.timeout} s")

    def on_term(signo, _):
        raise SystemExit(128 + signo)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.alarm(a.timeout)
    set_subreaper()

    os.makedirs(a.logdir, exist_ok=True)
    for f in os.listdir(a.logdir):
        if f.endswith((".log", ".txt")):
            os.unlink(os.path.join(a.logdir, f))
    a.tmp = tempfile.mkdtemp(prefix="fw-http-")
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": shlex.join(["python3", os.path.relpath(os.path.abspath(sys.argv[0]), os.getcwd())]
                              + sys.argv[1:]),
        "machine": machine_info(),
        "load_before": " ".join(open("/proc/loadavg").read().split()[:3]),
        "nginx": (tool_version([a.nginx, "-v"]).replace("nginx version: ", "")
                  if "nginx" in a.servers else "nginx not measured"),
        "wrk": " ".join(tool_version(["wrk", "-v"]).split()[:2]),
        "venv": venv_versions(a.venv),
        "skipped": skipped,
        "forkwatch": forkwatch_info(a.forkwatch) if "forkwatch" in a.servers else None,
    }
    t_start = time.monotonic()
    results, roll = {n: [] for n in a.servers}, {}
    try:
        for rep in range(1, a.reps + 1):
            for name in a.servers:
                r = measure(a, name, rep, a.logdir)
                results[name].append(r)
                log(f"[round {rep}/{a.reps}] {name:9s} {r['rps']:>10,.0f} req/s  p99 {r['p99_ms']:7.2f} ms  "
                    f"socket errors {r['errors']}  non-2xx/3xx {r['non2xx']}  "
                    f"server CPU {r['server_cpu_s'] / r['seconds'] * 100:.0f} %  wrk CPU "
                    f"{r['wrk_cpu_s'] / r['seconds'] * 100:.0f} %  left over {len(r['leftover'])}")
        if not a.no_rolling:
            for name in ("forkwatch", "gunicorn"):
                if name in a.servers:
                    r = rolling(a, name, a.logdir)
                    roll[name] = r
                    log(f"[rolling] {name:9s} {r['requests']:,} requests, socket errors {r['errors']}, "
                        f"non-2xx/3xx {r['non2xx']}, SIGHUP at {r['hups_at_s']} s, "
                        f"{r['new_workers']} new worker pids, {r['workers_end']} workers after, "
                        f"left over {len(r['leftover'])}")
    except BaseException as e:
        log(f"bench/http.py stopped early ({type(e).__name__}: {e}); stopping the servers")
        raise
    finally:
        signal.alarm(0)
        cleanup_all()
        reap_orphans()
        shutil.rmtree(a.tmp, ignore_errors=True)
    meta["load_after"] = " ".join(open("/proc/loadavg").read().split()[:3])
    meta["total_s"] = time.monotonic() - t_start

    with open(os.path.join(a.logdir, "results.json"), "w") as f:
        json.dump({"meta": meta, "results": results, "rolling": roll}, f, indent=1)
    section = build_report(a, meta, results, roll)
    if a.out != "-":
        replace_section(a.out, START, END, section)
        log(f"wrote the http section of {a.out}")
    print(section)


if __name__ == "__main__":
    main()
