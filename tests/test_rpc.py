"""CometBFT v0.38 RPC of the dev chain over real sockets: JSON shapes, tx search, websocket events, errors."""

import asyncio
import base64
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request

import aiohttp
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from chain.proto.tendermint.crypto import keys_pb2
from chain.proto.tendermint.types import types_pb2, validator_pb2
from chain.proto.tendermint.version import types_pb2 as version_pb2
from ibc.tendermint import compute_header_hash, compute_tx_hash, compute_validator_set_hash, compute_vote_sign_bytes
from node import cometbft_json, privval, rpc, txindex
from node.devchain import DevChain
from tests.helpers import (
    CHAIN_ID,
    JSON_VALUES,
    b64,
    call,
    post,
    result,
    KVStoreApp,
    close_chain,
    make_account,
    make_app_state,
    make_home,
    open_chain,
    require_vectors,
    send,
    wait_for,
)

HEX = re.compile(r"[0-9A-F]*")
INT_STRING = re.compile(r"-?[0-9]+")
RFC3339_NANO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z")


@pytest.fixture(scope="module")
def node(kv_node):
    return kv_node


def get(node, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(node.rpc_server.url + path, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        body = e.read()
        return e.code, json.loads(body) if body.startswith(b"{") else None


def commit_tx(node, tx: bytes) -> dict:
    response = result(node, "broadcast_tx_commit", tx=b64(tx))
    assert response["check_tx"]["code"] == 0 and response["tx_result"]["code"] == 0, response
    return response


def assert_block_id(block_id: dict):
    assert HEX.fullmatch(block_id["hash"]) and len(block_id["hash"]) == 64
    assert isinstance(block_id["parts"]["total"], int) and block_id["parts"]["total"] >= 1
    assert HEX.fullmatch(block_id["parts"]["hash"]) and len(block_id["parts"]["hash"]) == 64


def assert_header(header: dict):
    assert header["chain_id"] == CHAIN_ID and header["version"] == {"block": "11", "app": "1"}
    assert INT_STRING.fullmatch(header["height"]) and RFC3339_NANO.fullmatch(header["time"])
    for name in ("last_commit_hash", "data_hash", "validators_hash", "next_validators_hash", "consensus_hash",
                 "app_hash", "last_results_hash", "evidence_hash", "proposer_address"):
        assert HEX.fullmatch(header[name]) and header[name], name


def decode_block_id_json(obj: dict) -> types_pb2.BlockID:
    return types_pb2.BlockID(hash=bytes.fromhex(obj["hash"]), part_set_header=types_pb2.PartSetHeader(
        total=obj["parts"]["total"], hash=bytes.fromhex(obj["parts"]["hash"])))


def decode_header_json(header: dict) -> types_pb2.Header:
    return types_pb2.Header(
        version=version_pb2.Consensus(block=int(header["version"]["block"]), app=int(header["version"].get("app", 0))),
        chain_id=header["chain_id"], height=int(header["height"]),
        time=cometbft_json.compute_timestamp(cometbft_json.parse_time_ns(header["time"])),
        last_block_id=decode_block_id_json(header["last_block_id"]),
        **{name: bytes.fromhex(header[name]) for name in (
            "last_commit_hash", "data_hash", "validators_hash", "next_validators_hash", "consensus_hash",
            "app_hash", "last_results_hash", "evidence_hash", "proposer_address")})


def test_header_json_matches_a_real_cometbft_header():
    header = json.loads(require_vectors("cometbft/header_with_known_hash.json").read_text())
    # The vector spells the part set header as in protobuf JSON; CometBFT's RPC calls it "parts".
    header["last_block_id"]["parts"] = header["last_block_id"].pop("part_set_header")
    encoded = cometbft_json.encode_header(decode_header_json(header))
    assert encoded == header and list(encoded) == list(header)
    assert cometbft_json.format_time_ns(cometbft_json.parse_time_ns("2020-09-14T16:33:54.21191421Z")) == "2020-09-14T16:33:54.21191421Z"
    assert cometbft_json.format_time_ns(cometbft_json.parse_time_ns("2020-09-14T18:33:54+02:00")) == "2020-09-14T16:33:54Z"


def test_status_reports_a_cometbft_038_node(node):
    wait_for(lambda: int(result(node, "status")["sync_info"]["latest_block_height"]) >= 2, timeout=20)
    status = result(node, "status")
    info, sync, validator = status["node_info"], status["sync_info"], status["validator_info"]
    assert info["version"].startswith("0.38.") and info["network"] == CHAIN_ID
    assert info["other"]["tx_index"] == "on" and re.fullmatch(r"[0-9a-f]{40}", info["id"])
    assert info["protocol_version"] == {"p2p": "8", "block": "11", "app": "1"}
    assert int(sync["latest_block_height"]) >= 2 and sync["catching_up"] is False
    assert sync["earliest_block_height"] == "1" and RFC3339_NANO.fullmatch(sync["latest_block_time"])
    assert HEX.fullmatch(sync["latest_block_hash"]) and len(sync["latest_app_hash"]) == 64
    assert validator == {"address": node.key.address.hex().upper(),
                         "pub_key": {"type": "tendermint/PubKeyEd25519", "value": b64(node.key.pub_key)},
                         "voting_power": "10"}
    assert result(node, "health") == {}


def test_block_header_commit_and_validators_verify_like_a_light_client(node):
    height = int(result(node, "status")["sync_info"]["latest_block_height"]) - 1
    block = result(node, "block", height=str(height))
    header = block["block"]["header"]
    assert_block_id(block["block_id"])
    assert_header(header)
    assert block["block"]["data"] == {"txs": []} and block["block"]["evidence"] == {"evidence": []}
    assert result(node, "header", height=str(height)) == {"header": header}
    assert result(node, "block_by_hash", hash=b64(bytes.fromhex(block["block_id"]["hash"]))) == block

    signed = result(node, "commit", height=str(height))
    assert signed["canonical"] is True and signed["signed_header"]["header"] == header
    commit = signed["signed_header"]["commit"]
    assert commit["block_id"] == block["block_id"] and commit["height"] == str(height) and commit["round"] == 0
    validators = result(node, "validators", height=str(height))
    assert (validators["count"], validators["total"], validators["block_height"]) == ("1", "1", str(height))

    # Rebuild the header and the precommit from JSON alone, as a light client does.
    rebuilt = decode_header_json(header)
    assert compute_header_hash(rebuilt).hex().upper() == commit["block_id"]["hash"]
    validator = validators["validators"][0]
    pub_key = base64.b64decode(validator["pub_key"]["value"])
    assert compute_validator_set_hash([validator_pb2.Validator(
        pub_key=keys_pb2.PublicKey(ed25519=pub_key), voting_power=int(validator["voting_power"]))]) == \
        bytes.fromhex(header["validators_hash"])
    sig = commit["signatures"][0]
    assert sig["block_id_flag"] == 2 and sig["validator_address"] == validator["address"]
    vote = types_pb2.Vote(
        type=types_pb2.SIGNED_MSG_TYPE_PRECOMMIT, height=int(commit["height"]), round=commit["round"],
        block_id=decode_block_id_json(commit["block_id"]),
        timestamp=cometbft_json.compute_timestamp(cometbft_json.parse_time_ns(sig["timestamp"])))
    assert privval.is_valid_signature(pub_key, compute_vote_sign_bytes(CHAIN_ID, vote),
                                      base64.b64decode(sig["signature"]))
    following = result(node, "block", height=str(height + 1))["block"]
    assert following["last_commit"] == commit and following["header"]["last_block_id"] == block["block_id"]


def test_first_block_has_the_empty_last_commit_shape(node):
    block = result(node, "block", height="1")["block"]
    empty_id = {"hash": "", "parts": {"total": 0, "hash": ""}}
    assert block["last_commit"] == {"height": "0", "round": 0, "block_id": empty_id, "signatures": []}
    assert block["header"]["last_block_id"] == empty_id
    latest = result(node, "commit")
    assert latest["canonical"] is False


def test_broadcast_then_find_by_tx_and_tx_search(node):
    sync = result(node, "broadcast_tx_sync", tx=b64(b"fruit=apple"))
    tx_hash = compute_tx_hash(b"fruit=apple").hex().upper()
    data = len(b"fruit=apple").to_bytes(8, "big").hex().upper()  # what the app's CheckTx answers, in hex
    assert sync == {"code": 0, "data": data, "log": "", "codespace": "", "hash": tx_hash}
    rejected = result(node, "broadcast_tx_sync", tx=b64(b"no equals sign"))
    assert (rejected["code"], rejected["log"], rejected["codespace"]) == (1, "tx must be key=value", "kv")

    found = wait_for(lambda: "result" in call(node, "tx", hash=b64(bytes.fromhex(tx_hash))) and
                     result(node, "tx", hash=b64(bytes.fromhex(tx_hash))))
    height = found["height"]
    assert found["hash"] == tx_hash and found["index"] == 0 and found["tx"] == b64(b"fruit=apple")
    assert found["tx_result"] == {
        "code": 0, "data": b64(b"apple"), "log": "", "info": "", "gas_wanted": "1", "gas_used": "1",
        "events": [{"type": "app", "attributes": [
            {"key": "key", "value": "fruit", "index": True}, {"key": "size", "value": "5", "index": True},
            {"key": "secret", "value": "apple", "index": False}]}],
        "codespace": "",
    }
    assert "proof" not in found
    proved = result(node, "tx", hash=b64(bytes.fromhex(tx_hash)), prove=True)["proof"]
    assert proved["root_hash"] == result(node, "block", height=height)["block"]["header"]["data_hash"]
    assert proved["proof"]["total"] == "1" and proved["proof"]["aunts"] == []

    for query in (f"tx.hash='{tx_hash}'", f"tx.height={height}", "app.key='fruit'",
                  f"app.key='fruit' AND tx.height>={height} AND app.size>4 AND app.key CONTAINS 'rui'",
                  "app.size EXISTS AND app.key='fruit'"):
        search = result(node, "tx_search", query=query)
        assert search["total_count"] == "1" and search["txs"] == [found], query
    assert result(node, "tx_search", query="app.secret='apple'") == {"txs": [], "total_count": "0"}

    status, by_get = get(node, f"/tx_search?query=%22app.key%3D%27fruit%27%22&prove=true")
    assert status == 200 and by_get["id"] == -1 and by_get["result"]["txs"][0]["proof"] == proved
    status, by_get = get(node, f"/tx?hash=0x{tx_hash}")
    assert status == 200 and by_get["result"] == found
    missing = call(node, "tx", hash=b64(b"\x01" * 32))
    assert missing["error"] == {"code": -32603, "message": "Internal error",
                                "data": f"tx ({'01' * 32}) not found"}


def test_tx_search_pages_and_orders(node):
    for i in range(3):
        commit_tx(node, b"page%d=x" % i)
    hashes = [compute_tx_hash(b"page%d=x" % i).hex().upper() for i in range(3)]
    query = "app.key CONTAINS 'page'"
    ascending = result(node, "tx_search", query=query)
    assert [t["hash"] for t in ascending["txs"]] == hashes and ascending["total_count"] == "3"
    descending = result(node, "tx_search", query=query, order_by="desc", per_page="2", page="1")
    assert [t["hash"] for t in descending["txs"]] == hashes[::-1][:2] and descending["total_count"] == "3"
    assert [t["hash"] for t in result(node, "tx_search", query=query, per_page="2", page="2")["txs"]] == hashes[2:]
    assert call(node, "tx_search", query=query, page="3", per_page="2")["error"]["data"] == \
        "page should be within [1, 2] range, given 3"
    assert "error" in call(node, "tx_search", query=query, order_by="sideways")


def test_broadcast_tx_commit_waits_for_inclusion(node):
    response = commit_tx(node, b"committed=yes")
    height = int(response["height"])
    assert response["hash"] == compute_tx_hash(b"committed=yes").hex().upper()
    assert response["tx_result"]["data"] == b64(b"yes")
    assert result(node, "block", height=str(height))["block"]["data"]["txs"] == [b64(b"committed=yes")]
    refused = result(node, "broadcast_tx_commit", tx=b64(b"bad tx"))
    assert refused["check_tx"]["code"] == 1 and refused["height"] == "0"
    assert refused["tx_result"] == {"code": 0, "data": None, "log": "", "info": "", "gas_wanted": "0",
                                    "gas_used": "0", "events": [], "codespace": ""}
    duplicate = call(node, "broadcast_tx_commit", tx=b64(b"committed=yes"))
    assert duplicate["error"]["data"] == "error on broadcastTxCommit: tx already exists in cache"


def test_block_results_blockchain_search_and_params(node):
    response = commit_tx(node, b"results=1")
    height = response["height"]
    results = result(node, "block_results", height=height)
    assert results["height"] == height and results["validator_updates"] is None
    assert results["txs_results"] == [response["tx_result"]]
    assert results["finalize_block_events"] == [{"type": "kvblock", "attributes": [
        {"key": "height", "value": height, "index": True}]}]
    assert results["consensus_param_updates"] is None and base64.b64decode(results["app_hash"])
    following = result(node, "block", height=str(int(height) + 1)) if int(
        result(node, "status")["sync_info"]["latest_block_height"]) > int(height) else None
    if following:
        assert base64.b64decode(results["app_hash"]).hex().upper() == following["block"]["header"]["app_hash"]

    chain = result(node, "blockchain", minHeight="1", maxHeight="3")
    assert [m["header"]["height"] for m in chain["block_metas"]] == ["3", "2", "1"]
    meta = chain["block_metas"][0]
    assert_block_id(meta["block_id"]) and INT_STRING.fullmatch(meta["block_size"]) and meta["num_txs"] == "0"

    found = result(node, "block_search", query=f"block.height={height}")
    assert found["total_count"] == "1" and found["blocks"][0]["block"]["header"]["height"] == height
    while int(result(node, "status")["sync_info"]["latest_block_height"]) < 4:
        time.sleep(0.05)
    ranged = result(node, "block_search", query="block.height >= 2 AND block.height <= 4")
    assert [b["block"]["header"]["height"] for b in ranged["blocks"]] == ["4", "3", "2"]
    for query in (f"kvblock.height='{height}'", f"kvblock.height={height} AND block.height>1"):
        by_event = result(node, "block_search", query=query)
        assert [b["block"]["header"]["height"] for b in by_event["blocks"]] == [height], query

    params = result(node, "consensus_params", height="1")
    assert params == {"block_height": "1", "consensus_params": {
        "block": {"max_bytes": "22020096", "max_gas": "-1"},
        "evidence": {"max_age_num_blocks": "100000", "max_age_duration": "172800000000000", "max_bytes": "1048576"},
        "validator": {"pub_key_types": ["ed25519"]}, "version": {"app": "0"},
        "abci": {"vote_extensions_enable_height": "1"}}}
    genesis = result(node, "genesis")["genesis"]
    assert genesis["chain_id"] == CHAIN_ID and genesis["initial_height"] == "1"
    assert genesis["app_state"] == {"greeting": "hello"} and genesis["consensus_params"] == params["consensus_params"]
    assert genesis["validators"][0]["power"] == "10"


def test_abci_info_query_and_mempool(node):
    commit_tx(node, b"query=answer")
    info = result(node, "abci_info")["response"]
    assert info["data"] == "kvstore" and info["app_version"] == "1" and INT_STRING.fullmatch(info["last_block_height"])
    found = result(node, "abci_query", path="/store", data=b"query".hex())["response"]
    assert found["value"] == b64(b"answer") and found["key"] == b64(b"query") and found["proofOps"] is None
    assert found["code"] == 0 and found["index"] == "0" and INT_STRING.fullmatch(found["height"])
    missing = result(node, "abci_query", path="/store", data=b"nothing".hex())["response"]
    assert (missing["code"], missing["value"], missing["log"]) == (1, None, "does not exist")
    status, by_get = get(node, "/abci_query?path=%22/store%22&data=0x" + b"query".hex())
    assert status == 200 and by_get["result"]["response"]["value"] == b64(b"answer")
    status, quoted = get(node, "/abci_query?path=%22/store%22&data=%22query%22")
    assert quoted["result"]["response"]["value"] == b64(b"answer")
    assert result(node, "num_unconfirmed_txs") == {"n_txs": "0", "total": "0", "total_bytes": "0", "txs": None}
    assert result(node, "unconfirmed_txs", limit="5") == {"n_txs": "0", "total": "0", "total_bytes": "0", "txs": []}
    assert result(node, "check_tx", tx=b64(b"nope"))["code"] == 1


async def _receive_events(node, queries: list[str], tx: bytes) -> dict[str, list]:
    received: dict[str, list] = {q: [] for q in queries}
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(node.rpc_server.url + "/websocket") as ws:
            for i, query in enumerate(queries):
                await ws.send_json({"jsonrpc": "2.0", "id": i, "method": "subscribe", "params": {"query": query}})
                assert await ws.receive_json(timeout=5) == {"jsonrpc": "2.0", "id": i, "result": {}}
            await ws.send_json({"jsonrpc": "2.0", "id": "dup", "method": "subscribe", "params": [queries[0]]})
            await ws.send_json({"jsonrpc": "2.0", "id": "bad", "method": "subscribe", "params": {"query": "tm.event="}})
            await ws.send_json({"jsonrpc": "2.0", "id": "bc", "method": "broadcast_tx_sync", "params": {"tx": b64(tx)}})
            replies = {}
            while len(received[queries[1]]) < 1 or len(received[queries[0]]) < 2 or len(replies) < 3:
                message = await ws.receive_json(timeout=5)
                if "result" in message and "query" in message["result"]:
                    received[message["result"]["query"]].append(message)
                else:
                    replies[message["id"]] = message
            assert replies["dup"]["error"]["data"] == "already subscribed"
            assert replies["bad"]["error"]["code"] == -32603
            assert replies["bc"]["result"]["code"] == 0
            await ws.send_json({"jsonrpc": "2.0", "id": "u", "method": "unsubscribe", "params": {"query": queries[0]}})
            while (message := await ws.receive_json(timeout=5)).get("id") != "u":
                pass
            assert message["result"] == {}
    return received


def test_websocket_sends_new_block_and_tx_events(node):
    tx = b"ws=event"
    new_block, tx_query = "tm.event='NewBlock'", "tm.event='Tx' AND app.key='ws'"
    received = asyncio.run(_receive_events(node, [new_block, tx_query], tx))
    block_event = received[new_block][0]
    assert block_event["id"] == 0 and block_event["result"]["events"]["tm.event"] == ["NewBlock"]
    data = block_event["result"]["data"]
    assert data["type"] == "tendermint/event/NewBlock"
    assert set(data["value"]) == {"block", "block_id", "result_finalize_block"}
    assert_header(data["value"]["block"]["header"])
    height = data["value"]["block"]["header"]["height"]
    assert data["value"]["result_finalize_block"]["events"] == [
        {"type": "kvblock", "attributes": [{"key": "height", "value": height, "index": True}]}]
    assert result(node, "block", height=height)["block_id"] == data["value"]["block_id"]

    tx_event = received[tx_query][0]["result"]
    assert received[tx_query][0]["id"] == 1 and tx_event["query"] == tx_query
    assert tx_event["data"]["type"] == "tendermint/event/Tx"
    value = tx_event["data"]["value"]["TxResult"]
    assert value["tx"] == b64(tx) and INT_STRING.fullmatch(value["height"]) and "index" not in value
    assert value["result"]["events"][0]["attributes"][0] == {"key": "key", "value": "ws", "index": True}
    events = tx_event["events"]
    assert events["tm.event"] == ["Tx"] and events["tx.hash"] == [compute_tx_hash(tx).hex().upper()]
    assert events["tx.height"] == [value["height"]] and events["app.secret"] == ["event"]


MALFORMED = [
    (b"{not json", 500, -32700),
    (b"42", 500, -32700),
    (b'{"jsonrpc":"2.0","id":true,"method":"status"}', 500, -32700),
    (b'{"jsonrpc":"2.0","id":1,"method":"no_such_method"}', 200, -32601),
    (b'{"jsonrpc":"2.0","id":1,"method":"subscribe","params":{"query":"tm.event=\'Tx\'"}}', 200, -32601),
    (b'{"jsonrpc":"2.0","id":1,"method":"block","params":{"height":"tall"}}', 200, -32602),
    (b'{"jsonrpc":"2.0","id":1,"method":"block","params":{"height":1.5}}', 200, -32602),
    (b'{"jsonrpc":"2.0","id":1,"method":"block","params":{"height":"99999999999999999999"}}', 200, -32602),
    (b'{"jsonrpc":"2.0","id":1,"method":"block","params":["1","2"]}', 200, -32602),
    (b'{"jsonrpc":"2.0","id":1,"method":"block","params":"1"}', 200, -32602),
    (b'{"jsonrpc":"2.0","id":1,"method":"tx","params":{"hash":"%%%"}}', 200, -32602),
    (b'{"jsonrpc":"2.0","id":1,"method":"tx","params":{"hash":"AAAA","prove":"yes"}}', 200, -32602),
    (b'{"jsonrpc":"2.0","id":1,"method":"block","params":{"height":"0"}}', 200, -32603),
    (b'{"jsonrpc":"2.0","id":1,"method":"block","params":{"height":"999999999"}}', 200, -32603),
    (b'{"jsonrpc":"2.0","id":1,"method":"tx_search","params":{"query":"tx.height >"}}', 200, -32603),
    (b'{"jsonrpc":"2.0","id":1,"method":"broadcast_tx_sync","params":{"tx":""}}', 200, -32603),
    (b'{"jsonrpc":"2.0","id":1,"method":"blockchain","params":{"minHeight":"5","maxHeight":"2"}}', 200, -32603),
    (b'[' + b','.join([b'{"jsonrpc":"2.0","id":1,"method":"health"}'] * 11) + b']', 200, -32600),
    (b'{"jsonrpc":"2.0","id":1,"method":"broadcast_tx_sync","params":{"tx":"' + b"A" * 1_100_000 + b'"}}', 400,
     -32600),
]


@pytest.mark.parametrize("body,http_status,code", MALFORMED)
def test_malformed_requests_get_errors_and_node_keeps_serving(node, body, http_status, code):
    status, response = post(node, body)
    assert status == http_status
    error = (response[0] if isinstance(response, list) else response)["error"]
    assert error["code"] == code and error["message"]
    assert result(node, "health") == {}


def test_batches_notifications_and_get_conventions(node):
    batch = json.dumps([{"jsonrpc": "2.0", "id": "a", "method": "health"},
                        {"jsonrpc": "2.0", "method": "health"},
                        {"jsonrpc": "2.0", "id": 2.0, "method": "nope"}]).encode()
    status, responses = post(node, batch)
    assert status == 200 and [r["id"] for r in responses] == ["a", 2] and responses[1]["error"]["code"] == -32601
    assert post(node, b'{"jsonrpc":"2.0","method":"health"}') == (200, None)
    by_position = json.loads(post(node, b'{"jsonrpc":"2.0","id":3,"method":"block","params":["1"]}')[1]
                             ["result"]["block"]["header"]["height"])
    assert by_position == 1
    assert get(node, "/block?height=1")[1]["result"]["block"]["header"]["height"] == "1"
    assert get(node, '/block?height="1"')[1]["result"]["block"]["header"]["height"] == "1"
    status, bad = get(node, "/block?height=abc")
    assert status == 500 and bad["error"]["code"] == -32602 and bad["id"] == -1
    status, _ = get(node, "/no_such_method")
    assert status == 404
    status, ws_only = get(node, "/subscribe?query=%22tm.event%3D%27Tx%27%22")
    assert status == 404 and ws_only["error"]["code"] == -32601
    status, tx_by_get = get(node, "/broadcast_tx_sync?tx=%22get%3Dok%22")
    assert status == 200 and tx_by_get["result"]["hash"] == compute_tx_hash(b"get=ok").hex().upper()
    before = int(result(node, "status")["sync_info"]["latest_block_height"])
    wait_for(lambda: int(result(node, "status")["sync_info"]["latest_block_height"]) > before)


def test_real_app_transfer_through_rpc(tmp_path):
    """The lead's App behind the dev chain: a signed MsgSend found by its transfer event."""
    accounts = [make_account(name, number) for number, name in enumerate(["alice", "bob"])]
    make_home(tmp_path, app_state=make_app_state(accounts))
    chain = DevChain(tmp_path, block_time_ms=100)
    chain.start("tcp://127.0.0.1:0")
    try:
        alice, bob = accounts
        tx = send(alice, bob.address, 1234, chain_id=CHAIN_ID)
        response = result(chain, "broadcast_tx_commit", tx=b64(tx))
        assert response["check_tx"]["code"] == 0 and response["tx_result"]["code"] == 0, response
        search = result(chain, "tx_search", query=f"transfer.recipient='{bob.bech32}'")
        assert search["total_count"] == "1" and search["txs"][0]["height"] == response["height"]
        height = int(result(chain, "status")["sync_info"]["latest_block_height"])
        wait_for(lambda: int(result(chain, "status")["sync_info"]["latest_block_height"]) > height)
    finally:
        chain.stop()
    restarted = DevChain(tmp_path, block_time_ms=100)
    restarted.process_handshake()
    try:
        assert restarted.state.last_block_height >= height + 1
        assert restarted.txindex.get_tx(compute_tx_hash(tx)).height == int(response["height"])
    finally:
        restarted.stop()


PARAM_TYPES = {"int": int, "bool": bool, "string": str, "bytes": bytes, "hexbytes": bytes}


def assert_params_of_their_kind(spec, args: dict) -> None:
    """What a handler gets: each param absent (None) or of its kind's type, an int within int64."""
    for param in spec:
        value = args.get(param.name)
        assert value is None or type(value) is PARAM_TYPES[param.kind], (param, value)
        assert param.kind != "int" or value is None or rpc.INT64_MIN <= value <= rpc.INT64_MAX


@settings(max_examples=300, deadline=None)
@given(method=st.sampled_from(sorted(rpc.ROUTES)), params=JSON_VALUES)
def test_any_json_params_decode_or_give_invalid_params(method, params):
    try:
        args = rpc.decode_json_params(rpc.ROUTES[method], params)
    except rpc.InvalidParams:
        return
    assert set(args) <= {p.name for p in rpc.ROUTES[method]}
    assert_params_of_their_kind(rpc.ROUTES[method], args)


@settings(max_examples=300, deadline=None)
@given(method=st.sampled_from(sorted(rpc.ROUTES)), value=st.text(max_size=30) | st.integers().map(str))
@example(method="block", value="5")
@example(method="block", value=str(2**63))
@example(method="tx", value="0x0AFF")
@example(method="abci_query", value='"quoted"')
def test_any_uri_arg_decodes_or_gives_invalid_params(method, value):
    spec = rpc.ROUTES[method]
    try:
        args = rpc.decode_uri_params(spec, {p.name: value for p in spec})
    except rpc.InvalidParams as error:
        assert str(error).split(":")[0] in {p.name for p in spec}, str(error)  # the error names the bad param
        return
    assert list(args) == [p.name for p in spec]
    assert_params_of_their_kind(spec, args)
    for param in spec:
        if value == "":
            assert args[param.name] is None
        elif param.kind == "int" and INT_STRING.fullmatch(value):
            assert args[param.name] == int(value)  # GET /block?height=5


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("abtx.=<>'\" 0123456789-:TZ_ANDEXISTSCONTAINSDATETIME")), max_size=40)
       | st.text(max_size=40))
