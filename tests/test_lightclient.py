"""07-tendermint light client: CometBFT's light-client test vectors with their verdicts, and each rule.

The vectors are tendermint-rs's model-based single-step tests: from a trusted block, each input block is
verified at its `now`; it becomes the trusted block when its verdict is SUCCESS. tendermint-rs ran them with
no clock drift; the client here needs a positive one, and one nanosecond gives the same verdicts.
"""

import json

import coincurve
import nacl.signing
import pytest
from google.protobuf import timestamp_pb2
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings, strategies as st

from chain import crypto
from chain.proto.tendermint.crypto import keys_pb2
from chain.proto.tendermint.types import types_pb2, validator_pb2
from ibc import host
from ibc import lightclient as lc
from ibc import tendermint
from tests import cometbft_json
from tests.helpers import require_vectors

SECOND = tendermint.NANOSECONDS_PER_SECOND
HOUR = 3600 * SECOND
CHAIN_ID = "testchain-2"
VERDICTS = {"SUCCESS", "NOT_ENOUGH_TRUST", "INVALID"}


def _time_ns(text: str) -> int:
    timestamp = timestamp_pb2.Timestamp()
    timestamp.FromJsonString(text)
    return tendermint.compute_time_ns(timestamp)


def _get_verdict(client_state, consensus_state, header, now) -> str:
    try:
        lc.verify_header(client_state, consensus_state, header, now)
    except lc.NotEnoughTrustError:
        return "NOT_ENOUGH_TRUST"
    except lc.LightClientError:
        return "INVALID"
    return "SUCCESS"


VECTOR_FILES = sorted(require_vectors("lightclient").glob("*.json"))


@pytest.mark.parametrize("path", VECTOR_FILES, ids=lambda p: p.stem)
def test_light_client_vector(path):
    case = json.loads(path.read_text())
    initial = case["initial"]
    trusted = cometbft_json.signed_header_from_json(initial["signed_header"]).header
    trusting_period = int(initial["trusting_period"])
    client_state = lc.ClientState(chain_id=trusted.chain_id, trusting_period=trusting_period,
                                  unbonding_period=2 * trusting_period, max_clock_drift=1,
                                  latest_height=lc.Height(0, trusted.height))
    lc.validate_client_state(client_state)
    consensus_state = lc.ConsensusState(tendermint.compute_time_ns(trusted.time), trusted.app_hash,
                                        trusted.next_validators_hash)
    trusted_height = lc.Height(0, trusted.height)
    trusted_validators = cometbft_json.validator_set_from_json(initial["next_validator_set"])
    verdicts = []
    for step in case["input"]:
        assert step["verdict"] in VERDICTS
        block = step["block"]
        header = lc.Header(cometbft_json.signed_header_from_json(block["signed_header"]),
                           cometbft_json.validator_set_from_json(block["validator_set"]),
                           trusted_height, trusted_validators)
        verdict = _get_verdict(client_state, consensus_state, header, _time_ns(step["now"]))
        verdicts.append(verdict)
        if verdict == "SUCCESS":
            consensus_state = lc.compute_consensus_state(header)
            trusted_height = lc.get_header_height(header)
            trusted_validators = cometbft_json.validator_set_from_json(block["next_validator_set"])
    assert verdicts == [step["verdict"] for step in case["input"]]


def test_vectors_cover_every_verdict():
    verdicts = {step["verdict"] for path in VECTOR_FILES for step in json.loads(path.read_text())["input"]}
    assert verdicts == VERDICTS


# --- a chain of our own keys, to reach each rule -------------------------------------------------


def _ed25519(seed: int):
    key = nacl.signing.SigningKey(bytes([seed]) * 32)
    pub_key = keys_pb2.PublicKey(ed25519=bytes(key.verify_key))
    return pub_key, lambda message: key.sign(message).signature


def _secp256k1(seed: int):
    private_key = bytes([seed]) * 32
    pub_key = keys_pb2.PublicKey(secp256k1=coincurve.PrivateKey(private_key).public_key.format())
    return pub_key, lambda message: crypto.sign(private_key, message)


def make_signers(powers, kind=_ed25519, first_seed=1):
    """[(validator, sign)] in CometBFT's validator set order."""
    signers = []
    for offset, power in enumerate(powers):
        pub_key, sign = kind(first_seed + offset)
        address = tendermint.compute_validator_address(pub_key)
        signers.append((validator_pb2.Validator(address=address, pub_key=pub_key, voting_power=power), sign))
    return sorted(signers, key=lambda s: (-s[0].voting_power, s[0].address))


