"""The gRPC server in-process on a dev chain of the real App: bad input, load, and the two backends.

The SDK-compatible behaviour, through a client of the SDK's own protos, is in test_grpc_upstream.py.
"""

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pool

from chain import app as registry
from chain.app import App
from chain.proto.cosmos.bank.v1beta1 import query_pb2 as bank_query_pb2
from chain.proto.cosmos.base.tendermint.v1beta1 import query_pb2 as cmt_pb2
from chain.proto.cosmos.tx.v1beta1 import service_pb2
from ibc.tendermint import compute_header_hash
from node import grpc_backend, grpc_server
from node.devchain import DevChain
from tests.helpers import (
    compute_free_port, invoke, make_account, make_app_state, make_home, send, wait_for, assert_one_line_error,
)

KEEP_RECENT = 3
CLIENTS = 16
CALLS_PER_CLIENT = 60
RSS_GROWTH_LIMIT_KB = 64 * 1024


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    home = tmp_path_factory.mktemp("grpc_inprocess")
    alice = make_account("alice", 0)
    make_home(home, app_state=make_app_state([alice]))
    app = App(str(Path(home) / "data"), keep_recent=KEEP_RECENT)
    chain = DevChain(home, app=app, block_time_ms=50)
    chain.start(f"tcp://127.0.0.1:{compute_free_port()}")
    server, port = grpc_server.serve(grpc_backend.DevBackend(chain), "127.0.0.1:0")
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield {"chain": chain, "channel": channel, "port": port, "alice": alice}
    channel.close()
    server.stop(0).wait()
    chain.stop()
    app.close()


def call(channel, path: str, request: bytes, metadata=()) -> tuple[bytes, grpc.Call]:
    return channel.unary_unary(path).with_call(request, metadata=metadata, timeout=10)


def status_of(channel, path: str, request: bytes, metadata=()) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call(channel, path, request, metadata)
    return caught.value.code(), caught.value.details()


BALANCE = "/cosmos.bank.v1beta1.Query/Balance"


def balance_request(account) -> bytes:
    return bank_query_pb2.QueryBalanceRequest(address=account.bech32, denom="ujoule").SerializeToString()


def test_every_app_query_is_a_reflected_method_and_back():
    pool = descriptor_pool.Default()
    for path in (*registry.QUERIES, registry.SIMULATE_PATH):
        service, method = path.strip("/").split("/")
        assert pool.FindServiceByName(service).methods_by_name[method]
    for service in grpc_server.SERVICE_NAMES:
        for method in pool.FindServiceByName(service).methods:
            path = f"/{service}/{method.name}"
            assert path in registry.QUERIES or path == registry.SIMULATE_PATH or path in grpc_server.NODE_METHODS


