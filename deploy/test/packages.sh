#!/usr/bin/env bash
# The .deb packages and the service install, tested in a throwaway Debian 12 root (issue 7):
#  1. builds both packages from the debug binaries (cargo deb --no-build, no release build), as
#     version -1 and, for the upgrade, -2;
#  2. makes a minimal Debian 12 root with debootstrap (kept in target/pkg-test/ as a tarball, so a
#     second run takes seconds; `--base-only` makes just that) and chroots into it;
#  3. runs every block of docs/INSTALL.md marked `<!-- step: NAME -->`, as written;
#  4. checks the system user, folders and modes, conffiles, that the units are installed and
#     enabled, never started by the package, their Documentation= exists, and
#     `systemd-analyze verify` accepts them;
#  5. upgrades to -2 (local edits of conffiles and the store survive), then purges both packages
#     and checks that nothing is left: the root's file list and user database equal those from
#     before the install.
# Needs root, cargo-deb, debootstrap and network access to the Debian mirror for the first run;
# scripts/test.sh installs the tools. A missing tool is a failure, never a skip.
set -euo pipefail
cd "$(dirname "$0")/../.."

work=${LOGSHIP_PKG_TEST_DIR:-target/pkg-test}
suite=bookworm
mirror=${LOGSHIP_DEBIAN_MIRROR:-http://deb.debian.org/debian}
root="$work/root"

die() { echo "FAILED: $*" >&2; exit 1; }
base="$work/base-$suite.tar"
# The Debian root as a tarball, made once (the download is most of this script's first run).
make_base() {
  [ -f "$base" ] && return 0
  command -v debootstrap >/dev/null || die "debootstrap is missing (scripts/test.sh installs it)"
  mkdir -p "$work" && rm -rf "$work/base"
  debootstrap --variant=minbase --include=init-system-helpers,systemd "$suite" "$work/base" \
    "$mirror" >"$work/debootstrap.log" || die "debootstrap failed (see $work/debootstrap.log)"
  tar -C "$work/base" -cf "$base.part" . && rm -rf "$work/base" && mv "$base.part" "$base"
}
# `--base-only`: only make the root (scripts/test.sh runs this beside the build).
if [ "${1:-}" = --base-only ]; then make_base; exit 0; fi
for tool in cargo-deb debootstrap chroot dpkg-deb strip; do
  command -v "$tool" >/dev/null || die "$tool is missing (scripts/test.sh installs it)"
done
[ "$(id -u)" = 0 ] || die "needs root (chroot, file owners)"
for b in logship-agent logship-collector; do
  [ -x "target/debug/$b" ] || die "target/debug/$b missing: cargo build --workspace --bins first"
done

echo "==> docs/INSTALL.ja.md shows the same commands as docs/INSTALL.md"
commands() {
  awk '/^```sh$/ {b=1; next} b && /^```$/ {b=0; next} b {print}' "$1" | sed 's/[[:space:]]*#.*$//'
}
diff <(commands docs/INSTALL.md) <(commands docs/INSTALL.ja.md) \
  || die "the commands in docs/INSTALL.ja.md differ from docs/INSTALL.md's (lines above)"

cleanup() { mountpoint -q "$root/proc" && umount "$root/proc"; return 0; }
trap cleanup EXIT

echo "==> packages from the debug binaries"
mkdir -p target/pkgtest "$work"
ln -f target/debug/logship-agent target/debug/logship-collector target/pkgtest/
for v in 1 2; do
  rm -rf "$work/v$v"
  for p in logship-collector logship-agent; do
    cargo deb -p "$p" --profile pkgtest --no-build --fast --deb-version "0.1.0-$v" \
      -o "$work/v$v/" >/dev/null
  done
done

echo "==> throwaway Debian 12 root"
make_base
cleanup
rm -rf "$root" && mkdir -p "$root" && tar -C "$root" -xf "$base"
mount -t proc proc "$root/proc"
# Like a container image: nothing is started by a package here (policy-rc.d says no).
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d" && chmod 755 "$root/usr/sbin/policy-rc.d"
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
  DEBIAN_FRONTEND=noninteractive bash -euo pipefail -c "cd /root && $1"; }
snapshot() {
  (cd "$root" && find . -xdev \( -path ./proc -o -path ./root -o -path ./tmp -o -path ./run \
    -o -path ./var/lib/dpkg -o -path ./var/log -o -path ./var/cache -o -path ./var/lib/apt \
    -o -path './etc/*-' -o -path ./etc/ld.so.cache \) -prune -o -print | sort)
  cat "$root"/etc/{passwd,group,shadow,gshadow}
}
snapshot >"$work/before.txt"

