#!/usr/bin/env bash
# demo.sh: the README walkthrough, scripted and narrated.
#
# Starts a five-node cluster in its own temporary directory, then: set, get, kill the
# leader, watch the re-election, start it again, watch it catch up, partition the leader
# into a minority, heal; then, at a terminal, offers to open `raft-supervisor watch` on the
# cluster. Every wait has a deadline; on exit (normal, error or Ctrl-C) the
# cluster is stopped and every process the demo started is killed, by pid.
#
#   scripts/demo.sh                 # the walkthrough at the default 10 ms tick
#   DEMO_TICK_MS=100 scripts/demo.sh   # ten times slower elections, easier to follow
#   DEMO_PAUSE=2 scripts/demo.sh       # seconds to pause between steps (default 1)
#
# Needs: bash, cargo, coreutils (timeout, mktemp). No jq or python.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
TICK_MS=${DEMO_TICK_MS:-10}
PAUSE=${DEMO_PAUSE:-1}
# Each wait below is bounded by this many seconds, scaled with the tick.
WAIT_S=$(( 30 * (TICK_MS > 10 ? TICK_MS / 10 : 1) ))

if [ -t 1 ]; then B=$'\e[1m'; D=$'\e[2m'; C=$'\e[36m'; R=$'\e[0m'; else B=; D=; C=; R=; fi
say()  { printf '\n%s==> %s%s\n' "$B" "$*" "$R"; }
note() { printf '%s    %s%s\n' "$D" "$*" "$R"; }
step_pause() { sleep "$PAUSE"; }   # for the reader only; never used to wait for the cluster
# Shows a command as a learner would type it, then runs it (bounded to 60 s).
run() { printf '%s$ %s%s\n' "$C" "$*" "$R"; timeout 60 "$@"; }

say "Building the binaries (cargo build --release --bins)"
cargo build --release --bins --quiet
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release
for b in raft-supervisor raft-node raft-cli; do
    [ -x "$BIN/$b" ] || { echo "demo: $BIN/$b is missing after the build" >&2; exit 1; }
done
export PATH="$BIN:$PATH"

# Our own cluster directory and config, so a cluster you already run is not touched.
DEMO_DIR=$(mktemp -d /tmp/raft-demo.XXXXXX)
export RAFT_CONFIG="$DEMO_DIR/demo.toml"
cat > "$RAFT_CONFIG" <<TOML
# Written by scripts/demo.sh; see cluster.example.toml for every key.
dir = "$DEMO_DIR"
tick_ms = $TICK_MS
shutdown_grace_ms = 1000
TOML

