"""Random order flows through two app instances, every block's clearing checked against a plain
reference written here, the supply and accounting invariants checked after every block."""

from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain import market
from chain.proto.maxwell.market.v1 import tx_pb2
from tests.helpers import Chain, events, inference_task_bids, make_account, order_id

MODELS = ["digits", "tiny"]
WORKS = ["process", "inference/digits", "inference/tiny"]
PARAMS = {"models": MODELS, "task_deadline_blocks": "1000", "unbonding_blocks": "1001"}
NAMES = ["p0", "p1", "p2", "p3", "b0", "b1", "b2"]


@dataclass
class Resting:
    id: int
    work: str
    price: int
    remaining: int
    expiry: int
    task: str


def reference_clearing(book: list[Resting], providers: list[tuple[int, bytes, int, list[str]]], capacity: dict, work: str):
    """The textbook rule on units: k = how many i have bid_i ≥ ask_i, price = max(ask_k, bid_k+1)."""
    bids = sorted(((-o.price, o.id) for o in book if o.work == work for _ in range(o.remaining)))
    asks = sorted((ask, address) for ask, address, _, works in providers if work in works
                  for _ in range(capacity[address]))
    k = 0
    while k < min(len(bids), len(asks)) and -bids[k][0] >= asks[k][0]:
        k += 1
    if k == 0:
        return 0, {}
    fills: dict[tuple[int, bytes], int] = {}
    for (_, order), (_, address) in zip(bids[:k], asks[:k]):
        fills[order, address] = fills.get((order, address), 0) + 1
        capacity[address] -= 1
    return max(asks[k - 1][0], -bids[k][0] if k < len(bids) else 0), fills


def chain_clearing(response, work: str, tasks: dict) -> tuple[int, dict]:
    """The price and the (order, provider) → slots of `work` that the chain's events report."""
    cleared = [e for e in events(response, "auction_cleared") if e["work"] == work]
    if not cleared:
        return 0, {}
    if work == "process":
        pairs = [(int(f["order"]), f["provider"], int(f["slots"])) for f in events(response, "lease_filled")]
    else:
        pairs = [(tasks[t["task"]], t["provider"], 1) for t in events(response, "task_assigned")
                 if t["task"].startswith(work + "/")]
    fills: dict[tuple[int, bytes], int] = {}
    for order, provider, slots in pairs:
        key = (order, market.crypto.decode_address(provider))
        fills[key] = fills.get(key, 0) + slots
    return int(cleared[0]["price"]), fills


provider_st = st.tuples(st.integers(1, 3), st.integers(1, 40), st.lists(st.sampled_from(MODELS), unique=True))
action_st = st.one_of(
    st.tuples(st.just("bid"), st.integers(4, 6), st.sampled_from(WORKS), st.integers(1, 4), st.integers(1, 60),
              st.integers(0, 3)),
    st.tuples(st.just("cancel"), st.integers(4, 6), st.integers(0, 50)),
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(offers=st.lists(provider_st, min_size=1, max_size=4), blocks=st.lists(st.lists(action_st, max_size=6), min_size=1, max_size=5))
def test_every_clearing_matches_the_reference(tmp_path_factory, offers, blocks):
    with inference_task_bids():  # the random book mixes process leases and inference tasks
        people = [make_account(name, number) for number, name in enumerate(NAMES)]
        directory = tmp_path_factory.mktemp("flow")
        chains = [Chain(directory / "one", people, params=PARAMS), Chain(directory / "two", people, params=PARAMS)]
        providers = []
        registrations = []
        for (slots, ask, models), account in zip(offers, people):
            registrations.append(chains[0].sign(account, tx_pb2.MsgRegisterProvider(
                provider=account.bech32, models=models, slots_per_block=slots, ask_price=str(ask), zone="z", stake="1000")))
            providers.append((ask, account.address, slots, ["process"] + [f"inference/{m}" for m in models]))
        responses = [c.block(registrations) for c in chains]
        book: list[Resting] = []
        tasks: dict[str, int] = {}
        for number, actions in enumerate(blocks):
            height = chains[0].height + 1
            txs, placed = [], []
            for action in actions:
                account = people[action[1]]
                if action[0] == "bid":
                    _, _, work, slots, price, lifetime = action
                    task = f"{work}/t{number}.{len(txs)}" if work != "process" else ""
                    message = tx_pb2.MsgBid(owner=account.bech32, work=work, slots=1 if task else slots,
                                            max_price=str(price), expiry_height=height + lifetime, task_ref=task)
                    placed.append((len(txs), Resting(0, work, price, message.slots, message.expiry_height, task)))
                else:
                    live = sorted(o.id for o in book)
                    if not live:
                        continue
                    message = tx_pb2.MsgCancelOrder(owner=account.bech32, order_id=live[action[2] % len(live)])
                txs.append(chains[0].sign(account, message))
            responses = [c.block(txs) for c in chains]
            response = responses[0]
            assert responses[0].app_hash == responses[1].app_hash, "clearing differs between app instances"

            for index, order in placed:
                if response.tx_results[index].code == 0:
                    order.id = order_id(response.tx_results[index])
                    book.append(order)
                    if order.task:
                        tasks[order.task] = order.id
            cancelled = {int(e["order"]) for e in events(response, "order_ended") if e["reason"] == "cancelled"}
            book = [o for o in book if o.id not in cancelled]
            capacity = {address: slots for _, address, slots, _ in providers}
            for work in WORKS:
                expected = reference_clearing(book, providers, capacity, work)
                assert chain_clearing(response, work, tasks) == expected, (work, book)
                for (order, _), slots in expected[1].items():
                    for resting in book:
                        if resting.id == order:
                            resting.remaining -= slots
            book = [o for o in book if o.remaining and o.expiry > height]
        for chain in chains:
            chain.app.close()


@settings(max_examples=300, deadline=None)
@given(bids=st.lists(st.tuples(st.integers(1, 100), st.integers(1, 5)), max_size=12),
       asks=st.lists(st.tuples(st.integers(1, 100), st.integers(0, 5)), max_size=6))
def test_compute_clearing_is_the_reference_rule(bids, asks):
    book = [Resting(i, "process", price, slots, 1, "") for i, (price, slots) in enumerate(bids)]
    providers = [(ask, bytes([i]) * 20, slots, ["process"]) for i, (ask, slots) in enumerate(asks)]
    expected = reference_clearing(book, providers, {p[1]: p[2] for p in providers}, "process")
    ranked = sorted(book, key=lambda o: (-o.price, o.id))
    price, fills = market.compute_clearing(iter((o.price, o.id, o.remaining) for o in ranked),
                                           sorted((ask, address) for ask, address, _, _ in providers),
                                           {p[1]: p[2] for p in providers})
    got: dict = {}
    for fill in fills:
        got[fill.order_id, fill.provider] = got.get((fill.order_id, fill.provider), 0) + fill.slots
    assert (price, got) == expected
    if fills:  # individually rational: winners pay at most their bid, sellers get at least their ask
        assert all(o.price >= price for o in book if any(f.order_id == o.id for f in fills))
        assert all(ask <= price for ask, address, _, _ in providers if any(f.provider == address for f in fills))
