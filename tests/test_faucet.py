"""The dev chain's faucet: `maxwell dev --faucet KEY` gives JOULE to who asks over REST (`maxwell faucet`),
once per address per minute and at most 30 times a minute; a flood is refused and blocks go on."""

import json
import urllib.error
import urllib.request

import pytest

from chain import crypto
from node import client
from tests.helpers import (
    assert_one_line_error, compute_free_port, init_funded_home, invoke, start_dev_chain, stop_dev_chain, wait_for,
)

AMOUNT = 2_000_000


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    home = tmp_path_factory.mktemp("faucet")
    init_funded_home(home)
    rest = f"127.0.0.1:{compute_free_port()}"
    process, url = start_dev_chain(home, "200ms", "off", rest, "--faucet", "alice", "--faucet-amount",
                                   f"{AMOUNT}ujoule")
    yield {"home": home, "rpc": url, "rest": f"http://{rest}"}
    stop_dev_chain(process)


def get_balance(node, address: str) -> int:
    return int(json.loads(invoke("query", "balance", address, "--node", node["rpc"], "-o", "json").stdout)["amount"])


def ask(node, address: str) -> int:
    request = urllib.request.Request(node["rest"] + "/faucet", data=json.dumps({"address": address}).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        assert set(json.loads(error.read())) == {"code", "message", "details"}
        return error.code


def test_the_faucet_funds_an_address_once_a_minute(node):
    bob = json.loads(invoke("keys", "show", "bob", "--home", node["home"], "-o", "json").stdout)["address"]
    granted = invoke("faucet", bob, "--url", node["rest"], "-o", "json")
    assert granted.exit_code == 0, granted.stderr
    assert json.loads(granted.stdout)["amount"] == f"{AMOUNT}ujoule"
    wait_for(lambda: get_balance(node, bob) == AMOUNT, timeout=20)
    assert_one_line_error(invoke("faucet", bob, "--url", node["rest"]), "refused", "ask again in")
    assert_one_line_error(invoke("faucet", "mxw1nothing", "--url", node["rest"]), "neither a valid address")
    assert ask(node, "mxw1nothing") == 400


def test_a_flood_of_requests_is_capped_and_blocks_go_on(node):
    start = client.Client(node["rpc"]).status().latest_block_height
    statuses = [ask(node, crypto.encode_address(bytes([n]) * 20)) for n in range(1, 41)]
    assert statuses.count(200) <= 30 and statuses.count(429) >= 10, statuses
    wait_for(lambda: client.Client(node["rpc"]).status().latest_block_height > start + 3, timeout=20)
