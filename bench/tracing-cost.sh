#!/usr/bin/env bash
# The cost of tracing: bench/standalone-vs-mosquitto.sh once per named configuration, in the order given, each run
# with its own mosquitto reference:
#   off     tracing off (the default)
#   ratio   Tracing:Enabled with the default Tracing:SamplingRatio (0.01), spans to a JSON-lines file
#   all     Tracing:Enabled with Tracing:SamplingRatio 1 (every publish traced: publish, route, deliver, send and, at
#           QoS 1, settle spans), spans to a JSON-lines file (Tracing:FilePath)
#
#   bench/tracing-cost.sh            # off, then all
#   bench/tracing-cost.sh all off    # the other order
#
# Settings for compare.sh (PAIRS, SIZE, DURATION, ...) pass through the environment.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
spans=$(mktemp -t orleans-mqtt-spans.XXXXXX)
trap 'rm -f "$spans"' EXIT

run() { # name [environment assignments...]
  local name=$1
  shift
  echo "== tracing $name" >&2
  : > "$spans"
  env "$@" "$root/bench/standalone-vs-mosquitto.sh"
  [[ "$name" == off ]] || echo "spans written ($name): $(wc -l < "$spans")" >&2
}

for config in "${@:-off all}"; do
  for c in $config; do
    case "$c" in
      off) run off ;;
      ratio) run ratio Tracing__Enabled=true Tracing__FilePath="$spans" ;;
      all) run all Tracing__Enabled=true Tracing__SamplingRatio=1 Tracing__FilePath="$spans" ;;
      *) echo "unknown configuration '$c' (off, ratio, all)" >&2; exit 2 ;;
    esac
  done
done
