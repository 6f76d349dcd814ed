"""The dev chain's RPC under hostile clients, over real sockets: connection and subscription caps, read
timeouts, malformed JSON-RPC, and random input to every method."""

import asyncio
import http.client
import json
import logging
import os
import resource
import selectors
import socket
import subprocess
import sys
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import aiohttp
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from node import rpc
from tests.helpers import (
    JSON_VALUES,
    MAXWELL,
    REPO,
    assert_one_line_error,
    b64,
    call,
    close_chain,
    compute_free_port,
    invoke,
    make_home,
    open_chain,
    post_rpc,
    result,
    wait_for,
)

SLOW_CLIENT_TIMEOUT_S = 0.5
# What follows the input under test on the same connection; an id no strategy below draws.
FOLLOWING_ID = "following-the-input-under-test"
FOLLOWING_REQUEST = json.dumps({"jsonrpc": "2.0", "id": FOLLOWING_ID, "method": "health"})
FOLLOWING_RESPONSE = {"jsonrpc": "2.0", "id": FOLLOWING_ID, "result": {}}
MAX_QUERY_STRING = 8000  # aiohttp answers a longer request line 400 in plain text, as Go's server does

# A dev chain with a small open-file limit whose app opens a file in every block, as LevelDB's
# compactions, the signature helper and the proof verifier do.
LIMITED_NODE = """
import resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, ({soft}, {hard}))
from tests.test_devchain import KVStoreApp
from node.devchain import run

class FileOpeningApp(KVStoreApp):
    def finalize_block(self, request):
        with open({marker!r}, "w") as file:
            file.write(str(request.height))
        return super().finalize_block(request)

run({home!r}, "tcp://127.0.0.1:{port}", 100, app=FileOpeningApp({data!r}))
"""


@pytest.fixture(scope="module")
def node(kv_node):
    return kv_node


def assert_json_rpc(response, request_id=...) -> None:
    """One JSON-RPC 2.0 response object as CometBFT writes it."""
    assert isinstance(response, dict) and response["jsonrpc"] == "2.0", response
    assert ("result" in response) != ("error" in response), response
    if request_id is not ...:
        assert response.get("id") == request_id, response
    if "error" in response:
        error = response["error"]
        assert isinstance(error["code"], int) and isinstance(error["message"], str), response
        assert set(error) <= {"code", "message", "data"} and isinstance(error.get("data", ""), str), response


def read_response(connection: http.client.HTTPConnection) -> tuple[int, object]:
    response = connection.getresponse()
    body = response.read()
    return response.status, json.loads(body) if body else None


def exchange(connection: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None):
    connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
    return read_response(connection)


def assert_serves_health(connection: http.client.HTTPConnection) -> None:
    assert exchange(connection, "POST", "/", FOLLOWING_REQUEST.encode()) == (200, FOLLOWING_RESPONSE)


def assert_no_traceback(caplog) -> None:
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def read_until_closed(sock: socket.socket, timeout_s: float) -> tuple[bytes, float]:
    """What the server sends until it closes the connection, and how long that took."""
    start = time.monotonic()
    sock.settimeout(timeout_s)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received, time.monotonic() - start


# ---------------------------------------------------------------------------------------------
# Malformed JSON-RPC: a JSON error with CometBFT's code and status, and the connection serves on.

DEEP = b"[" * 5000 + b"]" * 5000
HOSTILE_POSTS = [
    (b'{"jsonrpc":"2.0","id":1e400,"method":"health"}', 500, -32700),
    (b'{"jsonrpc":"2.0","id":NaN,"method":"health"}', 500, -32700),
    (b'{"jsonrpc":"2.0","id":1e300,"method":"health"}', 500, -32700),
    (DEEP, 500, -32700),
    (b'{"jsonrpc":"2.0","id":1,"method":"block","params":{"height":' + DEEP + b"}}", 500, -32700),
    (b'{"jsonrpc":"2.0","id":1,"method":"block","params":{"height":' + b"[" * 900 + b"]" * 900 + b"}}", 200, -32602),
    (b'{"jsonrpc":"2.0","id":1,"method":"tx","params":{"hash":"\\ud800"}}', 200, -32602),
    (b'{"jsonrpc":"2.0","id":1,"method":"tx_search","params":{"query":"a.b=\'\\ud800\'"}}', 200, -32602),
    (b'{"jsonrpc":"2.0","id":1,"method":"abci_query","params":{"path":"\\ud800"}}', 200, -32602),
]
# CometBFT answers a failed URI call 500, with the JSON-RPC error (id -1).
HOSTILE_GETS = [
    (urllib.parse.quote(path, safe="/?="), None, 500, -32602)
    for path in ('/tx?hash="\\ud800"', '/abci_query?path="\\ud800"', '/tx_search?query="\\ud800"',
                 "/block?height=" + "[" * 2000, "/block?height=1e400")
]


