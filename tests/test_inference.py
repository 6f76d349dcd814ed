"""Proof of inference through the ABCI app: real EZKL proofs of the digits circuits, real LevelDB, the
real market and an isolated verifier process.
"""

import json
import os

import pytest

from chain import inference, market
from chain.app import App
from chain.errors import NotFoundError, TxTooLargeError, UnauthorizedError
from chain.genesis import encode_json
from chain.proto.maxwell.inference.v1 import inference_pb2, query_pb2, tx_pb2
from chain.proto.maxwell.market.v1 import tx_pb2 as market_tx
from chain.proto.tendermint.abci import types_pb2 as abci
from tests.helpers import (
    CHAIN_ID,
    DIGITS,
    GENESIS_TIME,
    INFERENCE_GAS as GAS,
    REWARD,
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
from zk.instances import compute_dequantized, decode_proof, encode_proof
from zk.models import compute_model
from zk.verify import ModelVerifier


@pytest.fixture(scope="module")
def digits_model():
    return compute_model(DIGITS)


def compute_panic_model(digits: inference_pb2.Model, input_size: int) -> inference_pb2.Model:
    """The digits last layer with settings EZKL panics on (num_inner_cols = 0) as a one-layer model."""
    settings = json.loads(digits.layers[2].settings)
    settings["run_args"]["num_inner_cols"] = 0
    layer = inference_pb2.Layer()
    layer.CopyFrom(digits.layers[2])
    layer.settings = json.dumps(settings)
    return inference_pb2.Model(name="panic", layers=[layer], input_size=input_size)


# --- a chain to drive ---------------------------------------------------------------------------

@pytest.fixture
def accounts():
    return [make_account(name, number) for number, name in enumerate(["alice", "bob", "carol", "dave"])]


@pytest.fixture
def chain(tmp_path, accounts, digits_model, digits_proofs):
    built = InferenceChain(tmp_path / "data", accounts, {
        "params": {"authority": accounts[0].bech32},
        "models": [encode_json(digits_model), encode_json(compute_panic_model(digits_model, len(digits_proofs[0][1].outputs)))],
    })
    yield built
    built.app.close()


def fee(gas: int = GAS) -> int:
    return -(-gas // 40)


def start(chain, accounts, samples, sample=0, providers=((1, 100), (2, 200))) -> int:
    """Providers register, alice requests; returns the request id (layer 0 is assigned in that block)."""
    alice = accounts[0]
    for index, ask in providers:
        chain.ok(accounts[index], register(accounts[index], models=("digits",), slots=2, ask=ask, zone=f"z{index}"), gas=GAS)
    return request(chain, alice, samples["inputs"][sample])


# --- the whole flow ------------------------------------------------------------------------------

def test_layers_proven_by_different_workers_complete_and_pay(chain, accounts, samples, digits_proofs):
    alice, bob, carol, _ = accounts
    request_id = start(chain, accounts, samples)
    alice_after_request = chain.balance(alice)
    assert market.get_assignment(chain.app.store, "1/0").provider == bob.bech32
    assert chain.balance(inference.ESCROW) == 2000

    bob_before = chain.balance(bob)
    response = chain.block([chain.sign(bob, submit_msg(bob, request_id, 0, digits_proofs[0][0]), gas=GAS),
                            chain.sign(bob, market_tx.MsgUpdateProvider(
                                provider=bob.bech32, models=["digits"], slots_per_block=2, ask_price="5000", zone="z1"),
                                gas=GAS)])
    assert [r.code for r in response.tx_results] == [0, 0], [r.log for r in response.tx_results]
    verified, = events(response, "inference_verified")
    assert verified["layer"] == "0" and verified["prover"] == bob.bech32
    assert int(verified["input_hash"], 16) == digits_proofs[0][0].input_hash
    assert int(verified["output_hash"], 16) == digits_proofs[0][0].output_hash
    assert [t["provider"] for t in events(response, "task_assigned")] == [carol.bech32]
    price = int(events(response, "task_proven")[0]["price"])
    assert chain.balance(bob) == bob_before - 2 * fee() + price - price * 200 // 10_000
    layer0 = inference.get_model(chain.app.store, "digits").layers[0]
    assert response.tx_results[0].gas_used > inference.compute_verify_gas(inference.get_params(chain.app.store), layer0)

    chain.ok(carol, submit_msg(carol, request_id, 1, digits_proofs[0][1]), gas=GAS)
    response = chain.ok(carol, submit_msg(carol, request_id, 2, digits_proofs[0][2]), gas=GAS)
    completed, = events(response, "inference_completed")
    outputs = list(digits_proofs[0][2].outputs)
    assert int(completed["predicted_class"]) == outputs.index(max(outputs)) == samples["labels"][0]

    result = chain.iquery("Result", query_pb2.QueryResultRequest(request_id=request_id)).result
    assert result.status == inference_pb2.STATUS_COMPLETE and list(result.outputs) == outputs
    assert [layer.prover for layer in result.layers] == [bob.bech32, carol.bech32, carol.bech32]
    assert chain.balance(inference.ESCROW) == 0 and chain.balance(market.ESCROW) == 0
    assert chain.balance(alice) == alice_after_request + REWARD - (100 + 200 + 200)


# --- bad input: each fails, changes nothing but the fee, and the node goes on ----------------------

def flip(proof: bytes, offset: int) -> bytes:
    return proof[:offset] + bytes([proof[offset] ^ 0x01]) + proof[offset + 1:]


def with_instance(proof: bytes, index: int, value: int) -> bytes:
    parts = decode_proof(proof)
    instances = list(parts.instances)
    instances[index] = value
    return encode_proof(instances, parts.transcript)


def test_bad_submissions_change_nothing_and_the_node_keeps_running(chain, accounts, samples, digits_proofs, digits_model):
    alice, bob, _, dave = accounts
    request_id = start(chain, accounts, samples, providers=((1, 100),))
    twin = request(chain, alice, samples["inputs"][0])  # same input: a replay target
    chain.ok(dave, register(dave, models=("panic",), slots=1, ask=1, zone="zp"), gas=GAS)
    panic_id = request(chain, alice, compute_dequantized(digits_proofs[0][1].outputs, 13), model="panic", reward=10)
    good, other, whole = digits_proofs[0][0], digits_proofs[1][0], digits_proofs["whole"]
    transcript_start = 3 + 2 * 32
    tampered_outputs = list(good.outputs)
    tampered_outputs[0] += 1

    def sub(proof=good.proof, outputs=None, layer=0, rid=request_id, prover=bob):
        return prover, tx_pb2.MsgSubmitInference(prover=prover.bech32, request_id=rid, layer=layer, proof=proof,
                                                 outputs=list(good.outputs if outputs is None else outputs))

    cases = {
        "garbage": (sub(os.urandom(4000)), inference.MalformedProofError),
        "truncated": (sub(good.proof[:-200]), inference.InvalidProofError),
        "bit-flipped": (sub(flip(good.proof, transcript_start + 700)), inference.InvalidProofError),
        "oversized": (sub(good.proof + bytes(inference.MAX_PROOF_BYTES)), inference.MalformedProofError),
        "larger than a tx": (sub(bytes(70_000)), TxTooLargeError),
        "valid proof of another model": (sub(whole.proof, whole.outputs), inference.MalformedProofError),
        "valid proof of another input": (sub(other.proof, other.outputs), inference.InputHashMismatchError),
        "tampered output instance": (sub(with_instance(good.proof, 1, other.output_hash), other.outputs),
                                     inference.InvalidProofError),
        "tampered input instance": (sub(with_instance(good.proof, 0, other.input_hash)),
                                    inference.InputHashMismatchError),
        "outputs not hashing to the instance": (sub(outputs=tampered_outputs), inference.OutputMismatchError),
        "layer 2 proof as layer 0": (sub(digits_proofs[0][2].proof, digits_proofs[0][2].outputs), inference.MalformedProofError),
        "layer not yet open": (sub(digits_proofs[0][1].proof, digits_proofs[0][1].outputs, layer=1), inference.LayerNotReadyError),
        "not the assigned provider": (sub(prover=dave), inference.NotAssignedError),
        "unknown request": (sub(rid=999), inference.RequestNotFoundError),
        "panic-triggering settings": (sub(digits_proofs[0][2].proof, digits_proofs[0][2].outputs, rid=panic_id, prover=dave),
                                      inference.InvalidProofError),
        "unregistered model": ((alice, request_msg(alice, samples["inputs"][0], model="gpt", chain=chain)),
                               inference.UnregisteredModelError),
        "wrong input size": ((alice, tx_pb2.MsgRequestInference(requester=alice.bech32, model="digits", input=[1, 2],
                                                                reward="3000", deadline_height=chain.height + 9)),
                             inference.InvalidInputError),
    }
    for name, ((signer, message), error) in cases.items():
        before = chain.snapshot()
        payer = accounts.index(signer)
        check = chain.app.check_tx(abci.RequestCheckTx(tx=chain.sign(signer, message, gas=GAS)))
        signer.sequence -= 1
        assert code_of(check) == code_of(error), (name, check.log)
        result, _ = chain.run(signer, message, gas=GAS)
        assert code_of(result) == code_of(error), (name, result.log)
        after = chain.snapshot()
        balances = list(before[5])
        balances[payer] -= 0 if name in ("oversized", "larger than a tx") else fee()  # refused before the ante
        assert [a == b for a, b in zip(after[:5], before[:5])] == [True] * 5, (name, before[2:5], after[2:5])
        assert list(after[5]) == balances, (name, before[5], after[5])

    chain.ok(bob, submit_msg(bob, request_id, 0, good), gas=GAS)
    prover, replay = sub(rid=twin)
    result, _ = chain.run(prover, replay, gas=GAS)
    assert code_of(result) == code_of(inference.ProofReplayedError), result.log
    result, _ = chain.run(bob, submit_msg(bob, request_id, 0, good), gas=GAS)
    assert code_of(result) == code_of(inference.LayerAlreadyProvenError), result.log


def test_late_submission_is_refused_and_expiry_refunds_the_requester(accounts, samples, digits_proofs, digits_model, tmp_path):
    alice, bob, *_ = accounts
    chain = InferenceChain(tmp_path / "data", accounts, {
        "params": {"authority": alice.bech32}, "models": [encode_json(digits_model)]}, task_deadline_blocks=5)
    for account, ask in ((bob, 100),):
        chain.ok(account, register(account, models=("digits",), slots=1, ask=ask, zone="z1"), gas=GAS)
    before = chain.balance(alice)
    request_id = request(chain, alice, samples["inputs"][0], deadline=chain.height + 3)
    assert chain.balance(alice) == before - fee() - REWARD
    while chain.height < chain.iquery("Request", query_pb2.QueryRequestRequest(request_id=request_id)).request.deadline_height:
        chain.block([])
    status = chain.iquery("Request", query_pb2.QueryRequestRequest(request_id=request_id)).request.status
    assert status == inference_pb2.STATUS_EXPIRED
    result, _ = chain.run(bob, submit_msg(bob, request_id, 0, digits_proofs[0][0]), gas=GAS)
    assert code_of(result) == code_of(inference.DeadlinePassedError), result.log
    for _ in range(6):  # the market slashes bob's missed task and refunds its escrow
        chain.block([])
    assert chain.balance(inference.ESCROW) == 0 and chain.balance(market.ESCROW) == 0
    slashed = 1000 * int(TEST_PARAMS["slash_bps"]) // 10_000
    assert chain.balance(alice) == before - fee() + slashed


def test_only_the_authority_registers_models_and_queries_list_them(chain, accounts, digits_model):
    alice, bob, *_ = accounts
    whole = inference_pb2.Model()
    whole.CopyFrom(digits_model)
    whole.name = "whole"
    result, _ = chain.run(bob, tx_pb2.MsgRegisterModel(authority=bob.bech32, model=whole), gas=3_000_000)
    assert code_of(result) == code_of(UnauthorizedError)
    result, _ = chain.run(alice, tx_pb2.MsgRegisterModel(authority=alice.bech32, model=digits_model), gas=3_000_000)
    assert code_of(result) == code_of(inference.ModelExistsError)
    broken = inference_pb2.Model()
    broken.CopyFrom(whole)
    broken.layers[0].settings = "{}"
    result, _ = chain.run(alice, tx_pb2.MsgRegisterModel(authority=alice.bech32, model=broken), gas=3_000_000)
    assert code_of(result) == code_of(inference.InvalidModelError)
    chain.ok(alice, tx_pb2.MsgRegisterModel(authority=alice.bech32, model=whole), gas=3_000_000)
    names = [m.name for m in chain.iquery("Models", query_pb2.QueryModelsRequest()).models]
    assert sorted(names) == ["digits", "panic", "whole"]
    assert chain.iquery("Model", query_pb2.QueryModelRequest(name="whole")).model == whole
    missing = chain.app.query(abci.RequestQuery(path="/maxwell.inference.v1.Query/Model",
                                                data=query_pb2.QueryModelRequest(name="gpt").SerializeToString()))
    assert code_of(missing) == code_of(NotFoundError)


def test_proof_budget_bounds_a_block_and_genesis_round_trips(accounts, samples, digits_proofs, digits_model, tmp_path):
    alice, bob, *_ = accounts
    chain = InferenceChain(tmp_path / "data", accounts, {
        "params": {"authority": alice.bech32, "max_proofs_per_block": "1"},
        "models": [encode_json(digits_model)],
    })
    try:
        first = start(chain, accounts, samples, providers=((1, 100),))
        second = request(chain, alice, samples["inputs"][1])
        response = chain.block([chain.sign(bob, submit_msg(bob, first, 0, digits_proofs[0][0]), gas=GAS),
                                chain.sign(bob, submit_msg(bob, second, 0, digits_proofs[1][0]), gas=GAS)])
        assert [code_of(r) for r in response.tx_results] == [(0, ""), code_of(inference.ProofBudgetExceededError)]
        chain.ok(bob, submit_msg(bob, second, 0, digits_proofs[1][0]), gas=GAS)
        exported = chain.app.export_genesis()
    finally:
        chain.app.close()
    assert exported["inference"]["used_proofs"] and len(exported["inference"]["requests"]) == 2
    copy = App(str(tmp_path / "copy"), verifier=ModelVerifier(str(tmp_path / "copy")))
    try:
        copy.init_chain(abci.RequestInitChain(chain_id=CHAIN_ID, initial_height=1, time=GENESIS_TIME,
                                              app_state_bytes=json.dumps(exported).encode()))
        copy.finalize_block(abci.RequestFinalizeBlock(height=1, time=GENESIS_TIME))
        copy.commit()
        assert copy.export_genesis()["inference"] == exported["inference"]
    finally:
        copy.close()
