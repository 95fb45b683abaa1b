"""A master that trusts nothing it did not make (issue 18), tried as another local user and a
careless operator would, against a forkwatch binary: one run, each row what was tried and what
held, with the figure that shows it. Writes the "Reliability: trust" section of
docs/benchmarks.md.

  python3 bench/trust.py --forkwatch .build/release/forkwatch

Needs root for the rows that act as another user (uid 65534) or use a cgroup; they say so when
skipped. Every process it starts is killed before it returns.
"""
import argparse
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import replace_section  # noqa: E402

START, END = "<!-- trust:start -->", "<!-- trust:end -->"


def spawn(argv, env=None, log=None):
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=open(log, "w") if log else subprocess.DEVNULL,
                            env={**os.environ, **(env or {})}, start_new_session=True)


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def pgrep(pattern):
    out = subprocess.run(["pgrep", "-x", "-f", pattern], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def ready_count(events):
    try:
        return open(events).read().count('"type":"ready"')
    except FileNotFoundError:
        return 0


class Rows:
    def __init__(self):
        self.rows = []

    def add(self, tried, held, figure):
        self.rows.append((tried, "yes" if held else "**no**", figure))
        print(f"{'held' if held else 'FAILED'}: {tried} — {figure}", flush=True)


def crash_loop(fw, tmp, rows):
    ev = f"{tmp}/crash.events"
    m = spawn([fw, "run", "--headless", "--control-socket", "none", "--events", ev, "--workers", "32",
               "--fork-throttle-interval", "0", "--", "/bin/true"])
    time.sleep(3)
    forks = open(ev).read().count('"type":"fork"')
    t0 = time.monotonic()
    m.send_signal(signal.SIGTERM)
    try:
        code = m.wait(timeout=10)
    except subprocess.TimeoutExpired:
        m.kill()
        code = None
    took = time.monotonic() - t0
    rows.add("32 workers of `/bin/true` with `--fork-throttle-interval 0` for 3 s, then SIGTERM",
             code == 0 and took < 1.0, f"{forks / 3:.0f} forks/s; stopped {took * 1000:.0f} ms after SIGTERM, exit {code}")


def runtime_directory(fw, tmp, rows):
    if os.geteuid() != 0:
        rows.add("a run-time directory made first by another user", False, "skipped: needs root to chown")
        return
    xdg = f"{tmp}/xdg"
    os.makedirs(f"{xdg}/forkwatch", mode=0o700)
    os.chown(f"{xdg}/forkwatch", 65534, 65534)
    p = subprocess.run([fw, "run", "--headless", "idle"], env={**os.environ, "XDG_RUNTIME_DIR": xdg},
                       capture_output=True, text=True, timeout=20)
    line = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ""
    rows.add("the run-time directory created first by uid 65534 (`chown nobody`)",
             p.returncode == 2 and "owned by uid 65534" in line and not os.path.exists(f"{xdg}/forkwatch/forkwatch.sock"),
             f"exit {p.returncode}: `{line[:110]}…`")
    target = pathlib.Path(f"{tmp}/precious")
    target.write_text("keep\n")
    os.symlink(target, f"{tmp}/master.log")
    p = subprocess.run([fw, "run", "--headless", "--control-socket", "none", "--log-file", f"{tmp}/master.log", "idle"],
                       capture_output=True, text=True, timeout=20)
    rows.add("`--log-file` planted as a symbolic link to another file", p.returncode == 2 and target.read_text() == "keep\n",
             f"exit {p.returncode}, the link's target unchanged")


def fake_master(fw, tmp, rows):
    if os.geteuid() != 0:
        rows.add("a fake master of another user at the socket path", False, "skipped: needs root to become uid 65534")
        return
    shared = tempfile.mkdtemp(prefix="fw-fake-")
    os.chmod(shared, 0o777)
    sock, got = f"{shared}/fake.sock", f"{shared}/received"
    script = ("import os,socket,sys\nos.setgid(65534); os.setuid(65534)\n"
              "s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); os.chmod(sys.argv[1],0o777); s.listen(8); s.settimeout(5)\n"
              "try:\n c,_=s.accept(); c.settimeout(2); open(sys.argv[2],'wb').write(c.recv(4096)); c.sendall(b'{\"ok\":true}\\n')\n"
              "except Exception: pass\n")
    fake = subprocess.Popen(["/usr/bin/python3", "-c", script, sock, got])
    wait_for(lambda: os.path.exists(sock))
    p = subprocess.run([fw, "stop", "--socket", sock], capture_output=True, text=True, timeout=20)
    time.sleep(0.2)
    fake.kill()
    fake.wait()
    sent = pathlib.Path(got).read_text() if os.path.exists(got) else ""
    rows.add("`forkwatch stop` against a listener of uid 65534 at the socket path",
             p.returncode != 0 and "runs as uid 65534" in p.stderr and "stop" not in sent,
             f"exit {p.returncode}, nothing sent to it: `{p.stderr.strip()[:90]}…`")
    shutil.rmtree(shared, ignore_errors=True)


def raced_masters(fw, tmp, rows):
    sock = f"{tmp}/race.sock"
    wins, named = 0, 0
    for _ in range(20):
        logs = [f"{tmp}/race-a.log", f"{tmp}/race-b.log"]
        ms = [spawn([fw, "run", "--headless", "--control-socket", sock, "idle"], log=logs[i]) for i in range(2)]
        wait_for(lambda: any(m.poll() is not None for m in ms))
        time.sleep(0.2)
        alive = [m for m in ms if m.poll() is None]
        lost = [i for i, m in enumerate(ms) if m.poll() is not None]
        if len(alive) == 1 and len(lost) == 1 and ms[lost[0]].returncode == 1:
            wins += 1
            if f"another master (pid {alive[0].pid})" in open(logs[lost[0]]).read():
                named += 1
        for m in ms:
            if m.poll() is None:
                m.send_signal(signal.SIGTERM)
                m.wait(timeout=10)
    rows.add("two masters started together on one socket path, 20 times", wins == 20 and named == 20,
             f"one winner in {wins}/20; the loser exited 1 naming the winner's pid in {named}/20")


def bounds(fw, tmp, rows):
    p = subprocess.run([fw, "run", "--headless", "--control-socket", "none", "--workers", "2147483648", "idle"],
                       capture_output=True, text=True, timeout=20)
    q = subprocess.run([fw, "run", "--headless", "--control-socket", "none", "--max-workers", "4", "--workers", "5", "idle"],
                       capture_output=True, text=True, timeout=20)
    rows.add("`--workers 2147483648`; `--workers 5 --max-workers 4`", p.returncode == 2 and q.returncode == 2,
             f"exit {p.returncode}: `{p.stderr.strip()[:60]}`; exit {q.returncode}")


def orphans(fw, tmp, rows, cgroup=None):
    digits = str(time.time_ns())[-8:]
    pattern = f"sleep 1000.{digits}"
    sock = f"{tmp}/orphans{'-cg' if cgroup else ''}.sock"
    command = f"{'setsid ' if cgroup else ''}sleep 1000.{digits} & wait"
    extra = ["--workers-cgroup", cgroup] if cgroup else []
    base = [fw, "run", "--headless", "--control-socket", sock] + extra
    ev = f"{tmp}/orphans.events"
    m = spawn(base + ["--events", ev, "--workers", "2", "--", "/bin/sh", "-c", command])
    wait_for(lambda: len(pgrep(pattern.replace(".", "\\."))) == 2)
    m.send_signal(signal.SIGTERM)
    m.wait(timeout=20)
    wait_for(lambda: not pgrep(pattern.replace(".", "\\.")), 2)
    after_stop = len(pgrep(pattern.replace(".", "\\.")))
    m = spawn(base + ["--workers", "2", "--", "/bin/sh", "-c", command])
    wait_for(lambda: len(pgrep(pattern.replace(".", "\\."))) == 2)
    m.kill()
    m.wait()
    time.sleep(0.3)
    after_kill = len(pgrep(pattern.replace(".", "\\.")))
    ev2 = f"{tmp}/next.events"
    n = spawn(base + ["--events", ev2, "idle"])
    wait_for(lambda: ready_count(ev2) >= 1)
    wait_for(lambda: not pgrep(pattern.replace(".", "\\.")), 2)
    after_next = len(pgrep(pattern.replace(".", "\\.")))
    n.send_signal(signal.SIGTERM)
    n.wait(timeout=20)
    for pid in pgrep(pattern.replace(".", "\\.")):
        os.kill(pid, signal.SIGKILL)
    what = ("a worker's `setsid sleep` child (out of its process group), with `--workers-cgroup`" if cgroup
            else "a worker's `sleep` child")
    rows.add(f"{what}: graceful stop; master SIGKILLed, then the next master on the socket",
             after_stop == 0 and after_next == 0,
             f"left after the stop: {after_stop}; after the SIGKILL: {after_kill}; after the next master started: {after_next}")



def replay_big(fw, tmp, rows):
    """A 100 MiB events file replayed in tmux: first frame, peak RSS, `q` latency, exit."""
    if not shutil.which("tmux"):
        rows.add("`forkwatch replay` of a 100 MiB events file", False, "skipped: no tmux")
        return
    path = f"{tmp}/big.events"
    head = ('{"v":1,"type":"master_started","wall":1700000000.0,"mono":100.0,"pid":4211,'
            '"services":[{"name":"idle","workers":2,"builtin":"idle"}],"config":""}\n')
    with open(path, "w") as f:
        f.write(head)
        i, size = 0, len(head)
        while size < 100 << 20:
            pid = 5000 + i % 30000
            lines = (f'{{"v":1,"type":"fork","wall":{1700000000 + i * 1e-4:.6f},"mono":{100 + i * 1e-4:.6f},"pid":{pid},'
                     f'"service":"idle","reason":"respawn","generation":1}}\n'
                     f'{{"v":1,"type":"exit","wall":{1700000000 + i * 1e-4 + 5e-5:.6f},"mono":{100 + i * 1e-4 + 5e-5:.6f},'
                     f'"pid":{pid},"service":"idle","status":{{"kind":"exited","code":1}},"raw_status":256,"uptime":0.00005,'
                     f'"expected":false}}\n')
            f.write(lines)
            size += len(lines)
            i += 1
    mib = os.path.getsize(path) / (1 << 20)
    session = f"fwtrust{os.getpid()}"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "30", "bash --norc"], check=True)
    try:
        subprocess.run(["tmux", "send-keys", "-t", session, f"{fw} replay {path}; echo REPLAY-DONE $?", "Enter"])
        t0 = time.monotonic()
        shown = wait_for(lambda: "WORKERS" in subprocess.run(["tmux", "capture-pane", "-p", "-t", session],
                                                             capture_output=True, text=True).stdout, 20)
        first = time.monotonic() - t0
        time.sleep(2)
        pid = subprocess.run(["pgrep", "-f", f"replay {path}"], capture_output=True, text=True).stdout.split()
        rss = 0
        if pid:
            for line in open(f"/proc/{pid[0]}/status"):
                if line.startswith("VmHWM:"):
                    rss = int(line.split()[1]) / 1024
        t1 = time.monotonic()
        subprocess.run(["tmux", "send-keys", "-t", session, "q"])
        done = wait_for(lambda: "REPLAY-DONE" in subprocess.run(["tmux", "capture-pane", "-p", "-t", session],
                                                                capture_output=True, text=True).stdout, 10)
        quit_s = time.monotonic() - t1
        out = subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout
        code = out.split("REPLAY-DONE")[-1].split()[0] if "REPLAY-DONE" in out else "?"
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    rows.add(f"`forkwatch replay` of a {mib:.0f} MiB events file ({i:,} fork/exit pairs) in tmux, then `q`",
             shown and done and code == "0" and quit_s < 1,
             f"first frame {first:.2f} s, peak RSS {rss:.0f} MiB, `q` answered in {quit_s:.2f} s, exit {code}")


