"""The compute market: providers sell execution slots, orders buy them, and every block clears.

Work kinds are `process` and `inference/<model>` for each model in the params. Every provider serves
process work and the models it lists, from one budget of `slots_per_block` per block.

Orders. An inference order buys one slot for one task (`task_ref`, one layer of an inference
request); when matched it becomes an assignment the provider must prove within the deadline. A
process order (MsgBid on `process`) leases slots: each matched slot is paid at once and the order
rests until all its slots are filled. A process (MsgStartProcess) holds a standing process order
that bids again every block. The maximum payment is escrowed when an order is placed and what is
left is refunded when it ends (filled, proven, cancelled or expired).

Clearing rule, per work kind in every end_block. Demand units (one per slot) are ranked by max price,
highest first, older orders first at equal prices; supply units by effective ask (heat-adjusted, see
chain.heat), lowest first, lower provider address first at equal asks. Units are matched while the
bid is at least the ask and the provider has slots left this block. The k matched units trade at one
price p = max(a_k, b_k+1): the highest matched ask or the highest losing bid, whichever is higher
(a_k when every bid matched). Properties:
- every matched bid is ≥ p and every matched effective ask is ≤ p: nobody pays above its bid or is
  paid below its effective ask (a provider taking a zone discount accepts up to that discount below
  its stated ask: the price of taking its hot neighbours' load);
- for unit-demand bidders truthful bidding is a dominant strategy: p is exactly the lowest bid with
  which a winner would still have won, which its own bid never sets; a loser could only win by
  outbidding that threshold, and would then pay it, no less than its own value. (Bidders for several
  slots can gain by shading the unit that sets b_k+1, and the marginal provider can set a_k: the
  rule is truthful for unit demand only.)
- clearing walks the book from its best end and stops at the first losing unit, so it reads the
  matched orders plus one, however deep the book; the supply side reads every provider.
Work kinds clear in a fixed order (process, then the models in params order), each using the slots
the previous ones left, so no provider is matched beyond its slots in a block. A protocol fee
(`protocol_fee_bps` of p) of every paid slot goes to the fee pool. Leases are paid at once, inference
tasks when their proof is verified (`process_task_proven`); a task unproven at its deadline slashes
`slash_bps` of its provider's stake to the requester and goes back in the book. A provider whose
stake falls below `min_stake` is withdrawn until it adds stake.

Money: escrows live in the ESCROW module account, stakes in STAKE; the fee pool is the fee
collector. The module's records account for both balances exactly.

Store layout (`encode_key`; ints are 32-byte big-endian so they sort numerically):
    0x01                          -> Params
    0x02 / 0x03                   -> next order id / next process id
    0x10 | provider               -> Provider
    0x11 | work                   -> slots offered for the work by active providers
    0x12 | height | provider      -> unbonding ends at height
    0x13 | consensus address      -> provider linked to the validator
    0x14 | provider               -> Heat
    0x15 | zone                   -> ZoneHeat
    0x16 | consensus address      -> the validator's ed25519 public key (from InitChain)
    0x20 | order id               -> Order
    0x21 | work | 2^256-1-price | order id -> the book, best bid first
    0x22 | height | order id      -> the order expires at the end of height
    0x23 | task ref               -> order id of a task waiting in the book
    0x24 | task ref               -> Assignment
    0x25 | height | task ref      -> the assignment's deadline
    0x26 | work                   -> the last Clearing
    0x30 | process id             -> Process
    0x31 | process id | key       -> memory value
    0x32 | height | process id    -> memory rent exhausts the escrow at height
"""

import re
from dataclasses import dataclass
from functools import lru_cache

import nacl.exceptions
import nacl.signing
from google.protobuf import json_format

from chain import auth, bank, crypto, heat, process
from chain.coins import DENOM, UINT256_MAX
from chain.errors import NotFoundError, TxError
from chain.proto.maxwell.market.v1 import market_pb2, query_pb2, tx_pb2
from chain.state import MessageHandler, compute_prefix_end, encode_key, get_message, get_messages, iterate_prefix
from chain.tx import compute_type_url, parse_address

STORE = "market"
CODESPACE = "market"
ESCROW = bank.compute_module_address("market_escrow")
STAKE = bank.compute_module_address("market_stake")
PROCESS_WORK = "process"
INFERENCE_PREFIX = "inference/"
BPS = 10_000
DEFAULT_PAGE = 100
MAX_PAGE = 1000
MAX_TASK_REF_BYTES = 128
MAX_MEMORY_KEY_BYTES = 64
LINK_DOMAIN = b"maxwell/market/link-validator\x00"
PROVIDER_SOURCE = "provider"
VALIDATOR_SOURCE = "validator"
ED25519_SIGNATURE_LENGTH = 64
MODEL_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
ZONE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
AMOUNT_PATTERN = re.compile(r"[0-9]{1,78}")

PARAMS = 0x01
NEXT_ORDER_ID = 0x02
NEXT_PROCESS_ID = 0x03
PROVIDER = 0x10
CAPACITY = 0x11
UNBONDING = 0x12
VALIDATOR = 0x13
HEAT = 0x14
ZONE_HEAT = 0x15
VALIDATOR_KEY = 0x16
ORDER = 0x20
BOOK = 0x21
EXPIRY = 0x22
TASK = 0x23
ASSIGNMENT = 0x24
DEADLINE = 0x25
CLEARING = 0x26
PROCESS = 0x30
MEMORY = 0x31
DEATH = 0x32

DEFAULT_PARAMS = market_pb2.Params(
    models=["digits"],
    min_stake="1000000",
    unbonding_blocks=100,
    max_slots_per_provider=10_000,
    max_order_slots=10_000,
    max_order_lifetime=10_000,
    protocol_fee_bps=200,
    task_deadline_blocks=20,
    slash_bps=1000,
    memory_rent_per_byte="1",
    max_process_memory_bytes=65_536,
    max_memory_value_bytes=4096,
    heat=market_pb2.HeatParams(
        ambient_millicelsius=25_000,
        warm_millicelsius=70_000,
        critical_millicelsius=90_000,
        ema_weight_bps=5000,
        stale_blocks=10,
        half_life_blocks=10,
        zone_discount_bps_per_kelvin=100,
        max_zone_discount_bps=3000,
    ),
)


# --- errors ----------------------------------------------------------------------------------

class MarketError(TxError):
    codespace = CODESPACE


class InvalidPriceError(MarketError):
    code = 2


class UnknownWorkError(MarketError):
    code = 3


class InvalidSlotsError(MarketError):
    code = 4


class SlotsExceedCapacityError(MarketError):
    code = 5


class InvalidExpiryError(MarketError):
    code = 6


class OrderNotFoundError(MarketError):
    code = 7


class NotOrderOwnerError(MarketError):
    code = 8


class ProviderExistsError(MarketError):
    code = 9


class ProviderNotFoundError(MarketError):
    code = 10


class InsufficientStakeError(MarketError):
    code = 11


class InvalidZoneError(MarketError):
    code = 12


class ProviderUnbondingError(MarketError):
    code = 13


class HeatReadingError(MarketError):
    code = 14


class HeatAlreadyReportedError(MarketError):
    code = 15


class TaskRefError(MarketError):
    code = 16


class DuplicateTaskError(MarketError):
    code = 17


class ProcessNotFoundError(MarketError):
    code = 18


class NotProcessOwnerError(MarketError):
    code = 19


class ProcessEscrowError(MarketError):
    code = 20


class MemoryLimitError(MarketError):
    code = 21


class InvalidMemoryKeyError(MarketError):
    code = 22


class MemoryKeyNotFoundError(MarketError):
    code = 23


class AssignmentNotFoundError(MarketError):
    code = 24


class NotAssignedProviderError(MarketError):
    code = 25


class ValidatorLinkError(MarketError):
    code = 26


class ValidatorLinkedError(MarketError):
    code = 27


class ProcessOrderError(MarketError):
    code = 28


class InvalidAmountError(MarketError):
    code = 29


class GenesisError(ValueError):
    pass


class InvalidParams(GenesisError):
    pass


