"""07-tendermint light client: ibc-go v8's client over CometBFT v0.38's `light` verification.

Pure and deterministic: every time is an int of nanoseconds since the Unix epoch (`now` is the
host chain's block time), every ratio integer arithmetic. Checks run in the order Go runs them, so a
header fails with the rule Go would report first; each rule has its own exception class.

A ValidatorSet must list its validators in CometBFT's order (voting power descending, then
address), as /validators and relayers give them: Go hashes the list as given and matches commit
signatures to validators by index, so a reordered list can never verify there either.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from chain.errors import TxError
from chain.proto.tendermint.types import types_pb2, validator_pb2
from ibc import host, tendermint
from ibc.host import Height

CODESPACE = "07-tendermint"
CLIENT_CODESPACE = "client"

BLOCK_PROTOCOL = 11
MAX_CHAIN_ID_LENGTH = 50
HASH_SIZE = 32
MAX_SIGNATURE_SIZE = 64
SECP256K1_PUBLIC_KEY_SIZE = 33
MAX_TOTAL_VOTING_POWER = (2**63 - 1) // 8
MAX_INT64 = 2**63 - 1
BATCH_VERIFY_THRESHOLD = 2

BLOCK_ID_FLAG_ABSENT = validator_pb2.BLOCK_ID_FLAG_ABSENT
BLOCK_ID_FLAG_COMMIT = validator_pb2.BLOCK_ID_FLAG_COMMIT
BLOCK_ID_FLAG_NIL = validator_pb2.BLOCK_ID_FLAG_NIL

STATUS_ACTIVE = "Active"
STATUS_FROZEN = "Frozen"
STATUS_EXPIRED = "Expired"

REVISION_FORMAT = re.compile(r".*[^\n-]-[1-9][0-9]*")


# --- errors ------------------------------------------------------------------------------------


class LightClientError(TxError):
    """A client message the light client refuses; the state is left as it was."""
    codespace = CODESPACE
    code = 6


class InvalidChainIdError(LightClientError):
    code = 2


class InvalidTrustLevelError(LightClientError):
    codespace = CLIENT_CODESPACE
    code = 3


class InvalidTrustingPeriodError(LightClientError):
    code = 3


class InvalidUnbondingPeriodError(LightClientError):
    code = 4


class InvalidMaxClockDriftError(LightClientError):
    code = 7


class InvalidHeaderHeightError(LightClientError):
    code = 5


class MalformedHeaderError(LightClientError):
    """The header breaks CometBFT's Header.ValidateBasic."""


class MalformedCommitError(LightClientError):
    """The commit breaks CometBFT's Commit.ValidateBasic or CommitSig.ValidateBasic."""


class MalformedValidatorSetError(LightClientError):
    code = 14


class ChainIdMismatchError(LightClientError):
    pass


class CommitHeightMismatchError(LightClientError):
    pass


class CommitBlockIdMismatchError(LightClientError):
    """The commit signs another block than the header (or than the block id it is checked for)."""


class ValidatorsHashMismatchError(LightClientError):
    """The header's validators_hash is not the hash of the validator set that came with it."""


class TrustedValidatorsMismatchError(LightClientError):
    """The trusted validators do not hash to the trusted consensus state's next_validators_hash."""
    code = 14


class NextValidatorsMismatchError(LightClientError):
    """Adjacent update: the new header's validators are not the trusted header's next validators."""


class HeightNotIncreasingError(LightClientError):
    code = 5


class TimeNotIncreasingError(LightClientError):
    pass


class HeaderFromFutureError(LightClientError):
    pass


class TrustingPeriodExpiredError(LightClientError):
    code = 11


class CommitSignaturesCountError(LightClientError):
    """A commit carries one signature slot per validator of the set that signed it."""


class ValidatorAddressMismatchError(LightClientError):
    pass


class DuplicateVoteError(LightClientError):
    pass


class InvalidSignatureError(LightClientError):
    pass


class NotEnoughTrustError(LightClientError):
    """Less than the trust level of the trusted validators signed: the new set cannot be trusted yet."""


class NotEnoughVotingPowerError(LightClientError):
    """Not more than 2/3 of the header's own validator set signed its commit."""


class ClientFrozenError(LightClientError):
    codespace = CLIENT_CODESPACE
    code = 29


