#!/usr/bin/env bash
# What the first QoS 1 message to a session that left memory costs: publish-to-deliver latency of messages that each
# reach an idle session, on the standalone broker, with sessions leaving memory after Mqtt:SessionIdleTimeout 10 s (the
# default: every message below finds its session out of memory and loads it) and after 1 h (every session stays in
# memory), one broker per setting, the same load:
#
#   Orleans.Mqtt.Bench p2p --pairs PAIRS --qos 1 --rate RATE --session-expiry 300 --duration DURATION --warmup WARMUP
#
# With the defaults (PAIRS=40 RATE=2) each subscriber gets a message every 20 s. WARMUP (25 s) lets the first
# sessions leave memory before the measured interval.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
pairs=${PAIRS:-40}
rate=${RATE:-2}
duration=${DURATION:-100}
warmup=${WARMUP:-25}

source "$root/bench/lib.sh"
bench_prologue mqtt-idle-reload
dotnet build "$root/src/Orleans.Mqtt.Bench" -c Release --nologo -v quiet >&2
tool=(dotnet "$root/src/Orleans.Mqtt.Bench/bin/Release/net10.0/Orleans.Mqtt.Bench.dll")
trap stop_standalone EXIT

for timeout in 00:00:10 01:00:00; do
  export Mqtt__SessionIdleTimeout=$timeout
  start_standalone mqtt-idle-reload
  # Sessions in memory every 5 s while the load runs (the tool's disconnects at the end load every session again).
  (
    while kill -0 "$broker" 2>/dev/null; do
      curl -s "http://127.0.0.1:$http/metrics" | awk '/^mqtt_sessions_in_memory/ {printf "%s ", $2}'
      sleep 5
    done
  ) > "$out/idle-$timeout.sessions" 2>/dev/null &
  sampler=$!
  "${tool[@]}" p2p --port "$mqtt" --pairs "$pairs" --qos 1 --rate "$rate" --session-expiry 300 \
    --duration "$duration" --warmup "$warmup" --json "$out/idle-$timeout.json" > "$out/idle-$timeout.log" 2>&1 || true
  echo "== Mqtt:SessionIdleTimeout $timeout"
  grep -vE "^(building|starting)" "$out/idle-$timeout.log" | tail -15
  kill "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  echo "sessions in memory every 5 s while the load ran: $(cat "$out/idle-$timeout.sessions")"
  stop_standalone
done
echo "results: $out"
