#!/usr/bin/env bash
# Resident memory of an idle standalone broker under GC settings given as environment variables: for each of RUNS
# rounds, each setting in turn (alternated, so drift on the shared machine spreads over all of them), a fresh broker
# on an empty data directory, no client, sampled AT seconds after /health/ready: RSS and anonymous memory from
# /proc/<pid>/status, and from its /metrics what the runtime counts committed and the heap the last collection left.
#
#   bench/idle-standalone.sh                                  # SETTINGS="none" RUNS=3 AT="30 75" HOST=standalone
#   SETTINGS="none DOTNET_GCConserveMemory=5 DOTNET_GCConserveMemory=7" bench/idle-standalone.sh
#
# A setting is "none" or one or more VAR=VALUE joined by commas (DOTNET_GC* numbers are read as hex by the runtime);
# DLL=<path> in a setting runs that build of the broker instead of this checkout's (a copy of another build's output).
# Prints one line per run and sample (MiB) and, per setting and sample, the lowest, median and highest anonymous
# memory. HOST=silo measures a cluster silo instead (silo/Orleans.Mqtt.Silo), each run with an etcd of its own for
# membership and ownership, as bench/idle-memory.sh starts them.
# Needs python3, curl and the .NET SDK; etcd (apt-get install -y etcd-server) for HOST=silo.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
settings=${SETTINGS:-none}
runs=${RUNS:-3}
at=${AT:-30 75}
host=${HOST:-standalone}

source "$root/bench/lib.sh"
out=${OUT:-$(mktemp -d -t mqtt-idle-standalone.XXXXXX)}
mkdir -p "$out"
if [[ $host == silo ]]; then
  dotnet build "$root/silo/Orleans.Mqtt.Silo" -c Release --nologo -v quiet >&2
  dll="$root/silo/Orleans.Mqtt.Silo/bin/Release/net10.0/Orleans.Mqtt.Silo.dll"
else
  dotnet build "$root/src/Orleans.Mqtt.Standalone" -c Release --nologo -v quiet >&2
  dll="$root/src/Orleans.Mqtt.Standalone/bin/Release/net10.0/Orleans.Mqtt.Standalone.dll"
fi

broker=""
etcd=""
stop() {
  local pid
  for pid in $broker $etcd; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  broker=""; etcd=""
}
trap stop EXIT

status_mib() { awk -v k="$2:" '$1 == k {printf "%d", $2 / 1024}' "/proc/$1/status"; }
metric_mib() { # http-port metric-name: the sum over its series
  curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" 'index($0, m) == 1 {s += $NF} END {printf "%d", s / 1048576}'
}

for run in $(seq 1 "$runs"); do
  for setting in $settings; do
    work=$(mktemp -d -p "$out" run.XXXXXX)
    mqtt=$(free_port); http=$(free_port)
    env_args=()
    broker_dll=$dll
    [[ $setting != none ]] && IFS=, read -ra env_args <<< "$setting"
    for i in "${!env_args[@]}"; do
      [[ ${env_args[$i]} == DLL=* ]] && { broker_dll=${env_args[$i]#DLL=}; unset "env_args[$i]"; }
    done
    if [[ $host == silo ]]; then
      start_etcd "$work"
      etcd=$etcd_pid
      env_args=("${cluster_env[@]}" Storage__DataDirectory="$work/data" "${env_args[@]}")
    fi
    (
      cd "$work"
      exec env "${env_args[@]}" Mqtt__Tcp__Port="$mqtt" Mqtt__WebSocket__Port=0 Http__Port="$http" \
        Orleans__SiloPort="$(free_port)" Orleans__GatewayPort="$(free_port)" \
        dotnet "$broker_dll" > "$work/broker.log" 2>&1
    ) &
    broker=$!
    ready=0
    for _ in $(seq 1 240); do
      curl -sf "http://127.0.0.1:$http/health/ready" > /dev/null && { ready=1; break; }
      kill -0 "$broker" 2>/dev/null || break
      sleep 0.25
    done
    [[ $ready == 1 ]] || { echo "the broker did not become ready; see $work/broker.log" >&2; exit 1; }
    start=$(date +%s.%N)
    for t in $at; do
      while (( $(echo "$(date +%s.%N) - $start < $t" | bc) )); do sleep 0.2; done
      echo "$setting run=$run t=$t rss=$(status_mib "$broker" VmRSS) anon=$(status_mib "$broker" RssAnon)" \
        "committed=$(metric_mib "$http" dotnet_gc_last_collection_memory_committed_size_bytes)" \
        "heap=$(metric_mib "$http" dotnet_gc_last_collection_heap_size_bytes)" | tee -a "$out/samples"
    done
    grep -h "compacted after start" "$work/broker.log" | sed 's/^.*Heap/  Heap/' | tee -a "$out/samples" || true
    stop
    rm -rf "$work/data" "$work/etcd"
  done
done

python3 - "$out/samples" <<'PY'
import re, statistics, sys
by = {}
for line in open(sys.argv[1]):
    if line.startswith(" "):
        continue
    setting = line.split()[0]
    f = dict(re.findall(r"(\w+)=(\d+)", line))
    by.setdefault((setting, int(f["t"])), []).append(int(f["anon"]))
print("setting  t(s)  anonymous MiB min / median / max  (runs)")
for (setting, t), values in by.items():
    print(f"{setting} {t} {min(values)} / {statistics.median(values):.0f} / {max(values)} ({len(values)})")
PY
echo "samples and logs: $out"
