"""The heat component: how a provider's temperature moves its price, and how readings reach the chain.

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

from dataclasses import dataclass

import nacl.exceptions
import nacl.signing
from google.protobuf.message import DecodeError

from chain import crypto, staking
from chain.errors import GenesisError, TxError
from chain.genesis import decode_genesis, encode_json
from chain.proto.maxwell.market.v1 import market_pb2, tx_pb2
from chain.proto.tendermint.abci import types_pb2 as abci
from chain.proto.tendermint.types import types_pb2, validator_pb2
from chain.state import (
    MessageHandler, decode_key as decode_key_of, encode_key, get_message, get_messages, get_shared_message,
    iterate_prefix, public, set_message,
)
from chain.tx import compute_type_url, parse_address
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
ED25519_SIGNATURE_LENGTH = 64
COMMIT = validator_pb2.BLOCK_ID_FLAG_COMMIT
LINK_DOMAIN = b"maxwell/market/link-validator\x00"
PROVIDER_SOURCE = "provider"
VALIDATOR_SOURCE = "validator"

STORE = "heat"
CODESPACE = "heat"

PARAMS = 0x01
HEAT = 0x10
ZONE_HEAT = 0x11
MEMBER = 0x12
LINK = 0x13
VALIDATOR_KEY = 0x14
KEYS = {PARAMS: (), HEAT: (bytes,), ZONE_HEAT: (str,), MEMBER: (bytes,), LINK: (bytes,), VALIDATOR_KEY: (bytes,)}

DEFAULT_PARAMS = market_pb2.HeatParams(
    ambient_millicelsius=25_000,
    warm_millicelsius=70_000,
    critical_millicelsius=90_000,
    ema_weight_bps=5000,
    stale_blocks=10,
    half_life_blocks=10,
    zone_discount_bps_per_kelvin=100,
    max_zone_discount_bps=3000,
)


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


class HeatTxError(TxError):
    codespace = CODESPACE


class NotServingError(HeatTxError):
    code = 2


class HeatReadingError(HeatTxError):
    code = 3


class HeatAlreadyReportedError(HeatTxError):
    code = 4


class ValidatorLinkError(HeatTxError):
    code = 5


class ValidatorLinkedError(HeatTxError):
    code = 6


class InvalidParams(GenesisError):
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


# --- state: params, readings, zones, members, validator links ------------------------------

def state_key(kind: int, *parts) -> bytes:
    return encode_key(kind, *parts)


def decode_key(key: bytes) -> tuple:
    return decode_key_of(key, KEYS)


@public(STORE)
def get_params(state) -> market_pb2.HeatParams:
    """The params (a shared, read-only message)."""
    return get_shared_message(state, market_pb2.HeatParams, state_key(PARAMS))


def check_params(params: market_pb2.HeatParams) -> None:
    if not params.ambient_millicelsius < params.warm_millicelsius < params.critical_millicelsius:
        raise InvalidParams("heat params: ambient < warm < critical")
    if not 0 < params.ema_weight_bps <= BPS or params.max_zone_discount_bps >= BPS or params.half_life_blocks < 1:
        raise InvalidParams("heat params: ema_weight_bps in (0, 10000], max_zone_discount_bps < 10000, half_life_blocks ≥ 1")


@public(STORE)
def get_heat(state, address: bytes) -> market_pb2.Heat | None:
    return get_message(state, market_pb2.Heat, state_key(HEAT, address))


@public(STORE)
def get_zone(state, zone: str) -> market_pb2.ZoneHeat | None:
    return get_message(state, market_pb2.ZoneHeat, state_key(ZONE_HEAT, zone))


def _get_member_zone(state, address: bytes) -> str | None:
    raw = state.get(state_key(MEMBER, address))
    return None if raw is None else raw.decode()


def _process_zone_count(state, zone: str, change: int, height: int) -> None:
    record = get_zone(state, zone) or market_pb2.ZoneHeat(
        zone=zone, temperature_millicelsius=get_params(state).ambient_millicelsius, updated_height=height)
    record.providers += change
    if record.providers:
        set_message(state, state_key(ZONE_HEAT, zone), record)
    else:
        state.delete(state_key(ZONE_HEAT, zone))


@public(STORE)
def process_join(state, ctx, address: bytes, zone: str) -> None:
    """An active provider in `zone`: its readings now count, and it counts in its zone's average."""
    previous = _get_member_zone(state, address)
    if previous == zone:
        return
    if previous is not None:
        _process_zone_count(state, previous, -1, ctx.height)
    _process_zone_count(state, zone, +1, ctx.height)
    state.set(state_key(MEMBER, address), zone.encode())


