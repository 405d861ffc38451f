#!/usr/bin/env bash
# Measures the targets of issue "Fast" on the standalone broker and on Debian's mosquitto (persistence off),
# same load, same run, a fresh broker for every measurement, one measurement at a time:
#   1. fanout: 1 publisher -> SUBSCRIBERS subscribers, QoS 0, delivered msg/s
#   2. conn: CONNECTIONS persistent sessions (clean start off, session expiry) with 1 subscription each:
#      connect rate achieved, CONNACK latency, broker RSS growth per connection
#   3. p2p: PAIRS pairs at QoS 1, closed loop (the maximum), then at half that rate: latency p99
# and prints a markdown table (ratio = Orleans.Mqtt / mosquitto).
#
#   bench/targets.sh
#
# Settings (environment): SUBSCRIBERS=1000 CONNECTIONS=18000 PAIRS=50 DURATION=15 WARMUP=3 FANOUT_WINDOW=32
# ONLY=<measurements to run, of "fanout conn p2p"; default all three>
# OUT=<dir for the JSON results and broker logs; default a new temp dir>.
# Needs mosquitto (apt-get install -y mosquitto), python3, curl and the .NET SDK.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
subscribers=${SUBSCRIBERS:-1000}
connections=${CONNECTIONS:-18000}
pairs=${PAIRS:-50}
duration=${DURATION:-15}
warmup=${WARMUP:-3}
fanout_window=${FANOUT_WINDOW:-32}
only=" ${ONLY:-fanout conn p2p} "

source "$root/bench/lib.sh"
bench_prologue mqtt-targets

build_tool_and_standalone

broker_pid=""
broker_port=""
broker_data=""
start_broker() { # mosquitto|orleans name
  local kind=$1 name=$2
  broker_port=$(free_port)
  if [[ $kind == mosquitto ]]; then
    local started=0
    start_mosquitto "$broker_port" "$out/$name" || started=1
    broker_pid=$mosquitto_pid
    return $started
  else
    local http
    http=$(free_port)
    broker_data=$(mktemp -d -t orleans-mqtt-data.XXXXXX)
    run_standalone "$broker_port" "$http" "$broker_data" "$out/$name.log" && return 0
  fi
  echo "$name did not start; see $out/$name.log" >&2
  return 1
}

stop_broker() {
  kill "$broker_pid" 2>/dev/null || true
  wait "$broker_pid" 2>/dev/null || true
  broker_pid=""
  if [[ -n "$broker_data" ]]; then
    rm -rf "$broker_data"
    broker_data=""
  fi
}
trap 'if [[ -n "$broker_pid" ]]; then stop_broker; fi' EXIT

wants() { [[ $only == *" $1 "* ]]; }

failed=0
measure() { # kind label
  local kind=$1 label=$2
  if wants fanout; then
    echo "== $label: fanout 1 -> $subscribers QoS 0" >&2
    start_broker "$kind" "$label-fanout"
    "${tool[@]}" fanout --port "$broker_port" --subscribers "$subscribers" --qos 0 --window "$fanout_window" \
      --duration "$duration" --warmup "$warmup" --broker-pid "$broker_pid" --json "$out/$label-fanout.json" || failed=1
    stop_broker
  fi

  if wants conn; then
    echo "== $label: conn $connections persistent sessions, 1 subscription each" >&2
    start_broker "$kind" "$label-conn"
    "${tool[@]}" conn --port "$broker_port" --connections "$connections" --connect-rate 0 --inflight 100 \
      --session-expiry 300 --subscriptions 1 --duration 15 --broker-pid "$broker_pid" --json "$out/$label-conn.json" || failed=1
    stop_broker
  fi

  if wants p2p; then
    echo "== $label: p2p $pairs pairs QoS 1, closed loop, then at half the rate" >&2
    start_broker "$kind" "$label-p2p"
    "${tool[@]}" p2p --port "$broker_port" --pairs "$pairs" --qos 1 --duration "$duration" --warmup "$warmup" \
      --broker-pid "$broker_pid" --json "$out/$label-p2p-max.json" || failed=1
    local half
    half=$(python3 -c 'import json, sys; print(round(json.load(open(sys.argv[1]))["deliveredPerSecond"] / 2))' "$out/$label-p2p-max.json")
    "${tool[@]}" p2p --port "$broker_port" --pairs "$pairs" --qos 1 --rate "$half" --window 20 --duration "$duration" \
      --warmup "$warmup" --broker-pid "$broker_pid" --json "$out/$label-p2p-half.json" || failed=1
    stop_broker
  fi
}

echo "mosquitto $("$mosquitto_bin" -h 2>/dev/null | head -n1 | awk '{print $3}'); $(nproc) cores; $(date -u)" >&2
measure mosquitto mosquitto
measure orleans orleans

