#!/usr/bin/env bash
# Runs each cargo-fuzz target of fuzz/ for a bounded time. Not part of CI.
#
#   scripts/fuzz.sh            # every target, 60 s each
#   scripts/fuzz.sh 300 frame  # one target, 300 s
#
# Needs a nightly toolchain (libFuzzer's sanitizer flags are nightly-only)
# and cargo-fuzz, which is installed from crates.io when missing.
set -euo pipefail

cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${1:-60}"
shift || true
TARGETS=("$@")
if [ "${#TARGETS[@]}" -eq 0 ]; then
    TARGETS=(cache_control config frame)
fi

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "fuzz.sh: no nightly Rust toolchain here, and cargo-fuzz needs one." >&2
    echo "fuzz.sh: install it with 'rustup toolchain install nightly' where the network allows; nothing was fuzzed." >&2
    exit 2
fi

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz from crates.io" >&2
    if ! cargo +nightly install --locked cargo-fuzz; then
        echo "fuzz.sh: could not install cargo-fuzz; nothing was fuzzed." >&2
        exit 2
    fi
fi

status=0
for target in "${TARGETS[@]}"; do
    echo "fuzz.sh: ${target} for ${SECONDS_PER_TARGET}s" >&2
    mkdir -p "fuzz/corpus/${target}"
    if ! cargo +nightly fuzz build "${target}"; then
        echo "fuzz.sh: ${target} does not build; nothing was fuzzed for it." >&2
        status=2
        continue
    fi
    if ! cargo +nightly fuzz run "${target}" "fuzz/corpus/${target}" -- \
        -max_total_time="${SECONDS_PER_TARGET}" -max_len=65536 -rss_limit_mb=2048; then
        echo "fuzz.sh: ${target} found a failure; see fuzz/artifacts/${target}/" >&2
        status=1
    fi
done
exit "${status}"