class ClientExpiredError(LightClientError):
    codespace = CLIENT_CODESPACE
    code = 29


class ConsensusStateNotFoundError(LightClientError):
    codespace = CLIENT_CODESPACE
    code = 7


class InvalidMisbehaviourError(LightClientError):
    codespace = CLIENT_CODESPACE
    code = 13


# --- types -------------------------------------------------------------------------------------


ZERO_HEIGHT = Height(0, 0)
FROZEN_HEIGHT = Height(0, 1)


@dataclass(frozen=True)
class Fraction:
    numerator: int
    denominator: int


DEFAULT_TRUST_LEVEL = Fraction(1, 3)


@dataclass(frozen=True)
class ClientState:
    chain_id: str
    trusting_period: int
    unbonding_period: int
    max_clock_drift: int
    latest_height: Height
    trust_level: Fraction = DEFAULT_TRUST_LEVEL
    frozen_height: Height = ZERO_HEIGHT


@dataclass(frozen=True)
class ConsensusState:
    timestamp: int
    root: bytes
    next_validators_hash: bytes


@dataclass(frozen=True)
class Header:
    """ibc.lightclients.tendermint.v1.Header: a signed header, its validators, and what it is trusted from."""
    signed_header: types_pb2.SignedHeader
    validator_set: validator_pb2.ValidatorSet
    trusted_height: Height
    trusted_validators: validator_pb2.ValidatorSet


@dataclass(frozen=True)
class Misbehaviour:
    client_id: str
    header_1: Header
    header_2: Header


@dataclass(frozen=True)
class TrustedHeader:
    """The fields of a trusted header CometBFT's light verification reads."""
    chain_id: str
    height: int
    time: int
    next_validators_hash: bytes


@dataclass(frozen=True)
class ClientUpdate:
    """What an accepted client message changes: the client state, and the consensus state it stores (if any)."""
    client_state: ClientState
    height: Height | None = None
    consensus_state: ConsensusState | None = None


# --- chain ids, heights, client state ------------------------------------------------------------


def is_revision_format(chain_id: str) -> bool:
    return REVISION_FORMAT.fullmatch(chain_id) is not None


def get_revision_number(chain_id: str) -> int:
    """The revision of a `{name}-{N}` chain id, 0 for any other chain id."""
    if not is_revision_format(chain_id):
        return 0
    revision = int(chain_id.rsplit("-", 1)[1])
    if revision > 2**64 - 1:
        raise InvalidChainIdError(f"chain id {chain_id!r} has a revision number above uint64")
    return revision


def get_header_height(header: Header) -> Height:
    h = header.signed_header.header
    return Height(get_revision_number(h.chain_id), h.height)


def compute_consensus_state(header: Header) -> ConsensusState:
    h = header.signed_header.header
    return ConsensusState(
        timestamp=tendermint.compute_time_ns(h.time), root=h.app_hash, next_validators_hash=h.next_validators_hash)


def validate_trust_level(level: Fraction) -> None:
    if level.numerator * 3 < level.denominator or level.numerator > level.denominator or level.denominator == 0:
        raise InvalidTrustLevelError(
            f"trust level must be within [1/3, 1], given {level.numerator}/{level.denominator}")


def validate_client_state(client_state: ClientState) -> None:
    chain_id = client_state.chain_id
    if not chain_id.strip():
        raise InvalidChainIdError("chain id cannot be empty string")
    if len(chain_id.encode()) > MAX_CHAIN_ID_LENGTH:
        raise InvalidChainIdError(f"chain id is too long; got: {len(chain_id.encode())}, max: {MAX_CHAIN_ID_LENGTH}")
    validate_trust_level(client_state.trust_level)
    if client_state.trusting_period <= 0:
        raise InvalidTrustingPeriodError("trusting period must be greater than zero")
    if client_state.unbonding_period <= 0:
        raise InvalidUnbondingPeriodError("unbonding period must be greater than zero")
    if client_state.max_clock_drift <= 0:
        raise InvalidMaxClockDriftError("max clock drift must be greater than zero")
    revision = get_revision_number(chain_id)
    if client_state.latest_height.revision_number != revision:
        raise InvalidHeaderHeightError(
            f"latest height revision number must match chain id revision number "
            f"({client_state.latest_height.revision_number} != {revision})")
    if client_state.latest_height.revision_height == 0:
        raise InvalidHeaderHeightError("latest height revision height cannot be zero")
    if client_state.trusting_period >= client_state.unbonding_period:
        raise InvalidTrustingPeriodError(
            f"trusting period ({client_state.trusting_period}) should be < "
            f"unbonding period ({client_state.unbonding_period})")


