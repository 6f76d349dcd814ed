"""maxwell and Osmosis (osmosisd v26.0.2) through Hermes: the ICS-20 scenario run against simd
(tests.ibc.test_maxwell_to_simd.SCENARIO), then a balancer pool of JOULE vouchers and uosmo made on
Osmosis, and a swap on it — the point of looking like a Cosmos chain."""

import hashlib
import json

import pytest

from tests.ibc import test_maxwell_to_simd as scenario
from tests.ibc.hermes import relay_dev_chain_and
from tests.ibc.simd import OSMO, Osmosis

MAXWELL_ID, OSMOSIS_ID = "maxwell-o-1", "osmosis-test-1"
POOL_JOULE, POOL_OSMO = 1_000_000, 5_000_000


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    with relay_dev_chain_and(tmp_path_factory.mktemp("ibc-osmosis"), MAXWELL_ID, Osmosis, OSMOSIS_ID,
                             "osmosis") as network:
        yield network


def test_the_ics20_scenario_holds_against_osmosis(network):
    for step in scenario.SCENARIO:
        step(network)


def test_joule_on_osmosis_makes_a_pool_with_osmo_and_swaps(network):
    hermes, _, osmosis, _ = network
    voucher = "ibc/" + hashlib.sha256(b"transfer/channel-0/ujoule").hexdigest().upper()
    held = osmosis.get_balance(osmosis.relayer, voucher)
    hermes.run("tx", "ft-transfer", "--src-chain", MAXWELL_ID, "--dst-chain", OSMOSIS_ID, "--src-port", "transfer",
               "--src-channel", "channel-0", "--amount", str(2 * POOL_JOULE), "--denom", "ujoule",
               "--timeout-seconds", "300")
    hermes.run("clear", "packets", "--chain", MAXWELL_ID, "--port", "transfer", "--channel", "channel-0")
    assert osmosis.get_balance(osmosis.relayer, voucher) == held + 2 * POOL_JOULE

    pool_file = osmosis.home / "pool.json"
    pool_file.write_text(json.dumps({"weights": f"1{voucher},1{OSMO}",
                                     "initial-deposit": f"{POOL_JOULE}{voucher},{POOL_OSMO}{OSMO}",
                                     "swap-fee": "0.003", "exit-fee": "0.000", "future-governor": ""}))
    osmosis.tx("gamm", "create-pool", "--pool-file", str(pool_file))
    pools = json.loads(osmosis.run("query", "poolmanager", "all-pools", "--node", osmosis.rpc, "-o", "json"))
    pool = next(p for p in pools["pools"] if any(a["token"]["denom"] == voucher for a in p.get("pool_assets", [])))
    pool_id = pool["id"]

    before = osmosis.get_balance(osmosis.relayer, voucher)
    osmosis.tx("poolmanager", "swap-exact-amount-in", f"100000{OSMO}", "1", "--swap-route-pool-ids", pool_id,
               "--swap-route-denoms", voucher)
    bought = osmosis.get_balance(osmosis.relayer, voucher) - before
    # a constant-product pool of 1 JOULE : 5 OSMO, 0.3 % fee: 0.1 OSMO in buys a little under 0.0196 JOULE
    expected = POOL_JOULE * 99_700 // (POOL_OSMO + 99_700)
    assert 0 < bought and abs(bought - expected) <= 2, (bought, expected)
