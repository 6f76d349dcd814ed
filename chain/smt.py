"""A versioned, compacted sparse Merkle tree laid out as ics23 SmtSpec expects.

A key's path is sha256(key), 256 bits read from the most significant bit. A leaf hashes to
sha256(0x00 || sha256(key) || sha256(value)), an inner node to sha256(0x01 || left || right), an empty
subtree to 32 zero bytes (so the empty tree's root is 32 zero bytes), and a subtree holding exactly one
leaf is that leaf: inner nodes exist only where at least two leaves lie below.

Nodes are immutable and named by where and when they were written, never by their hash:
an inner node by (depth, path prefix, version), a leaf by (sha256(key), version). A parent keeps
each child's hash and version (and a leaf child's key hash), so updating the tree reads only the inner
nodes along the changed paths, and a leaf that is pushed down or pulled up by its neighbours keeps
its name. Every node an update replaces or removes is reported as stale, which is what lets the
store prune old versions without reference counts.

A reference to a subtree (a "ref") is None when empty, (hash, version) for an inner node and
(hash, version, key_hash) for a leaf, the version as 8 big-endian bytes ready to name nodes with.
An inner node is kept, in memory as in the database, as its two refs encoded (encode_ref), and
decoded only where a proof or a read walks the tree. Readers are passed in as functions so this
module never sees the database: `get_inner(node_id) -> encoded node`, `get_leaf(node_id) -> (key, value)`.

The batch update (apply_batch) is native code, chain/_smt.c: it is the chain's hottest code, and in
Python it cost 25-30 µs per changed key (each rewrites ~5 inner nodes), in C about a third of that,
mostly the store's node reads and the allocation of the new nodes (keeping nodes encoded made the
update a further third cheaper and the commit's encoding pass go away). tests/smt_reference.py keeps
the Python version, which the C code must match bit for bit; the rest of this module (proofs, reads,
encodings) stays in Python.
"""

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from chain import _smt
from chain.proto.cosmos.ics23.v1 import proofs_pb2

KEY_BITS = 256
EMPTY_HASH = bytes(32)
LEAF_PREFIX = b"\x00"
INNER_PREFIX = b"\x01"
VERSION_BYTES = 8

TAG_EMPTY = 0
TAG_INNER = 1
TAG_LEAF = 2

LEAF_OP = proofs_pb2.LeafOp(
    hash=proofs_pb2.SHA256,
    prehash_key=proofs_pb2.SHA256,
    prehash_value=proofs_pb2.SHA256,
    length=proofs_pb2.NO_PREFIX,
    prefix=LEAF_PREFIX,
)

Ref = tuple | None
InnerNode = tuple[Ref, Ref]
GetInner = Callable[[bytes], bytes]
GetLeaf = Callable[[bytes], tuple[bytes, bytes]]

_sha256 = hashlib.sha256


class SmtError(Exception):
    pass


class CorruptNode(SmtError):
    """A stored node does not decode; the database is damaged."""


@dataclass
class Batch:
    """What one batch update produced: the new root and the nodes to write and to retire."""

    root: Ref
    inner_nodes: dict[bytes, bytes] = field(default_factory=dict)  # node id -> encoded node
    leaves: dict[bytes, tuple[bytes, bytes]] = field(default_factory=dict)
    stale_inner: list[bytes] = field(default_factory=list)
    stale_leaves: list[bytes] = field(default_factory=list)


def compute_key_hash(key: bytes) -> bytes:
    return _sha256(key).digest()


def compute_leaf_hash(key_hash: bytes, value: bytes) -> bytes:
    return _sha256(LEAF_PREFIX + key_hash + _sha256(value).digest()).digest()


def compute_root_hash(root: Ref) -> bytes:
    return EMPTY_HASH if root is None else root[0]


def compute_inner_hash(left: Ref, right: Ref) -> bytes:
    return _sha256(INNER_PREFIX + compute_root_hash(left) + compute_root_hash(right)).digest()


def is_leaf(ref: Ref) -> bool:
    return ref is not None and len(ref) == 3


