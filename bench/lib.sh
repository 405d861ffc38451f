# Shell functions the benchmark scripts share; sourced, not run.

# What every comparison script does first: sets out to $OUT or a new temporary directory named after prefix (for the
# JSON results and the brokers' logs), raises the open-file limit to the hard limit (brokers and the tool inherit it)
# and finds mosquitto.
bench_prologue() { # prefix
  out=${OUT:-$(mktemp -d -t "$1.XXXXXX")}
  mkdir -p "$out"
  ulimit -n "$(ulimit -Hn)"
  find_mosquitto
}

# Sets mosquitto_bin to Debian's mosquitto broker, or exits naming the package.
find_mosquitto() {
  mosquitto_bin=$(command -v mosquitto || true)
  if [[ -z "$mosquitto_bin" && -x /usr/sbin/mosquitto ]]; then
    mosquitto_bin=/usr/sbin/mosquitto
  fi
  if [[ -z "$mosquitto_bin" ]]; then
    echo "mosquitto is not installed (apt-get install -y mosquitto)" >&2
    exit 1
  fi
}

# A free loopback port below the kernel's ephemeral range (where bind(0) ports lie, and where an outgoing
# connection could take the port as its source port before the broker binds it); falls back to bind(0).
free_port() {
  python3 - <<'PY'
import random, socket
try:
    low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except (OSError, ValueError, IndexError):
    low = 32768
for port in random.sample(range(10000, low), min(200, max(low - 10000, 0))):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    break
else:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
PY
}

wait_for_port() { # port
  local port=$1
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      return 0
    fi
    sleep 0.05
  done
  echo "nothing listens on 127.0.0.1:$port" >&2
  return 1
}

# Starts the reference broker on 127.0.0.1:port with persistence off, writing its config and log next to
# prefix (prefix.conf, prefix.log); sets mosquitto_pid and returns once it listens.
start_mosquitto() { # port prefix
  local port=$1 prefix=$2
  cat > "$prefix.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 10000
# Our gateway turns Nagle's algorithm off (Kestrel's default); so does the reference, or it would wait on it.
set_tcp_nodelay true
CONF
  "$mosquitto_bin" -c "$prefix.conf" > "$prefix.log" 2>&1 &
  mosquitto_pid=$!
  wait_for_port "$port"
}

# Builds the load tool (of this checkout) and the standalone broker of checkout (default: this one); sets tool (the
# load tool's command line, an array) and standalone (the broker's dll).
build_tool_and_standalone() { # [checkout]
  local checkout=${1:-$root}
  echo "building the load tool and the standalone broker" >&2
  dotnet build "$root/src/Orleans.Mqtt.Bench" -c Release --nologo -v quiet >&2
  dotnet build "$checkout/src/Orleans.Mqtt.Standalone" -c Release --nologo -v quiet >&2
  tool=(dotnet "$root/src/Orleans.Mqtt.Bench/bin/Release/net10.0/Orleans.Mqtt.Bench.dll")
  standalone="$checkout/src/Orleans.Mqtt.Standalone/bin/Release/net10.0/Orleans.Mqtt.Standalone.dll"
}

# Starts $standalone (build_tool_and_standalone) in the background on the given MQTT and HTTP ports with the given
# data directory, its output to log; sets broker_pid and returns once it is ready, or 1 after a minute without.
run_standalone() { # mqtt-port http-port data-dir log
  Mqtt__Tcp__Port=$1 Http__Port=$2 Mqtt__WebSocket__Port=0 Storage__DataDirectory="$3" \
    Orleans__SiloPort=$(free_port) Orleans__GatewayPort=$(free_port) \
    dotnet "$standalone" > "$4" 2>&1 &
  broker_pid=$!
  for _ in $(seq 1 120); do
    curl -sf "http://127.0.0.1:$2/health/ready" >/dev/null && return 0
    sleep 0.5
  done
  return 1
}

# Builds the standalone broker and starts it on free loopback ports with an empty data directory (a new temporary
# directory named after prefix), then waits until it is ready. Sets work, mqtt, http and broker (its pid); settings
# for the broker pass through the environment. stop_standalone ends it and removes the directory.
start_standalone() { # prefix
  dotnet build "$root/src/Orleans.Mqtt.Standalone" -c Release --nologo -v quiet >&2
  work=$(mktemp -d -t "$1.XXXXXX")
  mqtt=$(free_port); http=$(free_port)
  (
    cd "$work"
    Mqtt__Tcp__Port=$mqtt Mqtt__WebSocket__Port=0 Http__Port=$http \
    Orleans__SiloPort=$(free_port) Orleans__GatewayPort=$(free_port) \
      exec dotnet "$root/src/Orleans.Mqtt.Standalone/bin/Release/net10.0/Orleans.Mqtt.Standalone.dll" >"$work/broker.log" 2>&1
  ) &
  broker=$!
  for _ in $(seq 1 120); do
    curl -sf "http://127.0.0.1:$http/health/ready" >/dev/null && return 0
    kill -0 "$broker" 2>/dev/null || break
    sleep 0.5
  done
  echo "broker did not become ready" >&2
  cat "$work/broker.log" >&2
  stop_standalone
  exit 1
}

stop_standalone() {
  kill "$broker" 2>/dev/null || true
  wait "$broker" 2>/dev/null || true
  rm -rf "$work"
}

