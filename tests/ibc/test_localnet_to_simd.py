"""The 4-validator maxwell localnet under real CometBFT and ibc-go's simd, relayed by Hermes: simd's
light client of maxwell follows a validator set of four, and Hermes's queries read maxwell's IBC state."""

import hashlib
import json

import pytest

from localnet.network import Localnet
from tests.ibc.hermes import Chain, Hermes
from tests.ibc.simd import Simd

SIMD_ID = "simd-2"


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    directory = tmp_path_factory.mktemp("ibc-localnet")
    localnet = Localnet(directory / "localnet")
    relayer = localnet.keys[0]
    (directory / SIMD_ID).mkdir()
    simd = Simd(directory / SIMD_ID, SIMD_ID, relayer["mnemonic"])
    try:
        localnet.start()
        simd.start()
        node = localnet.nodes[0]
        maxwell = Chain(localnet.chain_id, node.rpc, f"http://127.0.0.1:{node.grpc_port}", node.home,
                        trusting_period="20s")  # the localnet unbonds in 30 s
        counterparty = Chain(SIMD_ID, simd.rpc, f"http://127.0.0.1:{simd.grpc_port}", simd.home, kind="simd")
        hermes = Hermes(directory, [maxwell, counterparty])
        hermes.add_key(localnet.chain_id, relayer["mnemonic"])
        hermes.add_key(SIMD_ID, relayer["mnemonic"])
        yield hermes, localnet, simd, relayer
    finally:
        simd.stop()
        localnet.stop()


def test_joule_from_the_localnet_reaches_simd_and_hermes_queries_read_maxwell(network):
    hermes, localnet, simd, relayer = network
    chain_id = localnet.chain_id
    hermes.run("create", "channel", "--a-chain", chain_id, "--b-chain", SIMD_ID, "--a-port", "transfer",
               "--b-port", "transfer", "--new-client-connection", "--yes")
    hermes.run("tx", "ft-transfer", "--src-chain", chain_id, "--dst-chain", SIMD_ID, "--src-port", "transfer",
               "--src-channel", "channel-0", "--amount", "4321", "--denom", "ujoule", "--timeout-seconds", "300")
    hermes.run("clear", "packets", "--chain", chain_id, "--port", "transfer", "--channel", "channel-0")
    voucher = "ibc/" + hashlib.sha256(b"transfer/channel-0/ujoule").hexdigest().upper()
    assert simd.get_balance(simd.relayer, voucher) == 4321

    channels = hermes.run("query", "channels", "--chain", chain_id)["result"]
    assert [(c["port_id"], c["channel_id"]) for c in channels] == [("transfer", "channel-0")]
    end = hermes.run("query", "channel", "end", "--chain", chain_id, "--port", "transfer", "--channel",
                     "channel-0")["result"]
    assert end["state"] == "Open" and end["connection_hops"] == ["connection-0"]
    connection = hermes.run("query", "connection", "end", "--chain", chain_id, "--connection", "connection-0")["result"]
    assert connection["state"] == "Open" and connection["client_id"] == "07-tendermint-0"
    client = hermes.run("query", "client", "state", "--chain", chain_id, "--client", "07-tendermint-0")["result"]
    assert client["chain_id"] == SIMD_ID
    # simd's client of maxwell: its consensus states follow the localnet's blocks, signed by four validators
    maxwell_client = hermes.run("query", "client", "state", "--chain", SIMD_ID, "--client", "07-tendermint-0")["result"]
    assert maxwell_client["chain_id"] == chain_id
    pending = hermes.run("query", "packet", "pending", "--chain", chain_id, "--port", "transfer", "--channel",
                         "channel-0")["result"]
    assert not pending["src"]["unreceived_packets"] and not pending["src"]["unreceived_acks"], json.dumps(pending)
