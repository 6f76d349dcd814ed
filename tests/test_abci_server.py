"""The ABCI socket server, driven over real sockets the way CometBFT drives it."""

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from tests.abci_client import ABCIClient, ABCIExceptionResponse, ConnectionClosedError
from chain.encoding import encode_uvarint
from chain.proto.tendermint.abci import types_pb2 as abci_pb2
from node import abci_server
from tests.helpers import CODE_BAD_TX, REPO, KVStoreApp


class ServerThread:
    """An ABCIServer on its own event loop in a background thread."""

    def __init__(self, app, address: str, **options):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = self._run(abci_server.serve(app, address, **options))
        self.address = self.server.address

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    def stop(self):
        self._run(self.server.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture
def app(tmp_path):
    application = KVStoreApp(str(tmp_path / "app"))
    yield application
    application.close()


@pytest.fixture(params=["tcp", "unix"])
def server(request, app, tmp_path):
    address = "tcp://127.0.0.1:0" if request.param == "tcp" else f"unix://{tmp_path}/abci.sock"
    running = ServerThread(app, address, max_message_bytes=4 * 1024 * 1024)
    yield running
    running.stop()


def test_echo_flush_info(server):
    with ABCIClient(server.address) as client:
        assert client.echo(message="hello").message == "hello"
        assert client.flush() == abci_pb2.ResponseFlush()
        info = client.info(version="0.38.17", block_version=11, p2p_version=8, abci_version="2.0.0")
        assert (info.data, info.version, info.last_block_height) == ("kvstore", "0.38.17", 0)


def test_block_lifecycle(server):
    with ABCIClient(server.address) as client:
        init = client.init_chain(chain_id="maxwell-1", initial_height=1)
        assert len(init.app_hash) == 32
        proposal = client.prepare_proposal(height=1, txs=[b"a=1", b"junk", b"b=2"], max_tx_bytes=1 << 20)
        assert list(proposal.txs) == [b"a=1", b"b=2"]
        assert client.process_proposal(height=1, txs=proposal.txs).status == abci_pb2.ResponseProcessProposal.ACCEPT
        assert client.process_proposal(height=1, txs=[b"junk"]).status == abci_pb2.ResponseProcessProposal.REJECT
        extension = client.extend_vote(height=1).vote_extension
        verified = client.verify_vote_extension(height=1, vote_extension=extension)
        assert verified.status == abci_pb2.ResponseVerifyVoteExtension.ACCEPT
        block = client.finalize_block(abci_pb2.RequestFinalizeBlock(height=1, txs=[b"a=1", b"junk"]))
        assert [r.code for r in block.tx_results] == [0, CODE_BAD_TX]
        assert block.tx_results[0].events[0].attributes[0].value == "a"
        assert client.query(data=b"a").code == 1  # not committed yet
        client.commit()
        info = client.info()
        assert (info.last_block_height, info.last_block_app_hash) == (1, block.app_hash)
        assert client.query(data=b"a").value == b"1"
        assert list(client.list_snapshots().snapshots) == []
        assert client.offer_snapshot().result == abci_pb2.ResponseOfferSnapshot.REJECT
        assert client.load_snapshot_chunk(height=1).chunk == b""
        assert client.apply_snapshot_chunk(index=0).result == abci_pb2.ResponseApplySnapshotChunk.ABORT


def test_pipelined_requests_are_answered_in_order(server):
    txs = [b"k%d=v" % i if i % 3 else b"bad%d" % i for i in range(100)]
    with ABCIClient(server.address) as client:
        for tx in txs:
            client.send(abci_pb2.Request(check_tx=abci_pb2.RequestCheckTx(tx=tx)))
        client.send(abci_pb2.Request(echo=abci_pb2.RequestEcho(message="last")))
        client.send_flush()
        for tx in txs:
            response = client.recv()
            assert response.WhichOneof("value") == "check_tx"
            if tx.startswith(b"bad"):
                assert response.check_tx.code == CODE_BAD_TX
            else:
                assert int.from_bytes(response.check_tx.data, "big") == len(tx)
        assert client.recv().echo.message == "last"
        assert client.recv().WhichOneof("value") == "flush"


def test_four_connections_at_once_share_one_serialized_app(server, app):
    with ABCIClient(server.address) as consensus:
        consensus.init_chain(chain_id="maxwell-1")
    errors = []

    def run(work):
        try:
            with ABCIClient(server.address) as client:
                work(client)
        except Exception as e:  # surfaced by the assertion below
            errors.append(e)

    def consensus_conn(client):
        for height in range(1, 31):
            client.finalize_block(height=height, txs=[b"h=%d" % height])
            client.commit()

    def mempool_conn(client):
        for i in range(60):
            assert client.check_tx(tx=b"x=%d" % i).code == 0

    def query_conn(client):
        for _ in range(60):
            assert client.echo(message="ping").message == "ping"
            client.info()

    def snapshot_conn(client):
        for _ in range(60):
            client.list_snapshots()

    threads = [threading.Thread(target=run, args=(w,)) for w in
               (consensus_conn, mempool_conn, query_conn, snapshot_conn)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert app.max_in_flight == 1
    assert len(app.threads) == 1
    with ABCIClient(server.address) as client:
        assert client.info().last_block_height == 30
        assert client.query(data=b"h").value == b"30"


def test_messages_larger_than_one_mebibyte(server):
    big_tx = b"big=" + os.urandom(3 * 1024 * 1024 // 2).hex().encode()  # a UTF-8 value, as the app takes
    with ABCIClient(server.address) as client:
        assert int.from_bytes(client.check_tx(tx=big_tx).data, "big") == len(big_tx)
        assert len(client.query(path="/big", data=b"2000000").value) == 2_000_000


def _oversized_frame() -> bytes:
    return encode_uvarint(5 * 1024 * 1024) + b"\x00" * 16


@pytest.mark.parametrize("garbage", [
    pytest.param(b"\xff" * 11, id="varint-too-long"),
    pytest.param(_oversized_frame(), id="over-max-size"),
    pytest.param(b"\x04\x0a\xff\xff\xff", id="undecodable-protobuf"),
])
def test_garbage_frame_closes_only_that_connection(server, garbage, caplog):
    with ABCIClient(server.address) as healthy:
        healthy.echo(message="before")
        with ABCIClient(server.address) as bad:
            with caplog.at_level(logging.WARNING, logger="node.abci_server"):
                bad.send_raw(garbage)
                assert bad.is_closed_by_server()
        assert any("malformed frame" in r.getMessage() for r in caplog.records)
        assert healthy.echo(message="after").message == "after"
    with ABCIClient(server.address) as fresh:
        assert fresh.echo(message="new").message == "new"


def test_app_exception_answers_response_exception(server, caplog):
    with ABCIClient(server.address) as client:
        with caplog.at_level(logging.ERROR, logger="node.abci_server"):
            with pytest.raises(ABCIExceptionResponse) as failure:
                client.query(path="/panic")
        assert "RuntimeError: query handler bug" in failure.value.error
        assert any(r.exc_info and "query handler bug" in str(r.exc_info[1]) for r in caplog.records)
        with pytest.raises(ConnectionClosedError):  # closed after the exception, as CometBFT's Go server does
            client.recv()
    with ABCIClient(server.address) as client:
        assert client.query(data=b"missing").code == 1


def test_wrong_response_type_from_app_is_an_exception(app, tmp_path):
    app.commit = lambda req: abci_pb2.ResponseInfo()
    running = ServerThread(app, f"unix://{tmp_path}/abci.sock")
    try:
        with ABCIClient(running.address) as client:
            with pytest.raises(ABCIExceptionResponse, match="commit"):
                client.commit()
    finally:
        running.stop()


def test_empty_request_is_an_exception(server):
    with ABCIClient(server.address) as client:
        client.send_raw(b"\x00")
        response = client.recv()
        assert response.WhichOneof("value") == "exception"


@pytest.mark.parametrize("address", ["127.0.0.1:26658", "http://x:1", "tcp://host", "unix://"])
def test_invalid_address(app, address):
    with pytest.raises(abci_server.InvalidAddressError):
        asyncio.run(abci_server.serve(app, address))


def test_address_in_use_is_a_clear_error(server, app):
    with pytest.raises(abci_server.ListenError, match="cannot listen"):
        asyncio.run(abci_server.serve(app, server.address))
    with ABCIClient(server.address) as client:
        assert client.echo(message="still mine").message == "still mine"


def test_stale_unix_socket_file_is_replaced(app, tmp_path):
    path = tmp_path / "abci.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:  # what a killed server leaves behind
        dead.bind(str(path))
    assert path.exists()
    second = ServerThread(app, f"unix://{path}")
    try:
        with ABCIClient(second.address) as client:
            assert client.echo(message="replaced").message == "replaced"
    finally:
        second.stop()


def test_run_stops_cleanly_on_sigterm(tmp_path):
    sock = tmp_path / "abci.sock"
    code = (
        f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
        "from tests.helpers import KVStoreApp\n"
        "from node.abci_server import run\n"
        f"run(KVStoreApp({str(tmp_path / 'app')!r}), 'unix://{sock}')\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while not sock.exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        with ABCIClient(f"unix://{sock}") as client:
            assert client.echo(message="up").message == "up"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
            assert client.is_closed_by_server()
        assert b"Traceback" not in proc.stderr.read()
        assert not sock.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
