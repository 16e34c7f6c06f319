#!/usr/bin/env bash
# A cluster on one machine: a Redis and three chat-server nodes on loopback, one chat service.
#
#   scripts/cluster.sh [--port P] [--redis-port R]
#       starts Redis (on R, default a free port) and three nodes (chat ports P, P+1, P+2 and
#       IRC ports on free ports; default all free), prints their addresses and the client
#       command to try them with, and runs until Ctrl-C, which stops everything it started
#   scripts/cluster.sh --check [--port P] [--redis-port R]
#       the same, headless: a short scenario across the three nodes (one name space, LIST,
#       MSG, BCST, COMPOSE on one node and READ on another), every answer checked; exit
#       status 0 when all were right, 1 otherwise (CI runs this)
#
# Needs cargo, redis-server (scripts/test.sh installs it) and, for --check, python3.
# Redis runs with appendonly yes and appendfsync always, in a temporary directory that is
# removed at the end (with the nodes' data dirs and logs); nothing else is touched.
set -euo pipefail
cd "$(dirname "$0")/.."

check=false
port=0
redis_port=
while [ $# -gt 0 ]; do
  case $1 in
    --check) check=true ;;
    --port) port=${2:?--port needs a number}; shift ;;
    --redis-port) redis_port=${2:?--redis-port needs a number}; shift ;;
    *) echo "usage: $0 [--check] [--port P] [--redis-port R]" >&2; exit 2 ;;
  esac
  shift
done
command -v redis-server >/dev/null ||
  { echo "cluster.sh: redis-server is not installed (apt-get install redis-server)" >&2; exit 1; }
if $check; then
  command -v python3 >/dev/null || { echo "cluster.sh: --check needs python3" >&2; exit 1; }
fi

# The check uses the debug build the tests already made; a person gets the release build.
if $check; then profile=debug; build=(); else profile=release; build=(--release); fi
cargo build -q "${build[@]}" -p chat-server -p chat-client
target=${CARGO_TARGET_DIR:-target}
case $target in /*) ;; *) target=$PWD/$target ;; esac
server_bin=$target/$profile/chat-server
client_bin=$target/$profile/chat-client

data=$(mktemp -d "${TMPDIR:-/tmp}/chat-cluster.XXXXXX")
redis_pid=
node_pids=()
cleanup() {
  trap - EXIT INT TERM
  local pid
  for pid in "${node_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${node_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "$redis_pid" ]; then
    kill "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
  fi
  rm -rf "$data"
}
trap cleanup EXIT
trap 'echo; echo "cluster.sh: stopping"; exit 0' INT TERM

fail() {
  echo "cluster.sh: $*" >&2
  local log
  for log in "$data"/*.log; do
    [ -f "$log" ] || continue
    echo "--- $(basename "$log"):" >&2
    tail -n 40 "$log" >&2
  done
  exit 1
}

# A loopback port nobody listens on now.
free_port() {
  local p
  for _ in $(seq 50); do
    p=$((20000 + RANDOM % 40000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
  fail "no free loopback port found"
}

# Whether Redis on port $1 answers PING.
redis_ready() (
  exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
  printf 'PING\r\n' >&3
  IFS= read -r -t 1 answer <&3 || answer=
  [ "${answer%$'\r'}" = "+PONG" ]
)

# Redis, durable: every write on disk before it is answered.
[ -n "$redis_port" ] || redis_port=$(free_port)
mkdir -p "$data/redis"
redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$data/redis" \
  --appendonly yes --appendfsync always --save '' --logfile "$data/redis.log" &
redis_pid=$!
for _ in $(seq 100); do
  redis_ready "$redis_port" 2>/dev/null && break
  kill -0 "$redis_pid" 2>/dev/null || fail "redis-server did not start on port $redis_port"
  sleep 0.1
done
redis_ready "$redis_port" 2>/dev/null || fail "redis-server does not answer on port $redis_port"
url=redis://127.0.0.1:$redis_port

# Three nodes; each logs to its own file and keeps its own data dir.
chat_ports=()
irc_ports=()
for i in 1 2 3; do
  node_port=0
  [ "$port" = 0 ] || node_port=$((port + i - 1))
  "$server_bin" "$node_port" --bind 127.0.0.1 --data-dir "$data/node$i" --irc-port 0 \
    --cluster "$url" --log-format text >"$data/node$i.log" 2>&1 &
  node_pids+=($!)
done
for i in 1 2 3; do
  log=$data/node$i.log
  chat= irc= linked=
  for _ in $(seq 100); do
    chat=$(sed -n 's/.*chat port listening on [0-9.]*:\([0-9]*\).*/\1/p' "$log")
    irc=$(sed -n 's/.*IRC port listening on [0-9.]*:\([0-9]*\).*/\1/p' "$log")
    grep -q "connected to the cluster's Redis" "$log" && linked=1
    [ -n "$chat" ] && [ -n "$irc" ] && [ -n "$linked" ] && break
    kill -0 "${node_pids[i - 1]}" 2>/dev/null || fail "node $i exited"
    sleep 0.1
  done
  [ -n "$chat" ] && [ -n "$irc" ] || fail "node $i did not start"
  [ -n "$linked" ] || fail "node $i did not reach Redis at $url"
  chat_ports+=("$chat")
  irc_ports+=("$irc")
