#!/usr/bin/env bash
# Regenerates the SoftEther VPN fixture lines of lib/normalize/tests/data/softether-*.log from the
# real programs (issue 12): Debian 12's softether-vpnserver, -vpnclient and -vpncmd on loopback.
#
#  1. starts a fresh SoftEther VPN Server (English, its state in /var/lib/softether, its logs in
#     /var/log/softether), creates hub SITE with user alice (password), SecureNAT (its DHCP server
#     gives the client an address), the hub's security and packet logs and a server admin password;
#  2. tries a wrong server admin password with vpncmd; starts the SoftEther VPN Client with a virtual NIC and connects as alice with a wrong
#     password, as an unknown user (mallory), then with the right password; the NIC asks the
#     SecureNAT DHCP server for an address (busybox udhcpc, which changes nothing on the host);
#     then disconnects;
#  3. does the same again with the server's syslog sending on (`SyslogEnable 3`) to a UDP
#     listener on 127.0.0.1:5514, a private rsyslogd (with syslog on, SoftEther sends instead of writing the files);
#  4. stops both programs and copies the server log, the hub security log, the packet log and
#     rsyslog's two files of the datagrams (as received, and in its file format) to OUT (default target/softether-fixtures/).
#
# Needs root (the client creates a tap device), no other SoftEther running, and TCP ports 443,
# 992, 1194, 5555 and 9930 free. It REMOVES /var/lib/softether and /var/log/softether first:
# run it on a throwaway machine. Not part of CI: the fixtures are its committed output.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-target/softether-fixtures}
server=/usr/libexec/softether/vpnserver/vpnserver
client=/usr/libexec/softether/vpnclient/vpnclient
die() { echo "FAILED: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root"
apt-get install -y softether-vpnserver softether-vpnclient softether-vpncmd busybox rsyslog >/dev/null

"$server" stop >/dev/null 2>&1 || true
"$client" stop >/dev/null 2>&1 || true
rm -rf /var/lib/softether /var/log/softether /tmp/softether-fixtures
mkdir -p /var/lib/softether /var/log/softether /run/softether /tmp/softether-fixtures
tmp=/tmp/softether-fixtures

srv() { vpncmd 127.0.0.1:5555 /SERVER /PASSWORD:"${adminpw:-}" /CMD "$@" >"$tmp/last.out" 2>&1 || { cat "$tmp/last.out"; die "vpncmd server $*"; }; }
hub() { vpncmd 127.0.0.1:5555 /SERVER /HUB:SITE /PASSWORD:hubadminpw /CMD "$@" >"$tmp/last.out" 2>&1 || { cat "$tmp/last.out"; die "vpncmd hub $*"; }; }
cli() { vpncmd localhost /CLIENT /CMD "$@" >"$tmp/last.out" 2>&1 || { cat "$tmp/last.out"; die "vpncmd client $*"; }; }
# Waits until the account's status line contains $1.
wait_status() {
  for _ in $(seq 60); do
    cli AccountStatusGet office || true
    grep -q "$1" "$tmp/last.out" && return 0
    sleep 1
  done
  die "account never reached: $1"
}

"$server" start
sleep 3
srv HubCreate SITE /PASSWORD:hubadminpw
hub UserCreate alice /GROUP:none /REALNAME:"Alice Example" /NOTE:none
hub UserPasswordSet alice /PASSWORD:Corr3ct-horse
hub SecureNatEnable
hub LogEnable security
hub LogEnable packet
srv ServerPasswordSet Adm1n-pw
adminpw=Adm1n-pw

"$client" start
sleep 2
cli NicCreate se0
cli AccountCreate office /SERVER:127.0.0.1:5555 /HUB:SITE /USERNAME:alice /NICNAME:se0

# One round: a wrong server admin password, then the client with a wrong password, an unknown
# user, the right password with a DHCP lease, disconnect.
round() {
  # vpncmd asks for the password again on the terminal after a refusal: timeout ends it.
  ! timeout 10 vpncmd 127.0.0.1:5555 /SERVER /PASSWORD:guess /CMD About </dev/null >"$tmp/last.out" 2>&1 ||
    die "a wrong admin password was accepted"
  cli AccountUsernameSet office /USERNAME:alice
  cli AccountPasswordSet office /PASSWORD:wrong-guess /TYPE:standard
  cli AccountConnect office
  wait_status Retrying
  cli AccountDisconnect office
  cli AccountUsernameSet office /USERNAME:mallory
  cli AccountPasswordSet office /PASSWORD:letmein /TYPE:standard
  cli AccountConnect office
  wait_status Retrying
  cli AccountDisconnect office
  cli AccountUsernameSet office /USERNAME:alice
  cli AccountPasswordSet office /PASSWORD:Corr3ct-horse /TYPE:standard
  cli AccountConnect office
  wait_status "Session Established"
  ip link set vpn_se0 up
  printf '#!/bin/sh\nexit 0\n' >"$tmp/udhcpc.sh" && chmod +x "$tmp/udhcpc.sh"
  timeout 30 busybox udhcpc -i vpn_se0 -s "$tmp/udhcpc.sh" -q -n -f -t 5 || die "no DHCP lease"
  sleep 2
  cli AccountDisconnect office
  # The server ends the session when the client's keep-alive times out (20 s).
  sleep 30
}
round

# rsyslog receives the datagrams and writes them twice: as received (`%rawmsg%`) and in its
# default file format (what a site's /var/log file holds, which the agent tails).
cat >"$tmp/rsyslog.conf" <<EOF
global(workDirectory="$tmp")
module(load="imudp")
input(type="imudp" address="127.0.0.1" port="5514")
template(name="raw" type="string" string="%rawmsg%\n")
*.* action(type="omfile" file="$tmp/syslog-raw.log" template="raw")
*.* action(type="omfile" file="$tmp/syslog-file.log" template="RSYSLOG_TraditionalFileFormat")
EOF
rsyslogd -n -f "$tmp/rsyslog.conf" -i "$tmp/rsyslogd.pid" &
listener=$!
trap 'kill $listener 2>/dev/null || true' EXIT
sleep 2
srv SyslogEnable 3 /HOST:127.0.0.1:5514
round
srv SyslogDisable

"$client" stop
"$server" stop
sleep 2
kill "$listener" && wait "$listener" || true
mkdir -p "$out"
cat /var/log/softether/server_log/*.log >"$out/server_log.log"
cat /var/log/softether/security_log/SITE/*.log >"$out/security_log.log"
cat /var/log/softether/packet_log/SITE/*.log >"$out/packet_log.log"
cp "$tmp/syslog-raw.log" "$out/syslog-raw.log"
cp "$tmp/syslog-file.log" "$out/syslog-file.log"
dpkg-query -W softether-vpnserver softether-vpnclient softether-vpncmd rsyslog >"$out/versions.txt"
echo "written to $out:"
wc -l "$out"/*
