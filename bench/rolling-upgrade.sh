#!/usr/bin/env bash
# A rolling upgrade between two real builds: builds the last release (OLD, default c7080e6) from a temporary git
# worktree, starts a cluster of it on free loopback ports (etcd, 3 silos, 2 gateways), puts persistent QoS 1/2
# subscribers (connected, slow, offline), publishers on both gateways, a wildcard subscriber and retained messages on
# it, then replaces each silo (SIGTERM, replacement on the same data directory ready, next) and each gateway (new one
# ready, old one SIGTERM) with this checkout's build, and checks what a user would notice. Then the same the other way
# round (rollback: this checkout → OLD) unless ROLLBACK=0.
#
#   bench/rolling-upgrade.sh          OLD=<commit> ROLLBACK=0 OUT=dir (keeps reports and members' logs)
#
# The run is RollingUpgradeClusterTests of the end-to-end tests (skipped there unless UPGRADE_OLD_BUILD is set); it
# fails when an acknowledged message is missing (offline sessions' queues included), a QoS 2 message arrives twice,
# per-publisher order breaks, a session is lost, the wildcard subscription misses a message, a retained message is
# missing, a client id has other than one owner record, or a connected client waits 5 s or more after a replacement
# ("never received": none of the messages acknowledged for it after the replacement arrived; a slow subscriber whose
# next round was not sent before the end is reported as sent nothing and not counted).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
old=${OLD:-c7080e6}
old_label=$(git rev-parse --short "$old") || { echo "no commit $old"; exit 1; }
out=${OUT:-$(mktemp -d -t rolling-upgrade.XXXXXX)}
mkdir -p "$out"
# The release's source and build live outside the checkout; the worktree is removed however the run ends.
tmp=$(mktemp -d -t rolling-upgrade-old.XXXXXX)
cleanup() {
  git -C "$root" worktree remove --force "$tmp/src" 2>/dev/null
  git -C "$root" worktree prune
  rm -rf "$tmp"
}
trap cleanup EXIT
git worktree add --detach -q "$tmp/src" "$old" || { echo "git worktree add failed"; exit 1; }
echo "building $old_label in $tmp/src"
for project in silo/Orleans.Mqtt.Silo gateway/Orleans.Mqtt.Gateway; do
  dotnet publish "$tmp/src/$project" -c Release --nologo -v q -o "$tmp/build/$(dirname "$project")" >"$out/build-$old_label.log" 2>&1 \
    || { echo "building $old_label failed (see $out/build-$old_label.log)"; exit 1; }
done
echo "building this checkout ($(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ', with uncommitted changes'))"
dotnet build Orleans.Mqtt.sln -c Release --nologo -v q >"$out/build.log" 2>&1 || { echo "build failed (see $out/build.log)"; exit 1; }

status=0
directions=(upgrade)
[[ ${ROLLBACK:-1} == 0 ]] || directions+=(rollback)
for direction in "${directions[@]}"; do
  mkdir -p "$out/$direction"
  UPGRADE_OLD_BUILD="$tmp/build" UPGRADE_OLD_LABEL="$old_label" UPGRADE_ROLLBACK=$([[ $direction == rollback ]] && echo 1 || echo 0) \
    UPGRADE_REPORT="$out/$direction/report.md" \
    dotnet test test/Orleans.Mqtt.EndToEnd.Tests -c Release --no-build --nologo \
    --filter "FullyQualifiedName~RollingUpgradeClusterTests" --logger "console;verbosity=detailed" >"$out/$direction/test.log" 2>&1
  result=$?
  [[ $result == 0 ]] || status=$result
  echo "== $direction: $([[ $result == 0 ]] && echo passed || echo FAILED)"
  if [[ -f "$out/$direction/report.md" ]]; then
    cat "$out/$direction/report.md"
  else
    tail -40 "$out/$direction/test.log"
  fi
  echo "log: $out/$direction/test.log"
done
exit $status
