#!/usr/bin/env bash
# The whole test suite, as CI runs it on a fresh machine: installs the system packages the tests
# use, checks formatting and lints, builds the binaries the end-to-end tests run, runs every
# test (unit, property, end-to-end against the real binaries), the parser accuracy gate, a
# time-boxed fuzz run of the parser dispatcher, the Windows agent's clippy and cross-build (run
# under Wine by an end-to-end test), and the .deb install/upgrade/purge test in a
# throwaway Debian root (deploy/test/packages.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

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
  echo "==> installing ${need_pkgs[*]}"
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
command -v cargo-nextest >/dev/null || cargo install cargo-nextest --locked
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked
rustup target add x86_64-pc-windows-gnu >/dev/null   # idempotent; for the Windows agent

echo "==> format"
cargo fmt --all -- --check
echo "==> clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "==> clippy for Windows (x86_64-pc-windows-gnu): the agent and the libraries it builds on"
cargo clippy --target x86_64-pc-windows-gnu --quiet --all-targets \
  -p logship-agent -p logship-tail -p logship-spool -p logship-proto -p logship-logging -- -D warnings
echo "==> dependency guard: ring is the only TLS crypto provider, no OpenSSL"
for banned in aws-lc-rs openssl-sys; do
  if cargo tree --quiet -i "$banned" --target all >/dev/null 2>&1; then
    echo "$banned is in the dependency tree (see docs/ARCHITECTURE.md, crate choices)"; exit 1
  fi
done
echo "==> build binaries"
cargo build --workspace --bins --quiet
echo "==> cross-build the Windows agent (the Wine test runs it)"
cargo build --target x86_64-pc-windows-gnu -p logship-agent --quiet
echo "==> parser accuracy gate"
target/debug/logship-collector parser-accuracy --table lib/normalize/tests/data/accuracy.jsonl | tail -n 3
echo "==> fuzz the parser dispatcher (time-boxed)"
scripts/fuzz.sh "${LOGSHIP_FUZZ_SECS:-60}"
echo "==> packages: install, INSTALL.md steps, upgrade, purge in a throwaway Debian root"
bash deploy/test/packages.sh
echo "==> tests"
cargo nextest run --workspace --no-fail-fast --profile ci