def make_validator_set(signers) -> validator_pb2.ValidatorSet:
    validators = [v for v, _ in signers]
    return validator_pb2.ValidatorSet(validators=validators, proposer=validators[0],
                                      total_voting_power=sum(v.voting_power for v in validators))


def make_signed_header(signers, next_signers, height, time_ns, signing=None, chain_id=CHAIN_ID, app_hash=b"\x01" * 32):
    """A header of `signers` committed by those at the indexes `signing` (all by default)."""
    header = types_pb2.Header(chain_id=chain_id, height=height, app_hash=app_hash,
                              validators_hash=lc.compute_validator_set_hash(make_validator_set(signers)),
                              next_validators_hash=lc.compute_validator_set_hash(make_validator_set(next_signers)),
                              proposer_address=signers[0][0].address)
    header.version.block = lc.BLOCK_PROTOCOL
    header.time.seconds, header.time.nanos = divmod(time_ns, SECOND)
    commit = types_pb2.Commit(height=height, round=0, block_id=types_pb2.BlockID(
        hash=tendermint.compute_header_hash(header),
        part_set_header=types_pb2.PartSetHeader(total=1, hash=b"\x02" * 32)))
    signing = range(len(signers)) if signing is None else signing
    for index, (validator, sign) in enumerate(signers):
        sig = commit.signatures.add()
        if index not in signing:
            sig.block_id_flag = validator_pb2.BLOCK_ID_FLAG_ABSENT
            continue
        sig.block_id_flag = validator_pb2.BLOCK_ID_FLAG_COMMIT
        sig.validator_address = validator.address
        sig.timestamp.CopyFrom(header.time)
        vote = tendermint.compute_commit_vote(commit, index)
        sig.signature = sign(tendermint.compute_vote_sign_bytes(chain_id, vote))
    return types_pb2.SignedHeader(header=header, commit=commit)


T0 = 1_700_000_000 * SECOND


def make_client(signers, height=1, time_ns=T0, trust_level=lc.DEFAULT_TRUST_LEVEL):
    client_state = lc.ClientState(chain_id=CHAIN_ID, trusting_period=HOUR, unbonding_period=2 * HOUR,
                                  max_clock_drift=10 * SECOND, latest_height=lc.Height(2, height),
                                  trust_level=trust_level)
    consensus_state = lc.ConsensusState(time_ns, b"\x01" * 32,
                                        lc.compute_validator_set_hash(make_validator_set(signers)))
    return client_state, consensus_state


def make_header(signers, trusted_signers, height, signing=None, trusted_height=1, time_ns=None, next_signers=None):
    time_ns = T0 + height * SECOND if time_ns is None else time_ns
    signed = make_signed_header(signers, next_signers or signers, height, time_ns, signing)
    return lc.Header(signed, make_validator_set(signers), lc.Height(2, trusted_height),
                     make_validator_set(trusted_signers))


def verify(header, trusted_signers, now=None, trust_level=lc.DEFAULT_TRUST_LEVEL):
    client_state, consensus_state = make_client(trusted_signers, header.trusted_height.revision_height,
                                                trust_level=trust_level)
    lc.verify_header(client_state, consensus_state, header, now or T0 + 100 * SECOND)


POWERS = [30, 30, 30, 10]  # sorted: three of 30, then 10; total 100, 2/3 of it is 66


def test_adjacent_needs_more_than_two_thirds_of_the_new_set():
    signers = make_signers(POWERS)
    verify(make_header(signers, signers, 2, signing={0, 1, 3}), signers)  # 70 > 66
    with pytest.raises(lc.NotEnoughVotingPowerError, match="got 60, needed more than 66"):
        verify(make_header(signers, signers, 2, signing={0, 1}), signers)


def test_skipping_needs_the_trust_level_of_the_trusted_set():
    trusted = make_signers(POWERS)
    # the new set keeps two of the trusted validators (60 of the trusted 100) and adds two of 30
    new = [trusted[0], trusted[1]] + make_signers([30, 30], first_seed=20)
    new = sorted(new, key=lambda s: (-s[0].voting_power, s[0].address))
    kept = [i for i, s in enumerate(new) if s in trusted]
    header = make_header(new, trusted, 5, signing=set(range(4)))
    verify(header, trusted)
    only_one_kept = set(range(4)) - {kept[0]}  # the new set's 90 of 120 signed, but only 30 of the trusted 100
    with pytest.raises(lc.NotEnoughTrustError, match="got 30, needed more than 33"):
        verify(make_header(new, trusted, 5, signing=only_one_kept), trusted)


