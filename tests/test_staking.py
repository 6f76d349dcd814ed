"""Staking on the real App: gen_txs elect the genesis set, txs bond, unbond and redelegate, end_block
returns the set's changes; every block checks the supply and the pools against the records."""

import json

import pytest

from chain import bank, heat
from chain.app import App
from chain.errors import GenesisError
from chain.proto.cosmos.bank.v1beta1 import tx_pb2 as bank_tx
from chain.proto.cosmos.base.abci.v1beta1 import abci_pb2 as sdk_abci
from chain.proto.cosmos.crypto.secp256k1 import keys_pb2 as secp256k1_keys
from chain.proto.cosmos.staking.v1beta1 import query_pb2, staking_pb2, tx_pb2
from chain.proto.tendermint.abci import types_pb2 as abci
from chain.proto.tendermint.crypto import keys_pb2 as crypto_keys
from chain.proto.tendermint.types import validator_pb2
from chain.sdktypes import compute_nanoseconds, compute_rfc3339
from chain.tx import pack_any
from chain.validators import BONDED_POOL, NOT_BONDED_POOL, is_managing_validator_set
from tests.helpers import compute_consensus_public_key as key_of
from tests.helpers import (
    CHAIN_ID, DENOM, GAS, GENESIS_TIME, INITIAL_BALANCE, JOULE, STAKING_KEYS, StakingChain, compute_consensus,
    compute_operator, compute_update_powers, dec, events, make_app_state, make_create_validator, make_gen_tx,
    start_staking_chain, supply,
)

