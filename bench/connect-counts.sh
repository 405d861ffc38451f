#!/usr/bin/env bash
# Counts what one persistent connect with one subscription costs the standalone broker, in figures that do not move
# with the machine's load: thread pool work items, bytes allocated, GC pause, fdatasync calls and context switches,
# each per connect (the span also holds the tool's hold and the close of every connection, so these are per connect,
# SUBSCRIBE and disconnect). Also prints the broker's CPU per connect and the connect rate the tool reports.
#
#   bench/connect-counts.sh                  # RUNS=1 CONNECTIONS=8000
#   BUILD=/other/checkout bench/connect-counts.sh
#
# Settings (environment): CONNECTIONS=8000 RUNS=1; BUILD=<a checkout whose standalone broker is measured; default
# this one>; OUT=<dir for the JSON results and logs; default a new temp dir>. Needs perf, python3, curl, the .NET SDK.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$root}
connections=${CONNECTIONS:-8000}
runs=${RUNS:-1}

source "$root/bench/lib.sh"
out=${OUT:-$(mktemp -d -t mqtt-connect-counts.XXXXXX)}
mkdir -p "$out"
ulimit -n "$(ulimit -Hn)"

build_tool_and_standalone "$build"

broker_pid=""
data=""
cleanup() {
  if [[ -n "$broker_pid" ]]; then
    kill "$broker_pid" 2>/dev/null || true
    wait "$broker_pid" 2>/dev/null || true
  fi
  if [[ -n "$data" ]]; then
    rm -rf "$data"
  fi
}
trap cleanup EXIT

metrics() { # http port -> the runtime counters this script reads, one "name value" a line
  curl -sf "http://127.0.0.1:$1/metrics" | awk '
    /^dotnet_thread_pool_work_item_count(_total)?[{ ]/ { print "work_items", $NF }
    /^dotnet_gc_heap_total_allocated_bytes(_total)?[{ ]/ { print "allocated", $NF }
    /^dotnet_gc_pause_time_seconds(_total)?[{ ]/ { print "gc_pause", $NF }'
}

echo "$(nproc) cores; $(date -u); build $(git -C "$build" rev-parse --short HEAD)" >&2
for run in $(seq 1 "$runs"); do
  port=$(free_port)
  http=$(free_port)
  data=$(mktemp -d -t orleans-mqtt-data.XXXXXX)
  run_standalone "$port" "$http" "$data" "$out/broker-$run.log" || { echo "the broker did not start; see $out/broker-$run.log" >&2; exit 1; }

  metrics "$http" > "$out/before-$run.txt"
  perf stat -e syscalls:sys_enter_fdatasync,context-switches -p "$broker_pid" -x, -o "$out/perf-$run.csv" &
  perf_pid=$!
  "${tool[@]}" conn --port "$port" --connections "$connections" --connect-rate 0 --inflight 100 --session-expiry 300 \
    --subscriptions 1 --duration 3 --broker-pid "$broker_pid" --json "$out/conn-$run.json" > "$out/tool-$run.log" 2>&1
  kill -INT "$perf_pid"
  wait "$perf_pid" || true
  metrics "$http" > "$out/after-$run.txt"
  cleanup
  broker_pid=""
  data=""

  python3 - "$out" "$run" "$connections" <<'PY'
import json, os, sys

out, run, n = sys.argv[1], sys.argv[2], float(sys.argv[3])
def read(name):
    values = {}
    for line in open(os.path.join(out, f"{name}-{run}.txt")):
        key, value = line.split()
        values[key] = float(value)
    return values
before, after = read("before"), read("after")
delta = {k: after[k] - before.get(k, 0.0) for k in after}
perf = {}
for line in open(os.path.join(out, f"perf-{run}.csv")):
    parts = line.strip().split(",")
    if len(parts) > 2 and parts[0].replace(".", "").isdigit():
        perf[parts[2]] = float(parts[0])
conn = json.load(open(os.path.join(out, f"conn-{run}.json")))
rate = conn["connect"]["achievedRate"]
cpu = conn["connect"].get("brokerCpuMicrosPerConnect", 0)
print(f"run {run}: {rate:,.0f} conn/s, broker {cpu:.0f} us CPU per connect; per connect, SUBSCRIBE and disconnect: "
      f"{delta.get('work_items', 0) / n:.1f} work items, {delta.get('allocated', 0) / n / 1024:.1f} KB allocated, "
      f"{delta.get('gc_pause', 0) / n * 1e6:.0f} us GC pause, "
      f"{perf.get('syscalls:sys_enter_fdatasync', 0) / n:.2f} fdatasync, {perf.get('context-switches', 0) / n:.2f} context switches")
PY
done
