"""The dev chain: block production, handshake/replay, restart and crash recovery, mempool, index."""

import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import plyvel
import pytest

from chain.proto.tendermint.abci import types_pb2 as abci_pb2
from chain.proto.tendermint.types import types_pb2
from ibc.tendermint import (
    compute_commit_hash,
    compute_commit_vote,
    compute_data_hash,
    compute_header_hash,
    compute_results_hash,
    compute_tx_hash,
    compute_vote_extension_sign_bytes,
    compute_vote_sign_bytes,
)
from node import privval
from node.blockstore import BlockStore
from node.devchain import (
    AppHashMismatch,
    DevChain,
    InvalidGenesis,
    UnsupportedValidatorSet,
    create_genesis_doc,
    decode_genesis,
)
from node.mempool import Mempool, MempoolFull, TxInCache
from node.txindex import InvalidQuery, parse_query
from tests.helpers import (
    CHAIN_ID, REPO, KVStoreApp, close_chain, compute_free_port, make_home, open_chain, post_rpc, wait_for,
)


@pytest.fixture
def home(tmp_path):
    make_home(tmp_path)
    return tmp_path


# ---------------------------------------------------------------------------------------------
# Blocks and headers


def assert_chain_links(chain: DevChain, first: int, last: int):
    store, key = chain.blockstore, chain.key
    previous_time = 0
    for height in range(first, last + 1):
        block, meta = store.get_block(height), store.get_block_meta(height)
        header = block.header
        assert header.height == height and header.chain_id == CHAIN_ID
        assert compute_header_hash(header) == meta.block_id.hash
        assert header.data_hash == compute_data_hash(list(block.data.txs))
        assert header.last_commit_hash == compute_commit_hash(block.last_commit)
        time_ns = header.time.seconds * 10**9 + header.time.nanos
        assert time_ns > previous_time
        previous_time = time_ns
        if height > store.get_base():
            previous = store.get_block_meta(height - 1)
            assert header.last_block_id == previous.block_id
            assert header.app_hash == store.get_results(height - 1).app_hash
            assert header.last_results_hash == compute_results_hash(list(store.get_results(height - 1).tx_results))
            assert block.last_commit.block_id == previous.block_id
        commit, _ = store.get_commit(height)
        vote = compute_commit_vote(commit, 0)
        assert vote.block_id == meta.block_id
        assert privval.is_valid_signature(key.pub_key, compute_vote_sign_bytes(CHAIN_ID, vote),
                                          commit.signatures[0].signature)


def test_blocks_advance_and_headers_chain(home):
    chain, app = open_chain(home)
    chain.start()
    try:
        wait_for(lambda: chain.blockstore.get_height() >= 5)
    finally:
        close_chain(chain, app)
    store = BlockStore(str(home / "data" / "blockstore.db"))
    try:
        block1 = store.get_block(1)
        genesis = decode_genesis(json.loads((home / "config" / "genesis.json").read_text()))
        assert block1.header.time.seconds * 10**9 + block1.header.time.nanos == genesis.genesis_time_ns
        assert block1.header.app_hash == hashlib.sha256(b'{"greeting":"hello"}').digest()
        assert block1.header.last_commit_hash == hashlib.sha256(b"").digest()
        assert not block1.last_commit.signatures
    finally:
        store.close()
    chain, app = open_chain(home)
    chain.process_handshake()
    try:
        assert_chain_links(chain, 1, chain.blockstore.get_height())
    finally:
        close_chain(chain, app)


def test_init_chain_gets_genesis_and_calls_follow_abci_order(home):
    chain, app = open_chain(home)
    chain.process_handshake()
    assert app.calls == ["info", "init_chain"]
    request = app.init_request
    assert request.chain_id == CHAIN_ID and request.initial_height == 1
    assert json.loads(request.app_state_bytes) == {"greeting": "hello"}
    assert request.validators[0].pub_key.ed25519 == chain.key.pub_key and request.validators[0].power == 10
    assert request.consensus_params.block.max_bytes == 22020096
    chain.produce_block()
    chain.produce_block()
    # vote extensions are on from height 1 (heat readings): the validator extends its precommit
    assert app.calls[2:] == ["prepare_proposal", "process_proposal", "extend_vote", "finalize_block", "commit"] * 2
    close_chain(chain, app)


