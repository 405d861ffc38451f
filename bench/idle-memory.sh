#!/usr/bin/env bash
# Memory of an idle cluster through a long hold, process by process: etcd, one silo and one gateway holding
# CONNECTIONS persistent sessions with one subscription each (the load tool pings every 30 s), sampled every 15 s
# after the last connect: RSS of each process and, from each host's /metrics, the runtime's heap by generation (as
# the last collection left it), its collection counts and the bytes allocated so far. With DUMPS it also takes heap
# dumps of the silo and the gateway (dotnet-gcdump; each dump runs a full collection, so the samples after the first
# are not those of an undisturbed process): DUMPS=1 at 75 s and at the end; or a list of the moments, from "before"
# (before the first connect), sample times in seconds and "end", e.g. DUMPS="before 15 end". Two dumps of one
# process are compared by type with bench/gcdump-diff.py.
#
#   bench/idle-memory.sh        # CONNECTIONS=16000 HOLD=160; OUT=<dir>, default a new temp dir
#
# Prints one line per sample (MiB): rss of silo / gateway / etcd, then per host gen0 gen1 gen2 loh poh, the
# collections so far (gen0/gen1/gen2) and the MiB allocated so far. A diagnostic of our processes alone: the
# mosquitto comparison at the same count is bench/memory-cluster.sh.
# Needs etcd (apt-get install -y etcd-server), python3, curl, the .NET SDK; dotnet-gcdump for DUMPS=1.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
connections=${CONNECTIONS:-16000}
hold=${HOLD:-160}

source "$root/bench/lib.sh"
# dotnet-gcdump is a .NET global tool (dotnet tool install -g dotnet-gcdump); its directory is often not on PATH.
export PATH="$PATH:$HOME/.dotnet/tools"
bench_prologue mqtt-idle-memory
etcd_bin=$(command -v etcd || echo /usr/bin/etcd)
[[ -x "$etcd_bin" ]] || { echo "etcd is not installed (apt-get install -y etcd-server)" >&2; exit 1; }

echo "building the load tool, the silo and the gateway" >&2
for project in src/Orleans.Mqtt.Bench silo/Orleans.Mqtt.Silo gateway/Orleans.Mqtt.Gateway; do
  dotnet build "$root/$project" -c Release --nologo -v quiet >&2
done