SUP_PID=
cleanup() {
    local code=$?
    trap - EXIT INT TERM
    if [ -n "$SUP_PID" ]; then
        echo
        note "cleaning up: raft-supervisor down, then SIGKILL of anything left"
        local pids
        pids=$(node_pids || true)
        timeout 10 raft-supervisor down >/dev/null 2>&1 || true
        # Wait (bounded) for the supervisor to exit, then make sure.
        for _ in $(seq 50); do kill -0 "$SUP_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$SUP_PID" 2>/dev/null || true
        for pid in $pids; do
            # Only a process that is still one of our nodes (its command line names our dir).
            if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' 2>/dev/null < "/proc/$pid/cmdline" | grep -q "$DEMO_DIR"; then
                kill -9 "$pid" 2>/dev/null || true
            fi
        done
        wait "$SUP_PID" 2>/dev/null || true
    fi
    rm -rf "$DEMO_DIR"
    exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- reading `raft-supervisor status --json` without jq: one node row per line.
# Node rows are the objects with a "process" field (the nested "live" objects have none).
status_rows() { timeout 10 raft-supervisor status --json 2>/dev/null | tr '{' '\n' | grep '"process"' || true; }
field() { sed -E "s/.*\"$1\":(\"?)([^,\"}]*)\\1.*/\\2/"; }   # field NAME < row
leader_id() { status_rows | grep '"role":"leader"' | head -n1 | field id; }
node_pids() { status_rows | field pid | grep -E '^[0-9]+$' || true; }
node_field() { status_rows | grep "\"id\":$1," | head -n1 | field "$2"; }

# wait_until DESCRIPTION COMMAND...: polls COMMAND until it succeeds, at most WAIT_S seconds.
wait_until() {
    local what=$1; shift
    local deadline=$(( SECONDS + WAIT_S ))
    until "$@"; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "demo: gave up after ${WAIT_S}s waiting for $what" >&2
            raft-supervisor status >&2 || true
            exit 1
        fi
        sleep 0.1
    done
}
has_leader() { [ -n "$(leader_id)" ]; }
leader_is_not() { local l; l=$(leader_id); [ -n "$l" ] && [ "$l" != "$1" ]; }
caught_up() {   # caught_up NODE: NODE has applied as much as the leader
    local l a b; l=$(leader_id); [ -n "$l" ] || return 1
    a=$(node_field "$l" applied); b=$(node_field "$1" applied)
    [ -n "$a" ] && [ "$a" = "$b" ]
}
all_caught_up() { for id in 1 2 3 4 5; do caught_up "$id" || return 1; done; }
leader_in() { local l; l=$(leader_id); [ -n "$l" ] && [[ " $* " == *" $l "* ]]; }
show_log() {   # show_log NODE LINES: the node's own account of what happened
    printf '%s$ %s%s\n' "$C" "raft-supervisor logs $1 | tail -n ${2:-4}" "$R"
    timeout 10 raft-supervisor logs "$1" | tail -n "${2:-4}"
}

say "Starting five nodes in $DEMO_DIR"
note "raft-supervisor forks five raft-node processes; they elect a leader within a few hundred ms."
note "Every command below finds the cluster through RAFT_CONFIG=$RAFT_CONFIG."
printf '%s$ %s%s\n' "$C" "raft-supervisor up &" "$R"
raft-supervisor up > "$DEMO_DIR/supervisor.out" 2>&1 &
SUP_PID=$!
wait_until "a leader" has_leader
sed 's/^/      /' "$DEMO_DIR/supervisor.out"
run raft-supervisor status
step_pause

say "Write, then read it back (linearizable: the leader confirms it still leads first)"
run raft-cli set chelsea rules
run raft-cli get chelsea
note "Node 1's own log: the leader's no-op, then the write, with its session and sequence number."
run raft-cli log 1
step_pause

LEADER=$(leader_id)
say "Kill the leader (node $LEADER) with SIGKILL"
run raft-supervisor kill "$LEADER"
note "The followers stop hearing heartbeats; after a random election timeout one of them asks for votes."
wait_until "a new leader" leader_is_not "$LEADER"
NEW=$(leader_id)
run raft-supervisor status
show_log "$NEW" 3
step_pause

say "Writes go on with four of five nodes"
run raft-cli set chelsea rocks
run raft-cli get chelsea
step_pause

say "Start node $LEADER again and watch it catch up"
run raft-supervisor start "$LEADER"
note "It comes back as a follower; the leader sends it what it missed (entries, or a snapshot)."
wait_until "node $LEADER to catch up" caught_up "$LEADER"
run raft-supervisor status
show_log "$LEADER" 4
step_pause

LEADER=$(leader_id)
BUDDY=$(for id in 1 2 3 4 5; do [ "$id" != "$LEADER" ] && { echo "$id"; break; }; done)
MAJORITY=$(for id in 1 2 3 4 5; do [ "$id" != "$LEADER" ] && [ "$id" != "$BUDDY" ] && printf '%s,' "$id"; done)
MAJORITY=${MAJORITY%,}
say "Partition: the leader $LEADER and node $BUDDY on one side, $MAJORITY on the other"
run raft-supervisor partition "$LEADER,$BUDDY" "$MAJORITY"
note "The majority elects a leader of its own; the old leader cannot reach a majority and steps down (CheckQuorum)."
# shellcheck disable=SC2086
wait_until "a leader in the majority" leader_in ${MAJORITY//,/ }
run raft-cli set chelsea champions
run raft-supervisor status
step_pause

say "Heal the network"
run raft-supervisor heal
note "The old leader learns of the newer term, steps down for good, and catches up."
wait_until "every node to catch up" all_caught_up
run raft-supervisor status
run raft-cli get chelsea
show_log "$LEADER" 5
note "The leader's view of each follower: match index, next index, replication state."
run raft-cli status --peers
step_pause

say "Slow the network: the leader holds each message it sends back for 100 ms"
run raft-supervisor delay 100ms leader
run raft-cli set chelsea blues
note "Right after the write the followers may not know yet that it committed (commit column)."
run raft-supervisor status
run raft-supervisor delay off

# The live picture of the same cluster, offered only to a person at a terminal (a script
# or CI piping stdin gets no question and no full-screen program).
if [ -t 0 ] && [ -t 1 ]; then
    say "See it live: raft-supervisor watch"
    note "Panels per node, the network, every event; keys kill, pause, partition, slow down (q leaves)."
    printf '    Open it now? [y/N] '
    if read -r -t 120 answer && [[ "$answer" =~ ^[Yy] ]]; then
        raft-supervisor watch || true
    fi
fi

say "Done. The cluster is stopped and $DEMO_DIR removed on exit."
