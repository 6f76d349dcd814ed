"""The versioned Merkle store on real LevelDB: state, app hashes, ics23 proofs, pruning, crashes."""

import hashlib
import json
import os
import subprocess
import sys
import tempfile

import plyvel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain import smt
from chain import store as store_module
from chain.store import (
    INNER,
    LEAF,
    ROOTS,
    STALE,
    Branch,
    BranchOverStore,
    HeightNotCommitted,
    HeightNotNext,
    HeightPruned,
    InvalidKey,
    InvalidValue,
    Store,
    StoreError,
    UnknownStore,
    decode_roots,
    state_key,
)
from ibc import ics23
from tests.helpers import REPO, require_vectors

STORES = ("bank", "market", "ibc")
CHAINED_SPECS = [ics23.SMT_SPEC, ics23.TENDERMINT_SPEC]
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def reference_root(state: dict[bytes, bytes]) -> bytes:
    """The SmtSpec root computed from scratch, bit by bit, independently of chain.smt."""

    def bit(path: bytes, depth: int) -> int:
        return (path[depth // 8] >> (7 - depth % 8)) & 1

    def subtree(leaves: list[tuple[bytes, bytes]], depth: int) -> bytes:
        if not leaves:
            return bytes(32)
        if len(leaves) == 1:
            path, value = leaves[0]
            return hashlib.sha256(b"\x00" + path + hashlib.sha256(value).digest()).digest()
        left = subtree([leaf for leaf in leaves if not bit(leaf[0], depth)], depth + 1)
        right = subtree([leaf for leaf in leaves if bit(leaf[0], depth)], depth + 1)
        return hashlib.sha256(b"\x01" + left + right).digest()

    return subtree([(hashlib.sha256(k).digest(), v) for k, v in state.items()], 0)


def key_hash(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()


def absent_key(present: set[bytes], where: str) -> bytes:
    """A key not in `present` whose sha256 sorts before all of them, after all, or between."""
    hashes = sorted(key_hash(k) for k in present)
    for i in range(100_000):
        candidate = b"probe-%d" % i
        h = key_hash(candidate)
        if candidate in present:
            continue
        if where == "left" and h < hashes[0] or where == "right" and h > hashes[-1]:
            return candidate
        if where == "middle" and hashes[0] < h < hashes[-1]:
            return candidate
    raise AssertionError("no probe key found")


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "state.db"), STORES)
    yield s
    s.close()


def stage_commit(store: Store, height: int, changes) -> bytes:
    app_hash = store.stage(height, changes)
    store.commit()
    return app_hash


def count_keys(path: str, space: bytes) -> int:
    db = plyvel.DB(path)
    try:
        return sum(1 for _ in db.iterator(prefix=space, include_value=False))
    finally:
        db.close()


# --- state across commits ------------------------------------------------------------------


def test_set_get_delete_across_commits(store):
    assert store.height == 0 and store.app_hash == b""
    stage_commit(store, 1, {"bank": {b"alice": b"100", b"bob": b"5"}, "market": {b"o1": b"x"}})
    assert (store.height, store.get("bank", b"alice"), store.get("market", b"o1")) == (1, b"100", b"x")
    stage_commit(store, 2, {"bank": {b"alice": None, b"bob": b"6"}})
    assert store.get("bank", b"alice") is None
    assert store.get("bank", b"bob") == b"6"
    assert store.get("market", b"o1") == b"x"
    assert store.get_at("bank", b"alice", 1) == b"100"
    assert store.get_at("bank", b"alice", 2) is None
    assert store.get_at("bank", b"bob", 1) == b"5"


def test_staged_changes_are_invisible_until_commit(store):
    stage_commit(store, 1, {"bank": {b"k": b"v1"}})
    store.stage(2, {"bank": {b"k": b"v2", b"new": b"n"}})
    assert store.get("bank", b"k") == b"v1"
    assert list(store.iterate("bank")) == [(b"k", b"v1")]
    assert store.height == 1
    store.commit()
    assert store.get("bank", b"k") == b"v2"
    assert list(store.iterate("bank")) == [(b"k", b"v2"), (b"new", b"n")]


def test_genesis_and_first_block_commit_together(store):
    genesis_hash = store.stage(0, {"bank": {b"a": b"1"}})
    block_hash = store.stage(1, {"bank": {b"b": b"2"}})
    store.commit()
    assert (store.height, store.app_hash) == (1, block_hash)
    assert store.get_at("bank", b"b", 0) is None
    assert store.get_at("bank", b"a", 0) == b"1"
    value, proofs = store.prove("bank", b"a", 0)
    ics23.verify_chained_membership(CHAINED_SPECS, genesis_hash, proofs, [b"bank", b"a"], value)


def test_height_without_changes_keeps_root_and_gets_a_record(store):
    first = stage_commit(store, 1, {"bank": {b"k": b"v"}})
    second = stage_commit(store, 2, {})
    assert first == second
    assert store.get_at("bank", b"k", 2) == b"v"
    assert store.store_root("bank", 2) == store.store_root("bank", 1)


def test_iterate_is_ordered_by_raw_key_within_bounds(store):
    keys = [b"a", b"ab", b"b", b"b\x00", b"b\xff", b"c", b"\xff\xff"]
    stage_commit(store, 1, {"market": {k: b"v" + k for k in keys}, "bank": {b"b1": b"other"}})
    assert [k for k, _ in store.iterate("market")] == keys
    assert [k for k, _ in store.iterate("market", b"ab", b"c")] == [b"ab", b"b", b"b\x00", b"b\xff"]
    descending = [b"\xff\xff", b"c", b"b\xff", b"b\x00", b"b"]
    assert [k for k, _ in store.iterate("market", b"b", reverse=True)] == descending
    assert list(store.iterate("market", b"c", b"b")) == []
    assert list(store.iterate("ibc")) == []


def test_store_names_do_not_leak_into_each_other(tmp_path):
    s = Store(str(tmp_path / "db"), ["a", "ab"])
    stage_commit(s, 1, {"a": {b"bx": b"1"}, "ab": {b"x": b"2"}})
    assert list(s.iterate("a")) == [(b"bx", b"1")]
    assert list(s.iterate("ab")) == [(b"x", b"2")]
    s.close()


# --- app hash ------------------------------------------------------------------------------


def test_app_hash_changes_and_is_deterministic(tmp_path):
    a = Store(str(tmp_path / "a"), STORES)
    b = Store(str(tmp_path / "b"), STORES)
    hashes = []
    for height in range(1, 6):
        changes = {"bank": {b"acct%d" % i: b"%d" % (height * i) for i in range(height * 3)}}
        if height % 2:
            changes["market"] = {b"order%d" % height: b"open"}
        hashes.append(stage_commit(a, height, changes))
        assert stage_commit(b, height, changes) == hashes[-1]
    assert len(set(hashes)) == len(hashes)
    a.close()
    b.close()


def test_same_state_by_different_paths_gives_same_app_hash(tmp_path):
    a = Store(str(tmp_path / "a"), STORES)
    b = Store(str(tmp_path / "b"), STORES)
    stage_commit(a, 1, {"bank": {b"x": b"1", b"y": b"2", b"z": b"3"}})
    stage_commit(a, 2, {"bank": {b"z": None, b"x": b"9"}, "ibc": {b"c": b"1"}})
    stage_commit(b, 1, {"ibc": {b"c": b"1", b"gone": b"0"}, "bank": {b"y": b"2"}})
    stage_commit(b, 2, {"ibc": {b"gone": None}, "bank": {b"x": b"9"}})
    assert a.app_hash == b.app_hash
    assert a.app_hash == reference_app_hash({"bank": {b"x": b"9", b"y": b"2"}, "ibc": {b"c": b"1"}})
    a.close()
    b.close()


def reference_app_hash(states: dict[str, dict[bytes, bytes]], names=STORES) -> bytes:
    """RFC 6962 over (name, root) leaves, as the Cosmos multistore hashes its commit info."""

    def varint(n: int) -> bytes:
        out = b""
        while n >= 0x80:
            out += bytes([n & 0x7F | 0x80])
            n >>= 7
        return out + bytes([n])

    def merkle(items: list[bytes]) -> bytes:
        if len(items) == 1:
            return items[0]
        k = 1
        while k * 2 < len(items):
            k *= 2
        return hashlib.sha256(b"\x01" + merkle(items[:k]) + merkle(items[k:])).digest()

    leaves = []
    for name in sorted(names):
        value = hashlib.sha256(reference_root(states.get(name, {}))).digest()
        kv = varint(len(name)) + name.encode() + varint(len(value)) + value
        leaves.append(hashlib.sha256(b"\x00" + kv).digest())
    return merkle(leaves)


def test_empty_stores_have_the_empty_root(store):
    app_hash = stage_commit(store, 1, {})
    assert store.store_root("ibc", 1) == bytes(32)
    assert app_hash == reference_app_hash({})


operations = st.lists(
    st.lists(
        st.tuples(st.binary(min_size=1, max_size=3), st.one_of(st.none(), st.binary(min_size=1, max_size=4))),
        max_size=25,
    ),
    min_size=1,
    max_size=6,
)


@FUZZ
@given(operations)
def test_roots_match_a_from_scratch_tree(batches):
    with tempfile.TemporaryDirectory() as tmp:
        s = Store(os.path.join(tmp, "db"), STORES, keep_recent=3)
        model: dict[bytes, bytes] = {}
        history = []
        for height, batch in enumerate(batches, start=1):
            changes = dict(batch)
            stage_commit(s, height, {"bank": changes})
            for key, value in changes.items():
                if value is None:
                    model.pop(key, None)
                else:
                    model[key] = value
            history.append(dict(model))
            assert s.store_root("bank", height) == reference_root(model)
            assert s.app_hash == reference_app_hash({"bank": model})
            assert list(s.iterate("bank")) == sorted(model.items())
        for height in range(max(1, len(batches) - 2), len(batches) + 1):
            for key in {k for k, _ in sum(batches, [])}:
                assert s.get_at("bank", key, height) == history[height - 1].get(key)
        s.close()


# --- proofs --------------------------------------------------------------------------------


def test_existence_proofs_verify_single_and_chained(store):
    state = {b"key%d" % i: b"value%d" % i for i in range(50)}
    app_hash = stage_commit(store, 1, {"bank": state, "market": {b"m": b"1"}})
    root = store.store_root("bank", 1)
    for key, expected in state.items():
        value, (inner, outer) = store.prove("bank", key, 1)
        assert value == expected
        ics23.verify_membership(ics23.SMT_SPEC, root, inner, key, value)
        ics23.verify_membership(ics23.TENDERMINT_SPEC, app_hash, outer, b"bank", root)
        ics23.verify_chained_membership(CHAINED_SPECS, app_hash, [inner, outer], [b"bank", key], value)
        with pytest.raises(ics23.Ics23Error):
            ics23.verify_chained_membership(CHAINED_SPECS, app_hash, [inner, outer], [b"bank", key], b"x")


def test_proofs_at_an_older_height_verify_against_that_app_hash(store):
    old_hash = stage_commit(store, 1, {"bank": {b"a": b"1", b"b": b"2", b"c": b"3"}})
    new_hash = stage_commit(store, 2, {"bank": {b"a": b"changed", b"b": None}})
    value, proofs = store.prove("bank", b"a", 1)
    assert value == b"1"
    ics23.verify_chained_membership(CHAINED_SPECS, old_hash, proofs, [b"bank", b"a"], b"1")
    with pytest.raises(ics23.Ics23Error):
        ics23.verify_chained_membership(CHAINED_SPECS, new_hash, proofs, [b"bank", b"a"], b"1")
    value, proofs = store.prove("bank", b"b", 2)
    assert value is None
    ics23.verify_chained_non_membership(CHAINED_SPECS, new_hash, proofs, [b"bank", b"b"])
    value, proofs = store.prove("bank", b"b", 1)
    ics23.verify_chained_membership(CHAINED_SPECS, old_hash, proofs, [b"bank", b"b"], b"2")


@pytest.mark.parametrize("where", ["left", "middle", "right"])
def test_non_existence_proofs_at_each_position(store, where):
    state = {b"k%d" % i: b"v%d" % i for i in range(40)}
    app_hash = stage_commit(store, 1, {"ibc": state})
    key = absent_key(set(state), where)
    value, (inner, outer) = store.prove("ibc", key, 1)
    assert value is None
    absent = inner.nonexist
    assert absent.HasField("left") == (where != "left")
    assert absent.HasField("right") == (where != "right")
    ics23.verify_non_membership(ics23.SMT_SPEC, store.store_root("ibc", 1), inner, key)
    ics23.verify_chained_non_membership(CHAINED_SPECS, app_hash, [inner, outer], [b"ibc", key])
    present = next(iter(state))
    with pytest.raises(ics23.Ics23Error):
        ics23.verify_chained_non_membership(CHAINED_SPECS, app_hash, [inner, outer], [b"ibc", present])


def test_non_existence_in_a_single_leaf_tree(store):
    app_hash = stage_commit(store, 1, {"ibc": {b"only": b"1"}})
    for where in ("left", "right"):
        key = absent_key({b"only"}, where)
        value, proofs = store.prove("ibc", key, 1)
        assert value is None
        ics23.verify_chained_non_membership(CHAINED_SPECS, app_hash, proofs, [b"ibc", key])


def test_absence_from_an_empty_store_has_no_neighbours(store):
    app_hash = stage_commit(store, 1, {"bank": {b"a": b"1"}})
    value, (inner, outer) = store.prove("ibc", b"anything", 1)
    assert value is None
    assert not inner.nonexist.HasField("left") and not inner.nonexist.HasField("right")
    ics23.verify_membership(ics23.TENDERMINT_SPEC, app_hash, outer, b"ibc", bytes(32))


@FUZZ
@given(
    st.sets(st.binary(min_size=1, max_size=4), min_size=1, max_size=60),
    st.lists(st.binary(min_size=1, max_size=4), min_size=1, max_size=10),
)
def test_every_key_gets_a_verifying_proof(present, probes):
    with tempfile.TemporaryDirectory() as tmp:
        s = Store(os.path.join(tmp, "db"), STORES)
        app_hash = stage_commit(s, 1, {"market": {k: b"v" + k for k in present}})
        for key in list(present)[:10] + probes:
            value, proofs = s.prove("market", key, 1)
            if key in present:
                assert value == b"v" + key
                ics23.verify_chained_membership(CHAINED_SPECS, app_hash, proofs, [b"market", key], value)
            else:
                assert value is None
                ics23.verify_chained_non_membership(CHAINED_SPECS, app_hash, proofs, [b"market", key])
        s.close()


def test_proofs_survive_deep_shared_prefixes(store):
    """Keys whose hashes share a long prefix force chains of inner nodes with empty siblings."""
    by_prefix: dict[bytes, bytes] = {}
    i = 0
    while True:
        key = b"deep%d" % i
        i += 1
        first = key_hash(key)[:2]
        if first in by_prefix:
            pair = (by_prefix[first], key)
            break
        by_prefix[first] = key
    app_hash = stage_commit(store, 1, {"bank": {pair[0]: b"1", pair[1]: b"2"}})
    _, (inner, _) = store.prove("bank", pair[0], 1)
    assert len(inner.exist.path) >= 16
    for key in pair:
        value, proofs = store.prove("bank", key, 1)
        ics23.verify_chained_membership(CHAINED_SPECS, app_hash, proofs, [b"bank", key], value)
    for probe in (b"x", b"y", b"z", b"w"):
        _, proofs = store.prove("bank", probe, 1)
        ics23.verify_chained_non_membership(CHAINED_SPECS, app_hash, proofs, [b"bank", probe])


@pytest.mark.parametrize("name", ["exist_left", "exist_middle", "exist_right"])
def test_leaf_and_inner_hashing_match_the_ics23_smt_vectors(name):
    vector = json.loads(require_vectors(f"ics23/smt/{name}.json").read_text())
    proof = ics23.decode_commitment_proof(bytes.fromhex(vector["proof"])).exist
    assert proof.leaf == smt.LEAF_OP
    key, value = bytes.fromhex(vector["key"]), bytes.fromhex(vector["value"])
    node = smt.compute_leaf_hash(hashlib.sha256(key).digest(), value)
    for step in proof.path:
        assert step.prefix[:1] == smt.INNER_PREFIX and len(step.prefix) + len(step.suffix) == 33
        node = hashlib.sha256(step.prefix + node + step.suffix).digest()
    assert node == bytes.fromhex(vector["root"])


# --- heights and pruning -------------------------------------------------------------------


def test_reads_outside_retained_heights_are_refused(tmp_path):
    s = Store(str(tmp_path / "db"), STORES, keep_recent=3)
    with pytest.raises(HeightNotCommitted):
        s.get_at("bank", b"k", 0)
    for height in range(1, 8):
        stage_commit(s, height, {"bank": {b"k": b"%d" % height}})
    for height in (1, 4):
        with pytest.raises(HeightPruned):
            s.get_at("bank", b"k", height)
        with pytest.raises(HeightPruned):
            s.prove("bank", b"k", height)
    with pytest.raises(HeightNotCommitted):
        s.get_at("bank", b"k", 8)
    assert [s.get_at("bank", b"k", h) for h in (5, 6, 7)] == [b"5", b"6", b"7"]
    s.close()


def test_pruning_deletes_old_nodes_and_keeps_retained_heights_whole(tmp_path):
    path = str(tmp_path / "db")
    keys = [b"acct%d" % i for i in range(300)]
    s = Store(path, STORES, keep_recent=100)
    hashes = {}
    for height in range(1, 21):
        changed = keys[: 30 * height % 300 + 30]
        writes = {k: b"%d-%d" % (height, i) for i, k in enumerate(changed)}
        hashes[height] = stage_commit(s, height, {"bank": writes})
    s.close()
    nodes_before = count_keys(path, b"n") + count_keys(path, b"l")
    size_before = live_bytes(path)

    s = Store(path, STORES, keep_recent=2)
    hashes[21] = stage_commit(s, 21, {"bank": {keys[0]: b"last"}})
    with pytest.raises(HeightPruned):
        s.get_at("bank", keys[0], 19)
    for height in (20, 21):
        for key in keys[:40]:
            value, proofs = s.prove("bank", key, height)
            ics23.verify_chained_membership(CHAINED_SPECS, hashes[height], proofs, [b"bank", key], value)
    s.close()
    nodes_after = count_keys(path, b"n") + count_keys(path, b"l")
    assert nodes_after < nodes_before / 4
    assert live_bytes(path) < size_before / 4


def live_bytes(path: str) -> int:
    db = plyvel.DB(path)
    try:
        return sum(len(key) + len(value) for key, value in db.iterator())
    finally:
        db.close()


def reachable_nodes(db: plyvel.DB) -> set[bytes]:
    """Keys of every tree node reachable from a root record still in the database."""
    found = set()

    def visit(store: str, ref, depth: int, bits: int) -> None:
        if ref is None:
            return
        if smt.is_leaf(ref):
            found.add(state_key(LEAF, store, smt.leaf_node_id(ref[2], ref[1])))
            return
        key = state_key(INNER, store, smt.inner_node_id(depth, bits, ref[1]))
        found.add(key)
        left, right = smt.decode_inner(db.get(key))
        visit(store, left, depth + 1, bits << 1)
        visit(store, right, depth + 1, (bits << 1) | 1)

    for _, record in db.iterator(prefix=state_key(ROOTS)):
        for store, ref in decode_roots(record).items():
            visit(store, ref, 0, 0)
    return found


def stored_nodes(db: plyvel.DB) -> set[bytes]:
    return {k for k, _ in db.iterator(prefix=INNER)} | {k for k, _ in db.iterator(prefix=LEAF)}


def test_pruning_leaves_exactly_the_retained_trees(tmp_path):
    path = str(tmp_path / "db")
    s = Store(path, STORES, keep_recent=3)
    for height in range(1, 16):
        changes = {"bank": {b"k%d" % (i * height % 23): b"%d" % height for i in range(height)}}
        changes["market"] = {b"m%d" % height: b"x", b"m%d" % (height - 2): None}
        stage_commit(s, height, changes)
    s.close()
    db = plyvel.DB(path)
    stored = stored_nodes(db)
    assert [int.from_bytes(k[-8:], "big") for k, _ in db.iterator(prefix=state_key(ROOTS))] == [13, 14, 15]
    stale_heights = {int.from_bytes(k[-8:], "big") for k, _ in db.iterator(prefix=state_key(STALE))}
    assert stored == reachable_nodes(db)
    db.close()
    assert stale_heights == {14, 15}


def test_rewriting_the_same_values_writes_no_nodes(tmp_path):
    path = str(tmp_path / "db")
    s = Store(path, STORES)
    state = {b"k%d" % i: b"v%d" % i for i in range(50)}
    first = stage_commit(s, 1, {"bank": state})
    s.close()
    nodes = count_keys(path, INNER) + count_keys(path, LEAF)
    s = Store(path, STORES)
    some = dict(list(state.items())[:5])
    assert stage_commit(s, 2, {"bank": some, "ibc": {b"absent": None}}) == first
    assert stage_commit(s, 3, {"bank": state}) == first
    s.close()
    assert count_keys(path, INNER) + count_keys(path, LEAF) == nodes
    assert count_keys(path, STALE) == 0


def test_keep_recent_one_keeps_only_the_latest_tree(tmp_path):
    path = str(tmp_path / "db")
    s = Store(path, STORES, keep_recent=1)
    for height in range(1, 30):
        app_hash = stage_commit(s, height, {"bank": {b"k%d" % (height % 7): b"%d" % height}})
    value, proofs = s.prove("bank", b"k1", 29)
    ics23.verify_chained_membership(CHAINED_SPECS, app_hash, proofs, [b"bank", b"k1"], value)
    s.close()
    assert count_keys(path, b"s") == 0
    assert count_keys(path, b"r") == 1


# --- staging, discarding, crashing ---------------------------------------------------------


def test_stage_then_reopen_without_commit_gives_previous_height(tmp_path):
    path = str(tmp_path / "db")
    s = Store(path, STORES)
    committed = stage_commit(s, 1, {"bank": {b"k": b"1"}})
    s.stage(2, {"bank": {b"k": b"2"}})
    s.close()
    s = Store(path, STORES)
    assert (s.height, s.app_hash, s.get("bank", b"k")) == (1, committed, b"1")
    stage_commit(s, 2, {"bank": {b"k": b"3"}})
    assert s.get_at("bank", b"k", 2) == b"3"
    s.close()


CRASH_SCRIPT = """
import os, sys
sys.path.insert(0, {repo!r})
from chain.store import Store
s = Store({path!r}, ["bank", "market", "ibc"])
h = s.height + 1
s.stage(h, {{"bank": {{b"key%d" % i: b"v%d" % h for i in range(2000)}}}})
if {commit}:
    s.commit()
print(h, s.app_hash.hex(), flush=True)
os._exit(0)
"""


def crash_after(path: str, commit: bool) -> tuple[int, str]:
    script = CRASH_SCRIPT.format(repo=str(REPO), path=path, commit=commit)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                         check=True)
    height, app_hash = out.stdout.split()
    return int(height), app_hash


