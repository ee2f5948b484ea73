#!/usr/bin/env bash
# scripts/bench-vs-redis.sh: our 5-node cluster through its RESP front end against a
# Redis 7 server from Debian, with the same load generator: redis-benchmark, SET and GET,
# 100-byte values (-d 100), 100,000 random keys (-r 100000), at 1, 16 and 64 clients.
# Redis runs with `--appendonly yes --appendfsync always --save ''`: one node, every write
# fsynced before the reply, the fastest durable choice a Redis user has; ours fsyncs
# every write on a majority of five before the reply. Both run side by side; the cases
# alternate between them (ours, redis, ours, redis, ...), each REPS times, and the table
# gives the medians. It replaces the marked section of docs/performance.md.
#
#   scripts/bench-vs-redis.sh            # REQUESTS per case (default 20000; 1 client: a tenth)
#   REQUESTS=5000 REPS=1 scripts/bench-vs-redis.sh   # a quick try of the script itself
#
# Before each of our 1-client runs, `raft-perf replica-floor` measures the disk's floor for
# a 5-replica write here (five 4 KiB appends + fdatasync started together, the time until
# the third has finished, median of many rounds); the table shows it beside both 1-client
# p50s (issue 16's target: ours at most 1.25 times the floor).
#
# Our clients talk to the leader's RESP port (a follower would forward every command to
# it: one more hop). Everything started here is killed by pid on exit (the Redis server,
# our supervisor and its nodes); the run is bounded by BENCH_TIME_LIMIT seconds (900).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH_NAME=bench-vs-redis
# shellcheck source=scripts/bench-lib.sh
. "$ROOT/scripts/bench-lib.sh"
TIME_LIMIT=${BENCH_TIME_LIMIT:-900}
OUT=${BENCH_OUT:-$ROOT/docs/performance.md}
REQUESTS=${REQUESTS:-20000}
REPS=${REPS:-3}
CLIENTS="1 16 64"

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
    log "installing redis-server and redis-tools from the distribution packages"
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server redis-tools >/dev/null
    # The package may start a system Redis on 6379; ours runs on its own port and dir.
fi

REDIS_PID=""
bench_on_exit() {
    if [ -n "$REDIS_PID" ]; then
        kill -KILL "$REDIS_PID" 2>/dev/null || true
        wait_gone "$REDIS_PID"
    fi
}

bench_build
bench_start "$TIME_LIMIT"

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# A run of six free ports below the ephemeral range: ours on BASE+1..BASE+5, Redis on BASE+6.
BASE=""
for _ in $(seq 50); do
    b=$((20000 + RANDOM % 10000))
    ok=1
    for i in 1 2 3 4 5 6; do port_free $((b + i)) || ok=0; done
    if [ "$ok" = 1 ]; then BASE=$b; break; fi
done
[ -n "$BASE" ] || die "no six free ports found"
REDIS_PORT=$((BASE + 6))

raft_up "$WORK/raft" "redis_port = $BASE"
LEADER=$("$PERF" leader --raft-config "$RAFT_CFG")
OUR_PORT=$((BASE + LEADER))
log "ours: leader n$LEADER, RESP on 127.0.0.1:$OUR_PORT"

mkdir -p "$WORK/redis"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK/redis" --appendonly yes \
    --appendfsync always --save '' --daemonize no --logfile "$WORK/redis/redis.log" &
REDIS_PID=$!
disown "$REDIS_PID"
for _ in $(seq 500); do
    [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] && break
    sleep 0.01
done
[ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] || die "redis-server did not start; see $WORK/redis/redis.log"
log "redis $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p'): pid $REDIS_PID on 127.0.0.1:$REDIS_PORT"

{
    machine_info | grep -v '^etcd:'
    echo "ours: $(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo unknown), 5 nodes, fsync on, clients on the leader's RESP port"
    echo "redis: $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') (Debian), appendonly yes, appendfsync always, save ''"
    echo "workload: redis-benchmark -t set,get -d 100 -r 100000, $REQUESTS requests per case ($((REQUESTS / 10)) at 1 client), $REPS runs per case alternating between the systems, medians"
} >"$RES/machine.txt"