@pytest.mark.parametrize("path,body,http_status,code", [("/", *post) for post in HOSTILE_POSTS] + HOSTILE_GETS)
def test_hostile_requests_get_json_rpc_errors_and_keep_alive(node, caplog, path, body, http_status, code):
    caplog.set_level(logging.INFO)
    connection = http.client.HTTPConnection("127.0.0.1", node.rpc_server.port, timeout=5)
    connection.connect()
    sock = connection.sock
    status, response = exchange(connection, "POST" if body else "GET", path, body)
    assert status == http_status
    assert_json_rpc(response)
    assert response["error"]["code"] == code
    assert_serves_health(connection)
    assert connection.sock is sock
    connection.close()
    assert_no_traceback(caplog)


async def _send_on_one_websocket(url: str, messages: list[str | bytes]) -> list[list[dict]]:
    """For each message, all the server sends up to its reply to a following request; the socket stays open."""
    received = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url + "/websocket") as ws:
            for message in messages:
                await (ws.send_bytes(message) if isinstance(message, bytes) else ws.send_str(message))
                await ws.send_str(FOLLOWING_REQUEST)
                replies = []
                while not replies or replies[-1].get("id") != FOLLOWING_ID:
                    replies.append(await ws.receive_json(timeout=10))
                received.append(replies)
            assert not ws.closed
    return received


def test_hostile_websocket_messages_get_json_rpc_errors_and_the_socket_stays_open(node, caplog):
    caplog.set_level(logging.INFO)
    messages = [body.decode() for body, _, _ in HOSTILE_POSTS]
    received = asyncio.run(_send_on_one_websocket(node.rpc_server.url, messages))
    for (reply, following), (_, _, code) in zip(received, HOSTILE_POSTS):
        assert_json_rpc(reply)
        # CometBFT's websocket reports bad params as an internal error.
        assert reply["error"]["code"] == (rpc.INTERNAL_ERROR if code == rpc.INVALID_PARAMS else code)
        assert following == FOLLOWING_RESPONSE
    assert_no_traceback(caplog)


def test_an_oversized_declared_body_is_refused_at_once(node, caplog):
    caplog.set_level(logging.INFO)
    with socket.create_connection(("127.0.0.1", node.rpc_server.port)) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 10000000\r\n\r\n12345678")
        start = time.monotonic()
        sock.settimeout(5)
        received = b""
        while b"}}" not in received:
            received += sock.recv(65536)
        elapsed = time.monotonic() - start
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ") and elapsed < 1, (head, elapsed)
    response = json.loads(body)
    assert_json_rpc(response)
    assert response["error"]["code"] == -32600 and "request body too large" in response["error"]["data"]
    assert result(node, "health") == {}
    assert_no_traceback(caplog)


# ---------------------------------------------------------------------------------------------
# Slow and idle clients, and the caps.