class AccountingMismatch(GenesisError):
    pass


# --- params, keys, counters ------------------------------------------------------------------

def state_key(kind: int, *parts) -> bytes:
    return encode_key(kind, *parts)


@lru_cache(maxsize=16)
def _decode_params(raw: bytes) -> market_pb2.Params:
    return market_pb2.Params.FromString(raw)


def get_params(state) -> market_pb2.Params:
    """The params (a shared, read-only message)."""
    return _decode_params(state.get(STORE, state_key(PARAMS)))


def check_params(params: market_pb2.Params) -> None:
    models = list(params.models)
    if len(set(models)) != len(models) or not all(MODEL_PATTERN.fullmatch(m) for m in models):
        raise InvalidParams(f"market params: models must be unique names matching {MODEL_PATTERN.pattern}")
    for name in ("min_stake", "memory_rent_per_byte"):
        if not AMOUNT_PATTERN.fullmatch(getattr(params, name)) or int(getattr(params, name)) > UINT256_MAX:
            raise InvalidParams(f"market params: {name} must be a uint256 decimal string")
    for name in ("protocol_fee_bps", "slash_bps"):
        if getattr(params, name) > BPS:
            raise InvalidParams(f"market params: {name} must be at most {BPS}")
    for name in ("max_slots_per_provider", "max_order_slots", "max_order_lifetime", "task_deadline_blocks",
                 "max_process_memory_bytes", "max_memory_value_bytes"):
        if getattr(params, name) < 1:
            raise InvalidParams(f"market params: {name} must be positive")
    if params.unbonding_blocks <= params.task_deadline_blocks:
        raise InvalidParams("market params: unbonding_blocks must exceed task_deadline_blocks, so stake stays slashable")
    h = params.heat
    if not h.ambient_millicelsius < h.warm_millicelsius < h.critical_millicelsius:
        raise InvalidParams("market params: heat needs ambient < warm < critical")
    if not 0 < h.ema_weight_bps <= BPS or h.max_zone_discount_bps >= BPS or h.half_life_blocks < 1:
        raise InvalidParams("market params: heat ema_weight_bps in (0, 10000], max_zone_discount_bps < 10000, half_life_blocks ≥ 1")


def _take_next_id(state, kind: int) -> int:
    raw = state.get(STORE, state_key(kind))
    number = int(raw) if raw else 1
    state.set(STORE, state_key(kind), str(number + 1).encode())
    return number


def _set_record(state, kind: int, key_part, record) -> None:
    state.set(STORE, state_key(kind, key_part), record.SerializeToString())



def _parse_price(text: str, what: str) -> int:
    if not isinstance(text, str) or not AMOUNT_PATTERN.fullmatch(text) or not 0 < int(text) <= UINT256_MAX:
        raise InvalidPriceError(f"invalid {what} {text!r}: must be a positive integer of at most 256 bits")
    return int(text)


def _parse_amount(text: str, what: str) -> int:
    if not AMOUNT_PATTERN.fullmatch(text) or int(text) > UINT256_MAX:
        raise InvalidAmountError(f"invalid {what} {text!r}: must be a non-negative integer of at most 256 bits")
    return int(text)



def is_inference(work: str) -> bool:
    return work.startswith(INFERENCE_PREFIX)


def compute_works(models) -> list[str]:
    """The work kinds of these models (all of the params' models: every work kind, in clearing order)."""
    return [PROCESS_WORK] + [INFERENCE_PREFIX + model for model in models]


def _check_work(params: market_pb2.Params, work: str) -> None:
    if work not in compute_works(params.models):
        raise UnknownWorkError(f"unknown work {work!r}: expected {PROCESS_WORK!r} or inference/<model> "
                               f"with a model in {list(params.models)}")


# --- providers -------------------------------------------------------------------------------

def get_provider(state, address: bytes) -> market_pb2.Provider | None:
    return get_message(state, STORE, market_pb2.Provider, state_key(PROVIDER, address))


def get_capacity(state, work: str) -> int:
    raw = state.get(STORE, state_key(CAPACITY, work))
    return int(raw) if raw else 0


def _process_capacity(state, models, slots: int, sign: int) -> None:
    for work in compute_works(models):
        total = get_capacity(state, work) + sign * slots
        if total:
            state.set(STORE, state_key(CAPACITY, work), str(total).encode())
        else:
            state.delete(STORE, state_key(CAPACITY, work))


def get_zone(state, zone: str) -> market_pb2.ZoneHeat | None:
    return get_message(state, STORE, market_pb2.ZoneHeat, state_key(ZONE_HEAT, zone))


def _process_zone_membership(state, params, zone: str, sign: int, height: int) -> None:
    record = get_zone(state, zone) or market_pb2.ZoneHeat(
        zone=zone, temperature_millicelsius=params.heat.ambient_millicelsius, updated_height=height
    )
    record.providers += sign
    if record.providers:
        _set_record(state, ZONE_HEAT, zone, record)
    else:
        state.delete(STORE, state_key(ZONE_HEAT, zone))


def compute_link_sign_bytes(chain_id: str, provider: bytes) -> bytes:
    """What a validator's consensus key signs to report heat for `provider`."""
    return LINK_DOMAIN + chain_id.encode() + b"\x00" + provider


def _process_link(state, ctx, provider: market_pb2.Provider, address: bytes, public_key: bytes, signature: bytes) -> None:
    try:
        nacl.signing.VerifyKey(public_key).verify(compute_link_sign_bytes(ctx.chain_id, address), signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, TypeError):
        raise ValidatorLinkError("validator signature over the link sign bytes does not verify") from None
    consensus = heat.compute_consensus_address(public_key)
    linked = state.get(STORE, state_key(VALIDATOR, consensus))
    if linked is not None and linked != address:
        raise ValidatorLinkedError(f"validator {consensus.hex()} already reports heat for {crypto.encode_address(linked)}")
    if provider.validator_address and provider.validator_address != consensus:
        state.delete(STORE, state_key(VALIDATOR, provider.validator_address))
    state.set(STORE, state_key(VALIDATOR, consensus), address)
    provider.validator_address = consensus


def _check_offer(params, models, slots_per_block: int, ask_price: str, zone: str) -> int:
    for model in models:
        _check_work(params, INFERENCE_PREFIX + model)
    if len(set(models)) != len(models):
        raise UnknownWorkError("models must not repeat")
    if not 0 < slots_per_block <= params.max_slots_per_provider:
        raise InvalidSlotsError(f"slots_per_block must be in [1, {params.max_slots_per_provider}]")
    if not ZONE_PATTERN.fullmatch(zone):
        raise InvalidZoneError(f"invalid zone {zone!r}: expected {ZONE_PATTERN.pattern}")
    return _parse_price(ask_price, "ask price")


def _check_link_fields(msg) -> None:
    if (len(msg.validator_pub_key), len(msg.validator_signature)) not in (
        (0, 0), (heat.ED25519_PUBKEY_LENGTH, ED25519_SIGNATURE_LENGTH)
    ):
        raise ValidatorLinkError("a validator link is a 32-byte ed25519 public key and its 64-byte signature")


def signer_provider(msg) -> bytes:
    return parse_address(msg.provider)


def check_stateless_register(msg: tx_pb2.MsgRegisterProvider) -> None:
    parse_address(msg.provider)
    _parse_price(msg.ask_price, "ask price")
    _parse_amount(msg.stake, "stake")
    _check_link_fields(msg)