def test_process_killed_before_or_after_commit(tmp_path):
    path = str(tmp_path / "db")
    height, app_hash = crash_after(path, commit=True)
    s = Store(path, STORES)
    assert (s.height, s.app_hash.hex()) == (height, app_hash)
    assert height == 1
    s.close()
    crash_after(path, commit=False)
    s = Store(path, STORES)
    assert (s.height, s.app_hash.hex(), s.get("bank", b"key7")) == (1, app_hash, b"v1")
    value, proofs = s.prove("bank", b"key7", 1)
    ics23.verify_chained_membership(CHAINED_SPECS, s.app_hash, proofs, [b"bank", b"key7"], value)
    s.close()


def test_a_commit_that_fails_midway_writes_nothing(tmp_path, monkeypatch):
    path = str(tmp_path / "db")
    s = Store(path, STORES)
    committed = stage_commit(s, 1, {"bank": {b"k%d" % i: b"1" for i in range(100)}})
    s.stage(2, {"bank": {b"k%d" % i: b"2" for i in range(100)}})

    def failing_encode(staged):
        raise OSError("disk went away")  # the tree's nodes are in the write batch by now

    monkeypatch.setattr(store_module, "encode_retired", failing_encode)
    with pytest.raises(OSError):
        s.commit()
    s.close()
    monkeypatch.undo()
    s = Store(path, STORES)
    assert (s.height, s.app_hash, s.get("bank", b"k5")) == (1, committed, b"1")
    value, proofs = s.prove("bank", b"k5", 1)
    ics23.verify_chained_membership(CHAINED_SPECS, committed, proofs, [b"bank", b"k5"], value)
    s.close()
    db = plyvel.DB(path)
    assert stored_nodes(db) == reachable_nodes(db)
    db.close()