def http_fd_limit(fw, tmp, rows):
    """An api worker under `ulimit -n 96` with 150 connections open: CPU while at the limit,
    time to serve once they close."""
    import socket
    cfg = f"{tmp}/api.yaml"
    pathlib.Path(cfg).write_text(f"database: {tmp}/api.sqlite\nservices:\n  api:\n    workers: 1\n    listen: 127.0.0.1\n    port: 0\n")
    ev, log = f"{tmp}/api.events", f"{tmp}/api.log"
    m = subprocess.Popen(["/bin/sh", "-c", 'ulimit -n 96 && exec "$0" run --headless --control-socket none --events "$1" --config "$2"',
                          fw, ev, cfg], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(log, "w"),
                         start_new_session=True)
    try:
        wait_for(lambda: ready_count(ev) >= 1, 20)
        text = open(ev).read()
        port = int(text.split('"type":"listening"')[1].split('"address":"')[1].split('"')[0].rsplit(":", 1)[1])
        worker = int(text.split('"type":"ready"')[1].split('"pid":')[1].split(",")[0])
        conns = []
        for _ in range(150):
            c = socket.create_connection(("127.0.0.1", port))
            conns.append(c)
        wait_for(lambda: "cannot accept" in open(log).read(), 10)
        waiting = socket.create_connection(("127.0.0.1", port))
        waiting.sendall(b"GET /healthcheck HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")

        def ticks():
            f = open(f"/proc/{worker}/stat").read().rsplit(")", 1)[1].split()
            return int(f[11]) + int(f[12])
        t0, c0 = time.monotonic(), ticks()
        time.sleep(3)
        cpu = (ticks() - c0) / os.sysconf("SC_CLK_TCK") / (time.monotonic() - t0) * 100
        lines = open(log).read().count("cannot accept")
        freed = time.monotonic()
        for c in conns:
            c.close()
        waiting.settimeout(5)
        try:
            answer = waiting.recv(100)
        except OSError:
            answer = b""
        served = time.monotonic() - freed
        ok = answer.startswith(b"HTTP/1.1 200")
        rows.add("an api worker under `ulimit -n 96` with 150 connections open, then closed",
                 ok and cpu < 10 and served < 1,
                 f"worker CPU {cpu:.1f} % over 3 s at the limit, {lines} back-off log lines; a queued request served "
                 f"{served * 1000:.0f} ms after the connections closed")
    finally:
        m.send_signal(signal.SIGTERM)
        m.wait(timeout=20)


