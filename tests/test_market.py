"""The compute market through the ABCI app on real LevelDB, and its pure parts.

`Chain` (tests/helpers.py) drives the real App (market wired in chain/app.py) with funded accounts and a
validator key.
"""

import json

import nacl.signing
import pytest

from chain import bank, heat, market, process
from chain.app import App, GenesisError
from chain.errors import NotFoundError, TxDecodeError
from chain.proto.cosmos.base.abci.v1beta1 import abci_pb2 as sdk_abci
from chain.proto.maxwell.market.v1 import query_pb2, tx_pb2
from chain.proto.tendermint.abci import types_pb2 as abci
from chain.proto.tendermint.types import validator_pb2
from chain.state import Context, GasMeter, GasParams, State
from chain.store import Branch
from ibc import tendermint
from tests.helpers import (
    CHAIN_ID,
    DENOM,
    INITIAL_BALANCE,
    Chain,
    code_of,
    compute_market_accounting,
    events,
    inference_task_bids,
    make_account,
    order_id,
    register,
)

FEE = 10_000


def bid(account, *, work="process", slots=1, price=200, expiry=None, task="", chain=None) -> tx_pb2.MsgBid:
    expiry = expiry if expiry is not None else chain.height + 10
    return tx_pb2.MsgBid(owner=account.bech32, work=work, slots=slots, max_price=str(price), expiry_height=expiry, task_ref=task)


def process_id(result: abci.ExecTxResult) -> int:
    responses = sdk_abci.TxMsgData.FromString(result.data).msg_responses
    return tx_pb2.MsgStartProcessResponse.FromString(responses[0].value).process_id


@pytest.fixture
def people():
    return [make_account(name, number) for number, name in enumerate(["alice", "bob", "carol", "dave", "erin"])]


@pytest.fixture(autouse=True)
def task_bids():
    """This file tests the market's task rules: its bids place inference tasks as the inference module would."""
    with inference_task_bids():
        yield


@pytest.fixture
def chain(tmp_path, people):
    built = Chain(tmp_path / "chain", people)
    yield built
    built.app.close()


# --- providers ------------------------------------------------------------------------------------

def test_register_bonds_stake_and_offers_capacity(chain, people):
    alice = people[0]
    chain.ok(alice, register(alice, slots=4, stake=5000))
    assert chain.balance(alice) == INITIAL_BALANCE - 5000 - FEE
    assert chain.balance(market.STAKE) == 5000
    assert market.get_capacity(chain.app.store, "process") == 4
    assert market.get_capacity(chain.app.store, "inference/digits") == 4
    view = chain.query("/maxwell.market.v1.Query/Provider", query_pb2.QueryProviderRequest(address=alice.bech32)).provider
    assert (view.provider.zone, view.effective_ask, view.withdrawn) == ("z0", "100", False)
    assert view.temperature_millicelsius == 25_000


def test_unregister_withdraws_at_once_and_returns_stake_after_unbonding(chain, people):
    alice = people[0]
    chain.ok(alice, register(alice, stake=3000))
    response = chain.ok(alice, tx_pb2.MsgUnregisterProvider(provider=alice.bech32))
    unbonding = events(response, "provider_unbonding")[0]
    assert int(unbonding["unbonding_height"]) == chain.height + 5
    assert market.get_capacity(chain.app.store, "process") == 0
    before = chain.balance(alice)
    while chain.height < int(unbonding["unbonding_height"]) - 1:
        assert events(chain.block([]), "provider_unbonded") == []
    assert events(chain.block([]), "provider_unbonded") == [{"provider": alice.bech32, "stake": "3000"}]
    assert chain.balance(alice) == before + 3000
    assert market.get_provider(chain.app.store, alice.address) is None


def test_update_changes_offer_and_adds_stake(chain, people):
    alice = people[0]
    chain.ok(alice, register(alice, slots=4, stake=1000))
    chain.ok(alice, tx_pb2.MsgUpdateProvider(provider=alice.bech32, models=[], slots_per_block=7, ask_price="90",
                                            zone="z1", add_stake="500"))
    provider = market.get_provider(chain.app.store, alice.address)
    assert (provider.slots_per_block, provider.ask_price, provider.zone, provider.stake) == (7, "90", "z1", "1500")
    assert market.get_capacity(chain.app.store, "process") == 7
    assert market.get_capacity(chain.app.store, "inference/digits") == 0
    assert heat.get_zone(chain.app.store, "z0") is None
    assert heat.get_zone(chain.app.store, "z1").providers == 1


# --- orders and clearing --------------------------------------------------------------------------

def test_bid_escrows_and_cancel_refunds(chain, people):
    alice, bob = people[:2]
    chain.ok(alice, register(alice))
    result, _ = chain.run(bob, bid(bob, slots=2, price=30, chain=chain))
    assert result.code == 0, result.log
    assert chain.balance(market.ESCROW) == 60
    response = chain.ok(bob, tx_pb2.MsgCancelOrder(owner=bob.bech32, order_id=order_id(result)))
    assert events(response, "order_ended")[0]["reason"] == "cancelled"
    assert chain.balance(market.ESCROW) == 0
    assert chain.balance(bob) == INITIAL_BALANCE - 2 * FEE


