#!/usr/bin/env bash
# Builds and starts a chat server on PORT (default 9000, data in ./chat-data), opens an
# interactive client on it, and stops the server when the client exits.
#   scripts/run.sh [PORT] [extra chat-server options...]
# Each run logs to a file of its own (its path is printed), so a second run never writes
# over the log of a server that is already running; a server that does not start (the
# port is taken, say) is reported with its log, and the script exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${1:-9000}; shift || true
cargo build --release -p chat-server -p chat-client
LOG=$(mktemp "${TMPDIR:-/tmp}/chat-server-$PORT.XXXXXX.log")
target/release/chat-server "$PORT" --bind 127.0.0.1 --log-format text "$@" > "$LOG" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
started=
for _ in $(seq 100); do
  if grep -q "chat port listening on" "$LOG"; then started=1; break; fi
  kill -0 "$SERVER" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$started" ] || ! kill -0 "$SERVER" 2>/dev/null; then
  echo "run.sh: the chat server did not start on 127.0.0.1:$PORT; its log ($LOG):" >&2
  sed 's/^/  /' "$LOG" >&2
  exit 1
fi
echo "server running on 127.0.0.1:$PORT (log: $LOG); type /help in the client"
target/release/chat-client 127.0.0.1 "$PORT"
