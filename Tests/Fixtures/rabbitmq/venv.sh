#!/usr/bin/env bash
# venv.sh DIR: create (or reuse) a Python virtualenv in DIR with oslo.messaging from requirements.txt
# beside this script, and print the venv's python path on stdout. Quiet; pip's log is DIR/pip.log.
# PYTHON=/path/to/python3 picks the interpreter (default: python3 on PATH).
# Exit codes: 0 ok; 2 usage; 3 no usable python3 / venv module; 4 pip install failed.
set -u
[ $# -eq 1 ] || { echo "usage: venv.sh DIR" >&2; exit 2; }
HERE=$(cd "$(dirname "$0")" && pwd)
REQ="$HERE/requirements.txt"
DIR=$1
PY=${PYTHON:-python3}

command -v "$PY" >/dev/null 2>&1 || { echo "venv.sh: $PY not found (apt-get install python3 python3-venv)" >&2; exit 3; }
mkdir -p "$DIR" || exit 3
DIR=$(cd "$DIR" && pwd)
STAMP="$DIR/.forkwatch-requirements"

# Reuse: same requirements as last time, and the import still works.
if [ -x "$DIR/bin/python" ] && [ -f "$STAMP" ] && cmp -s "$STAMP" "$REQ" \
   && "$DIR/bin/python" -c 'import oslo_messaging' >/dev/null 2>&1; then
    echo "$DIR/bin/python"; exit 0
fi

if [ ! -x "$DIR/bin/python" ]; then
    "$PY" -m venv "$DIR" >"$DIR/venv.log" 2>&1 || {
        echo "venv.sh: '$PY -m venv $DIR' failed (Debian: apt-get install python3-venv):" >&2
        tail -n 5 "$DIR/venv.log" >&2; exit 3; }
fi
if ! "$DIR/bin/python" -m pip install -q --disable-pip-version-check -r "$REQ" >"$DIR/pip.log" 2>&1; then
    echo "venv.sh: pip install -r $REQ failed (log: $DIR/pip.log):" >&2
    tail -n 15 "$DIR/pip.log" >&2; exit 4
fi
"$DIR/bin/python" -c 'import oslo_messaging' >>"$DIR/pip.log" 2>&1 || {
    echo "venv.sh: oslo_messaging does not import after install (log: $DIR/pip.log)" >&2; exit 4; }
cp "$REQ" "$STAMP"
echo "$DIR/bin/python"