def test_clearing_price_is_highest_losing_bid_or_marginal_ask(chain, people):
    alice, bob, carol, dave, erin = people
    chain.ok(alice, register(alice, models=(), slots=2, ask=100))
    chain.ok(bob, register(bob, models=(), slots=1, ask=150))
    expiry = chain.height + 3
    txs = [chain.sign(carol, bid(carol, price=300, expiry=expiry)), chain.sign(dave, bid(dave, price=200, expiry=expiry)),
           chain.sign(erin, bid(erin, price=120, expiry=expiry)), chain.sign(carol, bid(carol, price=90, expiry=expiry))]
    alice_before = chain.balance(alice)
    pool_before = chain.balance(bank.FEE_COLLECTOR)
    response = chain.block(txs)
    assert all(r.code == 0 for r in response.tx_results)
    # supply 100, 100, 150; demand 300, 200, 120, 90: two units trade at max(a_2 = 100, b_3 = 120)
    assert events(response, "auction_cleared") == [{"work": "process", "price": "120", "matched_slots": "2"}]
    fills = events(response, "lease_filled")
    assert [(f["provider"], f["slots"], f["price"]) for f in fills] == [(alice.bech32, "1", "120")] * 2
    assert chain.balance(alice) == alice_before + 2 * (120 - 2)
    assert chain.balance(bank.FEE_COLLECTOR) - pool_before == 4 * FEE + 2 * 2
    ended = {e["order"]: e for e in events(response, "order_ended")}
    assert [e["refund"] for e in ended.values()] == ["180", "80"]
    # next block: 120 and 90 rest; one unit trades at max(a_1 = 100, b_2 = 90)
    response = chain.block([])
    assert events(response, "auction_cleared") == [{"work": "process", "price": "100", "matched_slots": "1"}]
    clearing = chain.query("/maxwell.market.v1.Query/Clearing", query_pb2.QueryClearingRequest(work="process")).clearing
    assert (clearing.height, clearing.price, clearing.matched_slots) == (chain.height, "100", 1)
    assert [e["refund"] for e in events(response, "order_ended")] == ["20"]
    response = chain.block([])
    assert events(response, "auction_cleared") == []
    assert [(e["reason"], e["refund"]) for e in events(response, "order_ended")] == [("expired", "90")]
    assert chain.balance(market.ESCROW) == 0


def test_a_provider_never_gets_more_slots_than_it_offers(chain, people):
    alice, bob = people[:2]
    chain.ok(alice, register(alice, slots=3))
    result, response = chain.run(bob, bid(bob, slots=3, price=500, chain=chain),
                                 bid(bob, work="inference/digits", task="t1", price=500, chain=chain))
    assert result.code == 0, result.log
    assert [e["matched_slots"] for e in events(response, "auction_cleared")] == ["3"]
    assert events(response, "task_assigned") == []
    response = chain.block([])
    assert [(e["task"], e["provider"]) for e in events(response, "task_assigned")] == [("t1", alice.bech32)]


def test_clearing_reads_only_what_it_matches(chain, people):
    alice, bob = people[:2]
    chain.ok(alice, register(alice, slots=3, ask=1000))
    resting = [bid(bob, price=50, expiry=chain.height + 40, chain=chain) for _ in range(64)]
    chain.ok(bob, *resting, gas=4_000_000)
    chain.ok(bob, bid(bob, slots=2, price=400, chain=chain), bid(bob, slots=2, price=300, chain=chain))
    assert len(chain.query("/maxwell.market.v1.Query/Book", query_pb2.QueryBookRequest(work="process")).orders) == 66

    class Counting(Branch):
        book_reads = 0

        def iterate(self, store, start=None, end=None, reverse=False):
            for key, value in super().iterate(store, start, end, reverse):
                if store == market.STORE and key[0] == market.BOOK:
                    Counting.book_reads += 1
                yield key, value

    branch = Counting(chain.app.store)
    state, ctx = State(branch, GasMeter(), GasParams(), market.STORE), Context(CHAIN_ID, chain.height + 1, 0)
    market.check_and_execute_update(state, ctx, tx_pb2.MsgUpdateProvider(
        provider=alice.bech32, models=["digits"], slots_per_block=3, ask_price="100", zone="z0"))
    market.end_block(state, ctx)
    cleared = [e for e in map(abci.Event.FromString, ctx.events) if e.type == "auction_cleared"]
    assert {a.key: a.value for a in cleared[0].attributes}["matched_slots"] == "3"
    # the work's first key (is there a book?), then the two orders that matched and the one losing unit
    assert Counting.book_reads <= 4, Counting.book_reads