# A cluster on loopback for the scale scripts: start_etcd DIR, then start_silo DIR NAME and start_gateway DIR NAME as
# often as needed (each returns once the member is ready), stop_cluster at the end (members first, etcd last: a silo
# stopping without etcd waits on its membership update). Each member's pid and HTTP port are kept in cluster_names,
# cluster_pids and cluster_http ("etcd" has its client port there); cluster_spec prints them as snapshot.py wants
# them. EXTRA_SILO_ARGS / EXTRA_GATEWAY_ARGS (e.g. --Mqtt:Routes:Sharding=Topic) go on the command lines.
cluster_names=()
cluster_pids=()
cluster_http=()
etcd_pid=""

start_etcd() { # dir
  etcd_bin=$(command -v etcd || echo /usr/bin/etcd)
  [[ -x "$etcd_bin" ]] || { echo "etcd is not installed (apt-get install -y etcd-server)" >&2; exit 1; }
  local client_port peer_port
  client_port=$(free_port)
  peer_port=$(free_port)
  "$etcd_bin" --name bench --data-dir "$1/etcd" --quota-backend-bytes $((8 * 1024 * 1024 * 1024)) \
    --listen-client-urls "http://127.0.0.1:$client_port" --advertise-client-urls "http://127.0.0.1:$client_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "bench=http://127.0.0.1:$peer_port" > "$1/etcd.log" 2>&1 &
  etcd_pid=$!
  wait_for_port "$client_port"
  cluster_names+=(etcd)
  cluster_pids+=("$etcd_pid")
  cluster_http+=("$client_port")
  cluster_env=(Clustering__Provider=Etcd Clustering__Etcd__ConnectionString="http://127.0.0.1:$client_port"
    Orleans__ClusterId=scale)
}

wait_http_ready() { # port pid log
  for _ in $(seq 1 360); do
    curl -sf "http://127.0.0.1:$1/health/ready" > /dev/null && return 0
    kill -0 "$2" 2>/dev/null || break
    sleep 0.5
  done
  echo "not ready; see $3" >&2
  exit 1
}

start_silo() { # dir name
  local http
  http=$(free_port)
  mkdir -p "$1/$2"
  # shellcheck disable=SC2086 # EXTRA_SILO_ARGS is a list of arguments
  (cd "$1/$2" && exec env "${cluster_env[@]}" Orleans__SiloPort="$(free_port)" Orleans__GatewayPort="$(free_port)" \
    Http__Port="$http" Storage__DataDirectory="$1/$2/data" \
    dotnet "$root/silo/Orleans.Mqtt.Silo/bin/Release/net10.0/Orleans.Mqtt.Silo.dll" ${EXTRA_SILO_ARGS:-} > "$1/$2.log" 2>&1) &
  local pid=$!
  cluster_names+=("$2")
  cluster_pids+=("$pid")
  cluster_http+=("$http")
  wait_http_ready "$http" "$pid" "$1/$2.log"
}

start_gateway() { # dir name; sets gateway_port
  local http
  http=$(free_port)
  gateway_port=$(free_port)
  # shellcheck disable=SC2086
  (cd "$1" && exec env "${cluster_env[@]}" Mqtt__Tcp__Port="$gateway_port" Mqtt__WebSocket__Port=0 Http__Port="$http" \
    dotnet "$root/gateway/Orleans.Mqtt.Gateway/bin/Release/net10.0/Orleans.Mqtt.Gateway.dll" ${EXTRA_GATEWAY_ARGS:-} > "$1/$2.log" 2>&1) &
  local pid=$!
  cluster_names+=("$2")
  cluster_pids+=("$pid")
  cluster_http+=("$http")
  wait_http_ready "$http" "$pid" "$1/$2.log"
}

# NAME:PID:METRICS_URL for every member (NAME:PID for one without an HTTP port), as snapshot.py takes them.
cluster_spec() {
  local i
  for i in "${!cluster_names[@]}"; do
    printf '%s:%s%s ' "${cluster_names[$i]}" "${cluster_pids[$i]}" "${cluster_http[$i]:+:http://127.0.0.1:${cluster_http[$i]}/metrics}"
  done
}

# The members' pids, comma-separated (for the load tool's --broker-pid).
cluster_pid_list() {
  local IFS=,
  echo "${cluster_pids[*]}"
}

stop_cluster() {
  local members=()
  local i
  for i in "${!cluster_names[@]}"; do
    [[ ${cluster_names[$i]} == etcd ]] || members+=("${cluster_pids[$i]}")
  done
  if [[ ${#members[@]} -gt 0 ]]; then
    kill -TERM "${members[@]}" 2>/dev/null || true
    wait "${members[@]}" 2>/dev/null || true
  fi
  if [[ -n "$etcd_pid" ]]; then
    kill -TERM "$etcd_pid" 2>/dev/null || true
    wait "$etcd_pid" 2>/dev/null || true
  fi
  cluster_names=()
  cluster_pids=()
  cluster_http=()
  etcd_pid=""
}

# Runs the load tool (arguments after the log file) in the background and takes snapshot LABEL of the cluster once the
# tool says it holds its connections (a second later, so the last acknowledgements' after-work is in), then waits for
# the tool. The snapshot goes to $run_dir/LABEL.json.
tool_with_held_snapshot() { # label log tool-args...
  local label=$1 log=$2
  shift 2
  "${tool[@]}" "$@" > "$log" 2>&1 &
  local pid=$!
  until grep -qE "^(every worker has connected|connected ).*holding" "$log" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  sleep 1
  # shellcheck disable=SC2046
  python3 "$root/bench/snapshot.py" "$run_dir/$label.json" $(cluster_spec)
  wait "$pid" || echo "load tool exit code $? (see $log)" >&2
}

snapshot() { # label
  # shellcheck disable=SC2046
  python3 "$root/bench/snapshot.py" "$run_dir/$1.json" $(cluster_spec)
}
