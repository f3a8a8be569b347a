"""Generated OTel-Arrow gRPC stubs (arrow_service.proto); regenerate with generate.sh."""
