"""
ICS-23 commitment proof verification, following cosmos/ics23 (Go is the
reference where Go and Rust differ) and ibc-go's chained MerkleProof checks.

Every failure raises a subclass of `Ics23Error` named after the rule that was
broken; `is_member` / `is_non_member` turn that into a boolean.
"""

import hashlib
from collections.abc import Sequence

from google.protobuf.message import DecodeError

from chain.encoding import TruncatedUvarint, UvarintOverflow, decode_uvarint, encode_uvarint
from chain.proto.cosmos.ics23.v1.proofs_pb2 import (
    BITCOIN,
    BLAKE2B_512,
    BLAKE2S_256,
    FIXED32_BIG,
    FIXED32_LITTLE,
    FIXED64_BIG,
    FIXED64_LITTLE,
    NO_HASH,
    NO_PREFIX,
    REQUIRE_32_BYTES,
    REQUIRE_64_BYTES,
    RIPEMD160,
    SHA256,
    SHA512,
    SHA512_256,
    VAR_PROTO,
    BatchEntry,
    BatchProof,
    CommitmentProof,
    CompressedExistenceProof,
    ExistenceProof,
    InnerOp,
    InnerSpec,
    LeafOp,
    NonExistenceProof,
    ProofSpec,
)

DEFAULT_MAX_DEPTH = 128
# An IAVL inner prefix ends with the length byte of the left child (1 byte),
# or with length byte + left hash + length byte of the right child (34 bytes).
IAVL_INNER_PREFIX_REMAINDERS = (1, 34)
TENDERMINT_INNER_PREFIX = b"\x01"

IAVL_SPEC = ProofSpec(
    leaf_spec=LeafOp(
        hash=SHA256,
        prehash_key=NO_HASH,
        prehash_value=SHA256,
        length=VAR_PROTO,
        prefix=b"\x00",
    ),
    inner_spec=InnerSpec(
        child_order=[0, 1],
        child_size=33,
        min_prefix_length=4,
        max_prefix_length=12,
        hash=SHA256,
    ),
)

TENDERMINT_SPEC = ProofSpec(
    leaf_spec=LeafOp(
        hash=SHA256,
        prehash_key=NO_HASH,
        prehash_value=SHA256,
        length=VAR_PROTO,
        prefix=b"\x00",
    ),
    inner_spec=InnerSpec(
        child_order=[0, 1],
        child_size=32,
        min_prefix_length=1,
        max_prefix_length=1,
        hash=SHA256,
    ),
)

SMT_SPEC = ProofSpec(
    leaf_spec=LeafOp(
        hash=SHA256,
        prehash_key=SHA256,
        prehash_value=SHA256,
        length=NO_PREFIX,
        prefix=b"\x00",
    ),
    inner_spec=InnerSpec(
        child_order=[0, 1],
        child_size=32,
        min_prefix_length=1,
        max_prefix_length=1,
        empty_child=bytes(32),
        hash=SHA256,
    ),
    max_depth=256,
    prehash_key_before_comparison=True,
)

_HASHERS = {
    SHA256: hashlib.sha256,
    SHA512: hashlib.sha512,
    RIPEMD160: lambda data: hashlib.new("ripemd160", data),
    SHA512_256: lambda data: hashlib.new("sha512_256", data),
    BLAKE2B_512: hashlib.blake2b,
    BLAKE2S_256: hashlib.blake2s,
}


class Ics23Error(Exception):
    """A commitment proof failed verification."""


class ProofDecodeError(Ics23Error):
    """The bytes are not an encoded CommitmentProof."""


class UnsupportedHashOp(Ics23Error):
    pass


class UnsupportedLengthOp(Ics23Error):
    pass


class WrongDataLength(Ics23Error):
    """REQUIRE_32_BYTES / REQUIRE_64_BYTES got data of another length."""


class EmptyKey(Ics23Error):
    pass


class EmptyValue(Ics23Error):
    pass


class EmptyChild(Ics23Error):
    pass


class MissingLeafOp(Ics23Error):
    pass


class IncompleteSpec(Ics23Error):
    """The ProofSpec lacks the leaf or inner spec a check needs."""


