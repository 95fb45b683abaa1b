#!/usr/bin/env python3
"""A real Python oslo.messaging (18.x, rabbit driver) peer for forkwatch's interop tests and benchmark.

  omrpc.py [opts] serve URL TOPIC SERVER
      RPC server on Target(topic=TOPIC, server=SERVER); prints READY once its queues exist.
      SIGTERM or SIGINT stops it cleanly (the fanout queue is deleted). Endpoint methods:
        echo(**kw) -> {"args": kw, "ctxt": ctxt}    fail(msg) -> raises ValueError(msg)
        add(a, b) -> a + b                          record(n) -> appends n to $OMRPC_RECORD, returns SERVER
        sleep(seconds) -> seconds (after sleeping)  tick(i) -> counts (for bench-cast)
        stats() -> {"server", "pid", "ticks"}       reset() -> zeroes the tick count
  omrpc.py [opts] call   URL TOPIC METHOD JSONARGS [SERVER]
  omrpc.py [opts] cast   URL TOPIC METHOD JSONARGS [SERVER]
  omrpc.py [opts] fanout URL TOPIC METHOD JSONARGS
      Print one JSON line: {"ok": true, "result": ...} (call) / {"ok": true} (cast, fanout), or
      {"ok": false, "error": NAME, "message": TEXT, ...}; NAME is "MessagingTimeout", "RemoteError"
      (with "exc_type", e.g. "NoSuchMethod"), or the exception's class for errors oslo re-raises as
      themselves (builtins such as "ValueError"; then "remote": true and "traceback").
  omrpc.py [opts] bench-cast URL TOPIC N [SERVER,SERVER...]
      N casts of tick(); prints {"casts_per_s": ...} (each cast is publisher-confirmed). With server
      names, also waits until those servers have handled all N and prints "handled_per_s".
  omrpc.py [opts] bench-call URL TOPIC N
      N sequential echo calls; prints {"p50_ms", "p99_ms", "mean_ms", "calls_per_s"}.

Options: --timeout S (call timeout, default 10), --exchange NAME (control exchange, default
"openstack"), --ctxt JSON (request context, default {"request_id": "req-omrpc", "user": "omrpc"}),
--call-monitor-timeout S, --warmup N (bench-call/bench-cast, default 10).
Exit codes: 0 ok, 2 remote error or remote exception, 3 MessagingTimeout, 4 other error, 64 usage.
URL: rabbit://guest:guest@127.0.0.1:PORT/ (amqp:// is accepted and rewritten to rabbit://).
"""
import argparse
import json
import os
import signal
import sys
import threading
import time
import warnings

# oslo.messaging 18.3.x imports eventlet through oslo.service, which warns on import (harmless).
warnings.filterwarnings("ignore", message=r"(?s)\s*Eventlet is deprecated")

from oslo_config import cfg  # noqa: E402
import oslo_messaging as om  # noqa: E402

DEFAULT_CTXT = {"request_id": "req-omrpc", "user": "omrpc"}


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class Endpoint:
    """No `target` attribute: null namespace, version 1.0 (what the reference's harness uses)."""

    def __init__(self, server):
        self.server = server
        self.lock = threading.Lock()
        self.ticks = 0

    def echo(self, ctxt, **kw):
        return {"args": kw, "ctxt": ctxt}

    def fail(self, ctxt, msg="boom"):
        raise ValueError(msg)

    def add(self, ctxt, a, b):
        return a + b

    def record(self, ctxt, n):
        path = os.environ.get("OMRPC_RECORD")
        if path:
            with open(path, "a") as f:     # one short write per line, O_APPEND
                f.write(json.dumps(n) + "\n")
        return self.server

    def sleep(self, ctxt, seconds):
        time.sleep(seconds)
        return seconds

    def tick(self, ctxt, i=0):
        with self.lock:
            self.ticks += 1

    def stats(self, ctxt):
        with self.lock:
            return {"server": self.server, "pid": os.getpid(), "ticks": self.ticks}

    def reset(self, ctxt):
        with self.lock:
            self.ticks = 0


def make_transport(url):
    if url.startswith("amqp://"):
        url = "rabbit://" + url[len("amqp://"):]
    # The global CONF, not a private ConfigOpts: 18.3.x registers its tracing options only there.
    cfg.CONF([], project="omrpc")
    return om.get_rpc_transport(cfg.CONF, url=url)


def target(args, **kw):
    if args.exchange:
        kw["exchange"] = args.exchange
    return om.Target(topic=args.topic, **kw)


def serve(args, transport, server_name):
    server = om.get_rpc_server(transport, target(args, server=server_name),
                               [Endpoint(server_name)])   # threading executor by default
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server.start()   # declares the exchanges and queues (T, T.S, T_fanout_<uuid>) before returning
    print("READY", flush=True)
    while not stop.wait(0.5):
        pass
    server.stop()
    server.wait()
    return 0


def describe(exc):
    """(exit code, JSON object) for an exception raised by call/cast."""
    if isinstance(exc, om.MessagingTimeout):
        return 3, {"ok": False, "error": "MessagingTimeout", "message": str(exc)}
    if isinstance(exc, om.RemoteError):
        return 2, {"ok": False, "error": "RemoteError", "exc_type": exc.exc_type,
                   "message": exc.value}
    name = type(exc).__name__
    text = str(exc)
    mod = type(exc).__module__ or ""
    # oslo re-raises remote builtins as themselves with the remote traceback appended to the
    # message, and other allowed exceptions as "<Name>_Remote" subclasses.
    remote = name.endswith("_Remote") or mod.endswith("_Remote") or "\nTraceback" in text
    if remote:
        name = name[:-len("_Remote")] if name.endswith("_Remote") else name
        message, _, tb = text.partition("\n")
        return 2, {"ok": False, "error": name, "message": message, "remote": True,
                   "traceback": tb}
    return 4, {"ok": False, "error": name, "message": text}


