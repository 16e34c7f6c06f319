#!/usr/bin/env bash
# Builds and starts a chat server on PORT (default 9000, data in ./chat-data), opens an
# interactive client on it, and stops the server when the client exits.
#   scripts/run.sh [PORT] [extra chat-server options...]
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${1:-9000}; shift || true
cargo build --release -p chat-server -p chat-client
target/release/chat-server "$PORT" --bind 127.0.0.1 "$@" > chat-server.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  grep -q "listening on" chat-server.log 2>/dev/null && break
  sleep 0.1
done
echo "server running on 127.0.0.1:$PORT (log: chat-server.log); type /help in the client"
target/release/chat-client 127.0.0.1 "$PORT"
