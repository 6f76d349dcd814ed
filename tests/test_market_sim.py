"""Heat moves load: 50 providers in 5 zones, part of one zone overheats, the market routes around it.

The rule simulated (chain.heat): a hot provider's effective ask rises towards the critical
temperature and it is withdrawn above it; its zone's average rises with it, so the cool providers
of the same zone — its neighbours — get a discount and take the work first. Here six of zone z2's
ten providers (the cheapest six, which carried z2's load) start reporting 95 °C while the other four
stay at 40 °C; every other provider stays at 40 °C. Demand is 60 slots a block out of 100 offered.
"""

from chain import heat
from chain.proto.maxwell.market.v1 import tx_pb2
from tests.helpers import Chain, events, make_account

ZONES = 5
PER_ZONE = 10
HOT_ZONE = "z2"
HOT = range(6)
DEMAND = 60
WARM_UP = 4
HOT_BLOCKS = 8
BOUND = 6  # blocks after the heat starts by which the load must have moved
COOL, HOT_READING = 40_000, 95_000


def zone_of(index: int) -> str:
    return f"z{index // PER_ZONE}"


def test_load_leaves_hot_providers_for_their_cool_neighbours(tmp_path):
    providers = [make_account(f"p{i:02d}", i) for i in range(ZONES * PER_ZONE)]
    buyer = make_account("buyer", len(providers))
    chain = Chain(tmp_path / "sim", [*providers, buyer])
    chain.block([chain.sign(p, tx_pb2.MsgRegisterProvider(
        provider=p.bech32, models=[], slots_per_block=2, ask_price=str(1000 + 20 * (i % PER_ZONE)),
        zone=zone_of(i), stake="1000")) for i, p in enumerate(providers)])
    hot = {providers[i].bech32 for i in range(len(providers)) if zone_of(i) == HOT_ZONE and i % PER_ZONE in HOT}
    neighbours = {p.bech32 for i, p in enumerate(providers) if zone_of(i) == HOT_ZONE} - hot
    zone_by_address = {p.bech32: zone_of(i) for i, p in enumerate(providers)}

    rows = []
    for step in range(WARM_UP + HOT_BLOCKS):
        heating = step >= WARM_UP
        txs = [chain.sign(p, tx_pb2.MsgReportHeat(
            provider=p.bech32, power_milliwatts=400_000,
            temperature_millicelsius=HOT_READING if heating and p.bech32 in hot else COOL)) for p in providers]
        txs.append(chain.sign(buyer, tx_pb2.MsgBid(owner=buyer.bech32, work="process", slots=DEMAND,
                                                   max_price="5000", expiry_height=chain.height + 1)))
        response = chain.block(txs)
        assert all(r.code == 0 for r in response.tx_results), [r.log for r in response.tx_results if r.code]
        slots = {}
        for fill in events(response, "lease_filled"):
            slots[fill["provider"]] = slots.get(fill["provider"], 0) + int(fill["slots"])
        assert sum(slots.values()) == DEMAND
        price = int(events(response, "auction_cleared")[0]["price"])
        per_zone = [sum(n for a, n in slots.items() if zone_by_address[a] == f"z{z}") for z in range(ZONES)]
        rows.append((step - WARM_UP + 1, heating, price, per_zone,
                     sum(slots.get(a, 0) for a in hot), sum(slots.get(a, 0) for a in neighbours)))
    chain.app.close()

    print(f"\n{'block':>5} {'heat':>5} {'price':>6} " + " ".join(f"{f'z{z}':>4}" for z in range(ZONES))
          + f" {'hot':>4} {'cool z2':>7}")
    for block, heating, price, per_zone, hot_slots, cool_slots in rows:
        print(f"{block:>5} {'on' if heating else 'off':>5} {price:>6} " + " ".join(f"{n:>4}" for n in per_zone)
              + f" {hot_slots:>4} {cool_slots:>7}")

    before = rows[WARM_UP - 1]
    hot_zone = int(HOT_ZONE[1:])
    assert before[3] == [12] * ZONES and before[4] == 12 and before[5] == 0
    moved = [row for row in rows[WARM_UP:WARM_UP + BOUND] if row[3][hot_zone] < before[3][hot_zone] and row[5] > before[5]]
    assert moved, f"load did not move within {BOUND} blocks"
    after = rows[-1]
    assert after[4] == 0, "providers above the critical temperature must be withdrawn"
    assert after[5] == 2 * len(neighbours), "the cool neighbours fill up first"
    assert after[3][hot_zone] < before[3][hot_zone]
    others = [after[3][z] - before[3][z] for z in range(ZONES) if z != hot_zone]
    assert after[5] - before[5] > max(others), "the hot zone's cool providers gain more than any other zone"


def test_withdrawn_provider_comes_back_when_its_reading_decays(tmp_path):
    alice, buyer = make_account("alice", 0), make_account("buyer", 1)
    chain = Chain(tmp_path / "decay", [alice, buyer])
    chain.ok(alice, tx_pb2.MsgRegisterProvider(provider=alice.bech32, slots_per_block=1, ask_price="10",
                                               zone="z0", stake="1000"))
    chain.ok(alice, tx_pb2.MsgReportHeat(provider=alice.bech32, temperature_millicelsius=HOT_READING))
    params = heat.get_params(chain.app.store)
    silent = 0
    while events(chain.ok(buyer, tx_pb2.MsgBid(owner=buyer.bech32, work="process", slots=1, max_price="100",
                                               expiry_height=chain.height + 1)), "lease_filled") == []:
        silent += 1
    chain.app.close()
    # withdrawn while the 95 °C reading is fresh; its first halving (to 60 °C) brings it back
    assert silent == params.stale_blocks