def check_and_execute_register(state, ctx, msg: tx_pb2.MsgRegisterProvider) -> tx_pb2.MsgRegisterProviderResponse:
    address = parse_address(msg.provider)
    params = get_params(state)
    if get_provider(state, address) is not None:
        raise ProviderExistsError(f"provider {msg.provider} is already registered")
    ask = _check_offer(params, list(msg.models), msg.slots_per_block, msg.ask_price, msg.zone)
    stake = _parse_amount(msg.stake, "stake")
    if stake < int(params.min_stake):
        raise InsufficientStakeError(f"stake {stake}{DENOM} is below the minimum {params.min_stake}{DENOM}")
    provider = market_pb2.Provider(
        address=msg.provider, models=sorted(msg.models), slots_per_block=msg.slots_per_block,
        ask_price=str(ask), zone=msg.zone, stake=str(stake), registered_height=ctx.height,
    )
    if msg.validator_pub_key:
        _process_link(state, ctx, provider, address, msg.validator_pub_key, msg.validator_signature)
    bank.process_transfer(state, ctx, address, STAKE, {DENOM: stake})
    _set_record(state, PROVIDER, address, provider)
    _process_capacity(state, provider.models, provider.slots_per_block, +1)
    _process_zone_membership(state, params, provider.zone, +1, ctx.height)
    ctx.emit("provider_registered", ("provider", msg.provider), ("zone", msg.zone),
             ("slots_per_block", str(msg.slots_per_block)), ("ask_price", str(ask)))
    return tx_pb2.MsgRegisterProviderResponse()


def _get_active_provider(state, address: bytes, text: str) -> market_pb2.Provider:
    provider = get_provider(state, address)
    if provider is None:
        raise ProviderNotFoundError(f"{text} is not a registered provider")
    if provider.unbonding_height:
        raise ProviderUnbondingError(f"provider {text} is unbonding until height {provider.unbonding_height}")
    return provider


def check_stateless_update(msg: tx_pb2.MsgUpdateProvider) -> None:
    parse_address(msg.provider)
    _parse_price(msg.ask_price, "ask price")
    if msg.add_stake:
        _parse_amount(msg.add_stake, "add_stake")
    _check_link_fields(msg)


def check_and_execute_update(state, ctx, msg: tx_pb2.MsgUpdateProvider) -> tx_pb2.MsgUpdateProviderResponse:
    address = parse_address(msg.provider)
    params = get_params(state)
    provider = _get_active_provider(state, address, msg.provider)
    ask = _check_offer(params, list(msg.models), msg.slots_per_block, msg.ask_price, msg.zone)
    _process_capacity(state, provider.models, provider.slots_per_block, -1)
    if msg.zone != provider.zone:
        _process_zone_membership(state, params, provider.zone, -1, ctx.height)
        _process_zone_membership(state, params, msg.zone, +1, ctx.height)
    del provider.models[:]
    provider.models.extend(sorted(msg.models))
    provider.slots_per_block, provider.ask_price, provider.zone = msg.slots_per_block, str(ask), msg.zone
    _process_capacity(state, provider.models, provider.slots_per_block, +1)
    added = _parse_amount(msg.add_stake, "add_stake") if msg.add_stake else 0
    if added:
        bank.process_transfer(state, ctx, address, STAKE, {DENOM: added})
        provider.stake = str(int(provider.stake) + added)
    if msg.validator_pub_key:
        _process_link(state, ctx, provider, address, msg.validator_pub_key, msg.validator_signature)
    _set_record(state, PROVIDER, address, provider)
    ctx.emit("provider_updated", ("provider", msg.provider), ("zone", msg.zone),
             ("slots_per_block", str(msg.slots_per_block)), ("ask_price", str(ask)), ("stake", provider.stake))
    return tx_pb2.MsgUpdateProviderResponse()


def check_stateless_unregister(msg: tx_pb2.MsgUnregisterProvider) -> None:
    parse_address(msg.provider)


def check_and_execute_unregister(state, ctx, msg: tx_pb2.MsgUnregisterProvider) -> tx_pb2.MsgUnregisterProviderResponse:
    address = parse_address(msg.provider)
    params = get_params(state)
    provider = _get_active_provider(state, address, msg.provider)
    provider.unbonding_height = ctx.height + params.unbonding_blocks
    _process_capacity(state, provider.models, provider.slots_per_block, -1)
    _process_zone_membership(state, params, provider.zone, -1, ctx.height)
    _set_record(state, PROVIDER, address, provider)
    state.set(STORE, state_key(UNBONDING, provider.unbonding_height, address), b"\x01")
    ctx.emit("provider_unbonding", ("provider", msg.provider), ("unbonding_height", str(provider.unbonding_height)))
    return tx_pb2.MsgUnregisterProviderResponse(unbonding_height=provider.unbonding_height)


def process_unbondings(state, ctx) -> None:
    prefix = state_key(UNBONDING, ctx.height)
    for key, _ in list(iterate_prefix(state, STORE, prefix)):
        address = key[len(prefix) + 1:]
        provider = get_provider(state, address)
        bank.process_payment(state, ctx, STAKE, address, int(provider.stake))
        if provider.validator_address:
            state.delete(STORE, state_key(VALIDATOR, provider.validator_address))
        for record_key in (key, state_key(PROVIDER, address), state_key(HEAT, address)):
            state.delete(STORE, record_key)
        ctx.emit("provider_unbonded", ("provider", provider.address), ("stake", provider.stake))


# --- heat ------------------------------------------------------------------------------------

def get_heat(state, address: bytes) -> market_pb2.Heat | None:
    return get_message(state, STORE, market_pb2.Heat, state_key(HEAT, address))


def get_temperatures(state, params, provider: market_pb2.Provider, address: bytes, height: int,
                     zones: dict | None = None) -> tuple[int, int]:
    """(provider, zone) moving averages decayed to `height`; ambient where nothing was reported."""
    hp = params.heat
    record = get_heat(state, address)
    own = hp.ambient_millicelsius if record is None else heat.compute_decayed(
        record.temperature_millicelsius, record.updated_height, height, hp)
    if zones is not None and provider.zone in zones:
        return own, zones[provider.zone]
    zone = get_zone(state, provider.zone)
    zone_temperature = hp.ambient_millicelsius if zone is None else heat.compute_decayed(
        zone.temperature_millicelsius, zone.updated_height, height, hp)
    if zones is not None:
        zones[provider.zone] = zone_temperature
    return own, zone_temperature


def is_serving(params, provider: market_pb2.Provider) -> bool:
    return not provider.unbonding_height and int(provider.stake) >= int(params.min_stake)


def get_effective_ask(state, params, provider: market_pb2.Provider, address: bytes, height: int,
                      zones: dict | None = None) -> int | None:
    """The ask the market clears this provider on; None while it is withdrawn."""
    if not is_serving(params, provider):
        return None
    own, zone = get_temperatures(state, params, provider, address, height, zones)
    return heat.compute_effective_ask(int(provider.ask_price), own, zone, params.heat)


def process_heat_reading(state, ctx, params, address: bytes, provider: market_pb2.Provider,
                         reading: heat.HeatReading, source: str) -> market_pb2.Heat:
    hp = params.heat
    record = get_heat(state, address)
    if record is None:
        record = market_pb2.Heat(provider=provider.address, temperature_millicelsius=reading.temperature_millicelsius,
                                 power_milliwatts=reading.power_milliwatts)
    else:
        current = heat.compute_decayed(record.temperature_millicelsius, record.updated_height, ctx.height, hp)
        record.temperature_millicelsius = heat.compute_moving_average(current, reading.temperature_millicelsius, hp.ema_weight_bps)
        record.power_milliwatts = heat.compute_moving_average(record.power_milliwatts, reading.power_milliwatts, hp.ema_weight_bps)
    record.updated_height = ctx.height
    if source == PROVIDER_SOURCE:
        record.reported_height = ctx.height
    _set_record(state, HEAT, address, record)
    zone = get_zone(state, provider.zone)
    current = heat.compute_decayed(zone.temperature_millicelsius, zone.updated_height, ctx.height, hp)
    zone.temperature_millicelsius = heat.compute_moving_average(
        current, reading.temperature_millicelsius, hp.ema_weight_bps, zone.providers)
    zone.updated_height = ctx.height
    _set_record(state, ZONE_HEAT, provider.zone, zone)
    ctx.emit("heat_reported", ("provider", provider.address), ("source", source),
             ("temperature_millicelsius", str(record.temperature_millicelsius)),
             ("zone_temperature_millicelsius", str(zone.temperature_millicelsius)))
    return record


