"""The dev chain's RPC under hostile clients, over real sockets: malformed JSON-RPC."""

import asyncio
import http.client
import json
import logging
import urllib.parse

import aiohttp
import pytest

from node import rpc
from tests.test_rpc import node  # noqa: F401 - the module's fixture


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
    status, response = exchange(connection, "POST", "/", b'{"jsonrpc":"2.0","id":"after-the-message-under-test-1","method":"health"}')
    assert (status, response) == (200, {"jsonrpc": "2.0", "id": "after-the-message-under-test-1", "result": {}})


def assert_no_traceback(caplog) -> None:
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


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
HOSTILE_GETS = [
    ('/tx?hash="\\ud800"', -32602),
    ('/abci_query?path="\\ud800"', -32602),
    ('/tx_search?query="\\ud800"', -32602),
    ("/block?height=" + "[" * 2000, -32602),
    ("/block?height=1e400", -32602),
]


@pytest.mark.parametrize("body,http_status,code", HOSTILE_POSTS)
def test_hostile_posts_get_json_rpc_errors_and_keep_alive(node, caplog, body, http_status, code):
    caplog.set_level(logging.INFO)
    connection = http.client.HTTPConnection("127.0.0.1", node.rpc_server.port, timeout=5)
    connection.connect()
    sock = connection.sock
    status, response = exchange(connection, "POST", "/", body)
    assert status == http_status
    assert_json_rpc(response)
    assert response["error"]["code"] == code
    assert_serves_health(connection)
    assert connection.sock is sock
    connection.close()
    assert_no_traceback(caplog)


@pytest.mark.parametrize("path,code", HOSTILE_GETS)
def test_hostile_uri_args_get_json_rpc_errors_and_keep_alive(node, caplog, path, code):
    caplog.set_level(logging.INFO)
    connection = http.client.HTTPConnection("127.0.0.1", node.rpc_server.port, timeout=5)
    connection.connect()
    sock = connection.sock
    status, response = exchange(connection, "GET", urllib.parse.quote(path, safe="/?="))
    assert status == 500
    assert_json_rpc(response, -1)
    assert response["error"]["code"] == code
    assert_serves_health(connection)
    assert connection.sock is sock
    connection.close()
    assert_no_traceback(caplog)


async def _send_on_one_websocket(url: str, messages: list[str]) -> list[dict]:
    """Each message's reply; the connection must stay open through all of them."""
    replies = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url + "/websocket") as ws:
            for message in messages:
                await ws.send_str(message)
                await ws.send_str('{"jsonrpc":"2.0","id":"after-the-message-under-test-1","method":"health"}')
                reply = await ws.receive_json(timeout=5)
                assert await ws.receive_json(timeout=5) == {"jsonrpc": "2.0", "id": "after-the-message-under-test-1", "result": {}}
                replies.append(reply)
            assert not ws.closed
    return replies


def test_hostile_websocket_messages_get_json_rpc_errors_and_the_socket_stays_open(node, caplog):
    caplog.set_level(logging.INFO)
    messages = [body.decode() for body, _, _ in HOSTILE_POSTS]
    replies = asyncio.run(_send_on_one_websocket(node.rpc_server.url, messages))
    for reply, (_, _, code) in zip(replies, HOSTILE_POSTS):
        assert_json_rpc(reply)
        # CometBFT's websocket reports bad params as an internal error.
        assert reply["error"]["code"] == (rpc.INTERNAL_ERROR if code == rpc.INVALID_PARAMS else code)
    assert_no_traceback(caplog)
