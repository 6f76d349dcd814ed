"""The native batch update (chain/_smt.c) against the Python oracle (tests/smt_reference.py).

Both must produce identical Batches and read exactly the same inner nodes, in the same order; bad
input or a failing reader must raise cleanly, leaking nothing.
"""

import gc
import random
import sys
import tracemalloc
from collections import Counter
from types import MappingProxyType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain import smt
from chain._smt import decode_key_list, encode_key_list
from tests.smt_reference import apply_batch_reference, encode_inner_reference, encode_key_list_reference

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)

KEYS = st.integers(0, 3000).map(lambda i: b"k" + i.to_bytes(2, "big"))
# Few distinct values, so that setting a key to the value it already has is common.
VALUES = st.none() | st.sampled_from([b"", b"v1", b"v2", b"value three" * 4])
BATCHES = st.one_of(
    st.dictionaries(KEYS, VALUES, min_size=1, max_size=1),
    st.dictionaries(KEYS, VALUES, max_size=8),
    st.dictionaries(KEYS, VALUES, min_size=100, max_size=400),
)


class Tree:
    """The latest version of a tree: its root and its nodes, retired ones removed as a store prunes."""

    def __init__(self):
        self.root = None
        self.inner = {}
        self.leaves = {}
        self.reads = []

    def get_inner(self, node_id):
        self.reads.append(node_id)
        return self.inner[node_id]

    def apply(self, changes, version):
        """Both implementations on the same tree must agree; then the tree moves to the result."""
        native = smt.apply_batch(self.root, changes, version, self.get_inner)
        native_reads, self.reads = self.reads, []
        reference = apply_batch_reference(self.root, changes, version, self.get_inner)
        reference_reads, self.reads = self.reads, []
        assert native == reference
        assert list(native.inner_nodes) == list(reference.inner_nodes)
        assert list(native.leaves) == list(reference.leaves)
        assert native_reads == reference_reads
        for node_id in native.stale_inner:
            del self.inner[node_id]
        for node_id in native.stale_leaves:
            del self.leaves[node_id]
        self.inner.update(native.inner_nodes)
        self.leaves.update(native.leaves)
        self.root = native.root
        return native

    def get_value(self, key):
        return smt.get_value(self.root, key, self.inner.__getitem__, self.leaves.__getitem__)


@FUZZ
@given(batches=st.lists(BATCHES, min_size=1, max_size=6), first=st.integers(0, 2**64 - 7))
def test_native_batches_match_the_reference(batches, first):
    tree, state = Tree(), {}
    for version, changes in enumerate(batches, first):
        tree.apply(changes, version)
        for key, value in changes.items():
            if value is None:
                state.pop(key, None)
            else:
                state[key] = value
        assert all(tree.get_value(key) == state.get(key) for key in changes)
    assert len(tree.leaves) == len(state)


def test_large_batches_match_the_reference():
    rnd = random.Random(7)
    keys = [rnd.randbytes(rnd.randrange(1, 40)) for _ in range(5000)]
    tree = Tree()
    tree.apply({key: b"initial" for key in keys}, 1)
    for version in range(2, 6):
        changes = {key: rnd.choice([None, b"initial", b"x" * rnd.randrange(100)]) for key in rnd.sample(keys, 2000)}
        changes.update({rnd.randbytes(8): b"new" for _ in range(200)})
        tree.apply(changes, version)


def test_untouched_tree_is_returned_as_is():
    tree = Tree()
    tree.apply({b"a": b"1", b"b": b"2", b"c": b"3"}, 1)
    root = tree.root
    batch = tree.apply({b"a": b"1", b"zz": None}, 2)
    assert batch.root is root
    assert (batch.inner_nodes, batch.leaves, batch.stale_inner, batch.stale_leaves) == ({}, {}, [], [])
    assert smt.apply_batch(root, {}, 3, tree.get_inner).root is root


def _inner_ref(seed):
    return (bytes([seed]) * 32, (1).to_bytes(8, "big"))


def _leaf_ref(key):
    return (bytes(32), (1).to_bytes(8, "big"), smt.compute_key_hash(key))


def _depth(node_id):
    return int.from_bytes(node_id[:-8], "big").bit_length() - 1


