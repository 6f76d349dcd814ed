"""A damaged state database is refused at open or reported by `maxwell debug verify-store`, never served.

Store-level damage on real LevelDB first, then a real dev home: a node run by `maxwell dev`, stopped,
then damaged the ways a disk or an operator damages it.
"""

import shutil
import subprocess
from pathlib import Path

import plyvel
import pytest

from chain import bank, crypto, smt
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
from node import client
from tests.test_cli import ALICE, GENESIS_AMOUNT, MAXWELL, assert_one_line_error, compute_free_port, \
    init_funded_home, run_maxwell, start_dev_chain, stop_dev_chain

STORES = ("bank", "market")
KEYS = 50
DEV_HEIGHT = 3
BALANCE_KEY = bank.state_key(bank.BALANCE, crypto.decode_address(ALICE), "ujoule")


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


# --- a dev home -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dev_home(tmp_path_factory) -> Path:
    """A stopped dev home that produced DEV_HEIGHT blocks or more, alice funded in genesis."""
    home = tmp_path_factory.mktemp("dev")
    init_funded_home(home)
    process, url = start_dev_chain(home)
    try:
        client.Client(url, timeout=5).wait_for_height(DEV_HEIGHT, timeout=60)
    finally:
        stop_dev_chain(process)
    return home


@pytest.fixture
def home(dev_home, tmp_path) -> Path:
    copy = tmp_path / "home"
    shutil.copytree(dev_home, copy)
    return copy


def application_db(home: Path) -> Path:
    return home / "data" / "application.db"


def start_node(*args: str) -> subprocess.CompletedProcess:
    """`maxwell dev` or `maxwell start`, expected to refuse to start (a running node fails the timeout)."""
    address = f"tcp://127.0.0.1:{compute_free_port()}"
    option = "--rpc" if args[0] == "dev" else "--abci"
    return subprocess.run([str(MAXWELL), *args, option, address], capture_output=True, text=True, timeout=30)


def test_verify_store_passes_an_intact_home(home):
    result = run_maxwell("debug", "verify-store", "--home", home)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK: ") and result.stderr == ""


def test_verify_store_reports_one_changed_digit_of_a_balance(home):
    key = state_key(FLAT, bank.STORE, BALANCE_KEY)
    db = plyvel.DB(str(application_db(home)))
    balance = db.get(key)
    assert int(balance) == GENESIS_AMOUNT
    db.put(key, balance[:-1] + b"1")
    db.close()
    result = run_maxwell("debug", "verify-store", "--home", home)
    assert result.stdout == f"bank {BALANCE_KEY.hex()}: {FLAT_DIFFERS}\n"
    assert_one_line_error(result, "1 mismatches", "application.db is damaged")


@pytest.mark.parametrize("command", ["dev", "start"])
def test_a_node_whose_current_file_is_lost_refuses_to_start(home, command):
    (application_db(home) / "CURRENT").unlink()
    assert_one_line_error(start_node(command, "--home", str(home)), "no CURRENT", "the database is damaged")
    assert not (application_db(home) / "CURRENT").exists()


def test_a_dev_node_whose_state_is_gone_refuses_to_start(home):
    shutil.rmtree(application_db(home))
    assert_one_line_error(start_node("dev", "--home", str(home)), "the block store is at height",
                          "application.db) is empty or missing")
