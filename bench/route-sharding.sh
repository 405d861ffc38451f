#!/usr/bin/env bash
# Where routes live: the same three-silo cluster (etcd, 3 silos, 2 gateways, all on loopback) with
# Mqtt:Routes:Sharding=Off (every silo holds every subscription) and =Topic (an exact filter only on the
# Mqtt:Routes:Copies=2 route holders of its topic shard), measured in one run, with mosquitto (persistence off) as the
# reference for the subroute scenario.
#
#   bench/route-sharding.sh        # CONNECTIONS=20000 CLEAN=5000 WILDCARDS=100 TRIALS=1000 ORDER="Off Topic"
#
# For each setting it starts a fresh cluster and runs
#   Orleans.Mqtt.Bench conn --connections CLEAN --connect-rate 0 --inflight 100
#       (clean sessions without a subscription, closed after: the cluster's plain connect rate)
#   Orleans.Mqtt.Bench conn --connections N --session-expiry 300 --subscriptions 1 --connect-rate 0 --inflight 100
#       (persistent sessions, one exact filter <prefix>/c/<i> each, kept after the tool disconnects)
#   WILDCARDS mosquitto_sub -t 'w/<i>/+' clients (the load tool subscribes exact filters only), connected first and
#       kept open until the cluster stops
# then, 20 s later (after the silos' own background full collection), reads every silo's mqtt_subscriptions,
# mqtt_subscriptions_exact and mqtt_sessions gauges and mqtt.routes.shard_accepts counter from /metrics and its RSS;
# then runs
#   Orleans.Mqtt.Bench subroute --host <gateway1>,<gateway2> --trials TRIALS --concurrency 8
#       (subscribe on one gateway, publish at SUBACK on the other: SUBSCRIBE->SUBACK and SUBACK->delivered)
# Needs etcd (apt-get install -y etcd-server), mosquitto and mosquitto-clients, python3, curl, .NET SDK.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
connections=${CONNECTIONS:-20000}
wildcards=${WILDCARDS:-100}
trials=${TRIALS:-1000}
clean=${CLEAN:-5000}

source "$root/bench/lib.sh"
bench_prologue mqtt-route-sharding
etcd_bin=$(command -v etcd || echo /usr/bin/etcd)
[[ -x "$etcd_bin" ]] || { echo "etcd is not installed (apt-get install -y etcd-server)" >&2; exit 1; }
command -v mosquitto_sub > /dev/null || { echo "mosquitto_sub is not installed (apt-get install -y mosquitto-clients)" >&2; exit 1; }

echo "building the load tool, the silo and the gateway" >&2
for project in src/Orleans.Mqtt.Bench silo/Orleans.Mqtt.Silo gateway/Orleans.Mqtt.Gateway; do
  dotnet build "$root/$project" -c Release --nologo -v quiet >&2
done
tool=(dotnet "$root/src/Orleans.Mqtt.Bench/bin/Release/net10.0/Orleans.Mqtt.Bench.dll")