def test_a_store_added_later_starts_empty(tmp_path):
    path = str(tmp_path / "db")
    s = Store(path, ["bank"])
    first = stage_commit(s, 1, {"bank": {b"k": b"v"}})
    s.close()
    s = Store(path, ["bank", "wasm"])
    second = stage_commit(s, 2, {"wasm": {b"code": b"1"}})
    assert second == reference_app_hash({"bank": {b"k": b"v"}, "wasm": {b"code": b"1"}}, ["bank", "wasm"])
    with pytest.raises(UnknownStore):
        s.get_at("wasm", b"code", 1)
    value, proofs = s.prove("bank", b"k", 1)
    ics23.verify_chained_membership(CHAINED_SPECS, first, proofs, [b"bank", b"k"], value)
    s.close()


def test_a_store_dropped_later_leaves_the_app_hash(tmp_path):
    path = str(tmp_path / "db")
    s = Store(path, ["bank", "old"])
    stage_commit(s, 1, {"bank": {b"k": b"v"}, "old": {b"x": b"1"}})
    s.close()
    s = Store(path, ["bank"])
    assert stage_commit(s, 2, {}) == reference_app_hash({"bank": {b"k": b"v"}}, ["bank"])
    with pytest.raises(UnknownStore):
        s.get_at("old", b"x", 1)
    s.close()


