#!/usr/bin/env bash
# selftest.sh [VENV_DIR]: checks this folder's fixtures end to end with Python on both sides:
# a private node (node.sh), the venv (venv.sh), two omrpc.py servers, calls, errors, timeout, cast,
# fanout, what the Python server declares on the broker (reference §1), clean stops.
# VENV_DIR defaults to a fresh venv in the work dir (≈15 s of pip). KEEP=1 keeps the work dir.
# Prints one line per check and "selftest: N passed, N failed"; exits 0 when all pass, and with
# "skipped: rabbitmq-server not installed" (exit 0) when there is no broker to test with.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d /tmp/forkwatch-rmq-selftest.XXXXXX)
VENV=${1:-$WORK/venv}
NODE="$WORK/node"
T=selftest
PASS=0 FAIL=0
SERVER_PIDS=()

ok()   { PASS=$((PASS + 1)); echo "ok   $1"; }
bad()  { FAIL=$((FAIL + 1)); echo "FAIL $1${2:+: $2}"; }

cleanup() {
    local p
    for p in "${SERVER_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${SERVER_PIDS[@]}"; do
        for _ in $(seq 1 150); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
    done
    [ -f "$NODE/node.env" ] && "$HERE/node.sh" stop "$NODE" >/dev/null
    [ "${KEEP:-}" = 1 ] && echo "work dir kept: $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT

URL=$("$HERE/node.sh" start "$NODE")
rc=$?
if [ $rc = 3 ]; then echo "skipped: rabbitmq-server not installed"; exit 0; fi
[ $rc = 0 ] || { echo "selftest: node did not start (node.sh exit $rc)"; exit 1; }
echo "node: $URL ($(grep START_SECONDS "$NODE/node.env"))"
PY=$("$HERE/venv.sh" "$VENV") || { echo "selftest: venv.sh failed"; exit 1; }
OM=("$PY" "$HERE/omrpc.py")

# expect NAME PYTHON-EXPR CMD...: run CMD, d = its JSON line, rc = its exit code; pass if EXPR holds
expect() {
    local name=$1 expr=$2 out rc; shift 2
    out=$("$@" 2>>"$WORK/client.err"); rc=$?
    if "$PY" -c 'import json, sys; d = json.loads(sys.argv[2]); rc = int(sys.argv[3]); sys.exit(0 if eval(sys.argv[1]) else 1)' \
        "$expr" "$out" "$rc" 2>/dev/null; then ok "$name"; else bad "$name" "exit $rc, $out"; fi
}

for s in s1 s2; do
    OMRPC_RECORD="$WORK/rec.$s" "${OM[@]}" serve "$URL" "$T" "$s" >"$WORK/$s.out" 2>"$WORK/$s.err" &
    SERVER_PIDS+=($!)
done
for _ in $(seq 1 300); do
    grep -q READY "$WORK/s1.out" 2>/dev/null && grep -q READY "$WORK/s2.out" 2>/dev/null && break
    sleep 0.1
done
grep -q READY "$WORK/s1.out" && grep -q READY "$WORK/s2.out" && ok "two servers READY" \
    || { bad "two servers READY" "$(tail -n 3 "$WORK/s1.err")"; exit 1; }

expect "call echo" 'rc == 0 and d == {"ok": True, "result": {"args": {"a": [1, 2], "s": "é"}, "ctxt": {"request_id": "req-omrpc", "user": "omrpc", "client_timeout": None}}}' \
    "${OM[@]}" call "$URL" "$T" echo '{"a": [1, 2], "s": "é"}'
expect "call echo to server s2 (topic.s2)" 'rc == 0 and d["result"]["args"] == {"x": 1}' \
    "${OM[@]}" call "$URL" "$T" echo '{"x": 1}' s2
expect "call add" 'rc == 0 and d["result"] == 42' "${OM[@]}" call "$URL" "$T" add '{"a": 40, "b": 2}'
expect "call fail: ValueError arrives" \
    'rc == 2 and d["error"] == "ValueError" and d["message"] == "nope" and d["remote"]' \
    "${OM[@]}" call "$URL" "$T" fail '{"msg": "nope"}'
expect "unknown method: RemoteError NoSuchMethod" \
    'rc == 2 and d["error"] == "RemoteError" and d["exc_type"] == "NoSuchMethod"' \
    "${OM[@]}" call "$URL" "$T" nosuch '{}'
expect "wrong arguments: remote TypeError" 'rc == 2 and d["error"] == "TypeError"' \
    "${OM[@]}" call "$URL" "$T" add '{"a": 1}'
t0=$(date +%s.%N)
expect "call to a topic nobody serves: MessagingTimeout" \
    'rc == 3 and d["error"] == "MessagingTimeout"' "${OM[@]}" --timeout 2 call "$URL" nobody echo '{}'
echo "     (timed out after $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s with --timeout 2)"
expect "cast record to s1" 'rc == 0 and d == {"ok": True}' "${OM[@]}" cast "$URL" "$T" record '{"n": "cast-1"}' s1
expect "fanout record" 'rc == 0 and d == {"ok": True}' "${OM[@]}" fanout "$URL" "$T" record '{"n": "fan-1"}'
for _ in $(seq 1 50); do
    [ "$(cat "$WORK/rec.s1" 2>/dev/null)" = $'"cast-1"\n"fan-1"' ] && [ "$(cat "$WORK/rec.s2" 2>/dev/null)" = '"fan-1"' ] && break
    sleep 0.1
done
if [ "$(cat "$WORK/rec.s1" 2>/dev/null)" = $'"cast-1"\n"fan-1"' ] && [ "$(cat "$WORK/rec.s2" 2>/dev/null)" = '"fan-1"' ]; then
    ok "cast reached s1 only, fanout reached both"
else
    bad "cast reached s1 only, fanout reached both" "s1=[$(cat "$WORK/rec.s1" 2>/dev/null)] s2=[$(cat "$WORK/rec.s2" 2>/dev/null)]"
fi

# What the Python side declared (reference §1, defaults).
"$HERE/node.sh" ctl "$NODE" -q list_queues name durable auto_delete exclusive arguments >"$WORK/queues.txt" 2>&1
"$HERE/node.sh" ctl "$NODE" -q list_exchanges name type durable auto_delete arguments >"$WORK/exchanges.txt" 2>&1
"$HERE/node.sh" ctl "$NODE" -q list_bindings source_name destination_name routing_key >"$WORK/bindings.txt" 2>&1
if "$PY" - "$WORK" "$T" <<'EOF'
import re, sys
work, t = sys.argv[1], sys.argv[2]
rows = lambda f: [l.rstrip("\n").split("\t") for l in open(f"{work}/{f}") if "\t" in l][1:]
q = {r[0]: r[1:] for r in rows("queues.txt")}
x = {r[0]: r[1:] for r in rows("exchanges.txt")}
b = {tuple(r) for r in rows("bindings.txt")}
errs = []
def want(cond, what):
    if not cond: errs.append(what)
want(x.get("openstack") == ["topic", "false", "false", "[]"], f"exchange openstack {x.get('openstack')}")
want(x.get(f"{t}_fanout") == ["fanout", "false", "true", "[]"], f"exchange {t}_fanout {x.get(t + '_fanout')}")
for name in (t, f"{t}.s1", f"{t}.s2"):
    want(q.get(name) == ["false", "false", "false", "[]"], f"queue {name} {q.get(name)}")
fan = [n for n in q if re.fullmatch(t + r"_fanout_[0-9a-f]{32}", n)]
rep = [n for n in q if re.fullmatch(r"reply_[0-9a-f]{32}", n)]
want(len(fan) == 2, f"two fanout queues {fan}")
for name in fan + rep:
    want(q[name] == ["false", "false", "false", '[{"x-expires",1800000}]'], f"queue {name} {q[name]}")
want(len(rep) >= 1, "reply queues")
for k in (t, f"{t}.s1", f"{t}.s2"):
    want(("openstack", k, k) in b, f"binding openstack -> {k}")
for name in fan:
    want((f"{t}_fanout", name, t) in b, f"binding {t}_fanout -> {name} key {t}")
for name in rep:
    want(not any(s and d == name for s, d, _ in b), f"{name} bound only to the default exchange")
if errs: print("\n".join("     " + e for e in errs))
sys.exit(1 if errs else 0)
EOF
then ok "declared entities match reference §1"; else bad "declared entities match reference §1" "see $WORK/*.txt (KEEP=1)"; fi

# SIGTERM stops a server cleanly; its fanout queue goes with it.
kill -TERM "${SERVER_PIDS[0]}"
t0=$(date +%s.%N)
for _ in $(seq 1 150); do kill -0 "${SERVER_PIDS[0]}" 2>/dev/null || break; sleep 0.1; done
if kill -0 "${SERVER_PIDS[0]}" 2>/dev/null; then bad "SIGTERM stops server s1" "still running after 15 s"; else
    wait "${SERVER_PIDS[0]}"; src=$?
    fans=$("$HERE/node.sh" ctl "$NODE" -q list_queues name 2>/dev/null | grep -c "^${T}_fanout_")
    [ "$src" = 0 ] && [ "$fans" = 1 ] && ok "SIGTERM stops server s1 (exit 0, $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s), its fanout queue deleted" \
        || bad "SIGTERM stops server s1" "exit $src, fanout queues left: $fans"
fi

# Node stop leaves nothing behind.
for p in "${SERVER_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
for p in "${SERVER_PIDS[@]}"; do wait "$p" 2>/dev/null; done
SERVER_PIDS=()
. "$NODE/node.env"
BEAM=$(cat "$RABBITMQ_PID_FILE")
t0=$(date +%s.%N)
if "$HERE/node.sh" stop "$NODE"; then
    left=""
    for p in $BEAM $NODE_PID $EPMD_PID; do
        [ -r "/proc/$p/stat" ] && ! grep -q ') Z ' "/proc/$p/stat" 2>/dev/null && left="$left $p"
    done
    [ -z "$left" ] && ok "node.sh stop ($(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s): beam, wrapper and epmd gone" \
        || bad "node.sh stop" "still running:$left"
else
    bad "node.sh stop" "exit $?"
fi

echo "selftest: $PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
