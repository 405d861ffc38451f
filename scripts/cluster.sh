#!/usr/bin/env bash
# A local cluster on loopback: one etcd, N silos and M gateways (defaults 3 and 2), every endpoint printed.
#   ./run.sh cluster [SILOS] [GATEWAYS]     start it; Ctrl-C stops it all
#   ./run.sh cluster restart NAME           start a member that died (or was killed) again on its data directory,
#                                           NAME as printed: silo2, gateway1, etcd
# A member that dies does not stop the others, so a failover can be watched and the member brought back.
# Needs etcd (apt-get install -y etcd-server). Data, logs, pid files and each member's launcher go under ./data/cluster.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work="$PWD/data/cluster"

alive() { [ -f "$work/$1.pid" ] && kill -0 "$(cat "$work/$1.pid")" 2>/dev/null; }

# Starts member $1 from its launcher, its output appended to its log.
launch() {
  nohup bash "$work/$1.sh" >>"$work/$1.log" 2>&1 &
  echo $! >"$work/$1.pid"
  # Watched through its pid file, not as a job of this shell (a restarted member is not one).
  disown
}

if [ "${1:-}" = "restart" ]; then
  name=${2:?usage: ./run.sh cluster restart NAME (silo1, gateway2, etcd ...)}
  [ -f "$work/$name.sh" ] || { echo "no member '$name' in $work (see its *.sh launchers)" >&2; exit 1; }
  if alive "$name"; then
    echo "$name is running (pid $(cat "$work/$name.pid")); stop it first" >&2
    exit 1
  fi
  launch "$name"
  echo "$name started again (pid $(cat "$work/$name.pid")), log $work/$name.log"
  exit 0
fi

silos=${1:-3}
gateways=${2:-2}
etcd_bin=$(command -v etcd || echo /usr/bin/etcd)
[ -x "$etcd_bin" ] || { echo "etcd is not installed (apt-get install -y etcd-server)" >&2; exit 1; }

dotnet build "$root/silo/Orleans.Mqtt.Silo" -c Release --nologo -v q >&2
dotnet build "$root/gateway/Orleans.Mqtt.Gateway" -c Release --nologo -v q >&2

mkdir -p "$work"
rm -f "$work"/*.pid "$work"/*.sh
members=()

# Gateways first (they drain their clients), then silos (they hand over and leave the membership table in etcd),
# then etcd.
stop() {
  trap - INT TERM EXIT
  echo "stopping the cluster" >&2
  for prefix in gateway silo etcd; do
    pids=()
    for name in "${members[@]}"; do
      if [[ $name == "$prefix"* ]] && alive "$name"; then
        pids+=("$(cat "$work/$name.pid")")
      fi
    done
    if [ ${#pids[@]} -gt 0 ]; then
      kill -TERM "${pids[@]}" 2>/dev/null || true
      # Not children of this shell once restarted: wait by polling.
      for pid in "${pids[@]}"; do
        while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
      done
    fi
  done
  rm -f "$work"/*.pid
}
trap 'stop; exit 0' INT TERM
trap stop EXIT

# Writes member $1's launcher: its working directory, environment and command, so a restart is the same start.
launcher() {
  local name=$1 dir=$2
  shift 2
  {
    echo "#!/usr/bin/env bash"
    echo "cd $(printf %q "$dir")"
    for arg in "$@"; do printf '%q ' "$arg"; done
    echo
  } >"$work/$name.sh"
  members+=("$name")
}

launcher etcd "$work" exec "$etcd_bin" --name local --data-dir "$work/etcd" \
  --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster local=http://127.0.0.1:2380 --snapshot-count=10000
: >"$work/etcd.log"
launch etcd
echo "etcd        http://127.0.0.1:2379  log $work/etcd.log"

common=(Clustering__Provider=Etcd Clustering__Etcd__ConnectionString=http://127.0.0.1:2379 Orleans__ClusterId=local)
for i in $(seq 1 "$silos"); do
  mkdir -p "$work/silo$i"
  launcher "silo$i" "$work/silo$i" exec env "${common[@]}" Orleans__SiloPort=$((11110 + i)) Orleans__GatewayPort=$((30000 + i)) \
    Http__Port=$((9090 + i)) Storage__DataDirectory="$work/silo$i/data" \
    dotnet "$root/silo/Orleans.Mqtt.Silo/bin/Release/net10.0/Orleans.Mqtt.Silo.dll"
  : >"$work/silo$i.log"
  launch "silo$i"
  echo "silo$i       silo port $((11110 + i)), gateway port $((30000 + i)), http://127.0.0.1:$((9090 + i))/health/ready  log $work/silo$i.log"
done

for i in $(seq 1 "$gateways"); do
  launcher "gateway$i" "$work" exec env "${common[@]}" Mqtt__Tcp__Port=$((1882 + i)) Mqtt__WebSocket__Port=$((8082 + i)) \
    Http__Port=$((8079 + i)) dotnet "$root/gateway/Orleans.Mqtt.Gateway/bin/Release/net10.0/Orleans.Mqtt.Gateway.dll"
  : >"$work/gateway$i.log"
  launch "gateway$i"
  echo "gateway$i    mqtt://127.0.0.1:$((1882 + i))  ws://127.0.0.1:$((8082 + i))/mqtt  http://127.0.0.1:$((8079 + i))/health/ready  log $work/gateway$i.log"
done

echo "Ctrl-C stops the cluster. A member that dies is reported and the rest keep running; bring it back with" >&2
echo "  ./run.sh cluster restart NAME" >&2
declare -A reported=()
while true; do
  for name in "${members[@]}"; do
    if alive "$name"; then
      unset "reported[$name]"
    elif [ -z "${reported[$name]:-}" ]; then
      reported[$name]=1
      echo "$(date +%T) $name is not running (log $work/$name.log); restart it with: ./run.sh cluster restart $name" >&2
    fi
  done
  sleep 1
done