pids=()
stop_all() {
  if [[ ${#pids[@]} -gt 0 ]]; then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
  pids=()
}
trap stop_all EXIT

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
silo_http=$(free_port)
gateway_http=$(free_port)
mqtt_port=$(free_port)
(cd "$out" && Orleans__SiloPort=$(free_port) Orleans__GatewayPort=$(free_port) Http__Port=$silo_http \
  Storage__DataDirectory="$out/silo-data" \
  exec dotnet "$root/silo/Orleans.Mqtt.Silo/bin/Release/net10.0/Orleans.Mqtt.Silo.dll" > "$out/silo.log" 2>&1) &
silo_pid=$!
pids+=("$silo_pid")
(cd "$out" && Mqtt__Tcp__Port=$mqtt_port Mqtt__WebSocket__Port=0 Http__Port=$gateway_http \
  exec dotnet "$root/gateway/Orleans.Mqtt.Gateway/bin/Release/net10.0/Orleans.Mqtt.Gateway.dll" > "$out/gateway.log" 2>&1) &
gateway_pid=$!
pids+=("$gateway_pid")
ready=0
for _ in $(seq 1 240); do
  if curl -sf "http://127.0.0.1:$gateway_http/health/ready" > /dev/null; then ready=1; break; fi
  sleep 0.5
done
[[ $ready == 1 ]] || { echo "the gateway did not become ready; see $out/gateway.log" >&2; exit 1; }

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
sample() { # label seconds
  echo "$1 t=$2 silo=$(rss_kib "$silo_pid") gateway=$(rss_kib "$gateway_pid") etcd=$(rss_kib "$etcd_pid")" >> "$out/samples"
  local host port
  for host in silo:$silo_http gateway:$gateway_http; do
    port=${host#*:}
    curl -s "http://127.0.0.1:$port/metrics" \
      | grep -E "^(dotnet_gc_last_collection_heap_size_bytes|dotnet_gc_collections_total|dotnet_gc_heap_total_allocated_bytes_total|mqtt_sessions_in_memory)" \
      | sed "s/^/  ${host%%:*} /" >> "$out/samples" || true
  done
}
dump() { # label
  dotnet-gcdump collect -p "$silo_pid" -o "$out/silo-$1.gcdump" > /dev/null 2>&1 || echo "gcdump of the silo failed" >&2
  dotnet-gcdump collect -p "$gateway_pid" -o "$out/gateway-$1.gcdump" > /dev/null 2>&1 || echo "gcdump of the gateway failed" >&2
}

dumps=${DUMPS:-}
[[ $dumps == 1 ]] && dumps="75 end"
dump_at() { [[ " $dumps " == *" $1 "* ]]; }

sample before 0
if dump_at before; then dump before; fi
dotnet "$root/src/Orleans.Mqtt.Bench/bin/Release/net10.0/Orleans.Mqtt.Bench.dll" conn --port "$mqtt_port" \
  --connections "$connections" --connect-rate 0 --inflight 100 --session-expiry 300 --subscriptions 1 --duration "$hold" \
  --broker-pid "$silo_pid,$gateway_pid,$etcd_pid" --json "$out/conn.json" > "$out/tool.log" 2>&1 &
tool_pid=$!
until grep -qE "^(every worker has connected|connected ).*holding" "$out/tool.log" 2>/dev/null; do
  kill -0 "$tool_pid" 2>/dev/null || { echo "the load tool ended early; see $out/tool.log" >&2; exit 1; }
  sleep 0.5
done
start=$(date +%s)
for at in $(seq 15 15 $((hold - 10))); do
  while (( $(date +%s) - start < at )); do sleep 0.5; done
  sample "s$at" "$at"
  if dump_at "$at"; then dump "$at"; fi
done
if dump_at end; then dump end; fi
wait "$tool_pid" || true

python3 - "$out/samples" <<'PY'
import re, sys
rows, cur = [], None
for line in open(sys.argv[1]):
    if not line.startswith("  "):
        cur = {"label": line.split()[0], **{k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}}
        rows.append(cur)
        continue
    host, rest = line.split(None, 1)
    name, value = rest.split("{")[0], float(rest.split()[-1])
    gen = re.search(r'gc_heap_generation="(\w+)"', rest)
    cur[(host, name, gen.group(1) if gen else "")] = value
mib = lambda v: f"{v / 2**20:.0f}"
print("sample  t(s)  rss silo/gateway/etcd MiB | per host: heap gen0 gen1 gen2 loh poh MiB, collections gen0/gen1/gen2, allocated MiB")
for r in rows:
    parts = [f"{r['label']:>6} {r.get('t', 0):>4}  {r['silo'] // 1024}/{r['gateway'] // 1024}/{r['etcd'] // 1024}"]
    for host in ("silo", "gateway"):
        heap = " ".join(mib(r.get((host, "dotnet_gc_last_collection_heap_size_bytes", g), 0)) for g in ("gen0", "gen1", "gen2", "loh", "poh"))
        counts = "/".join(f"{r.get((host, 'dotnet_gc_collections_total', g), 0):.0f}" for g in ("gen0", "gen1", "gen2"))
        parts.append(f"{host}: {heap}, {counts}, {mib(r.get((host, 'dotnet_gc_heap_total_allocated_bytes_total', ''), 0))}")
    print(" | ".join(parts))
PY
grep -E "^(connected|broker rss)" "$out/tool.log" || true
echo "samples, dumps and logs: $out"
