#!/usr/bin/env bash
# How long the background re-replication takes after a silo is killed: a three-silo cluster (etcd, 3 silos,
# 1 gateway, all on loopback, Mqtt:SessionReplicas=2) with SESSIONS idle persistent sessions (connected once,
# one subscription each, then offline and out of memory), one silo killed with SIGKILL and not restarted. Each surviving silo then
# writes the copies the killed silo held (of the sessions homed on the survivor, and of the killed silo's own
# sessions whose one surviving copy it holds) to the other survivor; the script prints each survivor's pass log line
# (sessions looked at, copies written, duration) and the time from the kill to that line.
#
#   bench/rereplication.sh        # SESSIONS=10000 BATCH=128 PAUSE=00:00:00.010
#
# There is no mosquitto reference for this: mosquitto has no cluster to re-replicate in.
# Needs etcd (apt-get install -y etcd-server), python3, curl, .NET SDK.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
sessions=${SESSIONS:-10000}
batch=${BATCH:-128}
pause=${PAUSE:-00:00:00.010}

source "$root/bench/lib.sh"
bench_prologue mqtt-rereplication
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

client_port=$(free_port)
peer_port=$(free_port)
"$etcd_bin" --name bench --data-dir "$out/etcd" \
  --listen-client-urls "http://127.0.0.1:$client_port" --advertise-client-urls "http://127.0.0.1:$client_port" \
  --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-cluster "bench=http://127.0.0.1:$peer_port" > "$out/etcd.log" 2>&1 &
etcd_pid=$!
wait_for_port "$client_port"
common=(Clustering__Provider=Etcd Clustering__Etcd__ConnectionString="http://127.0.0.1:$client_port"
  Orleans__ClusterId=rereplication Mqtt__SessionReplicas=2 Mqtt__SessionIdleTimeout=00:00:05
  Mqtt__SessionRereplicationBatch="$batch" Mqtt__SessionRereplicationPause="$pause")
silo_pids=()
silo_http=()
for i in 1 2 3; do
  http=$(free_port)
  silo_http+=("$http")
  mkdir -p "$out/silo$i"
  (cd "$out/silo$i" && exec env "${common[@]}" Orleans__SiloPort=$(free_port) Orleans__GatewayPort=$(free_port) \
    Http__Port=$http Storage__DataDirectory="$out/silo$i/data" \
    dotnet "$root/silo/Orleans.Mqtt.Silo/bin/Release/net10.0/Orleans.Mqtt.Silo.dll" > "$out/silo$i.log" 2>&1) &
  pids+=($!)
  silo_pids+=($!)
  wait_ready "$http" "$out/silo$i.log"
done
mqtt=$(free_port)
http=$(free_port)
(cd "$out" && exec env "${common[@]}" Mqtt__Tcp__Port=$mqtt Mqtt__WebSocket__Port=0 Http__Port=$http \
  dotnet "$root/gateway/Orleans.Mqtt.Gateway/bin/Release/net10.0/Orleans.Mqtt.Gateway.dll" > "$out/gateway.log" 2>&1) &
pids+=($!)
wait_ready "$http" "$out/gateway.log"

echo "== $sessions persistent sessions, connected once and left offline" >&2
"${tool[@]}" conn --host 127.0.0.1 --port "$mqtt" --connections "$sessions" --connect-rate 0 --inflight 100 \
  --session-expiry 3600 --subscriptions 1 --duration 1 --json "$out/conn.json" > "$out/conn.log" 2>&1 || true

# Idle means saved and out of memory (Mqtt:SessionIdleTimeout 5 s): no session is in the middle of a save when the
# silo dies, so every copy the pass reports is one only the pass would have written.
echo "== waiting until every session has left memory" >&2
for _ in $(seq 1 240); do
  in_memory=0
  for port in "${silo_http[@]}"; do
    body=$(curl -sf "http://127.0.0.1:$port/metrics" || true)
    # A silo whose metric is missing (not answering) counts as not idle yet.
    n=$(awk '/^mqtt_sessions_in_memory[{ ]/ {s += $NF; found = 1} END {print found ? s + 0 : 1}' <<< "$body")
    in_memory=$((in_memory + ${n%.*}))
  done
  [[ $in_memory -eq 0 ]] && break
  sleep 0.5
done
echo "sessions in memory before the kill: $in_memory" >&2

pattern="Session re-replication pass over 2 active silos"
echo "== kill -9 of silo 3" >&2
killed_at=$(date +%s.%N)
kill -KILL "${silo_pids[2]}"
found=0
for _ in $(seq 1 600); do
  found=$(cat "$out/silo1.log" "$out/silo2.log" | grep -c "$pattern" || true)
  [[ $found -ge 2 ]] && break
  sleep 0.2
done
done_at=$(date +%s.%N)

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); $(date -u)"
echo "sessions: $sessions; batch: $batch; pause: $pause"
grep -h "$pattern" "$out/silo1.log" "$out/silo2.log" || echo "no pass line within 120 s (found $found)"
python3 -c "import sys; print(f'kill to the last pass line seen: {float(sys.argv[2]) - float(sys.argv[1]):.1f} s (polled every 0.2 s)')" \
  "$killed_at" "$done_at"
for i in 1 2; do
  echo "silo $i: $(curl -sf "http://127.0.0.1:${silo_http[$((i - 1))]}/metrics" | grep -E '^mqtt_sessions_(rereplicated|rereplication_failures)' | tr '\n' ' ')"
done
echo "logs: $out"
