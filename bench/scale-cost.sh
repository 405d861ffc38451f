#!/usr/bin/env bash
# What one connect, one subscribe, one message and one retained message cost, and how that grows with the number of
# silos: for each silo count a fresh cluster (etcd, SILOS silos, GATEWAYS gateways on loopback) and the same fixed
# workload, every process sampled from /proc (CPU seconds, RSS) and its /metrics (route replica counts, managed heap;
# etcd's database size, puts and transactions) between the stages. mosquitto (persistence off) takes the connect and
# message stages as the reference.
#
#   bench/scale-cost.sh      # SILOS="1 2 3 4" GATEWAYS=2 CONNECTIONS=5000 SUBSCRIPTIONS=4 RATE=500 DURATION=10
#                            # RETAINED=5000 TRIALS=300 MOSQUITTO=1 EXTRA_SILO_ARGS=""
#   SILOS="1 2" bench/scale-cost.sh; SILOS="3 4" MOSQUITTO=0 bench/scale-cost.sh     # the same in two stages
#   EXTRA_SILO_ARGS="--Mqtt:Routes:Sharding=Topic" bench/scale-cost.sh              # extra broker settings
#   STAGES="messages" RATE=4000 bench/scale-cost.sh                                   # only some stages
#   STAGES="connect reconnect" SILOS="3 4" bench/scale-cost.sh                         # a persistent session's reconnect
#   CONNECT_RATE=300 STAGES="connect" SILOS="1 4" bench/scale-cost.sh                 # connects paced, cores not saturated
#
# After a warm-up (1,000 clean-session connects with a subscription, 1,000 persistent connects whose sessions expire
# 1 s after, 2 s of the message load), the stages, each on a
# fresh run id (new client ids):
#   connect    conn --connections C --session-expiry 3600 --connect-rate CONNECT_RATE (0, as fast as 100 in flight
#              allow, by default; persistent sessions, no subscription),
#              sampled while the connections are held
#   subscribe  the same with --subscriptions S (one filter per SUBSCRIBE): its cost minus the connect stage's is what
#              the C x S subscriptions cost
#   messages   pairs --pairs 20 --qos 1 --rate RATE --duration DURATION (half the pairs' publishers on each gateway)
#   retained   RETAINED retained QoS 1 messages of 100 bytes on distinct topics (bench/publish-retained.py)
#   subroute   subroute --host <gateways> --trials TRIALS: SUBSCRIBE->SUBACK and SUBACK->delivered
#   reconnect  (only when named in STAGES, after the others) the connect stage's C clients again, same client ids:
#              persistent sessions that exist, so each CONNECT changes only the session's presence
# (before them, 5 idle seconds: the idle CPU of each process is taken out of the stages' figures)
# and prints one table per silo count: per-unit costs summed over the processes and per silo, and the routes each silo
# holds (mqtt_subscriptions), so a sharded build can be compared with the same command.
# Needs etcd (apt-get install -y etcd-server), mosquitto, python3, curl, .NET SDK.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
silo_counts=${SILOS:-1 2 3 4}
gateways=${GATEWAYS:-2}
connections=${CONNECTIONS:-5000}
subscriptions=${SUBSCRIPTIONS:-4}
rate=${RATE:-500}
duration=${DURATION:-10}
retained=${RETAINED:-5000}
trials=${TRIALS:-300}
stages=" ${STAGES:-connect subscribe messages retained subroute} "
has() { [[ $stages == *" $1 "* ]]; }

source "$root/bench/lib.sh"
bench_prologue mqtt-scale
echo "building the load tool, the silo and the gateway" >&2
for project in src/Orleans.Mqtt.Bench silo/Orleans.Mqtt.Silo gateway/Orleans.Mqtt.Gateway; do
  dotnet build "$root/$project" -c Release --nologo -v quiet >&2
done
tool=(dotnet "$root/src/Orleans.Mqtt.Bench/bin/Release/net10.0/Orleans.Mqtt.Bench.dll")
trap stop_cluster EXIT