def is_expired(client_state: ClientState, timestamp: int, now: int) -> bool:
    """A consensus state of this time is past the trusting period at `now`."""
    return timestamp + client_state.trusting_period <= now


def get_client_status(client_state: ClientState, latest_consensus_state: ConsensusState | None, now: int) -> str:
    """Frozen wins over expired; a client without a consensus state at its latest height is expired."""
    if client_state.frozen_height != ZERO_HEIGHT:
        return STATUS_FROZEN
    if latest_consensus_state is None or is_expired(client_state, latest_consensus_state.timestamp, now):
        return STATUS_EXPIRED
    return STATUS_ACTIVE


# --- CometBFT structure checks (ValidateBasic) ---------------------------------------------------


def _validate_hash(name: str, value: bytes) -> None:
    if value and len(value) != HASH_SIZE:
        raise MalformedHeaderError(f"wrong {name}: expected size to be {HASH_SIZE} bytes, got {len(value)} bytes")


def _validate_block_id(name: str, block_id: types_pb2.BlockID, error: type[LightClientError]) -> None:
    for field, value in (("hash", block_id.hash), ("part set header hash", block_id.part_set_header.hash)):
        if value and len(value) != HASH_SIZE:
            raise error(f"wrong {name} {field}: expected {HASH_SIZE} bytes, got {len(value)}")


def validate_header_fields(header: types_pb2.Header) -> None:
    """CometBFT's Header.ValidateBasic."""
    if header.version.block != BLOCK_PROTOCOL:
        raise MalformedHeaderError(f"block protocol is incorrect: got: {header.version.block}, want: {BLOCK_PROTOCOL}")
    if len(header.chain_id.encode()) > MAX_CHAIN_ID_LENGTH:
        raise MalformedHeaderError(f"chain id is too long; got: {len(header.chain_id.encode())}, max: {MAX_CHAIN_ID_LENGTH}")
    if header.height <= 0:
        raise MalformedHeaderError(f"header height must be positive, got {header.height}")
    _validate_block_id("last block id", header.last_block_id, MalformedHeaderError)
    for name in ("last_commit_hash", "data_hash", "evidence_hash"):
        _validate_hash(name, getattr(header, name))
    if len(header.proposer_address) != tendermint.ADDRESS_SIZE:
        raise MalformedHeaderError(
            f"invalid proposer address length; got: {len(header.proposer_address)}, expected: {tendermint.ADDRESS_SIZE}")
    for name in ("validators_hash", "next_validators_hash", "consensus_hash", "last_results_hash"):
        _validate_hash(name, getattr(header, name))


def _is_go_zero_time(sig: types_pb2.CommitSig) -> bool:
    """No timestamp at all decodes in Go to the zero time, as does 0001-01-01T00:00:00Z itself."""
    if not sig.HasField("timestamp"):
        return True
    return sig.timestamp.seconds == tendermint.GO_ZERO_TIME_SECONDS and sig.timestamp.nanos == 0


def _validate_commit_sig(sig: types_pb2.CommitSig, index: int) -> None:
    """CometBFT's CommitSig.ValidateBasic."""
    if sig.block_id_flag not in (BLOCK_ID_FLAG_ABSENT, BLOCK_ID_FLAG_COMMIT, BLOCK_ID_FLAG_NIL):
        raise MalformedCommitError(f"commit signature #{index}: unknown block id flag {sig.block_id_flag}")
    if sig.block_id_flag == BLOCK_ID_FLAG_ABSENT:
        if sig.validator_address or sig.signature or not _is_go_zero_time(sig):
            raise MalformedCommitError(f"commit signature #{index} is absent but carries an address, time or signature")
        return
    if len(sig.validator_address) != tendermint.ADDRESS_SIZE:
        raise MalformedCommitError(
            f"commit signature #{index}: expected validator address size to be {tendermint.ADDRESS_SIZE} bytes, "
            f"got {len(sig.validator_address)} bytes")
    if not sig.signature:
        raise MalformedCommitError(f"commit signature #{index}: signature is missing")
    if len(sig.signature) > MAX_SIGNATURE_SIZE:
        raise MalformedCommitError(f"commit signature #{index}: signature is too big (max: {MAX_SIGNATURE_SIZE})")


