#!/usr/bin/env bash
# Memory per idle connection at a connection count one process cannot hold here (20,000 open files per process):
# the broker as separate processes (etcd, one silo, GATEWAYS gateways) against the same number of mosquitto
# brokers (persistence off), the same load in the same run.
#
#   bench/memory-cluster.sh        # CONNECTIONS=50000 GATEWAYS=3 HOLD=20 RATE=0
#
# For each side it starts the brokers, runs
#   Orleans.Mqtt.Bench conn --host <every endpoint> --connections N --session-expiry 300 --subscriptions 1 \
#       --connect-rate RATE --duration HOLD --broker-pid <every broker process>
# (persistent sessions with one subscription each; the tool starts one worker process per 18,000 connections and
# sums the RSS of every listed process) and prints the tool's summary. For the cluster the listed processes are the
# silo, the gateways and etcd (it holds one ownership record per session).
#
# The script's own figures, per process and in total: RSS growth from before the first connect to a second before the
# end of the hold, divided by the connections; what a process held before the first connect (start-up) does not
# count. RSS alone can hide or inflate the per-connection cost (a collection that has not run yet; memory the runtime
# took at start and later fills), so for the .NET processes it also takes a heap dump (dotnet-gcdump, a full
# collection) before the first connect and after the hold's last sample, and gives the growth of live objects per
# connection beside the RSS (DUMPS=0 leaves the dumps out; the hold is then not extended). The dumps stay in the
# results directory for bench/gcdump-diff.py.
# Needs etcd (apt-get install -y etcd-server), mosquitto (apt-get install -y mosquitto), python3, curl, .NET SDK;
# dotnet-gcdump for the heap dumps.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
connections=${CONNECTIONS:-50000}
gateways=${GATEWAYS:-3}
hold=${HOLD:-20}
rate=${RATE:-0}
dumps=${DUMPS:-1}

source "$root/bench/lib.sh"
# dotnet-gcdump is a .NET global tool (dotnet tool install -g dotnet-gcdump); its directory is often not on PATH.
export PATH="$PATH:$HOME/.dotnet/tools"
bench_prologue mqtt-memory
etcd_bin=$(command -v etcd || echo /usr/bin/etcd)
[[ -x "$etcd_bin" ]] || { echo "etcd is not installed (apt-get install -y etcd-server)" >&2; exit 1; }

echo "building the load tool, the silo and the gateway" >&2
for project in src/Orleans.Mqtt.Bench silo/Orleans.Mqtt.Silo gateway/Orleans.Mqtt.Gateway; do
  dotnet build "$root/$project" -c Release --nologo -v quiet >&2
done
tool=(dotnet "$root/src/Orleans.Mqtt.Bench/bin/Release/net10.0/Orleans.Mqtt.Bench.dll")