def check_stateless_report_heat(msg: tx_pb2.MsgReportHeat) -> None:
    parse_address(msg.provider)
    try:
        heat.check_reading(heat.HeatReading(msg.temperature_millicelsius, msg.power_milliwatts))
    except heat.ReadingOutOfRange as error:
        raise HeatReadingError(f"invalid heat report: {error}") from None


def check_and_execute_report_heat(state, ctx, msg: tx_pb2.MsgReportHeat) -> tx_pb2.MsgReportHeatResponse:
    address = parse_address(msg.provider)
    provider = _get_active_provider(state, address, msg.provider)
    previous = get_heat(state, address)
    if previous is not None and previous.reported_height == ctx.height:
        raise HeatAlreadyReportedError(f"provider {msg.provider} already reported heat at height {ctx.height}")
    reading = heat.HeatReading(msg.temperature_millicelsius, msg.power_milliwatts)
    process_heat_reading(state, ctx, get_params(state), address, provider, reading, PROVIDER_SOURCE)
    return tx_pb2.MsgReportHeatResponse()


def process_heat_tx(state, ctx, tx: bytes) -> None:
    """Apply the validators' readings of a heat tx (checked in ProcessProposal) to their providers.

    Readings of validators not linked to an active provider are dropped. Raises heat.HeatError on a
    malformed tx.
    """
    params = get_params(state)
    for consensus, reading in heat.compute_heat_readings(heat.decode_heat_tx(tx)):
        address = state.get(STORE, state_key(VALIDATOR, consensus))
        provider = None if address is None else get_provider(state, address)
        if provider is not None and not provider.unbonding_height:
            process_heat_reading(state, ctx, params, address, provider, reading, VALIDATOR_SOURCE)


# --- orders ----------------------------------------------------------------------------------

def get_order(state, order_id: int) -> market_pb2.Order | None:
    return get_message(state, STORE, market_pb2.Order, state_key(ORDER, order_id))


def compute_book_key(work: str, price: int, order_id: int) -> bytes:
    return state_key(BOOK, work, UINT256_MAX - price, order_id)


def _insert_order(state, order: market_pb2.Order) -> None:
    _set_record(state, ORDER, order.id, order)
    state.set(STORE, compute_book_key(order.work, int(order.max_price), order.id), b"\x01")
    if order.expiry_height:
        state.set(STORE, state_key(EXPIRY, order.expiry_height, order.id), b"\x01")
    if order.task_ref:
        state.set(STORE, state_key(TASK, order.task_ref), str(order.id).encode())


def _remove_order(state, order: market_pb2.Order) -> None:
    state.delete(STORE, state_key(ORDER, order.id))
    state.delete(STORE, compute_book_key(order.work, int(order.max_price), order.id))
    if order.expiry_height:
        state.delete(STORE, state_key(EXPIRY, order.expiry_height, order.id))
    if order.task_ref:
        state.delete(STORE, state_key(TASK, order.task_ref))


def _end_order(state, ctx, order: market_pb2.Order, reason: str) -> None:
    _remove_order(state, order)
    refund = int(order.escrow)
    bank.process_payment(state, ctx, ESCROW, parse_address(order.owner), refund)
    ctx.emit("order_ended", ("order", str(order.id)), ("owner", order.owner), ("reason", reason), ("refund", str(refund)))


def _check_task_ref(state, work: str, task_ref: str) -> None:
    if not is_inference(work):
        if task_ref:
            raise TaskRefError("only inference orders name a task")
        return
    if not task_ref or len(task_ref.encode()) > MAX_TASK_REF_BYTES:
        raise TaskRefError(f"an inference order names its task in 1 to {MAX_TASK_REF_BYTES} bytes")
    if state.get(STORE, state_key(TASK, task_ref)) is not None or get_assignment(state, task_ref) is not None:
        raise DuplicateTaskError(f"task {task_ref!r} already has an order or an assignment")


def process_place_bid(state, ctx, owner: bytes, work: str, slots: int, max_price: int, expiry_height: int,
                      task_ref: str = "") -> int:
    """Escrow slots × max_price from `owner` and put the order in the book; returns its id.

    The inference module calls this for each layer task (slots=1, task_ref naming the task).
    """
    params = get_params(state)
    _check_work(params, work)
    if not 0 < slots <= params.max_order_slots:
        raise InvalidSlotsError(f"slots must be in [1, {params.max_order_slots}]")
    if is_inference(work) and slots != 1:
        raise InvalidSlotsError("an inference order buys one slot for one task")
    if not 0 < max_price <= UINT256_MAX:
        raise InvalidPriceError(f"invalid max price {max_price}: must be a positive integer of at most 256 bits")
    if not ctx.height <= expiry_height <= ctx.height + params.max_order_lifetime:
        raise InvalidExpiryError(f"expiry height {expiry_height} must be in [{ctx.height}, {ctx.height + params.max_order_lifetime}]")
    _check_task_ref(state, work, task_ref)
    capacity = get_capacity(state, work)
    if slots > capacity:
        raise SlotsExceedCapacityError(f"{slots} slots asked; providers offer {capacity} slots per block for {work}")
    escrow = slots * max_price
    if escrow > UINT256_MAX:
        raise InvalidPriceError(f"slots × max price {escrow} exceeds 256 bits")
    bank.process_transfer(state, ctx, owner, ESCROW, {DENOM: escrow})
    order = market_pb2.Order(
        id=_take_next_id(state, NEXT_ORDER_ID), owner=crypto.encode_address(owner), work=work, slots=slots,
        remaining=slots, max_price=str(max_price), expiry_height=expiry_height, task_ref=task_ref,
        escrow=str(escrow), placed_height=ctx.height,
    )
    _insert_order(state, order)
    ctx.emit("order_placed", ("order", str(order.id)), ("owner", order.owner), ("work", work),
             ("slots", str(slots)), ("max_price", order.max_price), ("task", task_ref))
    return order.id


def signer_owner(msg) -> bytes:
    return parse_address(msg.owner)


def check_stateless_bid(msg: tx_pb2.MsgBid) -> None:
    parse_address(msg.owner)
    _parse_price(msg.max_price, "max price")
    if msg.slots == 0:
        raise InvalidSlotsError("an order buys at least one slot")


def check_and_execute_bid(state, ctx, msg: tx_pb2.MsgBid) -> tx_pb2.MsgBidResponse:
    order_id = process_place_bid(state, ctx, parse_address(msg.owner), msg.work, msg.slots,
                                 _parse_price(msg.max_price, "max price"), msg.expiry_height, msg.task_ref)
    return tx_pb2.MsgBidResponse(order_id=order_id)


def check_stateless_cancel(msg: tx_pb2.MsgCancelOrder) -> None:
    parse_address(msg.owner)


def check_and_execute_cancel(state, ctx, msg: tx_pb2.MsgCancelOrder) -> tx_pb2.MsgCancelOrderResponse:
    order = get_order(state, msg.order_id)
    if order is None:
        raise OrderNotFoundError(f"order {msg.order_id} does not exist")
    if order.owner != msg.owner:
        raise NotOrderOwnerError(f"order {msg.order_id} belongs to {order.owner}")
    if order.process_id:
        raise ProcessOrderError(f"order {msg.order_id} is process {order.process_id}'s; stop the process instead")
    _end_order(state, ctx, order, "cancelled")
    return tx_pb2.MsgCancelOrderResponse()


def process_expiries(state, ctx) -> None:
    prefix = state_key(EXPIRY, ctx.height)
    for key, _ in list(iterate_prefix(state, STORE, prefix)):
        _end_order(state, ctx, get_order(state, int.from_bytes(key[-32:], "big")), "expired")


# --- assignments -----------------------------------------------------------------------------

def get_assignment(state, task_ref: str) -> market_pb2.Assignment | None:
    return get_message(state, STORE, market_pb2.Assignment, state_key(ASSIGNMENT, task_ref))