def test_discard_drops_staged_heights(store):
    stage_commit(store, 1, {"bank": {b"k": b"1"}})
    store.stage(2, {"bank": {b"k": b"2", b"extra": b"x"}})
    store.stage(3, {"bank": {b"k": b"3"}})
    store.discard()
    store.commit()
    assert store.height == 1
    app_hash = stage_commit(store, 2, {"bank": {b"k": b"other"}})
    assert store.get("bank", b"extra") is None
    assert app_hash == reference_app_hash({"bank": {b"k": b"other"}})


def test_heights_must_follow_on(store):
    store.stage(5, {"bank": {b"k": b"1"}})
    with pytest.raises(HeightNotNext):
        store.stage(5, {})
    with pytest.raises(HeightNotNext):
        store.stage(7, {})
    store.stage(6, {})
    store.commit()
    with pytest.raises(HeightNotNext):
        store.stage(6, {})
    with pytest.raises(HeightPruned):
        store.get_at("bank", b"k", 4)


@pytest.mark.parametrize(
    "changes, error",
    [
        ({"nope": {b"k": b"v"}}, UnknownStore),
        ({"bank": {b"": b"v"}}, InvalidKey),
        ({"bank": {"text": b"v"}}, InvalidKey),
        ({"bank": {b"k": b""}}, InvalidValue),
        ({"bank": {b"k": 5}}, InvalidValue),
    ],
)
def test_bad_changes_are_refused_and_change_nothing(store, changes, error):
    committed = stage_commit(store, 1, {"bank": {b"k": b"1"}})
    with pytest.raises(error):
        store.stage(2, {"market": {b"fine": b"1"}, **changes})
    assert issubclass(error, StoreError)
    store.commit()
    assert (store.height, store.app_hash) == (1, committed)
    assert stage_commit(store, 2, {}) == committed