def storage(fw, tmp, rows):
    db = f"{tmp}/db/services.sqlite"
    os.makedirs(os.path.dirname(db))
    ev = f"{tmp}/sched.events"
    m = spawn([fw, "run", "--headless", "--control-socket", "none", "--events", ev, "--report-interval", "0.2",
               "--db", db, "--workers", "1", "scheduler"])
    try:
        wait_for(lambda: '"ok":true' in (open(ev).read() if os.path.exists(ev) else ""), 20)
        os.unlink(db)
        t0 = time.monotonic()
        noticed = wait_for(lambda: '"type":"heartbeat"' in open(ev).read() and "deleted" in open(ev).read(), 10)
        took = time.monotonic() - t0
    finally:
        m.send_signal(signal.SIGTERM)
        m.wait(timeout=20)
    p = subprocess.run([fw, "services", "list", "--db", f"{tmp}/typo/dir/x.sqlite"], capture_output=True, text=True)
    created = os.path.exists(f"{tmp}/typo")
    rows.add("the services database unlinked under a running scheduler; `services list --db typo/dir/x.sqlite`",
             noticed and p.returncode == 1 and not created,
             f"a failed heartbeat naming the deleted file {took:.2f} s after the unlink; the list: exit {p.returncode}, "
             f"nothing created")

