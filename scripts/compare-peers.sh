#!/usr/bin/env bash
# Our chat-server against ngIRCd and InspIRCd, measured side by side with the shared chatload
# load generator (../shared/tools/chatload, beside this repository).
#
#   scripts/compare-peers.sh                          # 3 repeats of every scenario
#   REPEATS=1 scripts/compare-peers.sh                # quicker
#   SCENARIOS="fanout100 dm100" REPEATS=1 scripts/compare-peers.sh
#
# In effect, from the repo root, it runs:
#
#   cargo build --release -p chat-server
#   OURS_BIN=$PWD/target/release/chat-server OURS_ARGS="--log-level warn" \
#     PEERS="ours ngircd inspircd" REPEATS=3 OUT=/tmp/chat-compare.XXXXXX \
#     ../shared/tools/chatload/peers/run_baselines.sh
#   python3 ../shared/tools/chatload/peers/ratios.py /tmp/chat-compare.XXXXXX/results
#
# with one difference: run_baselines.sh builds chatload into, and runs it from, target/
# beside its own sources. So that nothing is ever written under ../shared, this script runs
# it from a shadow tree in $OUT/chatload (the sources and peers/ linked, not copied) whose
# target/ points to $CHATLOAD_TARGET. run_baselines.sh installs ngircd and inspircd with
# apt-get when they are missing (that needs root), starts one fresh server per run on
# loopback, and writes only under $OUT. Our server is started by it as
# `chat-server 17878 --bind 127.0.0.1 --max-users 100000 --data-dir <fresh> $OURS_ARGS`,
# plus `--flood-rate 0` (the peers run with their flood protection off).
#
# Environment (all optional):
#   REPEATS          runs per peer and scenario (default 3; tables show the median)
#   SCENARIOS        default "fanout100 paced100 fanout1000 dm100 idle5000"
#   PEERS            default "ours ngircd inspircd"
#   OURS_ARGS        extra chat-server flags (default "--log-level warn": status logs of
#                    every command would measure the terminal, not the server)
#   OUT              results folder (default: a new /tmp/chat-compare.XXXXXX)
#   CHATLOAD_DIR     chatload's sources (default: ../shared/tools/chatload from the repo root)
#   CHATLOAD_TARGET  where chatload is built (default: <cargo target dir>/chatload)
#   CARGO_TARGET_DIR where chat-server is built (default: target/ in the repo)
#
# Output: the summary tables of every peer (also in $OUT/summary.md), then ratios.py's
# table of ours against the best peer (also in $OUT/ratios.md). Exit status: ratios.py's
# (0 when every goal is met).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
CHATLOAD_DIR=$(cd "${CHATLOAD_DIR:-$ROOT/../shared/tools/chatload}" && pwd)
CHATLOAD_TARGET=${CHATLOAD_TARGET:-$TARGET/chatload}
OUT=${OUT:-$(mktemp -d /tmp/chat-compare.XXXXXX)}
export REPEATS=${REPEATS:-3}
export SCENARIOS=${SCENARIOS:-"fanout100 paced100 fanout1000 dm100 idle5000"}
export PEERS=${PEERS:-"ours ngircd inspircd"}
export OURS_ARGS=${OURS_ARGS:---log-level warn}

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

[ -x "$CHATLOAD_DIR/peers/run_baselines.sh" ] || {
    echo "chatload not found at $CHATLOAD_DIR (set CHATLOAD_DIR)" >&2
    exit 1
}

log "building chat-server (release) into $TARGET"
cargo build --release -p chat-server --manifest-path "$ROOT/Cargo.toml" >&2
export OURS_BIN="$TARGET/release/chat-server"

# The shadow tree: run_baselines.sh finds its configs beside itself (peers/) and runs
# $ROOT/target/release/chatload, where ROOT is the folder above peers/.
mkdir -p "$OUT" "$CHATLOAD_TARGET"
OUT=$(cd "$OUT" && pwd)
shadow="$OUT/chatload"
rm -rf "$shadow"
mkdir -p "$shadow"
cp "$CHATLOAD_DIR/Cargo.toml" "$CHATLOAD_DIR/Cargo.lock" "$shadow/"
chmod u+w "$shadow/Cargo.toml" "$shadow/Cargo.lock"
for item in src examples peers; do ln -s "$CHATLOAD_DIR/$item" "$shadow/$item"; done
ln -s "$(cd "$CHATLOAD_TARGET" && pwd)" "$shadow/target"

log "chatload from $CHATLOAD_DIR, built in $CHATLOAD_TARGET; results in $OUT"
log "PEERS=\"$PEERS\" SCENARIOS=\"$SCENARIOS\" REPEATS=$REPEATS OURS_ARGS=\"$OURS_ARGS\""
# run_baselines.sh builds chatload with plain `cargo build`: point that at the shadow target.
CARGO_TARGET_DIR="$CHATLOAD_TARGET" OUT="$OUT" "$shadow/peers/run_baselines.sh"

echo
echo "## ours against the best peer (ratios.py)"
rc=0
python3 "$shadow/peers/ratios.py" "$OUT/results" | tee "$OUT/ratios.md" || rc=$?
log "results in $OUT (summary.md, ratios.md, runs.log, results/*.json, run/*/server.log)"
exit "$rc"
