#!/usr/bin/env bash
# Builds the release binaries and runs `edgecache bench hits`: edgecache,
# nginx (proxy_cache) and Varnish side by side, driven by wrk in turns.
# Run it as root on a quiet machine (it apt-get installs nginx, varnish and
# wrk when missing). Extra arguments go to `edgecache bench hits` (rounds
# and duration come from the environment below), e.g.
#   ROUNDS=9 DURATION=10s scripts/bench.sh
#   scripts/bench.sh --sizes 1k,many --targets edgecache,nginx
# Environment: ROUNDS (5), DURATION (6s), OUT (target/bench). More, shorter
# rounds: the servers take turns more often, so machine noise hits all alike.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-target/bench}"
mkdir -p "$out"
cargo build --release --workspace --bins
exec target/release/edgecache bench hits \
  --rounds "${ROUNDS:-5}" \
  --duration "${DURATION:-6s}" \
  --json "$out/hits.json" \
  --plot "$out/hits.svg" \
  "$@"
