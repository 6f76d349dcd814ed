"""A gRPC client made only of stubs generated from the Cosmos SDK's own .proto files (tests/test_grpc.py).

Run as `python upstream_grpc_client.py HOST:PORT GENERATED_DIR`, with nothing of maxwell importable:
maxwell's protos define the same message names, and one process cannot hold both. Each stdin
line is a call, {"method": "/pkg.Service/Method", "request": <proto JSON>, "metadata": [[key, value]]};
each stdout line its outcome, {"response": <proto JSON>, "metadata": {...}} or {"error": {"code", "details"}}.
Every generated module is imported, so Anys (accounts, keys, messages) unpack through the default pool.
"""

import importlib
import json
import sys
from pathlib import Path

import grpc
from google.protobuf import descriptor_pool, json_format

CALL_TIMEOUT_S = 30


def import_generated(root: Path) -> None:
    for path in sorted(root.rglob("*_pb2*.py")):
        importlib.import_module(".".join(path.relative_to(root).with_suffix("").parts))


def call(channel: grpc.Channel, line: dict) -> dict:
    service_name, method_name = line["method"].strip("/").split("/")
    service = descriptor_pool.Default().FindServiceByName(service_name)
    module = importlib.import_module(service.file.name.removesuffix(".proto").replace("/", ".") + "_pb2_grpc")
    stub = getattr(module, f"{service.name}Stub")(channel)
    method = service.methods_by_name[method_name]
    request_class = getattr(importlib.import_module(method.input_type.file.name.removesuffix(".proto")
                                                    .replace("/", ".") + "_pb2"), method.input_type.name)
    request = json_format.ParseDict(line.get("request", {}), request_class())
    try:
        response, outcome = getattr(stub, method_name).with_call(
            request, metadata=[tuple(pair) for pair in line.get("metadata", [])], timeout=CALL_TIMEOUT_S)
    except grpc.RpcError as error:
        return {"error": {"code": error.code().name, "details": error.details()}}
    return {"response": json_format.MessageToDict(response, preserving_proto_field_name=True),
            "metadata": dict(outcome.initial_metadata())}


def main() -> None:
    address, generated = sys.argv[1], Path(sys.argv[2])
    sys.path.insert(0, str(generated))
    import_generated(generated)
    with grpc.insecure_channel(address) as channel:
        for text in sys.stdin:
            print(json.dumps(call(channel, json.loads(text))), flush=True)


if __name__ == "__main__":
    main()
