#!/bin/sh
# Build `percli` and assemble the Perses plugin schemas it lints against, from the Go module proxy only.
# Idempotent: everything lands in ${EDGECOLLECT_PERSES_CACHE:-~/.cache/edgecollect-perses} and a second
# run returns at once. Prints the cache directory.
#
#   <cache>/bin/percli        percli of Perses $PERSES_VERSION
#   <cache>/plugins/<name>/   prometheus, timeserieschart, statchart: the plugins' own package.json,
#                             schemas/ and cue.mod from their Go modules
#
# Two shims, both because this machine reaches no CUE registry and no plugin release archive:
# - each plugin's CUE dependency github.com/perses/perses/cue/common is vendored into
#   cue.mod/pkg from the Perses Go module (the version the plugins were built against) and the
#   registry `deps` entry is dropped from cue.mod/module.cue;
# - mf-manifest.json (a frontend build artefact that percli reads only for the plugin's name and
#   version) is written from package.json.
# Without --plugin.path, `percli lint` checks only the dashboard's structure, not the panel,
# query and variable specs; with these it validates them against the plugins' CUE schemas.
set -eu

PERSES_VERSION=v0.53.0
CUE_COMMON_FROM=v0.52.0            # github.com/perses/perses/cue version the plugins below depend on
PLUGINS="prometheus@v0.53.3 timeserieschart@v0.10.1 statchart@v0.10.0"

cache="${EDGECOLLECT_PERSES_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edgecollect-perses}"
stamp="$cache/.complete-$PERSES_VERSION-$(echo "$PLUGINS" | tr ' @' '_-')"
if [ -f "$stamp" ] && [ -x "$cache/bin/percli" ]; then
    echo "$cache"
    exit 0
fi
command -v go >/dev/null || { echo "install-percli: the Go toolchain (>= 1.24) is needed" >&2; exit 1; }

mkdir -p "$cache/bin"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
printf 'module percli-build\n\ngo 1.24\n' > go.mod
# `go install pkg@version` also asks for the module's version list, which the proxy here refuses;
# a throwaway module with an explicit version needs only that version.
go get "github.com/perses/perses/cmd/percli@$PERSES_VERSION" >&2
go build -o "$cache/bin/percli" github.com/perses/perses/cmd/percli

dir_of() { go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'; }
common="$(dir_of "github.com/perses/perses@$CUE_COMMON_FROM")/cue/common"
rm -rf "$cache/plugins"
mkdir -p "$cache/plugins"
for spec in $PLUGINS; do
    name=${spec%@*}
    src=$(dir_of "github.com/perses/plugins/$spec")
    dest="$cache/plugins/$name"
    mkdir -p "$dest/cue.mod/pkg/github.com/perses/perses/cue"
    cp "$src/package.json" "$dest/"
    cp -r "$src/schemas" "$dest/"
    cp -r "$common" "$dest/cue.mod/pkg/github.com/perses/perses/cue/common"
    printf 'module: "github.com/perses/plugins/%s@v0"\nlanguage: {\n\tversion: "v0.14.0"\n}\n' "$name" \
        > "$dest/cue.mod/module.cue"
    python3 - "$dest" <<'PY'
import json, pathlib, sys
dest = pathlib.Path(sys.argv[1])
pkg = json.loads((dest / "package.json").read_text())
manifest = {"id": pkg["name"], "name": pkg["name"].split("/")[-1],
            "metaData": {"buildInfo": {"buildVersion": pkg["version"], "buildName": pkg["name"]}}}
(dest / "mf-manifest.json").write_text(json.dumps(manifest))
PY
    chmod -R u+w "$dest"
done
touch "$stamp"
echo "$cache"
