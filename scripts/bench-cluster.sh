#!/usr/bin/env bash
# Benchmarks chat-server as a cluster (--cluster redis://…) on loopback with chat-bench.
#
#   scripts/bench-cluster.sh                 # every scenario, results in a fresh /tmp folder
#   SCENARIOS="fanout1 fanout3" scripts/bench-cluster.sh
#
# Builds chat-server and chat-bench in release and starts one redis-server (a temporary
# directory, appendonly yes, appendfsync always, no snapshots) for the whole run. Each
# scenario then starts fresh chat-server nodes on free loopback ports, all on that Redis
# (emptied with FLUSHALL first), runs chat-bench against them with every node's pid (server
# CPU and memory per node and in total) and stops them. Redis's own CPU is read from
# /proc/<redis pid>/stat around each run, and its PUBLISH count from INFO commandstats.
# Prints a summary table at the end; every run's JSON, human report and node logs stay in
# $OUT.
#
# Scenarios (SCENARIOS, default all of them, in this order):
#   fanout1      fanout $FANOUT, every client on ONE clustered node
#   fanout3      the same, clients round-robin over 3 nodes (a sender's recipients are 2/3
#                on other nodes); deliveries/s, server CPU per delivery per node and in
#                total, p50/p99 overall and cross-node
#   paced1 paced3
#                fanout $PACED (paced with --rate, so latency is not queueing behind the
#                window): p50/p99 on one node and over 3 nodes
#   dm1 dm3      dm $DM on one node, then over 3 nodes: there every pair is split over two
#                nodes, so each MSG is one PUBLISH; Redis CPU per PUBLISH at this rate
#   dmpaced1 dmpaced3
#                dm $DM_PACED (paced): DM latency on one node and across nodes
#   redis        redis-benchmark PUBLISH (pipelined, -P $REDIS_PIPELINE, $REDIS_CLIENTS
#                clients, an 80-byte payload, to a channel with one subscriber that reads
#                and discards): PUBLISHes/s and Redis's CPU while it runs. Skipped when
#                redis-benchmark is not installed.
#   compose1 compose100
#                durable COMPOSE through Redis: compose --no-read -c 1 -m $COMPOSE1_M -t 1
#                and -c 100 -m $COMPOSE100_M -t $COMPOSE100_T (composer i sends message q
#                to mailbox q mod T): acknowledged COMPOSEs/s; then NAME-read reads
#                everything back (one reader per mailbox, all at once) and checks it.
#                Redis commands per COMPOSE shows that the mailboxes are in Redis
#   compose100x3 the compose100 run with composers and the reader spread over 3 nodes
#
# Environment (all optional):
#   OUT           results folder (default: a new /tmp/chat-bench-cluster.XXXXXX)
#   SCENARIOS     see above
#   FANOUT        chat-bench fanout arguments (default "-n 300 -s 6 -m 8000")
#   PACED         (default "-n 300 -s 6 -m 500 --rate 250": 250 broadcasts/s to 299, light
#                 enough that the 2-core machine is not saturated)
#   DM            (default "-n 200 -m 10000")
#   DM_PACED      (default "-n 200 -m 600 --rate 10000": 10,000 DMs/s, 50 per pair)
#   COMPOSE1_M COMPOSE100_M COMPOSE100_T   (default 3000, 500 and 100)
#   REDIS_PIPELINE REDIS_CLIENTS REDIS_REQUESTS   redis-benchmark (default 512, as a node's
#                 publisher batches at most, 3 clients as 3 nodes, 3000000)
#   SERVER_ARGS   extra chat-server flags for every node
#   BENCH_ARGS    extra chat-bench flags for every run
#   REDIS_SERVER  redis-server binary (default: the one on PATH)
#   CARGO_TARGET_DIR  where cargo builds (default: target/ in the repo)
#
# Every node runs with --max-users 100000 --flood-rate 0 --log-level warn
# --mailbox-cap 10000000 --cluster redis://127.0.0.1:<redis port>.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
SCENARIOS=${SCENARIOS:-"fanout1 fanout3 paced1 paced3 dm1 dm3 dmpaced1 dmpaced3 redis compose1 compose100 compose100x3"}
OUT=${OUT:-$(mktemp -d /tmp/chat-bench-cluster.XXXXXX)}
FANOUT=${FANOUT:-"-n 300 -s 6 -m 8000"}
PACED=${PACED:-"-n 300 -s 6 -m 500 --rate 250"}
DM=${DM:-"-n 200 -m 10000"}
DM_PACED=${DM_PACED:-"-n 200 -m 600 --rate 10000"}
COMPOSE1_M=${COMPOSE1_M:-3000}
COMPOSE100_M=${COMPOSE100_M:-500}
COMPOSE100_T=${COMPOSE100_T:-100}
REDIS_PIPELINE=${REDIS_PIPELINE:-512}
REDIS_CLIENTS=${REDIS_CLIENTS:-3}
REDIS_REQUESTS=${REDIS_REQUESTS:-3000000}
SERVER_ARGS=${SERVER_ARGS:-}
BENCH_ARGS=${BENCH_ARGS:-}
REDIS_SERVER=${REDIS_SERVER:-$(command -v redis-server || true)}
SERVER="$TARGET/release/chat-server"
BENCH="$TARGET/release/chat-bench"
PIDS=()
RPID=""
SUBPID=""

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