def test_trust_level_one_needs_every_trusted_validator():
    signers = make_signers(POWERS)
    with pytest.raises(lc.NotEnoughTrustError):
        verify(make_header(signers, signers, 5, signing={0, 1, 2}), signers, trust_level=lc.Fraction(1, 1))
    with pytest.raises(lc.NotEnoughTrustError):
        verify(make_header(signers, signers, 5), signers, trust_level=lc.Fraction(1, 1))  # 100 > 100 is false


def test_secp256k1_validators_verify_one_by_one():
    signers = make_signers([10, 10, 10], kind=_secp256k1)
    header = make_header(signers, signers, 2)
    verify(header, signers)
    signature = bytearray(header.signed_header.commit.signatures[1].signature)
    signature[5] ^= 0xFF
    header.signed_header.commit.signatures[1].signature = bytes(signature)
    with pytest.raises(lc.InvalidSignatureError, match=r"wrong signature \(#1\)"):
        verify(header, signers)


def test_batch_verification_reports_a_shortfall_before_a_bad_signature():
    """Go batch-verifies ed25519 commits of two or more signatures: the tally is checked first."""
    signers = make_signers(POWERS)
    header = make_header(signers, signers, 2, signing={0, 1})
    header.signed_header.commit.signatures[0].signature = b"\x00" * 64
    with pytest.raises(lc.NotEnoughVotingPowerError):
        verify(header, signers)
    one = make_signers([10])
    single = make_header(one, one, 2)
    single.signed_header.commit.signatures[0].signature = b"\x00" * 64
    with pytest.raises(lc.InvalidSignatureError):
        verify(single, one)


def test_signatures_past_the_threshold_are_not_checked():
    signers = make_signers(POWERS)
    header = make_header(signers, signers, 2)
    header.signed_header.commit.signatures[3].signature = b"\x00" * 64
    verify(header, signers)


def test_commit_for_another_validator_at_an_index_is_rejected():
    signers = make_signers(POWERS)
    header = make_header(signers, signers, 2)
    header.signed_header.commit.signatures[0].validator_address = signers[1][0].address
    with pytest.raises(lc.ValidatorAddressMismatchError):
        verify(header, signers)


def test_double_vote_in_the_trusted_set_is_rejected():
    trusted = make_signers(POWERS)
    new = make_signers([10, 10, 10, 10], first_seed=30)
    header = make_header(new, trusted, 5)
    commit = header.signed_header.commit
    for index in (0, 1):
        commit.signatures[index].validator_address = trusted[3][0].address
    with pytest.raises(lc.DuplicateVoteError):
        verify(header, trusted)


def test_commit_with_a_missing_signature_slot_is_rejected():
    signers = make_signers(POWERS)
    header = make_header(signers, signers, 2)
    del header.signed_header.commit.signatures[3]
    with pytest.raises(lc.CommitSignaturesCountError):
        verify(header, signers)


def test_adjacent_header_must_carry_the_trusted_next_validators():
    trusted = make_signers(POWERS)
    other = make_signers([50, 50], first_seed=40)
    with pytest.raises(lc.NextValidatorsMismatchError):
        verify(make_header(other, trusted, 2), trusted)


def test_time_and_height_must_increase():
    signers = make_signers(POWERS)
    with pytest.raises(lc.TimeNotIncreasingError):
        verify(make_header(signers, signers, 3, time_ns=T0), signers)
    with pytest.raises(lc.InvalidHeaderHeightError, match="must be less than header height"):
        verify(make_header(signers, signers, 3, trusted_height=3), signers)


def test_header_time_must_be_before_now_plus_drift():
    signers = make_signers(POWERS)
    header = make_header(signers, signers, 2, time_ns=T0 + 20 * SECOND)
    verify(header, signers, now=T0 + 10 * SECOND + 1)
    with pytest.raises(lc.HeaderFromFutureError):
        verify(header, signers, now=T0 + 10 * SECOND)


