#!/usr/bin/env bash
# Runs Ferry's whole test suite on a fresh machine: installs what the tests need
# (moto's S3 server, which the S3 tests start on 127.0.0.1 and stop themselves; kubectl
# for the sandbox test; busybox for the sandbox's busybox images; runc to isolate them),
# then runs every test with cargo-nextest (or cargo test where nextest is missing).
set -euo pipefail
cd "$(dirname "$0")/.."

python3 - <<'PY' 2>/dev/null || pip install --quiet --disable-pip-version-check 'moto[server]>=5.2.5'
import importlib.metadata as m, sys
v = tuple(int(x) for x in m.version("moto").split(".")[:3])
sys.exit(0 if v >= (5, 2, 5) else 1)
PY
bash scripts/install-kubectl.sh >/dev/null
command -v setpriv >/dev/null || { apt-get update -qq && apt-get install -y -qq util-linux; }
# Busybox images in the sandbox run the real busybox's applets (what mover pods meet on
# real clusters): Debian's busybox-static.
command -v busybox >/dev/null || { apt-get update -qq && apt-get install -y -qq busybox-static; }
# As root, the sandbox isolates busybox containers with an OCI runtime (own mount and
# PID namespaces, volumes at their container paths, read-only mounts): Debian's runc.
if [ "$(id -u)" = 0 ]; then
  command -v runc >/dev/null || { apt-get update -qq && apt-get install -y -qq runc; }
fi
# The console's end-to-end test drives the real binary in a tmux terminal.
command -v tmux >/dev/null || { apt-get update -qq && apt-get install -y -qq tmux; }

# The agent tests run the built `ferry-agent` binary (in the sandbox's agent pods, and in
# its image under runc). The agent's own tests (src/agent/tests) make this same build
# compile it, with the features every other test's crates have: nothing twice.
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
