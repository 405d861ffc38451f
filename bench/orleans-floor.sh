#!/usr/bin/env bash
# Orleans' own cost for the shape of a connect with one subscription (a new grain per client id, activated by its
# first call, and a second call), with none of the broker's code: the floor under the broker's CPU per connect, at
# 1, 2 and 4 silos. Runs the Benchmarks project's "floor" report (test/Orleans.Mqtt.Benchmarks/ActivationFloor.cs)
# three ways: the caller as an external Orleans client with each silo in a process of its own (the cluster's shape:
# gateway processes and silo processes); the same with every silo in the caller's process (Orleans' work without the
# hand-offs between processes); and one silo with the caller on the silo's own grain factory (the standalone broker).
# Each run also makes the same calls to sessions hosted many to a per-silo service, called on the gateway of the silo
# the client id's hash picks (FLOOR_HOST_ROUTE=silo addresses it by the silo's address, which the client forwards).
#
#   bench/orleans-floor.sh                     # SILOS=1,2,4 OPERATIONS=20000
#   VARIANTS="hash local" bench/orleans-floor.sh
#
# Settings (environment): SILOS (1,2,4); OPERATIONS (20000 new grains per measured pass); VARIANTS (hash: placement by
# the grain id's hash, as sessions are placed by their client's ranking; local: a new grain on the silo its first call
# reached; distributed: placement by hash with Orleans' distributed grain directory, experimental in Orleans 10).
# The processes run as the broker's hosts do: no tiered compilation, no thread pool spin.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
silos=${SILOS:-1,2,4}
operations=${OPERATIONS:-20000}
variants=${VARIANTS:-hash}

dotnet build "$root/test/Orleans.Mqtt.Benchmarks" -c Release -v quiet -nologo >/dev/null
dll="$root/test/Orleans.Mqtt.Benchmarks/bin/Release/net10.0/Orleans.Mqtt.Benchmarks.dll"
export DOTNET_TieredCompilation=0 DOTNET_ThreadPool_UnfairSemaphoreSpinLimit=0

run() { # placement directory args...
  local placement=$1 directory=$2
  shift 2
  FLOOR_PLACEMENT=$placement FLOOR_DIRECTORY=$directory dotnet "$dll" floor --operations "$operations" "$@" 2>&1 |
    grep -E '^(caller|\|)' || { echo "the floor run failed" >&2; exit 1; }
  echo
}

echo "== $(date -u '+%a %b %-d %Y %H:%M UTC'), $(nproc) cores, $(uname -r)"
for variant in $variants; do
  case "$variant" in
    hash) run hash default --silos "$silos" --processes ;;
    local) run local default --silos "$silos" --processes ;;
    distributed) run hash distributed --silos "$silos" --processes ;;
    *) echo "unknown variant '$variant' (hash, local, distributed)" >&2; exit 2 ;;
  esac
done
run hash default --silos "$silos"
run hash default --silos 1 --co-hosted
