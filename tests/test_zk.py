"""Proving and verifying with the committed digits circuits: real proofs, real EZKL, real processes."""

import dataclasses
import json
import math
import os
import threading
import time
from pathlib import Path

import ezkl
import pytest
from hypothesis import given, settings, strategies as st

from zk.instances import (
    FELT_BYTES,
    FIELD_MODULUS,
    HEADER_BYTES,
    InstanceError,
    UnquantizableValue,
    compute_input_hash,
    compute_output_hash,
    compute_quantized,
    decode_instances,
    decode_proof,
    encode_proof,
    felt_to_hex,
)
from zk.prove import (
    InputShapeMismatch,
    ProvingFailed,
    ProvingKeyMismatch,
    ToleranceExceeded,
    get_proving_key,
    prove_circuit,
    run_onnx,
)
from zk.verify import MAX_PROOF_BYTES, Verifier


@pytest.fixture(scope="module")
def layer_proofs(digits_proofs):
    """The layer proofs of sample 0."""
    return digits_proofs[0]


@pytest.fixture(scope="module")
def whole_proof(digits_proofs):
    """The whole-model proof of sample 0."""
    return digits_proofs["whole"]


@pytest.fixture(scope="module")
def verifier():
    with Verifier() as verifier:
        yield verifier


def test_layer_proofs_verify_and_chain_by_hash(manifest, samples, layer_proofs, verifier):
    x = samples["inputs"][0]
    results = [verifier.verify(manifest.circuits[p.circuit], p.proof) for p in layer_proofs]
    assert [r.reason for r in results] == [None, None, None]
    first, *_, last = [r.instances for r in results]
    assert first.input_hash == compute_input_hash(x, manifest.circuits["layer0"].input_scale)
    for previous, current in zip(results, results[1:]):
        assert current.instances.input_hash == previous.instances.output_hash
    for proof, result in zip(layer_proofs[:-1], results[:-1]):
        assert result.instances.output_hash == compute_output_hash(proof.outputs)
    assert last.outputs == layer_proofs[-1].outputs and len(last.outputs) == 10


def test_whole_model_proof_agrees_with_layers(manifest, samples, layer_proofs, whole_proof, verifier):
    result = verifier.verify(manifest.circuits["model"], whole_proof.proof)
    assert result.is_valid
    assert result.instances.input_hash == layer_proofs[0].input_hash
    predicted = run_onnx(manifest.circuits["model"].model_path, samples["inputs"][0])
    circuit_class = max(range(10), key=lambda i: result.instances.outputs[i])
    layered_class = max(range(10), key=lambda i: layer_proofs[-1].outputs[i])
    assert circuit_class == layered_class == max(range(10), key=lambda i: predicted[i])


def test_circuit_outputs_match_onnxruntime_within_tolerance(manifest, samples, layer_proofs, whole_proof):
    request = samples["inputs"][0]
    inputs = {"layer0": request, "model": request}
    for proof in [*layer_proofs, whole_proof]:
        circuit = manifest.circuits[proof.circuit]
        expected = run_onnx(circuit.model_path, inputs[proof.circuit])
        got = [q / 2**proof.output_scale for q in proof.outputs]
        assert max(abs(a - b) for a, b in zip(got, expected)) <= circuit.tolerance < 0.05
        inputs[f"layer{int(proof.circuit[-1]) + 1}" if proof.circuit != "model" else "none"] = got


def test_prover_refuses_output_outside_tolerance(manifest, layer_proofs, pk_dir):
    strict = dataclasses.replace(manifest.circuits["layer2"], tolerance=0.0)
    values = [q / 2**layer_proofs[1].output_scale for q in layer_proofs[1].outputs]
    with pytest.raises(ToleranceExceeded):
        prove_circuit(strict, values, pk_dir)