class InvalidInnerSpec(Ics23Error):
    """The InnerSpec itself is malformed (child size, prefix bounds, child order)."""


class LeafSpecMismatch(Ics23Error):
    pass


class InnerHashMismatch(Ics23Error):
    pass


class InnerLooksLikeLeaf(Ics23Error):
    """An inner op's prefix starts with the leaf prefix (second-preimage guard)."""


class InnerPrefixLength(Ics23Error):
    pass


class MalformedSuffix(Ics23Error):
    pass


class DepthOutOfRange(Ics23Error):
    pass


class InvalidIavlPrefix(Ics23Error):
    pass


class InvalidTendermintPrefix(Ics23Error):
    pass


class ChildTooLarge(Ics23Error):
    """An intermediate hash is longer than the spec's child size."""


class KeyMismatch(Ics23Error):
    pass


class ValueMismatch(Ics23Error):
    pass


class WrongRoot(Ics23Error):
    pass


class WrongProofType(Ics23Error):
    pass


class NoBatchEntry(Ics23Error):
    """A batch proof holds no entry for the requested key."""


class InvalidLookupIndex(Ics23Error):
    pass


class EmptyNonExistenceProof(Ics23Error):
    """A non-existence proof has neither a left nor a right neighbour."""


class KeyOutOfRange(Ics23Error):
    """The key is not strictly between the non-existence proof's neighbours."""


class NotLeftMost(Ics23Error):
    pass


class NotRightMost(Ics23Error):
    pass


class NotNeighbors(Ics23Error):
    pass


class BadPadding(Ics23Error):
    """An inner op's prefix/suffix lengths fit no branch of the InnerSpec."""


class ChainShapeMismatch(Ics23Error):
    """Chained verification needs equally many (and at least one) specs, proofs and keys."""


def decode_commitment_proof(data: bytes) -> CommitmentProof:
    proof = CommitmentProof()
    try:
        proof.ParseFromString(data)
    except DecodeError as error:
        raise ProofDecodeError(f"malformed CommitmentProof: {error}") from error
    return proof


def compute_hash(hash_op: int, data: bytes) -> bytes:
    if hash_op == BITCOIN:
        return compute_hash(RIPEMD160, compute_hash(SHA256, data))
    hasher = _HASHERS.get(hash_op)
    if hasher is None:
        raise UnsupportedHashOp(f"unsupported hash op {hash_op}")
    try:
        return hasher(data).digest()
    except ValueError as error:
        raise UnsupportedHashOp(f"hash op {hash_op} unavailable: {error}") from error


def compute_prehash(hash_op: int, data: bytes) -> bytes:
    if hash_op == NO_HASH:
        return data
    return compute_hash(hash_op, data)


def compute_length_prefixed(length_op: int, data: bytes) -> bytes:
    n = len(data)
    if length_op == NO_PREFIX:
        return data
    if length_op == VAR_PROTO:
        return encode_uvarint(n) + data
    if length_op == REQUIRE_32_BYTES or length_op == REQUIRE_64_BYTES:
        required = 32 if length_op == REQUIRE_32_BYTES else 64
        if n != required:
            raise WrongDataLength(f"data is {n} bytes, not {required}")
        return data
    if length_op == FIXED32_BIG:
        return n.to_bytes(4, "big") + data
    if length_op == FIXED32_LITTLE:
        return n.to_bytes(4, "little") + data
    if length_op == FIXED64_BIG:
        return n.to_bytes(8, "big") + data
    if length_op == FIXED64_LITTLE:
        return n.to_bytes(8, "little") + data
    raise UnsupportedLengthOp(f"unsupported length op {length_op}")


def compute_leaf_hash(leaf_op: LeafOp, key: bytes, value: bytes) -> bytes:
    if not key:
        raise EmptyKey("leaf op needs a key")
    if not value:
        raise EmptyValue("leaf op needs a value")
    hkey = compute_length_prefixed(leaf_op.length, compute_prehash(leaf_op.prehash_key, key))
    hvalue = compute_length_prefixed(
        leaf_op.length, compute_prehash(leaf_op.prehash_value, value)
    )
    return compute_hash(leaf_op.hash, leaf_op.prefix + hkey + hvalue)


