"""A 4-validator network under real CometBFT 0.38 (localnet/): wallets on any node, equal app hashes,
crashes and restarts, a halt without a quorum, and a new node joining by state sync.

The tests share one network and run in file order; a test that stops nodes starts them again.
"""

import base64
import json
import shutil
import subprocess
import time
from datetime import datetime
from pathlib import Path

import grpc
import pytest

from chain import crypto, heat, validators
from chain.proto.cosmos.bank.v1beta1 import query_pb2 as bank_query_pb2, tx_pb2 as bank_tx_pb2
from chain.proto.cosmos.base.tendermint.v1beta1 import query_pb2 as cmt_pb2
from chain.proto.cosmos.staking.v1beta1 import tx_pb2 as staking_tx
from chain.proto.cosmos.tx.v1beta1 import service_pb2
from chain.tx import sign_tx
from ibc import tendermint
from localnet.network import Localnet, wait_until
from node import client, keyring, privval, txclient
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


def grpc_call(node, path: str, request, response_class, metadata=()):
    with grpc.insecure_channel(f"127.0.0.1:{node.grpc_port}") as channel:
        answer, outcome = channel.unary_unary(path).with_call(request.SerializeToString(), metadata=metadata,
                                                               timeout=10)
    return response_class.FromString(answer), dict(outcome.initial_metadata())


def test_grpc_under_cometbft_broadcasts_finds_and_reads_blocks(network):
    """`maxwell start`'s gRPC server reaches txs and blocks through its CometBFT node's RPC."""
    node, key = network.nodes[2], network.keys[2]
    account = client.Client(node.rpc).get_account(key["address"])
    message = bank_tx_pb2.MsgSend(from_address=key["address"], to_address=network.keys[0]["address"],
                                  amount=[{"denom": "ujoule", "amount": "7"}])
    tx = sign_tx(crypto.derive_private_key(key["mnemonic"]), [message], chain_id=network.chain_id,
                 account_number=account.account_number, sequence=account.sequence, fee=5000, gas_limit=200_000)
    sent, _ = grpc_call(node, "/cosmos.tx.v1beta1.Service/BroadcastTx", service_pb2.BroadcastTxRequest(
        tx_bytes=tx, mode=service_pb2.BROADCAST_MODE_SYNC), service_pb2.BroadcastTxResponse)
    assert sent.tx_response.code == 0, sent.tx_response.raw_log

    def find():
        try:
            return grpc_call(node, "/cosmos.tx.v1beta1.Service/GetTx", service_pb2.GetTxRequest(
                hash=sent.tx_response.txhash), service_pb2.GetTxResponse)[0]
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.NOT_FOUND
            return None

    found = wait_until(find, 20, "the tx in node 3's index")
    assert found.tx_response.code == 0 and found.tx.body.messages[0].type_url == "/cosmos.bank.v1beta1.MsgSend"
    searched, _ = grpc_call(node, "/cosmos.tx.v1beta1.Service/GetTxsEvent", service_pb2.GetTxsEventRequest(
        query=f"message.sender='{key['address']}'", order_by=service_pb2.ORDER_BY_DESC, limit=5),
        service_pb2.GetTxsEventResponse)
    assert searched.tx_responses[0].txhash == sent.tx_response.txhash
    latest, _ = grpc_call(node, "/cosmos.base.tendermint.v1beta1.Service/GetLatestBlock",
                          cmt_pb2.GetLatestBlockRequest(), cmt_pb2.GetLatestBlockResponse)
    assert latest.block.header.height >= found.tx_response.height
    validators, _ = grpc_call(node, "/cosmos.base.tendermint.v1beta1.Service/GetLatestValidatorSet",
                              cmt_pb2.GetLatestValidatorSetRequest(), cmt_pb2.GetLatestValidatorSetResponse)
    assert len(validators.validators) == len(network.nodes)
    info, _ = grpc_call(node, "/cosmos.base.tendermint.v1beta1.Service/GetNodeInfo", cmt_pb2.GetNodeInfoRequest(),
                        cmt_pb2.GetNodeInfoResponse)
    assert info.default_node_info.network == network.chain_id
    before = str(found.tx_response.height - 1)
    balance, metadata = grpc_call(node, "/cosmos.bank.v1beta1.Query/Balance", bank_query_pb2.QueryBalanceRequest(
        address=key["address"], denom="ujoule"), bank_query_pb2.QueryBalanceResponse, (("x-cosmos-block-height", before),))
    assert metadata["x-cosmos-block-height"] == before and int(balance.balance.amount) > 0


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


def get_powers(node) -> dict[str, int]:
    return {v["address"]: int(v["voting_power"]) for v in node.get("/validators")["validators"]}