one() { # one SYSTEM CLIENTS REP: one redis-benchmark run, its CSV kept
    local sys=$1 c=$2 rep=$3 port n=$REQUESTS
    if [ "$sys" = ours ]; then port=$OUR_PORT; else port=$REDIS_PORT; fi
    [ "$c" = 1 ] && n=$((REQUESTS / 10))
    if [ "$sys" = ours ] && [ "$c" = 1 ]; then
        "$PERF" replica-floor --dir "$WORK" >"$RES/floor-$rep.txt" || die "replica-floor failed"
        log "5-replica floor #$rep: $(tr '\n' ' ' <"$RES/floor-$rep.txt")"
    fi
    run_bg redis-benchmark -h 127.0.0.1 -p "$port" -t set,get -d 100 -r 100000 -n "$n" -c "$c" --csv \
        >"$RES/$sys-c$c-$rep.csv" 2>"$RES/$sys-c$c-$rep.err"
    if grep -qiE 'error|ERR' "$RES/$sys-c$c-$rep.err" "$RES/$sys-c$c-$rep.csv"; then
        die "$sys at $c clients reported errors: $(head -3 "$RES/$sys-c$c-$rep.err")"
    fi
    log "$sys c=$c #$rep: $(tr '\n' ' ' <"$RES/$sys-c$c-$rep.csv" | cut -c1-240)"
}

log "warm-up"
redis-benchmark -h 127.0.0.1 -p "$OUR_PORT" -t set -d 100 -r 100000 -n 2000 -c 16 -q >/dev/null
redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -t set -d 100 -r 100000 -n 2000 -c 16 -q >/dev/null
for rep in $(seq "$REPS"); do
    for c in $CLIENTS; do
        one ours "$c" "$rep"
        one redis "$c" "$rep"
    done
done

median() { sort -g | awk '{v[NR]=$1} END {if (NR==0) print "-"; else print v[int((NR+1)/2)]}'; }
# field SYSTEM CLIENTS TEST COLUMN: the median over the runs of one CSV column
# (redis-benchmark 7's CSV: test, rps, avg, min, p50, p95, p99, max latency in ms).
field() {
    local f
    for f in "$RES/$1-c$2-"*.csv; do
        awk -F'"' -v t="$3" -v col="$4" '$2 == t { split($0, a, "\",\""); gsub(/"/, "", a[col]); print a[col] }' "$f"
    done | median
}

TABLE=$RES/table.md
{
    echo "<!-- BEGIN GENERATED by scripts/bench-vs-redis.sh: do not edit by hand -->"
    echo "## Against Redis (RESP front end)"
    echo
    echo "redis-benchmark against our 5-node cluster through its RESP front end and against a"
    echo "single Redis server that fsyncs every write (appendfsync always). Medians of $REPS runs per row;"
    echo "requests/s, latencies in ms as redis-benchmark reports them."
    echo
    sed 's/^/    /' "$RES/machine.txt"
    echo
    echo "| test | clients | ours req/s | redis req/s | ours / redis | ours p50 | redis p50 | ours p99 | redis p99 |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for t in SET GET; do
        for c in $CLIENTS; do
            o=$(field ours "$c" "$t" 2) r=$(field redis "$c" "$t" 2)
            ratio=$(awk -v o="$o" -v r="$r" 'BEGIN { if (r > 0) printf "%.2f", o / r; else print "-" }')
            printf '| %s | %s | %.0f | %.0f | %s | %s | %s | %s | %s |\n' "$t" "$c" "$o" "$r" "$ratio" \
                "$(field ours "$c" "$t" 5)" "$(field redis "$c" "$t" 5)" "$(field ours "$c" "$t" 7)" "$(field redis "$c" "$t" 7)"
        done
    done
    echo
    floor=$(for f in "$RES"/floor-*.txt; do awk '$1 == "replica_floor_3of5_us" { print $2 / 1000 }' "$f"; done | median)
    o=$(field ours 1 SET 5) r=$(field redis 1 SET 5)
    awk -v f="$floor" -v o="$o" -v r="$r" 'BEGIN {
        printf "1-client SET p50 against the disk'"'"'s floor for a 5-replica write (five 4 KiB appends + fdatasync\n"
        printf "started together, time until the third finished; median of the runs before our 1-client runs):\n"
        printf "floor %.3f ms; ours %.3f ms = %.2fx the floor (target <= 1.25x); Redis %.3f ms = %.2fx.\n", f, o, (f > 0 ? o / f : 0), r, (f > 0 ? r / f : 0)
    }'
    echo
    echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "<!-- END GENERATED by scripts/bench-vs-redis.sh -->"
} >"$TABLE"
cat "$TABLE"

# Replace the marked section of performance.md, or add it at the end.
if grep -q 'BEGIN GENERATED by scripts/bench-vs-redis.sh' "$OUT"; then
    awk -v table="$TABLE" '
        /BEGIN GENERATED by scripts\/bench-vs-redis.sh/ { while ((getline l < table) > 0) print l; skip = 1; next }
        /END GENERATED by scripts\/bench-vs-redis.sh/ { skip = 0; next }
        !skip { print }' "$OUT" >"$OUT.tmp"
    mv "$OUT.tmp" "$OUT"
else
    { echo; cat "$TABLE"; } >>"$OUT"
fi
log "wrote $OUT"