def compute_inner_hash(inner_op: InnerOp, child: bytes) -> bytes:
    if not child:
        raise EmptyChild("inner op needs a child hash")
    return compute_hash(inner_op.hash, inner_op.prefix + child + inner_op.suffix)


def compute_existence_root(proof: ExistenceProof, spec: ProofSpec | None = None) -> bytes:
    """
    Root committed to by an existence proof. With a spec, intermediate hashes
    longer than the spec's child size are refused, as upstream does.
    """
    if not proof.HasField("leaf"):
        raise MissingLeafOp("existence proof has no leaf op")
    result = compute_leaf_hash(proof.leaf, proof.key, proof.value)
    for step in proof.path:
        result = compute_inner_hash(step, result)
        if spec is not None:
            child_size = spec.inner_spec.child_size
            if child_size >= 32 and len(result) > child_size:
                raise ChildTooLarge(f"inner hash of {len(result)} bytes exceeds child size")
    return result


def compute_non_existence_root(proof: NonExistenceProof) -> bytes:
    if proof.HasField("left"):
        return compute_existence_root(proof.left)
    if proof.HasField("right"):
        return compute_existence_root(proof.right)
    raise EmptyNonExistenceProof("non-existence proof has no left or right proof")


def is_spec_equal(a: ProofSpec, b: ProofSpec) -> bool:
    """Upstream's deliberately loose spec equality (prefixes and depths are not compared)."""
    if a.HasField("leaf_spec") != b.HasField("leaf_spec"):
        return False
    la, lb = a.leaf_spec, b.leaf_spec
    if (la.hash, la.prehash_key, la.prehash_value, la.length) != (
        lb.hash,
        lb.prehash_key,
        lb.prehash_value,
        lb.length,
    ):
        return False
    if a.HasField("inner_spec") != b.HasField("inner_spec"):
        return False
    ia, ib = a.inner_spec, b.inner_spec
    return (
        ia.hash,
        ia.min_prefix_length,
        ia.max_prefix_length,
        ia.child_size,
        len(ia.child_order),
    ) == (ib.hash, ib.min_prefix_length, ib.max_prefix_length, ib.child_size, len(ib.child_order))


def _read_varint(data: bytes, pos: int, name: str) -> tuple[int, int]:
    """Go's binary.ReadVarint: a zigzag-encoded signed varint of at most 10 bytes."""
    try:
        unsigned, pos = decode_uvarint(data, pos)
    except TruncatedUvarint:
        raise InvalidIavlPrefix(f"IAVL {name} varint is truncated") from None
    except UvarintOverflow:
        raise InvalidIavlPrefix(f"IAVL {name} varint overflows 64 bits") from None
    value = unsigned >> 1
    return (~value if unsigned & 1 else value), pos


def check_iavl_prefix(prefix: bytes, hash_op: int, layer: int) -> None:
    """IAVL node prefixes start with height, size and version; layer 0 is the leaf."""
    height, pos = _read_varint(prefix, 0, "height")
    if height < 0 or height < layer:
        raise InvalidIavlPrefix(f"IAVL height {height} below layer {layer}")
    size, pos = _read_varint(prefix, pos, "size")
    if size < 0:
        raise InvalidIavlPrefix("IAVL size must be non-negative")
    version, pos = _read_varint(prefix, pos, "version")
    if version < 0:
        raise InvalidIavlPrefix("IAVL version must be non-negative")
    remainder = len(prefix) - pos
    if layer == 0:
        if remainder != 0:
            raise InvalidIavlPrefix(f"IAVL leaf prefix has {remainder} trailing bytes")
        if height != 0:
            raise InvalidIavlPrefix(f"IAVL leaf height is {height}, not 0")
        if size != 1:
            raise InvalidIavlPrefix(f"IAVL leaf size is {size}, not 1")
    else:
        if remainder not in IAVL_INNER_PREFIX_REMAINDERS:
            raise InvalidIavlPrefix(f"IAVL inner prefix remainder is {remainder} bytes")
        if hash_op != SHA256:
            raise InvalidIavlPrefix("IAVL inner hash op must be SHA256")


