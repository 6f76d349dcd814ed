"""The attacks a hostile review found on the market and the proofs, replayed through real txs against
the real App (real EZKL verifier, real LevelDB): each changes nothing but the attacker's fee."""

import pytest

from chain import inference, market
from chain.genesis import encode_json
from chain.proto.maxwell.inference.v1 import inference_pb2, query_pb2
from chain.proto.maxwell.market.v1 import tx_pb2
from chain.proto.tendermint.abci import types_pb2 as abci
from tests.helpers import (
    DIGITS,
    INFERENCE_GAS as GAS,
    TEST_PARAMS,
    InferenceChain,
    code_of,
    events,
    make_account,
    register,
    request,
    request_msg,
    submit_msg,
)
from zk.models import compute_model
from zk.verify import ModelVerifier

FEE = -(-GAS // 40)


@pytest.fixture(scope="module")
def digits_model():
    return compute_model(DIGITS)


@pytest.fixture
def people():
    return [make_account(name, number) for number, name in enumerate(["alice", "bob", "mallory", "carol"])]


def build(tmp_path, people, digits_model, **params) -> InferenceChain:
    return InferenceChain(tmp_path / "data", people, {
        "params": {"authority": people[0].bech32, **params}, "models": [encode_json(digits_model)]})


@pytest.fixture
def chain(tmp_path, people, digits_model):
    built = build(tmp_path, people, digits_model)
    yield built
    built.app.close()


def bid(account, task: str, price=100, chain=None) -> tx_pb2.MsgBid:
    return tx_pb2.MsgBid(owner=account.bech32, work="inference/digits", slots=1, max_price=str(price),
                         expiry_height=chain.height + 20, task_ref=task)


def get_request(chain, request_id: int) -> inference_pb2.Request:
    return chain.iquery("Request", query_pb2.QueryRequestRequest(request_id=request_id)).request


# --- 1: anyone could bid on an inference task --------------------------------------------------------

def test_a_fake_task_cannot_get_a_provider_slashed_to_the_bidder(chain, people):
    alice, bob, mallory = people[:3]
    chain.ok(bob, register(bob, slots=2, ask=100, stake=1000), gas=GAS)
    before = chain.balance(mallory)
    result, _ = chain.run(mallory, bid(mallory, "999/0", chain=chain), gas=GAS)
    assert code_of(result) == code_of(market.InferenceBidError), result.log
    for _ in range(int(TEST_PARAMS["task_deadline_blocks"]) + 2):
        response = chain.block([])
        assert events(response, "task_missed") == []
    assert chain.balance(mallory) == before  # refused before the fee: like the SDK's ValidateBasic
    assert market.get_provider(chain.app.store, bob.address).stake == "1000"


def test_squatting_the_next_request_id_is_refused_and_requests_go_on(chain, people, samples):
    alice, bob, mallory = people[:3]
    chain.ok(bob, register(bob, slots=2, ask=100), gas=GAS)
    result, _ = chain.run(mallory, bid(mallory, "1/0", chain=chain), gas=GAS)
    assert code_of(result) == code_of(market.InferenceBidError)
    request_id = request(chain, alice, samples["inputs"][0])
    assert request_id == 1 and get_request(chain, 1).status == inference_pb2.STATUS_PENDING


def test_a_bid_on_the_next_layer_cannot_make_a_request_fail(chain, people, samples, digits_proofs):
    alice, bob, mallory = people[:3]
    chain.ok(bob, register(bob, slots=2, ask=100), gas=GAS)
    request_id = request(chain, alice, samples["inputs"][0])
    result, _ = chain.run(mallory, bid(mallory, f"{request_id}/1", chain=chain), gas=GAS)
    assert code_of(result) == code_of(market.InferenceBidError)
    chain.ok(bob, submit_msg(bob, request_id, 0, digits_proofs[0][0]), gas=GAS)
    pending = get_request(chain, request_id)
    assert (pending.status, pending.proven_layers) == (inference_pb2.STATUS_PENDING, 1)
    assert market.get_assignment(chain.app.store, f"{request_id}/1") is not None


# --- 2: proof verification per block is bounded ------------------------------------------------------

def test_every_proof_that_reaches_the_verifier_spends_the_block_budget(tmp_path, people, digits_model, samples,
                                                                       digits_proofs):
    alice, bob = people[:2]
    chain = build(tmp_path, people, digits_model, max_proofs_per_block="1")
    try:
        chain.ok(bob, register(bob, slots=8, ask=100), gas=GAS)
        ids = [request(chain, alice, samples["inputs"][i]) for i in range(3)]
        good = digits_proofs[0][0]
        tampered = submit_msg(bob, ids[0], 0, good)
        tampered.proof = good.proof[:-40] + bytes(40)  # same instances, a broken transcript: reaches EZKL
        calls = chain.app.verifier.verifier.ezkl_calls
        valid = submit_msg(bob, ids[1], 0, digits_proofs[1][0])
        txs = [chain.sign(bob, tampered, gas=GAS), chain.sign(bob, valid, gas=GAS)]
        assert chain.app.prepare_proposal(abci.RequestPrepareProposal(txs=txs, max_tx_bytes=1 << 22)).txs == txs[:1]
        checked = chain.app.process_proposal(abci.RequestProcessProposal(txs=txs, height=chain.height + 1))
        assert checked.status == abci.ResponseProcessProposal.REJECT  # two proofs in a block of budget 1
        response = chain.block(txs)  # a proposer that skipped both checks: validators still verify one
        assert [code_of(r) for r in response.tx_results] == [code_of(inference.InvalidProofError),
                                                             code_of(inference.ProofBudgetExceededError)]
        assert chain.app.verifier.verifier.ezkl_calls == calls + 1
        layer0 = digits_model.layers[0]
        assert response.tx_results[0].gas_used > inference.compute_verify_gas(inference.get_params(chain.app.store), layer0)
        chain.ok(bob, valid, gas=GAS)  # the next block has a budget again
    finally:
        chain.app.close()


def test_a_verifier_that_cannot_decide_in_a_block_stops_the_node(tmp_path, people, digits_model, samples,
                                                                  digits_proofs):
    alice, bob = people[:2]
    chain = build(tmp_path, people, digits_model)
    try:
        chain.ok(bob, register(bob, slots=2, ask=100), gas=GAS)
        request_id = request(chain, alice, samples["inputs"][0])
        chain.app.verifier.close()
        chain.app.verifier = ModelVerifier(str(tmp_path / "data"), timeout=1e-4)  # never in time
        tx = chain.sign(bob, submit_msg(bob, request_id, 0, digits_proofs[0][0]), gas=GAS)
        checked = chain.app.check_tx(abci.RequestCheckTx(tx=tx))
        assert code_of(checked) == code_of(inference.VerifierUnavailableError)  # the mempool only drops it
        with pytest.raises(inference.VerifierFault):
            chain.app.finalize_block(abci.RequestFinalizeBlock(txs=[tx], height=chain.height + 1))
    finally:
        chain.app.close()


# --- 3: requests that cannot complete ----------------------------------------------------------------

def test_a_reward_below_the_asks_of_every_layer_is_refused_with_the_numbers(chain, people, samples):
    alice, bob = people[:2]
    chain.ok(bob, register(bob, slots=2, ask=100), gas=GAS)
    before = chain.balance(alice)
    result, _ = chain.run(alice, request_msg(alice, samples["inputs"][0], reward=299, chain=chain), gas=GAS)
    assert code_of(result) == code_of(inference.UnservableRequestError)
    assert "99ujoule per layer" in result.log and "at least 300ujoule" in result.log, result.log
    assert chain.balance(alice) == before - FEE
    request(chain, alice, samples["inputs"][0], reward=300)


def test_an_expired_request_is_refunded_and_says_what_was_paid_and_why_it_ended(chain, people, samples,
                                                                                digits_proofs):
    alice, bob = people[:2]
    chain.ok(bob, register(bob, slots=2, ask=100), gas=GAS)
    before = chain.balance(alice)
    request_id = request(chain, alice, samples["inputs"][0], deadline=chain.height + 4)
    chain.ok(bob, submit_msg(bob, request_id, 0, digits_proofs[0][0]), gas=GAS)
    for _ in range(60):  # the request expires, then bob's unproven layer 1 misses its task deadline
        if chain.block([]) and chain.balance(market.ESCROW) == 0:
            break
    ended = get_request(chain, request_id)
    assert ended.status == inference_pb2.STATUS_EXPIRED and ended.paid == "100"
    assert ended.end_reason.startswith("expired at height") and "1 of 3 layers proven" in ended.end_reason
    layers = chain.iquery("Result", query_pb2.QueryResultRequest(request_id=request_id)).result.layers
    assert [(layer.prover, layer.price) for layer in layers] == [(bob.bech32, "100")]
    slashed = 1000 * int(TEST_PARAMS["slash_bps"]) // 10_000  # bob did not prove layer 1 in time (stake 1000)
    assert chain.balance(alice) == before - FEE - 100 + slashed
    assert chain.balance(inference.ESCROW) == 0 and chain.balance(market.ESCROW) == 0


def test_inputs_outside_the_circuits_range_are_refused_naming_the_range(chain, people, samples):
    alice, bob = people[:2]
    chain.ok(bob, register(bob, slots=2, ask=100), gas=GAS)
    message = request_msg(alice, samples["inputs"][0], chain=chain)
    message.input[3] = 2**40
    result, _ = chain.run(alice, message, gas=GAS)
    assert code_of(result) == code_of(inference.InvalidInputError)
    assert "input 3 is 1099511627776" in result.log and "(-134217728, 134217728)" in result.log, result.log