def test_unknown_store_is_refused_everywhere(store):
    stage_commit(store, 1, {})
    for call in (
        lambda: store.get("nope", b"k"),
        lambda: store.iterate("nope"),
        lambda: store.get_at("nope", b"k", 1),
        lambda: store.prove("nope", b"k", 1),
        lambda: store.store_root("nope", 1),
        lambda: Branch(store).set("nope", b"k", b"v"),
    ):
        with pytest.raises(UnknownStore):
            call()


def test_state_key_keeps_spaces_and_stores_apart():
    assert state_key(b"f", "a", b"bx") != state_key(b"f", "ab", b"x")
    assert state_key(b"f", "bank", b"k").startswith(state_key(b"f", "bank"))


# --- branches ------------------------------------------------------------------------------


def test_branch_overlay_and_write(store):
    stage_commit(store, 1, {"bank": {b"a": b"1", b"b": b"2"}})
    block = Branch(store)
    block.set("bank", b"c", b"3")
    tx = Branch(block)
    tx.delete("bank", b"a")
    tx.set("bank", b"b", b"20")
    assert (tx.get("bank", b"a"), tx.get("bank", b"b"), tx.get("bank", b"c")) == (None, b"20", b"3")
    assert (block.get("bank", b"a"), block.get("bank", b"b")) == (b"1", b"2")
    failed = Branch(block)
    failed.set("bank", b"z", b"never")
    tx.write()
    assert block.get("bank", b"a") is None and block.get("bank", b"b") == b"20"
    assert block.get("bank", b"z") is None
    assert block.changes() == {"bank": {b"a": None, b"b": b"20", b"c": b"3"}}
    assert store.get("bank", b"a") == b"1"
    with pytest.raises(BranchOverStore):
        block.write()
    stage_commit(store, 2, block.changes())
    assert list(store.iterate("bank")) == [(b"b", b"20"), (b"c", b"3")]