def client_for(args, transport, server=None, fanout=False):
    kw = {}
    if args.call_monitor_timeout is not None:
        kw["call_monitor_timeout"] = args.call_monitor_timeout
    client = om.get_rpc_client(transport, target(args), timeout=args.timeout, **kw)
    if server:
        client = client.prepare(server=server)
    if fanout:
        client = client.prepare(fanout=True)
    return client


def one_shot(args, transport, method, jsonargs, server):
    try:
        kwargs = json.loads(jsonargs) if jsonargs else {}
    except ValueError as e:
        out({"ok": False, "error": "Usage", "message": "JSONARGS is not JSON: %s" % e})
        return 64
    if not isinstance(kwargs, dict):
        out({"ok": False, "error": "Usage", "message": "JSONARGS must be a JSON object"})
        return 64
    client = client_for(args, transport, server, fanout=(args.mode == "fanout"))
    try:
        if args.mode == "call":
            out({"ok": True, "result": client.call(args.ctxt, method, **kwargs)})
        else:
            client.cast(args.ctxt, method, **kwargs)
            out({"ok": True})
        return 0
    except Exception as e:  # noqa: BLE001 - every failure becomes one JSON line
        code, obj = describe(e)
        out(obj)
        return code


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, max(0, int(round(p / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def bench_cast(args, transport, n, servers):
    client = client_for(args, transport)
    per_server = [client.prepare(server=s) for s in servers]
    for c in per_server:
        c.call(args.ctxt, "reset")
    for i in range(args.warmup):      # connection, exchange declare
        client.cast(args.ctxt, "echo", warmup=i)
    t0 = time.perf_counter()
    for i in range(n):
        client.cast(args.ctxt, "tick", i=i)
    sent = time.perf_counter() - t0
    res = {"ok": True, "mode": "bench-cast", "n": n, "seconds": round(sent, 4),
           "casts_per_s": round(n / sent, 1)}
    if per_server:
        deadline = time.monotonic() + max(args.timeout, 60)
        while True:
            handled = sum(c.call(args.ctxt, "stats")["ticks"] for c in per_server)
            if handled >= n or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        done = time.perf_counter() - t0
        res.update({"handled": handled, "handled_seconds": round(done, 4),
                    "handled_per_s": round(handled / done, 1)})
        if handled < n:
            res["ok"] = False
    out(res)
    return 0 if res["ok"] else 4


def bench_call(args, transport, n):
    client = client_for(args, transport)
    for i in range(args.warmup):      # the first call creates the reply queue
        client.call(args.ctxt, "echo", i=i)
    lat = []
    t0 = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        r = client.call(args.ctxt, "echo", i=i)
        lat.append((time.perf_counter() - t) * 1000.0)
        if r["args"]["i"] != i:
            raise RuntimeError("wrong reply %r for %d" % (r, i))
    total = time.perf_counter() - t0
    lat.sort()
    out({"ok": True, "mode": "bench-call", "n": n, "seconds": round(total, 4),
         "calls_per_s": round(n / total, 1), "p50_ms": round(percentile(lat, 50), 3),
         "p99_ms": round(percentile(lat, 99), 3), "mean_ms": round(sum(lat) / n, 3),
         "max_ms": round(lat[-1], 3)})
    return 0


def main(argv):
    p = argparse.ArgumentParser(prog="omrpc.py", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--exchange", default=None)
    p.add_argument("--ctxt", type=json.loads, default=DEFAULT_CTXT)
    p.add_argument("--call-monitor-timeout", type=float, default=None)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("mode", choices=["serve", "call", "cast", "fanout", "bench-cast", "bench-call"])
    p.add_argument("url")
    p.add_argument("topic")
    p.add_argument("rest", nargs="*")
    args = p.parse_args(argv)
    rest = args.rest

    def usage(msg):
        p.print_usage(sys.stderr)
        print("omrpc.py: " + msg, file=sys.stderr)
        return 64

    if args.mode == "serve" and len(rest) != 1:
        return usage("serve URL TOPIC SERVER")
    if args.mode in ("call", "cast") and len(rest) not in (1, 2, 3):
        return usage("%s URL TOPIC METHOD [JSONARGS [SERVER]]" % args.mode)
    if args.mode == "fanout" and len(rest) not in (1, 2):
        return usage("fanout URL TOPIC METHOD [JSONARGS]")
    if args.mode.startswith("bench") and (len(rest) not in (1, 2) or not rest[0].isdigit()):
        return usage("%s URL TOPIC N" % args.mode)

    transport = make_transport(args.url)
    try:
        if args.mode == "serve":
            return serve(args, transport, rest[0])
        if args.mode == "bench-cast":
            servers = [s for s in rest[1].split(",") if s] if len(rest) > 1 else []
            return bench_cast(args, transport, int(rest[0]), servers)
        if args.mode == "bench-call":
            return bench_call(args, transport, int(rest[0]))
        return one_shot(args, transport, rest[0], rest[1] if len(rest) > 1 else "{}",
                        rest[2] if len(rest) > 2 else None)
    finally:
        transport.cleanup()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