def test_header_fields_are_checked():
    signers = make_signers(POWERS)
    cases = [("version", lambda h: setattr(h.version, "block", 10), lc.MalformedHeaderError),
             ("proposer", lambda h: setattr(h, "proposer_address", b"\x01" * 19), lc.MalformedHeaderError),
             ("data hash", lambda h: setattr(h, "data_hash", b"\x01" * 31), lc.MalformedHeaderError),
             ("app hash", lambda h: setattr(h, "app_hash", b"\x09" * 32), lc.CommitBlockIdMismatchError),
             ("no validators hash", lambda h: setattr(h, "validators_hash", b""), lc.CommitBlockIdMismatchError)]
    for name, change, error in cases:
        header = make_header(signers, signers, 2)
        change(header.signed_header.header)
        with pytest.raises(error):
            verify(header, signers)


def test_commit_fields_are_checked():
    signers = make_signers(POWERS)
    header = make_header(signers, signers, 2, signing={0, 1, 2})
    header.signed_header.commit.signatures[3].signature = b"\x01"  # absent yet signed
    with pytest.raises(lc.MalformedCommitError, match="absent"):
        verify(header, signers)
    header = make_header(signers, signers, 2)
    header.signed_header.commit.height = 3
    with pytest.raises(lc.CommitHeightMismatchError):
        verify(header, signers)
    header = make_header(signers, signers, 2)
    header.signed_header.commit.signatures[0].block_id_flag = 7
    with pytest.raises(lc.MalformedCommitError, match="unknown block id flag"):
        verify(header, signers)


def _change_set(validator_set, change):
    changed = validator_pb2.ValidatorSet()
    changed.CopyFrom(validator_set)
    change(changed)
    return changed


@pytest.mark.parametrize("change, message", [
    (lambda s: s.validators.reverse(), "voting power order"),
    (lambda s: setattr(s.validators[0], "address", b"\x00" * 20), "incorrectly derived"),
    (lambda s: setattr(s.validators[0], "voting_power", -1), "negative voting power"),
    (lambda s: setattr(s.validators[0], "voting_power", lc.MAX_TOTAL_VOTING_POWER), "exceeds maximum"),
    (lambda s: s.ClearField("proposer"), "no proposer"),
    (lambda s: s.proposer.CopyFrom(make_signers([1], first_seed=99)[0][0]), "proposer not in validator set"),
    (lambda s: s.ClearField("validators"), "nil or empty"),
])
def test_malformed_validator_sets_are_rejected(change, message):
    signers = make_signers(POWERS)
    with pytest.raises(lc.MalformedValidatorSetError, match=message):
        lc.validate_validator_set(_change_set(make_validator_set(signers), change))


def test_total_voting_power_in_the_message_is_ignored():
    signers = make_signers(POWERS)
    header = make_header(signers, signers, 2, signing={0, 1})
    header.validator_set.total_voting_power = 80  # 60 would pass against a claimed 80
    with pytest.raises(lc.NotEnoughVotingPowerError):
        verify(header, signers)


# --- client state, status, update ----------------------------------------------------------------


def _client_state(**changes):
    fields = dict(chain_id="cosmoshub-4", trusting_period=HOUR, unbonding_period=2 * HOUR,
                  max_clock_drift=SECOND, latest_height=lc.Height(4, 10))
    fields.update(changes)
    return lc.ClientState(**fields)


@pytest.mark.parametrize("changes, error", [
    ({"chain_id": "  "}, lc.InvalidChainIdError),
    ({"chain_id": "c" * 49 + "-4"}, lc.InvalidChainIdError),
    ({"trust_level": lc.Fraction(1, 4)}, lc.InvalidTrustLevelError),
    ({"trust_level": lc.Fraction(4, 3)}, lc.InvalidTrustLevelError),
    ({"trust_level": lc.Fraction(0, 0)}, lc.InvalidTrustLevelError),
    ({"trusting_period": 0}, lc.InvalidTrustingPeriodError),
    ({"trusting_period": 2 * HOUR}, lc.InvalidTrustingPeriodError),
    ({"unbonding_period": 0}, lc.InvalidUnbondingPeriodError),
    ({"max_clock_drift": 0}, lc.InvalidMaxClockDriftError),
    ({"latest_height": lc.Height(3, 10)}, lc.InvalidHeaderHeightError),
    ({"latest_height": lc.Height(4, 0)}, lc.InvalidHeaderHeightError),
])
def test_invalid_client_states_are_rejected(changes, error):
    lc.validate_client_state(_client_state())
    with pytest.raises(error):
        lc.validate_client_state(_client_state(**changes))