def validate_commit(commit: types_pb2.Commit) -> None:
    """CometBFT's Commit.ValidateBasic."""
    if commit.height < 0:
        raise MalformedCommitError("negative commit height")
    if commit.round < 0:
        raise MalformedCommitError("negative commit round")
    _validate_block_id("commit block id", commit.block_id, MalformedCommitError)
    if commit.height >= 1:
        if tendermint.is_zero_block_id(commit.block_id):
            raise MalformedCommitError("commit cannot be for nil block")
        if not commit.signatures:
            raise MalformedCommitError("no signatures in commit")
        for index, sig in enumerate(commit.signatures):
            _validate_commit_sig(sig, index)


def validate_signed_header(signed_header: types_pb2.SignedHeader, chain_id: str) -> None:
    """CometBFT's SignedHeader.ValidateBasic: well formed, of `chain_id`, and the commit signs this header."""
    if not signed_header.HasField("header"):
        raise MalformedHeaderError("missing header")
    if not signed_header.HasField("commit"):
        raise MalformedCommitError("missing commit")
    header, commit = signed_header.header, signed_header.commit
    validate_header_fields(header)
    validate_commit(commit)
    if header.chain_id != chain_id:
        raise ChainIdMismatchError(f"header belongs to another chain {header.chain_id!r}, not {chain_id!r}")
    if commit.height != header.height:
        raise CommitHeightMismatchError(f"header and commit height mismatch: {header.height} vs {commit.height}")
    if not header.validators_hash:
        raise CommitBlockIdMismatchError("header has no validators hash, so no hash the commit can sign")
    header_hash = tendermint.compute_header_hash(header)
    if header_hash != commit.block_id.hash:
        raise CommitBlockIdMismatchError(
            f"commit signs block {commit.block_id.hash.hex().upper()}, header is block {header_hash.hex().upper()}")


def _validate_validator(validator: validator_pb2.Validator, name: str) -> None:
    kind = validator.pub_key.WhichOneof("sum")
    if kind is None:
        raise MalformedValidatorSetError(f"{name} does not have a public key")
    size = tendermint.ED25519_PUBLIC_KEY_SIZE if kind == "ed25519" else SECP256K1_PUBLIC_KEY_SIZE
    if len(getattr(validator.pub_key, kind)) != size:
        raise MalformedValidatorSetError(f"{name} has a {kind} public key that is not {size} bytes")
    if validator.voting_power < 0:
        raise MalformedValidatorSetError(f"{name} has negative voting power")
    if validator.address != tendermint.compute_validator_address(validator.pub_key):
        raise MalformedValidatorSetError(f"{name} address is incorrectly derived from its public key")


def validate_validator_set(validator_set: validator_pb2.ValidatorSet) -> int:
    """CometBFT's ValidatorSetFromProto and ValidateBasic; returns the total voting power it recomputes."""
    validators = list(validator_set.validators)
    if not validators:
        raise MalformedValidatorSetError("validator set is nil or empty")
    for index, validator in enumerate(validators):
        _validate_validator(validator, f"validator #{index}")
    if not validator_set.HasField("proposer"):
        raise MalformedValidatorSetError("validator set has no proposer")
    _validate_validator(validator_set.proposer, "proposer")
    total = 0
    for validator in validators:
        total += validator.voting_power
        if total > MAX_TOTAL_VOTING_POWER:
            raise MalformedValidatorSetError(f"total voting power {total} exceeds maximum {MAX_TOTAL_VOTING_POWER}")
    if all(v.address != validator_set.proposer.address for v in validators):
        raise MalformedValidatorSetError("proposer not in validator set")
    if validators != tendermint.sort_validators(validators):
        raise MalformedValidatorSetError("validators are not in voting power order (then address)")
    return total


def compute_validator_set_hash(validator_set: validator_pb2.ValidatorSet) -> bytes:
    return tendermint.compute_validator_set_hash(list(validator_set.validators))


