"""Genesis tooling: a circuits manifest as the chain registers it (an inference Model).

Runs off-chain, in `maxwell init` and tests: it reads the artifacts (checked against the manifest's
hashes) and the ONNX model, which the chain never does.
"""

import math
from pathlib import Path

import onnx

from chain.genesis import encode_json
from chain.inference import check_model
from chain.proto.maxwell.inference.v1 import inference_pb2
from zk.artifacts import load_manifest


def compute_model(manifest_path) -> inference_pb2.Model:
    """The registry entry of a circuits manifest's layer graph; the input size is read from the ONNX model."""
    manifest = load_manifest(Path(manifest_path))
    layers = []
    for name in manifest.layers:
        circuit = manifest.circuits[name]
        layers.append(inference_pb2.Layer(
            circuit=name, vk=circuit.vk_path.read_bytes(), settings=circuit.settings_path.read_text(),
            srs_sha256=manifest.data["circuits"][name]["files"]["srs"]["sha256"], proof_size=circuit.proof_size,
        ))
    first = onnx.load(str(manifest.circuits[manifest.layers[0]].model_path)).graph.input[0]
    input_size = math.prod(d.dim_value or 1 for d in first.type.tensor_type.shape.dim)
    model = inference_pb2.Model(name=manifest.name, layers=layers, input_size=input_size)
    check_model(model)
    return model


def compute_genesis_models(manifest_path) -> list[dict]:
    """Genesis `models` entries (vk base64, settings JSON text) for `maxwell init`."""
    return [encode_json(compute_model(manifest_path))]
