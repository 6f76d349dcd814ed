"""Heat: how a provider's temperature moves its price, and how validators' readings reach the chain.

Readings (millicelsius, milliwatts) come two ways: a provider's own MsgReportHeat, and the vote
extension of the validator it is linked to. ExtendVote attaches the node's reading
(`compute_vote_extension`), VerifyVoteExtension checks it (`check_vote_extension`), the next proposer
puts the whole extended commit first in its block as a heat tx (`compute_heat_tx`), and every node
checks that tx against the commit it was given in ProcessProposal (`check_heat_tx`). A heat tx starts
with a zero byte, which is never the start of a protobuf TxRaw (field number 0 does not exist), so it
cannot be mistaken for a signed transaction and CheckTx rejects it.

The curves, all parametrised by HeatParams (temperatures in millicelsius, weights in basis points):
- moving average: each reading moves the average by `ema_weight_bps` of the difference; a zone's
  average moves by that weight divided by its number of providers, so a zone moves about as fast as
  one provider and no single report dominates it;
- stale decay: once an average is `stale_blocks` old its excess over ambient halves every
  `half_life_blocks`, so a silent provider drifts back to ambient;
- premium: between warm and critical the effective ask is ask · (critical − warm) / (critical − T),
  1× at warm, 2× half way, unbounded near critical; at or above critical the provider is withdrawn;
- zone discount: a provider that is not warm itself gets `zone_discount_bps_per_kelvin` off per
  kelvin it is cooler than its zone's average (capped at `max_zone_discount_bps`). A hot provider
  lifts its zone's average, so its cool neighbours in the same zone get cheaper and the work it
  loses goes to them first; in a zone of equal temperatures nobody gets a discount.
"""

import hashlib
from dataclasses import dataclass

import nacl.exceptions
import nacl.signing
from google.protobuf.message import DecodeError

from chain.proto.tendermint.abci import types_pb2 as abci
from chain.proto.tendermint.types import types_pb2, validator_pb2
from ibc import tendermint

BPS = 10_000
MILLIKELVIN_PER_KELVIN = 1000
MIN_TEMPERATURE_MILLICELSIUS = -40_000
MAX_TEMPERATURE_MILLICELSIUS = 150_000
MAX_POWER_MILLIWATTS = 10**10
VOTE_EXTENSION_VERSION = 1
VOTE_EXTENSION_LENGTH = 13
HEAT_TX_PREFIX = b"\x00maxwell/heat/v1\x00"
ED25519_PUBKEY_LENGTH = 32
CONSENSUS_ADDRESS_LENGTH = 20
COMMIT = validator_pb2.BLOCK_ID_FLAG_COMMIT


class HeatError(ValueError):
    pass


class ReadingOutOfRange(HeatError):
    pass


class MalformedVoteExtension(HeatError):
    pass


class OversizedVoteExtension(HeatError):
    pass


class MalformedHeatTx(HeatError):
    pass


class HeatTxMismatch(HeatError):
    """The heat tx's votes are not the votes of the commit the block builds on."""


class UnknownValidator(HeatError):
    pass


class BadExtensionSignature(HeatError):
    pass


@dataclass(frozen=True)
class HeatReading:
    temperature_millicelsius: int
    power_milliwatts: int


def check_reading(reading: HeatReading) -> HeatReading:
    if not MIN_TEMPERATURE_MILLICELSIUS <= reading.temperature_millicelsius <= MAX_TEMPERATURE_MILLICELSIUS:
        raise ReadingOutOfRange(
            f"temperature {reading.temperature_millicelsius} m°C is outside "
            f"[{MIN_TEMPERATURE_MILLICELSIUS}, {MAX_TEMPERATURE_MILLICELSIUS}]"
        )
    if not 0 <= reading.power_milliwatts <= MAX_POWER_MILLIWATTS:
        raise ReadingOutOfRange(f"power {reading.power_milliwatts} mW is outside [0, {MAX_POWER_MILLIWATTS}]")
    return reading


# --- curves --------------------------------------------------------------------------------

def compute_moving_average(average: int, reading: int, weight_bps: int, divisor: int = 1) -> int:
    return average + (reading - average) * weight_bps // (BPS * divisor)


