"""Market benchmarks: clearing against deep books, order insert and cancel, heat updates.

`run()` returns table rows (measure, value, baseline, ratio); each baseline is measured in the same
run on the same store. Clearing is timed as a whole end_block (supply scan, matching, settlement,
payouts) in a branch over a committed LevelDB store holding the resting orders, median of repeats.
"""

import random
import statistics
import tempfile
import time

from chain import bank, heat, market
from chain.app import GENESIS, STORES
from chain.proto.maxwell.market.v1 import tx_pb2
from chain.state import Context, GasMeter, GasParams, State
from chain.store import Branch, Store
from tests.helpers import CHAIN_ID, make_account

BOOK_SIZES = (1_000, 10_000, 100_000)
PROVIDERS = 10
SLOTS_PER_PROVIDER = 10
HEAT_PROVIDERS = 1000
HEAT_ZONES = 10
REPEATS = 5
CANCELS = 1000
CLEARING_TARGET_S = 0.2
SCALING_LIMIT = 12
FUNDS = 10**30
PARAMS = {"min_stake": "1000", "max_order_lifetime": "100000"}


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def median_seconds(function, repeats: int = REPEATS) -> float:
    return statistics.median(timed(function) for _ in range(repeats))


class Market:
    """A committed store with every module's genesis (funded accounts), driven height by height."""

    def __init__(self, path: str, accounts):
        self.store = Store(path, STORES)
        self.height = 0
        branch = Branch(self.store)
        sections = {"bank": {"balances": [
            {"address": a.bech32, "coins": [{"denom": "ujoule", "amount": str(FUNDS)}]} for a in accounts]},
            "market": {"params": PARAMS}}
        for store, init_chain, _ in GENESIS:
            init_chain(State(branch, GasMeter(), GasParams(), store), sections.get(store, {}), Context(CHAIN_ID, 1, 0))
        self.commit(branch)

    def commit(self, branch: Branch) -> float:
        self.height += 1
        return timed(lambda: (self.store.stage(self.height, branch.changes()), self.store.commit()))

    def begin(self, store: str = market.STORE) -> tuple[Branch, State, Context]:
        """A branch for the next height, a State of `store` over it, and the height's context."""
        branch = Branch(self.store)
        return branch, State(branch, GasMeter(), GasParams(), store), Context(CHAIN_ID, self.height + 1, 0)


def place_orders(state, ctx, owner, count: int, rng: random.Random) -> tuple[float, int, list[int]]:
    """Seconds and gas for `count` orders, half process leases and half inference tasks, prices spread
    so that about half of the book is above the asks."""
    ids = []
    start_gas = state.meter.consumed
    start = time.perf_counter()
    for _ in range(count):
        price = rng.randint(1, 20_000)
        if rng.random() < 0.5:
            ids.append(market.process_place_bid(state, ctx, owner.address, "process", rng.randint(1, 4), price,
                                                ctx.height + 50_000))
        else:
            ids.append(market.process_place_bid(state, ctx, owner.address, "inference/digits", 1, price,
                                                ctx.height + 50_000, f"task/{ctx.height}/{len(ids)}"))
    return time.perf_counter() - start, state.meter.consumed - start_gas, ids


def full_scan(store: Store) -> None:
    prefix = bytes((market.BOOK,))
    for _ in store.iterate(market.STORE, prefix, bytes((market.BOOK + 1,))):
        pass


