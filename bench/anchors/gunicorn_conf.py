"""gunicorn config for the forkwatch benchmark.

With BENCH_CRASH=1 in the environment every worker exits with status 1 right
after it has booted (post_worker_init hook). Exit status 1 is deliberate:
gunicorn's arbiter halts the whole server when a worker exits with 3
(WORKER_BOOT_ERROR) or 4 (APP_LOAD_ERROR), but respawns on any other status,
so exit 1 gives a genuine crash loop.
"""
import os

if os.environ.get("BENCH_CRASH") == "1":
    def post_worker_init(worker):
        os._exit(1)
