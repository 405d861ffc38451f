#!/usr/bin/env bash
# A fleet on one machine: CONNECTIONS (100,000) persistent device sessions over GATEWAYS (6) gateway processes (a
# process may hold 20,000 open files here), 3 silos and etcd, with SUBSCRIPTIONS (10) exact filters per device
# (1,000,000 routes) and WILDCARDS (1,000) wildcard filters held by BACKENDS (10) back-end clients; routing checked on a
# sample of both; memory per connection over all processes and per silo.
#
#   bench/fleet-100k.sh      # CONNECTIONS=100000 SUBSCRIPTIONS=10 GATEWAYS=6 SILOS=3 WILDCARDS=1000 BACKENDS=10
#                            # CHECK=1000 EXTRA_SILO_ARGS=""
#
# What runs, in order:
#   devices   Orleans.Mqtt.Bench conn --connections 100000 --session-expiry 3600 --subscriptions 10
#               --subscribe-batch 10 --filter-pattern 'fleet/d/{c}/cmd/{i}' --connect-rate 0 --inflight 200
#               --keepalive 900 --check 1000 --duration 1800
#             (one SUBSCRIBE with the device's 10 filters; one worker process of the tool per 18,000 connections;
#             each worker, once its connections are up, publishes QoS 1 to a topic of its share of the 1,000 sampled
#             filters from a connection on another gateway and waits for the device to get it)
#   back end  once every device is connected: conn --connections 10 --session-expiry 3600 --subscriptions 100
#               --subscribe-batch 100 --filter-pattern 'fleet/t/{n}/+/telemetry' --check 1000 --duration 1
#             (1,000 distinct wildcard filters; the check publishes to fleet/t/<n>/x/telemetry for 1,000 sampled
#             filters, with the million device routes in place)
#   sample    RSS of every process, routes and sessions per silo (/metrics), etcd's database size and keys,
#             before and with the fleet connected
# Then the cluster is killed (SIGKILL: the figures are taken, and 100,000 session hand-overs would take minutes) and
# the device run ends. Prints a table; every sampled delivery must have arrived (exit 1 otherwise).
# Memory: about 1.4 GB of broker RSS per 100,000 connections plus the routes on every silo; check `free -g` first.
# Needs etcd (apt-get install -y etcd-server), python3, curl, .NET SDK.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
connections=${CONNECTIONS:-100000}
subscriptions=${SUBSCRIPTIONS:-10}
gateways=${GATEWAYS:-6}
silo_count=${SILOS:-3}
wildcards=${WILDCARDS:-1000}
backends=${BACKENDS:-10}
check=${CHECK:-1000}

source "$root/bench/lib.sh"
bench_prologue mqtt-fleet
echo "building the load tool, the silo and the gateway" >&2
for project in src/Orleans.Mqtt.Bench silo/Orleans.Mqtt.Silo gateway/Orleans.Mqtt.Gateway; do
  dotnet build "$root/$project" -c Release --nologo -v quiet >&2
done
tool=(dotnet "$root/src/Orleans.Mqtt.Bench/bin/Release/net10.0/Orleans.Mqtt.Bench.dll")

