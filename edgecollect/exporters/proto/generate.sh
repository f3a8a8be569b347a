#!/bin/sh
# Regenerates arrow_service_pb2.py, arrow_service_pb2.pyi and arrow_service_pb2_grpc.py from
# arrow_service.proto with grpcio-tools (pip install grpcio-tools). Run from anywhere. The include
# root is the repository root, so the generated import reads
# `from edgecollect.exporters.proto import arrow_service_pb2`.
# arrow_service_pb2_grpc.pyi is hand-written (grpcio-tools makes no stub for it): update it by hand
# if a service changes.
# Note: the generated code checks its runtime at import: protobuf >= the protoc version below and
# grpcio >= the grpcio-tools version used here.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
cd "$root"
python3 -m grpc_tools.protoc -I . \
  --python_out=. --pyi_out=. --grpc_python_out=. \
  edgecollect/exporters/proto/arrow_service.proto
# Generated code is not ours to lint; its stub uses a bare Mapping that mypy --strict flags.
for f in arrow_service_pb2.py arrow_service_pb2.pyi arrow_service_pb2_grpc.py; do
  head='# ruff: noqa\n'
  [ "$f" = arrow_service_pb2.pyi ] && head='# ruff: noqa\n# mypy: disable-error-code="type-arg"\n'
  printf "$head" | cat - "$here/$f" > "$here/$f.tmp" && mv "$here/$f.tmp" "$here/$f"
done
python3 -m grpc_tools.protoc --version
python3 -c 'import grpc_tools, importlib.metadata as m; print("grpcio-tools", m.version("grpcio-tools"))'
echo "generated in $here"