def check_tendermint_prefix(inner_op: InnerOp) -> None:
    if not inner_op.prefix:
        raise InvalidTendermintPrefix("inner op prefix must not be empty")
    if inner_op.suffix and inner_op.prefix != TENDERMINT_INNER_PREFIX:
        raise InvalidTendermintPrefix("a left child's inner prefix must be exactly 0x01")
    if not inner_op.prefix.startswith(TENDERMINT_INNER_PREFIX):
        raise InvalidTendermintPrefix("inner prefix must begin with 0x01")


def check_leaf_op_against_spec(leaf_op: LeafOp, spec: ProofSpec) -> None:
    if not spec.HasField("leaf_spec"):
        raise IncompleteSpec("spec has no leaf_spec")
    if is_spec_equal(spec, IAVL_SPEC):
        check_iavl_prefix(leaf_op.prefix, leaf_op.hash, 0)
    leaf_spec = spec.leaf_spec
    for field in ("hash", "prehash_key", "prehash_value", "length"):
        got, want = getattr(leaf_op, field), getattr(leaf_spec, field)
        if got != want:
            raise LeafSpecMismatch(f"leaf {field} is {got}, spec requires {want}")
    if not leaf_op.prefix.startswith(leaf_spec.prefix):
        raise LeafSpecMismatch(f"leaf prefix does not start with {leaf_spec.prefix.hex()}")


def check_inner_op_against_spec(inner_op: InnerOp, spec: ProofSpec, layer: int) -> None:
    """`layer` counts inner ops from the leaf, starting at 1."""
    if not spec.HasField("inner_spec") or not spec.HasField("leaf_spec"):
        raise IncompleteSpec("spec needs both leaf_spec and inner_spec")
    inner_spec = spec.inner_spec
    if inner_op.hash != inner_spec.hash:
        raise InnerHashMismatch(
            f"inner hash op is {inner_op.hash}, spec requires {inner_spec.hash}"
        )
    if is_spec_equal(spec, IAVL_SPEC):
        check_iavl_prefix(inner_op.prefix, inner_op.hash, layer)
    if is_spec_equal(spec, TENDERMINT_SPEC):
        check_tendermint_prefix(inner_op)
    if inner_op.prefix.startswith(spec.leaf_spec.prefix):
        raise InnerLooksLikeLeaf("inner prefix starts with the leaf prefix")
    if len(inner_op.prefix) < inner_spec.min_prefix_length:
        raise InnerPrefixLength(f"inner prefix too short ({len(inner_op.prefix)})")
    max_left_child_bytes = (len(inner_spec.child_order) - 1) * inner_spec.child_size
    if len(inner_op.prefix) > inner_spec.max_prefix_length + max_left_child_bytes:
        raise InnerPrefixLength(f"inner prefix too long ({len(inner_op.prefix)})")
    if inner_spec.child_size <= 0:
        raise InvalidInnerSpec("child_size must be >= 1")
    if inner_spec.max_prefix_length >= inner_spec.min_prefix_length + inner_spec.child_size:
        raise InvalidInnerSpec("max_prefix_length must be < min_prefix_length + child_size")
    if len(inner_op.suffix) % inner_spec.child_size:
        raise MalformedSuffix(
            f"suffix length {len(inner_op.suffix)} is not a multiple of child size"
        )


def check_existence_against_spec(proof: ExistenceProof, spec: ProofSpec) -> None:
    if not proof.HasField("leaf"):
        raise MissingLeafOp("existence proof has no leaf op")
    check_leaf_op_against_spec(proof.leaf, spec)
    depth = len(proof.path)
    if spec.min_depth > 0 and depth < spec.min_depth:
        raise DepthOutOfRange(f"{depth} inner ops, spec requires at least {spec.min_depth}")
    max_depth = spec.max_depth or DEFAULT_MAX_DEPTH
    if depth > max_depth:
        raise DepthOutOfRange(f"{depth} inner ops, spec allows at most {max_depth}")
    for layer, step in enumerate(proof.path, start=1):
        check_inner_op_against_spec(step, spec, layer)


