#!/usr/bin/env bash
# Measures Debian's mosquitto as the reference broker with the pairs scenario at QoS 0 and 1,
# optionally the same against a second broker, and prints a markdown table with the ratios.
#
#   bench/compare.sh                    # mosquitto only
#   bench/compare.sh 127.0.0.1:1883     # mosquitto, then the broker at host:port
#
# Settings (environment): PAIRS=50 SIZE=100 DURATION=20 WARMUP=3 WINDOW=10 PROTOCOL=5
# OUT=<dir for the JSON results and the mosquitto config/log; default a new temp dir>.
# Needs mosquitto (apt-get install -y mosquitto), python3 and the .NET SDK.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
target=${1:-}
pairs=${PAIRS:-50}
size=${SIZE:-100}
duration=${DURATION:-20}
warmup=${WARMUP:-3}
window=${WINDOW:-10}
protocol=${PROTOCOL:-5}

source "$root/bench/lib.sh"
bench_prologue mqtt-bench

echo "building the load tool" >&2
dotnet build "$root/src/Orleans.Mqtt.Bench" -c Release --nologo -v quiet >&2
tool=("dotnet" "$root/src/Orleans.Mqtt.Bench/bin/Release/net10.0/Orleans.Mqtt.Bench.dll")

failed=0
run_pairs() { # name host port qos
  local name=$1 host=$2 port=$3 qos=$4
  echo "== $name QoS $qos: $host:$port" >&2
  "${tool[@]}" pairs --host "$host" --port "$port" --pairs "$pairs" --qos "$qos" --size "$size" \
    --duration "$duration" --warmup "$warmup" --window "$window" --protocol "$protocol" \
    --json "$out/$name-qos$qos.json" || failed=1
}

port=$(free_port)
start_mosquitto "$port" "$out/mosquitto"
trap 'kill "$mosquitto_pid" 2>/dev/null || true' EXIT
echo "mosquitto $("$mosquitto_bin" -h 2>/dev/null | head -n1 | awk '{print $3}') on 127.0.0.1:$port (pid $mosquitto_pid)" >&2

run_pairs mosquitto 127.0.0.1 "$port" 0
run_pairs mosquitto 127.0.0.1 "$port" 1
kill "$mosquitto_pid"
wait "$mosquitto_pid" 2>/dev/null || true
trap - EXIT

if [[ -n "$target" ]]; then
  run_pairs target "${target%:*}" "${target##*:}" 0
  run_pairs target "${target%:*}" "${target##*:}" 1
fi

python3 - "$out" "$target" <<'PY'
import json, os, sys

out, target = sys.argv[1], sys.argv[2]

def load(name, qos):
    path = os.path.join(out, f"{name}-qos{qos}.json")
    return json.load(open(path)) if os.path.exists(path) else None

rows = [
    ("delivered msg/s", lambda r: r["deliveredPerSecond"], "{:,.0f}"),
    ("published msg/s", lambda r: r["publishedPerSecond"], "{:,.0f}"),
    ("latency p50 ms", lambda r: r["latencyMs"]["p50"], "{:.3f}"),
    ("latency p90 ms", lambda r: r["latencyMs"]["p90"], "{:.3f}"),
    ("latency p99 ms", lambda r: r["latencyMs"]["p99"], "{:.3f}"),
    ("latency max ms", lambda r: r["latencyMs"]["max"], "{:.3f}"),
    ("lost", lambda r: r["lost"], "{:,}"),
    ("duplicates", lambda r: r["duplicates"], "{:,}"),
    ("out-of-order", lambda r: r["outOfOrder"], "{:,}"),
    ("connect errors", lambda r: r["connectErrors"], "{:,}"),
    ("dropped clients", lambda r: r["disconnects"], "{:,}"),
    ("tool CPU cores", lambda r: r["toolCpuCores"], "{:.2f}"),
]

def cell(result, get, fmt):
    return "n/a" if result is None else fmt.format(get(result))

def ratio(ours, ref, get):
    if ours is None or ref is None or not get(ref):
        return "n/a"
    return "{:.2f}".format(get(ours) / get(ref))

any_result = next((r for r in (load(n, q) for n in ("mosquitto", "target") for q in (0, 1)) if r), None)
if any_result:
    print(f"\npairs scenario: {any_result['pairs']} pairs, {any_result['size']} B payload, window {any_result['window']}, "
          f"MQTT {any_result['protocol']}, {any_result['measuredSeconds']:.0f} s measured after {any_result['warmupSeconds']:.0f} s warm-up\n")

header = ["metric"]
for qos in (0, 1):
    header.append(f"mosquitto QoS {qos}")
    if target:
        header += [f"{target} QoS {qos}", f"ratio QoS {qos}"]
print("| " + " | ".join(header) + " |")
print("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
for label, get, fmt in rows:
    cells = [label]
    for qos in (0, 1):
        ref = load("mosquitto", qos)
        cells.append(cell(ref, get, fmt))
        if target:
            ours = load("target", qos)
            cells += [cell(ours, get, fmt), ratio(ours, ref, get)]
    print("| " + " | ".join(cells) + " |")
if target:
    print("\nratio = ours / mosquitto (throughput: higher is better; latency: lower is better)")
print(f"\nJSON results in {out}")
PY

exit "$failed"
