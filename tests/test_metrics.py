"""The node's Prometheus metrics move with what the chain does: a dev chain's /metrics (on the REST port)
scraped before and after a transfer, a refused tx, a provider's heat report and a cleared auction."""

import json
import logging
import re
import time
import urllib.request

import pytest

from tests.helpers import MNEMONIC, compute_free_port, init_funded_home, invoke, start_dev_chain, stop_dev_chain, wait_for


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    home = tmp_path_factory.mktemp("metrics")
    init_funded_home(home)
    rest = f"127.0.0.1:{compute_free_port()}"
    process, url = start_dev_chain(home, "200ms", "off", rest)
    yield {"home": home, "rpc": url, "metrics": f"http://{rest}/metrics"}
    stop_dev_chain(process)


def scrape(node) -> dict[str, float]:
    """Every sample of the exposition: `name{labels}` -> value."""
    with urllib.request.urlopen(node["metrics"], timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*(?:\{[^}]*\})?) (\S+)", line)
        if match and not line.startswith("#"):
            samples[match.group(1)] = float(match.group(2))
    return samples


def cli(node, *args: str) -> dict:
    result = invoke(*args, "--node", node["rpc"], "--home", node["home"], "--keyring-backend", "test", "-o", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_metrics_move_with_blocks_txs_refusals_heat_and_clearings(node):
    before = scrape(node)
    bob = json.loads(invoke("keys", "show", "bob", "--home", node["home"], "-o", "json").stdout)["address"]
    sent = cli(node, "tx", "send", "alice", bob, "1000ujoule")
    refused = invoke("tx", "send", "alice", bob, "1ujoule", "--fees", "1ujoule", "--node", node["rpc"], "--home",
                     node["home"], "--keyring-backend", "test")
    assert refused.exit_code == 1
    cli(node, "tx", "market", "register-provider", "alice", "--models", "digits")
    cli(node, "tx", "market", "report-heat", "alice", "--celsius", "61.5")
    cli(node, "tx", "market", "bid", "alice", "process", "500ujoule")
    wait_for(lambda: scrape(node)["maxwell_block_height"] > int(sent["height"]) + 2, timeout=20)
    after = scrape(node)
    assert after["maxwell_block_height"] > before["maxwell_block_height"]
    assert after["maxwell_txs_total"] >= before["maxwell_txs_total"] + 4
    assert after['maxwell_check_tx_rejected_total{code="13",codespace="sdk"}'] >= 1
    assert after["maxwell_finalize_block_seconds_count"] > before["maxwell_finalize_block_seconds_count"]
    assert after["maxwell_commit_seconds_count"] > before["maxwell_commit_seconds_count"]
    assert "maxwell_mempool_size" in after and after["maxwell_block_time_seconds"] > time.time() - 60
    alice = json.loads(invoke("keys", "show", "alice", "--home", node["home"], "--keyring-backend", "test",
                              "-o", "json").stdout)["address"]
    assert after[f'maxwell_provider_temperature_celsius{{provider="{alice}"}}'] == 61.5
    assert after['maxwell_matched_slots{work="process"}'] >= 1
    assert after['maxwell_clearing_price_ujoule{work="process"}'] > 0


def test_the_log_says_one_line_a_block_and_one_per_refused_tx(node):
    log = (node["home"] / "dev.log").read_text()
    blocks = [line for line in log.splitlines() if " block " in line and "txs (" in line]
    assert blocks and all("gas" in line and "cleared" in line and "proofs verified" in line for line in blocks)
    assert any("cleared process 1 slots at" in line for line in blocks)
    assert any("rejected: code 13 (sdk)" in line for line in log.splitlines())


def test_the_dev_chain_lists_its_funded_dev_accounts_at_start(node):
    log = (node["home"] / "dev.log").read_text()
    assert "funded dev accounts (test keyring):" in log
    alice = json.loads(invoke("keys", "show", "alice", "--home", node["home"], "--keyring-backend", "test",
                              "-o", "json").stdout)["address"]
    assert f"alice: {alice} " in log and f"mnemonic (dev only, never for real funds): {MNEMONIC}" in log
    assert "bob:" not in log  # a file-keyring key is listed nowhere


def test_heat_is_logged_at_info_only_when_it_moves_the_ask(caplog):
    from chain.proto.maxwell.market.v1 import query_pb2
    from node import worker
    view = query_pb2.ProviderView(temperature_millicelsius=61_000, zone_temperature_millicelsius=60_000,
                                  effective_ask="110", provider={"ask_price": "100"})
    with caplog.at_level(logging.DEBUG, logger=worker.log.name):
        worker.log_heat(view, None)
        worker.log_heat(view, "110")
        view.effective_ask = "120"
        worker.log_heat(view, "110")
    assert [record.levelno for record in caplog.records] == [logging.INFO, logging.DEBUG, logging.INFO]
