"""eventlet.wsgi anchor for bench/http.py: the stack nova's API services ran on.

  eventlet_wsgi.py --port PORT [--host 127.0.0.1] [--workers 2]
  eventlet_wsgi.py --fd 3        # one worker on an inherited listening socket
                                 # (e.g. under `forkwatch run --port P -- ...`)

The parent binds one listening socket (eventlet.listen, backlog 128), forks the
workers, and each runs eventlet.wsgi.server(sock, app, custom_pool=GreenPool(1000),
keepalive=True) with request logging off. The parent only waits: on SIGTERM or
SIGINT it sends SIGTERM to the workers, reaps them and exits. Workers get
PR_SET_PDEATHSIG so they cannot outlive the parent. The parent does not respawn.

Each worker calls eventlet.monkey_patch() after the fork (nova patched at import);
the parent stays unpatched so its wait costs nothing (a patched os.waitpid polls).
"""
import argparse
import ctypes
import os
import signal
import socket
import sys
import warnings

warnings.simplefilter("ignore")  # eventlet's deprecation warning on import

import eventlet  # noqa: E402
import eventlet.greenio  # noqa: E402
import eventlet.wsgi  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from http_app import app  # noqa: E402


def serve(sock):
    eventlet.monkey_patch()
    eventlet.wsgi.server(sock, app, custom_pool=eventlet.GreenPool(1000),
                         keepalive=True, log_output=False, debug=False)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--backlog", type=int, default=128)
    ap.add_argument("--fd", type=int, help="serve one worker on this inherited socket")
    a = ap.parse_args()

    if a.fd is not None:
        serve(eventlet.greenio.GreenSocket(socket.socket(fileno=a.fd)))
        return
    if a.port is None:
        ap.error("--port or --fd is required")

    sock = eventlet.listen((a.host, a.port), backlog=a.backlog)
    kids = set()
    for _ in range(a.workers):
        pid = os.fork()
        if pid == 0:
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
                if os.getppid() == 1:
                    os._exit(0)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                serve(sock)
            finally:
                os._exit(0)
        kids.add(pid)

    stopping = False

    def on_stop(signo, _):
        nonlocal stopping
        stopping = True
        for k in kids:
            try:
                os.kill(k, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    sock.close()
    while kids:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        kids.discard(pid)
        if not stopping:
            print(f"eventlet_wsgi: worker {pid} exited unexpectedly (status {status}); "
                  f"{len(kids)} left", file=sys.stderr, flush=True)
    sys.exit(0 if stopping else 1)


if __name__ == "__main__":
    main()
