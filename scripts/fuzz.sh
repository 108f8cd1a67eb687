#!/usr/bin/env bash
# Time-boxed libFuzzer runs on the stable toolchain (no sanitizer), all from the one fuzz crate in
# fuzz/ (one build): the parser dispatcher for N seconds (default 45), then each reader of outside
# bytes (batch decoder, spool segment, store segment; see fuzz/README.md) for N/3 seconds.
# Installs cargo-fuzz when missing. Fails on any crash.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
secs=${1:-45}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --quiet

run() { # TARGET CORPUS SECS MAX_LEN
  echo "--- fuzz $1 for $3 s"
  (cd "$root/fuzz" && cargo fuzz run --sanitizer none "$1" "$2" -- \
    -max_total_time="$3" -max_len="$4" -print_final_stats=1 2>&1 | tail -n 12)
}

# Work on copies of the seeds so the run does not grow the repository's corpus.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The parser target starts from the normalizer's real-line fixtures.
mkdir -p "$work/dispatch"
cp "$root"/lib/normalize/tests/data/*.{log,xml,json} "$work/dispatch/" 2>/dev/null || true
(cd "$root/fuzz" && cargo fuzz build --sanitizer none)
run dispatch "$work/dispatch" "$secs" 4096

if [ -d /dev/shm ]; then export TMPDIR=/dev/shm; fi
for target in batch_decode spool_segment store_segment; do
  mkdir -p "$work/$target"
  cp "$root/fuzz/corpus/$target/"* "$work/$target/"
  # The readers fsync; a RAM-backed temp dir keeps them at thousands of runs a second.
  run "$target" "$work/$target" $(( (secs + 2) / 3 )) 65536
done
