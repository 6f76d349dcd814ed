"""Worker side: run a circuit's model with onnxruntime, prove it with EZKL, and check they agree.

The proving key is never shipped: `setup` is deterministic, so a worker regenerates it from the
compiled circuit and SRS, checks the vk it gets against the manifest's hash, and caches the key
under that hash.
"""

import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import ezkl
import numpy as np
import onnxruntime

from zk.artifacts import Circuit, Manifest, compute_sha256
from zk.instances import (
    bytes_to_felt,
    compute_dequantized,
    compute_input_hash,
    compute_output_hash,
    compute_signed,
    decode_instances,
    encode_proof,
)
from zk.instances import is_ezkl_failure

PROVING_KEY_SUFFIX = ".pk"


class ProvingError(Exception):
    """Base error for a proof the worker cannot or must not submit."""


class InputShapeMismatch(ProvingError):
    pass


class ProvingKeyMismatch(ProvingError):
    pass


class ToleranceExceeded(ProvingError):
    pass


class InstanceMismatch(ProvingError):
    pass


class ProvingFailed(ProvingError):
    pass


@dataclass(frozen=True)
class LayerProof:
    """A proof and what it commits to; `outputs` are quantized at the circuit's output scale."""

    circuit: str
    proof: bytes
    input_hash: int
    output_hash: int | None
    outputs: tuple[int, ...]
    output_scale: int
    max_error: float


def run_onnx(model_path: Path, values: Sequence[float]) -> list[float]:
    """Run a single-input, single-output model on one flattened sample."""
    session = onnxruntime.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    model_input = session.get_inputs()[0]
    shape = [dim if isinstance(dim, int) else 1 for dim in model_input.shape]
    if len(values) != math.prod(shape):
        raise InputShapeMismatch(f"{model_path.name} takes {math.prod(shape)} values, got {len(values)}")
    array = np.asarray(values, dtype=np.float32).reshape(shape)
    return session.run(None, {model_input.name: array})[0].ravel().astype(float).tolist()


def generate_witness(compiled_path: Path, values: Sequence[float], directory: Path) -> tuple[Path, tuple[int, ...]]:
    """Write EZKL's witness for one sample and return it with the circuit's quantized outputs."""
    data_path, witness_path = directory / "input.json", directory / "witness.json"
    data_path.write_text(json.dumps({"input_data": [list(values)]}))
    witness = ezkl.gen_witness(str(data_path), str(compiled_path), str(witness_path))
    outputs = tuple(compute_signed(bytes_to_felt(bytes.fromhex(felt))) for felt in witness["outputs"][0])
    return witness_path, outputs


def compute_max_error(outputs: Sequence[int], scale: int, expected: Sequence[float]) -> float:
    return max(abs(got - want) for got, want in zip(compute_dequantized(outputs, scale), expected, strict=True))


def read_ezkl_proof(proof_path: Path) -> bytes:
    """Convert EZKL's proof JSON into the wire format of `zk.instances`."""
    proof = json.loads(proof_path.read_text())
    (column,) = proof["instances"]
    instances = [bytes_to_felt(bytes.fromhex(felt)) for felt in column]
    return encode_proof(instances, bytes(proof["proof"]))


def get_proving_key(circuit: Circuit, pk_dir: Path) -> Path:
    """The circuit's proving key from the cache, regenerating it with `setup` when absent."""
    pk_path = Path(pk_dir) / f"{circuit.vk_sha256}{PROVING_KEY_SUFFIX}"
    if pk_path.is_file():
        return pk_path
    pk_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=pk_path.parent) as scratch:
        vk_path, new_pk = Path(scratch) / "vk.key", Path(scratch) / "pk.key"
        ezkl.setup(str(circuit.compiled_path), str(vk_path), str(new_pk), srs_path=str(circuit.srs_path))
        regenerated = compute_sha256(vk_path)
        if regenerated != circuit.vk_sha256:
            raise ProvingKeyMismatch(
                f"circuit {circuit.name}: setup produced vk {regenerated}, manifest pins {circuit.vk_sha256}"
            )
        os.replace(new_pk, pk_path)
    return pk_path


def prove_circuit(circuit: Circuit, values: Sequence[float], pk_dir: Path) -> LayerProof:
    input_hash = compute_input_hash(values, circuit.input_scale)
    expected = run_onnx(circuit.model_path, values)
    pk_path = get_proving_key(circuit, pk_dir)
    with tempfile.TemporaryDirectory() as scratch:
        try:
            witness_path, outputs = generate_witness(circuit.compiled_path, values, Path(scratch))
        except BaseException as e:
            if not is_ezkl_failure(e):
                raise
            raise ProvingFailed(f"circuit {circuit.name}: no witness for this input: {e}") from None
        max_error = compute_max_error(outputs, circuit.output_scale, expected)
        if max_error > circuit.tolerance:
            raise ToleranceExceeded(
                f"circuit {circuit.name}: output differs from onnxruntime by {max_error:.6g} "
                f"(tolerance {circuit.tolerance:.6g})"
            )
        proof_path = Path(scratch) / "proof.json"
        try:
            ezkl.prove(
                str(witness_path), str(circuit.compiled_path), str(pk_path), str(proof_path), str(circuit.srs_path)
            )
        except BaseException as e:
            if not is_ezkl_failure(e):
                raise
            raise ProvingFailed(f"circuit {circuit.name}: proving failed: {e}") from None
        proof = read_ezkl_proof(proof_path)
    instances = decode_instances(proof, circuit.settings)
    if instances.input_hash != input_hash:
        raise InstanceMismatch(f"circuit {circuit.name}: proof input hash differs from the request's")
    if instances.outputs is not None and instances.outputs != outputs:
        raise InstanceMismatch(f"circuit {circuit.name}: proof outputs differ from the witness")
    if instances.output_hash is not None and instances.output_hash != compute_output_hash(outputs):
        raise InstanceMismatch(f"circuit {circuit.name}: proof output hash differs from the witness outputs")
    return LayerProof(
        circuit=circuit.name,
        proof=proof,
        input_hash=input_hash,
        output_hash=instances.output_hash,
        outputs=outputs,
        output_scale=circuit.output_scale,
        max_error=max_error,
    )


def prove_layers(manifest: Manifest, values: Sequence[float], pk_dir: Path) -> list[LayerProof]:
    """Prove every layer in order, feeding each the previous circuit's (dequantized) output."""
    proofs = []
    for name in manifest.layers:
        proof = prove_circuit(manifest.circuits[name], values, pk_dir)
        proofs.append(proof)
        values = compute_dequantized(proof.outputs, proof.output_scale)
    return proofs
