#!/usr/bin/env bash
# A private, throw-away RabbitMQ node for tests (Debian's rabbitmq-server package).
#
#   node.sh start DIR        start a node in DIR (created if missing), print its AMQP URL, exit 0
#   node.sh stop DIR         stop that node and its private epmd; no process is left behind
#   node.sh ctl DIR ARGS...  run `rabbitmqctl -n NODE ARGS...` against it (e.g. list_queues name)
#   node.sh env DIR          print the shell exports the CLI tools need (source it for rabbitmq-diagnostics etc.)
#
# The node runs as the current user (root is fine: the Debian wrapper that switches to the
# `rabbitmq` user is bypassed), keeps every file under DIR (HOME=DIR, so the Erlang cookie too),
# listens on 127.0.0.1 only, on free ports: AMQP, Erlang distribution and a private epmd, so several
# nodes can run side by side and never touch a system broker on 5672/4369.
#
# Exit codes: 0 ok; 2 usage; 3 rabbitmq-server not installed; 4 start failed (log tail on stderr);
# 5 no node recorded in DIR.
set -u

RMQ_SBIN=${RABBITMQ_SBIN:-/usr/lib/rabbitmq/bin}
START_TIMEOUT=${NODE_START_TIMEOUT:-60}

die() { local code=$1; shift; printf 'node.sh: %s\n' "$*" >&2; exit "$code"; }
usage() { die 2 "usage: node.sh {start|stop|env} DIR | node.sh ctl DIR ARGS..."; }

installed() {
    [ -x "$RMQ_SBIN/rabbitmq-server" ] && [ -x "$RMQ_SBIN/rabbitmqctl" ] && command -v epmd >/dev/null 2>&1
}

# A loopback TCP port that nobody listens on now (there is a small race until the node binds it).
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
    local p i
    for i in $(seq 1 200); do
        # Below the kernel's ephemeral range (32768+): a port there can be held by a client
        # socket in TIME_WAIT (after an HTTP benchmark, thousands), and the Erlang distribution
        # listener does not bind over that ("could not bind to distribution port").
        p=$(( 20000 + RANDOM % 12000 ))
        port_in_use "$p" && continue
        case " ${USED_PORTS:-} " in *" $p "*) continue ;; esac
        USED_PORTS="${USED_PORTS:-} $p"
        echo "$p"; return 0
    done
    return 1
}

