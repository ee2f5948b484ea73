#!/usr/bin/env bash
# scripts/bench-scale.sh: the benchmark of issue 12. Fills a fresh 5-node cluster with
# 1,000,000 and then 5,000,000 keys (16-byte keys, 100-byte values, 64 clients, window 8,
# writes only, sequential keys: the issue's `raft-cli bench` workload), one tenth at a
# time, and after each tenth records throughput, p50/p99/p99.9, leader and term, every
# node's RSS and the snapshots the node logs report. Around each fill:
#
#   * one follower is SIGKILLed before the last tenth and started after it: catch-up time,
#     and the snapshot transfer (size, time, MB/s) when one was sent;
#   * another follower is restarted: time until it is caught up, its recovery time from
#     its own log, and MB/s over the snapshot and WAL it read;
#   * every node is SIGKILLed at once (by pid), then all are waited for; every key of the
#     fill is counted through prefix listings and a sample of values is read back.
#
# A 5-member etcd gets the same 1,000,000-key fill, per tenth too (and the same follower
# kill before the last tenth), side by side. The report (`raft-perf scale-report`) goes
# between its own markers in docs/performance.md.
#
#   scripts/bench-scale.sh              # the full run (1M + 5M + etcd 1M; tens of minutes)
#   QUICK=1 scripts/bench-scale.sh      # 100,000 and 200,000 keys, etcd 100,000: a few minutes
#
# Environment: BENCH_TIME_LIMIT (seconds, default 2700) bounds the whole run; SCALE_FILLS
# ("1000000 5000000") and SCALE_ETCD_FILL (1000000; empty skips etcd) override the sizes;
# BENCH_OUT the document written; BENCH_KEEP=1 keeps the temp dir (node logs, results).
# Everything the script starts is killed by pid on exit. A step that fails is noted in
# the report ("Steps that failed") and the run goes on with the next one; a run stopped by
# the time limit or Ctrl-C still writes the report of what it measured, saying so.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH_NAME=bench-scale
# shellcheck source=scripts/bench-lib.sh
. "$ROOT/scripts/bench-lib.sh"
QUICK=${QUICK:-0}
TIME_LIMIT=${BENCH_TIME_LIMIT:-2700}
OUT=${BENCH_OUT:-$ROOT/docs/performance.md}

if [ "$QUICK" = 1 ]; then
    FILLS=${SCALE_FILLS:-100000 200000} ETCD_FILL=${SCALE_ETCD_FILL-100000} SAMPLES=200 DISK_MIB=64
else
    FILLS=${SCALE_FILLS:-1000000 5000000} ETCD_FILL=${SCALE_ETCD_FILL-1000000} SAMPLES=1000 DISK_MIB=256
fi
# Per-step deadlines grow with the largest fill: about 100 ms per 1,000 keys, at least 60 s.
MAX_FILL=$(printf '%s\n' $FILLS | sort -n | tail -1)
STEP_MS=$(( MAX_FILL / 10 > 60000 ? MAX_FILL / 10 : 60000 ))

[ -n "$ETCD_FILL" ] && bench_install_etcd
bench_build
bench_start "$TIME_LIMIT"

{
    machine_info
    if [ "$QUICK" = 1 ]; then echo "mode: QUICK (fills of $FILLS keys)"; else echo "mode: full"; fi
    echo "workload: fresh 5-node cluster per fill, default settings, fsync on; raft-cli bench --clients 64 --window 8 --read-ratio 0 --sequential-keys --value-size 100, 16-byte keys, run as ten consecutive tenths of $(echo $FILLS | sed 's/ / and /') keys; etcd 3.4, 5 members, default settings, the same generator, ${ETCD_FILL:-no} keys"
} >"$RES/machine.txt"

note() { log "step failed: $*"; echo "$*" >>"$RES/notes.txt"; }

# A run stopped early (time limit, Ctrl-C, a broken step) still reports what it measured,
# with a note saying so; the processes are gone by then (bench_cleanup).
REPORTED=0
bench_on_exit() {
    [ "$REPORTED" = 1 ] && return 0
    ls "$RES"/scale-*-raft.jsonl >/dev/null 2>&1 || return 0
    echo "the run stopped early (exit $1); whatever is n/a or missing was not measured" >>"$RES/notes.txt"
    "$PERF" scale-report --results "$RES" --out "$OUT" >/dev/null && log "wrote the partial report to $OUT"
}

sup() { "$BIN/raft-supervisor" --config "$RAFT_CFG" "$@"; }
leader() { "$PERF" leader --raft-config "$RAFT_CFG" --deadline-ms 30000; }
fill() { # fill SYSTEM N TENTHS: tenths A-B of the fill of N keys, one JSON line each
    local sys=$1 n=$2 tenths=$3 out=$RES/scale-$2-$1.jsonl
    log "$sys: fill of $n keys, tenths $tenths"
    if [ "$sys" = etcd ]; then
        run_bg "$PERF" scale-fill --etcd "$ETCD_EPS" --pids "$(etcd_pids)" --keys "$n" --tenths "$tenths" >>"$out" \
            || note "etcd fill of $n keys, tenths $tenths: exit $?"
    else
        run_bg "$PERF" scale-fill --raft-config "$RAFT_CFG" --keys "$n" --tenths "$tenths" >>"$out" \
            || note "our fill of $n keys, tenths $tenths: exit $?"
    fi
    tail -1 "$out" | cut -c1-400 >&2 || true
}