# --- inference tasks ------------------------------------------------------------------------------

def test_task_is_assigned_and_only_its_provider_is_paid_for_the_proof(chain, people):
    alice, bob, carol = people[:3]
    chain.ok(alice, register(alice, ask=100))
    chain.ok(carol, register(carol, ask=500))
    response = chain.ok(bob, bid(bob, work="inference/digits", price=300, task="req1/layer0", chain=chain))
    assigned = events(response, "task_assigned")
    assert assigned == [{"task": "req1/layer0", "provider": alice.bech32, "price": "100",
                         "deadline_height": str(chain.height + 3)}]
    assert market.get_assignment(chain.app.store, "req1/layer0").escrow == "300"

    branch = Branch(chain.app.store)
    state, ctx = State(branch, GasMeter(), GasParams(), market.STORE), Context(CHAIN_ID, chain.height + 1, 0)
    with pytest.raises(market.NotAssignedProviderError):
        market.process_task_proven(state, ctx, "req1/layer0", carol.address)
    assert branch.changes() == {}
    with pytest.raises(market.AssignmentNotFoundError):
        market.process_task_proven(state, ctx, "req9/layer0", alice.address)
    before = {who: bank.get_balance(branch, who, DENOM) for who in (alice.address, bob.address, bank.FEE_COLLECTOR)}
    market.process_task_proven(state, ctx, "req1/layer0", alice.address)
    after = {who: bank.get_balance(branch, who, DENOM) for who in before}
    assert after[alice.address] - before[alice.address] == 98
    assert after[bank.FEE_COLLECTOR] - before[bank.FEE_COLLECTOR] == 2
    assert after[bob.address] - before[bob.address] == 200
    assert market.get_assignment(branch, "req1/layer0") is None
    assert bank.get_balance(branch, market.ESCROW, DENOM) == 0


def test_missed_deadline_slashes_to_requester_and_requeues_the_task(chain, people):
    alice, bob, carol = people[:3]
    chain.ok(alice, register(alice, ask=100, stake=1000))
    chain.ok(carol, register(carol, ask=200, stake=1000))
    response = chain.ok(bob, bid(bob, work="inference/digits", price=300, task="req1/layer0", chain=chain))
    deadline = int(events(response, "task_assigned")[0]["deadline_height"])
    while chain.height < deadline - 1:
        chain.block([])
    bob_before = chain.balance(bob)
    response = chain.block([])
    assert events(response, "task_missed") == [{"task": "req1/layer0", "provider": alice.bech32, "slashed": "100"}]
    assert chain.balance(bob) == bob_before + 100
    assert market.get_provider(chain.app.store, alice.address).stake == "900"
    # alice is now under the minimum stake: the requeued task goes to carol in the same block
    assert [(e["task"], e["provider"], e["price"]) for e in events(response, "task_assigned")] == [
        ("req1/layer0", carol.bech32, "200")]
    assert market.get_assignment(chain.app.store, "req1/layer0").escrow == "300"


# --- processes ------------------------------------------------------------------------------------

def start(account, *, slots=1, max_rent=50, escrow=1000) -> tx_pb2.MsgStartProcess:
    return tx_pb2.MsgStartProcess(owner=account.bech32, slots=slots, max_rent=str(max_rent), escrow=str(escrow))


def test_process_pays_rent_every_block_and_dies_when_escrow_runs_out(chain, people):
    alice, bob = people[:2]
    chain.ok(alice, register(alice, models=(), slots=2, ask=10))
    result, response = chain.run(bob, start(bob, escrow=210))
    pid = process_id(result)
    assert events(response, "lease_filled")[0]["price"] == "10"
    response = chain.ok(bob, tx_pb2.MsgProcessWrite(owner=bob.bech32, process_id=pid, key=b"state", value=b"hello"))
    assert events(response, "lease_filled")[0]["process"] == str(pid)
    memory = chain.query("/maxwell.market.v1.Query/Process", query_pb2.QueryProcessRequest(id=pid))
    assert memory.process.memory_bytes == 10
    assert [(m.key, m.value) for m in memory.memory] == [(b"state", b"hello")]
    # rent per block: 1 slot × 10 + 10 bytes × 2 = 30; escrow 210 − 10 (first block) − 30 = 170 left
    assert memory.process.escrow == "170"
    blocks = 0
    while not (apoptosis := events(response := chain.block([]), "apoptosis")):
        blocks += 1
    assert blocks == 5
    assert apoptosis == [{"process": str(pid), "height": str(chain.height), "reason": "rent", "erased_bytes": "10",
                          "tax": "15", "refund": "5"}]
    assert events(response, "lease_filled") == []
    assert process.get_process(chain.app.store, pid) is None
    assert list(chain.app.store.iterate(process.STORE, process.state_key(process.MEMORY, pid))) == []
    assert chain.balance(market.ESCROW) == 0
    assert events(chain.block([]), "auction_cleared") == []