def test_a_delegation_changes_the_validators_power_in_cometbft_and_undelegated_tokens_return(network):
    """The set is staking's (from the gentxs): delegating 50 JOULE to node 1's validator adds 50 power to it in
    CometBFT's /validators; undelegating returns the tokens after the unbonding time (30 s on the localnet)."""
    node = network.nodes[0]
    delegator = network.keys[2]
    operator = validators.format_operator(crypto.decode_address(network.keys[1]["address"]))
    target = tendermint.compute_consensus_address(privval.load(network.nodes[1].home / "config" /
                                                                "priv_validator_key.json").pub_key).hex().upper()
    before = get_powers(node)[target]
    signer = txclient.load_signer(client.Client(node.rpc), keyring.get_private_key(
        Path(delegator["home"]), "test", delegator["name"]))
    amount = {"denom": "ujoule", "amount": str(50 * 10**6)}
    txclient.execute_messages(signer, [staking_tx.MsgDelegate(
        delegator_address=delegator["address"], validator_address=operator, amount=amount)])
    wait_until(lambda: get_powers(node)[target] == before + 50, 20, "the delegated power in /validators")
    balance = get_balance(node, delegator["address"])
    txclient.execute_messages(signer, [staking_tx.MsgUndelegate(
        delegator_address=delegator["address"], validator_address=operator, amount=amount)])
    wait_until(lambda: get_powers(node)[target] == before, 20, "the power back after the undelegation")
    fee = balance - get_balance(node, delegator["address"])
    wait_until(lambda: get_balance(node, delegator["address"]) == balance - fee + 50 * 10**6, 60,
               "the undelegated tokens back after the unbonding time")


def get_validator_record(node, operator: str) -> dict:
    result = invoke("query", "staking", "validator", operator, "--node", node.rpc, "-o", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def get_signing_info(node, consensus_address: str) -> dict:
    result = invoke("query", "slashing", "signing-info", consensus_address, "--node", node.rpc, "-o", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def unjail(network, index: int, node):
    key = network.keys[index]
    return invoke("tx", "slashing", "unjail", key["name"], "--node", node.rpc, "--home", key["home"],
                  "--keyring-backend", "test", "-o", "json")


def parse_time(text: str) -> datetime:
    """RFC 3339 with up to 9 fractional digits (CometBFT's, protobuf's) -> datetime, to the microsecond."""
    whole, _, fraction = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{whole}.{fraction[:6].ljust(6, '0')}+00:00")


def compute_cometbft_address(network, index: int) -> str:
    key = privval.load(network.nodes[index].home / "config" / "priv_validator_key.json").pub_key
    return tendermint.compute_consensus_address(key).hex().upper()


def test_a_validator_that_stops_signing_is_jailed_and_can_unjail_after_the_jail_time(network):
    """Localnet slashing: more than half of a 20-block window missed jails for 10 s and slashes 1 %."""
    node, victim, index = network.nodes[0], network.nodes[3], 3
    operator = validators.format_operator(crypto.decode_address(network.keys[index]["address"]))
    address = compute_cometbft_address(network, index)
    tokens = int(get_validator_record(node, operator)["tokens"])
    network.kill(victim)
    jailed = wait_until(lambda: (record := get_validator_record(node, operator))["jailed"] and record, 60,
                        "node 4's validator jailed for downtime")
    assert int(jailed["tokens"]) == tokens - tokens // 100
    wait_until(lambda: address not in get_powers(node), 20, "node 4 out of CometBFT's /validators")
    early = unjail(network, index, node)
    assert early.exit_code == 1 and "jailed" in early.stderr, early.stderr + early.stdout
    network.restart(victim)
    info = get_signing_info(node, jailed["consensus_address"])
    jail_end = parse_time(info["jailed_until"])
    wait_until(lambda: parse_time(node.get("/block")["block"]["header"]["time"]) > jail_end, 30,
               "a block after the jail time")
    result = unjail(network, index, node)
    assert result.exit_code == 0, result.stderr
    wait_until(lambda: get_powers(node).get(address) == int(jailed["tokens"]) // 10**6, 20,
               "node 4 back in CometBFT's /validators")
    assert not get_validator_record(node, operator)["jailed"]


def test_a_validator_that_double_signs_is_slashed_tombstoned_and_leaves_the_set(network):
    """A second node signing with a copy of node 3's validator key: CometBFT turns the conflicting votes
    into evidence, and the app slashes 5 %, jails for good and tombstones. Runs last: node 3 stays out."""
    node, index = network.nodes[0], 2
    operator = validators.format_operator(crypto.decode_address(network.keys[index]["address"]))
    address = compute_cometbft_address(network, index)
    tokens = int(get_validator_record(node, operator)["tokens"])
    twin = network.add_full_node()
    shutil.copy(network.nodes[index].home / "config" / "priv_validator_key.json",
                twin.home / "config" / "priv_validator_key.json")
    network.start_app(twin)
    network.start_cometbft(twin)
    try:
        record = wait_until(lambda: (r := get_validator_record(node, operator))["jailed"] and r, 180,
                            "evidence of node 3's double signing in a block")
    finally:
        network.kill(twin)
    info = get_signing_info(node, record["consensus_address"])
    assert info["tombstoned"] is True
    assert int(record["tokens"]) == tokens - tokens // 20
    wait_until(lambda: address not in get_powers(node), 20, "node 3 out of CometBFT's /validators")
    assert "tombstoned" in unjail(network, index, node).stderr
    start = node.get_height()
    wait_until(lambda: node.get_height() >= start + 3, 30, "blocks going on without node 3")