def test_slow_and_idle_clients_are_dropped_after_the_read_timeout(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    make_home(tmp_path)
    chain, app = open_chain(tmp_path)
    chain.start("tcp://127.0.0.1:0", rpc.RPCConfig(read_timeout=SLOW_CLIENT_TIMEOUT_S))
    try:
        address = ("127.0.0.1", chain.rpc_server.port)
        idle, partial_headers, partial_body = (socket.create_connection(address) for _ in range(3))
        partial_headers.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n")
        partial_body.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"jsonrpc\"")
        for sock in (idle, partial_headers):
            received, elapsed = read_until_closed(sock, 5)
            assert received == b"" and elapsed < SLOW_CLIENT_TIMEOUT_S + 1.5, elapsed
        received, elapsed = read_until_closed(partial_body, 5)
        assert elapsed < SLOW_CLIENT_TIMEOUT_S + 1.5, elapsed
        head, _, body = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400 ")
        response = json.loads(body)
        assert response["error"]["code"] == -32600 and "error reading request body" in response["error"]["data"]

        # A client that keeps its requests coming keeps its connection.
        connection = http.client.HTTPConnection(*address, timeout=5)
        connection.connect()
        sock = connection.sock
        for _ in range(4):
            assert_serves_health(connection)
            time.sleep(SLOW_CLIENT_TIMEOUT_S / 2)
        assert connection.sock is sock
        connection.close()
        for sock in (idle, partial_headers, partial_body):
            sock.close()
    finally:
        close_chain(chain, app)
    assert_no_traceback(caplog)


async def _subscribe(url: str, queries: list[str]) -> list[dict]:
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url + "/websocket") as ws:
            replies = []
            for i, query in enumerate(queries):
                await ws.send_json({"jsonrpc": "2.0", "id": i, "method": "subscribe", "params": {"query": query}})
                replies.append(await ws.receive_json(timeout=5))
            return replies


def test_broadcast_tx_commit_waiters_and_subscribers_share_max_subscription_clients(tmp_path):
    make_home(tmp_path)
    chain, app = open_chain(tmp_path)
    chain.block_time_ms = 60_000  # block 1 at start, then none while the waiters wait
    chain.start("tcp://127.0.0.1:0", rpc.RPCConfig(max_subscription_clients=3, max_subscriptions_per_client=2,
                                                   timeout_broadcast_tx_commit=1.0))
    try:
        wait_for(lambda: chain.state.last_block_height >= 1)
        with ThreadPoolExecutor(3) as pool:
            start = time.monotonic()
            waiting = [pool.submit(call, chain, "broadcast_tx_commit", tx=b64(b"wait%d=x" % i)) for i in range(3)]
            wait_for(lambda: result(chain, "num_unconfirmed_txs")["n_txs"] == "3")
            refused_at = time.monotonic()
            refused = call(chain, "broadcast_tx_commit", tx=b64(b"extra=x"))
            assert time.monotonic() - refused_at < 0.5
            assert refused["error"]["code"] == -32603
            assert refused["error"]["data"] == "max_subscription_clients 3 reached"
            assert result(chain, "num_unconfirmed_txs")["n_txs"] == "3"
            [subscribe_refused] = asyncio.run(_subscribe(chain.rpc_server.url, ["tm.event='NewBlock'"]))
            assert subscribe_refused["error"]["data"] == "max_subscription_clients 3 reached"
            for future in waiting:
                error = future.result()["error"]
                assert (error["code"], error["data"]) == (-32603, "timed out waiting for tx to be included in a block")
            assert 1.0 <= time.monotonic() - start < 3
        replies = asyncio.run(_subscribe(chain.rpc_server.url, ["tm.event='NewBlock'", "tm.event='Tx'",
                                                                "tm.event='NewBlockHeader'"]))
        assert [r.get("result") for r in replies[:2]] == [{}, {}]
        assert replies[2]["error"]["data"] == "max_subscriptions_per_client 2 reached"
    finally:
        close_chain(chain, app)


def _open_sockets(port: int, count: int) -> list[socket.socket]:
    return [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)]


def _count_closed(sockets: list[socket.socket], settle_s: float) -> int:
    """How many of the sockets the server has closed, once none has closed for `settle_s`."""
    closed = set()
    with selectors.DefaultSelector() as selector:
        for sock in sockets:
            selector.register(sock, selectors.EVENT_READ)
        while ready := selector.select(settle_s):
            for key, _ in ready:
                selector.unregister(key.fileobj)
                closed.add(key.fileobj)
    return len(closed)