def test_prover_refuses_inputs_the_circuit_cannot_take(manifest, pk_dir):
    layer0 = manifest.circuits["layer0"]
    with pytest.raises(ProvingFailed, match="no witness"):
        prove_circuit(layer0, [1e4] * 64, pk_dir)
    with pytest.raises(UnquantizableValue):
        prove_circuit(layer0, [math.nan] * 64, pk_dir)
    with pytest.raises(InputShapeMismatch):
        prove_circuit(layer0, [0.5] * 63, pk_dir)


def test_proving_key_regenerated_and_checked_against_manifest(manifest, tmp_path):
    wrong = dataclasses.replace(manifest.circuits["layer2"], vk_sha256="00" * 32)
    with pytest.raises(ProvingKeyMismatch):
        get_proving_key(wrong, tmp_path)
    assert list(tmp_path.iterdir()) == []
    pk_path = get_proving_key(manifest.circuits["layer2"], tmp_path)
    assert pk_path.name == f"{manifest.circuits['layer2'].vk_sha256}.pk"


def _flip(data: bytes, index: int) -> bytes:
    flipped = bytearray(data)
    flipped[index] ^= 0x01
    return bytes(flipped)


def _bad_proofs(layer_proofs, whole_proof):
    proof = layer_proofs[0].proof
    parts = decode_proof(proof)
    transcript_start = HEADER_BYTES + FELT_BYTES * len(parts.instances)
    return {
        "garbage": os.urandom(len(proof)),
        "empty": b"",
        "header only": proof[:HEADER_BYTES],
        "truncated instances": proof[: HEADER_BYTES + FELT_BYTES + 5],
        "truncated transcript": proof[:-1],
        "truncated half": proof[: len(proof) // 2],
        "extended transcript": proof + b"\x00",
        "oversized": proof + bytes(MAX_PROOF_BYTES),
        "unknown format": _flip(proof, 0),
        "wrong instance count": _flip(proof, 2),
        "flipped input hash": _flip(proof, HEADER_BYTES),
        "flipped output hash": _flip(proof, HEADER_BYTES + FELT_BYTES),
        "flipped transcript start": _flip(proof, transcript_start),
        "flipped transcript middle": _flip(proof, (transcript_start + len(proof)) // 2),
        "flipped transcript end": _flip(proof, len(proof) - 1),
        "non-canonical instance": proof[:HEADER_BYTES]
        + (FIELD_MODULUS + 1).to_bytes(FELT_BYTES, "little")
        + proof[HEADER_BYTES + FELT_BYTES :],
        "tampered output hash": encode_proof([parts.instances[0], parts.instances[1] + 1], parts.transcript),
        "swapped instances": encode_proof(parts.instances[::-1], parts.transcript),
        "another layer's proof": layer_proofs[1].proof,
        "another model's proof": whole_proof.proof,
        "not bytes": felt_to_hex(1),
        "none": None,
    }


def test_bad_proofs_are_rejected_with_a_reason(manifest, layer_proofs, whole_proof, verifier):
    layer0 = manifest.circuits["layer0"]
    for kind, proof in _bad_proofs(layer_proofs, whole_proof).items():
        result = verifier.verify(layer0, proof)
        assert not result.is_valid, kind
        assert result.instances is None and isinstance(result.reason, str) and result.reason, kind
    assert verifier.verify(layer0, layer_proofs[0].proof).is_valid


def test_tampered_public_outputs_are_rejected(manifest, layer_proofs, verifier):
    layer2 = manifest.circuits["layer2"]
    parts = decode_proof(layer_proofs[2].proof)
    outputs = list(parts.instances)
    outputs[1 + 3] = (outputs[1 + 3] + 2**13) % FIELD_MODULUS
    result = verifier.verify(layer2, encode_proof(outputs, parts.transcript))
    assert "rejected by circuit layer2" in result.reason


def _settings_variant(circuit, tmp_path, **changes) -> Path:
    settings = json.loads(circuit.settings_path.read_text())
    for key, value in changes.items():
        target = settings["run_args"] if key in settings["run_args"] else settings
        target[key] = value
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(settings))
    return path


def test_ezkl_panic_is_contained(manifest, layer_proofs, tmp_path):
    """EZKL panics (PanicException, a BaseException) dividing by zero on these settings."""
    layer0 = manifest.circuits["layer0"]
    broken = dataclasses.replace(layer0, settings_path=_settings_variant(layer0, tmp_path, num_inner_cols=0))
    with Verifier() as verifier:
        result = verifier.verify(broken, layer_proofs[0].proof)
        assert not result.is_valid and "PanicException" in result.reason
        assert verifier.verify(manifest.circuits["layer1"], layer_proofs[1].proof).is_valid


def test_hanging_verification_times_out_and_is_not_cached(manifest, layer_proofs, tmp_path):
    layer0 = manifest.circuits["layer0"]
    hanging = dataclasses.replace(layer0, settings_path=_settings_variant(layer0, tmp_path, total_assignments=10**12))
    with Verifier(timeout=1.0) as verifier:
        started = time.monotonic()
        result = verifier.verify(hanging, layer_proofs[0].proof)
        assert "longer than" in result.reason and not result.conclusive and time.monotonic() - started < 10
        assert verifier.verify(manifest.circuits["layer1"], layer_proofs[1].proof).is_valid
        assert "longer than" in verifier.verify(hanging, layer_proofs[0].proof).reason
        assert verifier.ezkl_calls == 1


def _child_pids() -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == os.getpid():
                children.append(int(entry.name))
    return children


def test_verifier_process_death_is_a_rejection(manifest, layer_proofs, tmp_path):
    layer0 = manifest.circuits["layer0"]
    hanging = dataclasses.replace(layer0, settings_path=_settings_variant(layer0, tmp_path, total_assignments=10**12))
    others = set(_child_pids())
    with Verifier(timeout=30.0) as verifier:
        assert verifier.verify(manifest.circuits["layer1"], layer_proofs[1].proof).is_valid
        (worker,) = set(_child_pids()) - others
        killer = threading.Timer(0.5, os.kill, (worker, 9))
        killer.start()
        result = verifier.verify(hanging, layer_proofs[0].proof)
        killer.join()
        assert "died" in result.reason and not result.conclusive
        assert verifier.verify(manifest.circuits["layer2"], layer_proofs[2].proof).is_valid


def test_cache_verifies_each_proof_once(manifest, layer_proofs):
    layer1 = manifest.circuits["layer1"]
    bad = _flip(layer_proofs[1].proof, len(layer_proofs[1].proof) - 10)
    with Verifier() as verifier:
        first = verifier.verify(layer1, layer_proofs[1].proof)
        rejected = verifier.verify(layer1, bad)
        assert verifier.ezkl_calls == 2
        started = time.perf_counter()
        assert verifier.verify(layer1, layer_proofs[1].proof) == first
        assert verifier.verify(layer1, bad) == rejected
        assert time.perf_counter() - started < 0.005
        assert verifier.ezkl_calls == 2


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_decoding_arbitrary_bytes_fails_only_with_instance_errors(manifest, data):
    for name in ("layer0", "layer2"):
        try:
            instances = decode_instances(data, manifest.circuits[name].settings)
        except InstanceError:
            continue
        assert all(0 <= h < FIELD_MODULUS for h in [instances.input_hash, instances.output_hash or 0])


@settings(max_examples=300, deadline=None)
@given(st.floats(-1e12, 1e12) | st.integers(-(2**20), 2**20).map(lambda n: n / 2**14), st.integers(0, 20))
def test_quantization_matches_ezkl(value, scale):
    (quantized,) = compute_quantized([value], scale)
    assert felt_to_hex(quantized) == ezkl.float_to_felt(value, scale, ezkl.PyInputType.F32)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 1e39, 3e38, True, "1.0", None])
def test_unquantizable_values_are_refused(value):
    with pytest.raises(UnquantizableValue):
        compute_input_hash([0.5, value], 13)
