#!/usr/bin/env bash
# Builds the release binaries and runs `edgecache bench hits`: edgecache,
# nginx (proxy_cache) and Varnish side by side, driven by wrk in turns.
# Run it as root on a quiet machine (it apt-get installs nginx, varnish and
# wrk when missing). Extra arguments go to `edgecache bench hits`, e.g.
#   scripts/bench.sh --rounds 5 --duration 15s
#   scripts/bench.sh --sizes 1k,many --targets edgecache,nginx
# Environment: ROUNDS (3), DURATION (10s), OUT (target/bench).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-target/bench}"
mkdir -p "$out"
cargo build --release --workspace --bins
exec target/release/edgecache bench hits \
  --rounds "${ROUNDS:-3}" \
  --duration "${DURATION:-10s}" \
  --json "$out/hits.json" \
  --plot "$out/hits.svg" \
  "$@"