def verify_existence(
    spec: ProofSpec, root: bytes, proof: ExistenceProof, key: bytes, value: bytes
) -> None:
    check_existence_against_spec(proof, spec)
    if key != proof.key:
        raise KeyMismatch("provided key does not match the proof")
    if value != proof.value:
        raise ValueMismatch("provided value does not match the proof")
    if compute_existence_root(proof, spec) != root:
        raise WrongRoot("calculated root does not match the provided root")


def _get_position(child_order: Sequence[int], branch: int) -> int:
    if branch < 0 or branch >= len(child_order):
        raise InvalidInnerSpec(f"invalid branch {branch}")
    for position, item in enumerate(child_order):
        if item == branch:
            return position
    raise InvalidInnerSpec(f"branch {branch} not in child order {list(child_order)}")


def _get_padding(inner_spec: InnerSpec, branch: int) -> tuple[int, int, int]:
    """(min prefix, max prefix, suffix) lengths of an inner op whose child sits at `branch`."""
    position = _get_position(inner_spec.child_order, branch)
    prefix = position * inner_spec.child_size
    suffix = (len(inner_spec.child_order) - 1 - position) * inner_spec.child_size
    return (
        prefix + inner_spec.min_prefix_length,
        prefix + inner_spec.max_prefix_length,
        suffix,
    )


def _has_padding(inner_op: InnerOp, padding: tuple[int, int, int]) -> bool:
    min_prefix, max_prefix, suffix = padding
    return min_prefix <= len(inner_op.prefix) <= max_prefix and len(inner_op.suffix) == suffix


def _get_branch(inner_spec: InnerSpec, inner_op: InnerOp) -> int:
    for branch in range(len(inner_spec.child_order)):
        if _has_padding(inner_op, _get_padding(inner_spec, branch)):
            return branch
    raise BadPadding("inner op padding matches no branch")


def has_empty_left_branches(inner_spec: InnerSpec, inner_op: InnerOp) -> bool:
    """Every sibling left of this step is the empty child: a placeholder on a left-most path."""
    left_branches = _get_branch(inner_spec, inner_op)
    if left_branches == 0:
        return False
    size = inner_spec.child_size
    actual_prefix = len(inner_op.prefix) - left_branches * size
    if actual_prefix < 0:
        return False
    for i in range(left_branches):
        start = actual_prefix + _get_position(inner_spec.child_order, i) * size
        if inner_op.prefix[start : start + size] != inner_spec.empty_child:
            return False
    return True


def has_empty_right_branches(inner_spec: InnerSpec, inner_op: InnerOp) -> bool:
    """Every sibling right of this step is the empty child: a placeholder on a right-most path."""
    branch = _get_branch(inner_spec, inner_op)
    right_branches = len(inner_spec.child_order) - 1 - branch
    if right_branches == 0:
        return False
    size = inner_spec.child_size
    if len(inner_op.suffix) != right_branches * size:
        return False
    for i in range(right_branches):
        start = _get_position(inner_spec.child_order, i) * size
        if inner_op.suffix[start : start + size] != inner_spec.empty_child:
            return False
    return True


def is_left_most(inner_spec: InnerSpec, path: Sequence[InnerOp]) -> bool:
    padding = _get_padding(inner_spec, 0)
    return all(
        _has_padding(step, padding) or has_empty_left_branches(inner_spec, step) for step in path
    )


def is_right_most(inner_spec: InnerSpec, path: Sequence[InnerOp]) -> bool:
    padding = _get_padding(inner_spec, len(inner_spec.child_order) - 1)
    return all(
        _has_padding(step, padding) or has_empty_right_branches(inner_spec, step) for step in path
    )


def _is_same_step(a: InnerOp, b: InnerOp) -> bool:
    return a.prefix == b.prefix and a.suffix == b.suffix


def is_left_neighbor(
    inner_spec: InnerSpec, left: Sequence[InnerOp], right: Sequence[InnerOp]
) -> bool:
    """
    `right` is the next path after `left`: below their common ancestors the left
    path turns exactly one branch left of the right path, then stays right-most
    while the right path stays left-most.
    """
    left, right = list(left), list(right)
    while left and right and _is_same_step(left[-1], right[-1]):
        left.pop()
        right.pop()
    if not left or not right:
        return False
    top_left, top_right = left.pop(), right.pop()
    if _get_branch(inner_spec, top_right) != _get_branch(inner_spec, top_left) + 1:
        return False
    return is_right_most(inner_spec, left) and is_left_most(inner_spec, right)