def test_tx_included_indexed_and_failed_tx_recorded(home):
    chain, app = open_chain(home)
    chain.process_handshake()
    try:
        assert chain.mempool.process_tx(b"color=blue").code == 0
        assert chain.mempool.process_tx(b"fail=1").code == 0
        assert chain.mempool.process_tx(b"not a kv").code == 1
        assert chain.mempool.size() == 2
        height = chain.produce_block()
        block = chain.blockstore.get_block(height)
        assert list(block.data.txs) == [b"color=blue", b"fail=1"]
        assert chain.mempool.size() == 0
        results = chain.blockstore.get_results(height)
        assert [r.code for r in results.tx_results] == [0, 2]
        found = chain.txindex.get_tx(compute_tx_hash(b"color=blue"))
        assert (found.height, found.index, found.result.tx) == (height, 0, b"color=blue")
        assert [t.index for t in chain.txindex.search_txs(parse_query(f"tx.height={height}"))] == [0, 1]
        assert [t.result.tx for t in chain.txindex.search_txs(parse_query("app.key='color'"))] == [b"color=blue"]
        assert chain.txindex.search_txs(parse_query("app.secret='blue'")) == []
        assert chain.txindex.search_txs(parse_query("app.size>=4 AND app.key='color'"))[0].index == 0
        assert chain.txindex.search_txs(parse_query("app.size>4")) == []
        assert chain.txindex.search_blocks(parse_query(f"block.height={height}")) == [height]
        assert chain.txindex.search_blocks(parse_query(f"block.height = {height}")) == [height]
        query = chain.get_query(abci_pb2.RequestQuery(path="/store", data=b"color"))
        assert query.value == b"blue" and query.height == height
        with pytest.raises(TxInCache):
            chain.mempool.process_tx(b"color=blue")
        assert chain.mempool.process_tx(b"fail=1").code == 0, "a failed tx leaves the cache"
    finally:
        close_chain(chain, app)


def test_restart_continues_with_same_app_hash_and_history(home):
    chain, app = open_chain(home)
    chain.process_handshake()
    chain.mempool.process_tx(b"a=1")
    for _ in range(3):
        chain.produce_block()
    height, app_hash = chain.state.last_block_height, chain.state.app_hash
    last_id = chain.state.last_block_id
    close_chain(chain, app)

    chain, app = open_chain(home)
    chain.process_handshake()
    try:
        assert "init_chain" not in app.calls
        assert chain.state.last_block_height == height and chain.state.app_hash == app_hash
        assert chain.txindex.get_tx(compute_tx_hash(b"a=1")).height == 1
        assert chain.produce_block() == height + 1
        block = chain.blockstore.get_block(height + 1)
        assert block.header.last_block_id == last_id and block.header.app_hash == app_hash
        assert_chain_links(chain, 1, height + 1)
    finally:
        close_chain(chain, app)


def test_replay_after_crash_between_store_and_app_commit(home):
    chain, app = open_chain(home)
    chain.process_handshake()
    chain.produce_block()
    chain.mempool.process_tx(b"k=v")
    chain.produce_block()
    expected, app_hash_1 = chain.state.app_hash, chain.blockstore.get_results(1).app_hash
    chain.stop()
    # The app loses its last Commit, as if killed after the block store wrote block 2.
    with app.db.write_batch() as batch:
        batch.put(b"meta:height", b"1")
        batch.put(b"meta:app_hash", app_hash_1)
        batch.delete(b"kv:k")
    app.close()

    chain, app = open_chain(home)
    chain.process_handshake()
    try:
        assert app.calls[:3] == ["info", "finalize_block", "commit"]
        assert app.height == 2 and app.app_hash == expected == chain.state.app_hash
        assert chain.get_query(abci_pb2.RequestQuery(data=b"k")).value == b"v"
    finally:
        close_chain(chain, app)


