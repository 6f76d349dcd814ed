"""Slashing on the real App: downtime counted from the decided last commit's votes, double signing from
CometBFT's misbehavior, slashed tokens burnt, MsgUnjail's rules; every block checks supply and pools."""

import json

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from chain import crypto
from chain.app import App
from chain.proto.cosmos.slashing.v1beta1 import query_pb2, slashing_pb2, tx_pb2
from chain.proto.cosmos.staking.v1beta1 import staking_pb2
from chain.proto.cosmos.staking.v1beta1 import tx_pb2 as staking_tx
from chain.proto.tendermint.abci import types_pb2 as abci
from chain.proto.tendermint.crypto import keys_pb2 as crypto_keys
from chain.sdktypes import compute_nanoseconds
from chain.validators import BONDED_POOL, NOT_BONDED_POOL, format_consensus
from tests.helpers import compute_consensus_public_key as key_of
from tests.helpers import (
    CHAIN_ID, GENESIS_TIME, JOULE, STAKING_KEYS, StakingChain, compute_consensus, compute_operator,
    compute_update_powers, events, start_staking_chain, supply,
)

KEY_A, KEY_B, _, KEY_D = STAKING_KEYS
WINDOW = 10
SLASHING_GENESIS = {"params": {"signed_blocks_window": str(WINDOW), "min_signed_per_window": "0.5",
                               "downtime_jail_duration": "60s", "slash_fraction_double_sign": "0.05",
                               "slash_fraction_downtime": "0.01"}}
QUERY = "/cosmos.slashing.v1beta1.Query/"


@pytest.fixture
def chain(tmp_path, people):
    chain = start_staking_chain(tmp_path / "data", people, slashing_genesis=SLASHING_GENESIS)
    yield chain
    chain.app.close()


def valcons(key) -> str:
    return format_consensus(compute_consensus(key))


def signing_info(chain, key) -> slashing_pb2.ValidatorSigningInfo:
    return chain.query(QUERY + "SigningInfo", query_pb2.QuerySigningInfoRequest(cons_address=valcons(key))).val_signing_info


def unjail(account) -> tx_pb2.MsgUnjail:
    return tx_pb2.MsgUnjail(validator_addr=compute_operator(account))


def equivocation(key, power: int, height: int, kind=abci.DUPLICATE_VOTE) -> abci.Misbehavior:
    return abci.Misbehavior(type=kind, validator=abci.Validator(address=compute_consensus(key), power=power),
                            height=height, time=Timestamp(seconds=GENESIS_TIME.seconds + height), total_voting_power=15)


def jail_for_downtime(chain, key) -> abci.ResponseFinalizeBlock:
    """Blocks with `key` absent until it is slashed; that block's answer."""
    for _ in range(2 * WINDOW):
        response = chain.block(absent={key_of(key)})
        if events(response, "slash"):
            return response
    raise AssertionError(f"{valcons(key)} missed {2 * WINDOW} blocks unslashed")


def refuse(chain, signer, message, expected: tuple[int, str]) -> None:
    snapshot, infos = chain.staking_snapshot(), signing_info(chain, KEY_B)
    result, _ = chain.run(signer, message)
    assert (result.code, result.codespace) == expected, result.log
    assert chain.staking_snapshot() == snapshot and signing_info(chain, KEY_B).jailed_until == infos.jailed_until


