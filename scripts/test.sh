#!/usr/bin/env bash
# The whole test suite, as CI runs it on a fresh machine: installs the system packages the tests
# use, checks formatting and lints, builds the binaries the end-to-end tests run, runs every
# test (unit, property, end-to-end against the real binaries), the parser accuracy gate, a
# time-boxed fuzz run of the parser dispatcher, the Windows agent's clippy and cross-build (run
# under Wine by an end-to-end test), and the .deb install/upgrade/purge test in a
# throwaway Debian root (deploy/test/packages.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$SECONDS
stage() { echo "==> $* (at $((SECONDS - t0)) s)"; }

need_pkgs=()
command -v logrotate >/dev/null || need_pkgs+=(logrotate)
command -v zstd >/dev/null || need_pkgs+=(zstd)
command -v mount >/dev/null || need_pkgs+=(mount)   # tmpfs for the disk-full tests
command -v script >/dev/null || need_pkgs+=(bsdutils)  # a pty for the terminal-output tests
command -v rsyslogd >/dev/null || [ -x /usr/sbin/rsyslogd ] || need_pkgs+=(rsyslog)
command -v logger >/dev/null || need_pkgs+=(bsdutils)   # a real syslog sender (e2e syslog tests)
dpkg -s rsyslog-gnutls >/dev/null 2>&1 || need_pkgs+=(rsyslog-gnutls)  # rsyslog forwarding over TLS
command -v debootstrap >/dev/null || need_pkgs+=(debootstrap)
command -v openssl >/dev/null || need_pkgs+=(openssl)  # CA fingerprint and certificate dates read independently (enroll tests)
command -v strip >/dev/null || need_pkgs+=(binutils)
[ -x /lib/systemd/systemd-journal-remote ] || need_pkgs+=(systemd-journal-remote)  # journald input tests
command -v iconv >/dev/null || need_pkgs+=(libc-bin)   # Shift_JIS/UTF-16 files for the encoding tests
command -v java >/dev/null || need_pkgs+=(default-jdk-headless)  # real Java stack traces (multiline tests)
/usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null || need_pkgs+=(python3-venv)  # pycef venv (CEF forwarding test)
# The Windows agent: cross-linker (and the ProcessPrng DLL the Wine test builds), and Wine to run it.
command -v x86_64-w64-mingw32-gcc >/dev/null || need_pkgs+=(mingw-w64)
command -v wine64 >/dev/null || [ -x /usr/lib/wine/wine64 ] || need_pkgs+=(wine64)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  stage "installing ${need_pkgs[*]}"
  # Packages must not start services here (a system rsyslog would compete with the tests' own
  # instances): policy-rc.d exit 101 says no, and it is removed again only if we put it there.
  own_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
  [ -z "$own_policy" ] || rm -f /usr/sbin/policy-rc.d
fi
# pycef (PyPI), a CEF parser no one here wrote, checks the CEF forwarder's output
# (tests/tests/e2e/forward.rs reads LOGSHIP_PYCEF_PYTHON, default this venv).
/opt/logship-pycef/bin/python -c 'import pycef' 2>/dev/null || {
  /usr/bin/python3 -m venv /opt/logship-pycef && /opt/logship-pycef/bin/pip install -q pycef==1.11
}
# The packages test's Debian root downloads while the code builds (packages.sh waits for nothing:
# it makes the root itself if this did not).
mkdir -p target
bash deploy/test/packages.sh --base-only >target/pkg-base.log 2>&1 &
base_pid=$!
stage "cargo tools"
command -v cargo-nextest >/dev/null || cargo install cargo-nextest --locked
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked
rustup target add x86_64-pc-windows-gnu >/dev/null   # idempotent; for the Windows agent

# A fresh clone builds everything once: incremental compilation only adds work there.
if [ -n "${CI:-}" ] || [ ! -d target/debug ]; then export CARGO_INCREMENTAL=0; fi
stage "format"
cargo fmt --all -- --check
stage "clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
stage "clippy for Windows (x86_64-pc-windows-gnu): the agent and the libraries it builds on"
cargo clippy --target x86_64-pc-windows-gnu --quiet \
  -p logship-agent -p logship-tail -p logship-spool -p logship-proto -p logship-logging -- -D warnings
stage "dependency guard: ring is the only TLS crypto provider, no OpenSSL"
for banned in aws-lc-rs openssl-sys; do
  if cargo tree --quiet -i "$banned" --target all >/dev/null 2>&1; then
    echo "$banned is in the dependency tree (see docs/ARCHITECTURE.md, crate choices)"; exit 1
  fi
done
stage "build binaries"
cargo build --workspace --bins --quiet
stage "cross-build the Windows agent (the Wine test runs it)"
cargo build --target x86_64-pc-windows-gnu -p logship-agent --quiet
stage "parser accuracy gate"
target/debug/logship-collector parser-accuracy --table lib/normalize/tests/data/accuracy.jsonl | tail -n 3
stage "fuzz the parser dispatcher and the readers of outside bytes (time-boxed)"
scripts/fuzz.sh "${LOGSHIP_FUZZ_SECS:-45}"
stage "packages: install, INSTALL.md steps, upgrade, purge in a throwaway Debian root"
wait "$base_pid" || { echo "(the background root build failed; packages.sh retries it)"; cat target/pkg-base.log; }
bash deploy/test/packages.sh
stage "tests"
cargo nextest run --workspace --no-fail-fast --profile ci
stage "done"