def _process_assign(state, ctx, params, order: market_pb2.Order, provider: bytes, price: int) -> None:
    _remove_order(state, order)
    assignment = market_pb2.Assignment(
        task_ref=order.task_ref, provider=crypto.encode_address(provider), price=str(price),
        deadline_height=ctx.height + params.task_deadline_blocks, owner=order.owner, work=order.work,
        max_price=order.max_price, expiry_height=order.expiry_height, escrow=order.escrow, assigned_height=ctx.height,
    )
    _set_record(state, ASSIGNMENT, order.task_ref, assignment)
    state.set(STORE, state_key(DEADLINE, assignment.deadline_height, order.task_ref), b"\x01")
    ctx.emit("task_assigned", ("task", order.task_ref), ("provider", assignment.provider), ("price", str(price)),
             ("deadline_height", str(assignment.deadline_height)))


def _remove_assignment(state, assignment: market_pb2.Assignment) -> None:
    state.delete(STORE, state_key(ASSIGNMENT, assignment.task_ref))
    state.delete(STORE, state_key(DEADLINE, assignment.deadline_height, assignment.task_ref))


def process_task_proven(state, ctx, task_ref: str, prover: bytes) -> market_pb2.Assignment:
    """Pay the assigned provider for a verified proof of `task_ref` and refund the rest of the escrow."""
    assignment = get_assignment(state, task_ref)
    if assignment is None:
        raise AssignmentNotFoundError(f"task {task_ref!r} is not assigned")
    provider = crypto.decode_address(assignment.provider)
    if prover != provider:
        raise NotAssignedProviderError(f"task {task_ref!r} is assigned to {assignment.provider}, "
                                       f"not {crypto.encode_address(prover)}")
    price, escrow = int(assignment.price), int(assignment.escrow)
    fee = price * get_params(state).protocol_fee_bps // BPS
    _remove_assignment(state, assignment)
    bank.process_payment(state, ctx, ESCROW, provider, price - fee)
    bank.process_payment(state, ctx, ESCROW, bank.FEE_COLLECTOR, fee)
    bank.process_payment(state, ctx, ESCROW, parse_address(assignment.owner), escrow - price)
    ctx.emit("task_proven", ("task", task_ref), ("provider", assignment.provider), ("price", assignment.price))
    return assignment


def process_deadlines(state, ctx, params) -> None:
    """Slash every provider whose task is unproven at its deadline and put the task back in the book."""
    prefix = state_key(DEADLINE, ctx.height)
    for key, _ in list(iterate_prefix(state, STORE, prefix)):
        assignment = get_assignment(state, key[len(prefix) + 1:].decode())
        _remove_assignment(state, assignment)
        address = crypto.decode_address(assignment.provider)
        provider = get_provider(state, address)
        slashed = int(provider.stake) * params.slash_bps // BPS
        provider.stake = str(int(provider.stake) - slashed)
        _set_record(state, PROVIDER, address, provider)
        bank.process_payment(state, ctx, STAKE, parse_address(assignment.owner), slashed)
        ctx.emit("task_missed", ("task", assignment.task_ref), ("provider", assignment.provider), ("slashed", str(slashed)))
        if assignment.expiry_height < ctx.height:
            bank.process_payment(state, ctx, ESCROW, parse_address(assignment.owner), int(assignment.escrow))
            ctx.emit("task_expired", ("task", assignment.task_ref), ("owner", assignment.owner), ("refund", assignment.escrow))
            continue
        order = market_pb2.Order(
            id=_take_next_id(state, NEXT_ORDER_ID), owner=assignment.owner, work=assignment.work, slots=1, remaining=1,
            max_price=assignment.max_price, expiry_height=assignment.expiry_height, task_ref=assignment.task_ref,
            escrow=assignment.escrow, placed_height=ctx.height,
        )
        _insert_order(state, order)
        ctx.emit("order_placed", ("order", str(order.id)), ("owner", order.owner), ("work", order.work),
                 ("slots", "1"), ("max_price", order.max_price), ("task", order.task_ref))


# --- clearing --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Fill:
    order_id: int
    provider: bytes
    slots: int


def compute_clearing(bids, asks: list[tuple[int, bytes]], capacity: dict[bytes, int]) -> tuple[int, list[Fill]]:
    """Match `bids` ((price, order id, slots), best first) against `asks` ((effective ask, provider),
    best first) while bid ≥ ask; `capacity` (slots left per provider) is used up in place.

    Returns the uniform price max(highest matched ask, highest losing bid) and the fills; reads
    `bids` only up to the first unit that does not match.
    """
    fills = []
    position = 0
    marginal_ask = losing_bid = 0
    for price, order_id, units in bids:
        while units:
            while position < len(asks) and capacity[asks[position][1]] == 0:
                position += 1
            if position == len(asks) or asks[position][0] > price:
                losing_bid = price
                break
            ask, provider = asks[position]
            taken = min(units, capacity[provider])
            capacity[provider] -= taken
            units -= taken
            marginal_ask = ask
            fills.append(Fill(order_id, provider, taken))
        if units:
            break
    return (max(marginal_ask, losing_bid) if fills else 0), fills


def iterate_bids(state, work: str, orders: dict):
    """The book of `work`, best first, as (price, order id, slots wanted); keeps each order read in `orders`."""
    for key, _ in iterate_prefix(state, STORE, state_key(BOOK, work)):
        order_id = int.from_bytes(key[-32:], "big")
        order = get_order(state, order_id)
        orders[order_id] = order
        yield UINT256_MAX - int.from_bytes(key[-64:-32], "big"), order_id, order.remaining


def compute_supply(state, params, height: int) -> tuple[dict[str, list[tuple[int, bytes]]], dict[bytes, int]]:
    """Every serving provider's effective ask per work kind (best first) and its slots for the block."""
    asks: dict[str, list[tuple[int, bytes]]] = {}
    capacity: dict[bytes, int] = {}
    zones: dict[str, int] = {}
    for key, raw in iterate_prefix(state, STORE, state_key(PROVIDER)):
        address = key[2:]
        provider = market_pb2.Provider.FromString(raw)
        effective = get_effective_ask(state, params, provider, address, height, zones)
        if effective is None:
            continue
        capacity[address] = provider.slots_per_block
        for work in compute_works(provider.models):
            asks.setdefault(work, []).append((effective, address))
    for entries in asks.values():
        entries.sort()
    return asks, capacity


def _has_bids(state, work: str) -> bool:
    return next(iter(iterate_prefix(state, STORE, state_key(BOOK, work))), None) is not None


def process_clearings(state, ctx, params) -> None:
    works = [work for work in compute_works(params.models) if _has_bids(state, work)]
    if not works:
        return
    asks, capacity = compute_supply(state, params, ctx.height)
    for work in works:
        orders: dict[int, market_pb2.Order] = {}
        price, fills = compute_clearing(iterate_bids(state, work, orders), asks.get(work, []), capacity)
        if fills:
            process_settlement(state, ctx, params, work, price, fills, orders)


def process_settlement(state, ctx, params, work: str, price: int, fills: list[Fill], orders: dict) -> None:
    matched = sum(fill.slots for fill in fills)
    _set_record(state, CLEARING, work, market_pb2.Clearing(work=work, height=ctx.height, price=str(price), matched_slots=matched))
    ctx.emit("auction_cleared", ("work", work), ("price", str(price)), ("matched_slots", str(matched)))
    fee = price * params.protocol_fee_bps // BPS
    payouts: dict[bytes, int] = {}
    fees = 0
    leased: dict[int, market_pb2.Order] = {}
    held: dict[int, list[Fill]] = {}
    for fill in fills:
        order = orders[fill.order_id]
        if order.process_id:
            held.setdefault(order.process_id, []).append(fill)
        elif is_inference(work):
            _process_assign(state, ctx, params, order, fill.provider, price)
        else:
            order.remaining -= fill.slots
            order.escrow = str(int(order.escrow) - fill.slots * price)
            payouts[fill.provider] = payouts.get(fill.provider, 0) + fill.slots * (price - fee)
            fees += fill.slots * fee
            leased[order.id] = order
            ctx.emit("lease_filled", ("order", str(order.id)), ("provider", crypto.encode_address(fill.provider)),
                     ("slots", str(fill.slots)), ("price", str(price)))
    for order in leased.values():
        if order.remaining:
            _set_record(state, ORDER, order.id, order)
        else:
            _end_order(state, ctx, order, "filled")
    for process_id, process_fills in held.items():
        fees += _process_rent(state, ctx, params, get_process(state, process_id), process_fills, price, fee, payouts)
    for provider, amount in sorted(payouts.items()):
        bank.process_payment(state, ctx, ESCROW, provider, amount)
    bank.process_payment(state, ctx, ESCROW, bank.FEE_COLLECTOR, fees)