def _get_comparison_key(spec: ProofSpec, key: bytes) -> bytes:
    if spec.prehash_key_before_comparison:
        return compute_prehash(spec.leaf_spec.prehash_key, key)
    return key


def verify_non_existence(
    spec: ProofSpec, root: bytes, proof: NonExistenceProof, key: bytes
) -> None:
    if not spec.HasField("inner_spec"):
        raise IncompleteSpec("spec has no inner_spec")
    has_left, has_right = proof.HasField("left"), proof.HasField("right")
    if has_left:
        verify_existence(spec, root, proof.left, proof.left.key, proof.left.value)
    if has_right:
        verify_existence(spec, root, proof.right, proof.right.key, proof.right.value)
    if not has_left and not has_right:
        raise EmptyNonExistenceProof("non-existence proof has no left or right proof")
    compared = _get_comparison_key(spec, key)
    if has_right and compared >= _get_comparison_key(spec, proof.right.key):
        raise KeyOutOfRange("key is not left of the right proof")
    if has_left and compared <= _get_comparison_key(spec, proof.left.key):
        raise KeyOutOfRange("key is not right of the left proof")
    if not has_left:
        if not is_left_most(spec.inner_spec, proof.right.path):
            raise NotLeftMost("left proof missing and right proof is not left-most")
    elif not has_right:
        if not is_right_most(spec.inner_spec, proof.left.path):
            raise NotRightMost("right proof missing and left proof is not right-most")
    elif not is_left_neighbor(spec.inner_spec, proof.left.path, proof.right.path):
        raise NotNeighbors("left and right proofs are not neighbours")


def _decompress_existence(
    proof: CompressedExistenceProof, lookup: Sequence[InnerOp]
) -> ExistenceProof:
    path = []
    for index in proof.path:
        if not 0 <= index < len(lookup):
            raise InvalidLookupIndex(f"inner op index {index} outside lookup table")
        path.append(lookup[index])
    return ExistenceProof(
        key=proof.key,
        value=proof.value,
        leaf=proof.leaf if proof.HasField("leaf") else None,
        path=path,
    )


def decompress(proof: CommitmentProof) -> CommitmentProof:
    """Expand a CompressedBatchProof into a BatchProof; other proofs are returned unchanged."""
    if proof.WhichOneof("proof") != "compressed":
        return proof
    lookup = proof.compressed.lookup_inners
    entries = []
    for entry in proof.compressed.entries:
        kind = entry.WhichOneof("proof")
        if kind == "exist":
            entries.append(BatchEntry(exist=_decompress_existence(entry.exist, lookup)))
        elif kind == "nonexist":
            compressed = entry.nonexist
            nonexist = NonExistenceProof(key=compressed.key)
            if compressed.HasField("left"):
                nonexist.left.CopyFrom(_decompress_existence(compressed.left, lookup))
            if compressed.HasField("right"):
                nonexist.right.CopyFrom(_decompress_existence(compressed.right, lookup))
            entries.append(BatchEntry(nonexist=nonexist))
        else:
            entries.append(BatchEntry())
    return CommitmentProof(batch=BatchProof(entries=entries))


def _get_existence_proof(proof: CommitmentProof, key: bytes) -> ExistenceProof:
    kind = proof.WhichOneof("proof")
    if kind == "exist":
        return proof.exist
    if kind == "batch":
        for entry in proof.batch.entries:
            if entry.WhichOneof("proof") == "exist" and entry.exist.key == key:
                return entry.exist
        raise NoBatchEntry("batch holds no existence proof for the key")
    raise WrongProofType(f"expected an existence proof, got {kind}")


def _is_in_range(spec: ProofSpec, proof: NonExistenceProof, key: bytes) -> bool:
    compared = _get_comparison_key(spec, key)
    if proof.HasField("left") and not _get_comparison_key(spec, proof.left.key) < compared:
        return False
    if proof.HasField("right") and not compared < _get_comparison_key(spec, proof.right.key):
        return False
    return True


