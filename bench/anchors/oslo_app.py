"""oslo.service anchor for the forkwatch benchmark.

Runs oslo.service's classic ProcessLauncher (eventlet backend) with N idle
workers, or, with --crash, N workers whose service exits with status 1 as soon
as it starts (a crash loop).

Usage: python oslo_app.py --workers N [--crash]

Logs go to stderr with epoch timestamps (the benchmark redirects them to a
file and greps them for "Forking too fast" and "Started child").
"""
import argparse
import logging
import os
import sys

import eventlet

# Classic OpenStack services (nova, cinder, ...) monkey-patch first thing.
eventlet.monkey_patch()

from oslo_service import backend  # noqa: E402

# oslo.service >= 4 has two backends; eventlet is the default today, but pin it
# explicitly so the benchmark always measures the classic ProcessLauncher.
backend.init_backend(backend.BackendType.EVENTLET)

from oslo_config import cfg  # noqa: E402
from oslo_service import service  # noqa: E402


class IdleService(service.Service):
    """A service that does nothing until told to stop."""

    def start(self):
        super().start()


class CrashService(service.Service):
    """A service whose worker exits with status 1 as soon as it starts."""

    def start(self):
        os._exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, required=True)
    ap.add_argument("--crash", action="store_true")
    ap.add_argument("--debug", action="store_true",
                    help="log at DEBUG (oslo logs 'Started child N' there)")
    args = ap.parse_args()

    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(created).6f %(process)d %(levelname)s %(name)s %(message)s")

    conf = cfg.CONF
    conf([], project="forkwatch-bench", default_config_files=[])

    svc = CrashService() if args.crash else IdleService()
    launcher = service.ProcessLauncher(conf, restart_method="reload")
    launcher.launch_service(svc, workers=args.workers)
    launcher.wait()


if __name__ == "__main__":
    main()