stop_pid() {
    local pid=$1
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}
stop_nodes() {
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    PIDS=()
}
stop_all() {
    stop_nodes
    [ -z "$SUBPID" ] || stop_pid "$SUBPID"
    SUBPID=""
    [ -z "$RPID" ] || stop_pid "$RPID"
    RPID=""
}
trap stop_all EXIT
trap 'stop_all; exit 130' INT TERM

[ -n "$REDIS_SERVER" ] || { log "no redis-server found (set REDIS_SERVER)"; exit 1; }

log "building chat-server and chat-bench (release)"
cargo build --release -p chat-server --manifest-path "$ROOT/Cargo.toml" >&2

hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -gt 65536 ]; then want=65536; else want=$hard; fi
ulimit -Sn "$want"

mkdir -p "$OUT"
log "results in $OUT"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
listening() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q LISTEN; }

# Redis: one for the whole run, durable as the cluster wants it.
RPORT=$(free_port)
mkdir -p "$OUT/redis"
"$REDIS_SERVER" --port "$RPORT" --bind 127.0.0.1 --dir "$OUT/redis" --appendonly yes \
    --appendfsync always --save '' --daemonize no > "$OUT/redis.log" 2>&1 < /dev/null &
RPID=$!
for _ in $(seq 100); do listening "$RPORT" && break; sleep 0.05; done
listening "$RPORT" || { log "redis-server did not start:"; tail -5 "$OUT/redis.log" >&2; exit 1; }
log "redis-server pid $RPID on 127.0.0.1:$RPORT (appendonly yes, appendfsync always)"

# A Redis command; prints the reply as RESP (a tiny client: no redis-cli needed).
rcmd() {
    python3 - "$RPORT" "$@" <<'EOF'
import socket, sys
port, args = int(sys.argv[1]), sys.argv[2:]
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(("*%d\r\n" % len(args) + "".join("$%d\r\n%s\r\n" % (len(a.encode()), a) for a in args)).encode())
data = b""
for _ in range(1000):  # one reply: a status, an error, a number, one bulk string, an array
    try:
        chunk = s.recv(1 << 20)
    except socket.timeout:
        break
    if not chunk:
        break
    data += chunk
    if data[:1] in b"+-:*" and data.endswith(b"\r\n"):  # small arrays come in one piece
        break
    if data[:1] == b"$" and b"\r\n" in data:
        n = int(data[1:data.index(b"\r\n")])
        if n < 0 or len(data) >= data.index(b"\r\n") + 2 + n + 2:
            break
print(data.decode(errors="replace"))
EOF
}

# A - B as a JSON number.
minus() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }

