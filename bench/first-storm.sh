#!/usr/bin/env bash
# What a fresh standalone broker's first connect storm costs against the storms after it: STORMS (3) storms of
# CONNECTIONS (8,000) persistent connects with one subscription each, 100 in flight, one after the other on the same
# broker, each with new client ids; prints each storm's rate, broker CPU per connect and CONNACK percentiles.
#
#   bench/first-storm.sh                                   # this checkout's build (compiled at run time)
#   STANDALONE=/path/Orleans.Mqtt.Standalone.dll bench/first-storm.sh     # another build, e.g. a ReadyToRun publish:
#   dotnet publish src/Orleans.Mqtt.Standalone -c Release -r linux-x64 --self-contained false \
#     -p:PublishReadyToRun=true -p:ErrorOnDuplicatePublishOutputFiles=false -o /tmp/r2r
#
# Runtime settings pass through the environment (for example DOTNET_TieredCompilation=1).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
storms=${STORMS:-3}
connections=${CONNECTIONS:-8000}
source "$root/bench/lib.sh"
bench_prologue mqtt-first-storm
build_tool_and_standalone >/dev/null
standalone=${STANDALONE:-$standalone}

port=$(free_port)
http=$(free_port)
data=$(mktemp -d -t orleans-mqtt-data.XXXXXX)
trap 'kill "$broker_pid" 2>/dev/null || true; wait "$broker_pid" 2>/dev/null || true; rm -rf "$data"' EXIT
run_standalone "$port" "$http" "$data" "$out/broker.log" || { echo "the broker did not start; see $out/broker.log" >&2; exit 1; }
echo "$(nproc) cores; $(date -u); $standalone" >&2
for storm in $(seq 1 "$storms"); do
  "${tool[@]}" conn --port "$port" --connections "$connections" --connect-rate 0 --inflight 100 --session-expiry 300 \
    --subscriptions 1 --duration 1 --broker-pid "$broker_pid" --json "$out/storm-$storm.json" > "$out/tool-$storm.log" 2>&1
  python3 - "$out/storm-$storm.json" "$storm" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))["connect"]
a = c["connAckMs"]
print(f"storm {sys.argv[2]}: {c['achievedRate']:,.0f} conn/s, broker {c['brokerCpuMicrosPerConnect']:.0f} us CPU per connect, "
      f"CONNACK p50 {a['p50']:.1f} / p90 {a['p90']:.1f} / p99 {a['p99']:.1f} / max {a['max']:.1f} ms")
PY
done
echo "results and logs: $out" >&2