# running and not a zombie (here PID 1 reaps orphans only now and then, and kill -0 succeeds on zombies)
alive() {
    [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null || return 1
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

load_env() {
    [ -f "$DIR/node.env" ] || die 5 "no node recorded in $DIR (node.env missing)"
    # shellcheck disable=SC1091
    . "$DIR/node.env"
}

# Send the AMQP 0-9-1 protocol header and expect a method frame (connection.start) back.
amqp_answers() {
    (
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf 'AMQP\x00\x00\x09\x01' >&3
        IFS= read -r -t 2 -N 1 -u 3 byte || exit 1
        [ "$byte" = $'\x01' ]
    ) 2>/dev/null
}

cmd_start() {
    installed || die 3 "rabbitmq-server is not installed ($RMQ_SBIN/rabbitmq-server, epmd); apt-get install rabbitmq-server"
    mkdir -p "$DIR" || die 4 "cannot create $DIR"
    DIR=$(cd "$DIR" && pwd)
    if [ -f "$DIR/node.env" ]; then
        . "$DIR/node.env"
        if alive "${NODE_PID:-}"; then die 4 "a node is already running in $DIR (pid $NODE_PID)"; fi
    fi
    local t0 amqp dist epmdp name
    t0=$(date +%s.%N)
    # AMQP_PORT=N start DIR: that AMQP port (a test bringing a broker back where it was).
    if [ -n "${AMQP_PORT:-}" ]; then amqp=$AMQP_PORT; USED_PORTS="$amqp"; else amqp=$(free_port) || die 4 "no free loopback port found"; fi
    dist=$(free_port) && epmdp=$(free_port) || die 4 "no free loopback port found"
    name="forkwatch-$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n')@localhost"

    mkdir -p "$DIR/mnesia" "$DIR/log" "$DIR/schema" "$DIR/generated" "$DIR/plugins-expand"
    printf '[].\n' > "$DIR/enabled_plugins"
    : > "$DIR/rabbitmq-env.conf"            # replaces /etc/rabbitmq/rabbitmq-env.conf
    cat > "$DIR/rabbitmq.conf" <<EOF
# private test node: loopback only; guest/guest may log in from loopback (default)
listeners.tcp.1 = 127.0.0.1:$amqp
loopback_users.guest = true
log.file.level = info
log.console = false
EOF
    cat > "$DIR/node.env" <<EOF
export HOME='$DIR'
export RABBITMQ_NODENAME='$name'
export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
export RABBITMQ_NODE_PORT=$amqp
export RABBITMQ_DIST_PORT=$dist
export ERL_EPMD_PORT=$epmdp
export ERL_EPMD_ADDRESS=127.0.0.1
export RABBITMQ_CONF_ENV_FILE='$DIR/rabbitmq-env.conf'
export RABBITMQ_CONFIG_FILE='$DIR/rabbitmq.conf'
export RABBITMQ_ADVANCED_CONFIG_FILE='$DIR/advanced.config'
export RABBITMQ_ENABLED_PLUGINS_FILE='$DIR/enabled_plugins'
export RABBITMQ_MNESIA_BASE='$DIR/mnesia'
export RABBITMQ_MNESIA_DIR='$DIR/mnesia/$name'
export RABBITMQ_LOG_BASE='$DIR/log'
export RABBITMQ_PID_FILE='$DIR/rabbitmq.pid'
export RABBITMQ_FEATURE_FLAGS_FILE='$DIR/feature_flags'
export RABBITMQ_QUORUM_DIR='$DIR/mnesia/quorum'
export RABBITMQ_STREAM_DIR='$DIR/mnesia/stream'
export RABBITMQ_GENERATED_CONFIG_DIR='$DIR/generated'
export RABBITMQ_SCHEMA_DIR='$DIR/schema'
export RABBITMQ_PLUGINS_EXPAND_DIR='$DIR/plugins-expand'
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS='-kernel inet_dist_use_interface {127,0,0,1}'
NODE_NAME='$name'
NODE_AMQP_PORT=$amqp
NODE_URL='amqp://guest:guest@127.0.0.1:$amqp/'
EOF
    . "$DIR/node.env"

    # Our own epmd on its own port, so `stop` can end exactly it (by pid) and parallel nodes never
    # share one. The Erlang VM finds it through ERL_EPMD_PORT and does not start another.
    setsid epmd -port "$epmdp" -address 127.0.0.1 </dev/null >"$DIR/log/epmd.log" 2>&1 &
    local epmd_pid=$!
    echo "EPMD_PID=$epmd_pid" >> "$DIR/node.env"
    local i
    for i in $(seq 1 50); do port_in_use "$epmdp" && break; sleep 0.1; done
    alive "$epmd_pid" || die 4 "epmd did not start on 127.0.0.1:$epmdp: $(cat "$DIR/log/epmd.log")"

    # The package's wrapper /usr/sbin/rabbitmq-server would `su rabbitmq`; run the real script instead.
    # It stays in the foreground (it execs erl behind a signal-forwarding shell); detach it from us.
    ( cd "$DIR" && exec setsid "$RMQ_SBIN/rabbitmq-server" ) </dev/null >"$DIR/log/startup.log" 2>&1 &
    local node_pid=$!
    echo "NODE_PID=$node_pid" >> "$DIR/node.env"

    local deadline ok=0
    deadline=$(( $(date +%s) + START_TIMEOUT ))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        if ! alive "$node_pid"; then break; fi
        if amqp_answers "$amqp"; then ok=1; break; fi
        sleep 0.1
    done
    local tamqp
    tamqp=$(date +%s.%N)
    if [ "$ok" = 1 ]; then
        # the listener opens near the end of boot; make sure the CLI path (cookie, epmd) works too
        "$RMQ_SBIN/rabbitmqctl" -q -n "$name" await_startup --timeout 30 >"$DIR/log/await.log" 2>&1 || ok=0
    fi
    if [ "$ok" != 1 ]; then
        {
            echo "node.sh: RabbitMQ node $name did not come up within ${START_TIMEOUT}s (dir $DIR)"
            echo "--- startup.log"; tail -n 20 "$DIR/log/startup.log" 2>/dev/null
            echo "--- $name.log"; tail -n 20 "$DIR/log/$name.log" 2>/dev/null
            echo "--- await.log"; tail -n 5 "$DIR/log/await.log" 2>/dev/null
        } >&2
        cmd_stop >&2
        exit 4
    fi
    local t1
    t1=$(date +%s.%N)
    awk -v a="$t0" -v m="$tamqp" -v b="$t1" \
        'BEGIN{printf "START_AMQP_SECONDS=%.2f\nSTART_SECONDS=%.2f\n", m-a, b-a}' >> "$DIR/node.env"
    echo "$NODE_URL"
}

# ends a pid: TERM, wait up to $2 seconds, then KILL
end_pid() {
    local pid=$1 wait=${2:-10} i
    alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 1 $(( wait * 10 ))); do alive "$pid" || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    for i in $(seq 1 20); do alive "$pid" || return 0; sleep 0.1; done
    return 1
}

# pids of beam.smp processes started for this DIR (matched on their exact -home/-epmd_port arguments)
own_beams() {
    local f c
    for f in /proc/[0-9]*/cmdline; do
        c=$( { tr '\0' ' ' < "$f"; } 2>/dev/null ) || continue
        case "$c" in
            *beam.smp*" -home $DIR -epmd_port $ERL_EPMD_PORT "*) f=${f#/proc/}; echo "${f%/cmdline}" ;;
        esac
    done
}

cmd_stop() {
    load_env
    local beam="" p
    [ -f "$RABBITMQ_PID_FILE" ] && beam=$(tr -dc '0-9' < "$RABBITMQ_PID_FILE")
    # SIGTERM to the VM is a graceful shutdown in RabbitMQ >= 3.8 (same as `rabbitmqctl stop`, without
    # the CLI's own ~2 s start); KILL after 15 s. erl_child_setup / inet_gethost go with the VM.
    # (A VM still booting acts on SIGTERM only once its boot is done, so this can take a few seconds.)
    [ -n "$beam" ] && end_pid "$beam" 15
    # Before the pid file is written (stop during start) the VM is only known by its command line,
    # which carries this node's own `-home DIR -epmd_port PORT`.
    for p in $(own_beams); do end_pid "$p" 15; beam="$beam $p"; done
    [ -n "${NODE_PID:-}" ] && end_pid "$NODE_PID" 5
    [ -n "${EPMD_PID:-}" ] && end_pid "$EPMD_PID" 5
    local left=""
    for p in $beam ${NODE_PID:-} ${EPMD_PID:-} $(own_beams); do alive "$p" && left="$left $p"; done
    [ -z "$left" ] || die 4 "processes still alive after stop:$left"
    rm -f "$RABBITMQ_PID_FILE"
    return 0
}

[ $# -ge 2 ] || usage
CMD=$1; DIR=$2; shift 2
[ -d "$DIR" ] && DIR=$(cd "$DIR" && pwd)
case "$CMD" in
    start) cmd_start ;;
    stop)  cmd_stop ;;
    env)   load_env; grep '^export ' "$DIR/node.env" ;;
    ctl)   load_env; exec "$RMQ_SBIN/rabbitmqctl" -n "$NODE_NAME" "$@" ;;
    *)     usage ;;
esac
