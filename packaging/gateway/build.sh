#!/usr/bin/env bash
# Build the gateway Collector from manifest.yaml with the OpenTelemetry Collector builder, from the
# Go module proxy. The binary is cached under $HOME/.cache/edgecollect/gateway/<manifest hash>/, so CI
# (tests/setup.sh) builds it once and later runs reuse it. Prints the binary's path.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
builder_version=v0.148.0
hash=$(cat "$here/manifest.yaml" "$0" | sha256sum | cut -c1-16)
out="${HOME}/.cache/edgecollect/gateway/${hash}"
binary="$out/edgecollect-gateway"
if [ -x "$binary" ]; then echo "$binary"; exit 0; fi
mkdir -p "$out"
export GOBIN="${HOME}/.cache/edgecollect/gateway/builder-${builder_version}"
if [ ! -x "$GOBIN/builder" ]; then
  nice -n 10 go install "go.opentelemetry.io/collector/cmd/builder@${builder_version}" >&2
fi
work=$(mktemp -d "$out/src.XXXXXX")
trap 'rm -rf "$work"' EXIT
sed "s#output_path: ./build#output_path: $work#" "$here/manifest.yaml" > "$work/manifest.yaml"
nice -n 10 "$GOBIN/builder" --config "$work/manifest.yaml" >&2
mv "$work/edgecollect-gateway" "$binary"
echo "$binary"