def test_branch_refuses_bad_keys_and_values(store):
    branch = Branch(store)
    with pytest.raises(InvalidKey):
        branch.set("bank", b"", b"v")
    with pytest.raises(InvalidValue):
        branch.set("bank", b"k", b"")
    assert branch.changes() == {}


def test_branch_iteration_allows_writes_while_iterating(store):
    stage_commit(store, 1, {"market": {b"o%d" % i: b"x" for i in range(5)}})
    branch = Branch(store)
    for key, _ in branch.iterate("market"):
        branch.delete("market", key)
    assert list(branch.iterate("market")) == []


def apply_overlay(base: dict, overlay: dict) -> dict:
    merged = dict(base)
    for key, value in overlay.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


small_keys = st.binary(min_size=1, max_size=2)
bounds = st.one_of(st.none(), st.binary(max_size=2))


def expected_range(model: dict, start, end, reverse: bool) -> list[tuple[bytes, bytes]]:
    inside = ((k, v) for k, v in model.items() if (start is None or k >= start) and (end is None or k < end))
    return sorted(inside, reverse=reverse)


branch_ops = st.lists(
    st.tuples(
        st.integers(0, 1),
        small_keys,
        st.one_of(st.none(), st.binary(min_size=1, max_size=2)),
        st.one_of(st.none(), st.tuples(bounds, bounds, st.booleans())),
    ),
    max_size=30,
)