@pytest.mark.parametrize("keys", [[b"a"], [b"a", b"b", b"c", b"d"]])
@pytest.mark.parametrize("bottom", ["inner", "leaf"])
def test_a_tree_deeper_than_the_key_hash_fails_after_the_same_reads(keys, bottom):
    """A corrupt store can chain inner nodes past depth 256; both versions fail at the same place."""
    other = _leaf_ref(b"elsewhere")

    def get_inner(node_id):
        reads.append(node_id)
        if bottom == "leaf" and _depth(node_id) == 255:
            return encode_inner_reference((other, other))
        return encode_inner_reference((_inner_ref(1), _inner_ref(1)))

    results = []
    for apply_batch in (smt.apply_batch, apply_batch_reference):
        reads = []
        with pytest.raises(ValueError):
            apply_batch(_inner_ref(1), dict.fromkeys(keys, b"v"), 2, get_inner)
        results.append(reads)
    assert results[0] == results[1]
    assert max(map(_depth, results[0])) == (256 if bottom == "inner" else 255)


def _small_tree():
    tree = Tree()
    tree.apply({bytes([i]) * 3: b"value" for i in range(64)}, 1)
    return tree


def test_cached_nodes_are_not_read_and_the_replaced_ones_leave_the_cache():
    tree = _small_tree()
    changes = {bytes([i]) * 3: b"changed" for i in range(0, 64, 5)} | {b"new": b"1", bytes([7]) * 3: None}
    reference = apply_batch_reference(tree.root, changes, 2, tree.get_inner)
    all_reads, tree.reads = tree.reads, []
    cache = {node_id: tree.inner[node_id] for node_id in list(tree.inner)[::2]}
    cached = dict(cache)
    assert smt.apply_batch(tree.root, changes, 2, tree.get_inner, cache) == reference
    assert tree.reads == [node_id for node_id in all_reads if node_id not in cached]
    assert 0 < len(tree.reads) < len(all_reads)
    # the replaced nodes leave the cache; the others stay
    assert cache == {i: node for i, node in cached.items() if i not in reference.stale_inner}
    assert set(cached) & set(reference.stale_inner)


class ReaderFailed(Exception):
    pass


@pytest.mark.parametrize("size", [1, 40])
def test_reader_exception_propagates_from_every_read(size):
    tree = _small_tree()
    changes = {bytes([i]) * 3: b"changed" for i in range(size)}
    smt.apply_batch(tree.root, changes, 2, tree.get_inner)
    reads = len(tree.reads)
    assert reads > 5
    for fail_at in range(reads):
        calls = []

        def get_inner(node_id):
            if len(calls) == fail_at:
                raise ReaderFailed(node_id)
            calls.append(node_id)
            return tree.inner[node_id]

        with pytest.raises(ReaderFailed):
            smt.apply_batch(tree.root, changes, 2, get_inner)


INNER = b"\x01" + b"h" * 32 + b"v" * 8
LEAF = b"\x02" + b"h" * 32 + b"v" * 8 + b"k" * 32
BAD_NODES = [
    None,
    7,
    (None, None),
    "\x00\x00",
    bytearray(b"\x00\x00"),
    b"",
    b"\x00",
    b"\x00\x00\x00",
    b"\x03\x00",
    b"\x00" + INNER[:-1],
    b"\x00" + LEAF[:-1],
    INNER + LEAF + b"\x00",
    LEAF[:41] + b"\x00",
]


@pytest.mark.parametrize("node", BAD_NODES, ids=repr)
def test_malformed_nodes_raise_cleanly(node):
    tree = _small_tree()
    with pytest.raises((TypeError, ValueError)):
        smt.apply_batch(tree.root, {b"\x05\x05\x05": b"changed"}, 2, lambda node_id: node)
    with pytest.raises((TypeError, ValueError)):
        smt.apply_batch(tree.root, {bytes([i]) * 3: b"changed" for i in range(9)}, 2, lambda node_id: node)


@pytest.mark.parametrize("root", [b"", (b"x" * 32,), (b"x" * 32, 1), [b"x" * 32, b"v" * 8]], ids=repr)
def test_malformed_root_raises(root):
    with pytest.raises(ValueError):
        smt.apply_batch(root, {b"a": b"1"}, 1, {}.__getitem__)


@pytest.mark.parametrize("changes", [{"a": b"1"}, {b"a": "1"}, {b"a": 1}, {1: None}])
def test_changes_must_be_bytes(changes):
    with pytest.raises(TypeError):
        smt.apply_batch(None, changes, 1, {}.__getitem__)


def test_changes_may_be_any_mapping_without_repeated_keys():
    tree = _small_tree()
    changes = {bytes([i]) * 3: b"changed" for i in range(0, 100, 3)}
    batch = smt.apply_batch(tree.root, MappingProxyType(changes), 2, tree.inner.__getitem__)
    assert batch == apply_batch_reference(tree.root, changes, 2, tree.inner.__getitem__)

    class Repeating(dict):
        def items(self):
            return [*super().items(), *super().items()]

    with pytest.raises(ValueError):
        smt.apply_batch(tree.root, Repeating(changes), 2, tree.inner.__getitem__)


