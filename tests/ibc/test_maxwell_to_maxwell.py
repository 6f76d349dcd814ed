"""Two maxwell dev chains and Hermes between them: clients, a connection and a transfer channel made
by `hermes create channel`, JOULE sent across and back with every packet relayed by Hermes."""

import hashlib
import json
import time

import pytest

from tests.helpers import compute_free_port, init_funded_home, invoke, start_dev_chain, \
    stop_dev_chain
from tests.ibc.hermes import Chain, Hermes, create_relayer_key

CHAIN_IDS = ("maxwell-a-1", "maxwell-b-1")
RELAYER_FUNDS = 10**11


def get_balance(chain: Chain, address: str, denom: str) -> int:
    result = invoke("query", "balance", address, "--denom", denom, "--node", chain.rpc, "-o", "json")
    assert result.exit_code == 0, result.stderr
    return int(json.loads(result.stdout)["amount"])


def compute_voucher(port: str, channel: str, denom: str) -> str:
    return "ibc/" + hashlib.sha256(f"{port}/{channel}/{denom}".encode()).hexdigest().upper()


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    directory = tmp_path_factory.mktemp("ibc")
    chains, processes, mnemonic = [], [], None
    try:
        for chain_id in CHAIN_IDS:
            home = directory / chain_id
            home.mkdir()
            init_funded_home(home, chain_id=chain_id)
            if mnemonic is None:
                address, mnemonic = create_relayer_key(home)
            else:
                assert invoke("keys", "add", "relayer", "--recover", "--keyring-backend", "test", "--home", home,
                              input=mnemonic + "\n").exit_code == 0
            assert invoke("genesis", "add-account", "relayer", f"{RELAYER_FUNDS}ujoule", "--keyring-backend", "test",
                          "--home", home).exit_code == 0
            grpc = f"127.0.0.1:{compute_free_port()}"
            process, url = start_dev_chain(home, block_time="300ms", grpc=grpc)
            processes.append(process)
            chains.append(Chain(chain_id, url, f"http://{grpc}", home))
        hermes = Hermes(directory, chains)
        for chain in chains:
            hermes.add_key(chain.chain_id, mnemonic)
        yield hermes, chains, address
    finally:
        for process in processes:
            stop_dev_chain(process)


def test_hermes_opens_a_transfer_channel_and_relays_joule_there_and_back(network):
    hermes, (a, b), relayer = network
    began = time.monotonic()
    created = hermes.run("create", "channel", "--a-chain", a.chain_id, "--b-chain", b.chain_id, "--a-port",
                         "transfer", "--b-port", "transfer", "--new-client-connection", "--yes")
    print(f"channel created in {time.monotonic() - began:.1f} s: {json.dumps(created)[:400]}")
    voucher = compute_voucher("transfer", "channel-0", "ujoule")
    before_a = get_balance(a, relayer, "ujoule")
    hermes.run("tx", "ft-transfer", "--dst-chain", b.chain_id, "--src-chain", a.chain_id, "--src-port", "transfer",
               "--src-channel", "channel-0", "--amount", "1000", "--denom", "ujoule", "--timeout-seconds", "120")
    hermes.run("tx", "packet-recv", "--dst-chain", b.chain_id, "--src-chain", a.chain_id, "--src-port", "transfer",
               "--src-channel", "channel-0")
    hermes.run("tx", "packet-ack", "--dst-chain", a.chain_id, "--src-chain", b.chain_id, "--src-port", "transfer",
               "--src-channel", "channel-0")
    assert get_balance(b, relayer, voucher) == 1000
    assert get_balance(a, relayer, "ujoule") < before_a - 1000
