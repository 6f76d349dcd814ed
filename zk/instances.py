"""Proof wire format, quantization and Poseidon hashing of circuit inputs and outputs.

A proof travels as

    format (1 byte, = 1) || n (2 bytes, big-endian) || n instances (32 bytes each) || transcript

where each instance is a BN254 scalar in EZKL's little-endian encoding and the transcript is the
raw halo2 proof. Instances are ordered as EZKL lays them out: the Poseidon hash of the input, then
either the Poseidon hash of the output (inner layers) or the output values (last layer).
Decoding needs no EZKL and never trusts anything but the bytes and the circuit's settings.
"""

import math
import numbers
import struct
from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence


FIELD_MODULUS = 0x30644E72E131A029B85045B68181585D2833E84879B9709143E1F593F0000001
FELT_BYTES = 32
PROOF_FORMAT = 1
HEADER_BYTES = 3
MAX_INSTANCES = 0xFFFF
MAX_QUANTIZED = 2**127


class InstanceError(ValueError):
    """Base error for proof bytes or values that cannot be interpreted."""


class UnknownProofFormat(InstanceError):
    pass


class TruncatedProof(InstanceError):
    pass


class NonCanonicalInstance(InstanceError):
    pass


class InstanceCountMismatch(InstanceError):
    pass


class UnsupportedVisibility(InstanceError):
    pass


class UnquantizableValue(InstanceError):
    pass


@dataclass(frozen=True)
class ProofParts:
    instances: tuple[int, ...]
    transcript: bytes


@dataclass(frozen=True)
class PublicInstances:
    """What a proof commits to. Exactly one of `output_hash` and `outputs` is set.

    `outputs` are signed fixed-point integers at the circuit's output scale: value = q / 2**scale.
    """

    input_hash: int
    output_hash: int | None
    outputs: tuple[int, ...] | None


def encode_proof(instances: Sequence[int], transcript: bytes) -> bytes:
    if len(instances) > MAX_INSTANCES:
        raise InstanceCountMismatch(f"{len(instances)} instances exceed the limit of {MAX_INSTANCES}")
    body = b"".join(felt_to_bytes(i) for i in instances)
    return bytes([PROOF_FORMAT]) + len(instances).to_bytes(2, "big") + body + bytes(transcript)


def decode_instance_count(proof_bytes: bytes) -> int:
    if len(proof_bytes) < HEADER_BYTES:
        raise TruncatedProof(f"proof has {len(proof_bytes)} bytes, shorter than its header")
    if proof_bytes[0] != PROOF_FORMAT:
        raise UnknownProofFormat(f"proof format {proof_bytes[0]} is not {PROOF_FORMAT}")
    return int.from_bytes(proof_bytes[1:HEADER_BYTES], "big")


def decode_proof(proof_bytes: bytes) -> ProofParts:
    count = decode_instance_count(proof_bytes)
    end = HEADER_BYTES + count * FELT_BYTES
    if len(proof_bytes) <= end:
        raise TruncatedProof(f"proof declares {count} instances but has no transcript after them")
    instances = tuple(
        bytes_to_felt(proof_bytes[start : start + FELT_BYTES]) for start in range(HEADER_BYTES, end, FELT_BYTES)
    )
    return ProofParts(instances=instances, transcript=bytes(proof_bytes[end:]))


def decode_instances(proof_bytes: bytes, settings: dict) -> PublicInstances:
    """Split a proof's instances into input hash and output hash or values, per `settings`."""
    output_hashed = is_hashed_visibility(settings["run_args"]["output_visibility"])
    if not is_hashed_visibility(settings["run_args"]["input_visibility"]):
        raise UnsupportedVisibility("circuit input must be hashed")
    if settings["run_args"]["param_visibility"] != "Fixed":
        raise UnsupportedVisibility("circuit parameters must be fixed")
    expected = 2 if output_hashed else 1 + compute_output_size(settings)
    count = decode_instance_count(proof_bytes)
    if count != expected:
        raise InstanceCountMismatch(f"proof has {count} instances, circuit has {expected}")
    parts = decode_proof(proof_bytes)
    if output_hashed:
        return PublicInstances(input_hash=parts.instances[0], output_hash=parts.instances[1], outputs=None)
    outputs = tuple(compute_signed(felt) for felt in parts.instances[1:])
    return PublicInstances(input_hash=parts.instances[0], output_hash=None, outputs=outputs)


def compute_output_size(settings: dict) -> int:
    shapes = settings["model_instance_shapes"]
    if len(shapes) != 1:
        raise UnsupportedVisibility(f"circuit has {len(shapes)} public tensors, expected one output")
    return math.prod(shapes[0])


def is_hashed_visibility(visibility) -> bool:
    return isinstance(visibility, dict) and "Hashed" in visibility


def compute_quantized(values: Sequence[float], scale: int) -> tuple[int, ...]:
    """Quantize exactly as EZKL does for f32 inputs: round(f32(v) * 2**scale), ties away from zero."""
    return tuple(_quantize(value, scale) for value in values)


def _quantize(value: float, scale: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise UnquantizableValue(f"{value!r} is not a number")
    try:
        single = struct.unpack("<f", struct.pack("<f", float(value)))[0]
    except OverflowError:
        raise UnquantizableValue(f"{value!r} does not fit in float32") from None
    if not math.isfinite(single):
        raise UnquantizableValue(f"{value!r} is not finite")
    scaled = Fraction(single) * Fraction(2) ** scale
    magnitude = math.floor(abs(scaled) + Fraction(1, 2))
    if magnitude >= MAX_QUANTIZED:
        raise UnquantizableValue(f"{value!r} at scale {scale} exceeds the quantization range")
    return magnitude if scaled >= 0 else -magnitude


def compute_dequantized(quantized: Sequence[int], scale: int) -> list[float]:
    return [q / 2**scale for q in quantized]


def compute_input_hash(values: Sequence[float], scale: int) -> int:
    """The input instance of a hashed-input circuit: Poseidon over the quantized values."""
    return compute_output_hash(compute_quantized(values, scale))


def compute_output_hash(outputs: Sequence[int]) -> int:
    """The output instance of a hashed-output circuit: Poseidon over its quantized outputs."""
    import ezkl  # only here: the chain's and the CLI's decoding needs no EZKL
    digest = ezkl.poseidon_hash([felt_to_hex(q) for q in outputs])
    return bytes_to_felt(bytes.fromhex(digest[0]))


def compute_signed(felt: int) -> int:
    return felt - FIELD_MODULUS if felt > FIELD_MODULUS // 2 else felt


def felt_to_bytes(value: int) -> bytes:
    return (value % FIELD_MODULUS).to_bytes(FELT_BYTES, "little")


def felt_to_hex(value: int) -> str:
    return felt_to_bytes(value).hex()


def bytes_to_felt(data: bytes) -> int:
    value = int.from_bytes(data, "little")
    if value >= FIELD_MODULUS:
        raise NonCanonicalInstance(f"instance 0x{data.hex()} is not a canonical field element")
    return value


def is_ezkl_failure(error: BaseException) -> bool:
    """EZKL fails with exceptions, or with a pyo3 PanicException that is only a BaseException."""
    return isinstance(error, Exception) or type(error).__name__ == "PanicException"
