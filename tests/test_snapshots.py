"""State sync through the four ABCI snapshot calls: a new node restores a peer's snapshot and goes on
with the same app hashes; bad chunks and snapshots are refused and leave its store empty."""

import hashlib

import pytest

from chain import bank
from chain.app import App
from chain.proto.tendermint.abci import types_pb2 as abci
from node import snapshots as snapshot_module
from node.snapshots import Snapshots, encode_record
from tests.helpers import finalize, init_app, make_account, send

OFFER = abci.ResponseOfferSnapshot
APPLY = abci.ResponseApplySnapshotChunk


@pytest.fixture
def source(tmp_path, monkeypatch):
    """A node with 40 accounts that snapshots every 3 heights, in chunks of about 1 kB, run to height 6."""
    monkeypatch.setattr(snapshot_module, "CHUNK_BYTES", 1024)
    accounts = [make_account(f"a{i}", i) for i in range(40)]
    app = App(str(tmp_path / "source"), snapshots=Snapshots(str(tmp_path / "source" / "snapshots"), interval=3))
    init_app(app, accounts)
    hashes = {}
    for height in range(1, 7):
        txs = [send(a, accounts[(a.account_number + height) % 40].address, height) for a in accounts[:10]]
        hashes[height] = finalize(app, height, txs).app_hash
        app.commit()
        for a in accounts[:10]:
            a.sequence += 1
    yield app, accounts, hashes
    app.close()


def fresh(tmp_path, name="fresh") -> App:
    return App(str(tmp_path / name), snapshots=Snapshots(str(tmp_path / name / "snapshots"), interval=3))


def offer(app: App, snapshot: abci.Snapshot, app_hash: bytes) -> int:
    return app.offer_snapshot(abci.RequestOfferSnapshot(snapshot=snapshot, app_hash=app_hash)).result


def load(app: App, snapshot: abci.Snapshot, index: int) -> bytes:
    return app.load_snapshot_chunk(abci.RequestLoadSnapshotChunk(height=snapshot.height, format=snapshot.format,
                                                                 chunk=index)).chunk


def apply(app: App, index: int, chunk: bytes, sender: str = "peer") -> abci.ResponseApplySnapshotChunk:
    return app.apply_snapshot_chunk(abci.RequestApplySnapshotChunk(index=index, chunk=chunk, sender=sender))


def test_a_new_node_restores_a_snapshot_and_goes_on_with_the_same_app_hashes(tmp_path, source):
    app, accounts, hashes = source
    snapshots = list(app.list_snapshots(abci.RequestListSnapshots()).snapshots)
    assert [s.height for s in snapshots] == [3, 6]
    latest = snapshots[-1]
    assert latest.chunks > 1 and latest.hash == hashlib.sha256(latest.metadata).digest()
    node = fresh(tmp_path)
    assert offer(node, latest, hashes[6]) == OFFER.ACCEPT
    for index in range(latest.chunks):
        assert apply(node, index, load(app, latest, index)).result == APPLY.ACCEPT
    info = node.info(abci.RequestInfo())
    assert (info.last_block_height, info.last_block_app_hash) == (6, hashes[6])
    assert [bank.get_balance(node.store, a.address, "ujoule") for a in accounts] == \
        [bank.get_balance(app.store, a.address, "ujoule") for a in accounts]
    txs = [send(a, accounts[0].address, 7) for a in accounts[:5]]
    assert finalize(node, 7, txs).app_hash == finalize(app, 7, txs).app_hash  # replays nothing, agrees from here
    node.close()


def test_a_corrupt_or_truncated_chunk_is_refetched_from_another_peer(tmp_path, source):
    app, _, hashes = source
    snapshot = app.list_snapshots(abci.RequestListSnapshots()).snapshots[-1]
    node = fresh(tmp_path)
    assert offer(node, snapshot, hashes[6]) == OFFER.ACCEPT
    chunk = load(app, snapshot, 0)
    for bad in (chunk[:-5], bytes([chunk[0] ^ 1]) + chunk[1:]):
        response = apply(node, 0, bad, sender="liar")
        assert (response.result, list(response.refetch_chunks), list(response.reject_senders)) == \
            (APPLY.RETRY, [0], ["liar"])
    assert node.store.height == 0
    for index in range(snapshot.chunks):
        assert apply(node, index, load(app, snapshot, index)).result == APPLY.ACCEPT
    assert node.info(abci.RequestInfo()).last_block_app_hash == hashes[6]
    node.close()


def test_a_snapshot_of_another_app_hash_is_rejected_and_leaves_the_store_empty(tmp_path, source):
    app, _, hashes = source
    snapshot = app.list_snapshots(abci.RequestListSnapshots()).snapshots[0]  # height 3, offered for height 6's hash
    node = fresh(tmp_path)
    assert offer(node, snapshot, hashes[6]) == OFFER.ACCEPT
    results = [apply(node, index, load(app, snapshot, index)).result for index in range(snapshot.chunks)]
    assert results == [APPLY.ACCEPT] * (snapshot.chunks - 1) + [APPLY.REJECT_SNAPSHOT]
    assert (node.store.height, node.info(abci.RequestInfo()).last_block_app_hash) == (0, b"")
    node.close()


def test_malformed_offers_and_chunks_are_refused(tmp_path, source):
    app, _, hashes = source
    snapshot = app.list_snapshots(abci.RequestListSnapshots()).snapshots[-1]
    node = fresh(tmp_path)
    wrong_format, bad_hash, bad_metadata = (abci.Snapshot() for _ in range(3))
    for copy in (wrong_format, bad_hash, bad_metadata):
        copy.CopyFrom(snapshot)
    wrong_format.format = 2
    bad_hash.hash = bytes(32)
    bad_metadata.metadata = snapshot.metadata[:-1]
    assert offer(node, wrong_format, hashes[6]) == OFFER.REJECT_FORMAT
    assert offer(node, bad_hash, hashes[6]) == OFFER.REJECT
    assert offer(node, bad_metadata, hashes[6]) == OFFER.REJECT
    assert apply(node, 0, load(app, snapshot, 0)).result == APPLY.ABORT  # nothing was accepted
    # a chunk that matches its hash but is not records of the stores
    garbage = b"\xff" * 40
    crafted = abci.Snapshot(height=6, format=1, chunks=1, metadata=hashlib.sha256(garbage).digest())
    crafted.hash = hashlib.sha256(crafted.metadata).digest()
    assert offer(node, crafted, hashes[6]) == OFFER.ACCEPT
    assert apply(node, 0, garbage).result == APPLY.REJECT_SNAPSHOT
    unknown = encode_record("nostore", b"k", b"v")
    crafted.metadata = hashlib.sha256(unknown).digest()
    crafted.hash = hashlib.sha256(crafted.metadata).digest()
    assert offer(node, crafted, hashes[6]) == OFFER.ACCEPT
    assert apply(node, 0, unknown).result == APPLY.REJECT_SNAPSHOT
    assert node.store.height == 0
    assert offer(app, snapshot, hashes[6]) == OFFER.ABORT  # a node with state does not restore over it
    node.close()


def test_only_the_newest_snapshots_are_kept(tmp_path, source):
    app, accounts, _ = source
    for height in range(7, 13):
        finalize(app, height, [])
        app.commit()
    assert [s.height for s in app.list_snapshots(abci.RequestListSnapshots()).snapshots] == [9, 12]
    assert not list((tmp_path / "source" / "snapshots").glob(".*"))
