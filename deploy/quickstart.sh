#!/usr/bin/env bash
# The main job on one machine: build, create a collector (CA, certificates, store), issue an
# agent certificate, run the collector and an agent shipping this machine's /var/log over mutual
# TLS, then search what arrived. Everything lives in one work folder (printed at the end).
#
# If the collector or the agent fails, the script stops at once and shows the end of its log and
# the log's path. Our binaries' output is written to files first and then cut, never cut by a
# pipe (`| head`), so a reader closing early cannot make them fail.
#
# Environment (all optional):
#   LOGSHIP_BIN_DIR         use the binaries in this folder instead of building release ones
#   LOGSHIP_QUICKSTART_DIR  work folder (default: a new /tmp/logship-quickstart.XXXXXX)
#   LOGSHIP_QUICKSTART_PORT port on 127.0.0.1 (default 7443)
set -euo pipefail
cd "$(dirname "$0")/.."

work=${LOGSHIP_QUICKSTART_DIR:-$(mktemp -d /tmp/logship-quickstart.XXXXXX)}
port=${LOGSHIP_QUICKSTART_PORT:-7443}
bin=${LOGSHIP_BIN_DIR:-target/release}
collector_bin="$bin/logship-collector"
agent_bin="$bin/logship-agent"
mkdir -p "$work"

# Prints why we stop, the end of the log that says more, and its path; exits non-zero.
fail() {
  local what=$1 log=$2
  echo "FAILED: $what" >&2
  echo "---- last lines of $log ----" >&2
  tail -n 20 "$log" >&2 || true
  echo "---- full log: $log" >&2
  exit 1
}

if [ -z "${LOGSHIP_BIN_DIR:-}" ]; then
  echo "==> building (release)"
  cargo build --release --quiet -p logship-collector -p logship-agent
fi

if [ -f "$work/collector/ca.key" ]; then
  echo "==> reusing the collector and agent in $work"
else
  echo "==> collector: CA, server certificate and config in $work/collector"
  "$collector_bin" init --data-dir "$work/collector" --listen "127.0.0.1:$port" >/dev/null
  "$collector_bin" issue-agent-cert --data-dir "$work/collector" --name "$(hostname)" \
    --collector "127.0.0.1:$port" --out "$work/agent" >/dev/null
fi

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

# Waits up to $4 seconds for $3 to appear in log $2 of process $1; fails with the log otherwise.
await_log() {
  local pid=$1 log=$2 needle=$3 secs=$4 name=$5
  for _ in $(seq 1 $((secs * 10))); do
    grep -q "$needle" "$log" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || fail "the $name stopped" "$log"
    sleep 0.1
  done
  fail "the $name did not get to \"$needle\" within $secs s" "$log"
}

"$collector_bin" serve --config "$work/collector/collector.toml" --listen "127.0.0.1:$port" \
  2>"$work/collector.log" &
pids+=($!)
await_log "${pids[0]}" "$work/collector.log" "Collector listening" 10 collector

# The generated agent.toml ships /var/log/*.log, syslog and messages; add nested logs too.
"$agent_bin" run --config "$work/agent/agent.toml" --tail '/var/log/*/*.log' 2>"$work/agent.log" &
pids+=($!)
await_log "${pids[1]}" "$work/agent.log" "Connected to the collector" 15 agent

echo "==> shipping /var/log (waiting until the collector's count stops growing)"
last=-1 steady=0
for _ in $(seq 1 60); do
  sleep 1
  kill -0 "${pids[0]}" 2>/dev/null || fail "the collector stopped" "$work/collector.log"
  kill -0 "${pids[1]}" 2>/dev/null || fail "the agent stopped" "$work/agent.log"
  now=$(grep -o '"records_stored": [0-9]*' "$work/collector/status.json" 2>/dev/null \
    | grep -o '[0-9]*$' || echo 0)
  if [ "$now" = "$last" ]; then steady=$((steady + 1)); else steady=0; fi
  [ "$steady" -ge 3 ] && break
  last=$now
done

search() { "$collector_bin" search --data-dir "$work/collector" "$@"; }
echo "==> stored records: $(search --count)"
search --since -1h --json >"$work/last-hour.jsonl"
search --since -1h --format table >"$work/last-hour.txt"
echo "==> the 10 newest-read lines from the last hour (all of them: $work/last-hour.jsonl):"
sed -n '1p' "$work/last-hour.txt"
tail -n +2 "$work/last-hour.txt" | tail -n 10
echo "==> per file:"
grep -o '"path":"[^"]*"' "$work/last-hour.jsonl" | sort | uniq -c | sort -rn | sed -n '1,15p'

echo "==> authentication events (sshd, sudo):"
sshd=$(search --contains sshd --count)
sudo=$(search --contains sudo: --count)
if [ "$sshd" = 0 ] && [ "$sudo" = 0 ]; then
  echo "no sshd or sudo events on this machine."
  if [ ! -e /var/log/auth.log ] && [ ! -e /var/log/secure ]; then
    echo "(there is no /var/log/auth.log: this system keeps them in the systemd journal only;"
    echo " the agent's journald input comes in a later release)"
  fi
else
  echo "$sshd sshd and $sudo sudo lines; failures found by the parsers (at most 5):"
  search --where event.outcome=failure --limit 5 --format table >"$work/failures.txt"
  if [ "$(wc -l <"$work/failures.txt")" -gt 1 ]; then cat "$work/failures.txt"; else echo "none."; fi
fi

echo "==> hash chain check:"
verified=0
"$collector_bin" verify --data-dir "$work/collector" --format table >"$work/verify.txt" || verified=$?
cat "$work/verify.txt"
[ "$verified" = 0 ] || fail "verify found problems (exit $verified)" "$work/verify.txt"
echo "work folder: $work (collector.log, agent.log, collector/, agent/)"
