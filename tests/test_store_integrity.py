"""A damaged state database is refused at open or reported by Store.verify, never served."""

from pathlib import Path

import plyvel
import pytest

from chain import smt
from chain.store import (
    APP_HASH_DIFFERS,
    FLAT,
    FLAT_DIFFERS,
    FLAT_MISSING,
    INNER,
    LATEST,
    META,
    NODE_MISSING,
    TREE_MISSING,
    AppHashDiffers,
    DatabaseMissing,
    FlatIndexDiffers,
    Mismatch,
    Store,
    TreeNodeDiffers,
    state_key,
)

STORES = ("bank", "market")
KEYS = 50


def make_store(path: Path) -> dict[str, dict[bytes, bytes]]:
    """A store of two heights, closed; returns its latest state."""
    state = {"bank": {b"k%d" % i: b"%d" % (i * 7) for i in range(KEYS)}, "market": {b"order": b"1"}}
    store = Store(str(path), STORES)
    store.stage(1, state)
    store.stage(2, {"bank": {b"k0": b"changed"}})
    store.commit()
    store.close()
    state["bank"][b"k0"] = b"changed"
    return state


def damage(path: Path, put: dict[bytes, bytes] | None = None, delete: tuple[bytes, ...] = ()) -> None:
    db = plyvel.DB(str(path))
    for key, value in (put or {}).items():
        db.put(key, value)
    for key in delete:
        db.delete(key)
    db.close()


def verify(path: Path) -> list[Mismatch]:
    store = Store(str(path), STORES, check=False)
    try:
        return store.verify().mismatches
    finally:
        store.close()


def first_flat_key(path: Path, store: str) -> bytes:
    prefix = state_key(FLAT, store)
    db = plyvel.DB(str(path))
    key = next(db.iterator(prefix=prefix, include_value=False))
    db.close()
    return key[len(prefix):]


def test_an_intact_store_opens_and_verifies(tmp_path):
    path = tmp_path / "db"
    make_store(path)
    store = Store(str(path), STORES)
    assert store.verify() == (KEYS + 1, [])
    store.close()


def test_a_changed_flat_value_is_reported_by_key_and_side(tmp_path):
    path = tmp_path / "db"
    make_store(path)
    damage(path, put={state_key(FLAT, "bank", b"k7"): b"50"})
    assert verify(path) == [Mismatch("bank", b"k7", FLAT_DIFFERS)]


def test_flat_entries_missing_or_extra_are_reported(tmp_path):
    path = tmp_path / "db"
    make_store(path)
    damage(path, put={state_key(FLAT, "bank", b"ghost"): b"1"}, delete=(state_key(FLAT, "bank", b"k3"),))
    assert sorted(verify(path)) == [Mismatch("bank", b"ghost", TREE_MISSING), Mismatch("bank", b"k3", FLAT_MISSING)]


def test_opening_refuses_a_flat_index_that_disagrees_with_the_tree_at_its_first_entry(tmp_path):
    path = tmp_path / "db"
    state = make_store(path)
    key = first_flat_key(path, "bank")
    damage(path, put={state_key(FLAT, "bank", key): b"wrong"})
    with pytest.raises(FlatIndexDiffers, match=f"store bank key {key.hex()}"):
        Store(str(path), STORES)
    damage(path, delete=tuple(state_key(FLAT, "bank", k) for k in state["bank"]))
    with pytest.raises(FlatIndexDiffers, match=FLAT_MISSING):
        Store(str(path), STORES)


def test_a_missing_tree_node_is_refused_at_open_and_reported(tmp_path):
    path = tmp_path / "db"
    make_store(path)
    root_node = state_key(INNER, "bank") + smt.inner_node_id(0, 0, smt.encode_version(2))
    damage(path, delete=(root_node,))
    with pytest.raises(TreeNodeDiffers, match="store bank: " + NODE_MISSING):
        Store(str(path), STORES)
    mismatches = verify(path)
    assert Mismatch("bank", root_node, NODE_MISSING) in mismatches
    assert {m.side for m in mismatches} == {NODE_MISSING, TREE_MISSING}  # the flat entries lost their tree


def test_an_app_hash_the_roots_do_not_hash_to_is_refused(tmp_path):
    path = tmp_path / "db"
    make_store(path)
    damage(path, put={state_key(META, "", LATEST): (2).to_bytes(8, "big") + bytes(32)})
    with pytest.raises(AppHashDiffers):
        Store(str(path), STORES)
    assert verify(path) == [Mismatch("", b"", APP_HASH_DIFFERS)]


def test_a_lost_current_file_is_refused_and_the_data_kept(tmp_path):
    path = tmp_path / "db"
    state = make_store(path)
    Store(str(path), STORES).close()  # reopening moves the log into a table, which LevelDB would delete
    current = (path / "CURRENT").read_bytes()
    (path / "CURRENT").unlink()
    with pytest.raises(DatabaseMissing, match="no CURRENT"):
        Store(str(path), STORES)
    (path / "CURRENT").write_bytes(current)
    store = Store(str(path), STORES)
    assert dict(store.iterate("bank")) == state["bank"]
    store.close()