# --- processes -------------------------------------------------------------------------------

def get_process(state, process_id: int) -> market_pb2.Process | None:
    return get_message(state, STORE, market_pb2.Process, state_key(PROCESS, process_id))


def _get_owned_process(state, process_id: int, owner: str) -> market_pb2.Process:
    record = get_process(state, process_id)
    if record is None:
        raise ProcessNotFoundError(f"process {process_id} does not exist")
    if record.owner != owner:
        raise NotProcessOwnerError(f"process {process_id} belongs to {record.owner}")
    return record


def _settle_memory_rent(state, ctx, params, record: market_pb2.Process, through_height: int) -> None:
    """Pay memory rent up to `through_height` to the fee pool (the death schedule keeps it affordable)."""
    due = process.compute_memory_rent(record.memory_bytes, int(params.memory_rent_per_byte), through_height - record.paid_height)
    charged = min(due, int(record.escrow))
    record.escrow = str(int(record.escrow) - charged)
    record.paid_height = max(record.paid_height, through_height)
    bank.process_payment(state, ctx, ESCROW, bank.FEE_COLLECTOR, charged)


def _save_process(state, params, record: market_pb2.Process) -> None:
    """Store the process and move its death to where its escrow now runs out."""
    if record.death_height:
        state.delete(STORE, state_key(DEATH, record.death_height, record.id))
    record.death_height = process.compute_death_height(
        record.paid_height, int(record.escrow), record.memory_bytes, int(params.memory_rent_per_byte))
    if record.death_height:
        state.set(STORE, state_key(DEATH, record.death_height, record.id), b"\x01")
    _set_record(state, PROCESS, record.id, record)


def _process_rent(state, ctx, params, record: market_pb2.Process, fills: list[Fill], price: int, fee: int,
                  payouts: dict[bytes, int]) -> int:
    """Charge a matched process this block's rent, or kill it; returns what goes to the fee pool."""
    slots = sum(fill.slots for fill in fills)
    memory = process.compute_memory_rent(record.memory_bytes, int(params.memory_rent_per_byte), ctx.height - record.paid_height)
    if memory + slots * price > int(record.escrow):
        process_apoptosis(state, ctx, params, record, "rent", tax_from_escrow=True)
        return 0
    record.escrow = str(int(record.escrow) - memory - slots * price)
    record.paid_height = ctx.height
    _save_process(state, params, record)
    for fill in fills:
        payouts[fill.provider] = payouts.get(fill.provider, 0) + fill.slots * (price - fee)
        ctx.emit("lease_filled", ("order", str(record.order_id)), ("provider", crypto.encode_address(fill.provider)),
                 ("slots", str(fill.slots)), ("price", str(price)), ("process", str(record.id)))
    return memory + slots * fee


def process_apoptosis(state, ctx, params, record: market_pb2.Process, reason: str, tax_from_escrow: bool) -> None:
    """Kill a process: free its slots, erase its memory, pay what it owes, refund the rest.

    Outside a transaction the entropy tax of the erasure is charged from the escrow; inside one
    (MsgStopProcess) the deletes already charged it as gas.
    """
    _settle_memory_rent(state, ctx, params, record, ctx.height - 1)
    _remove_order(state, get_order(state, record.order_id))
    prefix = state_key(MEMORY, record.id)
    for key, _ in list(iterate_prefix(state, STORE, prefix)):
        state.delete(STORE, key)
    tax = 0
    if tax_from_escrow:
        tx_params, _ = auth.get_params(state)
        tax = min(int(record.escrow), process.compute_erase_tax(record.memory_bytes, state.gas, tx_params))
    refund = int(record.escrow) - tax
    bank.process_payment(state, ctx, ESCROW, bank.FEE_COLLECTOR, tax)
    bank.process_payment(state, ctx, ESCROW, parse_address(record.owner), refund)
    if record.death_height:
        state.delete(STORE, state_key(DEATH, record.death_height, record.id))
    state.delete(STORE, state_key(PROCESS, record.id))
    ctx.emit("apoptosis", ("process", str(record.id)), ("height", str(ctx.height)), ("reason", reason),
             ("erased_bytes", str(record.memory_bytes)), ("tax", str(tax)), ("refund", str(refund)))


def process_deaths(state, ctx, params) -> None:
    """Kill the processes whose escrow cannot pay this block's memory rent."""
    prefix = state_key(DEATH, ctx.height)
    for key, _ in list(iterate_prefix(state, STORE, prefix)):
        process_apoptosis(state, ctx, params, get_process(state, int.from_bytes(key[-32:], "big")), "rent",
                          tax_from_escrow=True)


def check_stateless_start(msg: tx_pb2.MsgStartProcess) -> None:
    parse_address(msg.owner)
    _parse_price(msg.max_rent, "max rent")
    _parse_amount(msg.escrow, "escrow")
    if msg.slots == 0:
        raise InvalidSlotsError("a process holds at least one slot")


def check_and_execute_start(state, ctx, msg: tx_pb2.MsgStartProcess) -> tx_pb2.MsgStartProcessResponse:
    owner = parse_address(msg.owner)
    params = get_params(state)
    max_rent, escrow = _parse_price(msg.max_rent, "max rent"), _parse_amount(msg.escrow, "escrow")
    if msg.slots > params.max_order_slots:
        raise InvalidSlotsError(f"slots must be in [1, {params.max_order_slots}]")
    capacity = get_capacity(state, PROCESS_WORK)
    if msg.slots > capacity:
        raise SlotsExceedCapacityError(f"{msg.slots} slots asked; providers offer {capacity} process slots per block")
    if escrow < msg.slots * max_rent:
        raise ProcessEscrowError(f"escrow {escrow}{DENOM} must cover one block at max rent "
                                 f"({msg.slots} × {max_rent} = {msg.slots * max_rent}{DENOM})")
    bank.process_transfer(state, ctx, owner, ESCROW, {DENOM: escrow})
    record = market_pb2.Process(
        id=_take_next_id(state, NEXT_PROCESS_ID), owner=msg.owner, slots=msg.slots, max_rent=str(max_rent),
        escrow=str(escrow), paid_height=ctx.height - 1, started_height=ctx.height,
        order_id=_take_next_id(state, NEXT_ORDER_ID),
    )
    _insert_order(state, market_pb2.Order(
        id=record.order_id, owner=msg.owner, work=PROCESS_WORK, slots=msg.slots, remaining=msg.slots,
        max_price=str(max_rent), escrow="0", process_id=record.id, placed_height=ctx.height,
    ))
    _save_process(state, params, record)
    ctx.emit("process_started", ("process", str(record.id)), ("owner", msg.owner), ("slots", str(msg.slots)),
             ("max_rent", str(max_rent)), ("escrow", str(escrow)))
    return tx_pb2.MsgStartProcessResponse(process_id=record.id)


def _check_memory_key(key: bytes) -> None:
    if not 0 < len(key) <= MAX_MEMORY_KEY_BYTES:
        raise InvalidMemoryKeyError(f"a memory key is 1 to {MAX_MEMORY_KEY_BYTES} bytes")


def check_stateless_write(msg: tx_pb2.MsgProcessWrite) -> None:
    parse_address(msg.owner)
    _check_memory_key(msg.key)
    if not msg.value:
        raise MemoryLimitError("an empty value: delete the key instead")


