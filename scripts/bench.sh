#!/usr/bin/env bash
# Benchmarks chat-server on loopback with chat-bench (server/src/bin/chat-bench/).
#
#   scripts/bench.sh                       # every scenario, results in a fresh /tmp folder
#   SCENARIOS="fanout100 dm100" scripts/bench.sh
#
# Builds chat-server and chat-bench in release, then, for each scenario, starts a fresh
# server on a free loopback port with a temporary data directory, runs chat-bench against
# it (--server-pid, so server CPU and memory are measured) and stops it. Prints a summary
# table at the end; every run's JSON, human report and server log stay in $OUT.
#
# Scenarios (SCENARIOS, default all of them):
#   fanout100   fanout -n 100 -s 10 -m 1000     990,000 deliveries
#   fanout1000  fanout -n 1000 -s 5 -m 200      999,000 deliveries
#   dm100       dm -n 100 -m 1000               100,000 deliveries (50 pairs)
#   idle5000    idle -n 5000                    server memory per idle connection
#   disk1       the disk's own limit (chat-bench disk: one thread, fdatasync of a small
#               append to a preallocated file in the server's data dir, before and after),
#               one composer's acknowledged COMPOSEs/s as a fraction of it, then `read`
#               with one reader
#   compose1 compose10 compose100
#               compose --no-read with 1, 10, 100 concurrent composers (one outstanding
#               COMPOSE each, to one target user), then `read` of everything they left,
#               on the same server, by one reader
#   readers100  compose --no-read with 100 composers to 100 target users, then `read` by
#               100 readers at once (one per target)
#   amplify2000 (not in the default list) the memory-amplification attack: amplify -n 2000
#               -s 2 -m 810 --size 4000 (2,000 clients that never read, two broadcasting
#               4,000-byte messages; a fresh client JOINs every 20 ms): peak RSS and the
#               fresh clients' JOIN→HELLO
#               Syncs per message are counted with
#               `perf stat -e syscalls:sys_enter_{fsync,fdatasync}` on the server (or
#               strace -c, or not at all: SYNC_TOOL=perf|strace|none), and any server
#               log line mentioning "syncs" is shown.
#
# Environment (all optional):
#   OUT           results folder (default: a new /tmp/chat-bench.XXXXXX)
#   SCENARIOS     see above
#   SERVER_ARGS   extra chat-server flags for every run
#   BENCH_ARGS    extra chat-bench flags for every run (e.g. --line)
#   SYNC_TOOL     perf (default when it works), strace (slows the server a lot), none
#   CARGO_TARGET_DIR  where cargo builds (default: target/ in the repo)
#
# Every server runs with --max-users 100000 --flood-rate 0 --log-level warn (flags the
# server does not know are dropped with a note) and, for the compose runs,
# --mailbox-cap 10000000 so no COMPOSE is refused for a full mailbox.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
SCENARIOS=${SCENARIOS:-"fanout100 fanout1000 dm100 idle5000 disk1 compose1 compose10 compose100 readers100"}
OUT=${OUT:-$(mktemp -d /tmp/chat-bench.XXXXXX)}
SERVER_ARGS=${SERVER_ARGS:-}
BENCH_ARGS=${BENCH_ARGS:-}
SERVER="$TARGET/release/chat-server"
BENCH="$TARGET/release/chat-bench"
SPID=""

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

stop_server() {
    [ -n "$SPID" ] || return 0
    if kill -0 "$SPID" 2>/dev/null; then
        kill -TERM "$SPID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$SPID" 2>/dev/null && kill -9 "$SPID" 2>/dev/null || true
    fi
    wait "$SPID" 2>/dev/null || true
    SPID=""
}
trap stop_server EXIT
trap 'stop_server; exit 130' INT TERM

log "building chat-server and chat-bench (release)"
cargo build --release -p chat-server --manifest-path "$ROOT/Cargo.toml" >&2

# File descriptors: idle5000 holds 5,000 connections on each side of loopback.
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -gt 65536 ]; then want=65536; else want=$hard; fi
ulimit -Sn "$want"
log "ulimit -n = $(ulimit -n) (hard $hard)"

# The flags every run wants, minus any this server does not have (yet).
help=$("$SERVER" --help 2>&1 || true)
BASE_FLAGS=()
for flag in "--max-users 100000" "--flood-rate 0" "--log-level warn"; do
    if grep -q -- "${flag%% *}" <<<"$help"; then
        # shellcheck disable=SC2206
        BASE_FLAGS+=($flag)
    else
        log "note: chat-server has no ${flag%% *}; running without it"
    fi
done
# shellcheck disable=SC2206
BASE_FLAGS+=($SERVER_ARGS)

mkdir -p "$OUT"
log "results in $OUT"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

listening() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q LISTEN; }