@FUZZ
@given(st.dictionaries(small_keys, st.binary(min_size=1, max_size=2), max_size=20), branch_ops)
def test_branch_iteration_matches_a_sorted_model(committed, ops):
    """Writes at two nesting levels, iterations interleaved, then the inner branch written out."""
    with tempfile.TemporaryDirectory() as tmp:
        s = Store(os.path.join(tmp, "db"), STORES)
        stage_commit(s, 1, {"market": committed})
        outer = Branch(s)
        inner = Branch(outer)
        overlays: tuple[dict, dict] = ({}, {})

        def check(branch: Branch, model: dict, start, end, reverse: bool) -> None:
            expected = expected_range(model, start, end, reverse)
            assert list(branch.iterate("market", start, end, reverse)) == expected

        for level, key, value, iteration in ops:
            branch = (outer, inner)[level]
            if value is None:
                branch.delete("market", key)
            else:
                branch.set("market", key, value)
            overlays[level][key] = value
            outer_model = apply_overlay(committed, overlays[0])
            inner_model = apply_overlay(outer_model, overlays[1])
            if iteration is not None:
                check(outer, outer_model, *iteration)
                check(inner, inner_model, *iteration)
        inner_model = apply_overlay(apply_overlay(committed, overlays[0]), overlays[1])
        assert all(inner.get("market", k) == v for k, v in inner_model.items())
        inner.write()
        assert inner.changes() == {}
        check(inner, inner_model, None, None, False)
        check(outer, inner_model, None, None, False)
        check(outer, inner_model, None, None, True)
        assert outer.changes().get("market", {}) == {**overlays[0], **overlays[1]}
        s.close()


