#!/usr/bin/env bash
# The whole test suite, on a fresh machine too: installs what the client tests need (tmux),
# builds the binaries the end-to-end tests start, then runs every test in the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v tmux >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq tmux >/dev/null
  else
    echo "test.sh: tmux is missing and apt-get is not available; the terminal tests will be skipped" >&2
  fi
fi

cargo build --workspace --bins
cargo test --workspace "$@"
