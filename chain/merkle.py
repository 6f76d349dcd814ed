"""The RFC 6962 simple Merkle tree of CometBFT's crypto/merkle, also the Cosmos multistore's app hash.

A leaf hashes as sha256(0x00 || item), an inner node as sha256(0x01 || left || right). A list of n
items splits into its first k items and the rest, k the largest power of two below n.
"""

import hashlib
from collections.abc import Sequence
from typing import NamedTuple

LEAF_PREFIX = b"\x00"
INNER_PREFIX = b"\x01"


class PathStep(NamedTuple):
    """One level of an audit path: the sibling's hash, and whether it is the right child."""

    sibling: bytes
    sibling_on_right: bool


def compute_leaf_hash(item: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + item).digest()


def compute_inner_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(INNER_PREFIX + left + right).digest()


def compute_split_point(n: int) -> int:
    """The largest power of two strictly below n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def compute_root(items: Sequence[bytes]) -> bytes:
    """crypto/merkle.HashFromByteSlices: no items hash as sha256 of nothing."""
    if not items:
        return hashlib.sha256(b"").digest()
    if len(items) == 1:
        return compute_leaf_hash(items[0])
    k = compute_split_point(len(items))
    return compute_inner_hash(compute_root(items[:k]), compute_root(items[k:]))


def compute_audit_path(items: Sequence[bytes], index: int) -> list[PathStep]:
    """The siblings on the way from the leaf of items[index] up to the root, the leaf's sibling first."""
    if len(items) == 1:
        return []
    k = compute_split_point(len(items))
    if index < k:
        return compute_audit_path(items[:k], index) + [PathStep(compute_root(items[k:]), True)]
    return compute_audit_path(items[k:], index - k) + [PathStep(compute_root(items[:k]), False)]


def compute_aunts(items: Sequence[bytes], index: int) -> list[bytes]:
    """The audit path as crypto/merkle.Proof's aunts: the sibling hashes alone."""
    return [step.sibling for step in compute_audit_path(items, index)]