def encode_version(version: int) -> bytes:
    return version.to_bytes(VERSION_BYTES, "big")


def encode_position(depth: int, bits: int) -> bytes:
    """The place of the subtree at `depth` whose path prefix is the `depth`-bit integer `bits`.

    The prefix is written with a marker bit above it, so the depth needs no separate field.
    """
    return ((1 << depth) | bits).to_bytes((depth >> 3) + 1, "big")


def inner_node_id(depth: int, bits: int, version: bytes) -> bytes:
    return encode_position(depth, bits) + version


def leaf_node_id(key_hash: bytes, version: bytes) -> bytes:
    return key_hash + version


_REF_TAGS = {2: bytes((TAG_INNER,)), 3: bytes((TAG_LEAF,))}
_EMPTY_REF = bytes((TAG_EMPTY,))


def encode_ref(ref: Ref) -> bytes:
    return _EMPTY_REF if ref is None else _REF_TAGS[len(ref)] + b"".join(ref)


def decode_ref_at(data: bytes, pos: int) -> tuple[Ref, int]:
    tag = data[pos]
    if tag == TAG_EMPTY:
        return None, pos + 1
    end = pos + 41
    if tag == TAG_INNER and end <= len(data):
        return (data[pos + 1 : pos + 33], data[pos + 33 : end]), end
    if tag == TAG_LEAF and end + 32 <= len(data):
        return (data[pos + 1 : pos + 33], data[pos + 33 : end], data[end : end + 32]), end + 32
    raise CorruptNode(f"bad subtree reference tag {tag} at offset {pos}")


def decode_inner(data: bytes) -> InnerNode:
    try:
        left, pos = decode_ref_at(data, 0)
        right, pos = decode_ref_at(data, pos)
    except IndexError as exc:
        raise CorruptNode("truncated inner node") from exc
    if pos != len(data):
        raise CorruptNode("trailing bytes after inner node")
    return left, right


def encode_leaf(key: bytes, value: bytes) -> bytes:
    return len(key).to_bytes(4, "big") + key + value


def decode_leaf(data: bytes) -> tuple[bytes, bytes]:
    size = int.from_bytes(data[:4], "big")
    if len(data) < 4 + size:
        raise CorruptNode("truncated leaf")
    return data[4 : 4 + size], data[4 + size :]


def apply_batch(
    root: Ref,
    changes: Mapping[bytes, bytes | None],
    version: int,
    get_inner: GetInner,
    cache: dict[bytes, bytes] | None = None,
) -> Batch:
    """Set (value) or delete (None) many keys in one pass down the tree, writing nodes at `version`.

    Changes are sorted by key hash, so every subtree is visited once with the slice of changes
    that falls into it. Setting a key to the value it already has, or deleting an absent key,
    leaves the tree (and its nodes) untouched. Inner nodes are looked up in `cache` (node id ->
    encoded node) before get_inner is called; the nodes the batch replaces are removed from it.
    """
    return Batch(*_smt.apply_batch(root, changes, encode_version(version), {} if cache is None else cache, get_inner))


def _walk(root: Ref, key_int: int, get_inner: GetInner) -> tuple[list[tuple[InnerNode, int]], Ref]:
    """Inner nodes (with the branch taken) from the root towards `key_int`, and the ref it ends on."""
    path = []
    ref = root
    depth = 0
    while ref is not None and len(ref) == 2:
        node = decode_inner(get_inner(inner_node_id(depth, key_int >> (KEY_BITS - depth), ref[1])))
        bit = (key_int >> (KEY_BITS - 1 - depth)) & 1
        path.append((node, bit))
        ref = node[bit]
        depth += 1
    return path, ref


def get_value(root: Ref, key: bytes, get_inner: GetInner, get_leaf: GetLeaf) -> bytes | None:
    key_hash = compute_key_hash(key)
    _, end = _walk(root, int.from_bytes(key_hash, "big"), get_inner)
    if end is None or end[2] != key_hash:
        return None
    return get_leaf(leaf_node_id(key_hash, end[1]))[1]