def cgroup_root():
    for line in open("/proc/self/mountinfo"):
        if " - cgroup2 " in line:
            mount = line.split()[4]
            probe = f"{mount}/forkwatch-probe-{os.getpid()}"
            try:
                os.mkdir(probe)
            except OSError:
                continue
            ok = os.path.exists(f"{probe}/cgroup.kill")
            os.rmdir(probe)
            if ok:
                return mount
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--forkwatch", required=True)
    ap.add_argument("--out", default="docs/benchmarks.md")
    ap.add_argument("--command", default="python3 bench/trust.py --forkwatch .build/release/forkwatch")
    a = ap.parse_args()
    fw = os.path.abspath(a.forkwatch)
    tmp = tempfile.mkdtemp(prefix="fw-trust-")
    os.chmod(tmp, 0o700)
    rows = Rows()
    try:
        crash_loop(fw, tmp, rows)
        runtime_directory(fw, tmp, rows)
        fake_master(fw, tmp, rows)
        raced_masters(fw, tmp, rows)
        bounds(fw, tmp, rows)
        replay_big(fw, tmp, rows)
        http_fd_limit(fw, tmp, rows)
        storage(fw, tmp, rows)
        orphans(fw, tmp, rows)
        root = cgroup_root()
        if root:
            cg = f"{root}/forkwatch-trust-{os.getpid()}"
            try:
                orphans(fw, tmp, rows, cgroup=cg)
            finally:
                wait_for(lambda: not open(f"{cg}/cgroup.procs").read().strip() if os.path.exists(cg) else True, 2)
                if os.path.exists(cg):
                    os.rmdir(cg)
        else:
            rows.add("the same with a cgroup", False, "skipped: no writable cgroup v2 with cgroup.kill here")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    table = "\n".join(f"| {t} | {h} | {f} |" for t, h, f in rows.rows)
    section = f"""{START}
## Reliability: a master that trusts nothing it did not make

One run of `{a.command}` against the release build, as root (the rows that act as uid 65534
need it). Each row is a hostile or careless thing done to a running master, whether the master
held, and the figure that shows it.

| what was tried | held | figure |
| --- | --- | --- |
{table}
{END}
"""
    replace_section(a.out, START, END, section)
    print(f"wrote {a.out}")
    return 0 if all(h == "yes" for _, h, _ in rows.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