pids=()
stop_all() {
  if [[ ${#pids[@]} -gt 0 ]]; then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
  pids=()
}
trap stop_all EXIT

rss_by_process() { # comma-separated pids
  local pid
  for pid in ${1//,/ }; do
    printf '%s(%s) %s KiB  ' "$(cat "/proc/$pid/comm")" "$pid" "$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")"
  done
  echo
}

# Live managed heap of a process, by a heap dump (it runs a full, blocking collection first).
dump_heaps() { # label comma-separated pids
  local pid
  for pid in ${2//,/ }; do
    dotnet-gcdump collect -p "$pid" -o "$out/$1-$pid.gcdump" > /dev/null 2>&1 || echo "gcdump of $pid failed" >&2
    printf '%s(%s) %s B  ' "$(cat "/proc/$pid/comm")" "$pid" \
      "$(dotnet-gcdump report "$out/$1-$pid.gcdump" 2>/dev/null | awk '/GC Heap bytes/ {gsub(",", "", $1); print $1}')"
  done
  echo
}

run_tool() { # name hosts pids [dotnet pids, dumped]
  local name=$1 hosts=$2 broker_pids=$3 dotnet_pids=${4:-} duration=$hold
  echo "rss before: $(rss_by_process "$broker_pids")" > "$out/$name.rss"
  if [[ $dumps == 1 && -n $dotnet_pids ]]; then
    echo "heap before: $(dump_heaps before "$dotnet_pids")" >> "$out/$name.rss"
    duration=$((hold + 60)) # the dumps at the end of the hold run while the clients are still connected
  fi
  # Per process, halfway through the hold and a second before its end (the tool prints the summary of all of them
  # together).
  (
    until grep -qE "^(every worker has connected|connected ).*holding" "$out/$name.tool.log" 2>/dev/null; do sleep 0.5; done
    sleep $((hold / 2))
    echo "rss held:   $(rss_by_process "$broker_pids")" >> "$out/$name.rss"
    sleep $((hold - hold / 2 - 1))
    echo "rss end:    $(rss_by_process "$broker_pids")" >> "$out/$name.rss"
    if [[ $duration != "$hold" ]]; then
      echo "heap end: $(dump_heaps end "$dotnet_pids")" >> "$out/$name.rss"
    fi
  ) &
  local sampler=$!
  "${tool[@]}" conn --host "$hosts" --connections "$connections" --connect-rate "$rate" --inflight 100 \
    --session-expiry 300 --subscriptions 1 --duration "$duration" --broker-pid "$broker_pids" \
    --json "$out/$name.json" > "$out/$name.tool.log" 2>&1 || true
  wait "$sampler" 2>/dev/null || true
  echo "== $name"
  cat "$out/$name.rss"
  # The tool's line "at the end of the hold" comes after the dumps when they ran; the script's table below is the
  # figure at the end of the hold either way.
  grep -E "^(load|connected|connack|broker rss|errors|tool cpu)" "$out/$name.tool.log" || tail -5 "$out/$name.tool.log"
  python3 - "$out/$name.rss" "$connections" <<'PY'
import re, sys
rows = {}
for line in open(sys.argv[1]):
    label = line.split(":")[0]
    rows[label] = {m[0] + "(" + m[1] + ")": int(m[2]) * (1024 if m[3] == "KiB" else 1)
                   for m in re.findall(r"(\S+)\((\d+)\) (\d+) (KiB|B)", line)}
n = int(sys.argv[2])
before, end = rows["rss before"], rows["rss end"]
hb, he = rows.get("heap before", {}), rows.get("heap end", {})
print(f"per connection at the end of the hold (N = {n:,}): RSS growth / N, live heap growth / N (bytes)")
total_rss = total_heap = 0
for proc in before:
    rss = (end[proc] - before[proc]) / n
    total_rss += rss
    heap = ""
    if proc in hb and proc in he:
        h = (he[proc] - hb[proc]) / n
        total_heap += h
        heap = f"  heap {h:>8,.0f}  (start: rss {before[proc] / 2**20:,.0f} MiB, heap {hb[proc] / 2**20:,.0f} MiB)"
    else:
        heap = f"  (start: rss {before[proc] / 2**20:,.0f} MiB)"
    print(f"  {proc:<28} rss {rss:>8,.0f}{heap}")
print(f"  {'all':<28} rss {total_rss:>8,.0f}" + (f"  heap {total_heap:>8,.0f} (.NET processes)" if hb else ""))
PY
}

# mosquitto: one broker per gateway of the other side.
hosts=""
broker_pids=""
for i in $(seq 1 "$gateways"); do
  port=$(free_port)
  start_mosquitto "$port" "$out/mosquitto$i"
  pids+=("$mosquitto_pid")
  hosts+="${hosts:+,}127.0.0.1:$port"
  broker_pids+="${broker_pids:+,}$mosquitto_pid"
done
run_tool "mosquitto-x$gateways" "$hosts" "$broker_pids"
stop_all

# The cluster: etcd, one silo, the gateways.
client_port=$(free_port)
peer_port=$(free_port)
"$etcd_bin" --name bench --data-dir "$out/etcd" \
  --listen-client-urls "http://127.0.0.1:$client_port" --advertise-client-urls "http://127.0.0.1:$client_port" \
  --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-cluster "bench=http://127.0.0.1:$peer_port" > "$out/etcd.log" 2>&1 &
etcd_pid=$!
pids+=("$etcd_pid")
wait_for_port "$client_port"

export Clustering__Provider=Etcd Clustering__Etcd__ConnectionString="http://127.0.0.1:$client_port" Orleans__ClusterId=bench
mkdir -p "$out/silo"
(cd "$out/silo" && Orleans__SiloPort=$(free_port) Orleans__GatewayPort=$(free_port) Http__Port=$(free_port) \
  Storage__DataDirectory="$out/silo/data" \
  exec dotnet "$root/silo/Orleans.Mqtt.Silo/bin/Release/net10.0/Orleans.Mqtt.Silo.dll" > "$out/silo.log" 2>&1) &
silo_pid=$!
pids+=("$silo_pid")

hosts=""
broker_pids="$silo_pid,$etcd_pid"
dotnet_pids="$silo_pid"
for i in $(seq 1 "$gateways"); do
  port=$(free_port)
  http=$(free_port)
  (cd "$out" && Mqtt__Tcp__Port=$port Mqtt__WebSocket__Port=0 Http__Port=$http \
    exec dotnet "$root/gateway/Orleans.Mqtt.Gateway/bin/Release/net10.0/Orleans.Mqtt.Gateway.dll" > "$out/gateway$i.log" 2>&1) &
  pids+=($!)
  broker_pids+=",$!"
  dotnet_pids+=",$!"
  hosts+="${hosts:+,}127.0.0.1:$port"
  ready=0
  for _ in $(seq 1 240); do
    if curl -sf "http://127.0.0.1:$http/health/ready" > /dev/null; then ready=1; break; fi
    sleep 0.5
  done
  [[ $ready == 1 ]] || { echo "gateway $i did not become ready; see $out/gateway$i.log" >&2; exit 1; }
done
run_tool "cluster-1silo-${gateways}gateways" "$hosts" "$broker_pids" "$dotnet_pids"
echo "results and logs: $out"
