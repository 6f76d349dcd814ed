"""The REST gateway in-process on a dev chain of the real App, against clients that misbehave: oversized
and slow bodies, idle and half-sent requests, connection floods, many clients at once. Each gets a clear
error (or its connection closed) and the chain keeps producing blocks. CORS is off here."""

import base64
import http.client
import json
import logging
import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from chain.app import App
from chain.proto.cosmos.tx.v1beta1 import tx_pb2
from node import grpc_backend, rest
from node.devchain import DevChain
from tests.helpers import compute_free_port, make_account, make_app_state, make_home, wait_for

READ_TIMEOUT_S = 1.0
MAX_BODY_BYTES = 10_000
MAX_CONNECTIONS = 16
CLIENTS = 12
CALLS_PER_CLIENT = 40


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    home = tmp_path_factory.mktemp("rest_hostile")
    alice = make_account("alice", 0)
    make_home(home, app_state=make_app_state([alice]))
    app = App(str(Path(home) / "data"))
    chain = DevChain(home, app=app, block_time_ms=50)
    chain.start(f"tcp://127.0.0.1:{compute_free_port()}")
    gateway = rest.RestGateway(grpc_backend.DevBackend(chain), max_body_bytes=MAX_BODY_BYTES,
                               read_timeout=READ_TIMEOUT_S)
    server = rest.RestServer(gateway, "127.0.0.1", 0, max_open_connections=MAX_CONNECTIONS)
    server.start()
    yield {"chain": chain, "port": server.port, "url": server.url, "alice": alice}
    server.stop()
    chain.stop()
    app.close()


@pytest.fixture(autouse=True)
def no_tracebacks(caplog):
    caplog.set_level(logging.INFO)
    yield
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def balance_path(served) -> str:
    return f"/cosmos/bank/v1beta1/balances/{served['alice'].bech32}/by_denom?denom=ujoule"


def fetch(served, path: str, method: str = "GET", body: bytes | None = None, headers=None) -> tuple[int, dict, dict]:
    request = urllib.request.Request(served["url"] + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), dict(error.headers)


def read_until_closed(sock: socket.socket, timeout_s: float) -> tuple[bytes, float]:
    start = time.monotonic()
    sock.settimeout(timeout_s)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return received, time.monotonic() - start