def test_downtime_slashes_jails_and_burns_then_unjail_after_the_jail_time(chain, people):
    alice, bob, dave = people[0], people[1], people[3]
    before = supply(chain.app)
    response = chain.block(absent={key_of(KEY_B)})
    assert events(response, "liveness") == [{"address": valcons(KEY_B), "missed_blocks": "1", "height": "2"}]
    response = jail_for_downtime(chain, KEY_B)
    assert chain.height == 2 + WINDOW + 1  # the first block past its first window (start height 2), all missed
    assert events(response, "slash") == [{"address": valcons(KEY_B), "power": "5", "reason": "missing_signature",
                                          "jailed": valcons(KEY_B), "burned_coins": "50000ujoule"}]
    assert events(response, "burn") == [{"burner": crypto.encode_address(BONDED_POOL), "amount": "50000ujoule"}]
    assert supply(chain.app) == before - 50_000
    assert compute_update_powers(response) == {key_of(KEY_B): 0}
    validator = chain.validator(bob)
    assert validator.jailed and validator.status == staking_pb2.BOND_STATUS_UNBONDING
    assert validator.tokens == str(5 * JOULE - 50_000)
    assert chain.balance(BONDED_POOL) == 10 * JOULE and chain.balance(NOT_BONDED_POOL) == 5 * JOULE - 50_000
    info = signing_info(chain, KEY_B)
    assert compute_nanoseconds(info.jailed_until) == chain.time_ns + 60 * 10**9
    assert (info.missed_blocks_counter, info.index_offset, info.tombstoned, info.start_height) == (0, 0, False, 2)

    refuse(chain, bob, unjail(bob), (4, "slashing"))
    refuse(chain, alice, unjail(alice), (5, "slashing"))
    refuse(chain, dave, unjail(dave), (2, "slashing"))
    chain.block(seconds=60)
    response = chain.ok(bob, unjail(bob))
    assert compute_update_powers(response) == {key_of(KEY_B): 4}
    assert chain.validator(bob).status == staking_pb2.BOND_STATUS_BONDED
    assert chain.balance(BONDED_POOL) == 15 * JOULE - 50_000


def test_check_tx_judges_the_jail_time_by_the_last_block_time(chain, people):
    """The mempool's check runs at the last committed block's time (as the SDK's check state does): an
    unjail is refused there before the jail time and accepted once a block is past it."""
    bob = people[1]
    jail_for_downtime(chain, KEY_B)
    early = chain.app.check_tx(abci.RequestCheckTx(tx=chain.sign(bob, unjail(bob))))
    assert (early.code, early.codespace) == (4, "slashing"), early.log
    bob.sequence -= 1  # the refused tx did not use its sequence
    chain.block(seconds=60)
    assert chain.app.check_tx(abci.RequestCheckTx(tx=chain.sign(bob, unjail(bob)))).code == 0


def test_missing_up_to_the_allowed_share_of_the_window_is_not_slashed(chain, people):
    for height in range(3 * WINDOW):
        response = chain.block(absent={key_of(KEY_B)} if height % 2 else set())
        assert not events(response, "slash") and not response.validator_updates
    assert signing_info(chain, KEY_B).missed_blocks_counter == WINDOW // 2


@pytest.mark.parametrize("kind", [abci.DUPLICATE_VOTE, abci.LIGHT_CLIENT_ATTACK])
def test_double_signing_slashes_jails_and_tombstones(chain, people, kind):
    alice = people[0]
    before = supply(chain.app)
    response = chain.block(misbehavior=[equivocation(KEY_A, 10, chain.height, kind)])
    assert events(response, "slash") == [{"address": valcons(KEY_A), "power": "10", "reason": "double_sign",
                                          "jailed": valcons(KEY_A), "burned_coins": "500000ujoule"}]
    assert supply(chain.app) == before - 500_000
    assert compute_update_powers(response) == {key_of(KEY_A): 0}
    info = signing_info(chain, KEY_A)
    assert info.tombstoned and info.jailed_until.ToJsonString() == "9999-12-31T23:59:59Z"
    validator = chain.validator(alice)
    assert validator.jailed and validator.tokens == str(10 * JOULE - 500_000)

    snapshot = chain.staking_snapshot()
    response = chain.block(misbehavior=[equivocation(KEY_A, 10, chain.height - 1, kind)])
    assert not events(response, "slash") and chain.staking_snapshot() == snapshot
    chain.block(seconds=365 * 24 * 3600)
    result, _ = chain.run(alice, unjail(alice))
    assert (result.code, result.codespace) == (9, "slashing")
    assert chain.validator(alice).jailed