pids=()
subs=()
etcd_pid=""
stop_all() {
  # Subscribers, then the brokers, etcd last: a silo stopping without etcd waits a minute on its membership update.
  if [[ ${#subs[@]} -gt 0 ]]; then
    kill -TERM "${subs[@]}" 2>/dev/null || true
    wait "${subs[@]}" 2>/dev/null || true
  fi
  if [[ ${#pids[@]} -gt 0 ]]; then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
  if [[ -n "$etcd_pid" ]]; then
    kill -TERM "$etcd_pid" 2>/dev/null || true
    wait "$etcd_pid" 2>/dev/null || true
  fi
  pids=()
  subs=()
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

gauge() { # http-port metric-name
  curl -sf "http://127.0.0.1:$1/metrics" | awk -v name="$2" '$1 == name || index($1, name "{") == 1 { v = $2 } END { print v + 0 }'
}

counter() { # http-port metric-name: summed over its labels, with or without the exporter's _total suffix
  curl -sf "http://127.0.0.1:$1/metrics" | awk -v name="$2" '{ n = $1; sub(/\{.*/, "", n) } n == name || n == name "_total" { v += $2 } END { print v + 0 }'
}

port=$(free_port)
start_mosquitto "$port" "$out/mosquitto"
pids+=("$mosquitto_pid")
echo "== mosquitto: subroute" >&2
"${tool[@]}" subroute --host "127.0.0.1:$port" --trials "$trials" --concurrency 8 --json "$out/mosquitto-subroute.json" > "$out/mosquitto-subroute.log" 2>&1 || true
stop_all

for mode in ${ORDER:-Off Topic}; do
  dir="$out/$mode"
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
    Orleans__ClusterId="routes-$mode" Mqtt__Routes__Sharding=$mode Mqtt__Routes__Copies=2)
  silo_http=()
  silo_pids=()
  for i in 1 2 3; do
    http=$(free_port)
    mkdir -p "$dir/silo$i"
    (cd "$dir/silo$i" && exec env "${common[@]}" Orleans__SiloPort=$(free_port) Orleans__GatewayPort=$(free_port) \
      Http__Port=$http Storage__DataDirectory="$dir/silo$i/data" \
      dotnet "$root/silo/Orleans.Mqtt.Silo/bin/Release/net10.0/Orleans.Mqtt.Silo.dll" > "$dir/silo$i.log" 2>&1) &
    pids+=($!)
    silo_pids+=($!)
    silo_http+=("$http")
    wait_ready "$http" "$dir/silo$i.log"
  done
  gateways=()
  for g in 1 2; do
    mqtt=$(free_port)
    http=$(free_port)
    (cd "$dir" && exec env "${common[@]}" Mqtt__Tcp__Port=$mqtt Mqtt__WebSocket__Port=0 Http__Port=$http \
      dotnet "$root/gateway/Orleans.Mqtt.Gateway/bin/Release/net10.0/Orleans.Mqtt.Gateway.dll" > "$dir/gateway$g.log" 2>&1) &
    pids+=($!)
    gateways+=("$mqtt")
    wait_ready "$http" "$dir/gateway$g.log"
  done

  idle_rss=()
  for pid in "${silo_pids[@]}"; do idle_rss+=("$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")"); done

  echo "== $mode: $clean clean-session connects" >&2
  "${tool[@]}" conn --host "127.0.0.1:${gateways[0]},127.0.0.1:${gateways[1]}" --connections "$clean" \
    --connect-rate 0 --inflight 100 --duration 1 --json "$dir/clean.json" > "$dir/clean.log" 2>&1 || true

  echo "== $mode: $wildcards wildcard subscribers, then $connections persistent connects with one exact subscription" >&2
  for w in $(seq 1 "$wildcards"); do
    mosquitto_sub -h 127.0.0.1 -p "${gateways[0]}" -i "wild-$mode-$w" -t "w/$w/+" -q 1 > /dev/null 2>&1 &
    subs+=($!)
  done
  "${tool[@]}" conn --host "127.0.0.1:${gateways[0]},127.0.0.1:${gateways[1]}" --connections "$connections" \
    --connect-rate 0 --inflight 100 --session-expiry 300 --subscriptions 1 --duration 1 \
    --json "$dir/conn.json" > "$dir/conn.log" 2>&1 || true

  # RSS after the silos' own background full collection (Mqtt:HeapTrimInterval: once the heap stops growing).
  sleep 20
  {
    for i in 0 1 2; do
      pid=${silo_pids[$i]}
      echo "silo$((i + 1)) subscriptions=$(gauge "${silo_http[$i]}" mqtt_subscriptions) exact=$(gauge "${silo_http[$i]}" mqtt_subscriptions_exact) sessions=$(gauge "${silo_http[$i]}" mqtt_sessions) shard_accepts=$(counter "${silo_http[$i]}" mqtt_routes_shard_accepts) rss_kib=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status") idle_rss_kib=${idle_rss[$i]}"
    done
  } > "$dir/silos.txt"
  cat "$dir/silos.txt" >&2

  echo "== $mode: subroute" >&2
  "${tool[@]}" subroute --host "127.0.0.1:${gateways[0]},127.0.0.1:${gateways[1]}" --trials "$trials" --concurrency 8 \
    --json "$dir/subroute.json" > "$dir/subroute.log" 2>&1 || true
  stop_all
done

python3 - "$out" "$connections" "$wildcards" <<'PY'
import json, os, sys

out, connections, wildcards = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def load(path):
    path = os.path.join(out, path)
    return json.load(open(path)) if os.path.exists(path) else None

def get(r, *keys):
    for k in keys:
        if r is None:
            return None
        r = r.get(k)
    return r

def silos(mode):
    path = os.path.join(out, mode, "silos.txt")
    if not os.path.exists(path):
        return []
    rows = []
    for line in open(path):
        name, *pairs = line.split()
        rows.append((name, {k: float(v) for k, v in (p.split("=") for p in pairs)}))
    return rows

fmt = lambda v, f="{:,.0f}": "n/a" if v is None else f.format(v)
print(f"\n{connections:,} persistent sessions with one exact filter each, {wildcards} wildcard subscribers, 3 silos, copies 2")
print("\n| silo | Off: subscriptions | Off: RSS MiB (growth) | Topic: subscriptions | Topic: RSS MiB (growth) |")
print("|---|---:|---:|---:|---:|")
off, topic = dict(silos("Off")), dict(silos("Topic"))
for name in sorted(set(off) | set(topic)):
    o, t = off.get(name), topic.get(name)
    cell = lambda r: "n/a | n/a" if r is None else f"{r['subscriptions']:,.0f} | {r['rss_kib'] / 1024:,.0f} ({(r['rss_kib'] - r['idle_rss_kib']) / 1024:+,.0f})"
    print(f"| {name} | {cell(o)} | {cell(t)} |")

accepts = {m: sum(r.get("shard_accepts", 0) for r in d.values()) for m, d in (("Off", off), ("Topic", topic))}
print(f"\nChanges also sent to their shard's grain (mqtt.routes.shard_accepts, all silos, clean and persistent connects): "
      f"Off {accepts['Off']:,.0f}, Topic {accepts['Topic']:,.0f}")

mosq = load("mosquitto-subroute.json")
rows = [("SUBSCRIBE->SUBACK p50 ms", ("route", "subAckMs", "p50")), ("SUBSCRIBE->SUBACK p99 ms", ("route", "subAckMs", "p99")),
        ("SUBACK->delivered p50 ms", ("route", "routeMs", "p50")), ("SUBACK->delivered p99 ms", ("route", "routeMs", "p99")),
        ("misses", ("route", "misses"))]
runs = {m: load(os.path.join(m, "subroute.json")) for m in ("Off", "Topic")}
cc = {m: load(os.path.join(m, "conn.json")) for m in ("Off", "Topic")}
clean = {m: load(os.path.join(m, "clean.json")) for m in ("Off", "Topic")}
print("\n| metric | Off | Topic | Topic / Off | mosquitto |")
print("|---|---:|---:|---:|---:|")
for label, keys in rows:
    a, b, m = get(runs["Off"], *keys), get(runs["Topic"], *keys), get(mosq, *keys)
    ratio = "n/a" if a is None or b is None or not a else f"{b / a:.2f}"
    print(f"| {label} | {fmt(a, '{:.2f}')} | {fmt(b, '{:.2f}')} | {ratio} | {fmt(m, '{:.2f}')} |")
a, b = get(cc["Off"], "connect", "achievedRate"), get(cc["Topic"], "connect", "achievedRate")
print(f"| persistent connects/s (one SUBSCRIBE each) | {fmt(a)} | {fmt(b)} | {'n/a' if not a or b is None else f'{b / a:.2f}'} | |")
for label, source, keys, f in [("persistent + SUBSCRIBE: CONNACK p99 ms", cc, ("connect", "connAckMs", "p99"), "{:.0f}"),
                               ("clean-session connects/s (no subscription)", clean, ("connect", "achievedRate"), "{:,.0f}"),
                               ("clean-session CONNACK p99 ms", clean, ("connect", "connAckMs", "p99"), "{:.0f}")]:
    a, b = get(source["Off"], *keys), get(source["Topic"], *keys)
    print(f"| {label} | {fmt(a, f)} | {fmt(b, f)} | {'n/a' if not a or b is None else f'{b / a:.2f}'} | |")
print(f"\nJSON results and logs in {out}")
PY
