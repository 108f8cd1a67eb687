#!/usr/bin/env bash
# The main job on one machine: build, create a collector (CA, certificates, store), issue an
# agent certificate, run the collector and an agent shipping this machine's /var/log over mutual
# TLS, then search what arrived. Everything lives in one work folder (printed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."

work=${LOGSHIP_QUICKSTART_DIR:-$(mktemp -d /tmp/logship-quickstart.XXXXXX)}
port=${LOGSHIP_QUICKSTART_PORT:-7443}
bin=target/release

echo "==> building (release)"
cargo build --release --quiet -p logship-collector -p logship-agent

echo "==> collector: CA, server certificate and config in $work/collector"
"$bin/logship-collector" init --data-dir "$work/collector" --listen "127.0.0.1:$port" >/dev/null
"$bin/logship-collector" issue-agent-cert --data-dir "$work/collector" --name "$(hostname)" \
  --collector "127.0.0.1:$port" --out "$work/agent" >/dev/null

pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"$bin/logship-collector" serve --config "$work/collector/collector.toml" 2>"$work/collector.log" &
pids+=($!)
# The generated agent.toml ships /var/log/*.log, syslog and messages; add nested logs too.
"$bin/logship-agent" run --config "$work/agent/agent.toml" --tail '/var/log/*/*.log' 2>"$work/agent.log" &
pids+=($!)

echo "==> shipping /var/log (waiting until the collector's count stops growing)"
last=-1
for _ in $(seq 1 60); do
  sleep 1
  now=$(grep -o '"records_stored": [0-9]*' "$work/collector/status.json" 2>/dev/null | grep -o '[0-9]*$' || echo 0)
  if [ "$now" -gt 0 ] && [ "$now" = "$last" ]; then break; fi
  last=$now
done

echo "==> stored records: $("$bin/logship-collector" search --data-dir "$work/collector" --count)"
echo "==> the 10 newest-read lines from the last hour:"
"$bin/logship-collector" search --data-dir "$work/collector" --since -1h | tail -n 10
echo "==> per file:"
"$bin/logship-collector" search --data-dir "$work/collector" --since -1h \
  | grep -o '"path":"[^"]*"' | sort | uniq -c | sort -rn | head -n 15
echo "==> authentication failures found by the parsers (if any):"
"$bin/logship-collector" search --data-dir "$work/collector" --where event.outcome=failure --limit 5
echo "==> hash chain check:"
"$bin/logship-collector" verify --data-dir "$work/collector" | head -n 8
echo "work folder: $work (collector.log, agent.log, collector/, agent/)"
