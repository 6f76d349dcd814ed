"""A 4-validator network under real CometBFT 0.38 (localnet/): wallets on any node, equal app hashes,
crashes and restarts, a halt without a quorum, and a new node joining by state sync.

The tests share one network and run in file order; a test that stops nodes starts them again.
"""

import base64
import json
import subprocess
import time

import pytest

from chain import heat
from localnet.network import Localnet, wait_until
from tests.helpers import invoke

SNAPSHOT_INTERVAL = 10
COSMJS = "tests/cosmjs/send.mjs"


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    built = Localnet(tmp_path_factory.mktemp("localnet"), app_args=("--snapshot-interval", str(SNAPSHOT_INTERVAL)))
    try:
        built.start()
        yield built
    finally:
        built.stop()


def get_app_hashes(node, heights) -> dict[int, str]:
    return {h: node.get(f"/block?height={h}")["block"]["header"]["app_hash"] for h in heights}


def assert_same_app_hashes(nodes, up_to: int) -> None:
    """Every node reports the same app hash at every height (in /block, and /commit signs that header)."""
    heights = range(2, up_to + 1)
    reference = get_app_hashes(nodes[0], heights)
    for node in nodes[1:]:
        assert get_app_hashes(node, heights) == reference, f"node {node.index} disagrees"
    for node in nodes:
        commit = node.get(f"/commit?height={up_to}")["signed_header"]
        assert commit["header"]["app_hash"] == reference[up_to]


def get_balance(node, address: str) -> int:
    result = invoke("query", "balance", address, "--node", node.rpc, "-o", "json")
    assert result.exit_code == 0, result.stderr
    return int(json.loads(result.stdout)["amount"])


def send(network, sender: int, node, recipient: str, amount: int) -> dict:
    key = network.keys[sender]
    result = invoke("tx", "send", key["name"], recipient, f"{amount}ujoule", "--node", node.rpc, "--home", key["home"],
                    "--keyring-backend", "test", "-o", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_cosmjs_sends_through_node_2_and_node_4_sees_the_balance(network):
    sender, recipient = network.keys[1], network.keys[3]["address"]
    before = get_balance(network.nodes[3], recipient)
    run = subprocess.run(["node", COSMJS, network.nodes[1].rpc, recipient, "1000"], input=sender["mnemonic"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["chainId"] == network.chain_id and report["tx"]["code"] == 0
    wait_until(lambda: network.nodes[3].get_height() > report["tx"]["height"], 20, "node 4 past the tx")
    assert get_balance(network.nodes[3], recipient) == before + 2000  # send.mjs sends twice


def test_every_node_reports_the_same_app_hash_at_every_height(network):
    height = min(node.get_height() for node in network.nodes) - 1
    assert height >= 3
    assert_same_app_hashes(network.nodes, height)


def test_a_killed_validator_catches_up_and_blocks_go_on_without_it(network):
    alive, victim = network.nodes[:3], network.nodes[3]
    network.kill(victim)
    start = alive[0].get_height()
    wait_until(lambda: alive[0].get_height() >= start + 5, 30, "5 blocks without node 4")
    network.restart(victim)
    began = time.monotonic()
    target = alive[0].get_height()
    wait_until(lambda: victim.get_height() >= target, 60, "node 4 catching up")
    print(f"catch-up after a restart: {time.monotonic() - began:.1f} s to height {target}")
    assert_same_app_hashes(network.nodes, target)


def test_two_of_four_down_halts_the_chain_and_it_resumes_with_every_committed_tx(network):
    receipt = send(network, 0, network.nodes[0], network.keys[2]["address"], 777)
    committed = int(receipt["height"])
    wait_until(lambda: network.nodes[2].get_height() > committed, 20, "the tx committed everywhere")
    expected = get_balance(network.nodes[2], network.keys[2]["address"])
    for node in network.nodes[2:]:
        network.kill(node)
    time.sleep(3)  # the block in flight, if any
    stalled = network.nodes[0].get_height()
    time.sleep(10)
    assert network.nodes[0].get_height() == stalled, "a chain with half its power must not advance"
    for node in network.nodes[2:]:
        network.restart(node)
    wait_until(lambda: min(n.get_height() for n in network.nodes) >= stalled + 3, 90, "the chain resuming")
    assert all(get_balance(node, network.keys[2]["address"]) == expected for node in network.nodes)


def test_a_new_node_joins_by_state_sync_without_replaying_the_chain(network):
    wait_until(lambda: network.nodes[0].get_height() >= 2 * SNAPSHOT_INTERVAL + 2, 90, "two snapshots taken")
    joining = network.add_full_node(statesync=True)
    began = time.monotonic()
    network.start_app(joining)
    network.start_cometbft(joining)
    target = network.nodes[0].get_height()
    wait_until(lambda: joining.get_height() >= target, 120, "the state-synced node at the validators' height")
    print(f"state-sync join: {time.monotonic() - began:.1f} s to height {target}")
    status = joining.get("/status")["sync_info"]
    assert int(status["earliest_block_height"]) > 1, "the node replayed the chain instead of restoring a snapshot"
    height = int(status["latest_block_height"])
    assert get_app_hashes(joining, [height]) == get_app_hashes(network.nodes[0], [height])


def test_the_heat_tx_carries_every_validators_signed_reading(network):
    """Each block starts with the last commit's extended votes; ProcessProposal checked every signature."""
    node = network.nodes[0]
    height = node.get_height()
    txs = node.get(f"/block?height={height}")["block"]["data"]["txs"]
    assert txs and heat.is_heat_tx(base64.b64decode(txs[0]))
    info = heat.decode_heat_tx(base64.b64decode(txs[0]))
    signed = [vote for vote in info.votes if vote.vote_extension and vote.extension_signature]
    assert len(signed) >= 3 and {len(vote.extension_signature) for vote in signed} == {64}