def check_and_execute_write(state, ctx, msg: tx_pb2.MsgProcessWrite) -> tx_pb2.MsgProcessWriteResponse:
    params = get_params(state)
    record = _get_owned_process(state, msg.process_id, msg.owner)
    if len(msg.value) > params.max_memory_value_bytes:
        raise MemoryLimitError(f"value of {len(msg.value)} bytes; at most {params.max_memory_value_bytes}")
    key = state_key(MEMORY, record.id, msg.key)
    old = state.get(STORE, key)
    size = record.memory_bytes - (0 if old is None else process.compute_memory_size(msg.key, old))
    size += process.compute_memory_size(msg.key, msg.value)
    if size > params.max_process_memory_bytes:
        raise MemoryLimitError(f"process memory would be {size} bytes; at most {params.max_process_memory_bytes}")
    _settle_memory_rent(state, ctx, params, record, ctx.height - 1)
    state.set(STORE, key, msg.value)
    record.memory_bytes = size
    _save_process(state, params, record)
    return tx_pb2.MsgProcessWriteResponse()


def check_stateless_delete(msg: tx_pb2.MsgProcessDelete) -> None:
    parse_address(msg.owner)
    _check_memory_key(msg.key)


def check_and_execute_delete(state, ctx, msg: tx_pb2.MsgProcessDelete) -> tx_pb2.MsgProcessDeleteResponse:
    params = get_params(state)
    record = _get_owned_process(state, msg.process_id, msg.owner)
    key = state_key(MEMORY, record.id, msg.key)
    old = state.get(STORE, key)
    if old is None:
        raise MemoryKeyNotFoundError(f"process {record.id} has no memory key {msg.key.hex()}")
    _settle_memory_rent(state, ctx, params, record, ctx.height - 1)
    state.delete(STORE, key)
    record.memory_bytes -= process.compute_memory_size(msg.key, old)
    _save_process(state, params, record)
    return tx_pb2.MsgProcessDeleteResponse()


def check_stateless_top_up(msg: tx_pb2.MsgTopUp) -> None:
    parse_address(msg.owner)
    if _parse_amount(msg.amount, "amount") == 0:
        raise InvalidAmountError("a top-up adds a positive amount")


def check_and_execute_top_up(state, ctx, msg: tx_pb2.MsgTopUp) -> tx_pb2.MsgTopUpResponse:
    params = get_params(state)
    record = _get_owned_process(state, msg.process_id, msg.owner)
    amount = _parse_amount(msg.amount, "amount")
    _settle_memory_rent(state, ctx, params, record, ctx.height - 1)
    bank.process_transfer(state, ctx, parse_address(msg.owner), ESCROW, {DENOM: amount})
    record.escrow = str(int(record.escrow) + amount)
    _save_process(state, params, record)
    ctx.emit("process_topped_up", ("process", str(record.id)), ("amount", str(amount)), ("escrow", record.escrow))
    return tx_pb2.MsgTopUpResponse()


def check_stateless_stop(msg: tx_pb2.MsgStopProcess) -> None:
    parse_address(msg.owner)


def check_and_execute_stop(state, ctx, msg: tx_pb2.MsgStopProcess) -> tx_pb2.MsgStopProcessResponse:
    record = _get_owned_process(state, msg.process_id, msg.owner)
    process_apoptosis(state, ctx, get_params(state), record, "stopped", tax_from_escrow=False)
    return tx_pb2.MsgStopProcessResponse()


# --- end block -------------------------------------------------------------------------------

def end_block(state, ctx) -> None:
    """Deadlines, then clearing (which charges matched processes), then the processes, orders and
    stakes whose time has come."""
    params = get_params(state)
    process_deadlines(state, ctx, params)
    process_clearings(state, ctx, params)
    process_deaths(state, ctx, params)
    process_expiries(state, ctx)
    process_unbondings(state, ctx)


MESSAGES = {
    compute_type_url(tx_pb2.MsgRegisterProvider): MessageHandler(
        tx_pb2.MsgRegisterProvider, signer_provider, check_stateless_register, check_and_execute_register),
    compute_type_url(tx_pb2.MsgUpdateProvider): MessageHandler(
        tx_pb2.MsgUpdateProvider, signer_provider, check_stateless_update, check_and_execute_update),
    compute_type_url(tx_pb2.MsgUnregisterProvider): MessageHandler(
        tx_pb2.MsgUnregisterProvider, signer_provider, check_stateless_unregister, check_and_execute_unregister),
    compute_type_url(tx_pb2.MsgReportHeat): MessageHandler(
        tx_pb2.MsgReportHeat, signer_provider, check_stateless_report_heat, check_and_execute_report_heat),
    compute_type_url(tx_pb2.MsgBid): MessageHandler(tx_pb2.MsgBid, signer_owner, check_stateless_bid, check_and_execute_bid),
    compute_type_url(tx_pb2.MsgCancelOrder): MessageHandler(
        tx_pb2.MsgCancelOrder, signer_owner, check_stateless_cancel, check_and_execute_cancel),
    compute_type_url(tx_pb2.MsgStartProcess): MessageHandler(
        tx_pb2.MsgStartProcess, signer_owner, check_stateless_start, check_and_execute_start),
    compute_type_url(tx_pb2.MsgProcessWrite): MessageHandler(
        tx_pb2.MsgProcessWrite, signer_owner, check_stateless_write, check_and_execute_write),
    compute_type_url(tx_pb2.MsgProcessDelete): MessageHandler(
        tx_pb2.MsgProcessDelete, signer_owner, check_stateless_delete, check_and_execute_delete),
    compute_type_url(tx_pb2.MsgTopUp): MessageHandler(tx_pb2.MsgTopUp, signer_owner, check_stateless_top_up, check_and_execute_top_up),
    compute_type_url(tx_pb2.MsgStopProcess): MessageHandler(
        tx_pb2.MsgStopProcess, signer_owner, check_stateless_stop, check_and_execute_stop),
}


# --- genesis ---------------------------------------------------------------------------------

def _to_dict(message) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def compute_default_genesis() -> dict:
    return {"params": _to_dict(DEFAULT_PARAMS)}


def init_chain(state, section: dict) -> None:
    """Params and (from an export) the market's records; run after bank, whose module-account
    balances must equal what the records hold in escrow and stake."""
    if not isinstance(section, dict):
        raise GenesisError("market genesis must be an object")
    given = section.get("params", {})
    if not isinstance(given, dict) or not isinstance(given.get("heat", {}), dict):
        raise GenesisError("market params must be an object")
    defaults = _to_dict(DEFAULT_PARAMS)
    params_dict = {**defaults, **given, "heat": {**defaults["heat"], **given.get("heat", {})}}
    try:
        genesis = json_format.ParseDict({**section, "params": params_dict}, market_pb2.GenesisState())
    except json_format.ParseError as error:
        raise GenesisError(f"market genesis: {error}") from None
    check_params(genesis.params)
    state.set(STORE, state_key(PARAMS), genesis.params.SerializeToString())
    try:
        escrow, stake = _import_records(state, genesis)
    except (crypto.InvalidAddress, ValueError, TxError, KeyError) as error:
        raise GenesisError(f"market genesis: {error}") from None
    for account, held, what in ((ESCROW, escrow, "escrow"), (STAKE, stake, "stake")):
        balance = bank.get_balance(state, account, DENOM)
        if balance != held:
            raise AccountingMismatch(f"market genesis: records hold {held}{DENOM} in {what}; its account has {balance}{DENOM}")


def init_validators(state, public_keys: list[bytes]) -> None:
    """Remember the genesis validators' keys: ProcessProposal checks their vote-extension signatures."""
    for public_key in public_keys:
        state.set(STORE, state_key(VALIDATOR_KEY, heat.compute_consensus_address(public_key)), public_key)


def get_validator_keys(state) -> dict[bytes, bytes]:
    prefix = state_key(VALIDATOR_KEY)
    return {key[2:]: value for key, value in iterate_prefix(state, STORE, prefix)}