def test_unmatched_process_is_killed_by_memory_rent_alone(chain, people):
    alice, bob = people[:2]
    chain.ok(alice, register(alice, models=(), slots=1, ask=10))
    result, _ = chain.run(bob, start(bob, max_rent=5, escrow=100))
    pid = process_id(result)
    chain.ok(bob, tx_pb2.MsgProcessWrite(owner=bob.bech32, process_id=pid, key=b"k", value=b"x" * 9))
    death = process.get_process(chain.app.store, pid).death_height
    assert death == chain.height + 5  # 100 ujoule at 20 a block
    while chain.height < death - 1:
        assert events(chain.block([]), "apoptosis") == []
    assert events(chain.block([]), "apoptosis")[0]["reason"] == "rent"


def test_top_up_extends_life(chain, people):
    alice, bob = people[:2]
    chain.ok(alice, register(alice, models=(), slots=2, ask=10))
    first = process_id(chain.run(bob, start(bob, escrow=100))[0])
    second = process_id(chain.run(bob, start(bob, escrow=100))[0])
    chain.ok(bob, tx_pb2.MsgTopUp(owner=bob.bech32, process_id=second, amount="100"))
    deaths = {}
    while len(deaths) < 2:
        for event in events(chain.block([]), "apoptosis"):
            deaths[int(event["process"])] = chain.height
    assert deaths[second] - deaths[first] >= 9


def test_erasing_memory_pays_the_entropy_tax_in_gas(chain, people):
    alice, bob = people[:2]
    chain.ok(alice, register(alice, models=(), ask=10))
    pid = process_id(chain.run(bob, start(bob, escrow=10**6))[0])
    value = b"v" * 2000
    write, _ = chain.run(bob, tx_pb2.MsgProcessWrite(owner=bob.bech32, process_id=pid, key=b"blob", value=value))
    erase, _ = chain.run(bob, tx_pb2.MsgProcessDelete(owner=bob.bech32, process_id=pid, key=b"blob"))
    assert write.code == erase.code == 0
    assert erase.gas_used - write.gas_used > 2000 * (GasParams().erase_cost_per_byte - GasParams().write_cost_per_byte) // 2
    assert process.get_process(chain.app.store, pid).memory_bytes == 0


def test_stop_process_erases_memory_and_refunds(chain, people):
    alice, bob = people[:2]
    chain.ok(alice, register(alice, models=(), ask=10))
    pid = process_id(chain.run(bob, start(bob, escrow=1000))[0])
    chain.ok(bob, tx_pb2.MsgProcessWrite(owner=bob.bech32, process_id=pid, key=b"a", value=b"b"))
    response = chain.ok(bob, tx_pb2.MsgStopProcess(owner=bob.bech32, process_id=pid))
    assert events(response, "apoptosis")[0]["reason"] == "stopped"
    assert chain.balance(market.ESCROW) == 0
    assert chain.query("/maxwell.market.v1.Query/Book", query_pb2.QueryBookRequest(work="process")).orders == []


# --- heat -----------------------------------------------------------------------------------------

def report(account, temperature: int, power: int = 100_000) -> tx_pb2.MsgReportHeat:
    return tx_pb2.MsgReportHeat(provider=account.bech32, temperature_millicelsius=temperature, power_milliwatts=power)


def provider_view(chain, account) -> query_pb2.ProviderView:
    return chain.query("/maxwell.market.v1.Query/Provider", query_pb2.QueryProviderRequest(address=account.bech32)).provider


def test_heat_raises_effective_ask_and_critical_withdraws(chain, people):
    alice = people[0]
    chain.ok(alice, register(alice, ask=100))
    chain.ok(alice, report(alice, 80_000))  # first reading: the average starts there
    view = provider_view(chain, alice)
    assert (view.temperature_millicelsius, view.effective_ask) == (80_000, "200")  # half way warm → critical
    chain.ok(alice, report(alice, 100_000))  # average 90 °C = critical
    view = provider_view(chain, alice)
    assert (view.withdrawn, view.effective_ask) == (True, "")
    result, _ = chain.run(alice, report(alice, 40_000), report(alice, 40_000))
    assert code_of(result) == code_of(heat.HeatAlreadyReportedError)


def test_stale_heat_decays_to_ambient(chain, people):
    alice = people[0]
    chain.ok(alice, register(alice, ask=100))
    chain.ok(alice, report(alice, 85_000))
    reported = chain.height
    temperatures = []
    while chain.height < reported + 40:
        chain.block([])
        temperatures.append(provider_view(chain, alice).temperature_millicelsius)
    assert temperatures[:10] == [85_000] * 10
    assert (temperatures[10], temperatures[20], temperatures[-1]) == (55_000, 40_000, 32_500)