def test_smt_node_ids_name_depth_and_version():
    assert smt.inner_node_id(0, 0, smt.encode_version(7)) == b"\x01" + (7).to_bytes(8, "big")
    assert smt.inner_node_id(3, 0b101, b"v" * 8)[:1] == bytes([0b1101])
    assert len({smt.inner_node_id(d, 0, b"v" * 8) for d in range(256)}) == 256


savepoint_ops = st.lists(
    st.one_of(
        st.tuples(st.just("write"), small_keys, st.one_of(st.none(), st.binary(min_size=1, max_size=2))),
        st.tuples(st.just("savepoint")),
        st.tuples(st.just("rollback")),
        st.tuples(st.just("release")),
        st.tuples(st.just("iterate"), bounds, bounds, st.booleans()),
    ),
    max_size=40,
)


@FUZZ
@given(st.dictionaries(small_keys, st.binary(min_size=1, max_size=2), max_size=20), savepoint_ops)
def test_branch_rollback_matches_a_model_with_snapshots(committed, ops):
    """Writes, nested savepoints, rollbacks and releases (as txs run in a block): reads, ordered
    iteration and the staged changes always equal a model that copies the state at each savepoint."""
    with tempfile.TemporaryDirectory() as tmp:
        s = Store(os.path.join(tmp, "db"), STORES)
        stage_commit(s, 1, {"market": committed})
        branch = Branch(s)
        overlay: dict = {}
        marks: list[tuple[int, dict]] = []
        for op in ops:
            if op[0] == "write":
                _, key, value = op
                branch.delete("market", key) if value is None else branch.set("market", key, value)
                overlay[key] = value
            elif op[0] == "savepoint":
                marks.append((branch.savepoint(), dict(overlay)))
            elif op[0] == "rollback" and marks:
                mark, overlay = marks[-1]
                overlay = dict(overlay)
                branch.rollback(mark)
            elif op[0] == "release" and marks:
                branch.release(marks.pop()[0])
            elif op[0] == "iterate":
                _, start, end, reverse = op
                model = apply_overlay(committed, overlay)
                assert list(branch.iterate("market", start, end, reverse)) == expected_range(model, start, end, reverse)
        model = apply_overlay(committed, overlay)
        assert all(branch.get("market", k) == model.get(k) for k in {*committed, *overlay})
        assert branch.changes().get("market", {}) == overlay
        s.close()


def test_a_rolled_back_tx_leaves_the_block_as_it_was(store):
    stage_commit(store, 1, {"bank": {b"a": b"1"}})
    block = Branch(store)
    block.set("bank", b"b", b"2")
    list(block.iterate("bank"))  # the branch now keeps its keys in order too
    fee = block.savepoint()
    block.set("bank", b"a", b"0")
    messages = block.savepoint()
    block.delete("bank", b"b")
    block.set("bank", b"c", b"3")
    block.rollback(messages)
    assert list(block.iterate("bank")) == [(b"a", b"0"), (b"b", b"2")]
    block.rollback(fee)
    block.release(fee)
    assert list(block.iterate("bank")) == [(b"a", b"1"), (b"b", b"2")]
    assert block.changes() == {"bank": {b"b": b"2"}}


def test_reverse_iteration_from_the_last_key(store):
    """plyvel 1.5.1 returns nothing for a reverse scan whose start is the range's last key."""
    stage_commit(store, 1, {"market": {b"\x01": b"a", b"\x02": b"b"}})
    assert list(store.iterate("market", b"\x02", None, reverse=True)) == [(b"\x02", b"b")]
    assert list(store.iterate("market", b"\x01", b"\x02", reverse=True)) == [(b"\x01", b"a")]
    assert list(store.iterate("market", b"\x03", None, reverse=True)) == []
