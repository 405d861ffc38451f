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
# Needs etcd (apt-get install -y etcd-server), mosquitto (apt-get install -y mosquitto), python3, curl, .NET SDK.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
connections=${CONNECTIONS:-50000}
gateways=${GATEWAYS:-3}
hold=${HOLD:-20}
rate=${RATE:-0}

source "$root/bench/lib.sh"
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

run_tool() { # name hosts pids
  local name=$1 hosts=$2 broker_pids=$3
  echo "rss before: $(rss_by_process "$broker_pids")" > "$out/$name.rss"
  # Per process, halfway through the hold and a second before its end (the tool prints the summary of all of them
  # together).
  (
    until grep -qE "^(every worker has connected|connected ).*holding" "$out/$name.tool.log" 2>/dev/null; do sleep 0.5; done
    sleep $((hold / 2))
    echo "rss held:   $(rss_by_process "$broker_pids")" >> "$out/$name.rss"
    sleep $((hold - hold / 2 - 1))
    echo "rss end:    $(rss_by_process "$broker_pids")" >> "$out/$name.rss"
  ) &
  local sampler=$!
  "${tool[@]}" conn --host "$hosts" --connections "$connections" --connect-rate "$rate" --inflight 100 \
    --session-expiry 300 --subscriptions 1 --duration "$hold" --broker-pid "$broker_pids" \
    --json "$out/$name.json" > "$out/$name.tool.log" 2>&1 || true
  wait "$sampler" 2>/dev/null || true
  echo "== $name"
  cat "$out/$name.rss"
  grep -E "^(load|connected|connack|broker rss|errors|tool cpu)" "$out/$name.tool.log" || tail -5 "$out/$name.tool.log"
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
for i in $(seq 1 "$gateways"); do
  port=$(free_port)
  http=$(free_port)
  (cd "$out" && Mqtt__Tcp__Port=$port Mqtt__WebSocket__Port=0 Http__Port=$http \
    exec dotnet "$root/gateway/Orleans.Mqtt.Gateway/bin/Release/net10.0/Orleans.Mqtt.Gateway.dll" > "$out/gateway$i.log" 2>&1) &
  pids+=($!)
  broker_pids+=",$!"
  hosts+="${hosts:+,}127.0.0.1:$port"
  ready=0
  for _ in $(seq 1 240); do
    if curl -sf "http://127.0.0.1:$http/health/ready" > /dev/null; then ready=1; break; fi
    sleep 0.5
  done
  [[ $ready == 1 ]] || { echo "gateway $i did not become ready; see $out/gateway$i.log" >&2; exit 1; }
done
run_tool "cluster-1silo-${gateways}gateways" "$hosts" "$broker_pids"
echo "results and logs: $out"