def _get_non_existence_proof(
    spec: ProofSpec, proof: CommitmentProof, key: bytes
) -> NonExistenceProof:
    kind = proof.WhichOneof("proof")
    if kind == "nonexist":
        return proof.nonexist
    if kind == "batch":
        for entry in proof.batch.entries:
            if entry.WhichOneof("proof") == "nonexist" and _is_in_range(spec, entry.nonexist, key):
                return entry.nonexist
        raise NoBatchEntry("batch holds no non-existence proof covering the key")
    raise WrongProofType(f"expected a non-existence proof, got {kind}")


def verify_membership(
    spec: ProofSpec, root: bytes, proof: CommitmentProof, key: bytes, value: bytes
) -> None:
    existence = _get_existence_proof(decompress(proof), key)
    verify_existence(spec, root, existence, key, value)


def verify_non_membership(
    spec: ProofSpec, root: bytes, proof: CommitmentProof, key: bytes
) -> None:
    non_existence = _get_non_existence_proof(spec, decompress(proof), key)
    verify_non_existence(spec, root, non_existence, key)


def is_member(
    spec: ProofSpec, root: bytes, proof: CommitmentProof, key: bytes, value: bytes
) -> bool:
    try:
        verify_membership(spec, root, proof, key, value)
    except Ics23Error:
        return False
    return True


def is_non_member(spec: ProofSpec, root: bytes, proof: CommitmentProof, key: bytes) -> bool:
    try:
        verify_non_membership(spec, root, proof, key)
    except Ics23Error:
        return False
    return True


def _check_chain_shape(
    specs: Sequence[ProofSpec], proofs: Sequence[CommitmentProof], keys: Sequence[bytes]
) -> None:
    if not proofs or not len(specs) == len(proofs) == len(keys):
        raise ChainShapeMismatch(
            f"{len(specs)} specs, {len(proofs)} proofs and {len(keys)} keys; need equal, non-zero"
        )


def _verify_chained_existence(
    specs: Sequence[ProofSpec],
    root: bytes,
    proofs: Sequence[CommitmentProof],
    keys: Sequence[bytes],
    value: bytes,
    start: int,
) -> None:
    """Each proof from `start` up commits the previous root under its key; the last is `root`."""
    subroot = value
    for i in range(start, len(proofs)):
        kind = proofs[i].WhichOneof("proof")
        if kind != "exist":
            raise WrongProofType(f"chained proof {i} is {kind}, expected exist")
        subroot = compute_existence_root(proofs[i].exist, specs[i])
        verify_existence(specs[i], subroot, proofs[i].exist, keys[len(keys) - 1 - i], value)
        value = subroot
    if subroot != root:
        raise WrongRoot("chained proof does not commit to the provided root")


def verify_chained_membership(
    specs: Sequence[ProofSpec],
    root: bytes,
    proofs: Sequence[CommitmentProof],
    keys: Sequence[bytes],
    value: bytes,
) -> None:
    """
    ibc-go MerkleProof.VerifyMembership. `specs` and `proofs` run innermost first
    (module store, then multistore); `keys` outermost first ([store name, key]).
    """
    _check_chain_shape(specs, proofs, keys)
    if not value:
        raise EmptyValue("membership proof needs a non-empty value")
    _verify_chained_existence(specs, root, proofs, keys, value, 0)


def verify_chained_non_membership(
    specs: Sequence[ProofSpec],
    root: bytes,
    proofs: Sequence[CommitmentProof],
    keys: Sequence[bytes],
) -> None:
    """
    ibc-go MerkleProof.VerifyNonMembership: the key is absent from the innermost
    store and that store's root is proven a member of every tree above it.
    """
    _check_chain_shape(specs, proofs, keys)
    kind = proofs[0].WhichOneof("proof")
    if kind != "nonexist":
        raise WrongProofType(f"innermost proof is {kind}, expected nonexist")
    subroot = compute_non_existence_root(proofs[0].nonexist)
    verify_non_existence(specs[0], subroot, proofs[0].nonexist, keys[-1])
    _verify_chained_existence(specs, root, proofs, keys, subroot, 1)
