#!/usr/bin/env bash
# scripts/bench-vs-etcd.sh: our 5-node cluster against a 5-member etcd on this machine,
# same workload, same load generator (raft-cli bench for ours; raft-perf bench-etcd, the
# same generator with the same flags, talks to etcd's v3 JSON gateway), both with fsync on and default timing. Prints one table and rewrites the
# generated part of docs/performance.md.
#
#   scripts/bench-vs-etcd.sh            # the full run (about 5 minutes here)
#   QUICK=1 scripts/bench-vs-etcd.sh    # smaller counts, for trying the script itself
#
# The machine may be shared, and its disk with it: both clusters run side by side while
# the throughput stages alternate between them (ours, etcd, ours, etcd, ...), each stage
# repeated REPS times and reported as the median, so a busy minute hits both. Failover,
# catch-up and RSS run with one cluster up at a time. Everything the script starts is
# killed by pid on exit, and the whole run is bounded by BENCH_TIME_LIMIT seconds (default 1200).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
QUICK=${QUICK:-0}
TIME_LIMIT=${BENCH_TIME_LIMIT:-1200}
ETCD_PORT_BASE=${ETCD_PORT_BASE:-23790}
OUT=${BENCH_OUT:-$ROOT/docs/performance.md}

if [ "$QUICK" = 1 ]; then
    N_W1=300 N_W16=3000 N_W64=6000 N_R16=10000 N_FILL=20000 N_FAILOVER=3 REPS=1
else
    N_W1=1500 N_W16=8000 N_W64=20000 N_R16=20000 N_FILL=100000 N_FAILOVER=5 REPS=3
fi

log() { printf '%s bench-vs-etcd: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ----- etcd from the distribution, when missing ---------------------------------------
if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null; then
    log "installing etcd from the distribution packages"
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq etcd-server etcd-client >/dev/null
fi
# The Debian package may start a system etcd on 2379; ours use their own ports and dirs.

# ----- our binaries ------------------------------------------------------------------
log "building release binaries"
(cd "$ROOT" && cargo build --release -q -p raft-node -p raft-supervisor -p raft-cli -p raft-perf)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
for b in raft-node raft-supervisor raft-cli raft-perf; do [ -x "$BIN/$b" ] || die "missing $BIN/$b"; done
PERF=$BIN/raft-perf

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-vs-etcd.XXXXXX")
RES=$WORK/results
mkdir -p "$RES" "$WORK/etcd"

# ----- cleanup: every process we started, by pid -------------------------------------
ETCD_PIDS=("" "" "" "" "")
SUP_PID=""
WATCHDOG=""
RAFT_CFG=$WORK/raft/cluster.toml
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    for p in "${ETCD_PIDS[@]}"; do
        [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true
    done
    if [ -n "$SUP_PID" ] && kill -0 "$SUP_PID" 2>/dev/null; then
        timeout 10 "$BIN/raft-supervisor" --config "$RAFT_CFG" down >/dev/null 2>&1 || true
        kill -KILL "$SUP_PID" 2>/dev/null || true
    fi
    [ -n "$WATCHDOG" ] && kill "$WATCHDOG" 2>/dev/null || true
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM
# Bound the whole run: the watchdog stops the script, whose EXIT trap cleans up.
( sleep "$TIME_LIMIT"; echo "bench-vs-etcd: time limit of ${TIME_LIMIT}s reached" >&2; kill -TERM $$ ) &
WATCHDOG=$!

# ----- the machine -------------------------------------------------------------------
{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), kernel $(uname -r)"
    echo "disk: $(df -T "$WORK" | awk 'NR==2 {print $2 " on " $1}') (temp dirs under ${TMPDIR:-/tmp})"
    echo "etcd: $(etcd --version 2>/dev/null | head -1 | sed 's/etcd Version: //'), ours: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "workload: 16-byte keys, 100-byte values, window 1 per client; $N_W1 / $N_W16 / $N_W64 writes at 1 / 16 / 64 clients; $N_R16 reads at 16 clients; each stage $REPS times, alternating between the systems, median reported; fill of $N_FILL keys (sequential, 64 clients, window 8) while one follower is down: the catch-up and RSS rows are about those $N_FILL writes"
} >"$RES/machine.txt"

bench() { # bench SYSTEM NAME ARGS... : one run of the load generator, its JSON kept
    local sys=$1 name=$2
    shift 2
    local out=$RES/$sys-$name.json
    if [ "$sys" = etcd ]; then
        "$PERF" bench-etcd --timeout 10s --etcd "$ETCD_EPS" --json --value-size 100 "$@" >"$out"
    else
        "$BIN/raft-cli" --timeout 10s --config "$RAFT_CFG" bench --json --value-size 100 "$@" >"$out"
    fi
    log "$sys $name: $(head -c 300 "$out")"
}

details() { echo "$*" >>"$RES/details.txt"; }

# One stage of the workload, the same for both systems (names match the report).
stage() { # stage SYSTEM NAME REP
    local sys=$1 name=$2 rep=$3
    case $name in
        w1)
            # The floor (one 4 KiB write + fdatasync, one Unix round trip) right before
            # the 1-client run: the disk is shared with whatever else the machine does.
            "$PERF" floor --dir "$WORK" >"$RES/floor-$sys-$rep.txt"
            log "$sys floor: $(tr '\n' ' ' <"$RES/floor-$sys-$rep.txt")"
            bench "$sys" "w1-$rep" --clients 1 --window 1 --requests "$N_W1" --read-ratio 0 --keys 1000 ;;
        w16) bench "$sys" "w16-$rep" --clients 16 --window 1 --requests "$N_W16" --read-ratio 0 --keys 1000 ;;
        w64) bench "$sys" "w64-$rep" --clients 64 --window 1 --requests "$N_W64" --read-ratio 0 --keys 1000 ;;
        r16) bench "$sys" "r16-$rep" --clients 16 --window 1 --requests "$N_R16" --read-ratio 1 --keys 1000 ;;
    esac
}

