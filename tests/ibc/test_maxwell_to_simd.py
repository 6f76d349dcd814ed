"""maxwell and ibc-go's reference chain (simd v8.8.0), relayed by Hermes: the channel handshake, JOULE to
simd and back, simd's stake to maxwell and back, a refund on timeout, and 200 transfers relayed by
`hermes start` (SCENARIO, which test_maxwell_to_osmosis runs against Osmosis too). simd verifies maxwell's
SMT proofs and CometBFT headers with ibc-go's own code; maxwell verifies simd's IAVL proofs."""

import hashlib
import json
import time

import pytest

from tests.helpers import invoke
from tests.ibc.hermes import Chain, Hermes, get_balance, measure_relaying, relay_dev_chain_and
from tests.ibc.simd import Simd

MAXWELL_ID, SIMD_ID = "maxwell-m-1", "simd-1"


def compute_voucher(channel: str, denom: str) -> str:
    return "ibc/" + hashlib.sha256(f"transfer/{channel}/{denom}".encode()).hexdigest().upper()


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    with relay_dev_chain_and(tmp_path_factory.mktemp("ibc-simd"), MAXWELL_ID, Simd, SIMD_ID, "simd") as network:
        yield network


def get_escrow(chain: Chain) -> str:
    result = invoke("query", "ibc", "escrow-address", "transfer", "channel-0", "--node", chain.rpc, "-o", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["escrow_address"]


def relay(hermes: Hermes, chain_id: str) -> None:
    hermes.run("clear", "packets", "--chain", chain_id, "--port", "transfer", "--channel", "channel-0")


def ft_transfer(hermes: Hermes, source: str, destination: str, amount: int, denom: str, *flags: str) -> None:
    hermes.run("tx", "ft-transfer", "--src-chain", source, "--dst-chain", destination, "--src-port", "transfer",
               "--src-channel", "channel-0", "--amount", str(amount), "--denom", denom, *flags)


def test_hermes_opens_a_channel_between_maxwell_and_simd(network):
    hermes, maxwell, simd, _ = network
    began = time.monotonic()
    created = hermes.run("create", "channel", "--a-chain", maxwell.chain_id, "--b-chain", simd.chain_id, "--a-port",
                         "transfer", "--b-port", "transfer", "--new-client-connection", "--yes")
    print(f"maxwell-{simd.chain_id} channel in {time.monotonic() - began:.1f} s")
    assert created["result"]["a_side"]["channel_id"] == "channel-0"
    assert created["result"]["b_side"]["channel_id"] == "channel-0"


def test_joule_goes_to_simd_and_comes_back(network):
    hermes, maxwell, simd, relayer = network
    voucher = compute_voucher("channel-0", "ujoule")
    escrowed = get_balance(maxwell, get_escrow(maxwell), "ujoule")
    began = time.monotonic()
    ft_transfer(hermes, maxwell.chain_id, simd.chain_id, 5000, "ujoule", "--timeout-seconds", "300")
    relay(hermes, maxwell.chain_id)
    assert simd.get_balance(simd.relayer, voucher) == 5000
    assert get_balance(maxwell, get_escrow(maxwell), "ujoule") == escrowed + 5000
    ft_transfer(hermes, simd.chain_id, maxwell.chain_id, 5000, voucher, "--timeout-seconds", "300")
    relay(hermes, simd.chain_id)
    assert simd.get_balance(simd.relayer, voucher) == 0
    print(f"one transfer maxwell -> {simd.chain_id} -> maxwell, relayed: {time.monotonic() - began:.1f} s")
    assert get_balance(maxwell, get_escrow(maxwell), "ujoule") == escrowed, "the escrow did not release the JOULE"


def test_simds_stake_comes_to_maxwell_and_goes_home(network):
    hermes, maxwell, simd, relayer = network
    voucher = compute_voucher("channel-0", simd.denom)
    ft_transfer(hermes, simd.chain_id, maxwell.chain_id, 777, simd.denom, "--timeout-seconds", "300")
    relay(hermes, simd.chain_id)
    assert get_balance(maxwell, relayer, voucher) == 777
    traces = json.loads(invoke("query", "ibc", "denom-traces", "--node", maxwell.rpc, "-o", "json").stdout)
    assert {"denom": voucher, "path": "transfer/channel-0", "base_denom": simd.denom} in traces
    ft_transfer(hermes, maxwell.chain_id, simd.chain_id, 777, voucher, "--timeout-seconds", "300")
    relay(hermes, maxwell.chain_id)
    assert get_balance(maxwell, relayer, voucher) == 0


def test_a_transfer_to_simd_that_times_out_is_refunded(network):
    hermes, maxwell, simd, relayer = network
    voucher = compute_voucher("channel-0", "ujoule")
    on_simd = simd.get_balance(simd.relayer, voucher)
    escrowed = get_balance(maxwell, get_escrow(maxwell), "ujoule")
    ft_transfer(hermes, maxwell.chain_id, simd.chain_id, 999, "ujoule", "--timeout-height-offset", "2")
    time.sleep(3)
    assert get_balance(maxwell, get_escrow(maxwell), "ujoule") == escrowed + 999
    relay(hermes, maxwell.chain_id)
    assert simd.get_balance(simd.relayer, voucher) == on_simd
    assert get_balance(maxwell, get_escrow(maxwell), "ujoule") == escrowed, "the timed-out transfer was not refunded"


def test_hermes_start_relays_200_transfers_between_maxwell_and_simd_with_none_lost(network):
    hermes, maxwell, simd, relayer = network
    joule, stake = compute_voucher("channel-0", "ujoule"), compute_voucher("channel-0", simd.denom)
    on_simd, on_maxwell = simd.get_balance(simd.relayer, joule), get_balance(maxwell, relayer, stake)
    escrowed = get_balance(maxwell, get_escrow(maxwell), "ujoule")

    def is_relayed() -> bool:
        return (simd.get_balance(simd.relayer, joule) == on_simd + 1000
                and get_balance(maxwell, relayer, stake) == on_maxwell + 1000)

    elapsed = measure_relaying(hermes, [
        ("--src-chain", source, "--dst-chain", destination, "--src-port", "transfer", "--src-channel", "channel-0",
         "--amount", "10", "--denom", denom, "--number-msgs", "100", "--timeout-seconds", "600")
        for source, destination, denom in ((maxwell.chain_id, simd.chain_id, "ujoule"),
                                           (simd.chain_id, maxwell.chain_id, simd.denom))], is_relayed)
    assert simd.get_balance(simd.relayer, joule) == on_simd + 1000
    assert get_balance(maxwell, relayer, stake) == on_maxwell + 1000
    assert get_balance(maxwell, get_escrow(maxwell), "ujoule") == escrowed + 1000
    print(f"hermes start relayed 200 transfers maxwell <-> {simd.chain_id} in {elapsed:.1f} s: "
          f"{200 / elapsed:.1f} packets/s")


SCENARIO = (test_hermes_opens_a_channel_between_maxwell_and_simd, test_joule_goes_to_simd_and_comes_back,
            test_simds_stake_comes_to_maxwell_and_goes_home, test_a_transfer_to_simd_that_times_out_is_refunded,
            test_hermes_start_relays_200_transfers_between_maxwell_and_simd_with_none_lost)
