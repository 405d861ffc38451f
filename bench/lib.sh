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
