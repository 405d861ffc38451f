#!/usr/bin/env bash
# The cost of replicated session state: the same three-silo cluster (etcd, 3 silos, 1 gateway, all on loopback) with
# Mqtt:SessionReplicas=1 (each persistent session on its home silo only) and =2 (on its home and one more silo),
# measured in one run, with mosquitto (persistence off) as the reference for the pairs scenario.
#
#   bench/session-replicas.sh        # PAIRS=50 SIZE=100 DURATION=20 WARMUP=3 WINDOW=10 CONNECTIONS=3000 ORDER="1 2"
#
# For each setting it starts a fresh cluster and runs
#   Orleans.Mqtt.Bench pairs --pairs 50 --qos 1 --session-expiry 300 ...   (persistent subscribers: every message
#                                                                            is stored before its PUBACK)
#   Orleans.Mqtt.Bench conn --connections N --connect-rate 0 --inflight 100 --session-expiry 300 --subscriptions 1
#                                                                           (persistent connects, one SUBSCRIBE each)
# and prints the throughput, the connect rate and the ratios replicas 2 / replicas 1.
# Needs etcd (apt-get install -y etcd-server), mosquitto (apt-get install -y mosquitto), python3, curl, .NET SDK.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
pairs=${PAIRS:-50}
size=${SIZE:-100}
duration=${DURATION:-20}
warmup=${WARMUP:-3}
window=${WINDOW:-10}
connections=${CONNECTIONS:-3000}

source "$root/bench/lib.sh"
bench_prologue mqtt-replicas
etcd_bin=$(command -v etcd || echo /usr/bin/etcd)
[[ -x "$etcd_bin" ]] || { echo "etcd is not installed (apt-get install -y etcd-server)" >&2; exit 1; }

echo "building the load tool, the silo and the gateway" >&2
for project in src/Orleans.Mqtt.Bench silo/Orleans.Mqtt.Silo gateway/Orleans.Mqtt.Gateway; do
  dotnet build "$root/$project" -c Release --nologo -v quiet >&2
done
tool=(dotnet "$root/src/Orleans.Mqtt.Bench/bin/Release/net10.0/Orleans.Mqtt.Bench.dll")

