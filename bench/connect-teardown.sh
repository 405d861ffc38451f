#!/usr/bin/env bash
# Where the standalone broker's CPU per connect goes, by taking the connect apart: the same storm as
# bench/connect-counts.sh (persistent connects with one subscription each, 100 in flight) against a build of this
# checkout with bench/connect-teardown.patch applied, which lets the environment switch parts of the connect off:
#
#   full          the broker as it is (the patch changes nothing with no switch set)
#   no-commit     TEARDOWN_NO_COMMIT=1: writes are not waited on for a group commit (no fdatasync)
#   no-save       TEARDOWN_NO_SAVE=1: the session saves and replicates nothing (no state, route or copy write)
#   no-save-owner no-save, and no ownership commit either (TEARDOWN_NO_OWNER=1; not in the default list)
#   no-grain      TEARDOWN_NO_GRAIN=1: the gateway answers CONNECT, SUBSCRIBE and the disconnect without a grain call
#
# and mosquitto (persistence off) with the same tool arguments, as a reference in the same run. The switched builds lose
# what they skip: they exist only in the temporary worktree this script makes, never in the product.
#
#   bench/connect-teardown.sh                  # ROUNDS=2 CONNECTIONS=8000 VARIANTS="full no-commit no-save no-grain"
#
# Needs what bench/connect-counts.sh needs (perf, python3, curl, the .NET SDK) and mosquitto.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
rounds=${ROUNDS:-2}
variants=${VARIANTS:-full no-commit no-save no-grain}
export CONNECTIONS=${CONNECTIONS:-8000}

source "$root/bench/lib.sh"
bench_prologue mqtt-connect-teardown

tree=$(mktemp -d -t mqtt-teardown-tree.XXXXXX)
rmdir "$tree"
mosquitto_pid=""
cleanup_all() {
  if [[ -n "$mosquitto_pid" ]]; then
    kill "$mosquitto_pid" 2>/dev/null || true
    wait "$mosquitto_pid" 2>/dev/null || true
  fi
  git -C "$root" worktree remove --force "$tree" 2>/dev/null || rm -rf "$tree"
}
trap cleanup_all EXIT

git -C "$root" worktree add --detach -q "$tree" HEAD
if ! git -C "$tree" apply "$root/bench/connect-teardown.patch"; then
  echo "bench/connect-teardown.patch no longer applies to $(git -C "$root" rev-parse --short HEAD): update it" >&2
  exit 1
fi

build_tool_and_standalone "$tree"   # the tool, and the switched broker that connect-counts.sh then finds built
echo "$(nproc) cores; $(date -u); build $(git -C "$root" rev-parse --short HEAD) with bench/connect-teardown.patch" >&2

for round in $(seq 1 "$rounds"); do
  for variant in $variants; do
    unset TEARDOWN_NO_COMMIT TEARDOWN_NO_SAVE TEARDOWN_NO_OWNER TEARDOWN_NO_GRAIN
    case "$variant" in
      full) ;;
      no-commit) export TEARDOWN_NO_COMMIT=1 ;;
      no-save) export TEARDOWN_NO_SAVE=1 ;;
      no-save-owner) export TEARDOWN_NO_SAVE=1 TEARDOWN_NO_OWNER=1 ;;
      no-grain) export TEARDOWN_NO_GRAIN=1 ;;
      *) echo "unknown variant '$variant' (full, no-commit, no-save, no-save-owner, no-grain)" >&2; exit 2 ;;
    esac
    line=$(BUILD="$tree" OUT="$out/$variant-$round" bash "$root/bench/connect-counts.sh" 2>/dev/null | grep '^run 1:' || true)
    echo "round $round, $variant: ${line#run 1: }"
  done

  port=$(free_port)
  start_mosquitto "$port" "$out/mosquitto-$round"
  "${tool[@]}" conn --port "$port" --connections "$CONNECTIONS" --connect-rate 0 --inflight 100 --session-expiry 300 \
    --subscriptions 1 --duration 3 --broker-pid "$mosquitto_pid" --json "$out/mosquitto-$round.json" > "$out/mosquitto-$round.log" 2>&1
  kill "$mosquitto_pid"
  wait "$mosquitto_pid" 2>/dev/null || true
  mosquitto_pid=""
  python3 - "$out/mosquitto-$round.json" "$round" <<'PY'
import json, sys
connect = json.load(open(sys.argv[1]))["connect"]
rate = connect["achievedRate"]
cpu = connect["brokerCpuMicrosPerConnect"]
print(f"round {sys.argv[2]}, mosquitto: {rate:,.0f} conn/s, broker {cpu:.0f} us CPU per connect")
PY
done
echo "results and logs: $out" >&2
