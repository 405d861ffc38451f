#!/usr/bin/env bash
# Builds and starts the standalone broker on free loopback ports with an empty data directory, runs
# bench/compare.sh against it and Debian's mosquitto in the same run, then stops the broker.
# Settings for compare.sh (PAIRS, SIZE, DURATION, ...) pass through the environment.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/bench/lib.sh"

dotnet build "$root/src/Orleans.Mqtt.Standalone" -c Release --nologo -v quiet >&2
work=$(mktemp -d -t orleans-mqtt-bench.XXXXXX)
mqtt=$(free_port); http=$(free_port)
(
  cd "$work"
  Mqtt__Tcp__Port=$mqtt Mqtt__WebSocket__Port=0 Http__Port=$http \
  Orleans__SiloPort=$(free_port) Orleans__GatewayPort=$(free_port) \
    exec dotnet "$root/src/Orleans.Mqtt.Standalone/bin/Release/net10.0/Orleans.Mqtt.Standalone.dll" >"$work/broker.log" 2>&1
) &
broker=$!
trap 'kill $broker 2>/dev/null; wait $broker 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$http/health/ready" >/dev/null && break
  sleep 0.5
done
curl -sf "http://127.0.0.1:$http/health/ready" >/dev/null || { echo "broker did not become ready" >&2; cat "$work/broker.log" >&2; exit 1; }
"$root/bench/compare.sh" "127.0.0.1:$mqtt"