# Redis's CPU seconds so far (utime + stime, all threads).
redis_cpu() { awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$RPID/stat"; }
# PUBLISH calls and all commands since the last CONFIG RESETSTAT.
redis_counts() {
    rcmd INFO all | python3 -c '
import re, sys
t = sys.stdin.read()
pub = re.search(r"cmdstat_publish:calls=(\d+)", t)
total = re.search(r"total_commands_processed:(\d+)", t)
print(pub.group(1) if pub else 0, total.group(1) if total else 0)'
}

# start_nodes NAME K: K fresh nodes on the shared Redis; sets PIDS, ADDRS, PIDLIST.
start_nodes() {
    local name=$1 k=$2 i port data addrs=() started=()
    rcmd FLUSHALL > /dev/null
    for i in $(seq "$k"); do
        port=$(free_port)
        data="$OUT/$name.node$i.data"
        rm -rf "$data"
        mkdir -p "$data"
        # shellcheck disable=SC2086
        "$SERVER" "$port" --bind 127.0.0.1 --data-dir "$data" --max-users 100000 --flood-rate 0 \
            --log-level warn --mailbox-cap 10000000 --cluster "redis://127.0.0.1:$RPORT" \
            $SERVER_ARGS > "$OUT/$name.node$i.log" 2>&1 < /dev/null &
        PIDS+=($!)
        addrs+=("127.0.0.1:$port")
        started+=("$port")
    done
    for port in "${started[@]}"; do
        for _ in $(seq 100); do listening "$port" && break; sleep 0.05; done
        if ! listening "$port"; then
            log "$name: a node did not start; logs:"
            tail -5 "$OUT/$name".node*.log >&2
            stop_nodes
            return 1
        fi
    done
    # Let every node subscribe and hear the others' Hello before clients arrive.
    sleep 1
    ADDRS=$(IFS=,; echo "${addrs[*]}")
    PIDLIST=$(IFS=,; echo "${PIDS[*]}")
}

# bench NAME ARGS...: one chat-bench run against the running nodes, with Redis's CPU and
# PUBLISH count around it (OUT/NAME.redis.json).
bench() {
    local name=$1 rc=0
    shift
    rcmd CONFIG RESETSTAT > /dev/null
    local c0 t0 c1 t1 counts
    c0=$(redis_cpu)
    t0=$(date +%s.%N)
    # shellcheck disable=SC2086
    "$BENCH" "$@" --addr "$ADDRS" --server-pid "$PIDLIST" --json --label "$name" $BENCH_ARGS \
        > "$OUT/$name.json" 2> "$OUT/$name.txt" || rc=$?
    c1=$(redis_cpu)
    t1=$(date +%s.%N)
    counts=$(redis_counts)
    printf '{"cpu_s": %s, "run_s": %s, "publishes": %s, "commands": %s}\n' \
        "$(minus "$c1" "$c0")" "$(minus "$t1" "$t0")" ${counts% *} ${counts#* } \
        > "$OUT/$name.redis.json"
    cat "$OUT/$name.txt" >&2
    [ "$rc" -eq 0 ] || log "$name: chat-bench reported a problem (exit $rc)"
}

# compose NAME NODES C M T: C composers of M messages each to T mailboxes (--no-read), then
# NAME-read reads it all back and checks it; Redis counted around each.
compose() {
    local name=$1 k=$2 c=$3 m=$4 t=$5
    start_nodes "$name" "$k" || return 0
    bench "$name" compose --no-read -c "$c" -m "$m" -t "$t" --prefix "$name"
    bench "$name-read" read -c "$c" -m "$m" -t "$t" --prefix "$name"
    stop_nodes
}

run() { # run NAME NODES ARGS...
    local name=$1 k=$2
    shift 2
    start_nodes "$name" "$k" || return 0
    bench "$name" "$@"
    stop_nodes
}

# redis-benchmark PUBLISH with one subscriber that reads and discards.
redis_capacity() {
    if ! command -v redis-benchmark > /dev/null; then
        log "redis: redis-benchmark is not installed; skipped"
        return 0
    fi
    rcmd FLUSHALL > /dev/null
    python3 - "$RPORT" > "$OUT/redis.subscriber.txt" 2>&1 <<'EOF' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
channel = b"chat:bench:capacity"
s.sendall(b"*2\r\n$9\r\nSUBSCRIBE\r\n$%d\r\n%s\r\n" % (len(channel), channel))
s.settimeout(30)
got, end = 0, time.monotonic() + 600
while time.monotonic() < end:  # until redis-benchmark is done and we are stopped
    try:
        chunk = s.recv(1 << 20)
    except socket.timeout:
        break
    if not chunk:
        break
    got += len(chunk)
print(got, "bytes received")
EOF
    SUBPID=$!
    sleep 0.5
    rcmd CONFIG RESETSTAT > /dev/null
    local payload c0 t0 c1 t1 rc=0
    payload=$(printf 'x%.0s' $(seq 80))
    c0=$(redis_cpu)
    t0=$(date +%s.%N)
    redis-benchmark -p "$RPORT" -c "$REDIS_CLIENTS" -P "$REDIS_PIPELINE" -n "$REDIS_REQUESTS" --csv \
        PUBLISH chat:bench:capacity "$payload" > "$OUT/redis.csv" 2> "$OUT/redis.txt" || rc=$?
    c1=$(redis_cpu)
    t1=$(date +%s.%N)
    local counts subscribers
    counts=$(redis_counts)
    # Still 1 unless Redis cut the subscriber off for a full output buffer.
    subscribers=$(rcmd PUBSUB NUMSUB chat:bench:capacity | grep -Eo '^:?[0-9]+' | tail -1 | tr -d :)
    stop_pid "$SUBPID"
    SUBPID=""
    printf '{"cpu_s": %s, "run_s": %s, "publishes": %s, "commands": %s, "pipeline": %s, "clients": %s, "subscribers_after": %s}\n' \
        "$(minus "$c1" "$c0")" "$(minus "$t1" "$t0")" ${counts% *} ${counts#* } \
        "$REDIS_PIPELINE" "$REDIS_CLIENTS" "${subscribers:-null}" > "$OUT/redis.redis.json"
    cat "$OUT/redis.csv" >&2
    [ "$rc" -eq 0 ] || log "redis: redis-benchmark failed (exit $rc)"
}

for scen in $SCENARIOS; do
    log "--- $scen"
    case $scen in
        # shellcheck disable=SC2086
        fanout1) run "$scen" 1 fanout $FANOUT --prefix f1x ;;
        # shellcheck disable=SC2086
        fanout3) run "$scen" 3 fanout $FANOUT --prefix f3x ;;
        # shellcheck disable=SC2086
        paced1) run "$scen" 1 fanout $PACED --prefix p1x ;;
        # shellcheck disable=SC2086
        paced3) run "$scen" 3 fanout $PACED --prefix p3x ;;
        # shellcheck disable=SC2086
        dm1) run "$scen" 1 dm $DM --prefix d1x ;;
        # shellcheck disable=SC2086
        dm3) run "$scen" 3 dm $DM --prefix d3x ;;
        # shellcheck disable=SC2086
        dmpaced1) run "$scen" 1 dm $DM_PACED --prefix q1x ;;
        # shellcheck disable=SC2086
        dmpaced3) run "$scen" 3 dm $DM_PACED --prefix q3x ;;
        redis) redis_capacity ;;
        compose1) compose "$scen" 1 1 "$COMPOSE1_M" 1 ;;
        compose100) compose "$scen" 1 100 "$COMPOSE100_M" "$COMPOSE100_T" ;;
        compose100x3) compose "$scen" 3 100 "$COMPOSE100_M" "$COMPOSE100_T" ;;
        *) log "unknown scenario $scen (skipped)" ;;
    esac
    sleep 0.5