def bench_book(path: str) -> list[tuple[str, str, str, str]]:
    rng = random.Random(7)
    providers = [make_account(f"prov{i}", i) for i in range(PROVIDERS)]
    buyer = make_account("buyer", PROVIDERS)
    chain = Market(path, [*providers, buyer])
    branch, state, ctx = chain.begin()
    for i, provider in enumerate(providers):
        market.check_and_execute_register(state, ctx, tx_pb2.MsgRegisterProvider(
            provider=provider.bech32, models=["digits"], slots_per_block=SLOTS_PER_PROVIDER,
            ask_price=str(9_000 + 200 * i), zone=f"z{i % 3}", stake="1000"))
    chain.commit(branch)

    rows, clearing = [], {}
    placed = 0
    for size in BOOK_SIZES:
        branch, state, ctx = chain.begin()
        insert_seconds, insert_gas, ids = place_orders(state, ctx, buyer, size - placed, rng)
        count = size - placed
        commit_seconds = chain.commit(branch)
        placed = size

        def clear():
            _, block_state, block_ctx = chain.begin()
            market.end_block(block_state, block_ctx)

        clearing[size] = median_seconds(clear)
        scan = median_seconds(lambda: full_scan(chain.store), 3)
        rows.append((f"clearing (end_block), {size:,} resting orders, {PROVIDERS * SLOTS_PER_PROVIDER} slots",
                     f"{clearing[size] * 1000:.1f} ms", f"{scan * 1000:.1f} ms full book scan",
                     f"{clearing[size] / scan:.3f}"))
        rows.append((f"order insert (handler), book of {size:,}", f"{insert_seconds / count * 1e6:.0f} µs, "
                     f"{insert_gas // count:,} gas", f"{commit_seconds / count * 1e6:.0f} µs commit", ""))

    branch, state, ctx = chain.begin()
    victims = ids[:CANCELS]
    start_gas = state.meter.consumed
    cancel_seconds = timed(lambda: [market.check_and_execute_cancel(
        state, ctx, tx_pb2.MsgCancelOrder(owner=buyer.bech32, order_id=i)) for i in victims])
    rows.append((f"order cancel (handler), book of {placed:,}",
                 f"{cancel_seconds / CANCELS * 1e6:.0f} µs, {(state.meter.consumed - start_gas) // CANCELS:,} gas",
                 "", ""))
    for smaller, larger in zip(BOOK_SIZES, BOOK_SIZES[1:]):
        growth = clearing[larger] / clearing[smaller]
        rows.append((f"clearing time {larger:,} / {smaller:,} orders (target ≤ {SCALING_LIMIT}×)", f"{growth:.2f}×",
                     f"{larger // smaller}× orders", "met" if growth <= SCALING_LIMIT else "NOT met"))
    largest = BOOK_SIZES[-1]
    rows.append((f"clearing target ≤ {CLEARING_TARGET_S} s at {largest:,}", f"{clearing[largest]:.3f} s", "",
                 "met" if clearing[largest] <= CLEARING_TARGET_S else "NOT met"))
    chain.store.close()
    return rows


def bench_heat(path: str) -> list[tuple[str, str, str, str]]:
    providers = [make_account(f"heat{i}", i) for i in range(HEAT_PROVIDERS)]
    buyer = make_account("buyer", HEAT_PROVIDERS)
    chain = Market(path, [*providers, buyer])
    branch, state, ctx = chain.begin()
    for i, provider in enumerate(providers):
        market.check_and_execute_register(state, ctx, tx_pb2.MsgRegisterProvider(
            provider=provider.bech32, models=[], slots_per_block=1, ask_price=str(100 + i),
            zone=f"z{i % HEAT_ZONES}", stake="1000"))
    market.process_place_bid(state, ctx, buyer.address, "process", 1, 1, ctx.height + 1000)
    chain.commit(branch)

    def reports():
        _, report_state, report_ctx = chain.begin(heat.STORE)
        for i, provider in enumerate(providers):
            heat.check_and_execute_report_heat(report_state, report_ctx, tx_pb2.MsgReportHeat(
                provider=provider.bech32, temperature_millicelsius=40_000 + 50 * i, power_milliwatts=300_000))

    def transfers():
        _, transfer_state, transfer_ctx = chain.begin()
        for provider in providers:
            bank.process_transfer(transfer_state, transfer_ctx, buyer.address, provider.address, {"ujoule": 1})

    def supply():
        _, supply_state, supply_ctx = chain.begin()
        market.end_block(supply_state, supply_ctx)

    report_seconds, transfer_seconds = median_seconds(reports, 3), median_seconds(transfers, 3)
    supply_seconds = median_seconds(supply, 3)
    return [
        (f"heat reports, {HEAT_PROVIDERS:,} providers in {HEAT_ZONES} zones, per block",
         f"{report_seconds * 1000:.1f} ms", f"{transfer_seconds * 1000:.1f} ms for {HEAT_PROVIDERS:,} transfers",
         f"{report_seconds / transfer_seconds:.2f}"),
        (f"supply scan with heat (end_block), {HEAT_PROVIDERS:,} providers", f"{supply_seconds * 1000:.1f} ms", "", ""),
    ]


def run() -> list[tuple[str, str, str, str]]:
    with tempfile.TemporaryDirectory() as directory:
        return bench_book(f"{directory}/book.db") + bench_heat(f"{directory}/heat.db")


if __name__ == "__main__":
    for row in run():
        print(" | ".join(row))