# start_server NAME [extra flags...]: sets SPID and PORT.
start_server() {
    local name=$1
    shift
    PORT=$(free_port)
    local data="$OUT/$name.data"
    rm -rf "$data"
    mkdir -p "$data"
    "$SERVER" "$PORT" --bind 127.0.0.1 --data-dir "$data" "${BASE_FLAGS[@]}" "$@" \
        > "$OUT/$name.server.log" 2>&1 < /dev/null &
    SPID=$!
    for _ in $(seq 100); do listening "$PORT" && break; sleep 0.05; done
    if ! listening "$PORT"; then
        log "$name: the server did not start; log:"
        tail -20 "$OUT/$name.server.log" >&2
        stop_server
        return 1
    fi
}

# Sync counting on the server process: sync_start, then sync_stop prints the count.
SYNC_TOOL=${SYNC_TOOL:-}
if [ -z "$SYNC_TOOL" ]; then
    if perf stat -x, -e syscalls:sys_enter_fsync -- true >/dev/null 2>&1; then SYNC_TOOL=perf; else SYNC_TOOL=none; fi
fi
SYNC_PID=""
sync_start() {
    local file=$1
    case $SYNC_TOOL in
        perf) perf stat -x, -o "$file" -e syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync \
                  -p "$SPID" 2>/dev/null & SYNC_PID=$! ;;
        strace) strace -c -f -e trace=fsync,fdatasync -o "$file" -p "$SPID" 2>/dev/null & SYNC_PID=$! ;;
        *) SYNC_PID="" ;;
    esac
    [ -z "$SYNC_PID" ] || sleep 0.5 # let the counter attach
}
sync_stop() { # sets SYNCS (empty when not counted)
    local file=$1
    SYNCS=""
    [ -n "$SYNC_PID" ] || return 0
    kill -INT "$SYNC_PID" 2>/dev/null || true
    wait "$SYNC_PID" 2>/dev/null || true
    SYNC_PID=""
    case $SYNC_TOOL in
        perf) SYNCS=$(awk -F, '$3 ~ /sync/ && $1 ~ /^[0-9]+$/ { n += $1 } END { print n + 0 }' "$file") ;;
        strace) SYNCS=$(awk '$NF ~ /^f(data)?sync$/ { n += $4 } END { print n + 0 }' "$file") ;;
    esac
}

# bench NAME ARGS...: one chat-bench run against the running server.
bench() {
    local name=$1
    shift
    local rc=0
    # shellcheck disable=SC2086
    "$BENCH" "$@" --addr "127.0.0.1:$PORT" --server-pid "$SPID" --json --label "$name" $BENCH_ARGS \
        > "$OUT/$name.json" 2> "$OUT/$name.txt" || rc=$?
    cat "$OUT/$name.txt" >&2
    [ "$rc" -eq 0 ] || log "$name: chat-bench reported a problem (exit $rc)"
}

traffic() {
    local name=$1
    shift
    start_server "$name" || return 0
    bench "$name" "$@"
    stop_server
}

# compose NAME KIND C M T: KIND (compose, or disk to measure the disk's limit too) with C
# composers of M messages each to T targets; then NAME-read: T readers read it all back.
compose() {
    local name=$1 kind=$2 c=$3 m=$4 t=$5
    start_server "$name" --mailbox-cap 10000000 || return 0
    sync_start "$OUT/$name.syncs"
    bench "$name" "$kind" --no-read -c "$c" -m "$m" -t "$t" --data-dir "$OUT/$name.data"
    sync_stop "$OUT/$name.syncs"
    local syncs=$SYNCS
    sync_start "$OUT/$name-read.syncs"
    bench "$name-read" read -c "$c" -m "$m" -t "$t"
    sync_stop "$OUT/$name-read.syncs"
    local rsyncs=$SYNCS
    stop_server
    printf '{"compose": "%s", "read": "%s", "tool": "%s"}\n' "$syncs" "$rsyncs" "$SYNC_TOOL" > "$OUT/$name.syncs.json"
    grep -i 'syncs' "$OUT/$name.server.log" | tail -3 > "$OUT/$name.server-syncs.txt" || true
}

for scen in $SCENARIOS; do
    log "--- $scen"
    case $scen in
        fanout100) traffic "$scen" fanout -n 100 -s 10 -m 1000 ;;
        fanout1000) traffic "$scen" fanout -n 1000 -s 5 -m 200 ;;
        dm100) traffic "$scen" dm -n 100 -m 1000 ;;
        idle5000) traffic "$scen" idle -n 5000 ;;
        amplify2000) traffic "$scen" amplify -n 2000 -s 2 -m 810 --size 4000 ;;
        disk1) compose "$scen" disk 1 3000 1 ;;
        compose1) compose "$scen" compose 1 1000 1 ;;
        compose10) compose "$scen" compose 10 500 1 ;;
        compose100) compose "$scen" compose 100 200 1 ;;
        readers100) compose "$scen" compose 100 200 100 ;;
        *) log "unknown scenario $scen (skipped)" ;;
    esac
    sleep 0.5
