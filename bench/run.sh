#!/usr/bin/env bash
# Benchmark forkwatch against oslo.service's ProcessLauncher (eventlet backend)
# and gunicorn, side by side, and write docs/benchmarks.md.
#
#   bash bench/run.sh                 # from the repository root (or anywhere)
#
# Environment:
#   FORKWATCH_BIN=path   measure this binary instead of building
#                        .build/release/forkwatch
#   BENCH_NO_FORKWATCH=1 measure the anchors only (no build)
#   BENCH_OUT=path       write the report there instead of docs/benchmarks.md
# Extra arguments are passed to bench/bench.py (see --help), e.g.
#   bash bench/run.sh --reps 3 --kills 30
# Step 5 (HTTP, bench/http.py) needs wrk and nginx; they are installed with apt-get when missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="bench/.venv"
PY="${PYTHON:-python3}"

step() { printf '\n== %s\n' "$*" >&2; }

# 1. Anchors in a virtualenv (reused when present and complete).
step "virtualenv $VENV"
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV" || {
        echo "python3 -m venv failed (on Debian: apt-get install python3-venv)" >&2
        exit 1
    }
fi
if ! "$VENV/bin/python" - <<'PYEOF' 2>/dev/null
import importlib.metadata as m, sys
want = {}
for line in open("bench/requirements.txt"):
    line = line.split("#")[0].strip()
    if line:
        name, ver = line.split("==")
        want[name] = ver
sys.exit(0 if all(m.version(n) == v for n, v in want.items()) else 1)
PYEOF
then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r bench/requirements.txt
fi
"$VENV/bin/python" -W ignore -c "import oslo_service.backend, oslo_config, eventlet, gunicorn" \
    || { echo "anchor packages do not import" >&2; exit 1; }

# 2. forkwatch, release build, once.
FW_ARGS=()
if [ "${BENCH_NO_FORKWATCH:-0}" = "1" ]; then
    step "forkwatch: skipped (BENCH_NO_FORKWATCH=1)"
elif [ -n "${FORKWATCH_BIN:-}" ]; then
    step "forkwatch: using FORKWATCH_BIN=$FORKWATCH_BIN"
    [ -x "$FORKWATCH_BIN" ] || { echo "FORKWATCH_BIN is not executable" >&2; exit 1; }
    FW_ARGS=(--forkwatch "$FORKWATCH_BIN")
else
    step "swift build -c release --static-swift-stdlib --product forkwatch (and forkwatch-bench)"
    swift build -c release --static-swift-stdlib --product forkwatch >&2
    swift build -c release --static-swift-stdlib --product forkwatch-bench >&2
    [ -x .build/release/forkwatch ] || { echo "no .build/release/forkwatch after the build" >&2; exit 1; }
    FW_ARGS=(--forkwatch .build/release/forkwatch)
fi

# The steps that need forkwatch's own build (4 and 5) run only when it was built here.
FULL=0
if [ "${BENCH_NO_FORKWATCH:-0}" != "1" ] && [ -z "${FORKWATCH_BIN:-}" ]; then
    FULL=1
fi

