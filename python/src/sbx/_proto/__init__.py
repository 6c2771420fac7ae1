"""Generated gRPC stubs (``protoc`` + ``grpc_python_plugin``), written at build time; not edited."""