# ORLEANS_COUNTERS=1: dotnet-counters (Microsoft.Orleans meter) on every silo during the connect stage, summed per
# connect by bench/orleans-counters.py (messages between silos, forwarded calls, grain directory calls). Its own CPU
# shows in the figures: compare such runs with each other, not with runs without it. COUNTER_PROVIDERS names other
# providers for it (e.g. "Microsoft.Orleans,System.Runtime"). PROC_THREADS=1 with it also samples every process's CPU
# per thread and its context switches each second (bench/proc-threads.py), and bench/silo-rates.py prints what each
# process did per second while the connects were made.
counter_pids=()
dotnet_counters=$(command -v dotnet-counters || echo "$HOME/.dotnet/tools/dotnet-counters")
start_orleans_counters() { # stage
  counter_pids=()
  [[ ${ORLEANS_COUNTERS:-0} == 1 ]] || return 0
  local i
  for i in "${!cluster_names[@]}"; do
    [[ ${cluster_names[$i]} == silo* ]] || continue
    "$dotnet_counters" collect -p "${cluster_pids[$i]}" --counters "${COUNTER_PROVIDERS:-Microsoft.Orleans}" --format csv --refresh-interval 1 \
      -o "$run_dir/${cluster_names[$i]}.$1.counters.csv" > /dev/null 2>&1 &
    counter_pids+=("$!")
  done
  if [[ ${PROC_THREADS:-0} == 1 ]]; then
    # shellcheck disable=SC2046
    python3 "$root/bench/proc-threads.py" "$run_dir/$1.threads.jsonl" $(cluster_spec) &
    counter_pids+=("$!")
  fi
  sleep 2
}
stop_orleans_counters() { # stage units
  [[ ${#counter_pids[@]} -gt 0 ]] || return 0
  sleep 2
  # dotnet-counters ignores SIGINT without a terminal; SIGTERM ends it with its file written.
  kill -TERM "${counter_pids[@]}" 2>/dev/null || true
  wait "${counter_pids[@]}" 2>/dev/null || true
  counter_pids=()
  python3 "$root/bench/orleans-counters.py" "$2" "$run_dir"/silo*."$1".counters.csv | tee "$run_dir/$1.orleans-counters.txt" >&2 || true
  if [[ ${PROC_THREADS:-0} == 1 ]]; then
    python3 "$root/bench/silo-rates.py" "$run_dir" | tee "$run_dir/$1.rates.txt" >&2 || true
  fi
}

conn_args=(conn --connections "$connections" --connect-rate "${CONNECT_RATE:-0}" --inflight 100 --session-expiry 3600 --duration 3)
pairs_args=(pairs --pairs 20 --qos 1 --rate "$rate" --duration "$duration" --warmup 1 --size 100)

if [[ ${MOSQUITTO:-1} == 1 ]]; then
  run_dir="$out/mosquitto"
  mkdir -p "$run_dir"
  port=$(free_port)
  start_mosquitto "$port" "$run_dir/mosquitto"
  cluster_names=(mosquitto)
  cluster_pids=("$mosquitto_pid")
  cluster_http=("")
  echo "== mosquitto: connect, messages" >&2
  snapshot idle
  sleep 5
  snapshot base
  if has connect; then
    tool_with_held_snapshot connected "$run_dir/connect.log" "${conn_args[@]}" --host "127.0.0.1:$port" --json "$run_dir/connect.tool.json"
  fi
  if has messages; then
    snapshot before-messages
    "${tool[@]}" "${pairs_args[@]}" --host "127.0.0.1:$port" --json "$run_dir/messages.tool.json" > "$run_dir/messages.log" 2>&1 || true
    snapshot after-messages
  fi
  stop_cluster
fi

for silos in $silo_counts; do
  run_dir="$out/silos$silos"
  mkdir -p "$run_dir"
  echo "== $silos silo(s), $gateways gateway(s): starting" >&2
  start_etcd "$run_dir"
  for i in $(seq 1 "$silos"); do
    start_silo "$run_dir" "silo$i"
  done
  hosts=""
  for i in $(seq 1 "$gateways"); do
    start_gateway "$run_dir" "gateway$i"
    hosts+="${hosts:+,}127.0.0.1:$gateway_port"
  done
  # A warm-up (clean sessions, gone when they disconnect) so that first-use costs (JIT, pools) stay out of the
  # figures; then five idle seconds give each process's CPU use at rest, which the stages' figures leave out.
  echo "== $silos silo(s): warm-up" >&2
  "${tool[@]}" conn --connections 1000 --connect-rate 0 --subscriptions 1 --duration 1 --host "$hosts" > "$run_dir/warmup.log" 2>&1 || true
  # Persistent sessions take code that clean ones do not (grain storage, session copies, ownership batches): without
  # this, every silo compiled it during the connect stage (about 10 % of that stage's CPU at 4 silos, Dec 7). An expiry
  # of 1 s ends these sessions (Mqtt:SessionSweepInterval 1 s) before the idle seconds.
  "${tool[@]}" conn --connections 1000 --connect-rate 0 --inflight 100 --session-expiry 1 --duration 1 --run-id "warm$silos" \
    --host "$hosts" > "$run_dir/warmup-persistent.log" 2>&1 || true
  "${tool[@]}" "${pairs_args[@]}" --duration 2 --host "$hosts" > "$run_dir/warmup-pairs.log" 2>&1 || true
  sleep 3
  snapshot idle
  sleep 5
  snapshot base
  if has connect; then
    echo "== $silos silo(s): connect" >&2
    start_orleans_counters connect
    tool_with_held_snapshot connected "$run_dir/connect.log" "${conn_args[@]}" --run-id "scale$silos-connect" --host "$hosts" \
      --json "$run_dir/connect.tool.json"
    snapshot after-connect
    stop_orleans_counters connect "$connections"
  fi
  if has subscribe; then
    echo "== $silos silo(s): subscribe" >&2
    tool_with_held_snapshot subscribed "$run_dir/subscribe.log" "${conn_args[@]}" --subscriptions "$subscriptions" --host "$hosts" \
      --json "$run_dir/subscribe.tool.json"
  fi
  if has messages; then
    echo "== $silos silo(s): messages" >&2
    snapshot before-messages
    "${tool[@]}" "${pairs_args[@]}" --host "$hosts" --json "$run_dir/messages.tool.json" > "$run_dir/messages.log" 2>&1 || true
    snapshot after-messages
  fi
  if has retained; then
    echo "== $silos silo(s): retained" >&2
    snapshot before-retained
    python3 "$root/bench/publish-retained.py" "${hosts%%,*}" "scale/retained" "$retained" 100 > "$run_dir/retained.log" 2>&1 || true
    snapshot after-retained
  fi
  if has subroute; then
    echo "== $silos silo(s): subroute" >&2
    "${tool[@]}" subroute --host "$hosts" --trials "$trials" --concurrency 8 --json "$run_dir/subroute.tool.json" > "$run_dir/subroute.log" 2>&1 || true
  fi
  if has reconnect && has connect; then
    echo "== $silos silo(s): reconnect" >&2
    snapshot before-reconnect
    tool_with_held_snapshot reconnected "$run_dir/reconnect.log" "${conn_args[@]}" --run-id "scale$silos-connect" --host "$hosts" \
      --json "$run_dir/reconnect.tool.json"
  fi
  stop_cluster
done

python3 "$root/bench/scale-report.py" "$out" "$connections" "$subscriptions" "$retained" $silo_counts
echo "results and logs: $out"
