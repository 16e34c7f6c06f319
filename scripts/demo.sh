#!/usr/bin/env bash
# Seed 003's example run, live: a chat server and three interactive clients in tmux panes.
#
#   scripts/demo.sh          replay the run so you can watch it, then attach to the panes
#                            (detach with Ctrl-b d to end the demo and stop the server)
#   scripts/demo.sh --check  the same run headless (a detached tmux session); every step
#                            waits for the line it expects, and the script exits non-zero
#                            if one is missing (CI runs this)
#
# Needs cargo and tmux. The demo runs its own tmux server (on a socket in its temporary
# directory), so your tmux sessions are never touched. Binaries come from ${CARGO_TARGET_DIR:-target}/debug.
set -euo pipefail
cd "$(dirname "$0")/.."

check=false
case "${1:-}" in
  --check) check=true ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac
command -v tmux >/dev/null || { echo "demo.sh: tmux is not installed" >&2; exit 1; }

cargo build -q -p chat-server -p chat-client
target=${CARGO_TARGET_DIR:-target}
case $target in /*) ;; *) target=$PWD/$target ;; esac
server_bin=$target/debug/chat-server
client_bin=$target/debug/chat-client

data=$(mktemp -d "${TMPDIR:-/tmp}/chat-demo.XXXXXX")
socket=$data/tmux.sock
session=demo
server_pid=
tm() { env -u TMUX tmux -S "$socket" -f /dev/null "$@"; }
cleanup() {
  tm kill-server 2>/dev/null || true
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  rm -rf "$data"
}
trap cleanup EXIT

fail() {
  echo "demo.sh: $*" >&2
  for pane in 0 1 2; do
    echo "--- pane $pane:" >&2
    tm capture-pane -p -t "$session:0.$pane" -S - 2>/dev/null >&2 || true
  done
  echo "--- server log:" >&2
  cat "$data/server.log" >&2
  exit 1
}

# The server, on a free port (it logs the address it bound).
"$server_bin" 0 --bind 127.0.0.1 --data-dir "$data" >"$data/server.log" 2>&1 &
server_pid=$!
port=
for _ in $(seq 100); do
  port=$(sed -n 's/.*chat port listening on [0-9.]*:\([0-9]*\).*/\1/p' "$data/server.log")
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || fail "the server did not start"

# Each pane runs one interactive client, then says how it ended.
client_cmd="'$client_bin' 127.0.0.1 $port; echo \"[client exited with status \$?]\"; exec sleep 86400"

# How many times the pane's whole history shows a line equal to $2.
count() { tm capture-pane -p -t "$session:0.$1" -S - | sed 's/[[:space:]]*$//' | grep -cxF -- "$2" || true; }

# Waits until pane $1 shows the line $2 at least ${3:-1} times.
expect() {
  local pane=$1 line=$2 times=${3:-1}
  for _ in $(seq 100); do
    [ "$(count "$pane" "$line")" -ge "$times" ] && return 0
    sleep 0.1
  done
  fail "pane $pane never showed \"$line\" (x$times)"
}

# Types a line into pane $1 (one key at a time, slowly, when someone is watching).
say() {
  local pane=$1 text=$2
  if $check; then
    tm send-keys -t "$session:0.$pane" -l "$text"
  else
    sleep 1
    local i
    for ((i = 0; i < ${#text}; i++)); do
      tm send-keys -t "$session:0.$pane" -l "${text:i:1}"
      sleep 0.06
    done
  fi
  tm send-keys -t "$session:0.$pane" Enter
}

tm new-session -d -s "$session" -x 150 -y 40 "$client_cmd"
tm set-option -t "$session" pane-border-status top >/dev/null
tm select-pane -t "$session:0.0" -T "client 1 (A)"
if ! $check; then
  echo "Replaying seed 003's example run; attach from another terminal to watch it live:"
  echo "  tmux -S $socket attach -t $session"
fi

# Client connects; the client sets the name A.
expect 0 "Connected to 127.0.0.1:$port."
say 0 "NAME A"
expect 0 "HELLO A"
# Another client connects; it sets the name B.
tm split-window -h -t "$session:0.0" "$client_cmd"
tm select-pane -t "$session:0.1" -T "client 2 (B)"
expect 1 "Connected to 127.0.0.1:$port."
say 1 "NAME B"
expect 1 "HELLO B"
expect 0 "* B joined"
# Client A checks which clients exist and receives A B.
say 0 "GETNAMES"
expect 0 "USERS 2"
expect 0 "B"
# Client B disconnects.
say 1 "EXIT"
expect 1 "BYE"
expect 1 "[client exited with status 0]"
expect 0 "* B left"
# Client A checks which clients exist and receives A.
say 0 "GETNAMES"
expect 0 "USERS 1"
# Another client connects; it sets the name B.
tm split-window -v -t "$session:0.1" "$client_cmd"
tm select-pane -t "$session:0.2" -T "client 3 (B again)"
expect 2 "Connected to 127.0.0.1:$port."
say 2 "NAME B"
expect 2 "HELLO B"
expect 0 "* B joined" 2
# Client A checks which clients exist and receives A B.
say 0 "GETNAMES"
expect 0 "USERS 2" 2
# Client A sends HELLO to B; B receives it, with the sender's name.
say 0 "MSG B HELLO"
expect 2 "A SENT HELLO"
# Client B sends HELLO to A.
say 2 "MSG A HELLO"
expect 0 "B SENT HELLO"
# Client B disconnects, then client A.
say 2 "EXIT"
expect 2 "[client exited with status 0]"
expect 0 "* B left" 2
say 0 "EXIT"
expect 0 "[client exited with status 0]"

if $check; then
  echo "demo.sh: seed 003's example run replayed; every expected line was shown"
  exit 0
fi
echo "The run is over. Attaching: detach with Ctrl-b d to end the demo."
if [ -t 0 ] && [ -t 1 ]; then
  tm attach -t "$session" || true
else
  for pane in 0 1 2; do
    echo "--- pane $pane:"
    tm capture-pane -p -t "$session:0.$pane" -S -
  done
fi
