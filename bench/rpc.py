#!/usr/bin/env python3
"""RPC throughput and latency, written into docs/benchmarks.md.

  python3 bench/rpc.py --forkwatch .build/release/forkwatch --bench .build/release/forkwatch-bench \\
      --out docs/benchmarks.md [--casts 10000 --calls 2000 --workers 4]

In one run, the same worker count everywhere (4 server processes):
  forkwatch, embedded transport (sqlite:)  forkwatch run … scheduler ×4; client: forkwatch-bench
  forkwatch, RabbitMQ                      the same with transport_url: rabbit://… on a private node
  oslo.messaging 18.x, RabbitMQ            4 × `omrpc.py serve` (Python servers) and `omrpc.py bench-*`
                                           (Python client), same node

casts/s: N casts sent one by one, until every one was handled (the topic queue is empty; for
oslo, the servers' own counters); call p50/p99: N sequential calls of `echo`.
Broker restarts (--restarts N, default 5; --restart-only to time just these): forkwatch's and
oslo.messaging's servers on one node, the node stopped and started again on the same port N times;
restart_probe.py times, from the node answering again, the first call each topic serves.
The RabbitMQ node and the venv come from Tests/Fixtures/rabbitmq (node.sh, venv.sh, omrpc.py).
Stdlib only.
"""
import argparse
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FIX = os.path.join(ROOT, "Tests", "Fixtures", "rabbitmq")
sys.path.insert(0, HERE)
from report import replace_section  # noqa: E402


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, **kw)


