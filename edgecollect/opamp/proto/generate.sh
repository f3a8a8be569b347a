#!/bin/sh
# Regenerates opamp_pb2.py / anyvalue_pb2.py (+ .pyi) from the OpAMP schema that opamp-go v0.23.0
# compiles in (the module on the Go proxy ships the generated Go code, not the .proto files): the
# interop server (tests/interop/opamp) writes that schema as a FileDescriptorSet, the file names are
# moved under edgecollect/opamp/proto/ so the generated imports are package imports, and protoc
# generates Python from it.
#
# Pinned generator, as for edgecollect/exporters/proto/generate.sh (same reasons):
#   python3 -m venv /tmp/grpc-tools && /tmp/grpc-tools/bin/pip install grpcio-tools==1.62.3
#   PYTHON=/tmp/grpc-tools/bin/python edgecollect/opamp/proto/generate.sh
set -eu
python=${PYTHON:-python3}
want="libprotoc 25.1"
got=$("$python" -m grpc_tools.protoc --version)
if [ "$got" != "$want" ]; then
  echo "generate.sh: need grpcio-tools 1.62.3 ($want), found '$got'" >&2
  exit 1
fi
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$root/tests/interop/opamp" && go run . -descriptors "$work/raw.pb")
"$python" - "$work/raw.pb" "$work/set.pb" <<'PY'
import sys
from google.protobuf import descriptor_pb2
fds = descriptor_pb2.FileDescriptorSet.FromString(open(sys.argv[1], "rb").read())
prefix = "edgecollect/opamp/proto/"
for f in fds.file:
    f.name = prefix + f.name
    f.dependency[:] = [prefix + d for d in f.dependency]
open(sys.argv[2], "wb").write(fds.SerializeToString())
PY
cd "$root"
"$python" -m grpc_tools.protoc --descriptor_set_in="$work/set.pb" --python_out=. --pyi_out=. \
  edgecollect/opamp/proto/anyvalue.proto edgecollect/opamp/proto/opamp.proto
for f in anyvalue_pb2.py anyvalue_pb2.pyi opamp_pb2.py opamp_pb2.pyi; do
  head='# ruff: noqa\n'
  case "$f" in *.pyi) head='# ruff: noqa\n# mypy: disable-error-code="type-arg"\n';; esac
  printf "$head" | cat - "$here/$f" > "$here/$f.tmp" && mv "$here/$f.tmp" "$here/$f"
done
echo "generated with $got in $here"
