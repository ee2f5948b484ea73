# scripts/bench-lib.sh: the shell shared by bench-vs-etcd.sh and bench-scale.sh. Source it
# after setting BENCH_NAME (used in log lines and temp dir names) and ROOT (the workspace).
#
#   bench_install_etcd         etcd and etcdctl from the distribution packages, when missing
#   bench_build                our release binaries; sets BIN and PERF
#   bench_start TIME_LIMIT     WORK (temp dir), RES (results in it), the cleanup trap and a
#                              watchdog that stops the script after TIME_LIMIT seconds
#   run_bg CMD ARGS...         runs a long step so the watchdog and Ctrl-C can interrupt it
#   raft_up DIR [TOML] / raft_down  our 5-node cluster in DIR (TOML: extra config lines);
#                              sets RAFT_CFG and SUP_PID
#   etcd_setup DATA PORT_BASE  a 5-member etcd's addresses (CLUSTER, ETCD_EPS); then
#   start_etcd I / stop_etcd   member I (1..5) started, all stopped; ETCD_PIDS, etcd_pids
#   wait_gone PID              until the process has exited (at most 10 s)
#   machine_info               date, CPU, disk, versions and load, one "key: value" a line
#
# Everything started here is killed by pid on exit: etcd members, the supervisor (whose
# nodes die with it), the step run by run_bg, the watchdog. Then bench_on_exit RC runs, if
# the script defines it. Set BENCH_KEEP=1 to keep WORK.

log() { printf '%s %s: %s\n' "$(date +%H:%M:%S)" "$BENCH_NAME" "$*" >&2; }
die() { log "error: $*"; exit 1; }