def test_replay_detects_a_different_app(home):
    chain, app = open_chain(home)
    chain.process_handshake()
    chain.mempool.process_tx(b"k=v")
    chain.produce_block()
    chain.stop()
    app.close()
    db = plyvel.DB(str(home / "data" / "application.db"))
    for key, _ in db.iterator():
        db.delete(key)
    db.close()

    class OtherApp(KVStoreApp):
        def finalize_block(self, request):
            response = super().finalize_block(request)
            response.app_hash = b"\x01" * 32
            return response

    app = OtherApp(str(home / "data"))
    chain = DevChain(home, app=app, block_time_ms=50)
    with pytest.raises(AppHashMismatch):
        chain.process_handshake()
    close_chain(chain, app)


def test_rejected_proposal_retries_without_mempool_txs(home):
    chain, app = open_chain(home)
    chain.process_handshake()
    try:
        chain.mempool.process_tx(b"x=1")
        app.reject_next_proposals = 1
        assert chain.produce_block() is None
        assert chain.blockstore.get_height() == 0
        assert chain.produce_block() == 1
        assert list(chain.blockstore.get_block(1).data.txs) == []
        commit, _ = chain.blockstore.get_commit(1)
        assert commit.round == 1
        assert chain.mempool.size() == 1
        assert chain.produce_block() == 2
        assert list(chain.blockstore.get_block(2).data.txs) == [b"x=1"]
        assert_chain_links(chain, 1, 2)
    finally:
        close_chain(chain, app)


def test_vote_extensions_are_signed_and_given_to_the_next_proposer(home):
    chain, app = open_chain(home, vote_extensions_from=2)
    chain.process_handshake()
    try:
        for _ in range(3):
            chain.produce_block()
        assert app.calls.count("extend_vote") == 2
        assert app.seen_extensions[0] == (2, b"", b"")
        height, extension, signature = app.seen_extensions[-1]
        assert (height, extension) == (3, b"heat:2")
        vote = types_pb2.Vote(extension=extension, height=2, round=0)
        assert privval.is_valid_signature(chain.key.pub_key, compute_vote_extension_sign_bytes(CHAIN_ID, vote),
                                          signature)
    finally:
        close_chain(chain, app)


def test_mempool_recheck_drops_txs_and_respects_limits():
    responses = {"calls": 0}

    def check_tx(request):
        responses["calls"] += 1
        bad = request.type == abci_pb2.RECHECK and request.tx.startswith(b"stale")
        return abci_pb2.ResponseCheckTx(code=1 if bad else 0, gas_wanted=10)

    mempool = Mempool(check_tx, max_txs=3)
    for tx in (b"a=1", b"stale=2", b"c=3"):
        assert mempool.process_tx(tx).code == 0
    with pytest.raises(MempoolFull):
        mempool.process_tx(b"d=4")
    assert mempool.reap(max_bytes=-1, max_gas=20) == [b"a=1", b"stale=2"]
    assert mempool.reap(max_bytes=14, max_gas=-1) == [b"a=1", b"stale=2"]
    assert mempool.reap(max_bytes=13, max_gas=-1) == [b"a=1"]
    mempool.process_committed([b"a=1"], [abci_pb2.ExecTxResult(code=0)])
    mempool.process_recheck()
    assert mempool.get_txs() == [b"c=3"]
    with pytest.raises(TxInCache):
        mempool.process_tx(b"a=1")
    assert mempool.process_tx(b"stale=2").code == 0