# --- commit verification (types/validation.go) ---------------------------------------------------


def _is_batch_verifiable(validator_set: validator_pb2.ValidatorSet, commit: types_pb2.Commit) -> bool:
    """Go batch-verifies (every tallied signature checked after the tally) ed25519 sets of one key type."""
    kinds = {v.pub_key.WhichOneof("sum") for v in validator_set.validators}
    return (len(commit.signatures) >= BATCH_VERIFY_THRESHOLD
            and validator_set.proposer.pub_key.WhichOneof("sum") == "ed25519" and kinds == {"ed25519"})


def _verify_signature(chain_id: str, commit: types_pb2.Commit, index: int, validator: validator_pb2.Validator) -> None:
    sign_bytes = tendermint.compute_vote_sign_bytes(chain_id, tendermint.compute_commit_vote(commit, index))
    if not tendermint.is_valid_signature(validator.pub_key, sign_bytes, commit.signatures[index].signature):
        raise InvalidSignatureError(
            f"wrong signature (#{index}) from validator {validator.address.hex().upper()}")


def _tally_commit(
    chain_id: str, validator_set: validator_pb2.ValidatorSet, commit: types_pb2.Commit,
    power_needed: int, look_up_by_index: bool, shortfall: type[LightClientError],
) -> None:
    """Signatures for the block must carry more than `power_needed`; stops counting once they do."""
    batch = _is_batch_verifiable(validator_set, commit)
    by_address: dict[bytes, tuple[int, validator_pb2.Validator]] = {}
    for position, validator in enumerate(validator_set.validators):
        by_address.setdefault(validator.address, (position, validator))
    seen: dict[int, int] = {}
    tallied = 0
    counted = []
    for index, sig in enumerate(commit.signatures):
        if sig.block_id_flag != BLOCK_ID_FLAG_COMMIT:
            continue
        if not batch:
            _validate_commit_sig(sig, index)
        if look_up_by_index:
            validator = validator_set.validators[index]
            if validator.address != sig.validator_address:
                raise ValidatorAddressMismatchError(
                    f"validator address mismatch at index {index}: expected {validator.address.hex().upper()}, "
                    f"got {sig.validator_address.hex().upper()}")
        else:
            if sig.validator_address not in by_address:
                continue
            position, validator = by_address[sig.validator_address]
            if position in seen:
                raise DuplicateVoteError(
                    f"double vote from {validator.address.hex().upper()} ({seen[position]} and {index})")
            seen[position] = index
        if batch:
            if len(sig.signature) != tendermint.ED25519_SIGNATURE_SIZE:
                raise InvalidSignatureError(f"signature #{index} is not {tendermint.ED25519_SIGNATURE_SIZE} bytes")
        else:
            _verify_signature(chain_id, commit, index, validator)
        counted.append((index, validator))
        tallied += validator.voting_power
        if tallied > power_needed:
            break
    if tallied <= power_needed:
        raise shortfall(f"invalid commit -- insufficient voting power: got {tallied}, needed more than {power_needed}")
    if batch:
        for index, validator in counted:
            _verify_signature(chain_id, commit, index, validator)


