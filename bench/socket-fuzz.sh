#!/usr/bin/env bash
# Socket-level fuzzing of the standalone broker: starts it on free loopback ports and runs the load tool's fuzz
# scenario against it: PACKETS mutated packets of MQTT 3.1.1 and 5 (every packet type; a mutated CONNECT alone or
# others after a valid CONNECT; LANES connections at a time, each followed by PINGREQ until the broker closes) while
# a steady QoS 1 publisher and subscriber on the same broker exchange RATE messages a second. Prints the tool's
# summary (packets sent, closes by reason, accepted packets the oracle finds forbidden, steady messages
# sent/received/lost, broker RSS before, at the peak and SETTLE seconds after), whether the broker is still
# running, and the broker's log size and error-level lines.
#
#   bench/socket-fuzz.sh            # PACKETS=100000 LANES=8 RATE=100 SEED=20261206 SETTLE=15
#
# Extra broker settings pass through the environment (e.g. Mqtt__PacketReadTimeout=00:00:05). Exits non-zero when
# a forbidden packet was accepted, a steady message was lost or the broker is gone. Needs curl and the .NET SDK.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/bench/lib.sh"
packets=${PACKETS:-100000}
lanes=${LANES:-8}
rate=${RATE:-100}
seed=${SEED:-20261206}
settle=${SETTLE:-15}
ulimit -n "$(ulimit -Hn)"

start_standalone orleans-mqtt-fuzz
trap stop_standalone EXIT
dotnet build "$root/src/Orleans.Mqtt.Bench" -c Release --nologo -v quiet >&2

status=0
dotnet "$root/src/Orleans.Mqtt.Bench/bin/Release/net10.0/Orleans.Mqtt.Bench.dll" fuzz \
  --port "$mqtt" --packets "$packets" --concurrency "$lanes" --rate "$rate" --seed "$seed" --settle "$settle" \
  --broker-pid "$broker" ${JSON:+--json "$JSON"} || status=$?

if kill -0 "$broker" 2>/dev/null; then
  echo "broker       still running (pid $broker)"
else
  echo "broker       GONE"
  status=1
fi
echo "broker log   $(wc -l < "$work/broker.log") lines, $(du -h "$work/broker.log" | cut -f1); error-level lines: $(grep -cE '^(fail|crit)|\] (Error|Critical|Fatal)' "$work/broker.log" || true)"
grep -E '^(fail|crit)|\] (Error|Critical|Fatal)' -A3 "$work/broker.log" | head -20 || true
exit "$status"