log "disk rate ($DISK_MIB MiB)"
run_bg "$PERF" disk-rate --dir "$WORK" --mib "$DISK_MIB" >"$RES/disk-rate.txt" || note "disk-rate: exit $?"

raft_scale() { # raft_scale N: the whole sequence on a fresh cluster
    local n=$1 dir=$WORK/raft-$1 l f r t0 pids i
    raft_up "$dir"
    l=$(leader)
    f=$(( l % 5 + 1 ))
    fill raft "$n" 0-8
    log "ours: killing follower n$f before the last tenth"
    sup kill "$f" >/dev/null || note "raft-supervisor kill $f failed"
    fill raft "$n" 9-9

    log "ours: catch-up of n$f"
    t0=$(date +%s%N)
    sup start "$f" >/dev/null || note "raft-supervisor start $f failed"
    run_bg "$PERF" scale-catchup --raft-config "$RAFT_CFG" --node "$f" --since "$t0" --deadline-ms "$STEP_MS" \
        >"$RES/scale-$n-raft-catchup.json" || note "catch-up of n$f after the $n fill: exit $?"
    cat "$RES/scale-$n-raft-catchup.json" >&2
    sleep 1
    "$PERF" rss "$("$PERF" raft-pids --raft-config "$RAFT_CFG")" >"$RES/scale-$n-raft-rss.txt" || note "RSS after the $n fill"

    l=$(leader)
    r=1
    while [ "$r" = "$l" ] || [ "$r" = "$f" ]; do r=$((r + 1)); done
    log "ours: restart of n$r"
    run_bg "$PERF" restart-time --raft-config "$RAFT_CFG" --supervisor "$BIN/raft-supervisor" --node "$r" \
        --deadline-ms "$STEP_MS" >"$RES/scale-$n-raft-restart.json" || note "restart of n$r after the $n fill: exit $?"
    cat "$RES/scale-$n-raft-restart.json" >&2

    log "ours: kill -9 of every node"
    if pids=$("$PERF" raft-pids --raft-config "$RAFT_CFG"); then
        t0=$(date +%s%N)
        kill -KILL ${pids//,/ }
        for p in ${pids//,/ }; do wait_gone "$p"; done
        # The supervisor restarts crashed nodes itself (with backoff); `start` covers one
        # it gave up on. "already running" is the usual answer.
        for i in 1 2 3 4 5; do sup start "$i" >/dev/null 2>&1 || true; done
        run_bg "$PERF" scale-verify --raft-config "$RAFT_CFG" --keys "$n" --since "$t0" --samples "$SAMPLES" \
            --deadline-ms "$STEP_MS" >"$RES/scale-$n-raft-verify.json" || note "kill -9 of every node after the $n fill: exit $?"
        cat "$RES/scale-$n-raft-verify.json" >&2
    else
        note "kill -9 of every node after the $n fill: not every node answered before it"
    fi

    raft_down
    [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$dir" # the next fill needs the disk space
}

etcd_scale() { # etcd_scale N
    local n=$1 l f t0
    etcd_setup "$WORK/etcd-$n" "${ETCD_PORT_BASE:-23790}"
    log "starting a 5-member etcd on 127.0.0.1:$((ETCD_PORT_BASE + 2))..$((ETCD_PORT_BASE + 10))"
    for i in 1 2 3 4 5; do start_etcd "$i"; done
    l=$("$PERF" leader --etcd "$ETCD_EPS" --deadline-ms 30000) || die "etcd elected no leader; see $ETCD_DATA/*.log"
    f=$(( l % 5 + 1 ))
    fill etcd "$n" 0-8
    log "etcd: killing member $f before the last tenth"
    kill -KILL "${ETCD_PIDS[$((f - 1))]}"
    wait_gone "${ETCD_PIDS[$((f - 1))]}"
    fill etcd "$n" 9-9
    t0=$(date +%s%N)
    start_etcd "$f"
    run_bg "$PERF" catchup --etcd "$ETCD_EPS" --node "$f" --since "$t0" --deadline-ms "$STEP_MS" \
        >"$RES/scale-$n-etcd-catchup.txt" || note "etcd catch-up after the $n fill: exit $?"
    sleep 1
    "$PERF" rss "$(etcd_pids)" >"$RES/scale-$n-etcd-rss.txt" || note "etcd RSS after the $n fill"
    stop_etcd
    [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$ETCD_DATA"
}

# Ours then etcd on the same size back to back, then the larger fills.
for n in $FILLS; do
    raft_scale "$n"
    if [ "$n" = "$ETCD_FILL" ]; then etcd_scale "$n"; fi
done

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$RES/machine.txt"
"$PERF" scale-report --results "$RES" --out "$OUT"
REPORTED=1
log "wrote $OUT"