def verify_commit_light(
    chain_id: str, validator_set: validator_pb2.ValidatorSet, block_id: types_pb2.BlockID, height: int,
    commit: types_pb2.Commit,
) -> None:
    """More than 2/3 of `validator_set` signed `commit` for `block_id` at `height`."""
    total = validate_validator_set(validator_set)
    if len(validator_set.validators) != len(commit.signatures):
        raise CommitSignaturesCountError(
            f"invalid commit -- wrong set size: {len(validator_set.validators)} vs {len(commit.signatures)}")
    if height != commit.height:
        raise CommitHeightMismatchError(f"invalid commit -- wrong height: {height} vs {commit.height}")
    if block_id != commit.block_id:
        raise CommitBlockIdMismatchError(
            f"invalid commit -- wrong block id: want {block_id.hash.hex().upper()}, got {commit.block_id.hash.hex().upper()}")
    _tally_commit(chain_id, validator_set, commit, total * 2 // 3, True, NotEnoughVotingPowerError)


def verify_commit_light_trusting(
    chain_id: str, validator_set: validator_pb2.ValidatorSet, commit: types_pb2.Commit, trust_level: Fraction,
) -> None:
    """More than `trust_level` of `validator_set` (not necessarily the set that made the commit) signed it."""
    total = validate_validator_set(validator_set)
    if trust_level.denominator == 0:
        raise InvalidTrustLevelError("trust level has zero denominator")
    if total * trust_level.numerator > MAX_INT64:
        raise InvalidTrustLevelError("int64 overflow while calculating voting power needed")
    needed = total * trust_level.numerator // trust_level.denominator
    _tally_commit(chain_id, validator_set, commit, needed, False, NotEnoughTrustError)


# --- light verification (light/verifier.go) ------------------------------------------------------


def _verify_new_header_and_vals(
    trusted: TrustedHeader, signed_header: types_pb2.SignedHeader, validator_set: validator_pb2.ValidatorSet,
    now: int, max_clock_drift: int,
) -> None:
    validate_signed_header(signed_header, trusted.chain_id)
    header = signed_header.header
    if header.height <= trusted.height:
        raise HeightNotIncreasingError(
            f"expected new header height {header.height} to be greater than one of old header {trusted.height}")
    header_time = tendermint.compute_time_ns(header.time)
    if header_time <= trusted.time:
        raise TimeNotIncreasingError(
            f"expected new header time {header_time} to be after old header time {trusted.time}")
    if header_time >= now + max_clock_drift:
        raise HeaderFromFutureError(
            f"new header has a time from the future {header_time} (now: {now}; max clock drift: {max_clock_drift})")
    validate_validator_set(validator_set)
    if header.validators_hash != compute_validator_set_hash(validator_set):
        raise ValidatorsHashMismatchError(
            f"expected new header validators ({header.validators_hash.hex().upper()}) to match those that were "
            f"supplied at height {header.height}")


def _check_trusted_not_expired(trusted: TrustedHeader, trusting_period: int, now: int) -> None:
    if trusted.time + trusting_period <= now:
        raise TrustingPeriodExpiredError(
            f"old header has expired at {trusted.time + trusting_period} (now: {now})")


def verify_adjacent(
    trusted: TrustedHeader, signed_header: types_pb2.SignedHeader, validator_set: validator_pb2.ValidatorSet,
    trusting_period: int, now: int, max_clock_drift: int,
) -> None:
    header = signed_header.header
    if header.height != trusted.height + 1:
        raise InvalidHeaderHeightError("headers must be adjacent in height")
    _check_trusted_not_expired(trusted, trusting_period, now)
    _verify_new_header_and_vals(trusted, signed_header, validator_set, now, max_clock_drift)
    if header.validators_hash != trusted.next_validators_hash:
        raise NextValidatorsMismatchError(
            f"expected old header next validators ({trusted.next_validators_hash.hex().upper()}) to match those "
            f"from new header ({header.validators_hash.hex().upper()})")
    verify_commit_light(trusted.chain_id, validator_set, signed_header.commit.block_id, header.height,
                        signed_header.commit)


def verify_non_adjacent(
    trusted: TrustedHeader, trusted_validators: validator_pb2.ValidatorSet, signed_header: types_pb2.SignedHeader,
    validator_set: validator_pb2.ValidatorSet, trusting_period: int, now: int, max_clock_drift: int,
    trust_level: Fraction,
) -> None:
    header = signed_header.header
    if header.height == trusted.height + 1:
        raise InvalidHeaderHeightError("headers must be non adjacent in height")
    _check_trusted_not_expired(trusted, trusting_period, now)
    _verify_new_header_and_vals(trusted, signed_header, validator_set, now, max_clock_drift)
    verify_commit_light_trusting(trusted.chain_id, trusted_validators, signed_header.commit, trust_level)
    verify_commit_light(trusted.chain_id, validator_set, signed_header.commit.block_id, header.height,
                        signed_header.commit)


def verify_light(
    trusted: TrustedHeader, trusted_validators: validator_pb2.ValidatorSet, signed_header: types_pb2.SignedHeader,
    validator_set: validator_pb2.ValidatorSet, trusting_period: int, now: int, max_clock_drift: int,
    trust_level: Fraction = DEFAULT_TRUST_LEVEL,
) -> None:
    """CometBFT light.Verify: adjacent when the new header is the next height, skipping otherwise."""
    if signed_header.header.height != trusted.height + 1:
        verify_non_adjacent(trusted, trusted_validators, signed_header, validator_set, trusting_period, now,
                            max_clock_drift, trust_level)
    else:
        verify_adjacent(trusted, signed_header, validator_set, trusting_period, now, max_clock_drift)


# --- 07-tendermint client messages ---------------------------------------------------------------


def validate_header(header: Header) -> None:
    """ibc-go Header.ValidateBasic."""
    signed_header = header.signed_header
    validate_signed_header(signed_header, signed_header.header.chain_id)
    height = get_header_height(header)
    if header.trusted_height >= height:
        raise InvalidHeaderHeightError(f"trusted height {header.trusted_height} must be less than header height {height}")
    validate_validator_set(header.validator_set)
    if signed_header.header.validators_hash != compute_validator_set_hash(header.validator_set):
        raise ValidatorsHashMismatchError("validator set does not match hash")


def _check_trusted_validators(header: Header, consensus_state: ConsensusState) -> None:
    validate_validator_set(header.trusted_validators)
    trusted_hash = compute_validator_set_hash(header.trusted_validators)
    if trusted_hash != consensus_state.next_validators_hash:
        raise TrustedValidatorsMismatchError(
            f"trusted validators do not hash to latest trusted validators. "
            f"Expected: {consensus_state.next_validators_hash.hex().upper()}, got: {trusted_hash.hex().upper()}")


def verify_header(client_state: ClientState, trusted_consensus_state: ConsensusState, header: Header, now: int) -> None:
    """ibc-go verifyHeader: `header` would move the client on from the consensus state at its trusted height."""
    validate_header(header)
    _check_trusted_validators(header, trusted_consensus_state)
    height = get_header_height(header)
    if height.revision_number != header.trusted_height.revision_number:
        raise InvalidHeaderHeightError(
            f"header height revision {height.revision_number} does not match trusted header revision "
            f"{header.trusted_height.revision_number}")
    if height <= header.trusted_height:
        raise HeightNotIncreasingError(f"header height ≤ consensus state height ({height} ≤ {header.trusted_height})")
    trusted = TrustedHeader(
        chain_id=client_state.chain_id, height=header.trusted_height.revision_height,
        time=trusted_consensus_state.timestamp, next_validators_hash=trusted_consensus_state.next_validators_hash)
    verify_light(trusted, header.trusted_validators, header.signed_header, header.validator_set,
                 client_state.trusting_period, now, client_state.max_clock_drift, client_state.trust_level)


def validate_misbehaviour(misbehaviour: Misbehaviour) -> None:
    """ibc-go Misbehaviour.ValidateBasic."""
    header_1, header_2 = misbehaviour.header_1, misbehaviour.header_2
    for name, header in (("header 1", header_1), ("header 2", header_2)):
        if header.trusted_height.revision_height == 0:
            raise InvalidHeaderHeightError(f"misbehaviour {name} cannot have zero revision height")
        if not header.trusted_validators.validators:
            raise MalformedValidatorSetError(f"trusted validator set in misbehaviour {name} cannot be empty")
    if header_1.signed_header.header.chain_id != header_2.signed_header.header.chain_id:
        raise InvalidMisbehaviourError("headers must have identical chain ids")
    host.validate_client_identifier(misbehaviour.client_id)
    validate_header(header_1)
    validate_header(header_2)
    if get_header_height(header_1) < get_header_height(header_2):
        raise InvalidMisbehaviourError(
            f"header 1 height is less than header 2 height ({get_header_height(header_1)} < {get_header_height(header_2)})")
    for header in (header_1, header_2):
        commit = header.signed_header.commit
        verify_commit_light(header.signed_header.header.chain_id, header.validator_set, commit.block_id,
                            commit.height, commit)


def _check_misbehaviour_header(
    client_state: ClientState, consensus_state: ConsensusState, header: Header, now: int,
) -> None:
    _check_trusted_validators(header, consensus_state)
    if now - consensus_state.timestamp >= client_state.trusting_period:
        raise TrustingPeriodExpiredError(
            f"current timestamp minus the latest consensus state timestamp is greater than or equal to the "
            f"trusting period ({now - consensus_state.timestamp} >= {client_state.trusting_period})")
    chain_id = client_state.chain_id
    if is_revision_format(chain_id):
        chain_id = f"{chain_id.rsplit('-', 1)[0]}-{get_header_height(header).revision_number}"
    verify_commit_light_trusting(chain_id, header.trusted_validators, header.signed_header.commit,
                                 client_state.trust_level)


def verify_misbehaviour(
    client_state: ClientState, consensus_state_1: ConsensusState, consensus_state_2: ConsensusState,
    misbehaviour: Misbehaviour, now: int,
) -> None:
    """Both conflicting headers would have convinced the client from their trusted consensus states."""
    validate_misbehaviour(misbehaviour)
    _check_misbehaviour_header(client_state, consensus_state_1, misbehaviour.header_1, now)
    _check_misbehaviour_header(client_state, consensus_state_2, misbehaviour.header_2, now)


def is_misbehaviour(misbehaviour: Misbehaviour) -> bool:
    """Two commits for different blocks at one height, or a higher header not later in time (a BFT time violation)."""
    header_1, header_2 = misbehaviour.header_1, misbehaviour.header_2
    if get_header_height(header_1) == get_header_height(header_2):
        return header_1.signed_header.commit.block_id.hash != header_2.signed_header.commit.block_id.hash
    time_1 = tendermint.compute_time_ns(header_1.signed_header.header.time)
    time_2 = tendermint.compute_time_ns(header_2.signed_header.header.time)
    return time_1 <= time_2


def is_header_misbehaviour(
    header: Header, existing: ConsensusState | None, previous: ConsensusState | None, following: ConsensusState | None,
) -> bool:
    """A verified header conflicts with what the client stored: another consensus state at its height, or a
    time not strictly between the consensus states below and above it."""
    consensus_state = compute_consensus_state(header)
    if existing is not None:
        return existing != consensus_state
    if previous is not None and previous.timestamp >= consensus_state.timestamp:
        return True
    return following is not None and following.timestamp <= consensus_state.timestamp


def _get_neighbours(
    consensus_states: Mapping[Height, ConsensusState], height: Height,
) -> tuple[ConsensusState | None, ConsensusState | None]:
    below = [h for h in consensus_states if h < height]
    above = [h for h in consensus_states if h > height]
    return (consensus_states[max(below)] if below else None, consensus_states[min(above)] if above else None)


def _get_trusted(consensus_states: Mapping[Height, ConsensusState], height: Height, name: str) -> ConsensusState:
    if height not in consensus_states:
        raise ConsensusStateNotFoundError(f"no consensus state for {name} at trusted height {height}")
    return consensus_states[height]


def freeze_client(client_state: ClientState) -> ClientState:
    return replace(client_state, frozen_height=FROZEN_HEIGHT)


def update_client(
    client_state: ClientState, consensus_states: Mapping[Height, ConsensusState], message: Header | Misbehaviour,
    now: int,
) -> ClientUpdate:
    """ibc-go UpdateClient for a 07-tendermint client: the client must be active, the message must verify;
    misbehaviour freezes the client, a new header stores its consensus state (a repeated one changes nothing)."""
    status = get_client_status(client_state, consensus_states.get(client_state.latest_height), now)
    if status == STATUS_FROZEN:
        raise ClientFrozenError("cannot update client with status Frozen")
    if status == STATUS_EXPIRED:
        raise ClientExpiredError("cannot update client with status Expired")
    if isinstance(message, Misbehaviour):
        verify_misbehaviour(
            client_state, _get_trusted(consensus_states, message.header_1.trusted_height, "header 1"),
            _get_trusted(consensus_states, message.header_2.trusted_height, "header 2"), message, now)
        if is_misbehaviour(message):
            return ClientUpdate(freeze_client(client_state))
        return ClientUpdate(client_state)
    verify_header(client_state, _get_trusted(consensus_states, message.trusted_height, "header"), message, now)
    height = get_header_height(message)
    existing = consensus_states.get(height)
    previous, following = _get_neighbours(consensus_states, height)
    if is_header_misbehaviour(message, existing, previous, following):
        return ClientUpdate(freeze_client(client_state))
    if existing is not None:
        return ClientUpdate(client_state, height)
    latest = max(client_state.latest_height, height)
    return ClientUpdate(replace(client_state, latest_height=latest), height, compute_consensus_state(message))
