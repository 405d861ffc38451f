#!/usr/bin/env bash
# Builds and starts the standalone broker on free loopback ports with an empty data directory, runs
# bench/compare.sh against it and Debian's mosquitto in the same run, then stops the broker.
# Settings for compare.sh (PAIRS, SIZE, DURATION, ...) pass through the environment.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/bench/lib.sh"

start_standalone orleans-mqtt-bench
trap stop_standalone EXIT
"$root/bench/compare.sh" "127.0.0.1:$mqtt"