done

PYTHONPATH="$ROOT/scripts" python3 - "$OUT" $SCENARIOS <<'EOF'
import csv, os, sys

from benchsummary import g, loader, num

out, scens = sys.argv[1], sys.argv[2:]

load = loader(out)


def ms(l):
    l = l or {}
    return " / ".join("-" if l.get(k) is None else f"{l[k] / 1000:.2f}" for k in ("p50", "p99"))


def redis_cols(name, units):
    """Redis CPU µs per PUBLISH, PUBLISHes/s over the measured phase, Redis CPU use."""
    r = load(name, ".redis.json") or {}
    d = load(name) or {}
    pubs, cpu = r.get("publishes") or 0, r.get("cpu_s")
    wall = d.get("wall_s") or g(d, "compose", "wall_s")
    per = num(cpu * 1e6 / pubs, "{:.2f}") if pubs and cpu is not None else "-"
    rate = num(pubs / wall) if pubs and wall else "-"
    util = num(cpu / r["run_s"], "{:.2f}") if cpu is not None and r.get("run_s") else "-"
    return per, rate, util


traffic = [s for s in scens if not s.startswith(("compose", "redis"))]
if traffic:
    print()
    print("| run | nodes | outcome | deliveries/s | server CPU µs per delivery: total (per node, own deliveries) "
          "| p50 / p99 ms | cross-node p50 / p99 ms | Redis CPU µs per PUBLISH | PUBLISH/s "
          "| Redis CPU (of one core, whole run) | checks |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
p99 = {}
for s in traffic:
    d = load(s)
    if d is None:
        print(f"| {s} | | missing | | | | | | | | |")
        continue
    nodes = d.get("nodes", 1)
    each = [x.get("cpu_us_per_local_unit") for x in g(d, "server", "servers") or d.get("servers") or []]
    cpu = num(g(d, "server", "cpu_us_per_unit"), "{:.3f}")
    if each:
        cpu += " (" + ", ".join(num(x, "{:.3f}") for x in each) + ")"
    p99[s] = (g(d, "latency_us", "p99"), g(d, "latency_cross_node_us", "p99"))
    checks = (f"loss {d.get('loss')}, reordered {d.get('reordered')}, "
              f"disconnects {d.get('disconnects')}, unexpected {d.get('unexpected')}")
    print(f"| {s} | {nodes} | {d.get('outcome')} | {num(d.get('deliveries_per_s'))} | {cpu} "
          f"| {ms(d.get('latency_us'))} | {ms(d.get('latency_cross_node_us')) if nodes > 1 else '-'} "
          f"| {' | '.join(redis_cols(s, d.get('deliveries_received')))} | {checks} |")

for one, three in (("fanout1", "fanout3"), ("paced1", "paced3"), ("dm1", "dm3"),
                   ("dmpaced1", "dmpaced3")):
    if p99.get(one, (None,))[0] and three in p99 and p99[three][0]:
        a, (b, c) = p99[one][0], p99[three]
        cross = f", cross-node p99 {c / a:.2f}×" if c else ""
        print(f"{three} / {one}: p99 {b / 1000:.2f} / {a / 1000:.2f} ms = {b / a:.2f}×{cross} "
              f"(target: within 2×)")

if "dm3" in scens:
    r, d = load("dm3", ".redis.json") or {}, load("dm3") or {}
    if r.get("publishes") and r.get("cpu_s"):
        per = r["cpu_s"] / r["publishes"]
        print(f"dm3: {r['publishes']:,} PUBLISHes at {num(r['publishes'] / d['wall_s'])}/s cost Redis "
              f"{per * 1e6:.2f} µs of CPU each (whole run, setup included): one core would carry "
              f"about {1 / per:,.0f} PUBLISH/s at this message size (extrapolated from CPU per PUBLISH)")
if "redis" in scens:
    r = load("redis", ".redis.json")
    try:
        with open(os.path.join(out, "redis.csv")) as f:
            rows = [row for row in csv.reader(f)]
        rps = float(rows[-1][1])
    except (OSError, ValueError, IndexError):
        rps = None
    if r and rps:
        util = r["cpu_s"] / r["run_s"]
        print(f"redis: redis-benchmark -P {r['pipeline']} -c {r['clients']} PUBLISH (80-byte payload, one "
              f"subscriber): {rps:,.0f} PUBLISH/s with redis-server at {util:.2f} of one core "
              f"({r['cpu_s'] * 1e6 / max(r['publishes'], 1):.2f} µs each; subscribers still there "
              f"at the end: {r.get('subscribers_after')}); "
              f"{'saturated' if util >= 0.9 else 'NOT saturated: the load generator shares the cores'}; "
              f"at one full core that is about {r['publishes'] / r['cpu_s']:,.0f} PUBLISH/s (extrapolated)")

composes = [s for s in scens if s.startswith("compose")]
if composes:
    print()
    print("| run | nodes | outcome | acked COMPOSEs/s | p50 / p99 ms | server CPU µs per COMPOSE "
          "| Redis commands per COMPOSE | Redis CPU µs per COMPOSE | READs/s | read-back check |")
    print("|---|---|---|---|---|---|---|---|---|---|")
for s in composes:
    d, r = load(s), load(s, ".redis.json") or {}
    c = g(d, "compose")
    if c is None:
        print(f"| {s} | | missing | | | | | | | |")
        continue
    acked = c.get("acked") or 0
    rd = g(load(s + "-read"), "read") or {}
    per_cmd = num(r["commands"] / acked, "{:.1f}") if acked and r.get("commands") else "n/a"
    per_cpu = num(r["cpu_s"] * 1e6 / acked, "{:.1f}") if acked and r.get("cpu_s") is not None else "n/a"
    check = (f"{rd.get('verified')} (missing {rd.get('missing')}, duplicates {rd.get('duplicates')}, "
             f"out of order {rd.get('out_of_order')})" if rd else "missing")
    print(f"| {s} | {3 if s.endswith('x3') else 1} | {c.get('outcome')}, refused {c.get('refused')} "
          f"| {num(c.get('acked_per_s'))} | {ms(c.get('latency_us'))} "
          f"| {num(g(c, 'server', 'cpu_us_per_unit'), '{:.1f}')} | {per_cmd} | {per_cpu} "
          f"| {num(rd.get('reads_per_s'))} | {check} |")
if composes:
    print("(Redis CPU and commands per COMPOSE cover the whole compose run, connecting included.)")
EOF
log "results in $OUT"
