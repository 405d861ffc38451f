#!/usr/bin/env bash
# The standalone broker under a low open-file limit (prlimit --nofile) and a storm of more connections than the limit
# allows (bench/fd-storm.py): whether it lives, what the surplus got, its descriptors at the peak, its refusal and
# accept-failure counters, and how long until a new client gets in once the storm's connections close.
#
#   bench/fd-limit.sh                        # NOFILE=1000 STORM=800
#   BUILD=/other/checkout bench/fd-limit.sh  # the same against another checkout's broker
#
# Settings (environment): NOFILE=1000 (soft and hard), STORM=800; BUILD=<checkout; default this one>; further broker
# settings as environment variables (e.g. Mqtt__FileDescriptorReserve=128). Needs prlimit, python3, curl, the .NET SDK.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$root}
nofile=${NOFILE:-1000}
storm=${STORM:-800}
source "$root/bench/lib.sh"
dotnet build "$build/src/Orleans.Mqtt.Standalone" -c Release --nologo -v quiet >&2
standalone="$build/src/Orleans.Mqtt.Standalone/bin/Release/net10.0/Orleans.Mqtt.Standalone.dll"

data=$(mktemp -d -t mqtt-fd-limit.XXXXXX)
port=$(free_port); http=$(free_port)
broker_pid=""
cleanup() {
  if [[ -n "$broker_pid" ]]; then kill "$broker_pid" 2>/dev/null || true; wait "$broker_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT

(cd "$data" && exec env DOTNET_ENVIRONMENT=Production Mqtt__Tcp__Port="$port" Mqtt__WebSocket__Port="$(free_port)" \
  Mqtt__Tls__Port="$(free_port)" Http__Port="$http" Orleans__SiloPort="$(free_port)" Orleans__GatewayPort="$(free_port)" \
  Storage__DataDirectory="$data/data" prlimit --nofile="$nofile:$nofile" dotnet "$standalone" > "$data/broker.log" 2>&1) &
broker_pid=$!
for _ in $(seq 1 300); do curl -sf "127.0.0.1:$http/health/ready" > /dev/null && break; sleep 0.2; done
echo "$(date -u +%H:%M:%S) nofile=$nofile storm=$storm; descriptors open when ready: $(ls /proc/$broker_pid/fd | wc -l)"
grep -h "Open file limit" "$data/broker.log" | sed 's/.*Open file limit/Open file limit/' || true

python3 "$root/bench/fd-storm.py" "$port" "$storm" 10 &
storm_pid=$!
peak=0
while kill -0 "$storm_pid" 2>/dev/null; do
  n=$(ls /proc/$broker_pid/fd 2>/dev/null | wc -l); (( n > peak )) && peak=$n; sleep 0.05
done
sleep 1
state=$(awk '{print $3}' /proc/$broker_pid/stat 2>/dev/null || echo gone)
if [[ "$state" != Z && "$state" != gone ]]; then echo "broker alive; descriptors at the peak: $peak"; else echo "broker DEAD; descriptors at the peak: $peak"; grep -h "Out of memory" "$data/broker.log" | head -1 || true; fi
curl -s "127.0.0.1:$http/metrics" | grep -E "^mqtt_connections_(refused|accept_failures)" | sed 's/otel_scope_name="Orleans.Mqtt",//' || true
echo "accept failures logged: $(grep -c 'Accepting an MQTT over TCP connection failed' "$data/broker.log" || true) lines; broker log: $data/broker.log"