done

PYTHONPATH="$ROOT/scripts" python3 - "$OUT" $SCENARIOS <<'EOF'
import os, sys

from benchsummary import g, loader, num

out, scens = sys.argv[1], sys.argv[2:]

load = loader(out)


def ms(d):
    l = g(d, "latency_us") or {}
    return " / ".join("-" if l.get(k) is None else f"{l[k] / 1000:.2f}" for k in ("p50", "p99", "max"))


def server(d, fmt):
    peak = g(d, "server", "rss_peak_kb")
    return num(g(d, "server", "cpu_us_per_unit"), fmt), num(peak and peak / 1024, "{:.1f}")


rows = []
for s in scens:
    if s.startswith(("compose", "disk", "readers")):
        syncs = load(s, ".syncs.json") or {}
        for phase, name, unit, key in (("compose", s, "acked msg/s", "acked_per_s"),
                                       ("read", s + "-read", "reads/s", "reads_per_s")):
            d = g(load(name), phase)
            if d is None:
                rows.append((name, "missing") + ("",) * 6)
                continue
            done = d.get("acked") if phase == "compose" else d.get("reads")
            n = syncs.get(phase) or ""
            per = f"{int(n) / done:.3f} ({n} syncs)" if n.isdigit() and done else "n/a"
            if phase == "compose":
                check = f"refused {d.get('refused')}, unanswered {d.get('unanswered')}"
            else:
                check = (f"{d.get('verified')} (missing {d.get('missing')}, duplicates "
                         f"{d.get('duplicates')}, out of order {d.get('out_of_order')})")
            rows.append((name, d.get("outcome"), f"{num(d.get(key))} {unit}", ms(d),
                         *server(d, "{:.1f}"), check, per))
        continue
    d = load(s)
    if d is None:
        rows.append((s, "missing") + ("",) * 6)
    elif s.startswith("amplify"):
        p = d.get("probe_join_hello_us") or {}
        lat = " / ".join("-" if p.get(k) is None else f"{p[k] / 1000:.2f}" for k in ("p50", "p99", "max"))
        rows.append((s, "complete" if not d.get("probe_failures") else "probe failures",
                     f"{num(d.get('broadcasts_sent'))} broadcasts, JOIN→HELLO of {num(d.get('probes'))} probes",
                     lat, "-", num((d.get("rss_max_kb") or 0) / 1024, "{:.1f}"),
                     f"RSS before {num((d.get('rss_before_kb') or 0) / 1024, '{:.1f}')} MiB, "
                     f"probe failures {d.get('probe_failures')}", "-"))
    elif s.startswith("idle"):
        i = d.get("idle", {})
        rows.append((s, d.get("outcome"), f"{num(i.get('bytes_per_conn'))} bytes/conn", "-", "-",
                     num(i.get("rss_after_kb", 0) / 1024, "{:.1f}"),
                     f"joined {g(d, 'clients', 'ready')}, failed {g(d, 'clients', 'failed')}", "-"))
    else:
        rows.append((s, d.get("outcome"), f"{num(d.get('deliveries_per_s'))} deliveries/s", ms(d),
                     *server(d, "{:.3f}"),
                     f"loss {d.get('loss')}, reordered {d.get('reordered')}, disconnects {d.get('disconnects')}",
                     "-"))

print()
print("| run | outcome | throughput | latency p50 / p99 / max ms | server CPU µs per unit "
      "| server peak RSS MiB | checks | syncs per unit |")
print("|---|---|---|---|---|---|---|---|")
for r in rows:
    print("| " + " | ".join(str(x) for x in r) + " |")
for s in scens:
    disk = g(load(s), "disk")
    if disk:
        print(f"{s}: disk limit {num(disk.get('fdatasync_per_s'))} fdatasync/s (before "
              f"{num(disk.get('fdatasync_per_s_before'))}, after {num(disk.get('fdatasync_per_s_after'))}); "
              f"one composer {num(disk.get('acked_per_s'))} acked COMPOSEs/s = "
              f"{num(disk.get('fraction_of_limit'), '{:.3f}')} of the limit; PING round trip "
              f"{num(disk.get('round_trip_us'), '{:.0f}')} µs, so one client waiting for each answer "
              f"gets at most {num(disk.get('serial_bound_per_s'))}/s: one composer = "
              f"{num(disk.get('fraction_of_serial_bound'), '{:.3f}')} of that")
for s in scens:
    p = os.path.join(out, s + ".server-syncs.txt")
    if os.path.exists(p) and os.path.getsize(p):
        with open(p) as f:
            print(f"{s}: server log says: {f.read().strip().splitlines()[-1]}")
EOF
log "results in $OUT"
