#!/usr/bin/env bash
# Time-boxed libFuzzer runs on the stable toolchain (no sanitizer): the parser dispatcher for N
# seconds (default 60), then each reader of outside bytes (batch decoder, spool segment, store
# segment; see fuzz/README.md) for N/2 seconds. Installs cargo-fuzz when missing. Fails on any
# crash.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
secs=${1:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --quiet

run() { # DIR TARGET CORPUS SECS MAX_LEN
  echo "--- fuzz $2 for $4 s"
  (cd "$1" && cargo fuzz run --sanitizer none "$2" "$3" -- \
    -max_total_time="$4" -max_len="$5" -print_final_stats=1 2>&1 | tail -n 12)
}

cd "$root/lib/normalize"
mkdir -p fuzz/corpus/dispatch
cp -n tests/data/*.log tests/data/*.xml tests/data/*.json fuzz/corpus/dispatch/ 2>/dev/null || true
run "$root/lib/normalize" dispatch fuzz/corpus/dispatch "$secs" 4096

# Work on a copy of the committed seeds so the run does not grow the repository's corpus.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -d /dev/shm ]; then export TMPDIR=/dev/shm; fi
for target in batch_decode spool_segment store_segment; do
  mkdir -p "$work/$target"
  cp "$root/fuzz/corpus/$target/"* "$work/$target/"
  # The readers fsync; a RAM-backed temp dir keeps them at thousands of runs a second.
  run "$root/fuzz" "$target" "$work/$target" $(( (secs + 1) / 2 )) 65536
done