def _contents(batch, old=()):
    """The objects a Batch reaches, and how many references to each it holds (not counting those
    that the objects in `old`, which were there before, hold)."""
    held, objects = Counter(), {}

    def hold(obj):
        held[id(obj)] += 1
        if id(obj) not in objects:
            objects[id(obj)] = obj
            if isinstance(obj, tuple) and id(obj) not in old:
                for part in obj:
                    hold(part)

    hold(batch.root)
    for node_id, node in batch.inner_nodes.items():
        hold(node_id)
        hold(node)
    for node_id, pair in batch.leaves.items():
        hold(node_id)
        hold(pair)
    for node_id in batch.stale_inner + batch.stale_leaves:
        hold(node_id)
    objects.pop(id(None), None)
    return held, objects


def _refcounts(objects):
    return {key: sys.getrefcount(obj) for key, obj in objects.items()}


def test_reference_counts_of_the_result():
    """Each object of a Batch is referenced exactly as often as the Batch (and the inputs) hold it."""
    alone = _refcounts({0: bytearray()})[0]  # the count of an object that only `objects` holds
    tree = _small_tree()
    _, old = _contents(smt.Batch(tree.root, tree.inner))
    before = _refcounts(old)
    changes = {bytes([i]) * 3: b"changed %d" % i for i in range(0, 128, 3)}
    inputs = {id(obj) for item in changes.items() for obj in item}
    batch = smt.apply_batch(tree.root, changes, 2, tree.inner.__getitem__)
    held, objects = _contents(batch, old)
    after = _refcounts(objects)
    for key, obj in objects.items():
        if key in before:
            expected = before[key] + 1 + held[key]  # and now `objects` too
        elif key in inputs:
            expected = alone + 1 + held[key]  # and the changes dict
        else:
            expected = alone + held[key]
        assert after[key] == expected, obj


def test_no_memory_growth_over_many_batches():
    """Successes and failures (of the reader, of a node) leave nothing behind."""
    tree = _small_tree()
    changes = {bytes([i]) * 3: b"changed" for i in range(0, 64, 2)}
    reads = []

    def failing(node_id):
        reads.append(node_id)
        if len(reads) % 7 == 0:
            raise ReaderFailed
        return tree.inner[node_id]

    def run(times):
        for _ in range(times):
            smt.apply_batch(tree.root, changes, 2, tree.inner.__getitem__)
            try:
                smt.apply_batch(tree.root, changes, 2, failing)
            except ReaderFailed:
                pass
            try:
                smt.apply_batch(tree.root, changes, 2, lambda node_id: b"bad")
            except ValueError:
                pass
            reads.clear()
        gc.collect()
        return tracemalloc.get_traced_memory()[0]

    tracemalloc.start()
    try:
        start = run(20)
        growth = run(500) - start
    finally:
        tracemalloc.stop()
    assert growth < 2048


refs = st.one_of(
    st.none(),
    st.tuples(st.binary(min_size=32, max_size=32), st.binary(min_size=8, max_size=8)),
    st.tuples(st.binary(min_size=32, max_size=32), st.binary(min_size=8, max_size=8), st.binary(min_size=32, max_size=32)),
)


@settings(max_examples=300, deadline=None)
@given(st.tuples(refs, refs))
def test_an_encoded_node_decodes_back(node):
    assert smt.decode_inner(encode_inner_reference(node)) == node


@pytest.mark.parametrize("node", [n for n in BAD_NODES if isinstance(n, bytes)], ids=repr)
def test_decoding_a_malformed_node_raises(node):
    with pytest.raises(smt.CorruptNode):
        smt.decode_inner(node)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40), st.lists(st.binary(max_size=60), max_size=30))
def test_native_key_list_matches_the_reference_and_decodes_back(prefix, ids):
    encoded = encode_key_list(prefix, ids)
    assert encoded == encode_key_list_reference([prefix + i for i in ids])
    assert decode_key_list(encoded) == [prefix + i for i in ids]


@pytest.mark.parametrize("prefix, ids", [(b"n", [b"ok", "text"]), (b"n", [b"x" * 0xFFFF]), (b"n", (b"tuple",))])
def test_key_list_rejects_what_it_cannot_encode(prefix, ids):
    with pytest.raises((TypeError, ValueError)):
        encode_key_list(prefix, ids)


@pytest.mark.parametrize("data", [b"\x00", b"\x00\x05abcd", b"\x00\x01a\x00"])
def test_a_truncated_key_list_is_refused(data):
    with pytest.raises(ValueError):
        decode_key_list(data)