def test_connections_beyond_the_cap_are_closed_and_blocks_keep_coming(tmp_path):
    """The soft open-file limit (300) is raised to the hard one (400), and the connection cap keeps
    FD_RESERVE of those for the node: with the cap's worth of connections open, the app can still
    open files, blocks keep coming and a tx is included."""
    soft, hard = 300, 400
    cap = hard - rpc.FD_RESERVE
    make_home(tmp_path)
    port = compute_free_port()
    code = LIMITED_NODE.format(soft=soft, hard=hard, marker=str(tmp_path / "marker"),
                               home=str(tmp_path), port=port, data=str(tmp_path / "data"))
    log_path = tmp_path / "node.log"
    with open(log_path, "w") as log_file:
        process = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT)
    idle = []
    try:
        def is_up():
            assert process.poll() is None, log_path.read_text()
            try:
                return post_rpc(port, "status")["result"]["sync_info"]["latest_block_height"] != "0"
            except OSError:
                return False

        wait_for(is_up, timeout=20)
        kept = http.client.HTTPConnection("127.0.0.1", port, timeout=5)

        def height() -> int:
            status, response = exchange(kept, "POST", "/", b'{"jsonrpc":"2.0","id":1,"method":"status"}')
            return int(response["result"]["sync_info"]["latest_block_height"])

        first = height()
        idle = _open_sockets(port, cap + 100)
        assert _count_closed(idle, settle_s=1.0) == len(idle) - (cap - 1)
        wait_for(lambda: height() >= first + 5)
        status, committed = exchange(kept, "POST", "/", json.dumps({
            "jsonrpc": "2.0", "id": 2, "method": "broadcast_tx_commit", "params": {"tx": b64(b"full=yes")}}).encode())
        assert committed["result"]["tx_result"]["code"] == 0 and int(committed["result"]["height"]) > first
        assert int((tmp_path / "marker").read_text()) >= int(committed["result"]["height"])
        log = log_path.read_text()
        assert f"max_open_connections lowered from 900 to {cap}" in log
        assert log.count("max_open_connections") == 2, log
        assert "halted" not in log and "Traceback" not in log and "Too many open files" not in log
        for sock in idle:
            sock.close()
        kept.close()
        wait_for(is_up)
    finally:
        for sock in idle:
            sock.close()
        process.terminate()
        process.wait(timeout=20)


def test_a_descriptor_limit_leaving_nothing_for_connections_is_a_one_line_error(tmp_path):
    assert invoke("init", "--chain-id", "maxwell-fd-1", "--home", tmp_path).exit_code == 0
    limit = rpc.FD_RESERVE - 50
    result = subprocess.run(
        [str(MAXWELL), "dev", "--home", str(tmp_path), "--rpc", f"tcp://127.0.0.1:{compute_free_port()}"],
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit)),
        capture_output=True, text=True, timeout=60)
    assert_one_line_error(result, f"the open-file limit ({limit}) leaves no descriptors for RPC connections")


def test_out_of_descriptors_accepting_waits_and_then_serves(tmp_path, caplog):
    """When something else in the process takes every descriptor, a connection waits to be accepted."""
    caplog.set_level(logging.INFO)
    make_home(tmp_path)
    chain, app = open_chain(tmp_path)
    chain.block_time_ms = 60_000  # no block (and no LevelDB file) while descriptors are out
    chain.start("tcp://127.0.0.1:0")
    limits = resource.getrlimit(resource.RLIMIT_NOFILE)
    client = socket.socket()
    try:
        lowest_free = os.open(os.devnull, os.O_RDONLY)
        os.close(lowest_free)
        resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, limits[1]))
        try:
            client.connect(("127.0.0.1", chain.rpc_server.port))
            time.sleep(rpc.ACCEPT_RETRY_S / 2)
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, limits)
        client.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 43\r\n\r\n"
                       b'{"jsonrpc":"2.0","id":1,"method":"health"}\n')
        received, elapsed = read_until_closed(client, 5)
        assert received.startswith(b"HTTP/1.1 200 ") and elapsed < rpc.ACCEPT_RETRY_S + 1, (received, elapsed)
    finally:
        client.close()
        close_chain(chain, app)
    assert caplog.text.count("cannot accept RPC connections: [Errno 24] Too many open files") == 1, caplog.text
    assert_no_traceback(caplog)


# ---------------------------------------------------------------------------------------------
# Random input to every method: always a well-formed JSON-RPC response.

