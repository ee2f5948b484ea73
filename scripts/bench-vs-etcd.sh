#!/usr/bin/env bash
# scripts/bench-vs-etcd.sh: our 5-node cluster against a 5-member etcd on this machine,
# same workload, same load generator (raft-cli bench for ours; raft-perf bench-etcd, the
# same generator with the same flags, talks to etcd's v3 JSON gateway), both with fsync on and default timing. Prints one table and rewrites the
# generated part of docs/performance.md.
#
#   scripts/bench-vs-etcd.sh            # the full run (about 5 minutes here)
#   QUICK=1 scripts/bench-vs-etcd.sh    # smaller counts, for trying the script itself
#   TCP=1 scripts/bench-vs-etcd.sh      # the transports side by side (about 2 minutes):
#                                       # ours over Unix sockets, ours over TCP with mutual
#                                       # TLS on 127.0.0.1, etcd over TCP; throughput and
#                                       # latency stages only, in a section of their own
#
# The machine may be shared, and its disk with it: both clusters run side by side while
# the throughput stages alternate between them (ours, etcd, ours, etcd, ...), each stage
# repeated REPS times and reported as the median, so a busy minute hits both. Failover,
# catch-up and RSS run with one cluster up at a time. Everything the script starts is
# killed by pid on exit, and the whole run is bounded by BENCH_TIME_LIMIT seconds (default 1200).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH_NAME=bench-vs-etcd
# shellcheck source=scripts/bench-lib.sh
. "$ROOT/scripts/bench-lib.sh"
QUICK=${QUICK:-0}
TIME_LIMIT=${BENCH_TIME_LIMIT:-1200}
OUT=${BENCH_OUT:-$ROOT/docs/performance.md}

if [ "$QUICK" = 1 ]; then
    N_W1=300 N_W16=3000 N_W64=6000 N_R16=10000 N_FILL=20000 N_FAILOVER=3 REPS=1
else
    N_W1=1500 N_W16=8000 N_W64=20000 N_R16=20000 N_FILL=100000 N_FAILOVER=5 REPS=3
fi

bench_install_etcd
bench_build
bench_start "$TIME_LIMIT"

if [ "${TCP:-0}" = 1 ]; then
    # ----- transports: ours on Unix sockets, ours on TCP+TLS, etcd on TCP ------------------
    # The three run side by side and the stages alternate between them, as below; each
    # of ours has its own dir and ports (RESP off on the TCP one, so the two do not clash).
    [ "$QUICK" = 1 ] && REPS=1 || REPS=${TCP_REPS:-2}
    {
        machine_info
        echo "workload: 16-byte keys, 100-byte values, window 1 per client; $N_W1 / $N_W16 / $N_W64 writes at 1 / 16 / 64 clients; $N_R16 reads at 16 clients; each stage $REPS times, alternating between the three, median reported"
    } >"$RES/machine.txt"
    raft_up "$WORK/unix"
    CFG_UNIX=$RAFT_CFG
    EXTRA_SUP_PIDS+=("$SUP_PID")
    TCP_BASE=${TCP_PORT_BASE:-27000}
    raft_up "$WORK/tcp" "transport = \"tcp\"
addrs = [\"127.0.0.1:$((TCP_BASE + 1))\", \"127.0.0.1:$((TCP_BASE + 2))\", \"127.0.0.1:$((TCP_BASE + 3))\", \"127.0.0.1:$((TCP_BASE + 4))\", \"127.0.0.1:$((TCP_BASE + 5))\"]
redis_port = 0"
    CFG_TCP=$RAFT_CFG
    etcd_setup "$WORK/etcd" "${ETCD_PORT_BASE:-23790}"
    for i in 1 2 3 4 5; do start_etcd "$i"; done
    "$PERF" leader --etcd "$ETCD_EPS" --deadline-ms 30000 >/dev/null || die "etcd elected no leader; see $WORK/etcd/*.log"
    tbench() { # tbench SYSTEM NAME ARGS...: SYSTEM is raft (Unix), rafttcp or etcd
        local sys=$1 name=$2
        shift 2
        local out=$RES/$sys-$name.json
        case $sys in
            etcd) run_bg "$PERF" bench-etcd --timeout 10s --etcd "$ETCD_EPS" --json --value-size 100 "$@" >"$out" ;;
            raft) run_bg "$BIN/raft-cli" --timeout 10s --config "$CFG_UNIX" bench --json --value-size 100 "$@" >"$out" ;;
            rafttcp) run_bg "$BIN/raft-cli" --timeout 10s --config "$CFG_TCP" bench --json --value-size 100 "$@" >"$out" ;;
        esac
        log "$sys $name: $(head -c 300 "$out")"
    }
    for sys in raft rafttcp etcd; do
        tbench "$sys" warmup --clients 16 --window 1 --requests 2000 --read-ratio 0 --keys 1000
    done
    for rep in $(seq "$REPS"); do
        for sys in raft rafttcp etcd; do
            tbench "$sys" "w1-$rep" --clients 1 --window 1 --requests "$N_W1" --read-ratio 0 --keys 1000
            tbench "$sys" "w16-$rep" --clients 16 --window 1 --requests "$N_W16" --read-ratio 0 --keys 1000
            tbench "$sys" "w64-$rep" --clients 64 --window 1 --requests "$N_W64" --read-ratio 0 --keys 1000
            tbench "$sys" "r16-$rep" --clients 16 --window 1 --requests "$N_R16" --read-ratio 1 --keys 1000
        done
    done
    echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$RES/machine.txt"
    "$PERF" tcp-report --results "$RES" --out "$OUT"
    log "wrote $OUT"
    exit 0
fi

# ----- the machine -------------------------------------------------------------------
{
    machine_info
    echo "workload: 16-byte keys, 100-byte values, window 1 per client; $N_W1 / $N_W16 / $N_W64 writes at 1 / 16 / 64 clients; $N_R16 reads at 16 clients; each stage $REPS times, alternating between the systems, median reported; fill of $N_FILL keys (sequential, 64 clients, window 8) while one follower is down: the catch-up and RSS rows are about those $N_FILL writes"
} >"$RES/machine.txt"

bench() { # bench SYSTEM NAME ARGS... : one run of the load generator, its JSON kept
    local sys=$1 name=$2
    shift 2
    local out=$RES/$sys-$name.json
    if [ "$sys" = etcd ]; then
        run_bg "$PERF" bench-etcd --timeout 10s --etcd "$ETCD_EPS" --json --value-size 100 "$@" >"$out"
    else
        run_bg "$BIN/raft-cli" --timeout 10s --config "$RAFT_CFG" bench --json --value-size 100 "$@" >"$out"
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

# ----- ours ------------------------------------------------------------------------
raft_up "$WORK/raft"

# ----- etcd -------------------------------------------------------------------------
etcd_setup "$WORK/etcd" "${ETCD_PORT_BASE:-23790}"
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
raft_down


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
stop_etcd

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$RES/machine.txt"
for sys in raft etcd; do
    for f in "$RES/$sys"-w*.json "$RES/$sys"-r*.json "$RES/$sys"-fill.json; do
        [ -f "$f" ] && details "$(basename "$f" .json): $(cat "$f")"
    done
done

"$PERF" report --results "$RES" --out "$OUT"
log "wrote $OUT"
