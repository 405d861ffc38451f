#!/usr/bin/env bash
# Mqtt:Limits under load, with the load tool: a client publishing over its message rate is held to it, the other
# clients keep their throughput, an MQTT 3.1.1 QoS 1 client over the rate is paced rather than dropped, and a connect
# storm is held to the listener's connection rate.
#
#   bench/rate-limits.sh        # LIMIT=1000 OVER=5 PAIRS=10 DURATION=10 WARMUP=2 CONN_RATE=200 STORM=5000
#
# 1. mosquitto (no limits), the normal load: PAIRS publisher/subscriber pairs at QoS 0, each at half of LIMIT msg/s.
# 2. The standalone broker with Mqtt:Limits:MessagesPerSecond=LIMIT (burst LIMIT/10) and
#    Mqtt:Limits:ConnectionsPerSecond=CONN_RATE (burst CONN_RATE/4): the normal load alone.
# 3. The same broker: the normal load while one more client publishes QoS 0 at OVER x LIMIT msg/s, with one
#    subscriber measuring what of it is delivered.
# 4. The same broker: one MQTT 3.1.1 QoS 1 publisher in closed loop (as fast as PUBACKs come back).
# 5. The same broker: STORM connections opened at OVER x CONN_RATE per second; accepted vs refused (CONNACK 0x9F).
# Needs mosquitto (apt-get install -y mosquitto), python3, curl and the .NET SDK.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/bench/lib.sh"
limit=${LIMIT:-1000}
over=${OVER:-5}
pairs=${PAIRS:-10}
duration=${DURATION:-10}
warmup=${WARMUP:-2}
conn_rate=${CONN_RATE:-200}
storm=${STORM:-5000}
bench_prologue orleans-mqtt-limits

echo "building the load tool" >&2
dotnet build "$root/src/Orleans.Mqtt.Bench" -c Release --nologo -v quiet >&2
tool=("dotnet" "$root/src/Orleans.Mqtt.Bench/bin/Release/net10.0/Orleans.Mqtt.Bench.dll")
normal_rate=$((pairs * limit / 2))

normal_load() { # port name
  "${tool[@]}" pairs --host 127.0.0.1 --port "$1" --pairs "$pairs" --qos 0 --rate "$normal_rate" --window 1000 \
    --duration "$duration" --warmup "$warmup" --topic "bench/normal-$2" --json "$out/$2.json" >&2 || true
}

port=$(free_port)
start_mosquitto "$port" "$out/mosquitto"
echo "== 1. mosquitto: normal load" >&2
normal_load "$port" mosquitto-normal
kill "$mosquitto_pid"
wait "$mosquitto_pid" 2>/dev/null || true

export Mqtt__Limits__MessagesPerSecond=$limit Mqtt__Limits__MessageBurst=$((limit / 10))
export Mqtt__Limits__ConnectionsPerSecond=$conn_rate Mqtt__Limits__ConnectionBurst=$((conn_rate / 4))
start_standalone orleans-mqtt-limits
trap stop_standalone EXIT
metric() { # name label
  curl -sf "http://127.0.0.1:$http/metrics" | python3 -c '
import sys
name, label = sys.argv[1], sys.argv[2]
print(sum(float(l.rsplit(" ", 1)[1]) for l in sys.stdin
          if (l.startswith(name + "{") or l.startswith(name + " ")) and label in l))' "$1" "$2"
}

echo "== 2. limited broker: normal load alone" >&2
normal_load "$mqtt" ours-normal

echo "== 3. limited broker: normal load and one client at $over x the limit" >&2
drops_before=$(metric mqtt_messages_dropped_total 'reason="rate_limited"')
"${tool[@]}" sub --host 127.0.0.1 --port "$mqtt" --subscribers 1 --topic bench/heavy \
  --warmup $((warmup + 3)) --duration $((duration - 2)) --json "$out/heavy-sub.json" >&2 &
heavy_sub=$!
sleep 2
"${tool[@]}" pub --host 127.0.0.1 --port "$mqtt" --publishers 1 --qos 0 --rate $((limit * over)) --topic bench/heavy \
  --warmup "$warmup" --duration "$duration" --json "$out/heavy-pub.json" >&2 &
