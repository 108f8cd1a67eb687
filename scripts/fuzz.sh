#!/usr/bin/env bash
# Runs the libFuzzer target over the parser dispatcher for N seconds (default 60) on the stable
# toolchain (no sanitizer). Installs cargo-fuzz when missing. Fails on any crash.
set -euo pipefail
cd "$(dirname "$0")/../lib/normalize"
secs=${1:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --quiet
mkdir -p fuzz/corpus/dispatch
cp -n tests/data/*.log tests/data/*.xml tests/data/*.json fuzz/corpus/dispatch/ 2>/dev/null || true
cargo fuzz run --sanitizer none dispatch fuzz/corpus/dispatch -- \
  -max_total_time="$secs" -max_len=4096 -print_final_stats=1 2>&1 | tail -n 12