def test_bad_homes_and_genesis_are_reported(tmp_path):
    with pytest.raises(InvalidGenesis):
        DevChain(tmp_path, app=object())
    key = make_home(tmp_path)
    doc = json.loads((tmp_path / "config" / "genesis.json").read_text())
    for broken in ({**doc, "chain_id": ""}, {**doc, "genesis_time": "yesterday"},
                   {**doc, "consensus_params": {"block": {"max_bytes": "10"}}},
                   {**doc, "validators": [{**doc["validators"][0], "address": "00" * 20}]}):
        with pytest.raises(InvalidGenesis):
            decode_genesis(broken)
    other = privval.compute_key_from_seed(b"\x07" * 32)
    doc["validators"] = create_genesis_doc(CHAIN_ID, other)["validators"]
    (tmp_path / "config" / "genesis.json").write_text(json.dumps(doc))
    chain, app = open_chain(tmp_path)
    with pytest.raises(UnsupportedValidatorSet):
        chain.process_handshake()
    close_chain(chain, app)
    assert privval.load(tmp_path / "config" / "priv_validator_key.json") == key


def test_query_language_parses_cometbft_syntax():
    conditions = parse_query("tm.event = 'Tx' AND tx.height > 5 AND transfer.amount CONTAINS 'joule' "
                             "AND send_packet.packet_sequence EXISTS AND block.time >= TIME 2024-01-02T03:04:05Z "
                             "AND x.day < DATE 2024-01-02 AND fee.amount <= 1.5")
    assert [c.op for c in conditions] == ["=", ">", "CONTAINS", "EXISTS", ">=", "<", "<="]
    for bad in ("", "tx.height", "tx.height = ", "a.b = 'x' OR c.d = 'y'", "a.b < 'x'", "a.b CONTAINS 5",
                "a.b = 'unterminated", "tx.height = 5 AND", "a.b = TIME 2024-13-01T00:00:00Z", "5 = 5"):
        with pytest.raises(InvalidQuery):
            parse_query(bad)


# ---------------------------------------------------------------------------------------------
# kill -9 of a dev chain subprocess while it commits; the next start repairs by replay.

SUBPROCESS = """
from tests.helpers import KVStoreApp
from node.devchain import run
run({home!r}, "tcp://127.0.0.1:{port}", 40, app=KVStoreApp({data!r}, delay_s=0.01, crash_at={crash_at!r}))
"""


def _start_subprocess(home: Path, port: int, crash_at: str = "") -> subprocess.Popen:
    code = SUBPROCESS.format(home=str(home), port=port, data=str(home / "data"), crash_at=crash_at)
    process = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)

    def is_up():
        if process.poll() is not None:
            raise AssertionError(process.stderr.read().decode())
        try:
            return int(post_rpc(port, "status")["result"]["sync_info"]["latest_block_height"]) > 0
        except OSError:
            return False

    wait_for(is_up, timeout=20)
    return process


def _read_heights(home: Path) -> tuple[int, int, bool, int]:
    """(block store height, app height, results stored for the top block, tx index height) on disk."""
    store = BlockStore(str(home / "data" / "blockstore.db"))
    app = KVStoreApp(str(home / "data"))
    from node.txindex import TxIndex
    index = TxIndex(str(home / "data" / "tx_index.db"))
    try:
        height = store.get_height()
        return height, app.height, store.get_results(height) is not None, index.get_indexed_height()
    finally:
        store.close()
        app.close()
        index.close()


