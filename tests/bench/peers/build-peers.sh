#!/usr/bin/env bash
# Build the footprint benchmark's peers (on demand, never in CI): Telegraf with only the
# plugins the profiles use, an OpenTelemetry Collector with hostmetrics + OTLP exporter,
# and Debian's collectd-core. Binaries are cached under $HOME/.cache/edgecollect/peers;
# a second run only rebuilds what is missing. Each Go build takes minutes on 2 cores,
# so it runs under nice. Usage: bash tests/bench/peers/build-peers.sh [telegraf|otelcol|collectd]...
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${HOME}/.cache/edgecollect/peers"
TELEGRAF_VERSION="v1.37.2"
OTELCOL_VERSION="v0.160.0"   # hostmetricsreceiver's newest release the Go 1.26 toolchain builds
TELEGRAF_TAGS="custom,inputs.cpu,inputs.mem,inputs.disk,inputs.diskio,inputs.net,inputs.system,inputs.temp,inputs.mqtt_consumer,parsers.json,outputs.opentelemetry"
mkdir -p "$CACHE"
export GOFLAGS=-mod=mod

build_telegraf() {
    [ -x "$CACHE/telegraf" ] && { echo "telegraf: cached $CACHE/telegraf"; return; }
    local dir src
    dir="$(go mod download -json "github.com/influxdata/telegraf@${TELEGRAF_VERSION}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
    src="$CACHE/src/telegraf-${TELEGRAF_VERSION}"
    rm -rf "$src" && mkdir -p "$src" && cp -r "$dir/." "$src/" && chmod -R u+w "$src"
    (cd "$src" && nice -n 10 go build -trimpath -ldflags "-s -w" -tags "$TELEGRAF_TAGS" -o "$CACHE/telegraf.tmp" ./cmd/telegraf)
    mv "$CACHE/telegraf.tmp" "$CACHE/telegraf"
    echo "telegraf: built $CACHE/telegraf"
}

build_otelcol() {
    [ -x "$CACHE/otelcol-hostmetrics" ] && { echo "otelcol: cached $CACHE/otelcol-hostmetrics"; return; }
    GOBIN="$CACHE/bin" nice -n 10 go install "go.opentelemetry.io/collector/cmd/builder@${OTELCOL_VERSION}"
    rm -rf "$CACHE/src/otelcol"
    nice -n 10 "$CACHE/bin/builder" --config "$HERE/otelcol-builder.yaml" --output-path "$CACHE/src/otelcol"
    cp "$CACHE/src/otelcol/otelcol-hostmetrics" "$CACHE/otelcol-hostmetrics"
    echo "otelcol: built $CACHE/otelcol-hostmetrics"
}

install_collectd() {
    command -v collectd >/dev/null && { echo "collectd: installed $(command -v collectd)"; return; }
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends collectd-core >/dev/null \
        || { apt-get update >/dev/null && apt-get install -y --no-install-recommends collectd-core >/dev/null; }
    # The package starts no daemon we rely on; the bench runs its own with its own config.
    echo "collectd: installed $(command -v collectd)"
}

targets=("$@"); [ ${#targets[@]} -eq 0 ] && targets=(collectd telegraf otelcol)
for t in "${targets[@]}"; do
    case "$t" in
        telegraf) build_telegraf ;;
        otelcol) build_otelcol ;;
        collectd) install_collectd ;;
        *) echo "unknown peer: $t" >&2; exit 2 ;;
    esac
done