heavy_pub=$!
normal_load "$mqtt" ours-with-heavy
wait "$heavy_pub" || true
wait "$heavy_sub" || true
drops_after=$(metric mqtt_messages_dropped_total 'reason="rate_limited"')

echo "== 4. limited broker: one MQTT 3.1.1 QoS 1 publisher in closed loop" >&2
delayed_before=$(metric mqtt_publishes_delayed_total 'reason="rate_limited"')
"${tool[@]}" pub --host 127.0.0.1 --port "$mqtt" --publishers 1 --qos 1 --protocol 311 --window 100 --topic bench/paced \
  --warmup "$warmup" --duration "$duration" --json "$out/paced.json" >&2 || true
delayed_after=$(metric mqtt_publishes_delayed_total 'reason="rate_limited"')

echo "== 5. limited broker: connect storm of $storm" >&2
refused_before=$(metric mqtt_connections_refused_total 'reason="connection_rate_exceeded"')
"${tool[@]}" conn --host 127.0.0.1 --port "$mqtt" --connections "$storm" --connect-rate $((conn_rate * over)) --duration 1 \
  --json "$out/storm.json" >&2 || true
refused_after=$(metric mqtt_connections_refused_total 'reason="connection_rate_exceeded"')

python3 - "$out" "$limit" "$over" "$pairs" "$normal_rate" "$conn_rate" "$storm" \
  "$((${drops_after%.*} - ${drops_before%.*}))" "$((${delayed_after%.*} - ${delayed_before%.*}))" \
  "$((${refused_after%.*} - ${refused_before%.*}))" <<'PY'
import json, os, sys
out = sys.argv[1]
limit, over, pairs, normal_rate, conn_rate, storm, drops, delayed, refused = (int(float(a)) for a in sys.argv[2:])
load = lambda name: json.load(open(os.path.join(out, name + ".json")))
mosq, alone, shared = load("mosquitto-normal"), load("ours-normal"), load("ours-with-heavy")
heavy_pub, heavy_sub, paced, st = load("heavy-pub"), load("heavy-sub"), load("paced"), load("storm")["connect"]

print(f"\nMqtt:Limits:MessagesPerSecond={limit} (burst {limit // 10}), ConnectionsPerSecond={conn_rate} (burst {conn_rate // 4}); "
      f"normal load: {pairs} pairs at QoS 0, {normal_rate} msg/s in total\n")
print("| measurement | value | against |")
print("|---|---:|---|")
print(f"| normal load on mosquitto (no limits), delivered msg/s | {mosq['deliveredPerSecond']:,.0f} | offered {normal_rate:,} |")
print(f"| normal load alone, delivered msg/s | {alone['deliveredPerSecond']:,.0f} | ratio to mosquitto {alone['deliveredPerSecond'] / mosq['deliveredPerSecond']:.2f} |")
print(f"| normal load beside the heavy client, delivered msg/s | {shared['deliveredPerSecond']:,.0f} | {shared['deliveredPerSecond'] / alone['deliveredPerSecond']:.3f} of alone; lost {shared['lost']:,} |")
print(f"| heavy client QoS 0, published msg/s | {heavy_pub['publishedPerSecond']:,.0f} | offered {limit * over:,} |")
heavy = heavy_sub['deliveredPerSecond']
print(f"| heavy client QoS 0, delivered msg/s | {heavy:,.0f} | {heavy / limit:.3f} of the limit {limit:,} |")
print(f"| dropped, reason rate_limited (whole run) | {drops:,} | |")
print(f"| MQTT 3.1.1 QoS 1 closed loop, acknowledged msg/s | {paced['publishedPerSecond']:,.0f} | {paced['publishedPerSecond'] / limit:.3f} of the limit; paced {delayed:,}, publish errors {paced['publishErrors']:,} |")
accepted_rate = (st['connected'] - conn_rate // 4) / st['connectSeconds'] if st['connectSeconds'] else 0
print(f"| connect storm at {conn_rate * over:,}/s: accepted / refused 0x9F | {st['connected']:,} / {refused:,} of {storm:,} | in {st['connectSeconds']:.2f} s |")
print(f"| connect storm: accepted per second beyond the burst | {accepted_rate:,.0f} | {accepted_rate / conn_rate:.3f} of the limit {conn_rate} |")
print(f"\nJSON results in {out}")
PY