@pytest.mark.parametrize("chain_id, revision", [
    ("cosmoshub-4", 4), ("evmos_9001-2", 2), ("chain", 0), ("chain-0", 0), ("chain-01", 0), ("chain--1", 0),
    ("-1", 0), ("a-1-22", 22), ("chain-1\n", 0),
])
def test_revision_number_of_a_chain_id(chain_id, revision):
    assert lc.get_revision_number(chain_id) == revision


def test_error_codes_are_ibc_go_codes():
    assert (lc.TrustingPeriodExpiredError.codespace, lc.TrustingPeriodExpiredError.code) == ("07-tendermint", 11)
    assert (lc.ClientFrozenError.codespace, lc.ClientFrozenError.code) == ("client", 29)
    assert (lc.ConsensusStateNotFoundError.codespace, lc.ConsensusStateNotFoundError.code) == ("client", 7)


def test_client_status():
    active = _client_state()
    consensus = lc.ConsensusState(T0, b"", b"")
    assert lc.get_client_status(active, consensus, T0 + HOUR - 1) == lc.STATUS_ACTIVE
    assert lc.get_client_status(active, consensus, T0 + HOUR) == lc.STATUS_EXPIRED
    assert lc.get_client_status(active, None, T0) == lc.STATUS_EXPIRED
    assert lc.get_client_status(lc.freeze_client(active), consensus, T0 + 2 * HOUR) == lc.STATUS_FROZEN


def test_update_needs_the_trusted_consensus_state():
    signers = make_signers(POWERS)
    client_state, consensus_state = make_client(signers)
    header = make_header(signers, signers, 3, trusted_height=2)
    with pytest.raises(lc.ConsensusStateNotFoundError):
        lc.update_client(client_state, {lc.Height(2, 1): consensus_state}, header, T0 + 10 * SECOND)


def test_update_to_a_past_height_keeps_the_latest_height():
    signers = make_signers(POWERS)
    client_state, consensus_state = make_client(signers)
    states = {lc.Height(2, 1): consensus_state}
    now = T0 + 100 * SECOND
    high = lc.update_client(client_state, states, make_header(signers, signers, 9), now)
    states[high.height] = high.consensus_state
    low = lc.update_client(high.client_state, states, make_header(signers, signers, 5), now)
    assert low.client_state.latest_height == lc.Height(2, 9)
    assert low.height == lc.Height(2, 5)


def test_header_of_another_revision_is_rejected():
    signers = make_signers(POWERS)
    client_state, consensus_state = make_client(signers)
    header = make_header(signers, signers, 3)
    header = lc.Header(header.signed_header, header.validator_set, lc.Height(1, 1), header.trusted_validators)
    with pytest.raises(lc.InvalidHeaderHeightError, match="revision"):
        lc.verify_header(client_state, consensus_state, header, T0 + 10 * SECOND)


def test_misbehaviour_must_be_well_formed():
    signers = make_signers(POWERS)
    client_state, consensus_state = make_client(signers)
    states = {lc.Height(2, 1): consensus_state}
    low, high = make_header(signers, signers, 3), make_header(signers, signers, 4)
    with pytest.raises(lc.InvalidMisbehaviourError, match="less than"):
        lc.update_client(client_state, states, lc.Misbehaviour("07-tendermint-0", low, high), T0 + 10 * SECOND)
    with pytest.raises(host.IdentifierLengthError):
        lc.update_client(client_state, states, lc.Misbehaviour("07-tm", high, low), T0 + 10 * SECOND)


# --- hostile input -----------------------------------------------------------------------------

HOSTILE_SIGNERS = make_signers(POWERS)
HOSTILE_HEADER = make_header(HOSTILE_SIGNERS, HOSTILE_SIGNERS, 5, trusted_height=1)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(part=st.sampled_from(["signed_header", "validator_set", "trusted_validators"]),
       position=st.integers(min_value=0), value=st.integers(min_value=0, max_value=255))
def test_corrupted_messages_fail_with_a_light_client_error(part, position, value):
    message = getattr(HOSTILE_HEADER, part)
    raw = bytearray(message.SerializeToString())
    raw[position % len(raw)] = value
    corrupted = type(message)()
    try:
        corrupted.ParseFromString(bytes(raw))
    except DecodeError:
        return
    header = lc.Header(**{**HOSTILE_HEADER.__dict__, part: corrupted})
    try:
        verify(header, HOSTILE_SIGNERS)
    except lc.LightClientError:
        pass
