#!/usr/bin/env bash
# Start-up with a large mail log: how soon chat is served, and how soon the mailboxes are.
#
#   scripts/bench-startup.sh              # a 200 MB log, 3 runs
#   MB=50 RUNS=5 scripts/bench-startup.sh
#
# Builds chat-server in release, writes a mail log of MB megabytes of live messages (COMPOSE
# records to 2,000 users, in the format described at the top of server/src/store/mod.rs)
# into a temporary data dir, then RUNS times: copies it, starts the server on it, and times
# from the start to "chat port listening", to the answer of a JOIN + LIST on the chat port,
# and to the answer of a LOGIN (which waits for the log to be loaded). The server's own
# "messages loaded ... in N ms" line is printed too.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
MB=${MB:-200}
RUNS=${RUNS:-3}
WORK=$(mktemp -d /tmp/chat-startup.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

cargo build --release -p chat-server --manifest-path "$ROOT/Cargo.toml" >&2
python3 - "$TARGET/release/chat-server" "$WORK" "$MB" "$RUNS" <<'PY'
import os, shutil, socket, struct, subprocess, sys, time, zlib

server, work, mb, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
log = os.path.join(work, "mail.log")
with open(log, "wb") as out:
    out.write(b"CHATMB1\n")
    field = lambda s: struct.pack("<I", len(s)) + s.encode()
    total, i, buf = 8, 0, []
    while total < mb << 20:
        payload = (bytes([1]) + struct.pack("<Q", i) + field(f"user{i % 2000}")
                   + field(f"sender{i % 37}") + field("x" * 60 + f" message number {i}"))
        rec = struct.pack("<II", len(payload), zlib.crc32(payload)) + payload
        buf.append(rec)
        total, i = total + len(rec), i + 1
        if len(buf) >= 10000:
            out.write(b"".join(buf))
            buf = []
    out.write(b"".join(buf))
print(f"mail log: {total:,} bytes, {i:,} messages", flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def ask(port, line, timeout=120):
    c = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    c.sendall(line)
    reply = c.recv(100)
    c.close()
    return reply


for run in range(runs):
    data = os.path.join(work, f"run{run}")
    os.makedirs(data)
    shutil.copy(log, data)
    subprocess.run(["sync"])
    port = free_port()
    t0 = time.monotonic()
    p = subprocess.Popen([server, str(port), "--bind", "127.0.0.1", "--data-dir", data,
                          "--mailbox-cap", "100000"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in p.stdout:
        if "chat port listening" in line:
            break
    listening = time.monotonic() - t0
    joined = ask(port, b"JOIN probe\nLIST\n")
    chat = time.monotonic() - t0
    count = ask(port, b"LOGIN user7\n").decode().strip()
    login = time.monotonic() - t0
    p.terminate()
    out = p.communicate(timeout=60)[0]
    loaded = next((l for l in out.splitlines() if "messages loaded" in l), "")
    hello = joined.splitlines()[0].decode() if joined else "nothing"
    print(f"run {run}: listening {listening * 1000:.0f} ms, chat answered {chat * 1000:.0f} ms "
          f"({hello}), LOGIN answered {login:.2f} s ({count} stored)")
    if loaded:
        start = loaded.find("mail store:")
        print("   ", loaded[start:].rstrip('"}'))
    shutil.rmtree(data)
PY