FEE = -(-GAS // 40)
DAY = 24 * 3600
UNBONDING_SECONDS = 21 * DAY
KEY_A, KEY_B, KEY_C, KEY_D = STAKING_KEYS
STAKING_GENESIS = {"params": {"min_commission_rate": "0.01"}}
QUERY = "/cosmos.staking.v1beta1.Query/"


@pytest.fixture
def chain(tmp_path, people):
    chain = start_staking_chain(tmp_path / "data", people, staking_genesis=STAKING_GENESIS)
    yield chain
    chain.app.close()


def coin(amount: int, denom: str = DENOM) -> dict:
    return {"denom": denom, "amount": str(amount)}


def delegate(account, validator, amount: int) -> tx_pb2.MsgDelegate:
    return tx_pb2.MsgDelegate(delegator_address=account.bech32, validator_address=compute_operator(validator),
                              amount=coin(amount))


def undelegate(account, validator, amount: int) -> tx_pb2.MsgUndelegate:
    return tx_pb2.MsgUndelegate(delegator_address=account.bech32, validator_address=compute_operator(validator),
                                amount=coin(amount))


def redelegate(account, source, destination, amount: int) -> tx_pb2.MsgBeginRedelegate:
    return tx_pb2.MsgBeginRedelegate(delegator_address=account.bech32, validator_src_address=compute_operator(source),
                                     validator_dst_address=compute_operator(destination), amount=coin(amount))


def edit(account, **fields) -> tx_pb2.MsgEditValidator:
    description = {name: "[do-not-modify]" for name in ("moniker", "identity", "website", "security_contact", "details")}
    description.update(fields.pop("description", {}))
    return tx_pb2.MsgEditValidator(validator_address=compute_operator(account), description=description, **fields)


def msg_response(result, response_class):
    return response_class.FromString(sdk_abci.TxMsgData.FromString(result.data).msg_responses[0].value)


# --- genesis -------------------------------------------------------------------------------------

def test_gen_txs_elect_the_genesis_validator_set(chain, people):
    alice, bob = people[:2]
    assert compute_update_powers(chain.genesis) == {key_of(KEY_A): 10, key_of(KEY_B): 5}
    assert is_managing_validator_set(chain.app.store)
    bonded = chain.query(QUERY + "Validators", query_pb2.QueryValidatorsRequest(status="BOND_STATUS_BONDED")).validators
    assert sorted((v.operator_address, v.tokens) for v in bonded) == sorted(
        [(compute_operator(alice), str(10 * JOULE)), (compute_operator(bob), str(5 * JOULE))])
    validator = chain.validator(alice)
    assert validator.status == staking_pb2.BOND_STATUS_BONDED and not validator.jailed
    assert validator.delegator_shares == dec("10000000") == "10000000" + "0" * 18
    assert validator.commission.commission_rates.rate == dec("0.1") == "100000000000000000"
    assert validator.consensus_pubkey.type_url == "/cosmos.crypto.ed25519.PubKey"
    assert validator.description.moniker == "alice"
    assert chain.balance(alice) == INITIAL_BALANCE - 10 * JOULE - FEE
    assert chain.balance(BONDED_POOL) == 15 * JOULE and chain.balance(NOT_BONDED_POOL) == 0
    assert supply(chain.app) == 4 * INITIAL_BALANCE
    pool = chain.query(QUERY + "Pool", query_pb2.QueryPoolRequest()).pool
    assert (pool.bonded_tokens, pool.not_bonded_tokens) == (str(15 * JOULE), "0")
    assert chain.app.validator_keys == {compute_consensus(KEY_A): key_of(KEY_A), compute_consensus(KEY_B): key_of(KEY_B)}
    assert not chain.block().validator_updates


def test_without_validators_cometbft_genesis_validators_stand_and_no_update_is_sent(tmp_path, people):
    carol = people[2]
    cometbft = abci.ValidatorUpdate(pub_key=crypto_keys.PublicKey(ed25519=key_of(KEY_D)), power=10)
    chain = StakingChain(tmp_path / "data", people, [], cometbft_validators=[cometbft])
    assert not chain.genesis.validators and not is_managing_validator_set(chain.app.store)
    assert chain.app.validator_keys == {compute_consensus(KEY_D): key_of(KEY_D)}
    response = chain.ok(carol, make_create_validator(carol, KEY_C, 3 * JOULE))
    assert not response.validator_updates and not chain.block().validator_updates
    assert chain.validator(carol).status == staking_pb2.BOND_STATUS_UNBONDED
    assert chain.balance(NOT_BONDED_POOL) == 3 * JOULE and chain.balance(BONDED_POOL) == 0
    assert chain.query_error(QUERY + "HistoricalInfo", query_pb2.QueryHistoricalInfoRequest(height=2)) == (38, "sdk")
    assert chain.app.validator_keys == {compute_consensus(KEY_D): key_of(KEY_D)}
    chain.app.close()


def start(tmp_path, people, gen_txs: list, **sections) -> App:
    app = App(str(tmp_path / "bad"))
    state = {**make_app_state(people), "genutil": {"gen_txs": gen_txs}, **sections}
    app.init_chain(abci.RequestInitChain(time=GENESIS_TIME, chain_id=CHAIN_ID, initial_height=1,
                                         app_state_bytes=json.dumps(state).encode()))
    return app


@pytest.mark.parametrize("make, message", [
    (lambda alice: {"body": 5}, "gen_txs[0]"),
    (lambda alice: make_gen_tx(alice, KEY_A, 10 * JOULE, bank_tx.MsgSend(
        from_address=alice.bech32, to_address=alice.bech32, amount=[coin(1)])), "must carry one"),
    (lambda alice: make_gen_tx(alice, KEY_A, JOULE // 2), "no validator has the power"),
    (lambda alice: make_gen_tx(alice, KEY_A, 10 * JOULE, rate="0.3"), "code 11 (staking)"),
    (lambda alice: {**make_gen_tx(alice, KEY_A, 10 * JOULE), "signatures": ["AAAA"]}, "code 4 (sdk)"),
])
def test_a_bad_gen_tx_fails_genesis_clearly(tmp_path, people, make, message):
    with pytest.raises(GenesisError, match="invalid genesis") as raised:
        start(tmp_path, people, [make(people[0])])
    assert message in str(raised.value)


def test_gen_txs_run_after_every_module_and_pay_their_fees(tmp_path, people):
    alice = people[0]
    app = start(tmp_path, people, [make_gen_tx(alice, KEY_A, 10 * JOULE)])
    assert bank.get_balance(app.genesis, alice.address, DENOM) == INITIAL_BALANCE - 10 * JOULE - FEE
    assert bank.get_balance(app.genesis, bank.FEE_COLLECTOR, DENOM) == FEE
    app.close()


# --- the set ---------------------------------------------------------------------------------------

def test_a_created_validator_joins_the_set(chain, people):
    carol = people[2]
    response = chain.ok(carol, make_create_validator(carol, KEY_C, 3 * JOULE))
    assert compute_update_powers(response) == {key_of(KEY_C): 3}
    assert events(response, "create_validator") == [{"validator": compute_operator(carol), "amount": "3000000ujoule"}]
    assert chain.validator(carol).status == staking_pb2.BOND_STATUS_BONDED
    assert chain.app.validator_keys[compute_consensus(KEY_C)] == key_of(KEY_C)
    page = chain.query(QUERY + "Validators", query_pb2.QueryValidatorsRequest(
        status="BOND_STATUS_BONDED", pagination={"limit": 2}))
    assert len(page.validators) == 2 and page.pagination.next_key
    rest = chain.query(QUERY + "Validators", query_pb2.QueryValidatorsRequest(
        status="BOND_STATUS_BONDED", pagination={"key": page.pagination.next_key}))
    assert len(rest.validators) == 1 and not rest.pagination.next_key
    assert {v.operator_address for v in [*page.validators, *rest.validators]} == {
        compute_operator(account) for account in people[:3]}
    assert not chain.query(QUERY + "Validators", query_pb2.QueryValidatorsRequest(status="BOND_STATUS_UNBONDED")).validators
    assert chain.query_error(QUERY + "Validators", query_pb2.QueryValidatorsRequest(status="bonded")) == (18, "sdk")
    assert chain.query_error(QUERY + "Validator", query_pb2.QueryValidatorRequest(
        validator_addr=compute_operator(people[3]))) == (38, "sdk")


def test_delegations_unbond_through_the_queue_in_block_time(chain, people):
    alice, dave = people[0], people[3]
    response = chain.ok(dave, delegate(dave, alice, 2 * JOULE))
    assert compute_update_powers(response) == {key_of(KEY_A): 12}
    assert events(response, "delegate") == [{"validator": compute_operator(alice), "delegator": dave.bech32,
                                              "amount": "2000000ujoule", "new_shares": "2000000.000000000000000000"}]
    answer = chain.query(QUERY + "Delegation", query_pb2.QueryDelegationRequest(
        delegator_addr=dave.bech32, validator_addr=compute_operator(alice))).delegation_response
    assert (answer.balance.amount, answer.delegation.shares) == (str(2 * JOULE), dec("2000000"))
    mine = chain.query(QUERY + "DelegatorDelegations", query_pb2.QueryDelegatorDelegationsRequest(delegator_addr=dave.bech32))
    assert [d.delegation.validator_address for d in mine.delegation_responses] == [compute_operator(alice)]

    before = chain.balance(dave)
    result, response = chain.run(dave, undelegate(dave, alice, JOULE // 2))
    assert result.code == 0, result.log
    completion = chain.time_ns + UNBONDING_SECONDS * 10**9
    answer = msg_response(result, tx_pb2.MsgUndelegateResponse)
    assert compute_nanoseconds(answer.completion_time) == completion and answer.amount.amount == str(JOULE // 2)
    assert events(response, "unbond") == [{"validator": compute_operator(alice), "delegator": dave.bech32,
                                            "amount": "500000ujoule", "completion_time": compute_rfc3339(completion)}]
    assert compute_update_powers(response) == {key_of(KEY_A): 11}
    assert chain.balance(NOT_BONDED_POOL) == JOULE // 2
    unbonding = chain.query(QUERY + "UnbondingDelegation", query_pb2.QueryUnbondingDelegationRequest(
        delegator_addr=dave.bech32, validator_addr=compute_operator(alice))).unbond
    assert [(e.balance, compute_nanoseconds(e.completion_time)) for e in unbonding.entries] == [(str(JOULE // 2), completion)]
    assert not events(chain.block(seconds=UNBONDING_SECONDS - 1), "complete_unbonding")
    response = chain.block(seconds=1)
    assert events(response, "complete_unbonding") == [
        {"amount": "500000ujoule", "validator": compute_operator(alice), "delegator": dave.bech32}]
    assert chain.balance(dave) == before - FEE + JOULE // 2 and chain.balance(NOT_BONDED_POOL) == 0
    assert chain.query_error(QUERY + "UnbondingDelegation", query_pb2.QueryUnbondingDelegationRequest(
        delegator_addr=dave.bech32, validator_addr=compute_operator(alice))) == (38, "sdk")


def test_the_set_keeps_the_strongest_max_validators(tmp_path, people):
    alice, bob, carol, dave = people
    chain = StakingChain(tmp_path / "data", people, [make_gen_tx(alice, KEY_A, 10 * JOULE), make_gen_tx(bob, KEY_B, 5 * JOULE),
                                                      make_gen_tx(carol, KEY_C, 3 * JOULE)],
                         {"params": {"max_validators": 2, "unbonding_time": "100s"}})
    assert compute_update_powers(chain.genesis) == {key_of(KEY_A): 10, key_of(KEY_B): 5}
    assert chain.validator(carol).status == staking_pb2.BOND_STATUS_UNBONDED
    assert chain.balance(NOT_BONDED_POOL) == 3 * JOULE
    response = chain.ok(dave, delegate(dave, carol, 4 * JOULE))
    assert compute_update_powers(response) == {key_of(KEY_C): 7, key_of(KEY_B): 0}
    leaving = chain.validator(bob)
    assert leaving.status == staking_pb2.BOND_STATUS_UNBONDING
    assert compute_nanoseconds(leaving.unbonding_time) == chain.time_ns + 100 * 10**9
    assert chain.balance(NOT_BONDED_POOL) == 5 * JOULE and chain.balance(BONDED_POOL) == 17 * JOULE
    chain.block(seconds=100)
    assert chain.validator(bob).status == staking_pb2.BOND_STATUS_UNBONDED
    response = chain.ok(dave, delegate(dave, bob, 3 * JOULE))
    assert compute_update_powers(response) == {key_of(KEY_B): 8, key_of(KEY_C): 0}
    chain.app.close()


def test_redelegation_moves_power_at_once_and_blocks_a_second_hop_until_it_completes(chain, people):
    alice, bob, dave = people[0], people[1], people[3]
    chain.ok(dave, delegate(dave, alice, 3 * JOULE))
    result, response = chain.run(dave, redelegate(dave, alice, bob, JOULE))
    assert result.code == 0, result.log
    assert compute_update_powers(response) == {key_of(KEY_A): 12, key_of(KEY_B): 6}
    completion = chain.time_ns + UNBONDING_SECONDS * 10**9
    assert compute_nanoseconds(msg_response(result, tx_pb2.MsgBeginRedelegateResponse).completion_time) == completion
    assert events(response, "redelegate") == [{
        "source_validator": compute_operator(alice), "destination_validator": compute_operator(bob),
        "amount": "1000000ujoule", "completion_time": compute_rfc3339(completion)}]
    snapshot = chain.staking_snapshot()
    result, _ = chain.run(dave, redelegate(dave, bob, alice, JOULE // 2))
    assert (result.code, result.codespace) == (32, "staking")
    assert chain.staking_snapshot() == snapshot
    assert events(chain.block(seconds=UNBONDING_SECONDS), "complete_redelegation") == [{
        "amount": "1000000ujoule", "delegator": dave.bech32, "source_validator": compute_operator(alice),
        "destination_validator": compute_operator(bob)}]
    response = chain.ok(dave, redelegate(dave, bob, alice, JOULE // 2))
    assert compute_update_powers(response) == {key_of(KEY_B): 5}  # alice's 12.5 joule are still a power of 12


def test_unbonding_and_redelegation_entries_are_capped_by_max_entries(tmp_path, people):
    alice, bob, dave = people[0], people[1], people[3]
    chain = StakingChain(tmp_path / "data", people, [make_gen_tx(alice, KEY_A, 10 * JOULE), make_gen_tx(bob, KEY_B, 5 * JOULE)],
                         {"params": {"max_entries": 1}})
    chain.ok(dave, delegate(dave, alice, 4 * JOULE))
    chain.ok(dave, undelegate(dave, alice, JOULE))
    chain.ok(dave, redelegate(dave, alice, bob, JOULE))
    snapshot = chain.staking_snapshot()
    for message, code in ((undelegate(dave, alice, JOULE), 27), (redelegate(dave, alice, bob, JOULE), 33)):
        result, _ = chain.run(dave, message)
        assert (result.code, result.codespace) == (code, "staking")
        assert chain.staking_snapshot() == snapshot
    chain.app.close()


# --- editing a validator ---------------------------------------------------------------------------

def test_edit_validator_keeps_to_the_commission_rules(chain, people):
    alice, bob, dave = people[0], people[1], people[3]
    response = chain.ok(alice, edit(alice, description={"moniker": "alice prime"}))
    assert events(response, "edit_validator") == [{"commission_rate": "0.100000000000000000", "min_self_delegation": "1"}]
    assert chain.validator(alice).description.moniker == "alice prime"

    def refused(message, signer=alice, expected=None):
        snapshot = chain.staking_snapshot()
        result, _ = chain.run(signer, message)
        assert (result.code, result.codespace) == expected, result.log
        assert chain.staking_snapshot() == snapshot

    refused(edit(alice, commission_rate=dec("0.105")), expected=(12, "staking"))
    chain.block(seconds=DAY)
    response = chain.ok(alice, edit(alice, commission_rate=dec("0.11")))
    assert events(response, "edit_validator")[0]["commission_rate"] == "0.110000000000000000"
    assert chain.validator(alice).commission.commission_rates.rate == dec("0.11")
    chain.block(seconds=DAY)
    refused(edit(alice, commission_rate=dec("0.13")), expected=(15, "staking"))
    refused(edit(alice, commission_rate=dec("0.25")), expected=(11, "staking"))
    refused(edit(alice, commission_rate=dec("0.005")), expected=(40, "staking"))
    refused(edit(alice, commission_rate=dec("1.5")), expected=(18, "sdk"))
    chain.ok(alice, edit(alice, min_self_delegation=str(5 * JOULE)))
    refused(edit(alice, min_self_delegation=str(3 * JOULE)), expected=(17, "staking"))
    refused(edit(alice, min_self_delegation=str(11 * JOULE)), expected=(16, "staking"))
    refused(edit(alice, description={"moniker": "x" * 71}), expected=(18, "sdk"))
    refused(edit(dave), signer=dave, expected=(3, "staking"))
    before = chain.balance(alice)
    refused(edit(alice, description={"moniker": "not bob's"}), signer=bob, expected=(8, "sdk"))  # bob signs for alice
    assert chain.balance(alice) == before and chain.validator(alice).description.moniker == "alice prime"


# --- what is refused changes nothing ---------------------------------------------------------------

def secp256k1_pubkey(account):
    return pack_any(secp256k1_keys.PubKey(key=account.public_key), "/cosmos.crypto.secp256k1.PubKey")


def create_without_pubkey(account) -> tx_pb2.MsgCreateValidator:
    message = make_create_validator(account, KEY_C, JOULE)
    message.ClearField("pubkey")
    return message


def create_in_denom(account, denom: str) -> tx_pb2.MsgCreateValidator:
    message = make_create_validator(account, KEY_C, JOULE)
    message.value.denom = denom
    return message


BAD_INPUTS = {
    "zero self-bond": (2, lambda p: make_create_validator(p[2], KEY_C, 0), (18, "sdk"), False),
    "self-bond over the balance": (2, lambda p: make_create_validator(p[2], KEY_C, INITIAL_BALANCE + 1), (5, "sdk"), True),
    "a second validator of one operator": (0, lambda p: make_create_validator(p[0], KEY_C, JOULE), (4, "staking"), True),
    "a second validator of one consensus key": (2, lambda p: make_create_validator(p[2], KEY_A, JOULE), (5, "staking"), True),
    "commission above its max rate": (2, lambda p: make_create_validator(p[2], KEY_C, JOULE, rate="0.3"),
                                      (11, "staking"), False),
    "max change rate above the max rate": (2, lambda p: make_create_validator(p[2], KEY_C, JOULE, max_change_rate="0.5"),
                                           (14, "staking"), False),
    "commission above 100%": (2, lambda p: make_create_validator(p[2], KEY_C, JOULE, max_rate="1.5"),
                              (10, "staking"), False),
    "negative commission": (2, lambda p: make_create_validator(p[2], KEY_C, JOULE, rate="-0.1"), (9, "staking"), False),
    "commission below the minimum": (2, lambda p: make_create_validator(p[2], KEY_C, JOULE, rate="0.005"),
                                     (40, "staking"), True),
    "self-bond below its minimum": (2, lambda p: make_create_validator(
        p[2], KEY_C, 2 * JOULE, min_self_delegation=str(3 * JOULE)), (16, "staking"), False),
    "no minimum self-bond": (2, lambda p: make_create_validator(p[2], KEY_C, JOULE, min_self_delegation="0"),
                             (18, "sdk"), False),
    "a secp256k1 consensus key": (2, lambda p: make_create_validator(p[2], KEY_C, JOULE, pubkey=secp256k1_pubkey(p[2])),
                                  (6, "staking"), False),
    "no consensus key": (2, lambda p: create_without_pubkey(p[2]), (39, "staking"), False),
    "a malformed decimal": (0, lambda p: tx_pb2.MsgEditValidator(
        validator_address=compute_operator(p[0]), description={"moniker": "a"}, commission_rate="0.1"), (2, "sdk"), False),
    "a bond in another denom": (2, lambda p: create_in_denom(p[2], "uother"), (18, "sdk"), True),
    "a delegation to no validator": (3, lambda p: delegate(p[3], p[2], JOULE), (3, "staking"), True),
    "a zero delegation": (3, lambda p: delegate(p[3], p[0], 0), (18, "sdk"), False),
    "undelegating more than delegated": (0, lambda p: undelegate(p[0], p[0], 10 * JOULE + 1), (18, "sdk"), True),
    "undelegating with no delegation": (3, lambda p: undelegate(p[3], p[0], 1), (19, "staking"), True),
    "redelegating to the same validator": (0, lambda p: redelegate(p[0], p[0], p[0], JOULE), (29, "staking"), True),
    "redelegating to no validator": (0, lambda p: redelegate(p[0], p[0], p[2], JOULE), (31, "staking"), True),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_refused_with_its_code_and_changes_nothing(chain, people, case):
    signer_index, make, expected, fee_paid = BAD_INPUTS[case]
    signer = people[signer_index]
    tx = chain.sign(signer, make(people))
    signer.sequence -= 1
    checked = chain.app.check_tx(abci.RequestCheckTx(tx=tx))
    assert (checked.code, checked.codespace) == expected, checked.log
    snapshot, before = chain.staking_snapshot(), chain.balance(signer)
    result = chain.block([tx]).tx_results[0]
    assert (result.code, result.codespace) == expected, result.log
    assert chain.staking_snapshot() == snapshot
    assert chain.balance(signer) == before - (FEE if fee_paid else 0)


def test_an_operator_undelegating_below_its_minimum_is_jailed_and_leaves_the_set(chain, people):
    alice = people[0]
    chain.ok(alice, edit(alice, min_self_delegation=str(8 * JOULE)))
    response = chain.ok(alice, undelegate(alice, alice, 3 * JOULE))
    assert compute_update_powers(response) == {key_of(KEY_A): 0}
    validator = chain.validator(alice)
    assert validator.jailed and validator.status == staking_pb2.BOND_STATUS_UNBONDING
    assert chain.balance(NOT_BONDED_POOL) == 10 * JOULE  # its 7 left and the 3 unbonding


# --- queries, history, export ----------------------------------------------------------------------

def test_params_answer_the_sdk_defaults_over_genesis(chain):
    params = chain.query(QUERY + "Params", query_pb2.QueryParamsRequest()).params
    assert params.unbonding_time.seconds == UNBONDING_SECONDS
    assert (params.max_validators, params.max_entries, params.historical_entries, params.bond_denom) == (100, 7, 100, DENOM)
    assert params.min_commission_rate == dec("0.01")


def test_historical_info_keeps_the_last_entries(tmp_path, people):
    alice, bob = people[:2]
    chain = StakingChain(tmp_path / "data", people, [make_gen_tx(alice, KEY_A, 10 * JOULE), make_gen_tx(bob, KEY_B, 5 * JOULE)],
                         {"params": {"historical_entries": 3}})
    for _ in range(4):
        chain.block()
    info = chain.query(QUERY + "HistoricalInfo", query_pb2.QueryHistoricalInfoRequest(height=4)).hist
    assert (info.header.chain_id, info.header.height, info.header.time.seconds) == (CHAIN_ID, 4, GENESIS_TIME.seconds + 4)
    assert len(info.header.next_validators_hash) == 32 and info.header.proposer_address == b"\x01" * 20
    assert sorted(v.operator_address for v in info.valset) == sorted(compute_operator(a) for a in (alice, bob))
    assert [chain.query_error(QUERY + "HistoricalInfo", query_pb2.QueryHistoricalInfoRequest(height=height))
            for height in range(1, 6)] == [(38, "sdk"), (38, "sdk"), (0, ""), (0, ""), (0, "")]
    assert chain.query_error(QUERY + "HistoricalInfo", query_pb2.QueryHistoricalInfoRequest(height=-1)) == (18, "sdk")
    chain.app.close()


def test_an_export_imports_into_the_same_staking_state(tmp_path, chain, people):
    alice, bob, dave = people[0], people[1], people[3]
    chain.ok(dave, delegate(dave, alice, 3 * JOULE))
    chain.ok(dave, undelegate(dave, alice, JOULE))
    chain.ok(dave, redelegate(dave, alice, bob, JOULE))
    exported = chain.app.export_genesis()
    section = exported["staking"]
    assert section["params"]["min_commission_rate"] == "0.010000000000000000"
    validator = next(v for v in section["validators"] if v["operator_address"] == compute_operator(alice))
    assert validator["commission"]["commission_rates"]["rate"] == "0.100000000000000000"
    assert validator["delegator_shares"] == "11000000.000000000000000000"
    assert section["last_total_power"] == "17" and section["exported"]
    again = App(str(tmp_path / "again"))
    response = again.init_chain(abci.RequestInitChain(time=GENESIS_TIME, chain_id=CHAIN_ID, initial_height=1,
                                                      app_state_bytes=json.dumps(exported).encode()))
    assert compute_update_powers(response) == {key_of(KEY_A): 11, key_of(KEY_B): 6}
    again.finalize_block(abci.RequestFinalizeBlock(height=1, time=GENESIS_TIME))
    again.commit()
    assert again.export_genesis()["staking"] == section
    again.close()


@pytest.mark.parametrize("change, error", [
    (lambda s: s["validators"][0].update(tokens="1"), "records hold"),
    (lambda s: s["delegations"].pop(), "do not add up"),
    (lambda s: s["params"].update(min_commission_rate="2"), "min_commission_rate"),
    (lambda s: s["params"].update(bond_denom="uother"), "bond denom"),
    (lambda s: s["validators"].append(s["validators"][0]), "repeats"),
])
def test_an_inconsistent_staking_genesis_is_refused(tmp_path, chain, change, error):
    exported = chain.app.export_genesis()
    change(exported["staking"])
    with pytest.raises(GenesisError, match=error):
        App(str(tmp_path / "again")).init_chain(abci.RequestInitChain(
            chain_id=CHAIN_ID, initial_height=1, app_state_bytes=json.dumps(exported).encode()))


# --- heat's vote extensions ------------------------------------------------------------------------

def test_vote_extensions_are_checked_against_staking_validators_keys(chain, people):
    carol = people[2]
    reading = heat.compute_vote_extension(heat.HeatReading(50_000, 1_000))

    def proposal(key, signer):
        sign_bytes = heat.compute_vote_extension_sign_bytes(CHAIN_ID, chain.height, 0, reading)
        validator = abci.Validator(address=compute_consensus(key), power=10)
        info = abci.ExtendedCommitInfo(votes=[abci.ExtendedVoteInfo(
            validator=validator, vote_extension=reading, extension_signature=signer.sign(sign_bytes).signature,
            block_id_flag=validator_pb2.BLOCK_ID_FLAG_COMMIT)])
        commit = abci.CommitInfo(votes=[abci.VoteInfo(validator=validator, block_id_flag=validator_pb2.BLOCK_ID_FLAG_COMMIT)])
        return chain.app.process_proposal(abci.RequestProcessProposal(
            txs=[heat.compute_heat_tx(info)], proposed_last_commit=commit, height=chain.height + 1)).status

    accept, reject = abci.ResponseProcessProposal.ACCEPT, abci.ResponseProcessProposal.REJECT
    assert proposal(KEY_A, KEY_A) == accept
    assert proposal(KEY_A, KEY_B) == reject
    assert proposal(KEY_C, KEY_C) == reject
    chain.ok(carol, make_create_validator(carol, KEY_C, 3 * JOULE))
    assert proposal(KEY_C, KEY_C) == accept