# wrk and nginx for step 5, from Debian, installed once. Starting services is denied during the
# install (policy-rc.d), so nginx's postinst leaves no system nginx running on port 80.
if [ "$FULL" = "1" ] && { ! command -v wrk >/dev/null || ! [ -x /usr/sbin/nginx ]; }; then
    step "apt-get install wrk nginx (for bench/http.py)"
    SUDO=()
    if [ "$(id -u)" != "0" ]; then
        command -v sudo >/dev/null || { echo "need root (or sudo) to apt-get install wrk nginx" >&2; exit 1; }
        SUDO=(sudo)
    fi
    POLICY_ADDED=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
        "${SUDO[@]}" chmod 755 /usr/sbin/policy-rc.d
        POLICY_ADDED=1
    fi
    had_nginx=0; [ -x /usr/sbin/nginx ] && had_nginx=1
    install_ok=1
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx >&2 \
        || { "${SUDO[@]}" apt-get update -qq >&2 \
             && "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx >&2; } \
        || install_ok=0
    [ "$POLICY_ADDED" = "1" ] && "${SUDO[@]}" rm -f /usr/sbin/policy-rc.d
    [ "$install_ok" = "1" ] || { echo "apt-get install wrk nginx failed" >&2; exit 1; }
    # Belt and braces: if the package started a system nginx anyway, stop it (only one we installed).
    if [ "$had_nginx" = "0" ] && [ -s /run/nginx.pid ] && kill -0 "$(cat /run/nginx.pid)" 2>/dev/null; then
        echo "stopping the system nginx the package started (pid $(cat /run/nginx.pid))" >&2
        "${SUDO[@]}" kill -QUIT "$(cat /run/nginx.pid)" || true
    fi
fi

# 3. Measure and report.
step "measuring (about 5 minutes)"
"$PY" bench/bench.py "${FW_ARGS[@]}" --venv "$VENV" \
    --out "${BENCH_OUT:-docs/benchmarks.md}" --command "bash bench/run.sh" "$@"

# 4. The dashboard / control socket and the services table (forkwatch's own code is needed
#    for the frame time and the runner tick: forkwatch-bench).
if [ "$FULL" = "1" ]; then
    step "dashboard and control socket, 1,000 workers (about 1 minute)"
    "$PY" bench/dashboard.py --forkwatch .build/release/forkwatch --bench .build/release/forkwatch-bench \
        --out "${BENCH_OUT:-docs/benchmarks.md}"
    step "services table and periodic runner (about 20 s)"
    "$PY" bench/services.py --forkwatch .build/release/forkwatch --bench .build/release/forkwatch-bench \
        --out "${BENCH_OUT:-docs/benchmarks.md}"
fi

# 5. HTTP: nginx, gunicorn, eventlet.wsgi and forkwatch's api service under wrk, plus a rolling
#    restart under load (forkwatch is skipped, with the reason, if its binary has no `api`).
if [ "$FULL" = "1" ]; then
    step "HTTP: nginx, gunicorn, eventlet, forkwatch api under wrk (about 4 minutes)"
    "$PY" bench/http.py --forkwatch .build/release/forkwatch --venv "$VENV" \
        --out "${BENCH_OUT:-docs/benchmarks.md}"
fi

# 6. RPC: casts/s and call p50/p99 on the embedded transport and on RabbitMQ (a private node,
#    Tests/Fixtures/rabbitmq/node.sh), beside Python oslo.messaging on the same broker.
if [ "$FULL" = "1" ]; then
    step "RPC: embedded, RabbitMQ, oslo.messaging (about 2 minutes)"
    "$PY" bench/rpc.py --forkwatch .build/release/forkwatch --bench .build/release/forkwatch-bench \
        --out "${BENCH_OUT:-docs/benchmarks.md}"
fi

# 7. Reliability: a master that trusts nothing it did not make (issue 18): one run, each row what
#    was tried and what held (rows acting as another user or with a cgroup need root).
if [ "$FULL" = "1" ]; then
    step "reliability: runtime directory, fake masters, raced masters, orphans (about 1 minute)"
    "$PY" bench/trust.py --forkwatch .build/release/forkwatch --out "${BENCH_OUT:-docs/benchmarks.md}" \
        --command "bash bench/run.sh" || echo "bench/trust.py: a row did not hold (see the table)" >&2
fi

# 8. Reliability: the master never starves (issue 13): reap latency at rest and under a request
#    flood + 500 subscribers that never read, 10,000 respawns, a 10,000-signal storm.
if [ "$FULL" = "1" ]; then
    step "reliability: soak (about 3 minutes)"
    "$PY" bench/soak.py --forkwatch .build/release/forkwatch --out "${BENCH_OUT:-docs/benchmarks.md}" \
        --command "bash bench/run.sh"
fi
