"""Ecosystem acceptance: stock cosmjs (`@cosmjs/stargate`) reads balances and sends tokens on `maxwell dev`."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from node import keyring
from tests.helpers import ALICE, GENESIS_AMOUNT, MNEMONIC, init_funded_home, invoke, start_dev_chain, stop_dev_chain

COSMJS_DIR = Path(__file__).resolve().parent / "cosmjs"
AMOUNT = 4321
FEE = 5000  # the fee send.mjs pays

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed: cosmjs acceptance skipped")


@pytest.fixture(scope="module")
def cosmjs():
    if not (COSMJS_DIR / "node_modules" / "@cosmjs" / "stargate").is_dir():
        npm = shutil.which("npm")
        assert npm, "node is installed but npm is not: cannot install @cosmjs/stargate"
        installed = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=COSMJS_DIR, capture_output=True,
                                   text=True, timeout=300)
        assert installed.returncode == 0, installed.stderr
    return COSMJS_DIR / "send.mjs"


@pytest.fixture
def devnet(tmp_path):
    init_funded_home(tmp_path, chain_id="maxwell-cosmjs-1")
    process, url = start_dev_chain(tmp_path)
    yield tmp_path, url
    stop_dev_chain(process)


def cli_balance(home, url, address: str) -> int:
    result = invoke("query", "balance", address, "--node", url, "--home", home, "-o", "json")
    assert result.exit_code == 0, result.stderr
    return int(json.loads(result.stdout)["amount"])


def test_cosmjs_sends_tokens_and_the_cli_sees_the_same_balances(cosmjs, devnet):
    home, url = devnet
    bob = keyring.get_key(home, "file", "bob").address

    run = subprocess.run(["node", str(cosmjs), url, bob, str(AMOUNT)], input=MNEMONIC, capture_output=True,
                         text=True, timeout=120, cwd=COSMJS_DIR)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)

    assert report["chainId"] == "maxwell-cosmjs-1"
    assert report["sender"] == ALICE  # cosmjs derives the same address from the mnemonic as our keyring
    assert report["before"] == {ALICE: str(GENESIS_AMOUNT), bob: "0"}
    auto_fee = int(report["autoTx"]["fee"])
    assert report["autoTx"]["code"] == 0 and 0 < int(report["autoTx"]["gasUsed"]) <= int(report["autoTx"]["gasWanted"])
    assert report["after"] == {ALICE: str(GENESIS_AMOUNT - 2 * AMOUNT - FEE - auto_fee), bob: str(2 * AMOUNT)}
    assert report["tx"]["code"] == 0 and report["tx"]["height"] >= 1
    assert report["senderSequence"] == 2

    assert cli_balance(home, url, ALICE) == GENESIS_AMOUNT - 2 * AMOUNT - FEE - auto_fee
    assert cli_balance(home, url, bob) == 2 * AMOUNT
    shown = invoke("query", "tx", report["tx"]["hash"], "--node", url, "--home", home, "-o", "json")
    assert json.loads(shown.stdout)["height"] == str(report["tx"]["height"])
