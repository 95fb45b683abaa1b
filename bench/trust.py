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