@pytest.mark.parametrize("crash_at", ["finalize_block", "commit_before", "commit_after", "external"])
def test_kill_9_while_committing_then_restart_replays(home, crash_at):
    port = compute_free_port()
    process = _start_subprocess(home, port, crash_at)
    try:
        for i in range(3):
            try:
                response = post_rpc(port, "broadcast_tx_sync", tx=base64.b64encode(b"k%d=v%d" % (i, i)).decode())
            except (ConnectionError, urllib.error.URLError):
                assert i > 0 and crash_at != "external", "only a crash in a block of earlier txs may cut a broadcast"
                break
            assert response["result"]["code"] == 0
        if crash_at == "external":
            wait_for(lambda: int(post_rpc(port, "tx_search", query="app.key='k2'")["result"]["total_count"]))
            time.sleep(0.025)
            os.kill(process.pid, signal.SIGKILL)
        assert process.wait(timeout=20) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
        process.stderr.close()

    store_height, app_height, has_results, indexed = _read_heights(home)
    if crash_at == "finalize_block":
        assert (store_height, has_results) == (app_height + 1, False)
    elif crash_at == "commit_before":
        assert (store_height, has_results) == (app_height + 1, True)
    elif crash_at == "commit_after":
        assert (store_height, indexed) == (app_height, app_height - 1)

    chain, app = open_chain(home)
    chain.process_handshake()
    try:
        assert app.height == store_height == chain.state.last_block_height
        assert app.app_hash == chain.blockstore.get_results(store_height).app_hash
        assert chain.txindex.get_indexed_height() == store_height
        if crash_at != "external":
            assert chain.blockstore.get_block(store_height).data.txs, "the block being committed carried txs"
        for height in range(1, store_height + 1):
            for tx in chain.blockstore.get_block(height).data.txs:
                assert chain.txindex.get_tx(compute_tx_hash(tx)).height == height
                key, value = tx.split(b"=")
                assert chain.get_query(abci_pb2.RequestQuery(data=key)).value == value
        chain.produce_block()
        assert_chain_links(chain, 1, store_height + 1)
    finally:
        close_chain(chain, app)


def test_sigterm_stops_cleanly_and_restart_continues(home):
    port = compute_free_port()
    process = _start_subprocess(home, port)
    height = int(post_rpc(port, "status")["result"]["sync_info"]["latest_block_height"])
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    process.stderr.close()
    process = _start_subprocess(home, port)
    try:
        assert int(post_rpc(port, "block", height=str(height))["result"]["block"]["header"]["height"]) == height
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
        process.stderr.close()


def test_priv_validator_key_file_is_cometbft_format(tmp_path):
    path = tmp_path / "config" / "priv_validator_key.json"
    key = privval.generate(path)
    assert path.stat().st_mode & 0o777 == 0o600
    doc = json.loads(path.read_text())
    assert doc["address"] == hashlib.sha256(key.pub_key).digest()[:20].hex().upper()
    assert doc["pub_key"] == {"type": "tendermint/PubKeyEd25519", "value": base64.b64encode(key.pub_key).decode()}
    assert base64.b64decode(doc["priv_key"]["value"]) == key.priv_key and len(key.priv_key) == 64
    assert privval.load(path) == key
    with pytest.raises(privval.KeyFileExists):
        privval.generate(path)
    signature = privval.sign(key, b"message")
    assert privval.is_valid_signature(key.pub_key, b"message", signature)
    assert not privval.is_valid_signature(key.pub_key, b"other", signature)
    for broken in ({**doc, "address": "00" * 20}, {**doc, "pub_key": {**doc["pub_key"], "value": "AAAA"}},
                   {**doc, "priv_key": {"type": "tendermint/PrivKeyEd25519", "value": "é"}}, [], {}):
        path.write_text(json.dumps(broken))
        with pytest.raises(privval.InvalidKeyFile):
            privval.load(path)


def test_chain_starts_at_genesis_initial_height(tmp_path):
    make_home(tmp_path, initial_height=5)
    chain, app = open_chain(tmp_path)
    chain.process_handshake()
    assert app.init_request.initial_height == 5
    assert [chain.produce_block(), chain.produce_block()] == [5, 6]
    assert chain.blockstore.get_base() == 5 and chain.txindex.get_indexed_height() == 6
    assert_chain_links(chain, 5, 6)
    close_chain(chain, app)
    chain, app = open_chain(tmp_path)
    chain.process_handshake()
    assert chain.produce_block() == 7
    close_chain(chain, app)