METHODS = sorted(rpc.ROUTES) + sorted(rpc.WS_ROUTES)
IDS = st.none() | st.integers() | st.text(max_size=8) | JSON_VALUES
TEXT = st.text(st.characters() | st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, exclude_categories=()),
               max_size=20)


@st.composite
def json_rpc_requests(draw) -> dict:
    method = draw(st.sampled_from(METHODS) | st.text(max_size=8))
    names = [p.name for p in rpc.ROUTES.get(method, rpc.WS_ROUTES.get(method, ()))]
    params = draw(st.fixed_dictionaries({}, optional={name: JSON_VALUES | TEXT for name in names})
                  | st.lists(JSON_VALUES, max_size=4) | JSON_VALUES)
    request = {"jsonrpc": "2.0", "id": draw(IDS), "method": method, "params": params}
    return {k: v for k, v in request.items() if draw(st.booleans()) or k in ("id", "method")}


POST_BODIES = (json_rpc_requests().map(json.dumps).map(str.encode)
               | st.lists(json_rpc_requests(), min_size=1, max_size=3).map(json.dumps).map(str.encode)
               | st.binary(min_size=1, max_size=64))


FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@settings(FUZZ, max_examples=150)
@given(body=POST_BODIES)
def test_any_post_gets_a_json_rpc_response(node, caplog, body):
    connection = http.client.HTTPConnection("127.0.0.1", node.rpc_server.port, timeout=10)
    status, response = exchange(connection, "POST", "/", body)
    connection.close()
    assert_no_traceback(caplog)
    if response is None:
        assert status == 200  # notifications only
        return
    for one in response if isinstance(response, list) else [response]:
        assert_json_rpc(one)
    # CometBFT answers a body that is not JSON-RPC 500 -32700, one it cannot read 400 -32600.
    if status != 200:
        assert (status, response["error"]["code"]) in ((500, -32700), (400, -32600)), (status, response)


URI_ARGS = (JSON_VALUES.map(json.dumps) | TEXT | TEXT.map(json.dumps) | st.integers(2500, 3000).map(lambda n: "[" * n)
            | st.binary(max_size=16).map(lambda b: "0x" + b.hex()) | st.binary(max_size=16))


def _quote(arg: str | bytes) -> str:
    """Percent-encoded, lone surrogates as their (invalid) UTF-8 bytes; brackets kept, so deep nesting fits a line."""
    return urllib.parse.quote(arg.encode("utf-8", "surrogatepass") if isinstance(arg, str) else arg, safe="[")


@settings(FUZZ, max_examples=150)
@given(method=st.sampled_from(METHODS), data=st.data())
def test_any_uri_call_gets_a_json_rpc_response(node, caplog, method, data):
    names = [p.name for p in rpc.ROUTES.get(method, rpc.WS_ROUTES.get(method, ()))]
    args = data.draw(st.fixed_dictionaries({}, optional={name: URI_ARGS for name in names}))
    query = "&".join(f"{name}={_quote(arg)}" for name, arg in args.items())
    assume(len(query) < MAX_QUERY_STRING)
    connection = http.client.HTTPConnection("127.0.0.1", node.rpc_server.port, timeout=10)
    status, response = exchange(connection, "GET", f"/{method}?{query}")
    connection.close()
    assert_no_traceback(caplog)
    assert_json_rpc(response, -1)
    if method in rpc.WS_ROUTES:
        assert (status, response["error"]["code"]) == (404, -32601)
    elif status != 200:  # CometBFT answers a failed URI call 500, with the JSON-RPC error
        assert status == 500 and response["error"]["code"] in (-32602, -32603), (status, response)


@settings(FUZZ, max_examples=100)
@given(message=json_rpc_requests().map(json.dumps) | st.text(max_size=64) | st.binary(max_size=64))
def test_any_websocket_message_gets_a_json_rpc_response(node, caplog, message):
    [received] = asyncio.run(_send_on_one_websocket(node.rpc_server.url, [message]))
    assert_no_traceback(caplog)
    for response in received:
        assert_json_rpc(response)
    assert received[-1] == FOLLOWING_RESPONSE
