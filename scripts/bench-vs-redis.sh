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
# Around every run it reads from /proc what one request cost each process (CPU time and
# voluntary context switches per request: the leader, the mean follower, Redis, and the
# load generator itself) and prints a second table, and the CPU budget at Redis's rate:
# what two CPUs give per write at that rate, less the load generator's share.
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

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null || [ ! -x /usr/bin/time ]; then
    log "installing redis-server, redis-tools and time from the distribution packages"
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server redis-tools time >/dev/null
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
    echo "workload: redis-benchmark -t set, then -t get, -d 100 -r 100000, $REQUESTS requests per case ($((REQUESTS / 10)) at 1 client), $REPS runs per case alternating between the systems, medians"
} >"$RES/machine.txt"

# What one request costs, read from /proc around each run (load-independent counts, unlike
# wall-clock rates): CPU time (every thread's schedstat, in ns) and voluntary context
# switches (each one a sleep and a wake-up; every thread's) of each process of the system,
# and the CPU time of the load generator itself (/usr/bin/time: 10 ms steps, so 2 µs per
# request at 1 client, 0.2 µs at the others). counters PID...: "pid ns switches" a line.
counters() {
    local p
    for p in "$@"; do
        [ -r "/proc/$p/schedstat" ] || die "process $p is gone: the costs would be wrong"
        echo "$p $(cat "/proc/$p"/task/*/schedstat | awk '{ s += $1 } END { print s }')" \
            "$(cat "/proc/$p"/task/*/status | awk '/^voluntary_ctxt_switches/ { s += $2 } END { print s }')"
    done
}
NODE_PIDS=$("$PERF" raft-pids --raft-config "$RAFT_CFG" | tr ',' ' ')
# shellcheck disable=SC2086 # one pid a word
LEADER_PID=$(echo $NODE_PIDS | cut -d' ' -f"$LEADER")