@public(STORE)
def process_leave(state, ctx, address: bytes) -> None:
    """The provider stops serving (unbonding): its readings are dropped from now on."""
    zone = _get_member_zone(state, address)
    if zone is not None:
        _process_zone_count(state, zone, -1, ctx.height)
        state.delete(state_key(MEMBER, address))


@public(STORE)
def process_forget(state, address: bytes, consensus_address: bytes) -> None:
    """The provider is gone: its readings and its validator link are erased."""
    state.delete(state_key(HEAT, address))
    if consensus_address:
        state.delete(state_key(LINK, consensus_address))


def compute_link_sign_bytes(chain_id: str, provider: bytes) -> bytes:
    """What a validator's consensus key signs to report heat for `provider`."""
    return LINK_DOMAIN + chain_id.encode() + b"\x00" + provider


def check_link_fields(public_key: bytes, signature: bytes) -> None:
    if (len(public_key), len(signature)) not in ((0, 0), (ED25519_PUBKEY_LENGTH, ED25519_SIGNATURE_LENGTH)):
        raise ValidatorLinkError("a validator link is a 32-byte ed25519 public key and its 64-byte signature")


@public(STORE)
def process_link(state, ctx, address: bytes, public_key: bytes, signature: bytes, previous: bytes) -> bytes:
    """Link the validator of `public_key` (which signed the link) to the provider; returns its consensus
    address. `previous` is the provider's earlier link, which this one replaces."""
    try:
        nacl.signing.VerifyKey(public_key).verify(compute_link_sign_bytes(ctx.chain_id, address), signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, TypeError):
        raise ValidatorLinkError("validator signature over the link sign bytes does not verify") from None
    consensus = tendermint.compute_consensus_address(public_key)
    linked = state.get(state_key(LINK, consensus))
    if linked is not None and linked != address:
        raise ValidatorLinkedError(f"validator {consensus.hex()} already reports heat for {crypto.encode_address(linked)}")
    if previous and previous != consensus:
        state.delete(state_key(LINK, previous))
    state.set(state_key(LINK, consensus), address)
    return consensus


@public(STORE)
def get_validator_keys(state) -> dict[bytes, bytes]:
    """Consensus address -> ed25519 public key of the validators whose extensions are checked: staking's
    validators once they are the consensus set, else InitChain's."""
    if staking.is_managing_validator_set(state):
        return staking.get_consensus_keys(state)
    return {decode_key(key)[0]: value for key, value in iterate_prefix(state, state_key(VALIDATOR_KEY))}


# --- temperatures and the effective ask ----------------------------------------------------

@public(STORE)
def get_temperatures(state, address: bytes, zone: str, height: int, zones: dict | None = None) -> tuple[int, int]:
    """(provider, zone) moving averages decayed to `height`; ambient where nothing was reported.

    `zones` caches zone temperatures across the providers of one clearing."""
    params = get_params(state)
    record = get_heat(state, address)
    own = params.ambient_millicelsius if record is None else compute_decayed(
        record.temperature_millicelsius, record.updated_height, height, params)
    if zones is not None and zone in zones:
        return own, zones[zone]
    zone_record = get_zone(state, zone)
    zone_temperature = params.ambient_millicelsius if zone_record is None else compute_decayed(
        zone_record.temperature_millicelsius, zone_record.updated_height, height, params)
    if zones is not None:
        zones[zone] = zone_temperature
    return own, zone_temperature


@public(STORE)
def get_effective_ask(state, address: bytes, zone: str, ask: int, height: int, zones: dict | None = None) -> int | None:
    """The heat-adjusted ask of a serving provider; None at or above the critical temperature."""
    own, zone_temperature = get_temperatures(state, address, zone, height, zones)
    return compute_effective_ask(ask, own, zone_temperature, get_params(state))


def process_heat_reading(state, ctx, address: bytes, zone: str, reading: HeatReading, source: str) -> market_pb2.Heat:
    params = get_params(state)
    provider = crypto.encode_address(address)
    record = get_heat(state, address)
    if record is None:
        record = market_pb2.Heat(provider=provider, temperature_millicelsius=reading.temperature_millicelsius,
                                 power_milliwatts=reading.power_milliwatts)
    else:
        current = compute_decayed(record.temperature_millicelsius, record.updated_height, ctx.height, params)
        record.temperature_millicelsius = compute_moving_average(current, reading.temperature_millicelsius, params.ema_weight_bps)
        record.power_milliwatts = compute_moving_average(record.power_milliwatts, reading.power_milliwatts, params.ema_weight_bps)
    record.updated_height = ctx.height
    if source == PROVIDER_SOURCE:
        record.reported_height = ctx.height
    set_message(state, state_key(HEAT, address), record)
    zone_record = get_zone(state, zone)
    current = compute_decayed(zone_record.temperature_millicelsius, zone_record.updated_height, ctx.height, params)
    zone_record.temperature_millicelsius = compute_moving_average(
        current, reading.temperature_millicelsius, params.ema_weight_bps, zone_record.providers)
    zone_record.updated_height = ctx.height
    set_message(state, state_key(ZONE_HEAT, zone), zone_record)
    ctx.emit("heat_reported", ("provider", provider), ("source", source),
             ("temperature_millicelsius", str(record.temperature_millicelsius)),
             ("zone_temperature_millicelsius", str(zone_record.temperature_millicelsius)))
    return record