def test_cool_provider_in_a_hot_zone_gets_a_discount(chain, people):
    alice, bob = people[:2]
    chain.ok(alice, register(alice, ask=100, zone="hall"))
    chain.ok(bob, register(bob, ask=100, zone="hall"))
    for _ in range(8):
        chain.block([chain.sign(alice, report(alice, 89_000)), chain.sign(bob, report(bob, 30_000))])
    zone = provider_view(chain, bob).zone_temperature_millicelsius
    assert zone > 50_000
    discount = min(3000, (zone - 30_000) * 100 // 1000)
    assert provider_view(chain, bob).effective_ask == str(-(-100 * (10_000 - discount) // 10_000))
    assert int(provider_view(chain, alice).effective_ask) > 1000


# --- vote extensions and the heat tx -------------------------------------------------------------

def test_vote_extension_round_trip_and_bounds():
    reading = heat.HeatReading(-12_500, 3_000_000)
    assert heat.check_vote_extension(heat.compute_vote_extension(reading)) == reading
    assert heat.check_vote_extension(b"") is None
    with pytest.raises(heat.OversizedVoteExtension):
        heat.check_vote_extension(heat.compute_vote_extension(reading) + b"\x00")
    with pytest.raises(heat.OversizedVoteExtension):
        heat.check_vote_extension(b"\x01" * 10_000)
    for malformed in (b"\x01", b"\x02" + bytes(12), b"hello world!!"):
        with pytest.raises(heat.MalformedVoteExtension):
            heat.check_vote_extension(malformed)
    too_hot = b"\x01" + (200_000).to_bytes(4, "big", signed=True) + bytes(8)
    with pytest.raises(heat.ReadingOutOfRange):
        heat.check_vote_extension(too_hot)
    with pytest.raises(heat.ReadingOutOfRange):
        heat.compute_vote_extension(heat.HeatReading(0, heat.MAX_POWER_MILLIWATTS + 1))


@pytest.mark.parametrize("extension", [b"\x01", b"\x01" * 14, b"\x07" + bytes(12),
                                       b"\x01" + (-50_000).to_bytes(4, "big", signed=True) + bytes(8)])
def test_verify_vote_extension_rejects_bad_readings(chain, extension):
    response = chain.app.verify_vote_extension(abci.RequestVerifyVoteExtension(vote_extension=extension, height=2))
    assert response.status == abci.ResponseVerifyVoteExtension.REJECT


def test_vote_extension_sign_bytes_match_cometbft():
    tendermint = pytest.importorskip("ibc.tendermint")
    from chain.proto.tendermint.types import types_pb2
    vote = types_pb2.Vote(height=41, round=2, extension=b"\x01" + bytes(12))
    assert heat.compute_vote_extension_sign_bytes("maxwell-1", 41, 2, vote.extension) == \
        tendermint.compute_vote_extension_sign_bytes("maxwell-1", vote)


def extended_commit(chain, extension: bytes, *, signer=None, height=None, flag=validator_pb2.BLOCK_ID_FLAG_COMMIT):
    """What CometBFT hands the next proposer: our validator's precommit with its signed extension."""
    signer = signer or chain.validator
    message = heat.compute_vote_extension_sign_bytes(CHAIN_ID, height or chain.height, 0, extension)
    address = tendermint.compute_consensus_address(bytes(chain.validator.verify_key))
    vote = abci.ExtendedVoteInfo(validator=abci.Validator(address=address, power=10), vote_extension=extension,
                                 extension_signature=signer.sign(message).signature, block_id_flag=flag)
    info = abci.ExtendedCommitInfo(round=0, votes=[vote])
    commit = abci.CommitInfo(round=0, votes=[abci.VoteInfo(validator=vote.validator, block_id_flag=flag)])
    return info, commit


def propose(chain, info, commit, txs=()):
    height = chain.height + 1
    prepared = chain.app.prepare_proposal(abci.RequestPrepareProposal(
        max_tx_bytes=1 << 20, txs=list(txs), local_last_commit=info, height=height))
    verdict = chain.app.process_proposal(abci.RequestProcessProposal(
        txs=prepared.txs, proposed_last_commit=commit, height=height))
    return list(prepared.txs), verdict.status


def test_validator_heat_reaches_its_linked_provider_through_the_heat_tx(chain, people):
    alice = people[0]
    chain.ok(alice, register(alice, ask=100, link=chain.validator))
    chain.app.heat_sensor = lambda: heat.HeatReading(80_000, 250_000)
    extension = chain.app.extend_vote(abci.RequestExtendVote(height=chain.height)).vote_extension
    verified = chain.app.verify_vote_extension(abci.RequestVerifyVoteExtension(vote_extension=extension))
    assert verified.status == abci.ResponseVerifyVoteExtension.ACCEPT
    info, commit = extended_commit(chain, extension)
    txs, status = propose(chain, info, commit, [chain.sign(alice, report(alice, 80_000, power=250_000))])
    assert status == abci.ResponseProcessProposal.ACCEPT
    assert heat.is_heat_tx(txs[0]) and len(txs) == 2
    checked = chain.app.check_tx(abci.RequestCheckTx(tx=txs[0]))  # a heat tx is no signed tx: only a proposer adds it
    assert code_of(checked) == code_of(TxDecodeError)
    response = chain.block(txs)
    assert [r.code for r in response.tx_results] == [0, 0], [r.log for r in response.tx_results]
    begin_block = [{a.key: a.value for a in e.attributes} for e in response.events if e.type == "heat_reported"]
    assert [e["source"] for e in begin_block] == ["validator"]  # heat's begin_block, before the block's txs
    assert [e.type == "heat_reported" and e.attributes[1].value for e in response.tx_results[1].events
            if e.type == "heat_reported"] == ["provider"]
    view = provider_view(chain, alice)
    assert (view.temperature_millicelsius, view.power_milliwatts) == (80_000, 250_000)


def test_process_proposal_rejects_forged_or_mismatched_heat_txs(chain, people):
    alice = people[0]
    chain.ok(alice, register(alice, link=chain.validator))
    extension = heat.compute_vote_extension(heat.HeatReading(30_000, 1000))
    info, commit = extended_commit(chain, extension)
    assert propose(chain, info, commit)[1] == abci.ResponseProcessProposal.ACCEPT

    impostor = nacl.signing.SigningKey(bytes(32))
    forged, _ = extended_commit(chain, extension, signer=impostor)
    assert propose(chain, forged, commit)[1] == abci.ResponseProcessProposal.REJECT
    stale, _ = extended_commit(chain, extension, height=chain.height - 1)
    assert propose(chain, stale, commit)[1] == abci.ResponseProcessProposal.REJECT
    _, nil_commit = extended_commit(chain, extension, flag=validator_pb2.BLOCK_ID_FLAG_NIL)
    assert propose(chain, info, nil_commit)[1] == abci.ResponseProcessProposal.REJECT
    heat_tx = heat.compute_heat_tx(info)
    for txs in ([chain.sign(alice, report(alice, 30_000)), heat_tx], [heat_tx + b"\x00"], [heat_tx[:-3]]):
        verdict = chain.app.process_proposal(abci.RequestProcessProposal(txs=txs, proposed_last_commit=commit,
                                                                         height=chain.height + 1))
        assert verdict.status == abci.ResponseProcessProposal.REJECT
    assert heat.compute_heat_tx(abci.ExtendedCommitInfo(votes=[abci.ExtendedVoteInfo()])) is None


def test_validator_link_needs_the_validators_signature(chain, people):
    alice, bob = people[:2]
    wrong = register(alice, link=chain.validator)
    wrong.validator_signature = chain.validator.sign(heat.compute_link_sign_bytes(CHAIN_ID, bob.address)).signature
    result, _ = chain.run(alice, wrong)
    assert code_of(result) == code_of(heat.ValidatorLinkError)
    chain.ok(alice, register(alice, link=chain.validator))
    result, _ = chain.run(bob, register(bob, link=chain.validator))
    assert code_of(result) == code_of(heat.ValidatorLinkedError)


# --- bad input: a clear error, nothing changes ---------------------------------------------------

def bad_messages(chain, people) -> dict:
    alice, bob, carol = people[:3]
    return {
        "zero price": (bob, bid(bob, price=0, chain=chain), market.InvalidPriceError),
        "negative price": (bob, bid(bob, price="-5", chain=chain), market.InvalidPriceError),
        "price over uint256": (bob, bid(bob, price=2**256, chain=chain), market.InvalidPriceError),
        "escrow over uint256": (bob, bid(bob, slots=2, price=2**256 - 1, chain=chain), market.InvalidPriceError),
        "more slots than exist": (bob, bid(bob, slots=5, chain=chain), market.SlotsExceedCapacityError),
        "process with more slots than exist": (bob, start(bob, slots=5, escrow=10**6), market.SlotsExceedCapacityError),
        "zero slots": (bob, bid(bob, slots=0, chain=chain), market.InvalidSlotsError),
        "unknown work": (bob, bid(bob, work="mining", chain=chain), market.UnknownWorkError),
        "unknown model": (bob, bid(bob, work="inference/gpt", task="t", chain=chain), market.UnknownWorkError),
        "inference without task": (bob, bid(bob, work="inference/digits", chain=chain), market.TaskRefError),
        "expired already": (bob, bid(bob, expiry=1, chain=chain), market.InvalidExpiryError),
        "cancel someone else's order": (bob, tx_pb2.MsgCancelOrder(owner=bob.bech32, order_id=1), market.NotOrderOwnerError),
        "cancel a missing order": (bob, tx_pb2.MsgCancelOrder(owner=bob.bech32, order_id=99), market.OrderNotFoundError),
        "heat from a non-provider": (bob, report(bob, 40_000), heat.NotServingError),
        "too hot to be true": (alice, report(alice, 151_000), heat.HeatReadingError),
        "below absolute cold": (alice, report(alice, -300_000), heat.HeatReadingError),
        "absurd power": (alice, report(alice, 40_000, power=10**12), heat.HeatReadingError),
        "process without escrow": (bob, start(bob, escrow=0), process.ProcessEscrowError),
        "stake below minimum": (bob, register(bob, stake=999), market.InsufficientStakeError),
        "second registration": (alice, register(alice), market.ProviderExistsError),
        "bad zone": (bob, register(bob, zone="no spaces"), market.InvalidZoneError),
        "provider offering unknown model": (bob, register(bob, models=("gpt",)), market.UnknownWorkError),
        "write to someone else's process": (bob, tx_pb2.MsgProcessWrite(owner=bob.bech32, process_id=1, key=b"k", value=b"v"),
                                            process.NotProcessOwnerError),
        "oversized memory value": (alice, tx_pb2.MsgProcessWrite(owner=alice.bech32, process_id=1, key=b"k", value=b"v" * 4097),
                                   process.MemoryLimitError),
        "oversized memory key": (alice, tx_pb2.MsgProcessWrite(owner=alice.bech32, process_id=1, key=b"k" * 65, value=b"v"),
                                 process.InvalidMemoryKeyError),
        "delete a missing memory key": (alice, tx_pb2.MsgProcessDelete(owner=alice.bech32, process_id=1, key=b"nope"),
                                        process.MemoryKeyNotFoundError),
        "zero top-up": (alice, tx_pb2.MsgTopUp(owner=alice.bech32, process_id=1, amount="0"), process.InvalidAmountError),
        "cancel a process's order": (alice, tx_pb2.MsgCancelOrder(owner=alice.bech32, order_id=2), market.ProcessOrderError),
        "task already in the book": (bob, bid(bob, work="inference/digits", task="dup", chain=chain), market.DuplicateTaskError),
        "two slots for one task": (bob, bid(bob, work="inference/digits", task="new", slots=2, chain=chain),
                                   market.InvalidSlotsError),
        "unregister twice": (carol, tx_pb2.MsgUnregisterProvider(provider=carol.bech32), market.ProviderUnbondingError),
    }


BAD = ["zero price", "negative price", "price over uint256", "escrow over uint256", "more slots than exist",
       "process with more slots than exist", "zero slots", "unknown work", "unknown model", "inference without task",
       "expired already", "cancel someone else's order", "cancel a missing order", "heat from a non-provider",
       "too hot to be true", "below absolute cold", "absurd power", "process without escrow", "stake below minimum",
       "second registration", "bad zone", "provider offering unknown model", "write to someone else's process",
       "oversized memory value", "oversized memory key", "delete a missing memory key", "zero top-up",
       "cancel a process's order", "task already in the book", "two slots for one task", "unregister twice"]


@pytest.mark.parametrize("name", BAD)
def test_bad_input_is_rejected_and_changes_nothing(chain, people, name):
    alice, carol = people[0], people[2]
    chain.ok(alice, register(alice, slots=4), bid(alice, price=10, chain=chain), start(alice, max_rent=1, escrow=10**6),
             bid(alice, work="inference/digits", task="dup", price=10, chain=chain))
    chain.ok(carol, register(carol, models=(), slots=1, ask=500), tx_pb2.MsgUnregisterProvider(provider=carol.bech32))
    account, message, error = bad_messages(chain, people)[name]
    before = chain.snapshot()
    result, _ = chain.run(account, message)
    assert code_of(result) == code_of(error), result.log
    assert result.log
    assert chain.snapshot() == before


def test_bad_market_genesis_is_a_clear_error(tmp_path, people):
    for index, (section, error) in enumerate((
        ({"params": {"protocol_fee_bps": "20000"}}, market.InvalidParams),
        ({"params": {"warm_millicelsius": "1"}}, GenesisError),
        ({"orders": [{"id": "1", "owner": people[0].bech32, "work": "process", "slots": "1",
                      "remaining": "1", "max_price": "5", "escrow": "5"}]}, market.AccountingMismatch),
        ({"params": "x"}, GenesisError),
    )):
        with pytest.raises(GenesisError) as raised:
            Chain(tmp_path / str(index), people, market_genesis=section)
        assert isinstance(raised.value.__cause__, error)


# --- genesis and queries --------------------------------------------------------------------------

def test_export_then_import_gives_the_same_market(tmp_path, people):
    first = Chain(tmp_path / "first", people)
    alice, bob, carol = people[:3]
    first.ok(alice, register(alice, slots=2, ask=10, link=first.validator))
    first.ok(carol, register(carol, slots=2, ask=20, zone="z1"))
    first.ok(alice, report(alice, 50_000))
    first.ok(bob, bid(bob, work="inference/digits", task="r/0", price=100, chain=first),
             bid(bob, slots=3, price=5, chain=first), start(bob, escrow=1000))
    first.ok(bob, tx_pb2.MsgProcessWrite(owner=bob.bech32, process_id=1, key=b"k", value=b"\x00\xff"))
    first.ok(alice, tx_pb2.MsgUnregisterProvider(provider=alice.bech32))
    exported = first.app.export_genesis()
    genesis = {key: exported[key] for key in ("auth", "bank", "heat", "market", "process")}
    second = App(str(tmp_path / "second"))
    second.init_chain(abci.RequestInitChain(chain_id=CHAIN_ID, initial_height=1, app_state_bytes=json.dumps(genesis).encode()))
    imported = second.genesis  # the genesis state, before any block runs
    for module in (heat, market, process):
        assert module.export_genesis(State(imported, GasMeter(), GasParams(), module.STORE)) == exported[module.STORE]
    assert compute_market_accounting(imported) == compute_market_accounting(first.app.store)
    assert market.get_capacity(imported, "process") == 2
    first.app.close()
    second.close()


def test_queries(chain, people):
    alice, bob, carol = people[:3]
    chain.ok(alice, register(alice, ask=10))
    chain.ok(carol, register(carol, ask=10, zone="z1"))
    chain.ok(bob, bid(bob, price=3, chain=chain), bid(bob, price=7, chain=chain), bid(bob, price=7, chain=chain))
    page = chain.query("/maxwell.market.v1.Query/Providers",
                       query_pb2.QueryProvidersRequest(pagination={"limit": 1}))
    assert len(page.providers) == 1 and page.pagination.next_key
    rest = chain.query("/maxwell.market.v1.Query/Providers",
                       query_pb2.QueryProvidersRequest(pagination={"key": page.pagination.next_key}))
    assert {p.provider.address for p in [*page.providers, *rest.providers]} == {alice.bech32, carol.bech32}
    book = chain.query("/maxwell.market.v1.Query/Book", query_pb2.QueryBookRequest(work="process"))
    assert [(o.max_price, o.id) for o in book.orders] == [("7", 2), ("7", 3), ("3", 1)]
    params = chain.query("/maxwell.market.v1.Query/Params", query_pb2.QueryParamsRequest()).params
    assert params.task_deadline_blocks == 3 and list(params.models) == ["digits"]
    missing = chain.app.query(abci.RequestQuery(path="/maxwell.market.v1.Query/Clearing",
                                                data=query_pb2.QueryClearingRequest(work="process").SerializeToString()))
    assert code_of(missing) == code_of(NotFoundError)
    assert "not cleared" in missing.log
    unknown = chain.app.query(abci.RequestQuery(path="/maxwell.market.v1.Query/Book",
                                                data=query_pb2.QueryBookRequest(work="mining").SerializeToString()))
    assert code_of(unknown) == code_of(market.UnknownWorkError)


# --- the pure parts -------------------------------------------------------------------------------

def test_compute_clearing_matches_units_and_prices_uniformly():
    a, b = b"a" * 20, b"b" * 20
    price, fills = market.compute_clearing(iter([(50, 1, 3), (40, 2, 1), (10, 3, 5)]), [(20, a), (30, b)], {a: 2, b: 5})
    assert price == 30 and [(f.order_id, f.provider, f.slots) for f in fills] == [(1, a, 2), (1, b, 1), (2, b, 1)]
    assert market.compute_clearing(iter([(10, 1, 1)]), [(20, a)], {a: 1}) == (0, [])
    assert market.compute_clearing(iter([(25, 1, 4)]), [(20, a)], {a: 3})[0] == 25  # its own unsold unit
    assert market.compute_clearing(iter([(25, 1, 1)]), [(20, a)], {a: 0}) == (0, [])


def test_heat_curves():
    params = heat.DEFAULT_PARAMS
    assert heat.compute_effective_ask(100, 25_000, 25_000, params) == 100
    assert heat.compute_effective_ask(100, 80_000, 80_000, params) == 200
    assert heat.compute_effective_ask(100, 89_000, 89_000, params) == 2000
    assert heat.compute_effective_ask(100, 90_000, 30_000, params) is None
    assert heat.compute_effective_ask(100, 40_000, 40_000, params) == 100  # as cool as its zone: no discount
    assert heat.compute_effective_ask(100, 40_000, 60_000, params) == 80
    assert heat.compute_effective_ask(100, 40_000, 75_000, params) == 70  # 35 K cooler, capped at 30 %
    assert heat.compute_effective_ask(100, 60_000, 75_000, params) == 85
    assert heat.compute_decayed(85_000, 10, 20, params) == 85_000
    assert heat.compute_decayed(85_000, 10, 21, params) == 55_000
    assert heat.compute_decayed(5_000, 10, 31, params) == 20_000
    assert heat.compute_moving_average(40_000, 80_000, 5000) == 60_000
    assert heat.compute_moving_average(40_000, 80_000, 5000, divisor=10) == 42_000
