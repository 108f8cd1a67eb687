#!/usr/bin/env bash
# The whole test suite, as CI runs it on a fresh machine: installs the system packages the tests
# use, checks formatting and lints, builds the binaries the end-to-end tests run, runs every
# test (unit, property, end-to-end against the real binaries), the parser accuracy gate and a
# time-boxed fuzz run of the parser dispatcher.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v logrotate >/dev/null || need_pkgs+=(logrotate)
command -v zstd >/dev/null || need_pkgs+=(zstd)
command -v script >/dev/null || need_pkgs+=(bsdutils)  # a pty for the terminal-output tests
command -v rsyslogd >/dev/null || [ -x /usr/sbin/rsyslogd ] || need_pkgs+=(rsyslog)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "==> installing ${need_pkgs[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
  # The package may start a system rsyslog; the tests and the benchmark run their own instances.
  pkill -x rsyslogd 2>/dev/null || true
fi
command -v cargo-nextest >/dev/null || cargo install cargo-nextest --locked

echo "==> format"
cargo fmt --all -- --check
echo "==> clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "==> dependency guard: ring is the only TLS crypto provider, no OpenSSL"
for banned in aws-lc-rs openssl-sys; do
  if cargo tree --quiet -i "$banned" --target all >/dev/null 2>&1; then
    echo "$banned is in the dependency tree (see docs/ARCHITECTURE.md, crate choices)"; exit 1
  fi
done
echo "==> build binaries"
cargo build --workspace --bins --quiet
echo "==> parser accuracy gate"
target/debug/logship-collector parser-accuracy --table lib/normalize/tests/data/accuracy.jsonl | tail -n 3
echo "==> fuzz the parser dispatcher (time-boxed)"
scripts/fuzz.sh "${LOGSHIP_FUZZ_SECS:-60}"
echo "==> tests"
cargo nextest run --workspace --no-fail-fast --profile ci