def compute_decayed(value: int, updated_height: int, height: int, params) -> int:
    elapsed = height - updated_height
    if elapsed <= params.stale_blocks:
        return value
    halvings = -(-(elapsed - params.stale_blocks) // params.half_life_blocks)
    excess = value - params.ambient_millicelsius
    shrunk = abs(excess) >> halvings
    return params.ambient_millicelsius + (shrunk if excess >= 0 else -shrunk)


def compute_zone_discount_bps(temperature: int, zone_temperature: int, params) -> int:
    if temperature > params.warm_millicelsius or zone_temperature <= temperature:
        return 0
    cooler = zone_temperature - temperature
    return min(params.max_zone_discount_bps, cooler * params.zone_discount_bps_per_kelvin // MILLIKELVIN_PER_KELVIN)


def compute_effective_ask(ask: int, temperature: int, zone_temperature: int, params) -> int | None:
    """The ask the market clears on; None when the provider is at or above the critical temperature."""
    critical, warm = params.critical_millicelsius, params.warm_millicelsius
    if temperature >= critical:
        return None
    numerator, denominator = 1, 1
    if temperature > warm:
        numerator, denominator = critical - warm, critical - temperature
    discount = compute_zone_discount_bps(temperature, zone_temperature, params)
    return -(-ask * numerator * (BPS - discount) // (denominator * BPS))


# --- vote extensions -----------------------------------------------------------------------

def compute_vote_extension(reading: HeatReading) -> bytes:
    """version (1 byte) || temperature (int32, big-endian) || power (uint64, big-endian)."""
    check_reading(reading)
    return (
        bytes((VOTE_EXTENSION_VERSION,))
        + reading.temperature_millicelsius.to_bytes(4, "big", signed=True)
        + reading.power_milliwatts.to_bytes(8, "big")
    )


def check_vote_extension(data: bytes) -> HeatReading | None:
    """The reading in a vote extension; None for an empty one (a node without a sensor)."""
    if not data:
        return None
    if len(data) > VOTE_EXTENSION_LENGTH:
        raise OversizedVoteExtension(f"vote extension of {len(data)} bytes; a heat reading is {VOTE_EXTENSION_LENGTH}")
    if len(data) != VOTE_EXTENSION_LENGTH or data[0] != VOTE_EXTENSION_VERSION:
        raise MalformedVoteExtension(f"vote extension {bytes(data).hex()} is not a version-{VOTE_EXTENSION_VERSION} heat reading")
    return check_reading(HeatReading(int.from_bytes(data[1:5], "big", signed=True), int.from_bytes(data[5:], "big")))


def compute_vote_extension_sign_bytes(chain_id: str, height: int, round_: int, extension: bytes) -> bytes:
    """What a validator signs for its extension: a length-delimited CanonicalVoteExtension."""
    vote = types_pb2.Vote(height=height, round=round_, extension=extension)
    return tendermint.compute_vote_extension_sign_bytes(chain_id, vote)


def compute_consensus_address(public_key: bytes) -> bytes:
    """CometBFT's address of an ed25519 key."""
    return hashlib.sha256(public_key).digest()[:CONSENSUS_ADDRESS_LENGTH]


# --- the heat tx ---------------------------------------------------------------------------

def is_heat_tx(tx: bytes) -> bool:
    return tx.startswith(HEAT_TX_PREFIX)


def compute_heat_tx(extended_commit_info: abci.ExtendedCommitInfo) -> bytes | None:
    """The tx a proposer puts first in its block; None when no vote carries a reading."""
    if not any(vote.vote_extension for vote in extended_commit_info.votes):
        return None
    return HEAT_TX_PREFIX + extended_commit_info.SerializeToString()


def decode_heat_tx(tx: bytes) -> abci.ExtendedCommitInfo:
    if not is_heat_tx(tx):
        raise MalformedHeatTx("not a heat tx: missing prefix")
    body = tx[len(HEAT_TX_PREFIX):]
    try:
        info = abci.ExtendedCommitInfo.FromString(body)
    except DecodeError as error:
        raise MalformedHeatTx(f"heat tx does not hold an extended commit: {error}") from None
    if info.SerializeToString() != body:
        raise MalformedHeatTx("heat tx is not canonically encoded")
    return info


def compute_heat_readings(info: abci.ExtendedCommitInfo) -> list[tuple[bytes, HeatReading]]:
    """(consensus address, reading) of every committed vote that carries one, in commit order."""
    readings = []
    for vote in info.votes:
        reading = check_vote_extension(vote.vote_extension)
        if reading is not None:
            readings.append((vote.validator.address, reading))
    return readings


def check_heat_tx(tx: bytes, commit_info: abci.CommitInfo, *, chain_id: str, height: int,
                  validator_keys: dict[bytes, bytes]) -> list[tuple[bytes, HeatReading]]:
    """The readings of a proposed heat tx, after checking it is the extended form of `commit_info`.

    `height` is the height of that commit (the block's height − 1); `validator_keys` maps consensus
    addresses to ed25519 public keys. Votes must match one for one (address, power, flag, round);
    only votes for the block carry an extension, and each extension must be signed by its validator.
    """
    info = decode_heat_tx(tx)
    if info.round != commit_info.round or len(info.votes) != len(commit_info.votes):
        raise HeatTxMismatch(f"heat tx has {len(info.votes)} votes in round {info.round}; "
                             f"the commit has {len(commit_info.votes)} in round {commit_info.round}")
    for index, (extended, vote) in enumerate(zip(info.votes, commit_info.votes)):
        if (extended.validator.address, extended.validator.power, extended.block_id_flag) != (
            vote.validator.address, vote.validator.power, vote.block_id_flag
        ):
            raise HeatTxMismatch(f"heat tx vote {index} differs from the commit's")
        if extended.block_id_flag != COMMIT:
            if extended.vote_extension or extended.extension_signature:
                raise HeatTxMismatch(f"vote {index} did not commit the block yet carries an extension")
            continue
        if not extended.vote_extension:
            continue
        check_vote_extension(extended.vote_extension)
        public_key = validator_keys.get(extended.validator.address)
        if public_key is None:
            raise UnknownValidator(f"vote {index} is from unknown validator {extended.validator.address.hex()}")
        message = compute_vote_extension_sign_bytes(chain_id, height, info.round, extended.vote_extension)
        try:
            nacl.signing.VerifyKey(public_key).verify(message, extended.extension_signature)
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, TypeError):
            raise BadExtensionSignature(f"vote {index}: extension signature does not verify") from None
    return compute_heat_readings(info)