bench_install_etcd() {
    if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null; then
        log "installing etcd from the distribution packages"
        local sudo=""
        [ "$(id -u)" = 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq etcd-server etcd-client >/dev/null
    fi
    # The Debian package may start a system etcd on 2379; ours use their own ports and dirs.
}

bench_build() {
    log "building release binaries"
    (cd "$ROOT" && cargo build --release -q -p raft-node -p raft-supervisor -p raft-cli -p raft-perf)
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
    local b
    for b in raft-node raft-supervisor raft-cli raft-perf; do [ -x "$BIN/$b" ] || die "missing $BIN/$b"; done
    PERF=$BIN/raft-perf
}

ETCD_PIDS=("" "" "" "" "")
SUP_PID=""
EXTRA_SUP_PIDS=()
WATCHDOG=""
CHILD_PID=""
RAFT_CFG=""
WORK=""

bench_cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [ -n "$CHILD_PID" ] && kill -KILL "$CHILD_PID" 2>/dev/null || true
    local p
    for p in "${ETCD_PIDS[@]}"; do
        [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true
    done
    # Reaped here, or they would stay zombies under an init that does not reap.
    for p in "${ETCD_PIDS[@]}"; do
        [ -n "$p" ] && wait_gone "$p"
    done
    # A second cluster of ours (bench-vs-etcd.sh TCP=1): its supervisor, whose nodes die with it.
    for p in "${EXTRA_SUP_PIDS[@]}"; do
        [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true
    done
    if [ -n "$SUP_PID" ] && kill -0 "$SUP_PID" 2>/dev/null; then
        timeout 10 "$BIN/raft-supervisor" --config "$RAFT_CFG" down >/dev/null 2>&1 || true
        kill -KILL "$SUP_PID" 2>/dev/null || true
    fi
    [ -n "$WATCHDOG" ] && kill "$WATCHDOG" 2>/dev/null || true
    # A script's last word on what it has (a report of a run stopped early), if it has one.
    if declare -F bench_on_exit >/dev/null; then bench_on_exit "$rc" || true; fi
    if [ -n "$WORK" ]; then
        if [ "${BENCH_KEEP:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
    fi
    exit "$rc"
}

bench_start() { # bench_start TIME_LIMIT
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/$BENCH_NAME.XXXXXX")
    RES=$WORK/results
    mkdir -p "$RES"
    trap bench_cleanup EXIT
    trap 'log "interrupted"; exit 130' INT TERM
    # Bound the whole run: the watchdog stops the script, whose EXIT trap cleans up. Its
    # sleep is a child it kills itself when it is killed, so nothing outlives the script.
    local limit=$1 me=$$
    (
        trap 'kill "$sp" 2>/dev/null; exit 0' TERM
        sleep "$limit" &
        sp=$!
        wait "$sp"
        echo "$BENCH_NAME: time limit of ${limit}s reached" >&2
        kill -TERM "$me"
    ) &
    WATCHDOG=$!
}

# run_bg CMD ARGS...: a step in the background that the script waits for, so a signal
# (the watchdog's, Ctrl-C) interrupts the wait at once and the cleanup kills the step.
run_bg() {
    "$@" &
    CHILD_PID=$!
    local rc=0
    wait "$CHILD_PID" || rc=$?
    CHILD_PID=""
    return "$rc"
}

raft_up() { # raft_up DIR [TOML]: a 5-node cluster with default settings and fsync on
    mkdir -p "$1"
    RAFT_CFG=$1/cluster.toml
    cat >"$RAFT_CFG" <<EOF
dir = "$1"
fsync = true
${2:-}
EOF
    # TLS over TCP needs the CA and node certificates before the nodes start.
    if grep -q '^transport = "tcp"' "$RAFT_CFG" && ! grep -q '^insecure = true' "$RAFT_CFG"; then
        "$BIN/raft-supervisor" --config "$RAFT_CFG" certs >&2
    fi
    log "starting our 5-node cluster in $1"
    "$BIN/raft-supervisor" --config "$RAFT_CFG" up --detach >&2
    local first_pid
    first_pid=$("$PERF" raft-pids --raft-config "$RAFT_CFG" | cut -d, -f1)
    SUP_PID=$(ps -o ppid= -p "$first_pid" | tr -d ' ')
    log "supervisor pid $SUP_PID"
}

raft_down() {
    timeout 20 "$BIN/raft-supervisor" --config "$RAFT_CFG" down >/dev/null 2>&1 || kill -KILL "$SUP_PID" 2>/dev/null || true
    SUP_PID=""
}

etcd_setup() { # etcd_setup DATA_DIR PORT_BASE: member i serves clients on BASE+2i, peers on BASE+2i+1
    ETCD_DATA=$1
    ETCD_PORT_BASE=$2
    mkdir -p "$ETCD_DATA"
    CLUSTER=""
    ETCD_EPS=""
    local i cp pp
    for i in 1 2 3 4 5; do
        cp=$((ETCD_PORT_BASE + 2 * i)); pp=$((cp + 1))
        CLUSTER+="${CLUSTER:+,}m$i=http://127.0.0.1:$pp"
        ETCD_EPS+="${ETCD_EPS:+,}127.0.0.1:$cp"
    done
}

start_etcd() { # start_etcd I: member I (1..5), same flags on first start and restart
    local i=$1 cp=$((ETCD_PORT_BASE + 2 * $1)) pp=$((ETCD_PORT_BASE + 2 * $1 + 1))
    etcd --name "m$i" --data-dir "$ETCD_DATA/m$i" \
        --listen-client-urls "http://127.0.0.1:$cp" --advertise-client-urls "http://127.0.0.1:$cp" \
        --listen-peer-urls "http://127.0.0.1:$pp" --initial-advertise-peer-urls "http://127.0.0.1:$pp" \
        --initial-cluster "$CLUSTER" --initial-cluster-state new --initial-cluster-token "bench-$$" \
        --logger zap --log-level error >>"$ETCD_DATA/m$i.log" 2>&1 &
    ETCD_PIDS[$((i - 1))]=$!
    disown "$!" # killed on purpose later: no job notices from the shell
}

wait_gone() { # wait_gone PID: until the process has exited (at most 10 s)
    local n=0
    while kill -0 "$1" 2>/dev/null && [ $n -lt 1000 ]; do sleep 0.01; n=$((n + 1)); done
}

etcd_pids() { local IFS=,; echo "${ETCD_PIDS[*]}"; }

stop_etcd() {
    local p
    for p in "${ETCD_PIDS[@]}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done
    for p in "${ETCD_PIDS[@]}"; do [ -n "$p" ] && wait_gone "$p"; done
    ETCD_PIDS=("" "" "" "" "")
}

machine_info() {
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), kernel $(uname -r)"
    echo "disk: $(df -T "$WORK" | awk 'NR==2 {print $2 " on " $1}') (temp dirs under ${TMPDIR:-/tmp})"
    echo "etcd: $(etcd --version 2>/dev/null | head -1 | sed 's/etcd Version: //'), ours: $(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo unknown)"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
}