done

if ! $check; then
  echo "Redis:  127.0.0.1:$redis_port (appendonly, appendfsync always; log $data/redis.log)"
  for i in 1 2 3; do
    echo "node $i: chat 127.0.0.1:${chat_ports[i - 1]}, IRC 127.0.0.1:${irc_ports[i - 1]} (log $data/node$i.log)"
  done
  echo
  echo "Try it from other terminals, one client per node:"
  for i in 1 2 3; do
    echo "  $client_bin 127.0.0.1 ${chat_ports[i - 1]}"
  done
  echo "  irssi -c 127.0.0.1 -p ${irc_ports[0]}"
  echo
  echo "Ctrl-C stops the nodes and Redis and removes their data."
  # Runs until Ctrl-C (the trap) or until one of them exits on its own.
  status=0
  wait -n "${node_pids[@]}" "$redis_pid" || status=$?
  fail "a process exited on its own (status $status)"
fi

# The headless check: a tiny line-protocol client per node.
python3 - "$redis_port" "${chat_ports[@]}" <<'PY' || fail "the cross-node scenario failed"
import socket, sys, time

redis_port = int(sys.argv[1])
ports = [int(p) for p in sys.argv[2:5]]
TIMEOUT = 5.0


class Client:
    """A line client whose every read has a deadline."""

    def __init__(self, port, who):
        self.who = who
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.buf = b""

    def send(self, line):
        self.sock.sendall(line.encode() + b"\n")

    def recv(self):
        deadline = time.monotonic() + TIMEOUT
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SystemExit(f"{self.who}: nothing within {TIMEOUT} s")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise SystemExit(f"{self.who}: the server closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def expect(self, want):
        """The next message other than a notice (`* ...`) must be `want`."""
        got = self.recv()
        while got.startswith("* ") and not want.startswith("* "):
            got = self.recv()
        if got != want:
            raise SystemExit(f"{self.who}: expected {want!r}, got {got!r}")
        print(f"  {self.who} got {want!r}")


def redis_subscribers():
    """How many connections to Redis are subscribed to something (CLIENT LIST)."""
    with socket.create_connection(("127.0.0.1", redis_port), timeout=TIMEOUT) as s:
        s.sendall(b"CLIENT LIST\r\n")
        data = b""
        while b"\r\n" not in data:
            data += s.recv(65536)
        head, rest = data.split(b"\r\n", 1)
        size = int(head[1:])
        while len(rest) < size:
            rest += s.recv(65536)
    count = 0
    for line in rest[:size].decode().splitlines():
        fields = dict(f.split("=", 1) for f in line.split(" ") if "=" in f)
        if any(int(fields.get(k, "0") or 0) > 0 for k in ("sub", "psub", "ssub")):
            count += 1
    return count


# Every node listens for what the others publish before anything is said.
deadline = time.monotonic() + 10
while redis_subscribers() < 3:
    if time.monotonic() > deadline:
        raise SystemExit("the nodes never subscribed on Redis")
    time.sleep(0.05)

print("one name space:")
ann = Client(ports[0], "ann@node1")
ann.send("JOIN ann")
ann.expect("HELLO ann")
bob = Client(ports[1], "bob@node2")
bob.send("JOIN ANN")
bob.expect("Name Taken: ANN is already in use")
bob.send("JOIN bob")
bob.expect("HELLO bob")
cat = Client(ports[2], "cat@node3")
cat.send("JOIN cat")
cat.expect("HELLO cat")

print("LIST on every node shows every node's users (it may lag a JOIN a moment):")
for c in (cat, ann, bob):
    deadline = time.monotonic() + TIMEOUT
    while True:
        c.send("LIST")
        head = c.recv()
        while head.startswith("* "):
            head = c.recv()
        names = [c.recv() for _ in range(int(head.split(" ")[1]))]
        if names == ["ann", "bob", "cat"]:
            print(f"  {c.who} got {names}")
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"{c.who}: LIST shows {names}")
        time.sleep(0.05)

print("MSG and BCST across nodes:")
ann.send("MSG bob hello from node 1")
bob.expect("ann SENT hello from node 1")
bob.send("BCST hello from node 2")
ann.expect("bob BCST hello from node 2")
cat.expect("bob BCST hello from node 2")
cat.send("MSG nobody anyone?")
cat.expect("Unknown Recipient")

print("COMPOSE on node 1, READ on node 3:")
ann.send("COMPOSE dave")
ann.send("mail across nodes")
ann.expect("MESSAGE SENT")
dave = Client(ports[2], "dave@node3")
dave.send("LOGIN dave")
dave.expect("1")
dave.send("READ")
dave.expect("FROM ann")
dave.expect("TEXT mail across nodes")
dave.send("ACK")
dave.expect("ACKED")

for c in (ann, bob, cat, dave):
    c.send("QUIT")
    c.expect("BYE")
PY
echo "cluster.sh: three nodes on one Redis answered as one service"
