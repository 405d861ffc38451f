#!/usr/bin/env bash
# The cost of tracing: bench/standalone-vs-mosquitto.sh twice, first with tracing off (the default), then with
# Tracing:Enabled and Tracing:SamplingRatio 1 (every publish traced: publish, route, deliver, send and, at QoS 1,
# settle spans) exported to a JSON-lines file (Tracing:FilePath), each run with its own mosquitto reference.
# Settings for compare.sh (PAIRS, SIZE, DURATION, ...) pass through the environment; TRACING_FIRST=1 runs the traced
# one first.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
spans=$(mktemp -t orleans-mqtt-spans.XXXXXX)
trap 'rm -f "$spans"' EXIT

off() { echo "== tracing off" >&2; "$root/bench/standalone-vs-mosquitto.sh"; }
on() {
  echo "== tracing on, every operation sampled, spans to $spans" >&2
  : > "$spans"
  Tracing__Enabled=true Tracing__SamplingRatio=1 Tracing__FilePath="$spans" "$root/bench/standalone-vs-mosquitto.sh"
  echo "spans written: $(wc -l < "$spans")" >&2
}
if [[ "${TRACING_FIRST:-0}" == 1 ]]; then
  on
  off
else
  off
  on
fi
