"""The REST gateway of `maxwell start` under real CometBFT (a 4-validator localnet): chain-info from one
node, and a Keplr-like send (cosmjs' wallet, the REST gateway alone) through another, seen on a third."""

import json
import subprocess
import urllib.request
from pathlib import Path

import pytest

from localnet.network import Localnet, wait_until
from tests.helpers import invoke

COSMJS_DIR = Path(__file__).resolve().parents[1] / "cosmjs"
AMOUNT = 2345


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    built = Localnet(tmp_path_factory.mktemp("rest_localnet"))
    try:
        built.start()
        yield built
    finally:
        built.stop()


def get_json(node, path: str) -> dict:
    with urllib.request.urlopen(node.rest + path, timeout=10) as response:
        return json.loads(response.read())


def get_balance(node, address: str) -> int:
    return int(get_json(node, f"/cosmos/bank/v1beta1/balances/{address}/by_denom?denom=ujoule")["balance"]["amount"])


def test_chain_info_and_a_keplr_like_send_over_rest(network, tmp_path):
    entry, reader = network.nodes[1], network.nodes[2]
    wait_until(lambda: get_json(entry, "/cosmos/base/tendermint/v1beta1/syncing") == {"syncing": False}, 30,
               "node 2's REST gateway")
    result = invoke("chain-info", "--rpc", entry.rpc, "--rest", entry.rest, "--output-dir", tmp_path)
    assert result.exit_code == 0, result.stderr
    keplr = json.loads((tmp_path / "keplr.json").read_text())
    assert keplr["chainId"] == network.chain_id and keplr["rest"] == entry.rest

    validators = get_json(reader, "/cosmos/staking/v1beta1/validators?status=BOND_STATUS_BONDED")["validators"]
    assert len(validators) == len(network.nodes)
    assert all(isinstance(v["description"], dict) and v["unbonding_time"] for v in validators)

    sender, recipient = network.keys[1], network.keys[3]["address"]
    before = get_balance(reader, recipient)
    run = subprocess.run(["node", str(COSMJS_DIR / "rest_flow.mjs"), str(tmp_path / "keplr.json"), recipient,
                          str(AMOUNT)], input=sender["mnemonic"], capture_output=True, text=True, timeout=180,
                         cwd=COSMJS_DIR)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["sender"] == sender["address"] and report["tx"]["code"] == 0
    assert int(report["after"][recipient]) == before + AMOUNT
    wait_until(lambda: get_balance(reader, recipient) == before + AMOUNT, 20, "node 3 sees the balance")
    shown = get_json(reader, f"/cosmos/tx/v1beta1/txs/{report['hash']}")
    assert shown["tx_response"]["height"] == report["tx"]["height"] and shown["tx"]["body"]["memo"] == "rest flow"
