#!/usr/bin/env bash
# The Windows check: cross-builds the whole workspace for x86_64-pc-windows-gnu and runs every
# test under Wine (unit tests, and the end-to-end tests that start chat-server.exe and
# chat-client.exe over loopback), with the shared script beside the repository:
# ../shared/scripts/windows-check.sh (read it: it installs Debian's rustc-web, rust-web-src,
# mingw-w64 and Wine on first use).
#   scripts/windows-check.sh [extra cargo test args...]
# Env: WINCHECK_TARGET_DIR (default target/windows-check; the Wine prefix lives inside it, so a
# warm machine reuses both), WINDOWS_CHECK_SCRIPT (another copy of the shared script), and the
# shared script's own WINCHECK_* knobs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(git -C "$here" rev-parse --show-toplevel 2>/dev/null || (cd "$here/.." && pwd))
check=${WINDOWS_CHECK_SCRIPT:-$root/../shared/scripts/windows-check.sh}
[ -f "$check" ] || {
  echo "windows-check: $check not found (set WINDOWS_CHECK_SCRIPT)" >&2
  exit 1
}
export WINCHECK_TARGET_DIR=${WINCHECK_TARGET_DIR:-$root/target/windows-check}
# Per cargo step: a cold build of std and every dependency takes about 10 minutes on a busy
# two-core machine; the tests have their own deadlines and take about 2.
export WINCHECK_TIMEOUT=${WINCHECK_TIMEOUT:-1200}

# Cargo names a workspace crate's artifacts by its path relative to the workspace, and trusts
# them while no source file is newer: a target dir last used by another checkout (a worktree
# at another commit) can hand back that checkout's stale crates. Forget them on a switch.
stamp=$WINCHECK_TARGET_DIR/.checkout
if [ -f "$stamp" ] && [ "$(cat "$stamp")" != "$root" ]; then
  echo "windows-check: $WINCHECK_TARGET_DIR was last used by $(cat "$stamp"); cleaning the workspace crates" >&2
  (cd "$root" && RUSTC=/usr/bin/rustc CARGO_TARGET_DIR=$WINCHECK_TARGET_DIR /usr/bin/cargo clean -q \
    -p protocol -p chat-server -p chat-client -p chat-tests --target x86_64-pc-windows-gnu)
fi
mkdir -p "$WINCHECK_TARGET_DIR"
echo "$root" >"$stamp"

bash "$check" "$root" -- --workspace --no-fail-fast "$@"
