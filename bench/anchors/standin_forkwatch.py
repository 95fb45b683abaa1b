#!/usr/bin/env python3
"""Stand-in for the forkwatch CLI, used ONLY to test the benchmark harness
before the real binary exists. Never used for published figures.

Implements just: run --headless --workers N [--events -] (idle | -- CMD...)
"""
import json
import os
import signal
import sys


def main():
    a = sys.argv[1:]
    assert a[0] == "run", a
    a = a[1:]
    workers, events, cmd, idle = 1, None, None, False
    i = 0
    while i < len(a):
        if a[i] == "--headless":
            pass
        elif a[i] == "--workers":
            i += 1
            workers = int(a[i])
        elif a[i] == "--events":
            i += 1
            events = sys.stdout if a[i] == "-" else open(a[i], "a")
        elif a[i] == "--":
            cmd = a[i + 1:]
            break
        elif a[i] == "idle":
            idle = True
        i += 1
    assert idle or cmd

    def emit(**kw):
        if events:
            events.write(json.dumps({"v": 1, **kw}) + "\n")
            events.flush()

    stopping = False
    kids = set()

    def on_term(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGCHLD, signal.SIGTERM])

    def spawn():
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, [])
            if cmd:
                os.execvp(cmd[0], cmd)
            while True:
                signal.pause()
        kids.add(pid)
        emit(type="fork", pid=pid, service="idle" if idle else "cmd")

    for _ in range(workers):
        spawn()
    emit(type="ready")
    while True:
        if stopping:
            for p in kids:
                try:
                    os.kill(p, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            while kids:
                p, st = os.waitpid(-1, 0)
                kids.discard(p)
            return 0
        try:
            p, st = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            p = 0
        if p:
            kids.discard(p)
            emit(type="exit", pid=p, status=st)
            if not stopping:
                spawn()
            continue
        info = signal.sigtimedwait([signal.SIGCHLD, signal.SIGTERM], 1.0)
        if info is not None and info.si_signo == signal.SIGTERM:
            on_term()


if __name__ == "__main__":
    sys.exit(main())
