#!/bin/sh
# Regenerates arrow_service_pb2.py, arrow_service_pb2.pyi and arrow_service_pb2_grpc.py from
# arrow_service.proto. Run from anywhere; the include root is the repository root, so the generated
# import reads `from edgecollect.exporters.proto import arrow_service_pb2`.
#
# Pinned generator: grpcio-tools 1.62.3 (protoc 25.1, "Protobuf Python Version 4.25.1"). Its output
# has no import-time version checks, so it runs on any protobuf >= 4.25 and grpcio >= 1.59 (the
# minimums in pyproject.toml; checked on protobuf 7.36 and grpcio 1.85 too). Newer grpcio-tools emit
# code that refuses to import on a protobuf/grpcio older than the generator — bad on a gateway that
# takes its wheels from a distribution. Get the generator without touching the system:
#   python3 -m venv /tmp/grpc-tools && /tmp/grpc-tools/bin/pip install grpcio-tools==1.62.3
#   PYTHON=/tmp/grpc-tools/bin/python edgecollect/exporters/proto/generate.sh
# arrow_service_pb2_grpc.pyi is hand-written (grpcio-tools makes no stub for it): update it by hand
# if a service changes.
set -eu
python=${PYTHON:-python3}
want="libprotoc 25.1"
got=$("$python" -m grpc_tools.protoc --version)
if [ "$got" != "$want" ]; then
  echo "generate.sh: need grpcio-tools 1.62.3 ($want), found '$got'; see the comment at the top" >&2
  exit 1
fi
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
cd "$root"
"$python" -m grpc_tools.protoc -I . \
  --python_out=. --pyi_out=. --grpc_python_out=. \
  edgecollect/exporters/proto/arrow_service.proto
# Generated code is not ours to lint; its stub uses a bare Mapping that mypy --strict flags.
for f in arrow_service_pb2.py arrow_service_pb2.pyi arrow_service_pb2_grpc.py; do
  head='# ruff: noqa\n'
  [ "$f" = arrow_service_pb2.pyi ] && head='# ruff: noqa\n# mypy: disable-error-code="type-arg"\n'
  printf "$head" | cat - "$here/$f" > "$here/$f.tmp" && mv "$here/$f.tmp" "$here/$f"
done
echo "generated with $got in $here"
