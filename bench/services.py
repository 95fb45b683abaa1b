#!/usr/bin/env python3
"""Services-table figures (issue 4), appended to docs/benchmarks.md.

  python3 bench/services.py --forkwatch .build/release/forkwatch --bench .build/release/forkwatch-bench

- Heartbeat writes per second with 16 concurrent workers on one SQLite file: forkwatch's
  `scheduler` workers with report_interval 0.001 s (each beat is nova's UPDATE report_count + 1,
  last_seen_up), beside 16 Python processes running the same statement with the stdlib sqlite3
  module (WAL, synchronous=NORMAL, busy timeout), as nova's DB driver would through SQLAlchemy minus the ORM.
  Both count rows' report_count over 5 s; lost beats would show as a gap with the events.
- The periodic runner's cost per idle tick: `PeriodicSchedule.runDue` when nothing is due,
  timed by forkwatch-bench (pure Swift; a worker pays this once per pass).
"""
import argparse, json, os, signal, sqlite3, subprocess, tempfile, time, multiprocessing
from report import replace_section

START, END = "<!-- services-bench:start -->", "<!-- services-bench:end -->"
SECONDS = 5.0


def count(db):
    con = sqlite3.connect(db, timeout=30)
    try:
        row = con.execute("SELECT SUM(report_count) FROM services WHERE deleted = 0").fetchone()
        return row[0] or 0
    finally:
        con.close()


def forkwatch_rate(binary, tmp):
    db = f"{tmp}/fw.sqlite"
    log = open(f"{tmp}/fw.log", "w")
    events = f"{tmp}/fw.events"
    proc = subprocess.Popen([binary, "run", "--headless", "--control-socket", "none", "--events", events,
                             "--workers", "16", "--report-interval", "0.001", "--periodic-fuzzy-delay", "0",
                             "--db", db, "scheduler"], stdout=log, stderr=log, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if os.path.exists(db) and count_safe(db) > 0:
                break
            time.sleep(0.05)
        time.sleep(1)
        c0, t0 = count(db), time.monotonic()
        time.sleep(SECONDS)
        c1, t1 = count(db), time.monotonic()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    ok = failed = 0
    with open(events) as f:
        for line in f:
            if '"type":"heartbeat"' in line:
                e = json.loads(line)
                if e.get("ok"):
                    ok += 1
                else:
                    failed += 1
    final = count(db)
    return (c1 - c0) / (t1 - t0), ok, failed, final


def count_safe(db):
    try:
        return count(db)
    except sqlite3.Error:
        return 0


def python_worker(db, stop_at, out):
    con = sqlite3.connect(db, timeout=10, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")  # the same durability setting forkwatch uses
    n = 0
    while time.monotonic() < stop_at:
        con.execute("UPDATE services SET report_count = report_count + 1, last_seen_up = datetime('now'), "
                    "updated_at = datetime('now') WHERE id = 1 AND deleted = 0")
        n += 1
    out.put(n)


def python_rate(tmp):
    db = f"{tmp}/py.sqlite"
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE services (id INTEGER PRIMARY KEY, report_count INTEGER NOT NULL DEFAULT 0, "
                "last_seen_up DATETIME, updated_at DATETIME, deleted INTEGER NOT NULL DEFAULT 0)")
    con.execute("INSERT INTO services (id) VALUES (1)")
    con.close()
    out = multiprocessing.Queue()
    start = time.monotonic() + 0.5
    stop_at = start + SECONDS
    procs = [multiprocessing.Process(target=python_worker, args=(db, stop_at, out)) for _ in range(16)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    sent = sum(out.get() for _ in procs)
    return count(db) / SECONDS, sent, count(db)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--forkwatch", required=True)
    ap.add_argument("--bench", required=True)
    ap.add_argument("--out", default="docs/benchmarks.md")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="fw-services-")
    fw_rate, fw_ok, fw_failed, fw_final = forkwatch_rate(a.forkwatch, tmp)
    py_rate, py_sent, py_final = python_rate(tmp)
    tick = json.loads(subprocess.run([a.bench, "periodic"], capture_output=True, text=True, timeout=120).stdout.strip().splitlines()[-1])
    capacity = json.loads(subprocess.run([a.bench, "heartbeat", "--db", f"{tmp}/capacity.sqlite", "--workers", "16",
                                          "--seconds", str(SECONDS)], capture_output=True, text=True, timeout=120).stdout.strip().splitlines()[-1])
    section = f"""{START}
## Services table and periodic runner

Command: `python3 bench/services.py --forkwatch .build/release/forkwatch --bench .build/release/forkwatch-bench`
(run by `bash bench/run.sh`), same machine and run as above.

| figure | forkwatch | Python sqlite3 (same statement) | ratio |
| --- | ---: | ---: | ---: |
| heartbeat writes/s, 16 processes beating as fast as they can, one SQLite file (WAL) | {capacity['writes_per_s']:,.0f} | {py_rate:,.0f} | {capacity['writes_per_s'] / py_rate:.2f}× |
| beats lost in that run (sent − report_count) | {capacity['sent'] - capacity['counted']} of {capacity['sent']} | {py_sent - py_final} of {py_sent} | |
| real workers: 16 `scheduler` workers, report_interval 0.001 s, writes/s | {fw_rate:,.0f} | | |
| real workers: beats lost (ok heartbeat events − report_count) | {fw_ok - fw_final} of {fw_ok} ({fw_failed} failed and reported) | | |
| periodic runner, one idle tick (`runDue`, 3 tasks, nothing due) | {tick['ns_per_tick']:.0f} ns | | |

The capacity row is `forkwatch-bench heartbeat`: 16 forked processes calling `ServicesStore.beat`
(GRDB, one `UPDATE … RETURNING report_count` in autocommit) in a loop, against 16 `multiprocessing`
processes running the same UPDATE with the stdlib `sqlite3` module; both WAL with
`synchronous=NORMAL`. The real-worker rows are the demo `scheduler` run by the master with
`report_interval` 0.001 s: each beat also waits for its interval (poll granularity: 1 ms) and sends
a status line the master turns into a `heartbeat` event, so that rate is bounded by the interval,
not by SQLite.
{END}
"""
    replace_section(a.out, START, END, section)
    print(section)


if __name__ == "__main__":
    main()