def _inner_ops(path: list[tuple[InnerNode, int]]) -> list[proofs_pb2.InnerOp]:
    ops = []
    for node, bit in reversed(path):
        sibling = node[1 - bit]
        sibling_hash = EMPTY_HASH if sibling is None else sibling[0]
        if bit == 0:
            ops.append(proofs_pb2.InnerOp(hash=proofs_pb2.SHA256, prefix=INNER_PREFIX, suffix=sibling_hash))
        else:
            ops.append(proofs_pb2.InnerOp(hash=proofs_pb2.SHA256, prefix=INNER_PREFIX + sibling_hash))
    return ops


def _existence_proof(
    path: list[tuple[InnerNode, int]], leaf: tuple, get_leaf: GetLeaf
) -> proofs_pb2.ExistenceProof:
    key, value = get_leaf(leaf_node_id(leaf[2], leaf[1]))
    return proofs_pb2.ExistenceProof(key=key, value=value, leaf=LEAF_OP, path=_inner_ops(path))


def _prove_leaf(root: Ref, leaf: tuple, get_inner: GetInner, get_leaf: GetLeaf) -> proofs_pb2.ExistenceProof:
    path, _ = _walk(root, int.from_bytes(leaf[2], "big"), get_inner)
    return _existence_proof(path, leaf, get_leaf)


def _outermost_leaf(ref: Ref, depth: int, bits: int, side: int, get_inner: GetInner) -> tuple:
    """The leftmost (side 0) or rightmost (side 1) leaf of the subtree `ref` at (depth, bits)."""
    while len(ref) == 2:
        node = decode_inner(get_inner(inner_node_id(depth, bits, ref[1])))
        branch = side if node[side] is not None else 1 - side
        ref = node[branch]
        bits = (bits << 1) | branch
        depth += 1
    return ref


def _neighbour(
    path: list[tuple[InnerNode, int]], key_int: int, side: int, get_inner: GetInner
) -> tuple | None:
    """The nearest leaf on `side` (0 left, 1 right) of the path to `key_int`, off the path."""
    for depth in range(len(path) - 1, -1, -1):
        node, bit = path[depth]
        other = node[side]
        if bit != side and other is not None:
            bits = ((key_int >> (KEY_BITS - depth)) << 1) | side
            return _outermost_leaf(other, depth + 1, bits, 1 - side, get_inner)
    return None


def prove(
    root: Ref, key: bytes, get_inner: GetInner, get_leaf: GetLeaf
) -> tuple[bytes | None, proofs_pb2.CommitmentProof]:
    """The value under `key` and an ics23 proof of it, or None and a proof of its absence.

    An absence proof carries the neighbours of sha256(key) in the tree: the leaf just before and
    the one just after it, or only one of them at either end. The empty tree has no neighbours, so
    its absence proof holds only the key (ics23 verifiers cannot check it; the root, 32 zero bytes,
    is itself the evidence).
    """
    key_hash = compute_key_hash(key)
    key_int = int.from_bytes(key_hash, "big")
    path, end = _walk(root, key_int, get_inner)
    if end is not None and end[2] == key_hash:
        proof = _existence_proof(path, end, get_leaf)
        return proof.value, proofs_pb2.CommitmentProof(exist=proof)
    if end is None:
        left = _neighbour(path, key_int, 0, get_inner)
        right = _neighbour(path, key_int, 1, get_inner)
    elif end[2] < key_hash:
        left, right = end, _neighbour(path, key_int, 1, get_inner)
    else:
        left, right = _neighbour(path, key_int, 0, get_inner), end
    absent = proofs_pb2.NonExistenceProof(key=key)
    if left is not None:
        absent.left.CopyFrom(_prove_leaf(root, left, get_inner, get_leaf))
    if right is not None:
        absent.right.CopyFrom(_prove_leaf(root, right, get_inner, get_leaf))
    return None, proofs_pb2.CommitmentProof(nonexist=absent)