def test_evidence_against_validators_staking_does_not_know_changes_nothing(chain):
    snapshot, before = chain.staking_snapshot(), supply(chain.app)
    response = chain.block(misbehavior=[equivocation(KEY_D, 10, chain.height)])
    assert not events(response, "slash") and chain.staking_snapshot() == snapshot and supply(chain.app) == before
    assert chain.query_error(QUERY + "SigningInfo", query_pb2.QuerySigningInfoRequest(cons_address=valcons(KEY_D))) == (
        38, "sdk")


def test_without_staking_validators_votes_change_nothing(tmp_path, people):
    cometbft = abci.ValidatorUpdate(pub_key=crypto_keys.PublicKey(ed25519=key_of(KEY_D)), power=10)
    chain = StakingChain(tmp_path / "data", people, [], cometbft_validators=[cometbft], slashing_genesis=SLASHING_GENESIS)
    for _ in range(WINDOW + 3):
        chain.block(absent={key_of(KEY_D)}, misbehavior=[equivocation(KEY_D, 10, chain.height)])
    assert [key for key, _ in chain.app.store.iterate("slashing")] == [bytes((0x01,))]  # its params alone
    chain.app.close()


def test_unjail_needs_the_self_delegation_to_cover_its_minimum(chain, people):
    bob = people[1]
    chain.ok(bob, staking_tx.MsgEditValidator(
        validator_address=compute_operator(bob), min_self_delegation=str(5 * JOULE),
        description={name: "[do-not-modify]" for name in ("moniker", "identity", "website", "security_contact", "details")}))
    jail_for_downtime(chain, KEY_B)
    chain.block(seconds=60)
    refuse(chain, bob, unjail(bob), (7, "slashing"))


def test_signing_info_and_params_queries(chain):
    chain.block()
    page = chain.query(QUERY + "SigningInfos", query_pb2.QuerySigningInfosRequest(pagination={"limit": 1}))
    assert len(page.info) == 1 and page.pagination.next_key
    rest = chain.query(QUERY + "SigningInfos", query_pb2.QuerySigningInfosRequest(pagination={"key": page.pagination.next_key}))
    assert {info.address for info in [*page.info, *rest.info]} == {valcons(KEY_A), valcons(KEY_B)}
    assert not rest.pagination.next_key
    params = chain.query(QUERY + "Params", query_pb2.QueryParamsRequest()).params
    assert (params.signed_blocks_window, params.downtime_jail_duration.seconds) == (WINDOW, 60)
    assert (params.min_signed_per_window, params.slash_fraction_double_sign, params.slash_fraction_downtime) == (
        b"500000000000000000", b"50000000000000000", b"10000000000000000")
    assert chain.query_error(QUERY + "SigningInfo", query_pb2.QuerySigningInfoRequest(cons_address="mxw1x")) == (7, "sdk")


def test_an_export_keeps_signing_infos_and_missed_blocks(tmp_path, chain):
    for _ in range(3):
        chain.block(absent={key_of(KEY_B)})
    exported = chain.app.export_genesis()
    section = exported["slashing"]
    assert section["params"]["min_signed_per_window"] == "0.500000000000000000"
    missed = next(entry for entry in section["missed_blocks"] if entry["address"] == valcons(KEY_B))
    assert len(missed["missed_blocks"]) == 3
    again = App(str(tmp_path / "again"))
    again.init_chain(abci.RequestInitChain(time=GENESIS_TIME, chain_id=CHAIN_ID, initial_height=1,
                                           app_state_bytes=json.dumps(exported).encode()))
    again.finalize_block(abci.RequestFinalizeBlock(height=1, time=GENESIS_TIME))
    again.commit()
    assert again.export_genesis()["slashing"] == section
    again.close()