pids=()
etcd_pid=""
stop_all() {
  # The brokers first, etcd last: a silo stopping without etcd waits a minute on its membership update.
  if [[ ${#pids[@]} -gt 0 ]]; then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
  if [[ -n "$etcd_pid" ]]; then
    kill -TERM "$etcd_pid" 2>/dev/null || true
    wait "$etcd_pid" 2>/dev/null || true
  fi
  pids=()
  etcd_pid=""
}
trap stop_all EXIT

wait_ready() { # http-port log
  for _ in $(seq 1 240); do
    curl -sf "http://127.0.0.1:$1/health/ready" > /dev/null && return 0
    sleep 0.5
  done
  echo "not ready; see $2" >&2
  exit 1
}

run_pairs() { # name port
  echo "== $1: pairs QoS 1" >&2
  "${tool[@]}" pairs --host 127.0.0.1 --port "$2" --pairs "$pairs" --qos 1 --size "$size" --duration "$duration" \
    --warmup "$warmup" --window "$window" --protocol 5 ${3:+--session-expiry $3} --json "$out/$1-pairs.json" >&2
}

port=$(free_port)
start_mosquitto "$port" "$out/mosquitto"
pids+=("$mosquitto_pid")
run_pairs mosquitto "$port"
stop_all

for replicas in ${ORDER:-1 2}; do
  dir="$out/replicas$replicas"
  mkdir -p "$dir"
  client_port=$(free_port)
  peer_port=$(free_port)
  "$etcd_bin" --name bench --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$client_port" --advertise-client-urls "http://127.0.0.1:$client_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "bench=http://127.0.0.1:$peer_port" > "$dir/etcd.log" 2>&1 &
  etcd_pid=$!
  wait_for_port "$client_port"
  common=(Clustering__Provider=Etcd Clustering__Etcd__ConnectionString="http://127.0.0.1:$client_port"
    Orleans__ClusterId="replicas$replicas" Mqtt__SessionReplicas=$replicas)
  for i in 1 2 3; do
    http=$(free_port)
    mkdir -p "$dir/silo$i"
    (cd "$dir/silo$i" && exec env "${common[@]}" Orleans__SiloPort=$(free_port) Orleans__GatewayPort=$(free_port) \
      Http__Port=$http Storage__DataDirectory="$dir/silo$i/data" \
      dotnet "$root/silo/Orleans.Mqtt.Silo/bin/Release/net10.0/Orleans.Mqtt.Silo.dll" > "$dir/silo$i.log" 2>&1) &
    pids+=($!)
    wait_ready "$http" "$dir/silo$i.log"
  done
  mqtt=$(free_port)
  http=$(free_port)
  (cd "$dir" && exec env "${common[@]}" Mqtt__Tcp__Port=$mqtt Mqtt__WebSocket__Port=0 Http__Port=$http \
    dotnet "$root/gateway/Orleans.Mqtt.Gateway/bin/Release/net10.0/Orleans.Mqtt.Gateway.dll" > "$dir/gateway.log" 2>&1) &
  pids+=($!)
  wait_ready "$http" "$dir/gateway.log"

  run_pairs "replicas$replicas" "$mqtt" 300
  echo "== replicas$replicas: $connections persistent connects" >&2
  "${tool[@]}" conn --host 127.0.0.1 --port "$mqtt" --connections "$connections" --connect-rate 0 --inflight 100 \
    --session-expiry 300 --subscriptions 1 --duration 1 --json "$dir/conn.json" > "$dir/conn.log" 2>&1 || true
  cp "$dir/conn.json" "$out/replicas$replicas-conn.json" 2>/dev/null || true
  stop_all
done

python3 - "$out" <<'PY'
import json, os, sys

out = sys.argv[1]

def load(name):
    path = os.path.join(out, name + ".json")
    return json.load(open(path)) if os.path.exists(path) else None

mosq, one, two = load("mosquitto-pairs"), load("replicas1-pairs"), load("replicas2-pairs")
c1, c2 = load("replicas1-conn"), load("replicas2-conn")

def get(r, *keys):
    for k in keys:
        if r is None:
            return None
        r = r.get(k)
    return r

def fmt(v, f="{:,.0f}"):
    return "n/a" if v is None else f.format(v)

def ratio(a, b):
    return "n/a" if a is None or not b else "{:.2f}".format(a / b)

rows = [
    ("pairs QoS 1 delivered msg/s", get(one, "deliveredPerSecond"), get(two, "deliveredPerSecond"), get(mosq, "deliveredPerSecond"), "{:,.0f}"),
    ("pairs QoS 1 latency p50 ms", get(one, "latencyMs", "p50"), get(two, "latencyMs", "p50"), get(mosq, "latencyMs", "p50"), "{:.2f}"),
    ("pairs QoS 1 latency p99 ms", get(one, "latencyMs", "p99"), get(two, "latencyMs", "p99"), get(mosq, "latencyMs", "p99"), "{:.2f}"),
    ("pairs lost / duplicates", None, None, None, None),
    ("persistent connects/s", get(c1, "connect", "achievedRate"), get(c2, "connect", "achievedRate"), None, "{:,.0f}"),
    ("persistent CONNACK p50 ms", get(c1, "connect", "connAckMs", "p50"), get(c2, "connect", "connAckMs", "p50"), None, "{:.2f}"),
    ("persistent CONNACK p99 ms", get(c1, "connect", "connAckMs", "p99"), get(c2, "connect", "connAckMs", "p99"), None, "{:.2f}"),
]
print("\n| metric | replicas 1 | replicas 2 | ratio 2/1 | mosquitto | replicas 2 / mosquitto |")
print("|---|---:|---:|---:|---:|---:|")
for label, a, b, m, f in rows:
    if f is None:
        lost = lambda r: "n/a" if r is None else f"{r['lost']} / {r['duplicates']}"
        print(f"| {label} | {lost(one)} | {lost(two)} | | {lost(mosq)} | |")
        continue
    print(f"| {label} | {fmt(a, f)} | {fmt(b, f)} | {ratio(b, a)} | {fmt(m, f)} | {ratio(b, m)} |")
print(f"\nJSON results and logs in {out}")
PY