def test_malformed_requests_and_unknown_methods(served):
    channel = served["channel"]
    assert status_of(channel, BALANCE, b"\xff\xff\xff")[0] == grpc.StatusCode.INVALID_ARGUMENT
    code, details = status_of(channel, "/cosmos.tx.v1beta1.Service/GetTx", b"\x0a\xff")
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "cosmos.tx.v1beta1.GetTxRequest" in details
    assert status_of(channel, "/cosmos.tx.v1beta1.Service/Simulate", b"\x12\x03abc")[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert status_of(channel, "/maxwell.nothing.v1.Query/Nothing", b"")[0] == grpc.StatusCode.UNIMPLEMENTED
    search = service_pb2.GetTxsEventRequest(query="tx.height >").SerializeToString()
    assert status_of(channel, "/cosmos.tx.v1beta1.Service/GetTxsEvent", search)[0] == grpc.StatusCode.INVALID_ARGUMENT


def test_heights_out_of_range_pruned_or_malformed(served):
    chain, channel, request = served["chain"], served["channel"], balance_request(served["alice"])
    wait_for(lambda: chain.state.last_block_height > KEEP_RECENT + 2, timeout=30)
    code, details = status_of(channel, BALANCE, request, ((grpc_server.HEIGHT_HEADER, "1"),))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "pruned" in details
    latest = chain.app.store.height
    _, answered = call(channel, BALANCE, request, ((grpc_server.HEIGHT_HEADER, str(latest)),))
    assert dict(answered.initial_metadata())[grpc_server.HEIGHT_HEADER] == str(latest)
    for header in ("-1", "1e3", "99999999999999999999", ""):
        code, _ = status_of(channel, BALANCE, request, ((grpc_server.HEIGHT_HEADER, header),))
        assert code == grpc.StatusCode.INVALID_ARGUMENT, header
    block = cmt_pb2.GetBlockByHeightRequest(height=10**9).SerializeToString()
    code, details = status_of(channel, "/cosmos.base.tendermint.v1beta1.Service/GetBlockByHeight", block)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "bigger than the chain length" in details


def test_oversized_message_is_refused(served):
    request = bank_query_pb2.QueryBalanceRequest(address="x" * (grpc_server.MAX_RECEIVE_BYTES + 1)).SerializeToString()
    assert status_of(served["channel"], BALANCE, request)[0] == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert call(served["channel"], BALANCE, balance_request(served["alice"]))[0]


def read_rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


def test_many_concurrent_clients_while_blocks_go_on(served):
    chain, port, request = served["chain"], served["port"], balance_request(served["alice"])

    def client(_) -> int:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            method = channel.unary_unary(BALANCE)
            return sum(1 for _ in range(CALLS_PER_CLIENT) if method(request, timeout=30))

    client(0)
    rss, height = read_rss_kb(), chain.state.last_block_height
    started = time.monotonic()
    with ThreadPoolExecutor(CLIENTS) as pool:
        answered = sum(pool.map(client, range(CLIENTS)))
    elapsed = time.monotonic() - started
    assert answered == CLIENTS * CALLS_PER_CLIENT
    print(f"{answered / elapsed:.0f} Balance calls/s from {CLIENTS} clients")
    wait_for(lambda: chain.state.last_block_height > height + 2, timeout=10)
    assert chain.halt_error is None
    assert read_rss_kb() - rss < RSS_GROWTH_LIMIT_KB


def test_broadcast_and_the_comet_backend_reads_as_the_dev_one(served):
    """CometBackend over the dev chain's CometBFT-compatible RPC sees what DevBackend reads directly."""
    chain, channel, alice = served["chain"], served["channel"], served["alice"]
    tx = send(alice, make_account("bob", 1).address, 10, sequence=0)
    sent, _ = call(channel, "/cosmos.tx.v1beta1.Service/BroadcastTx", service_pb2.BroadcastTxRequest(
        tx_bytes=tx, mode=service_pb2.BROADCAST_MODE_SYNC).SerializeToString())
    txhash = service_pb2.BroadcastTxResponse.FromString(sent).tx_response.txhash
    dev = grpc_backend.DevBackend(chain)
    found = wait_for(lambda: dev.get_tx(bytes.fromhex(txhash)), timeout=10)
    comet = grpc_backend.CometBackend(grpc_backend.LockedApp(chain.app), chain.rpc_server.url)
    assert comet.get_tx(found.hash) == found
    assert comet.get_tx(b"\x00" * 32) is None
    query = f"tx.height={found.height}"
    assert comet.search_txs(query, 1, 10, "desc") == dev.search_txs(query, 1, 10, "desc")
    for height in (1, found.height):
        assert comet.get_block(height) == dev.get_block(height)
        assert compute_header_hash(comet.get_header(height)) == dev.get_block(height)[0].hash
        assert comet.get_validators(height) == dev.get_validators(height)
    assert comet.get_node_info() == dev.get_node_info()
    assert comet.is_syncing() is dev.is_syncing() is False
    with pytest.raises(grpc_backend.InvalidTxQuery):
        comet.search_txs(query, 5, 10, "asc")


def test_listen_errors(served):
    backend = grpc_backend.DevBackend(served["chain"])
    with pytest.raises(grpc_server.ListenError, match="cannot listen"):
        grpc_server.serve(backend, f"127.0.0.1:{served['port']}")
    with pytest.raises(grpc_server.InvalidListenAddress):
        grpc_server.serve(backend, "tcp://127.0.0.1:9090")
    assert_one_line_error(invoke("dev", "--grpc", "nowhere", "--home", "/nonexistent"), "invalid gRPC listen address")
    assert_one_line_error(invoke("start", "--grpc", "1.2.3.4:99999", "--home", "/nonexistent"),
                          "invalid gRPC listen address")
