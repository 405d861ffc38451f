#!/usr/bin/env bash
# A local cluster on loopback: one etcd, N silos and M gateways (defaults 3 and 2), every endpoint printed;
# Ctrl-C stops them all. Usage: ./run.sh cluster [SILOS] [GATEWAYS]
# Needs etcd (apt-get install -y etcd-server). Data and logs go under ./data/cluster.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
silos=${1:-3}
gateways=${2:-2}
etcd_bin=$(command -v etcd || echo /usr/bin/etcd)
[ -x "$etcd_bin" ] || { echo "etcd is not installed (apt-get install -y etcd-server)" >&2; exit 1; }

dotnet build "$root/silo/Orleans.Mqtt.Silo" -c Release --nologo -v q >&2
dotnet build "$root/gateway/Orleans.Mqtt.Gateway" -c Release --nologo -v q >&2

work="$PWD/data/cluster"
mkdir -p "$work"
etcd_pid=""
silo_pids=()
gateway_pids=()
# Gateways first (they drain their clients), then silos (they hand over and leave the membership table in etcd),
# then etcd.
stop() {
  trap - INT TERM EXIT
  echo "stopping the cluster" >&2
  for group in gateway_pids silo_pids; do
    local -n members=$group
    if [ ${#members[@]} -gt 0 ]; then
      kill -TERM "${members[@]}" 2>/dev/null || true
      wait "${members[@]}" 2>/dev/null || true
    fi
  done
  [ -z "$etcd_pid" ] || { kill -TERM "$etcd_pid" 2>/dev/null || true; wait "$etcd_pid" 2>/dev/null || true; }
}
trap 'stop; exit 0' INT TERM
trap stop EXIT

"$etcd_bin" --name local --data-dir "$work/etcd" \
  --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster local=http://127.0.0.1:2380 --snapshot-count=10000 >"$work/etcd.log" 2>&1 &
etcd_pid=$!
echo "etcd        http://127.0.0.1:2379"

export Clustering__Provider=Etcd Clustering__Etcd__ConnectionString=http://127.0.0.1:2379 Orleans__ClusterId=local
for i in $(seq 1 "$silos"); do
  mkdir -p "$work/silo$i"
  (cd "$work/silo$i" && Orleans__SiloPort=$((11110 + i)) Orleans__GatewayPort=$((30000 + i)) Http__Port=$((9090 + i)) Storage__DataDirectory="$work/silo$i/data" \
    exec dotnet "$root/silo/Orleans.Mqtt.Silo/bin/Release/net10.0/Orleans.Mqtt.Silo.dll" >"$work/silo$i.log" 2>&1) &
  silo_pids+=($!)
  echo "silo $i      silo port $((11110 + i)), gateway port $((30000 + i)), http://127.0.0.1:$((9090 + i))/health/ready  log $work/silo$i.log"
done

for i in $(seq 1 "$gateways"); do
  (cd "$work" && Mqtt__Tcp__Port=$((1882 + i)) Mqtt__WebSocket__Port=$((8082 + i)) Http__Port=$((8079 + i)) \
    exec dotnet "$root/gateway/Orleans.Mqtt.Gateway/bin/Release/net10.0/Orleans.Mqtt.Gateway.dll" >"$work/gateway$i.log" 2>&1) &
  gateway_pids+=($!)
  echo "gateway $i   mqtt://127.0.0.1:$((1882 + i))  ws://127.0.0.1:$((8082 + i))/mqtt  http://127.0.0.1:$((8079 + i))/health/ready  log $work/gateway$i.log"
done

echo "Ctrl-C stops the cluster." >&2
wait -n "$etcd_pid" "${silo_pids[@]}" "${gateway_pids[@]}" || true
echo "a process of the cluster exited; see the logs in $work" >&2
exit 1