# ----- ours --------------------------------------------------------------------------
mkdir -p "$WORK/raft"
cat >"$RAFT_CFG" <<EOF
dir = "$WORK/raft"
fsync = true
EOF
log "starting our 5-node cluster in $WORK/raft"
"$BIN/raft-supervisor" --config "$RAFT_CFG" up --detach >&2
first_pid=$("$PERF" raft-pids --raft-config "$RAFT_CFG" | cut -d, -f1)
SUP_PID=$(ps -o ppid= -p "$first_pid" | tr -d ' ')
log "supervisor pid $SUP_PID"


# ----- etcd -------------------------------------------------------------------------
CLUSTER=""
ETCD_EPS=""
for i in 1 2 3 4 5; do
    cp=$((ETCD_PORT_BASE + 2 * i)); pp=$((cp + 1))
    CLUSTER+="${CLUSTER:+,}m$i=http://127.0.0.1:$pp"
    ETCD_EPS+="${ETCD_EPS:+,}127.0.0.1:$cp"
done
start_etcd() { # start_etcd I: member I (1..5), same flags on first start and restart
    local i=$1 cp=$((ETCD_PORT_BASE + 2 * $1)) pp=$((ETCD_PORT_BASE + 2 * $1 + 1))
    etcd --name "m$i" --data-dir "$WORK/etcd/m$i" \
        --listen-client-urls "http://127.0.0.1:$cp" --advertise-client-urls "http://127.0.0.1:$cp" \
        --listen-peer-urls "http://127.0.0.1:$pp" --initial-advertise-peer-urls "http://127.0.0.1:$pp" \
        --initial-cluster "$CLUSTER" --initial-cluster-state new --initial-cluster-token "bench-$$" \
        --logger zap --log-level error >>"$WORK/etcd/m$i.log" 2>&1 &
    ETCD_PIDS[$((i - 1))]=$!
    disown "$!" # killed on purpose later: no job notices from the shell
}
wait_gone() { # wait_gone PID: until the process has exited (at most 10 s)
    local n=0
    while kill -0 "$1" 2>/dev/null && [ $n -lt 1000 ]; do sleep 0.01; n=$((n + 1)); done
}
etcd_pids() { local IFS=,; echo "${ETCD_PIDS[*]}"; }

log "starting a 5-member etcd on 127.0.0.1:$((ETCD_PORT_BASE + 2))..$((ETCD_PORT_BASE + 10))"
for i in 1 2 3 4 5; do start_etcd "$i"; done
"$PERF" leader --etcd "$ETCD_EPS" --deadline-ms 30000 >/dev/null || die "etcd elected no leader; see $WORK/etcd/*.log"


log "throughput stages, alternating: ours, etcd ($REPS times each)"
bench raft warmup --clients 16 --window 1 --requests 2000 --read-ratio 0 --keys 1000
bench etcd warmup --clients 16 --window 1 --requests 2000 --read-ratio 0 --keys 1000
for rep in $(seq "$REPS"); do
    for name in w1 w16 w64 r16; do
        stage raft "$name" "$rep"
        stage etcd "$name" "$rep"
    done
done