def test_any_query_text_parses_or_gives_invalid_query(text):
    try:
        conditions = txindex.parse_query(text)
    except txindex.InvalidQuery:
        return
    assert conditions and all(c.op in txindex.OPERATORS for c in conditions)
    txindex.is_event_map_matching(conditions, {"tx.height": ["5"], "a.b": ["x"]})


def test_a_failing_app_halts_blocks_but_the_node_keeps_serving(tmp_path):
    class BrokenApp(KVStoreApp):
        def finalize_block(self, request):
            if request.height == 3:
                raise RuntimeError("disk on fire")
            return super().finalize_block(request)

    make_home(tmp_path)
    app = BrokenApp(str(tmp_path / "data"))
    chain = DevChain(tmp_path, app=app, block_time_ms=20)
    chain.start("tcp://127.0.0.1:0")
    try:
        wait_for(lambda: chain.halt_error is not None)
        assert call(chain, "health")["error"]["data"] == "block production halted: disk on fire"
        assert result(chain, "status")["sync_info"]["latest_block_height"] == "2"
    finally:
        chain.stop()
        app.close()
    chain, app = open_chain(tmp_path)
    chain.process_handshake()
    assert app.calls[:3] == ["info", "finalize_block", "commit"], "block 3 was stored and is replayed"
    assert chain.state.last_block_height == 3
    close_chain(chain, app)
