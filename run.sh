#!/usr/bin/env bash
# Builds (Release) and starts the standalone broker: silo and gateway in one process, data under ./data.
# MQTT on 127.0.0.1:1883, WebSocket on :8083/mqtt, HTTP (/health/live, /health/ready, /metrics) on :8080.
# Settings come from appsettings.json, environment variables (Mqtt__Tcp__Port=28830 ./run.sh) or arguments
# (./run.sh --Mqtt:Tcp:Port=28830). "./run.sh users add FILE USER" adds a user to a users file;
# "./run.sh api-key add NAME [--file PATH]" adds an admin API key (printed once; the file, ./api-keys by default,
# keeps only its hash: point Http:ApiKeysFile at it).
# "./run.sh cluster [SILOS] [GATEWAYS]" starts a local cluster instead: etcd, 3 silos and 2 gateways on loopback.
set -euo pipefail
cd "$(dirname "$0")"
if [ "${1:-}" = "cluster" ]; then
  shift
  exec scripts/cluster.sh "$@"
fi
dotnet build src/Orleans.Mqtt.Standalone -c Release --nologo -v q >&2
exec dotnet src/Orleans.Mqtt.Standalone/bin/Release/net10.0/Orleans.Mqtt.Standalone.dll "$@"