raft_follower() { # a node that is not the leader
    local l
    l=$("$PERF" leader --raft-config "$RAFT_CFG")
    echo $(( l % 5 + 1 ))
}
raft_wait_caught_up() { # raft_wait_caught_up NODE
    "$PERF" catchup --raft-config "$RAFT_CFG" --node "$1" --since "$(date +%s%N)" --deadline-ms 30000 >/dev/null
}

log "ours: catch-up of $N_FILL missed writes, then RSS"
F=$(raft_follower)
"$BIN/raft-supervisor" --config "$RAFT_CFG" kill "$F" >/dev/null
bench raft fill --clients 64 --window 8 --requests "$N_FILL" --read-ratio 0 --keys "$N_FILL" --sequential-keys
T0=$(date +%s%N)
"$BIN/raft-supervisor" --config "$RAFT_CFG" start "$F" >/dev/null
"$PERF" catchup --raft-config "$RAFT_CFG" --node "$F" --since "$T0" --deadline-ms 60000 | tee "$RES/raft-catchup.txt" >&2
details "ours catch-up: $(cat "$RES/raft-catchup.txt")"
sleep 1
"$PERF" rss "$("$PERF" raft-pids --raft-config "$RAFT_CFG")" >"$RES/raft-rss.txt"
details "ours RSS KiB per node: $(cat "$RES/raft-rss.txt")"

log "ours: failover x$N_FAILOVER"
for i in $(seq "$N_FAILOVER"); do
    "$PERF" failover --raft-config "$RAFT_CFG" --supervisor "$BIN/raft-supervisor" | tee -a "$RES/raft-failover.txt" >&2
    killed=$(tail -1 "$RES/raft-failover.txt" | sed -n 's/.*killed=n\([0-9]*\).*/\1/p')
    "$BIN/raft-supervisor" --config "$RAFT_CFG" start "$killed" >/dev/null
    raft_wait_caught_up "$killed"
    sleep 1
done
details "ours failover: $(tr '\n' ';' <"$RES/raft-failover.txt")"

log "stopping our cluster (etcd keeps running for its own catch-up, RSS and failover)"
timeout 20 "$BIN/raft-supervisor" --config "$RAFT_CFG" down >/dev/null 2>&1 || kill -KILL "$SUP_PID" 2>/dev/null || true
SUP_PID=""


log "etcd: catch-up of $N_FILL missed writes, then RSS"
L=$("$PERF" leader --etcd "$ETCD_EPS")
F=$(( L % 5 + 1 ))
kill -KILL "${ETCD_PIDS[$((F - 1))]}"
wait_gone "${ETCD_PIDS[$((F - 1))]}"
bench etcd fill --clients 64 --window 8 --requests "$N_FILL" --read-ratio 0 --keys "$N_FILL" --sequential-keys
T0=$(date +%s%N)
start_etcd "$F"
"$PERF" catchup --etcd "$ETCD_EPS" --node "$F" --since "$T0" --deadline-ms 60000 | tee "$RES/etcd-catchup.txt" >&2
details "etcd catch-up: $(cat "$RES/etcd-catchup.txt")"
sleep 1
"$PERF" rss "$(etcd_pids)" >"$RES/etcd-rss.txt"
details "etcd RSS KiB per member: $(cat "$RES/etcd-rss.txt")"

log "etcd: failover x$N_FAILOVER"
for i in $(seq "$N_FAILOVER"); do
    "$PERF" failover --etcd "$ETCD_EPS" --pids "$(etcd_pids)" | tee -a "$RES/etcd-failover.txt" >&2
    killed=$(tail -1 "$RES/etcd-failover.txt" | sed -n 's/.*killed=ep\([0-9]*\).*/\1/p')
    wait_gone "${ETCD_PIDS[$((killed - 1))]}"
    start_etcd "$killed"
    "$PERF" catchup --etcd "$ETCD_EPS" --node "$killed" --since "$(date +%s%N)" --deadline-ms 30000 >/dev/null
    sleep 1
done
details "etcd failover: $(tr '\n' ';' <"$RES/etcd-failover.txt")"

log "stopping etcd"
for p in "${ETCD_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
for p in "${ETCD_PIDS[@]}"; do wait_gone "$p"; done
ETCD_PIDS=("" "" "" "" "")

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$RES/machine.txt"
for sys in raft etcd; do
    for f in "$RES/$sys"-w*.json "$RES/$sys"-r*.json "$RES/$sys"-fill.json; do
        [ -f "$f" ] && details "$(basename "$f" .json): $(cat "$f")"
    done
done

"$PERF" report --results "$RES" --out "$OUT"
log "wrote $OUT"