def parse_response(raw: bytes) -> tuple[bytes, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return head, json.loads(body)


def assert_producing(served) -> None:
    chain = served["chain"]
    height = chain.state.last_block_height
    wait_for(lambda: chain.state.last_block_height > height + 1, timeout=10)
    assert chain.halt_error is None


def test_cors_is_off_by_default(served):
    status, _, headers = fetch(served, balance_path(served), headers={"Origin": "https://app.example"})
    assert status == 200 and not any(name.lower().startswith("access-control") for name in headers)
    status, shown, headers = fetch(served, "/cosmos/tx/v1beta1/txs", "OPTIONS", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
    assert status == 501 and shown["code"] == 12 and "Access-Control-Allow-Origin" not in headers


def test_an_oversized_body_is_refused_and_its_connection_closed(served):
    with socket.create_connection(("127.0.0.1", served["port"])) as sock:
        sock.sendall(b"POST /cosmos/tx/v1beta1/txs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100000000\r\n\r\n{\"tx_bytes\"")
        received, elapsed = read_until_closed(sock, 5)
    head, shown = parse_response(received)
    assert head.startswith(b"HTTP/1.1 400 ") and elapsed < READ_TIMEOUT_S + 1, (head, elapsed)
    assert shown["code"] == 3 and "request body too large" in shown["message"]
    chunked = b"".join(b"%x\r\n%s\r\n" % (1000, b" " * 1000) for _ in range(MAX_BODY_BYTES // 1000 + 2))
    with socket.create_connection(("127.0.0.1", served["port"])) as sock:
        sock.sendall(b"POST /cosmos/tx/v1beta1/txs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked)
        received, _ = read_until_closed(sock, 5)
    head, shown = parse_response(received)
    assert head.startswith(b"HTTP/1.1 400 ") and "request body too large" in shown["message"]
    assert fetch(served, balance_path(served))[0] == 200


def test_slow_and_idle_clients_are_dropped_after_the_read_timeout(served):
    address = ("127.0.0.1", served["port"])
    idle, partial_headers, partial_body = (socket.create_connection(address) for _ in range(3))
    try:
        partial_headers.sendall(b"GET /cosmos/bank/v1beta1/params HTTP/1.1\r\nHost: x\r\n")
        partial_body.sendall(b"POST /cosmos/tx/v1beta1/txs HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"tx")
        for sock in (idle, partial_headers):
            received, elapsed = read_until_closed(sock, 5)
            assert received == b"" and elapsed < READ_TIMEOUT_S + 1.5, elapsed
        received, elapsed = read_until_closed(partial_body, 5)
        assert elapsed < READ_TIMEOUT_S + 1.5, elapsed
        head, shown = parse_response(received)
        assert head.startswith(b"HTTP/1.1 400 ") and "i/o timeout" in shown["message"]
    finally:
        for sock in (idle, partial_headers, partial_body):
            sock.close()

    connection = http.client.HTTPConnection(*address, timeout=5)  # one that keeps asking keeps its connection
    connection.connect()
    sock = connection.sock
    for _ in range(3):
        connection.request("GET", "/cosmos/bank/v1beta1/params")
        assert connection.getresponse().read()
        time.sleep(READ_TIMEOUT_S / 2)
    assert connection.sock is sock
    connection.close()
    assert_producing(served)


def is_closed_by_peer(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    finally:
        sock.setblocking(True)


def test_connections_beyond_the_cap_are_closed_and_the_rest_serve(served):
    held = [socket.create_connection(("127.0.0.1", served["port"]), timeout=5) for _ in range(MAX_CONNECTIONS + 1)]
    try:
        time.sleep(0.3)
        refused = [sock for sock in held if is_closed_by_peer(sock)]
        accepted = [sock for sock in held if sock not in refused]
        assert refused and len(accepted) <= MAX_CONNECTIONS
        assert refused[-1] is held[-1]  # the last one, over the cap
        accepted[0].sendall(b"GET /cosmos/bank/v1beta1/params HTTP/1.1\r\nHost: x\r\n\r\n")
        assert accepted[0].recv(65536).startswith(b"HTTP/1.1 200 ")
    finally:
        for sock in held:
            sock.close()
    wait_for(lambda: is_serving(served), timeout=10)
    assert_producing(served)


def is_serving(served) -> bool:
    """A request is answered (the server may not have seen yet that closed connections are gone)."""
    try:
        return fetch(served, balance_path(served))[0] == 200
    except (ConnectionError, urllib.error.URLError):
        return False


def test_many_clients_at_once_while_blocks_go_on(served):
    path = balance_path(served)

    def client(_) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", served["port"], timeout=30)
        answered = 0
        for _ in range(CALLS_PER_CLIENT):
            connection.request("GET", path)
            response = connection.getresponse()
            answered += response.status == 200 and b'"amount"' in response.read()
        connection.close()
        return answered

    started = time.monotonic()
    with ThreadPoolExecutor(CLIENTS) as pool:
        answered = sum(pool.map(client, range(CLIENTS)))
    assert answered == CLIENTS * CALLS_PER_CLIENT
    print(f"{answered / (time.monotonic() - started):.0f} REST Balance calls/s from {CLIENTS} clients")
    assert_producing(served)


def test_an_undecodable_any_is_a_client_error(served):
    """TxDecode of bytes that are a Tx whose message is of no known type: 400, not a server error."""
    tx = tx_pb2.Tx(body=tx_pb2.TxBody(messages=[{"type_url": "/nowhere.MsgNothing", "value": b"\x01"}]))
    body = json.dumps({"tx_bytes": base64.b64encode(tx.SerializeToString()).decode()}).encode()
    status, shown, _ = fetch(served, "/cosmos/tx/v1beta1/decode", "POST", body)
    assert status == 400 and shown["code"] == 3 and "/nowhere.MsgNothing" in shown["message"]