echo "==> the steps of docs/INSTALL.md"
cp "$work"/v1/*.deb "$root/root/"
steps=$(awk '/^<!-- step: .* -->$/ {name=$3; next}
  name && /^```sh$/ {inblock=1; print "echo \"--- step " name "\""; next}
  inblock && /^```$/ {inblock=0; name=""; next}
  inblock {print}' docs/INSTALL.md)
[ "$(grep -c '^echo "--- step' <<<"$steps")" -ge 5 ] || die "fewer than 5 steps found in docs/INSTALL.md"
in_root "$steps" >"$work/steps.log" 2>&1 || { tail -n 30 "$work/steps.log"; die "an INSTALL.md step failed"; }

echo "==> what the packages and the steps made"
expect() { [ "$2" = "$3" ] || die "$1: expected '$3', found '$2'"; }
expect "logship user's shell" "$(in_root 'getent passwd logship | cut -d: -f7')" /usr/sbin/nologin
expect "/etc/logship" "$(in_root "stat -c '%a %U' /etc/logship")" "755 root"
expect "/var/lib/logship-collector" "$(in_root "stat -c '%a %U' /var/lib/logship-collector")" "700 logship"
expect "logship-agent user's shell" "$(in_root 'getent passwd logship-agent | cut -d: -f7')" /usr/sbin/nologin
expect "/var/lib/logship-agent" "$(in_root "stat -c '%a %U' /var/lib/logship-agent")" "700 logship-agent"
expect "agent key" "$(in_root "stat -c '%a %U' /var/lib/logship-agent/agent.key")" "600 logship-agent"
grep -q '^key = "/var/lib/logship-agent/agent.key"' "$root/etc/logship/agent.toml" \
  || die "agent.toml written --for-service does not keep the key in the state folder"
grep -q '^dir = "/var/lib/logship-agent/spool"' "$root/etc/logship/agent.toml" \
  || die "agent.toml written --for-service has no absolute spool path"
for p in logship-agent logship-collector; do
  unit="$root/usr/lib/systemd/system/$p.service"
  [ -f "$unit" ] || die "$p.service not installed"
  [ -L "$root/etc/systemd/system/multi-user.target.wants/$p.service" ] || die "$p.service not enabled"
  doc=$(sed -n 's|^Documentation=file://||p' "$unit")
  [ -n "$doc" ] && [ -f "$root$doc" ] || die "$p.service Documentation=$doc is not installed"
  grep -q '^ConditionPathExists=/etc/logship/' "$unit" || die "$p.service would start without a config"
  in_root "dpkg-query -W -f='\${Conffiles}' $p" | grep -q "/etc/default/$p" \
    || die "/etc/default/$p is not a conffile"
  if grep -q 'deb-systemd-invoke \(start\|restart\)' "$root/var/lib/dpkg/info/$p.postinst"; then
    die "$p's postinst starts the service"
  fi
done
in_root 'systemd-analyze verify logship-agent.service logship-collector.service' \
  || die "systemd-analyze verify rejected a unit"

echo "==> upgrade to 0.1.0-2"
echo 'LOGSHIP_LOG=debug  # local edit' >>"$root/etc/default/logship-agent"
store_before=$(cd "$root/var/lib/logship-collector" && find . | sort | md5sum)
cp "$work"/v2/*.deb "$root/root/"
in_root 'apt-get install -y -q ./logship-collector_0.1.0-2_amd64.deb ./logship-agent_0.1.0-2_amd64.deb' \
  >"$work/upgrade.log" 2>&1 || { tail -n 20 "$work/upgrade.log"; die "upgrade failed"; }
expect "agent version" "$(in_root "dpkg-query -W -f='\${Version}' logship-agent")" 0.1.0-2
grep -q 'local edit' "$root/etc/default/logship-agent" || die "the upgrade lost a conffile edit"
expect "collector data after upgrade" "$(cd "$root/var/lib/logship-collector" && find . | sort | md5sum)" "$store_before"
[ -L "$root/etc/systemd/system/multi-user.target.wants/logship-agent.service" ] || die "upgrade disabled the agent"
in_root 'logship-agent check-config --config /etc/logship/agent.toml' >/dev/null 2>&1 \
  || die "agent config no longer checks after the upgrade"

echo "==> purge"
in_root 'apt-get purge -y -q logship-agent logship-collector' >"$work/purge.log" 2>&1 \
  || { tail -n 20 "$work/purge.log"; die "purge failed"; }
snapshot >"$work/after.txt"
if ! diff -u "$work/before.txt" "$work/after.txt"; then die "purge left the lines marked + above"; fi
echo "packages: install, INSTALL.md steps, units, upgrade and purge OK"