# --- MsgReportHeat -------------------------------------------------------------------------

def signer_report_heat(msg: tx_pb2.MsgReportHeat) -> bytes:
    return parse_address(msg.provider)


def check_stateless_report_heat(msg: tx_pb2.MsgReportHeat) -> None:
    parse_address(msg.provider)
    try:
        check_reading(HeatReading(msg.temperature_millicelsius, msg.power_milliwatts))
    except ReadingOutOfRange as error:
        raise HeatReadingError(f"invalid heat report: {error}") from None


def check_and_execute_report_heat(state, ctx, msg: tx_pb2.MsgReportHeat) -> tx_pb2.MsgReportHeatResponse:
    address = parse_address(msg.provider)
    zone = _get_member_zone(state, address)
    if zone is None:
        raise NotServingError(f"{msg.provider} is not a registered provider, or is unbonding")
    previous = get_heat(state, address)
    if previous is not None and previous.reported_height == ctx.height:
        raise HeatAlreadyReportedError(f"provider {msg.provider} already reported heat at height {ctx.height}")
    reading = HeatReading(msg.temperature_millicelsius, msg.power_milliwatts)
    process_heat_reading(state, ctx, address, zone, reading, PROVIDER_SOURCE)
    return tx_pb2.MsgReportHeatResponse()


MESSAGES = {
    compute_type_url(tx_pb2.MsgReportHeat): MessageHandler(
        tx_pb2.MsgReportHeat, signer_report_heat, check_stateless_report_heat, check_and_execute_report_heat),
}


# --- begin block: the heat tx --------------------------------------------------------------

def begin_block(state, ctx) -> None:
    """Apply the readings of the block's heat tx (checked in ProcessProposal) to their providers.

    Readings of validators not linked to an active provider are dropped, and so is a heat tx that
    does not decode (a proposal no validator accepted).
    """
    if not ctx.txs or not is_heat_tx(ctx.txs[0]):
        return
    try:
        readings = compute_heat_readings(decode_heat_tx(ctx.txs[0]))
    except HeatError:
        return
    for consensus, reading in readings:
        address = state.get(state_key(LINK, consensus))
        zone = None if address is None else _get_member_zone(state, address)
        if zone is not None:
            process_heat_reading(state, ctx, address, zone, reading, VALIDATOR_SOURCE)


# --- genesis -------------------------------------------------------------------------------

def init_chain(state, section: dict, ctx) -> None:
    """Params, readings, zones, members and links (from an export); the validators' keys of InitChain."""
    genesis = decode_genesis(section, market_pb2.HeatGenesisState, DEFAULT_PARAMS, STORE)
    check_params(genesis.params)
    set_message(state, state_key(PARAMS), genesis.params)
    try:
        for record in genesis.heat:
            set_message(state, state_key(HEAT, crypto.decode_address(record.provider)), record)
        for zone in genesis.zones:
            set_message(state, state_key(ZONE_HEAT, zone.zone), zone)
        for member in genesis.members:
            state.set(state_key(MEMBER, crypto.decode_address(member.provider)), member.zone.encode())
        for link in genesis.links:
            state.set(state_key(LINK, link.consensus_address), crypto.decode_address(link.provider))
    except (crypto.InvalidAddress, ValueError) as error:
        raise GenesisError(f"heat genesis: {error}") from None
    for public_key in ctx.validators:
        state.set(state_key(VALIDATOR_KEY, tendermint.compute_consensus_address(public_key)), public_key)


@public(STORE)
def export_genesis(state) -> dict:
    genesis = market_pb2.HeatGenesisState(
        params=get_params(state),
        heat=get_messages(state, market_pb2.Heat, state_key(HEAT)),
        zones=get_messages(state, market_pb2.ZoneHeat, state_key(ZONE_HEAT)),
        members=[market_pb2.HeatMember(provider=crypto.encode_address(decode_key(key)[0]), zone=raw.decode())
                 for key, raw in iterate_prefix(state, state_key(MEMBER))],
        links=[market_pb2.ValidatorLink(consensus_address=decode_key(key)[0], provider=crypto.encode_address(raw))
               for key, raw in iterate_prefix(state, state_key(LINK))],
    )
    return encode_json(genesis)
