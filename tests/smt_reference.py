"""The pure-Python batch update of chain.smt, the oracle that the native one (chain/_smt.c) must match.

It was chain.smt.apply_batch until that moved to C; it is kept as it was but for reading and
writing nodes in their encoded form, so any difference between the two is a bug in the C code.
"""

import hashlib
from bisect import bisect_left
from collections.abc import Mapping

from chain.smt import (
    EMPTY_HASH,
    INNER_PREFIX,
    KEY_BITS,
    Batch,
    GetInner,
    Ref,
    compute_key_hash,
    compute_leaf_hash,
    decode_inner,
    encode_position,
    encode_version,
    leaf_node_id,
)

_sha256 = hashlib.sha256


def apply_batch_reference(
    root: Ref, changes: Mapping[bytes, bytes | None], version: int, get_inner: GetInner
) -> Batch:
    """Set (value) or delete (None) many keys in one pass down the tree, writing nodes at `version`.

    Changes are sorted by key hash, so every subtree is visited once with the slice of changes
    that falls into it. Setting a key to the value it already has, or deleting an absent key,
    leaves the tree (and its nodes) untouched.
    """
    entries = sorted((compute_key_hash(key), key, value) for key, value in changes.items())
    ints = [int.from_bytes(kh, "big") for kh, _, _ in entries]
    stamp = encode_version(version)
    refs = [
        None if value is None else (compute_leaf_hash(kh, value), stamp, kh)
        for kh, _, value in entries
    ]
    batch = Batch(root)
    kept = set()
    stale_inner = batch.stale_inner
    stale_leaves = batch.stale_leaves
    nodes = batch.inner_nodes

    def join(position: bytes, left: Ref, right: Ref) -> Ref:
        if left is None:
            if right is None or len(right) == 3:
                return right
        elif right is None and len(left) == 3:
            return left
        digest = _sha256(
            INNER_PREFIX
            + (EMPTY_HASH if left is None else left[0])
            + (EMPTY_HASH if right is None else right[0])
        ).digest()
        nodes[position + stamp] = encode_inner_reference((left, right))
        return digest, stamp

    def build(depth: int, items: list[tuple[int, tuple]]) -> Ref:
        if not items:
            return None
        if len(items) == 1:
            return items[0][1]
        bits = items[0][0] >> (KEY_BITS - depth)
        split = ((bits << 1) | 1) << (KEY_BITS - 1 - depth)
        mid = bisect_left(items, split, key=_first)
        left = build(depth + 1, items[:mid])
        return join(encode_position(depth, bits), left, build(depth + 1, items[mid:]))

    def update(ref: Ref, depth: int, lo: int, hi: int) -> Ref:
        if ref is None:
            return build(depth, [(ints[i], refs[i]) for i in range(lo, hi) if refs[i] is not None])
        if len(ref) == 3:
            old_int = int.from_bytes(ref[2], "big")
            at = bisect_left(ints, old_int, lo, hi)
            if at < hi and ints[at] == old_int:
                new = refs[at]
                if new is not None and new[0] == ref[0]:
                    kept.add(at)
                    items = [(ints[i], ref if i == at else refs[i]) for i in range(lo, hi)]
                    items = [item for item in items if item[1] is not None]
                else:
                    stale_leaves.append(leaf_node_id(ref[2], ref[1]))
                    items = [(ints[i], refs[i]) for i in range(lo, hi) if refs[i] is not None]
            else:
                items = [(ints[i], refs[i]) for i in range(lo, hi) if refs[i] is not None]
                items.insert(bisect_left(items, old_int, key=_first), (old_int, ref))
            return build(depth, items)
        if hi - lo == 1:
            return update_path(ref, depth, lo)
        bits = ints[lo] >> (KEY_BITS - depth)
        position = encode_position(depth, bits)
        left, right = decode_inner(get_inner(position + ref[1]))
        mid = bisect_left(ints, ((bits << 1) | 1) << (KEY_BITS - 1 - depth), lo, hi)
        new_left = update(left, depth + 1, lo, mid) if mid > lo else left
        new_right = update(right, depth + 1, mid, hi) if hi > mid else right
        if new_left is left and new_right is right:
            return ref
        stale_inner.append(position + ref[1])
        return join(position, new_left, new_right)

    def update_path(ref: Ref, depth: int, at: int) -> Ref:
        """`update` for a subtree that receives a single change: a loop down and back up."""
        key_int = ints[at]
        top = ref
        trail = []
        while ref is not None and len(ref) == 2:
            position = encode_position(depth, key_int >> (KEY_BITS - depth))
            node_id = position + ref[1]
            left, right = decode_inner(get_inner(node_id))
            bit = (key_int >> (KEY_BITS - 1 - depth)) & 1
            trail.append((position, node_id, left, right, bit))
            ref = right if bit else left
            depth += 1
        new = refs[at]
        if ref is None or ref[2] == entries[at][0]:
            if ref is not None:
                if new is not None and new[0] == ref[0]:
                    kept.add(at)
                    return top
                stale_leaves.append(leaf_node_id(ref[2], ref[1]))
        else:
            new = update(ref, depth, at, at + 1)
        if new is ref:
            return top
        for position, node_id, left, right, bit in reversed(trail):
            stale_inner.append(node_id)
            new = join(position, left, new) if bit else join(position, new, right)
        return new

    if entries:
        batch.root = update(root, 0, 0, len(entries))
    for i, (kh, key, value) in enumerate(entries):
        if value is not None and i not in kept:
            batch.leaves[leaf_node_id(kh, stamp)] = (key, value)
    return batch


def _first(item: tuple) -> int:
    return item[0]


def encode_inner_reference(node) -> bytes:
    """An inner node as the store keeps it: each ref as a tag byte (0, 1, 2) and its fields."""
    return b"".join(b"\x00" if ref is None else bytes((len(ref) - 1,)) + b"".join(ref) for ref in node)


def encode_key_list_reference(keys) -> bytes:
    return b"".join(len(key).to_bytes(2, "big") + key for key in keys)
