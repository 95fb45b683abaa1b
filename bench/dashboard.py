#!/usr/bin/env python3
"""Dashboard and control-socket figures (issue 3), appended to docs/benchmarks.md.

  python3 bench/dashboard.py --forkwatch .build/release/forkwatch --bench .build/release/forkwatch-bench

- 1,000 idle workers: time to all forked (from /proc), master RSS, master CPU over 10 s with no
  subscriber and with one subscriber (stats sampled every second for 1,001 processes).
- The dashboard's frame time with those 1,000 workers (forkwatch-bench renders the real model
  fed from the live master, at 200x60 and 80x24).
- Event throughput to one subscriber: a crash loop of 8 workers of /bin/true with the throttle
  off, read over the control socket for 5 s.
Stdlib only; every process started is killed and reaped.
"""
import argparse, json, os, signal, socket, subprocess, sys, tempfile, time
from report import replace_section

CLK_TCK = os.sysconf("SC_CLK_TCK")
START, END = "<!-- dashboard-bench:start -->", "<!-- dashboard-bench:end -->"


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return f.read().split()
    except OSError:
        return []


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_percent(pid, seconds):
    t0, w0 = cpu_ticks(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_ticks(pid) - t0) / CLK_TCK / (time.monotonic() - w0) * 100


class Master:
    def __init__(self, binary, args, sock):
        self.log = tempfile.NamedTemporaryFile(prefix="fw-bench-", suffix=".log", delete=False)
        self.sock = sock
        self.start = time.monotonic()
        self.proc = subprocess.Popen([binary, "run", "--headless", "--control-socket", sock] + args,
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, start_new_session=True)

    def wait_children(self, n, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(children(self.proc.pid)) >= n:
                return time.monotonic() - self.start
            time.sleep(0.001)
        raise RuntimeError(f"only {len(children(self.proc.pid))} of {n} workers after {timeout} s")

    def stop(self, timeout=60):
        if self.proc.poll() is None:
            t0 = time.monotonic()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
                return time.monotonic() - t0
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return None


def subscriber(path):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.sendall(b'{"op":"subscribe"}\n')
    s.setblocking(False)
    return s


def drain(s, seconds):
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            n += chunk.count(b"\n")
        except BlockingIOError:
            time.sleep(0.01)
    return n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--forkwatch", required=True)
    ap.add_argument("--bench", required=True)
    ap.add_argument("--workers", type=int, default=1000)
    ap.add_argument("--out", default="docs/benchmarks.md")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="fw-dash-")
    results = {}
    m = Master(a.forkwatch, ["--workers", str(a.workers), "idle"], f"{tmp}/big.sock")
    try:
        results["spawn_s"] = m.wait_children(a.workers)
        time.sleep(2)
        results["rss_kib"] = rss_kib(m.proc.pid)
        results["cpu_idle"] = cpu_percent(m.proc.pid, 10)
        sub = subscriber(m.sock)
        drain(sub, 1)  # snapshot
        t0, w0 = cpu_ticks(m.proc.pid), time.monotonic()
        lines = drain(sub, 10)
        results["cpu_watched"] = (cpu_ticks(m.proc.pid) - t0) / CLK_TCK / (time.monotonic() - w0) * 100
        results["stats_lines"] = lines
        sub.close()
        for w, h in ((200, 60), (80, 24)):
            out = subprocess.run([a.bench, "frames", "--socket", m.sock, "--width", str(w), "--height", str(h),
                                  "--frames", "200"], capture_output=True, text=True, timeout=120)
            results[f"frame_{w}x{h}"] = json.loads(out.stdout.strip().splitlines()[-1])
        results["stop_s"] = m.stop()
    finally:
        m.stop()
    loop = Master(a.forkwatch, ["--workers", "8", "--fork-throttle-interval", "0", "--crash-loop-threshold", "1000000",
                                "--", "/bin/true"], f"{tmp}/loop.sock")
    try:
        loop.wait_children(1, 10)
        time.sleep(0.5)
        out = subprocess.run([a.bench, "throughput", "--socket", loop.sock, "--seconds", "5"],
                             capture_output=True, text=True, timeout=60)
        results["throughput"] = json.loads(out.stdout.strip().splitlines()[-1])
        results["loop_cpu"] = cpu_percent(loop.proc.pid, 3)
    finally:
        loop.stop()

    f200, f80, th = results["frame_200x60"], results["frame_80x24"], results["throughput"]
    section = f"""{START}
## Dashboard and control socket ({a.workers} workers)

Command: `python3 bench/dashboard.py --forkwatch .build/release/forkwatch --bench .build/release/forkwatch-bench`
(run by `bash bench/run.sh`), same machine and run as above.

| figure | value | target |
| --- | ---: | --- |
| {a.workers} idle workers forked (from launch, seen in /proc) | {results['spawn_s']*1000:.0f} ms | |
| master RSS with {a.workers} workers | {results['rss_kib']/1024:.1f} MiB | |
| master CPU, {a.workers} workers, nobody watching (10 s) | {results['cpu_idle']:.2f} % | 0 |
| master CPU, {a.workers} workers, one subscriber: /proc sampled for {a.workers + 1} processes every second (10 s) | {results['cpu_watched']:.2f} % | ≤ 3 % |
| dashboard frame, 200×60, {a.workers} workers: p50 / p99 / max | {f200['p50_ms']:.2f} / {f200['p99_ms']:.2f} / {f200['max_ms']:.2f} ms | ≤ 5 ms |
| dashboard frame, 80×24, {a.workers} workers: p50 / p99 / max | {f80['p50_ms']:.2f} / {f80['p99_ms']:.2f} / {f80['max_ms']:.2f} ms | ≤ 5 ms |
| one event applied to the dashboard model (mean over {f200['events_applied']}) | {f200['apply_mean_ms']:.3f} ms | |
| graceful stop of {a.workers} workers (SIGTERM → master gone) | {(results['stop_s'] or 0)*1000:.0f} ms | |
| events delivered to one subscriber (crash loop: 8 × /bin/true, throttle off) | {th['events_per_s']:,.0f} events/s ({th['bytes_per_s']/1e6:.1f} MB/s) | |
| master CPU during that crash loop | {results['loop_cpu']:.0f} % | |

Frame time is `DashboardRenderer.render` on the real model (fed the live master's snapshot and 2 s of
its events), measured by `forkwatch-bench frames`; drawing to the terminal is on top of it and only
touches the rows that changed.
{END}
"""
    replace_section(a.out, START, END, section)
    print(section)


if __name__ == "__main__":
    main()