device_pid=""
kill_all() {
  # The cluster first (SIGKILL: see above), then the device run, which then closes its dead connections and reports.
  if [[ ${#cluster_pids[@]} -gt 0 ]]; then
    kill -KILL "${cluster_pids[@]}" 2>/dev/null || true
    wait "${cluster_pids[@]}" 2>/dev/null || true
  fi
  cluster_names=()
  cluster_pids=()
  cluster_http=()
  etcd_pid=""
  if [[ -n "$device_pid" ]]; then
    kill -INT "$device_pid" 2>/dev/null || true
    wait "$device_pid" 2>/dev/null || true
    device_pid=""
  fi
}
trap kill_all EXIT

run_dir=$out
echo "== starting etcd, $silo_count silos, $gateways gateways" >&2
start_etcd "$run_dir"
for i in $(seq 1 "$silo_count"); do
  start_silo "$run_dir" "silo$i"
done
hosts=""
for i in $(seq 1 "$gateways"); do
  start_gateway "$run_dir" "gateway$i"
  hosts+="${hosts:+,}127.0.0.1:$gateway_port"
done
snapshot base
started=$(date +%s)

echo "== $connections devices with $subscriptions subscriptions each" >&2
# A background job of a script starts with SIGINT ignored, and .NET keeps it so; the device run is ended by SIGINT
# (its summary and JSON are written then), so it gets the default disposition back before it starts.
python3 -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])' \
  "${tool[@]}" conn --host "$hosts" --connections "$connections" --session-expiry 3600 --subscriptions "$subscriptions" \
  --subscribe-batch "$subscriptions" --filter-pattern 'fleet/d/{c}/cmd/{i}' --connect-rate 0 --inflight 200 \
  --keepalive 900 --check "$check" --duration 1800 --json "$run_dir/devices.tool.json" > "$run_dir/devices.log" 2>&1 &
device_pid=$!
until grep -qE "^(every worker has connected|connected ).*holding" "$run_dir/devices.log" 2>/dev/null; do
  kill -0 "$device_pid" 2>/dev/null || { echo "the device run ended early; see $run_dir/devices.log" >&2; tail -20 "$run_dir/devices.log" >&2; exit 1; }
  sleep 1
done
connected_after=$(( $(date +%s) - started ))
snapshot devices

echo "== back end: $backends clients with $wildcards wildcard filters" >&2
per_backend=$(( wildcards / backends ))
"${tool[@]}" conn --host "$hosts" --connections "$backends" --session-expiry 3600 --subscriptions "$per_backend" \
  --subscribe-batch "$per_backend" --filter-pattern 'fleet/t/{n}/+/telemetry' --connect-rate 0 --check "$check" \
  --duration 1 --json "$run_dir/backend.tool.json" > "$run_dir/backend.log" 2>&1 || true
snapshot fleet

kill_all
python3 - "$run_dir" "$connections" "$subscriptions" "$wildcards" "$connected_after" <<'PY'
import json, os, sys

out = sys.argv[1]
connections, subscriptions, wildcards, connected_after = map(int, sys.argv[2:])


def load(name):
    path = os.path.join(out, name + ".json")
    return json.load(open(path)) if os.path.exists(path) else {}


base, fleet = load("base"), load("fleet")
dev, back = load("devices.tool"), load("backend.tool")
names = [k for k, v in fleet.items() if isinstance(v, dict) and "rss" in v]
silos = sorted(n for n in names if n.startswith("silo"))
gateways = sorted(n for n in names if n.startswith("gateway"))
dc, bc = dev.get("connect") or {}, back.get("connect") or {}
held = dc.get("connected", 0) + bc.get("connected", 0)


def rss(snap, ns):
    return sum(snap[n]["rss"] for n in ns if n in snap and "rss" in snap[n])


def mib(b):
    return f"{b / 1048576:,.0f} MiB"


rows = [
    ("device connections connected / failed", f"{dc.get('connected', 0):,} / {dc.get('failed', 0):,}"),
    ("back-end connections connected / failed", f"{bc.get('connected', 0):,} / {bc.get('failed', 0):,}"),
    ("devices: connect + SUBSCRIBE rate (whole run)", f"{dc.get('achievedRate', 0):,.0f}/s over {dc.get('connectSeconds', 0):,.0f} s"),
    ("devices: CONNACK p50 / p99 ms", f"{(dc.get('connAckMs') or {}).get('p50', 0):.0f} / {(dc.get('connAckMs') or {}).get('p99', 0):.0f}"),
    ("routes per silo (mqtt_subscriptions)", " / ".join(f"{fleet.get(s, {}).get('subscriptions', 0):,.0f}" for s in silos)),
    ("of them exact (mqtt_subscriptions_exact) / wildcard", " / ".join(f"{fleet.get(s, {}).get('exact_subscriptions', 0):,.0f} + {fleet.get(s, {}).get('subscriptions', 0) - fleet.get(s, {}).get('exact_subscriptions', 0):,.0f}" for s in silos)),
    ("copies of each exact route (exact routes held by all silos / subscribed)", f"{sum(fleet.get(s, {}).get('exact_subscriptions', 0) for s in silos) / max(connections * subscriptions, 1):.2f}"),
    ("sessions per silo's replica (mqtt_sessions)", " / ".join(f"{fleet.get(s, {}).get('sessions', 0):,.0f}" for s in silos)),
    ("route check, exact filters: published / delivered / missed", f"{dc.get('checked', 0):,} / {dc.get('checkDelivered', 0):,} / {dc.get('checkMissed', 0):,}"),
    ("route check, wildcard filters: published / delivered / missed", f"{bc.get('checked', 0):,} / {bc.get('checkDelivered', 0):,} / {bc.get('checkMissed', 0):,}"),
    ("RSS of all broker processes: before / with the fleet", f"{mib(rss(base, names))} / {mib(rss(fleet, names))}"),
    ("bytes per connection over all broker processes", f"{(rss(fleet, names) - rss(base, names)) / max(held, 1):,.0f}"),
    ("gateways: bytes per connection (sum of gateways)", f"{(rss(fleet, gateways) - rss(base, gateways)) / max(held, 1):,.0f}"),
]
for s in silos:
    grow = fleet[s]["rss"] - base[s]["rss"]
    rows.append((f"{s}: RSS before / with the fleet; growth per connection", f"{mib(base[s]['rss'])} / {mib(fleet[s]['rss'])}; {grow / max(held, 1):,.0f} B"))
    rows.append((f"{s}: managed heap after the last GC, before / with the fleet", f"{mib(base[s].get('gc_heap_bytes', 0))} / {mib(fleet[s].get('gc_heap_bytes', 0))}"))
if "etcd" in fleet:
    e, b = fleet["etcd"], base.get("etcd", {})
    rows.append(("etcd: RSS growth; DB size growth; keys", f"{mib(e['rss'] - b.get('rss', 0))}; {mib(e.get('db_bytes', 0) - b.get('db_bytes', 0))}; {e.get('keys', 0):,.0f}"))
    rows.append(("etcd: puts per connection", f"{(e.get('puts', 0) - b.get('puts', 0)) / max(held, 1):.2f}"))
devices = load("devices")
if devices and base:
    cpu = sum(devices[n]["cpu"] - base[n]["cpu"] for n in names if n in devices and n in base and "cpu" in devices[n])
    rows.append(("CPU per device (connect + one SUBSCRIBE of its filters), all broker processes", f"{cpu * 1000 / max(dc.get('connected', 1), 1):.2f} ms"))
    writes = sum(devices[n].get("replica_writes", 0) - base[n].get("replica_writes", 0) for n in silos if n in devices and n in base)
    rows.append(("replica writes per device (connect + SUBSCRIBE; mqtt.replica.writes over the silos)", f"{writes / max(dc.get('connected', 1), 1):.2f}"))
    rows.append(("loopback bytes per device (every hop)", f"{(devices.get('loopback_bytes', 0) - base.get('loopback_bytes', 0)) / max(dc.get('connected', 1), 1):,.0f}"))
rows.append(("seconds from the start of the device run to every device connected", f"{connected_after:,}"))
settings = os.environ.get("EXTRA_SILO_ARGS", "").strip() or "default settings"
print(f"\n| {connections:,} devices x {subscriptions} exact filters, {wildcards:,} wildcard filters ({settings}) | measured |\n|---|---:|")
for label, value in rows:
    print(f"| {label} | {value} |")
ok = dc.get("checkMissed", 1) == 0 and bc.get("checkMissed", 1) == 0 and dc.get("checked", 0) > 0 and bc.get("checked", 0) > 0
print("\nroute check: " + ("every sampled delivery arrived" if ok else "NOT every sampled delivery arrived"))
print(f"results and logs: {out}")
sys.exit(0 if ok else 1)
PY