def start_forkwatch(binary, workdir, url, workers):
    config = os.path.join(workdir, "forkwatch-%d.yaml" % time.monotonic_ns())
    with open(config, "w") as f:
        f.write("database: %s/db.sqlite\nperiodic_enable: false\n" % workdir)
        if url:
            f.write("transport_url: %s\n" % url)
        f.write("services:\n  scheduler:\n    workers: %d\n" % workers)
    events = config + ".events"
    log = open(config + ".log", "w")
    proc = subprocess.Popen([binary, "run", "--headless", "--control-socket", "none", "--events", events, "--config", config],
                            stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            ready = sum(1 for line in open(events) if '"type":"ready"' in line)
        except FileNotFoundError:
            ready = 0
        if ready >= workers:
            return proc
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("forkwatch did not start %d workers (log %s)" % (workers, log.name))


def stop(proc):
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def bench_forkwatch(args, workdir, url):
    proc = start_forkwatch(args.forkwatch, workdir, url, args.workers)
    try:
        common = ["--db", os.path.join(workdir, "db.sqlite"), "--transport-url", url or "sqlite:"]
        casts = json.loads(run([args.bench, "rpc-casts", "--count", str(args.casts)] + common, timeout=600).stdout)
        calls = json.loads(run([args.bench, "rpc-calls", "--count", str(args.calls)] + common, timeout=600).stdout)
    finally:
        stop(proc)
    return {"casts_per_s": casts["handled_per_s"], "sent_per_s": casts["sent_per_s"], "p50_ms": calls["p50_ms"],
            "p99_ms": calls["p99_ms"], "calls_per_s": calls["calls_per_s"]}


def bench_oslo(args, python, url, workdir):
    servers = []
    try:
        for index in range(args.workers):
            log = open(os.path.join(workdir, "omrpc-%d.log" % index), "w")
            servers.append(subprocess.Popen([python, os.path.join(FIX, "omrpc.py"), "serve", url, "scheduler", "py%d" % index],
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if all("READY" in open(os.path.join(workdir, "omrpc-%d.log" % i)).read() for i in range(args.workers)):
                break
            time.sleep(0.1)
        names = ["py%d" % i for i in range(args.workers)]
        cast = run([python, os.path.join(FIX, "omrpc.py"), "bench-cast", url, "scheduler", str(args.casts), ",".join(names)], timeout=900)
        if not cast.stdout.strip():
            raise SystemExit("omrpc bench-cast: exit %d: %s" % (cast.returncode, cast.stderr[-2000:]))
        casts = json.loads(cast.stdout.strip().splitlines()[-1])
        call = run([python, os.path.join(FIX, "omrpc.py"), "bench-call", url, "scheduler", str(args.calls)], timeout=900)
        if not call.stdout.strip():
            raise SystemExit("omrpc bench-call: exit %d: %s" % (call.returncode, call.stderr[-2000:]))
        calls = json.loads(call.stdout.strip().splitlines()[-1])
    finally:
        for proc in servers:
            stop(proc)
    return {"casts_per_s": casts.get("handled_per_s"), "sent_per_s": casts.get("casts_per_s"), "p50_ms": calls["p50_ms"],
            "p99_ms": calls["p99_ms"], "calls_per_s": calls["calls_per_s"]}


def node_start(directory, port=None):
    """Starts a private node (on `port` when given): its rabbit:// URL and the seconds node.sh took
    until the node answered AMQP."""
    env = dict(os.environ)
    if port:
        env["AMQP_PORT"] = str(port)
    started = run(["bash", os.path.join(FIX, "node.sh"), "start", directory], timeout=120, env=env)
    if started.returncode != 0:
        raise SystemExit("node.sh start: %s" % started.stderr.strip()[-2000:])
    amqp = started.stdout.strip().splitlines()[-1]
    return "rabbit://" + amqp[len("amqp://"):]


def bench_restart(args, python, workdir):
    """forkwatch's and oslo.messaging's servers on one node; the node stopped and started again on
    the same port, `args.restarts` times; each time, restart_probe.py times both from the node
    answering again to the first call served. Lists of seconds, forkwatch's and oslo's."""
    node = os.path.join(workdir, "rmq-restart-0")
    url = node_start(node)
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    proc, servers = None, []
    figures = {"forkwatch": [], "oslo": []}
    try:
        proc = start_forkwatch(args.forkwatch, workdir, url, args.workers)
        for index in range(args.workers):
            log = open(os.path.join(workdir, "omrpc-restart-%d.log" % index), "w")
            servers.append(subprocess.Popen([python, os.path.join(FIX, "omrpc.py"), "serve", url, "pyrestart", "pr%d" % index],
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(
                "READY" in open(os.path.join(workdir, "omrpc-restart-%d.log" % i)).read() for i in range(args.workers)):
            time.sleep(0.1)
        for restart in range(1, args.restarts + 1):
            run(["bash", os.path.join(FIX, "node.sh"), "stop", node], timeout=60)
            probe = subprocess.Popen([python, os.path.join(HERE, "restart_probe.py"), str(port), "scheduler", "pyrestart"],
                                     stdout=subprocess.PIPE, text=True)
            node = os.path.join(workdir, "rmq-restart-%d" % restart)
            node_start(node, port)
            out, _ = probe.communicate(timeout=120)
            served = json.loads(out.strip().splitlines()[-1])["served"]
            print("restart %d: forkwatch %s s, oslo.messaging %s s" % (restart, served["scheduler"], served["pyrestart"]),
                  file=sys.stderr)
            figures["forkwatch"].append(served["scheduler"])
            figures["oslo"].append(served["pyrestart"])
    finally:
        if proc:
            stop(proc)
        for server in servers:
            stop(server)
        run(["bash", os.path.join(FIX, "node.sh"), "stop", node], timeout=60)
    return figures


def restart_section(figures, args):
    def median(values):
        values = sorted(v for v in values if v is not None)
        if not values:
            return None
        middle = len(values) // 2
        return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2

    def cells(values):
        return ", ".join("%.2f" % v if v is not None else "not served in 60 s" for v in values)

    def mean(values):
        values = [v for v in values if v is not None]
        return sum(values) / len(values) if values else None

    def shown(value):
        return "%.2f s" % value if value is not None else "n/a"

    fw, om = median(figures["forkwatch"]), median(figures["oslo"])
    pairs = [(a, b) for a, b in zip(figures["forkwatch"], figures["oslo"]) if a is not None and b is not None]
    first = sum(1 for a, b in pairs if a < b)
    lines = [
        "<!-- rpc-restart:start -->",
        "### Recovery from a broker restart",
        "",
        "Generated by `bench/rpc.py` on %s UTC. %d forkwatch `scheduler` workers and %d oslo.messaging servers (`omrpc.py serve`, "
        "topic `pyrestart`) on one private node; the node is stopped (`node.sh stop`: SIGTERM, a graceful shutdown) and a new one "
        "started on the same port, %d times in a row. `bench/restart_probe.py` (py-amqp) connects every 50 ms until the new node "
        "answers, then calls `echo` on both topics every 100 ms (each call expiring after 1 s; one sent before the servers declared "
        "their queues again is dropped) and times the first reply of each from the node's return. Both reconnect on oslo's "
        "defaults (`rabbit_retry_interval` 1, `rabbit_retry_backoff` 2, `rabbit_interval_max` 30, `kombu_reconnect_delay` 1 s) in "
        "rounds of the listener's 5 s poll; each oslo server has one listener connection, each forkwatch worker 4 consumer "
        "connections at 4 phases of the round (docs/rpc.md). The servers are idle before each restart."
        % (datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M"), args.workers, args.workers, args.restarts),
        "",
        "Command: `python3 bench/rpc.py --restart-only --restarts %d --forkwatch %s`%s"
        % (args.restarts, args.forkwatch_shown,
           " (a debug build: reconnecting waits on the schedule, not on the CPU)" if "/debug/" in args.forkwatch else ""),
        "",
        "| servers | seconds from the broker's return to the first call served, each restart | median | mean | worst |",
        "| --- | --- | ---: | ---: | ---: |",
        "| forkwatch | %s | %s | %s | %s |" % (cells(figures["forkwatch"]), shown(fw), shown(mean(figures["forkwatch"])),
                                            shown(max([v for v in figures["forkwatch"] if v is not None], default=None))),
        "| oslo.messaging %s | %s | %s | %s | %s |" % (args.oslo_version or "?", cells(figures["oslo"]), shown(om), shown(mean(figures["oslo"])),
                                                     shown(max([v for v in figures["oslo"] if v is not None], default=None))),
        "",
    ]
    if fw is not None and om:
        lines += ["forkwatch's recovery against oslo.messaging's: median **%.2f×**, mean **%.2f×**; forkwatch served first after %d of %d restarts."
                  % (fw / om, mean(figures["forkwatch"]) / mean(figures["oslo"]), first, len(pairs)), ""]
    lines.append("<!-- rpc-restart:end -->")
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--forkwatch", default=os.path.join(ROOT, ".build/release/forkwatch"))
    p.add_argument("--bench", default=os.path.join(ROOT, ".build/release/forkwatch-bench"))
    p.add_argument("--out", default=os.path.join(ROOT, "docs/benchmarks.md"))
    p.add_argument("--casts", type=int, default=10000)
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--restarts", type=int, default=5, help="broker restarts timed (forkwatch and oslo.messaging side by side)")
    p.add_argument("--restart-only", action="store_true",
                   help="time the broker restarts only: rewrite just that part of the RPC section")
    args = p.parse_args()
    args.forkwatch_shown = os.path.relpath(args.forkwatch, ROOT) if args.forkwatch.startswith(ROOT) else args.forkwatch
    args.oslo_version = None
    if args.restart_only:
        workdir = tempfile.mkdtemp(prefix="forkwatch-rpcbench-")
        venv = run(["bash", os.path.join(FIX, "venv.sh"), os.path.join(tempfile.gettempdir(), "forkwatch-omvenv")], timeout=600)
        python = venv.stdout.strip().splitlines()[-1]
        args.oslo_version = run([python, "-c", "import importlib.metadata as m; print(m.version('oslo.messaging'))"]).stdout.strip()
        section = restart_section(bench_restart(args, python, workdir), args)
        print(section)
        if args.out != "-":
            text = open(args.out).read()
            if "<!-- rpc-restart:start -->" not in text:  # first time: inside the RPC section, at its end
                text = text.replace("<!-- rpc:end -->", "<!-- rpc-restart:start -->\n<!-- rpc-restart:end -->\n<!-- rpc:end -->")
                open(args.out, "w").write(text)
            replace_section(args.out, "<!-- rpc-restart:start -->", "<!-- rpc-restart:end -->", section)
        return
    started = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="forkwatch-rpcbench-")
    results = {}
    print("== forkwatch, embedded transport", file=sys.stderr)
    results["embedded"] = bench_forkwatch(args, workdir, None)
    print(results["embedded"], file=sys.stderr)
    node = os.path.join(workdir, "rmq")
    started_node = run(["bash", os.path.join(FIX, "node.sh"), "start", node], timeout=120)
    if started_node.returncode != 0:
        print("RabbitMQ: %s" % started_node.stderr.strip(), file=sys.stderr)
    else:
        amqp = started_node.stdout.strip().splitlines()[-1]
        url = "rabbit://" + amqp[len("amqp://"):]
        try:
            print("== forkwatch, RabbitMQ", file=sys.stderr)
            results["rabbit"] = bench_forkwatch(args, workdir, url)
            print(results["rabbit"], file=sys.stderr)
            venv = run(["bash", os.path.join(FIX, "venv.sh"), os.path.join(tempfile.gettempdir(), "forkwatch-omvenv")], timeout=600)
            python = venv.stdout.strip().splitlines()[-1]
            print("== oslo.messaging, RabbitMQ", file=sys.stderr)
            results["oslo"] = bench_oslo(args, python, url, workdir)
            print(results["oslo"], file=sys.stderr)
            oslo_version = run([python, "-c", "import importlib.metadata as m; print(m.version('oslo.messaging'))"]).stdout.strip()
        finally:
            run(["bash", os.path.join(FIX, "node.sh"), "stop", node], timeout=60)
        if args.restarts > 0:
            print("== broker restarts", file=sys.stderr)
            args.oslo_version = oslo_version
            results["restart"] = bench_restart(args, python, workdir)
    rabbit_version = run(["dpkg-query", "-W", "-f=${Version}", "rabbitmq-server"]).stdout.strip()
    rev = run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]).stdout.strip()

    def row(name, r):
        if not r:
            return "| %s | not measured | | | |" % name
        return "| %s | %s | %s | %.2f ms | %.2f ms |" % (name, "{:,.0f}".format(r["casts_per_s"] or 0), "{:,.0f}".format(r["sent_per_s"] or 0),
                                                        r["p50_ms"], r["p99_ms"])
    lines = [
        "<!-- rpc:start -->",
        "## RPC: casts per second and call round trips",
        "",
        "Generated by `bench/rpc.py` on %s UTC. %d server processes everywhere (forkwatch: `scheduler` ×%d, consumer threads per worker: 1 embedded, 4 RabbitMQ; "
        "oslo.messaging: %d × `omrpc.py serve`, its default threading executor), client and servers on this 2-core machine. "
        "casts/s: %s casts sent one by one, until every one was handled; calls: %s sequential `echo` calls after 20 warm-up calls."
        % (datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M"), args.workers, args.workers, args.workers,
           "{:,}".format(args.casts), "{:,}".format(args.calls)),
        "",
        "Command: `python3 bench/rpc.py --forkwatch .build/release/forkwatch --bench .build/release/forkwatch-bench`",
        "",
        "| transport, client → servers | casts handled/s | casts sent/s | call p50 | call p99 |",
        "| --- | ---: | ---: | ---: | ---: |",
        row("forkwatch, embedded (`sqlite:`)", results.get("embedded")),
        row("forkwatch, RabbitMQ %s" % rabbit_version, results.get("rabbit")),
        row("oslo.messaging %s (Python client and servers), same RabbitMQ" % (locals().get("oslo_version") or "?"), results.get("oslo")),
        "",
    ]
    if results.get("rabbit") and results.get("oslo"):
        fw, om = results["rabbit"], results["oslo"]
        cast_ratio = (fw["casts_per_s"] or 0) / (om["casts_per_s"] or 1)
        lines += [
            "Targets (forkwatch ahead of oslo.messaging on the same broker): casts/s **%.2f×** (%s); call p50 **%.2f×**, p99 **%.2f×** of oslo's (%s)."
            % (cast_ratio, "met" if cast_ratio > 1 else "NOT met", fw["p50_ms"] / om["p50_ms"], fw["p99_ms"] / om["p99_ms"],
               "met" if fw["p50_ms"] < om["p50_ms"] and fw["p99_ms"] < om["p99_ms"] else "NOT met"),
            "",
        ]
    lines += [
        "Notes: forkwatch's casts go through publisher confirms on RabbitMQ, as oslo's send connections do; its consumers acknowledge after "
        "handling with prefetch 1. The embedded transport's wake-up is inotify on the database's WAL (docs/rpc.md). "
        "Machine: %d CPUs, kernel %s; forkwatch git %s. Total time: %.0f s." % (os.cpu_count(), platform.release(), rev, time.monotonic() - started),
        "",
    ]
    if results.get("restart"):
        lines.append(restart_section(results["restart"], args).rstrip("\n"))
    lines.append("<!-- rpc:end -->")
    section = "\n".join(lines) + "\n"
    print(section)
    if args.out != "-":
        replace_section(args.out, "<!-- rpc:start -->", "<!-- rpc:end -->", section)


if __name__ == "__main__":
    main()