def _import_records(state, genesis: market_pb2.GenesisState) -> tuple[int, int]:
    params = genesis.params
    state.set(STORE, state_key(NEXT_ORDER_ID), str(max(genesis.next_order_id, 1)).encode())
    state.set(STORE, state_key(NEXT_PROCESS_ID), str(max(genesis.next_process_id, 1)).encode())
    escrow = stake = 0
    for zone in genesis.zones:
        _set_record(state, ZONE_HEAT, zone.zone, market_pb2.ZoneHeat(
            zone=zone.zone, temperature_millicelsius=zone.temperature_millicelsius, updated_height=zone.updated_height))
    for provider in genesis.providers:
        address = crypto.decode_address(provider.address)
        _set_record(state, PROVIDER, address, provider)
        stake += _parse_amount(provider.stake, "stake")
        if provider.validator_address:
            state.set(STORE, state_key(VALIDATOR, provider.validator_address), address)
        if provider.unbonding_height:
            state.set(STORE, state_key(UNBONDING, provider.unbonding_height, address), b"\x01")
            continue
        _process_capacity(state, provider.models, provider.slots_per_block, +1)
        _process_zone_membership(state, params, provider.zone, +1, 0)
    for record in genesis.heat:
        _set_record(state, HEAT, crypto.decode_address(record.provider), record)
    for order in genesis.orders:
        _insert_order(state, order)
        escrow += _parse_amount(order.escrow, "escrow")
    for assignment in genesis.assignments:
        _set_record(state, ASSIGNMENT, assignment.task_ref, assignment)
        state.set(STORE, state_key(DEADLINE, assignment.deadline_height, assignment.task_ref), b"\x01")
        escrow += _parse_amount(assignment.escrow, "escrow")
    for record in genesis.processes:
        _set_record(state, PROCESS, record.id, record)
        if record.death_height:
            state.set(STORE, state_key(DEATH, record.death_height, record.id), b"\x01")
        escrow += _parse_amount(record.escrow, "escrow")
    for entry in genesis.memory:
        state.set(STORE, state_key(MEMORY, entry.process_id, entry.key), entry.value)
    for clearing in genesis.clearings:
        _set_record(state, CLEARING, clearing.work, clearing)
    return escrow, stake


def export_genesis(state) -> dict:
    memory = []
    for key, value in iterate_prefix(state, STORE, state_key(MEMORY)):
        memory.append(market_pb2.MemoryEntry(process_id=int.from_bytes(key[1:33], "big"), key=key[34:], value=value))
    raw_order, raw_process = state.get(STORE, state_key(NEXT_ORDER_ID)), state.get(STORE, state_key(NEXT_PROCESS_ID))
    genesis = market_pb2.GenesisState(
        params=get_params(state),
        next_order_id=int(raw_order) if raw_order else 1,
        next_process_id=int(raw_process) if raw_process else 1,
        providers=get_messages(state, STORE, market_pb2.Provider, state_key(PROVIDER)),
        heat=get_messages(state, STORE, market_pb2.Heat, state_key(HEAT)),
        zones=get_messages(state, STORE, market_pb2.ZoneHeat, state_key(ZONE_HEAT)),
        orders=get_messages(state, STORE, market_pb2.Order, state_key(ORDER)),
        assignments=get_messages(state, STORE, market_pb2.Assignment, state_key(ASSIGNMENT)),
        processes=get_messages(state, STORE, market_pb2.Process, state_key(PROCESS)),
        memory=memory,
        clearings=get_messages(state, STORE, market_pb2.Clearing, state_key(CLEARING)),
    )
    return _to_dict(genesis)


# --- queries (gRPC over ABCI) ----------------------------------------------------------------

def _page(state, prefix: bytes, pagination) -> tuple[list[tuple[bytes, bytes]], bytes]:
    limit = min(pagination.limit or DEFAULT_PAGE, MAX_PAGE)
    start = pagination.key if pagination.key.startswith(prefix) else prefix
    rows = []
    for key, value in state.iterate(STORE, start, compute_prefix_end(prefix)):
        if len(rows) == limit:
            return rows, key
        rows.append((key, value))
    return rows, b""


def _view_height(state) -> int:
    """The height a query reads at (the store or the historical view under the query's State)."""
    return state.branch.height


def _provider_view(state, params, provider: market_pb2.Provider, address: bytes) -> query_pb2.ProviderView:
    own, zone = get_temperatures(state, params, provider, address, _view_height(state))
    record = get_heat(state, address)
    effective = heat.compute_effective_ask(int(provider.ask_price), own, zone, params.heat) if is_serving(params, provider) else None
    return query_pb2.ProviderView(
        provider=provider, temperature_millicelsius=own, power_milliwatts=record.power_milliwatts if record else 0,
        zone_temperature_millicelsius=zone, effective_ask="" if effective is None else str(effective),
        withdrawn=effective is None,
    )


def query_params(state, request: query_pb2.QueryParamsRequest) -> query_pb2.QueryParamsResponse:
    return query_pb2.QueryParamsResponse(params=get_params(state))


def query_providers(state, request: query_pb2.QueryProvidersRequest) -> query_pb2.QueryProvidersResponse:
    params = get_params(state)
    rows, next_key = _page(state, state_key(PROVIDER), request.pagination)
    views = [_provider_view(state, params, market_pb2.Provider.FromString(raw), key[2:]) for key, raw in rows]
    return query_pb2.QueryProvidersResponse(providers=views, pagination={"next_key": next_key})


def query_provider(state, request: query_pb2.QueryProviderRequest) -> query_pb2.QueryProviderResponse:
    address = parse_address(request.address)
    provider = get_provider(state, address)
    if provider is None:
        raise ProviderNotFoundError(f"{request.address} is not a registered provider")
    return query_pb2.QueryProviderResponse(provider=_provider_view(state, get_params(state), provider, address))


def query_book(state, request: query_pb2.QueryBookRequest) -> query_pb2.QueryBookResponse:
    _check_work(get_params(state), request.work)
    rows, next_key = _page(state, state_key(BOOK, request.work), request.pagination)
    orders = [get_order(state, int.from_bytes(key[-32:], "big")) for key, _ in rows]
    return query_pb2.QueryBookResponse(orders=orders, pagination={"next_key": next_key})


def query_clearing(state, request: query_pb2.QueryClearingRequest) -> query_pb2.QueryClearingResponse:
    _check_work(get_params(state), request.work)
    clearing = get_message(state, STORE, market_pb2.Clearing, state_key(CLEARING, request.work))
    if clearing is None:
        raise NotFoundError(f"work {request.work!r} has not cleared yet")
    return query_pb2.QueryClearingResponse(clearing=clearing)


def query_process(state, request: query_pb2.QueryProcessRequest) -> query_pb2.QueryProcessResponse:
    record = get_process(state, request.id)
    if record is None:
        raise ProcessNotFoundError(f"process {request.id} does not exist")
    prefix = state_key(MEMORY, record.id)
    memory = [market_pb2.MemoryEntry(process_id=record.id, key=key[len(prefix) + 1:], value=value)
              for key, value in iterate_prefix(state, STORE, prefix)]
    return query_pb2.QueryProcessResponse(process=record, memory=memory)


def query_assignment(state, request: query_pb2.QueryAssignmentRequest) -> query_pb2.QueryAssignmentResponse:
    assignment = get_assignment(state, request.task_ref)
    if assignment is None:
        raise AssignmentNotFoundError(f"task {request.task_ref!r} is not assigned")
    return query_pb2.QueryAssignmentResponse(assignment=assignment)


QUERIES = {
    "/maxwell.market.v1.Query/Params": (query_pb2.QueryParamsRequest, query_params),
    "/maxwell.market.v1.Query/Providers": (query_pb2.QueryProvidersRequest, query_providers),
    "/maxwell.market.v1.Query/Provider": (query_pb2.QueryProviderRequest, query_provider),
    "/maxwell.market.v1.Query/Book": (query_pb2.QueryBookRequest, query_book),
    "/maxwell.market.v1.Query/Clearing": (query_pb2.QueryClearingRequest, query_clearing),
    "/maxwell.market.v1.Query/Process": (query_pb2.QueryProcessRequest, query_process),
    "/maxwell.market.v1.Query/Assignment": (query_pb2.QueryAssignmentRequest, query_assignment),
}