python3 - "$out" <<'PY'
import json, os, sys

out = sys.argv[1]

def load(name):
    path = os.path.join(out, name + ".json")
    return json.load(open(path)) if os.path.exists(path) else None

rows = [
    ("fanout 1 → {s} QoS 0: delivered msg/s", "fanout", lambda r: r["deliveredPerSecond"], "{:,.0f}"),
    ("fanout: latency p50 / p99 ms", "fanout", lambda r: (r["latencyMs"]["p50"], r["latencyMs"]["p99"]), "{:.1f} / {:.1f}"),
    ("fanout: lost / duplicated / out of order", "fanout", lambda r: (r["lost"], r["duplicates"], r["outOfOrder"]), "{:,} / {:,} / {:,}"),
    ("fanout: broker / tool CPU (cores)", "fanout", lambda r: (r["brokerCpuCores"], r["toolCpuCores"]), "{:.2f} / {:.2f}"),
    ("fanout: tool allocations (bytes per message)", "fanout", lambda r: r["toolAllocatedBytesPerMessage"], "{:.1f}"),
    ("conn: connect rate, persistent + 1 subscription (conn/s)", "conn", lambda r: r["connect"]["achievedRate"], "{:,.0f}"),
    ("conn: CONNACK latency p50 / p99 ms", "conn", lambda r: (r["connect"]["connAckMs"]["p50"], r["connect"]["connAckMs"]["p99"]), "{:.1f} / {:.1f}"),
    ("conn: CPU per connect while connecting, broker / load tool (µs)", "conn", lambda r: (r["connect"].get("brokerCpuMicrosPerConnect", 0), r["connect"].get("toolCpuMicrosPerConnect", 0)), "{:,.0f} / {:,.0f}"),
    ("conn: connected / failed", "conn", lambda r: (r["connect"]["connected"], r["connect"]["failed"]), "{:,} / {:,}"),
    ("idle memory per connection, 2 s after the last connect (RSS growth / N, bytes)", "conn", lambda r: r["connect"]["brokerBytesPerConnection"], "{:,.0f}"),
    ("idle memory per connection, end of the 15 s hold (RSS growth / N, bytes)", "conn", lambda r: r["connect"]["brokerBytesPerConnectionEnd"], "{:,.0f}"),
    ("p2p QoS 1 closed loop: delivered msg/s", "p2p-max", lambda r: r["deliveredPerSecond"], "{:,.0f}"),
    ("p2p QoS 1 at 50 % of that: rate msg/s", "p2p-half", lambda r: r["rate"], "{:,.0f}"),
    ("p2p QoS 1 at 50 %: latency p50 / p99 ms", "p2p-half", lambda r: (r["latencyMs"]["p50"], r["latencyMs"]["p99"]), "{:.2f} / {:.2f}"),
    ("p2p QoS 1 at 50 %: latency from the actual send p50 / p99 ms", "p2p-half", lambda r: (r["sendLatencyMs"]["p50"], r["sendLatencyMs"]["p99"]), "{:.2f} / {:.2f}"),
    ("p2p QoS 1 closed loop: broker / tool CPU (cores)", "p2p-max", lambda r: (r["brokerCpuCores"], r["toolCpuCores"]), "{:.2f} / {:.2f}"),
    ("p2p QoS 1 at 50 %: broker / tool CPU (cores)", "p2p-half", lambda r: (r["brokerCpuCores"], r["toolCpuCores"]), "{:.2f} / {:.2f}"),
]

def fmt(result, get, f):
    if result is None:
        return "n/a"
    value = get(result)
    return f.format(*value) if isinstance(value, tuple) else f.format(value)

def ratio(ours, ref, get):
    if ours is None or ref is None:
        return ""
    a, b = get(ours), get(ref)
    if isinstance(a, tuple):
        return " / ".join("{:.2f}".format(x / y) if y else "n/a" for x, y in zip(a, b)) if not any(isinstance(x, int) for x in a) else ""
    return "{:.2f}".format(a / b) if b else "n/a"

conn = load("mosquitto-conn") or load("orleans-conn")
fan = load("mosquitto-fanout") or load("orleans-fanout")
print()
print("| measure | mosquitto | Orleans.Mqtt | ratio |")
print("|---|---:|---:|---:|")
for label, name, get, f in rows:
    ref, ours = load("mosquitto-" + name), load("orleans-" + name)
    label = label.format(s=fan["subscribers"] if fan else "?")
    print(f"| {label} | {fmt(ref, get, f)} | {fmt(ours, get, f)} | {ratio(ours, ref, get)} |")
if conn:
    print(f"\nconn: N = {conn['connect']['requested']:,} connections, {conn['connect']['workers']} tool process(es)")
print(f"\nJSON results and broker logs in {out}")
PY

exit "$failed"
