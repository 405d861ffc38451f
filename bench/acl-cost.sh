#!/usr/bin/env bash
# The cost of authorization: bench/standalone-vs-mosquitto.sh twice, first without an ACL file, then with one of
# 10,000 user rules and 1,000 pattern rules (bench/acl-file.sh), each run with its own mosquitto reference.
# Settings for compare.sh (PAIRS, SIZE, DURATION, ...) and for acl-file.sh (USERS, RULES_PER_USER, PATTERNS) pass
# through the environment; ACL_FIRST=1 runs the one with the file first.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
acl=$(mktemp -t orleans-mqtt-acl.XXXXXX)
trap 'rm -f "$acl"' EXIT
"$root/bench/acl-file.sh" > "$acl"
echo "ACL file: $(grep -c '^topic' "$acl") user rules, $(grep -c '^pattern' "$acl") patterns" >&2

without() { echo "== without an ACL file" >&2; "$root/bench/standalone-vs-mosquitto.sh"; }
with_acl() { echo "== with the ACL file" >&2; Mqtt__AclFile="$acl" "$root/bench/standalone-vs-mosquitto.sh"; }
# ACL_FIRST=1 swaps the order, to tell the file's cost from whatever favours the second run.
if [[ "${ACL_FIRST:-0}" == 1 ]]; then
  with_acl
  without
else
  without
  with_acl
fi