one() { # one SYSTEM CLIENTS REP: a SET run and a GET run, their CSVs and costs kept
    local sys=$1 c=$2 rep=$3 port n=$REQUESTS t pids before after
    if [ "$sys" = ours ]; then port=$OUR_PORT pids=$NODE_PIDS; else port=$REDIS_PORT pids=$REDIS_PID; fi
    [ "$c" = 1 ] && n=$((REQUESTS / 10))
    if [ "$sys" = ours ] && [ "$c" = 1 ]; then
        "$PERF" replica-floor --dir "$WORK" >"$RES/floor-$rep.txt" || die "replica-floor failed"
        log "5-replica floor #$rep: $(tr '\n' ' ' <"$RES/floor-$rep.txt")"
    fi
    for t in set get; do
        # shellcheck disable=SC2086 # one pid a word
        before=$(counters $pids)
        run_bg /usr/bin/time -f "%U %S" -o "$RES/$sys-c$c-$rep-$t.time" \
            redis-benchmark -h 127.0.0.1 -p "$port" -t "$t" -d 100 -r 100000 -n "$n" -c "$c" --csv \
            >"$RES/$sys-c$c-$rep-$t.csv" 2>"$RES/$sys-c$c-$rep-$t.err"
        # shellcheck disable=SC2086
        after=$(counters $pids)
        if grep -qiE 'error|ERR' "$RES/$sys-c$c-$rep-$t.err" "$RES/$sys-c$c-$rep-$t.csv"; then
            die "$sys at $c clients reported errors: $(head -3 "$RES/$sys-c$c-$rep-$t.err")"
        fi
        # The cost line: main process CPU µs and switches per request (the leader, or Redis),
        # the same as a mean over the other processes (our four followers), load generator CPU µs.
        paste -d' ' <(echo "$before") <(echo "$after") | awk -v main="${LEADER_PID:-}" -v sys="$sys" -v n="$n" \
            -v gen="$(cat "$RES/$sys-c$c-$rep-$t.time")" '
            { cpu = ($5 - $2) / 1000 / n; sw = ($6 - $3) / n
              if (sys == "redis" || $1 == main) { mc = cpu; ms = sw } else { oc += cpu; os += sw; k++ } }
            END { split(gen, g, " "); printf "%.1f %.2f %.1f %.2f %.1f\n", mc, ms, (k ? oc / k : 0), (k ? os / k : 0), (g[1] + g[2]) * 1e6 / n }' \
            >"$RES/$sys-c$c-$rep-$t.cost"
        if [ "$sys" = ours ] && [ "$("$PERF" leader --raft-config "$RAFT_CFG")" != "$LEADER" ]; then
            die "the leader changed during the run: the costs would be wrong"
        fi
        log "$sys $t c=$c #$rep: $(tr '\n' ' ' <"$RES/$sys-c$c-$rep-$t.csv" | cut -c1-160) cost: $(cat "$RES/$sys-c$c-$rep-$t.cost")"
    done
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

# cost SYSTEM CLIENTS TEST COLUMN: the median over the runs of one column of the cost lines.
cost() {
    local f
    for f in "$RES/$1-c$2-"*"-$3.cost"; do awk -v col="$4" '{ print $col }' "$f"; done | median
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
    # The hops the floor leaves out: client <-> leader (TCP) and leader <-> followers (Unix).
    tcp=$(for f in "$RES"/floor-*.txt; do awk '$1 == "tcp_rtt_us" { print $2 / 1000 }' "$f"; done | median)
    unix=$(for f in "$RES"/floor-*.txt; do awk '$1 == "unix_rtt_us" { print $2 / 1000 }' "$f"; done | median)
    awk -v f="$floor" -v t="$tcp" -v u="$unix" 'BEGIN {
        printf "A write also crosses a loopback TCP round trip (%.3f ms) and a Unix-socket one (%.3f ms):\n", t, u
        printf "floor + both = %.3f ms = %.2fx the floor, before any node does any work.\n", f + t + u, (f > 0 ? (f + t + u) / f : 0)
    }'
    echo
    echo "What one request costs (medians; CPU time in µs and voluntary context switches, each a"
    echo "sleep and a wake-up, per request, from /proc around each run; followers: the mean of four):"
    echo
    echo "| test | clients | ours: leader CPU | follower CPU | all 5 nodes | leader switches | follower switches | Redis CPU | Redis switches | redis-benchmark CPU (ours / Redis run) |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for t in set get; do
        for c in $CLIENTS; do
            lc=$(cost ours "$c" "$t" 1) fc=$(cost ours "$c" "$t" 3)
            printf '| %s | %s | %s | %s | %.1f | %s | %s | %s | %s | %s / %s |\n' "$(echo "$t" | tr a-z A-Z)" "$c" "$lc" "$fc" \
                "$(awk -v l="$lc" -v f="$fc" 'BEGIN { print l + 4 * f }')" "$(cost ours "$c" "$t" 2)" "$(cost ours "$c" "$t" 4)" \
                "$(cost redis "$c" "$t" 1)" "$(cost redis "$c" "$t" 2)" "$(cost ours "$c" "$t" 5)" "$(cost redis "$c" "$t" 5)"
        done
    done
    echo
    # The CPU budget at Redis's rate: what two CPUs give per request at that rate, less what
    # the load generator itself takes, is what five replicas could spend and still keep up.
    for c in 16 64; do
        awk -v c="$c" -v r="$(field redis "$c" SET 2)" -v gen="$(cost redis "$c" set 5)" -v l="$(cost ours "$c" set 1)" \
            -v f="$(cost ours "$c" set 3)" -v rc="$(cost redis "$c" set 1)" -v cpus="$(nproc)" 'BEGIN {
            budget = cpus * 1e6 / r - gen; ours = l + 4 * f
            printf "CPU budget for SET at %d clients: at Redis'"'"'s %.0f/s, %d CPUs give %.1f µs per write; the load generator takes %.1f of it,\n", c, r, cpus, cpus * 1e6 / r, gen
            printf "leaving %.1f µs for five replicas; ours spend %.1f (leader %.1f + 4 x %.1f); Redis alone spends %.1f.\n", budget, ours, l, f, rc
        }'
    done
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
