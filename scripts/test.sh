#!/usr/bin/env bash
# The whole test suite, on a fresh machine too: installs what the client tests need (tmux),
# the IRC clients the IRC door is tested with (irssi, weechat-headless) and the Redis the
# cluster tests start (redis-server),
# builds the binaries the end-to-end tests start, then runs every test in the workspace.
# The last line is the total over every test binary: `N passed, M failed, K skipped`
# (skipped: ignored tests); the exit status is cargo's, non-zero when anything failed.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
command -v irssi >/dev/null 2>&1 || missing+=(irssi)
command -v weechat-headless >/dev/null 2>&1 || missing+=(weechat-headless)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
    { $SUDO apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null; } ||
      echo "test.sh: could not install ${missing[*]}; the tests that need them will be skipped" >&2
  else
    echo "test.sh: ${missing[*]} missing and apt-get is not available; the tests that need them will be skipped" >&2
  fi
fi

cargo build --workspace --bins
OUT=$(mktemp "${TMPDIR:-/tmp}/chat-test.XXXXXX")
trap 'rm -f "$OUT"' EXIT
status=0
cargo test --workspace "$@" 2>&1 | tee "$OUT" || status=$?
# "test result: ok. 12 passed; 0 failed; 1 ignored; ..." once per test binary.
awk '/^test result:/ {
       for (i = 1; i <= NF; i++) {
         if ($(i+1) ~ /^passed/) p += $i
         if ($(i+1) ~ /^failed/) f += $i
         if ($(i+1) ~ /^ignored/) s += $i
       }
     }
     END { printf "%d passed, %d failed, %d skipped\n", p, f, s }' "$OUT"
exit "$status"
