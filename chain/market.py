"""The compute market: providers sell execution slots, orders buy them, and every block clears.

Work kinds are `process` and `inference/<model>` for each model in the params. Every provider serves
process work and the models it lists, from one budget of `slots_per_block` per block. A provider's
heat (chain.heat) adjusts its ask; processes (chain.process) and inference requests
(chain.inference) place their orders through this module's book API.

Orders. An inference order buys one slot for one task (`task_ref`, one layer of an inference
request); when matched it becomes an assignment the provider must prove within the deadline. A
process order (MsgBid on `process`) leases slots: each matched slot is paid at once and the order
rests until all its slots are filled. A process holds a standing process order that bids again every
block: its fills are recorded for the process component, which charges the rent. The maximum payment is escrowed when an order is placed and what is
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
tasks when their proof is verified (`process_task_proven`), a process's slots by the process component; a task unproven at its deadline slashes
`slash_bps` of its provider's stake to the requester and goes back in the book. A provider whose
stake falls below `min_stake` is withdrawn until it adds stake.

Money: escrows of orders and assignments live in the ESCROW module account, stakes in STAKE; the fee
pool is the fee collector. The module's records account for both balances exactly.

Store layout (`encode_key`; ints are 32-byte big-endian so they sort numerically):
    0x01                          -> Params
    0x02                          -> next order id
    0x10 | provider               -> Provider
    0x11 | work                   -> slots offered for the work by active providers
    0x12 | height | provider      -> unbonding ends at height
    0x20 | order id               -> Order
    0x21 | work | 2^256-1-price | order id -> the book, best bid first
    0x22 | height | order id      -> the order expires at the end of height
    0x23 | task ref               -> order id of a task waiting in the book
    0x24 | task ref               -> Assignment
    0x25 | height | task ref      -> the assignment's deadline
    0x26 | work                   -> the last Clearing
    0x27 | order id | provider    -> StandingFill of this block, taken by the process component
"""

import re
from dataclasses import dataclass


from chain import bank, crypto, heat
from chain.coins import DENOM, UINT256_MAX, parse_uint
from chain.errors import GenesisError, NotFoundError, TxError
from chain.genesis import decode_genesis, encode_json
from chain.proto.maxwell.market.v1 import market_pb2, query_pb2, tx_pb2
from chain.state import (
    MessageHandler, compute_prefix_end, decode_key as decode_key_of, encode_key, get_message, get_messages,
    get_shared_message, get_number, iterate_prefix, process_next_number, public, set_message, set_number,
)
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
MODEL_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
ZONE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

PARAMS = 0x01
NEXT_ORDER_ID = 0x02
PROVIDER = 0x10
CAPACITY = 0x11
UNBONDING = 0x12
ORDER = 0x20
BOOK = 0x21
EXPIRY = 0x22
TASK = 0x23
ASSIGNMENT = 0x24
DEADLINE = 0x25
CLEARING = 0x26
STANDING_FILL = 0x27
KEYS = {
    PARAMS: (), NEXT_ORDER_ID: (), PROVIDER: (bytes,), CAPACITY: (str,), UNBONDING: (int, bytes), ORDER: (int,),
    BOOK: (str, int, int), EXPIRY: (int, int), TASK: (str,), ASSIGNMENT: (str,), DEADLINE: (int, str),
    CLEARING: (str,), STANDING_FILL: (int, bytes),
}

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


class TaskRefError(MarketError):
    code = 16


class DuplicateTaskError(MarketError):
    code = 17


class AssignmentNotFoundError(MarketError):
    code = 24


class NotAssignedProviderError(MarketError):
    code = 25


class ProcessOrderError(MarketError):
    code = 28


class InvalidAmountError(MarketError):
    code = 29


class InferenceBidError(MarketError):
    code = 30


class InvalidParams(GenesisError):
    pass


class AccountingMismatch(GenesisError):
    pass


# --- params, keys, counters ------------------------------------------------------------------

def state_key(kind: int, *parts) -> bytes:
    return encode_key(kind, *parts)


def decode_key(key: bytes) -> tuple:
    return decode_key_of(key, KEYS)


@public(STORE)
def get_params(state) -> market_pb2.Params:
    """The params (a shared, read-only message)."""
    return get_shared_message(state, market_pb2.Params, state_key(PARAMS))


def check_params(params: market_pb2.Params) -> None:
    models = list(params.models)
    if len(set(models)) != len(models) or not all(MODEL_PATTERN.fullmatch(m) for m in models):
        raise InvalidParams(f"market params: models must be unique names matching {MODEL_PATTERN.pattern}")
    try:
        parse_uint(params.min_stake, "min_stake")
    except TxError as error:
        raise InvalidParams(f"market params: {error}") from None
    for name in ("protocol_fee_bps", "slash_bps"):
        if getattr(params, name) > BPS:
            raise InvalidParams(f"market params: {name} must be at most {BPS}")
    for name in ("max_slots_per_provider", "max_order_slots", "max_order_lifetime", "task_deadline_blocks"):
        if getattr(params, name) < 1:
            raise InvalidParams(f"market params: {name} must be positive")
    if params.unbonding_blocks <= params.task_deadline_blocks:
        raise InvalidParams("market params: unbonding_blocks must exceed task_deadline_blocks, so stake stays slashable")


def _parse_price(text: str, what: str) -> int:
    price = parse_uint(text, what, InvalidPriceError)
    if price == 0:
        raise InvalidPriceError(f"invalid {what} {text!r}: must be positive")
    return price


def _parse_amount(text: str, what: str) -> int:
    return parse_uint(text, what, InvalidAmountError)


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

@public(STORE)
def get_provider(state, address: bytes) -> market_pb2.Provider | None:
    return get_message(state, market_pb2.Provider, state_key(PROVIDER, address))


@public(STORE)
def get_capacity(state, work: str) -> int:
    return get_number(state, state_key(CAPACITY, work))


def _process_capacity(state, models, slots: int, sign: int) -> None:
    for work in compute_works(models):
        total = get_capacity(state, work) + sign * slots
        if total:
            set_number(state, state_key(CAPACITY, work), total)
        else:
            state.delete(state_key(CAPACITY, work))


def _process_serving(state, ctx, provider: market_pb2.Provider, address: bytes, serving: bool) -> None:
    """Add the provider's slots to the market and its heat to its zone, or take them away."""
    _process_capacity(state, provider.models, provider.slots_per_block, +1 if serving else -1)
    if serving:
        heat.process_join(state, ctx, address, provider.zone)
    else:
        heat.process_leave(state, ctx, address)


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


def signer_provider(msg) -> bytes:
    return parse_address(msg.provider)


def check_stateless_register(msg: tx_pb2.MsgRegisterProvider) -> None:
    parse_address(msg.provider)
    _parse_price(msg.ask_price, "ask price")
    _parse_amount(msg.stake, "stake")
    heat.check_link_fields(msg.validator_pub_key, msg.validator_signature)


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
        provider.validator_address = heat.process_link(state, ctx, address, msg.validator_pub_key, msg.validator_signature, b"")
    bank.process_transfer(state, ctx, address, STAKE, {DENOM: stake})
    set_message(state, state_key(PROVIDER, address), provider)
    _process_serving(state, ctx, provider, address, True)
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
    heat.check_link_fields(msg.validator_pub_key, msg.validator_signature)


def check_and_execute_update(state, ctx, msg: tx_pb2.MsgUpdateProvider) -> tx_pb2.MsgUpdateProviderResponse:
    address = parse_address(msg.provider)
    params = get_params(state)
    provider = _get_active_provider(state, address, msg.provider)
    ask = _check_offer(params, list(msg.models), msg.slots_per_block, msg.ask_price, msg.zone)
    _process_capacity(state, provider.models, provider.slots_per_block, -1)
    del provider.models[:]
    provider.models.extend(sorted(msg.models))
    provider.slots_per_block, provider.ask_price, provider.zone = msg.slots_per_block, str(ask), msg.zone
    _process_serving(state, ctx, provider, address, True)
    added = _parse_amount(msg.add_stake, "add_stake") if msg.add_stake else 0
    if added:
        bank.process_transfer(state, ctx, address, STAKE, {DENOM: added})
        provider.stake = str(int(provider.stake) + added)
    if msg.validator_pub_key:
        provider.validator_address = heat.process_link(
            state, ctx, address, msg.validator_pub_key, msg.validator_signature, provider.validator_address)
    set_message(state, state_key(PROVIDER, address), provider)
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
    _process_serving(state, ctx, provider, address, False)
    set_message(state, state_key(PROVIDER, address), provider)
    state.set(state_key(UNBONDING, provider.unbonding_height, address), b"\x01")
    ctx.emit("provider_unbonding", ("provider", msg.provider), ("unbonding_height", str(provider.unbonding_height)))
    return tx_pb2.MsgUnregisterProviderResponse(unbonding_height=provider.unbonding_height)


def process_unbondings(state, ctx) -> None:
    for key, _ in list(iterate_prefix(state, state_key(UNBONDING, ctx.height))):
        _, address = decode_key(key)
        provider = get_provider(state, address)
        bank.process_payment(state, ctx, STAKE, address, int(provider.stake))
        heat.process_forget(state, address, provider.validator_address)
        state.delete(key)
        state.delete(state_key(PROVIDER, address))
        ctx.emit("provider_unbonded", ("provider", provider.address), ("stake", provider.stake))


# --- orders ----------------------------------------------------------------------------------

@public(STORE)
def get_order(state, order_id: int) -> market_pb2.Order | None:
    return get_message(state, market_pb2.Order, state_key(ORDER, order_id))


def compute_book_key(work: str, price: int, order_id: int) -> bytes:
    return state_key(BOOK, work, UINT256_MAX - price, order_id)


def _insert_order(state, order: market_pb2.Order) -> None:
    set_message(state, state_key(ORDER, order.id), order)
    state.set(compute_book_key(order.work, int(order.max_price), order.id), b"\x01")
    if order.expiry_height:
        state.set(state_key(EXPIRY, order.expiry_height, order.id), b"\x01")
    if order.task_ref:
        set_number(state, state_key(TASK, order.task_ref), order.id)


def _remove_order(state, order: market_pb2.Order) -> None:
    state.delete(state_key(ORDER, order.id))
    state.delete(compute_book_key(order.work, int(order.max_price), order.id))
    if order.expiry_height:
        state.delete(state_key(EXPIRY, order.expiry_height, order.id))
    if order.task_ref:
        state.delete(state_key(TASK, order.task_ref))


@public(STORE)
def process_remove_order(state, order_id: int) -> None:
    """Take an order out of the book (a process's standing order when the process dies)."""
    _remove_order(state, get_order(state, order_id))


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
    if state.get(state_key(TASK, task_ref)) is not None or get_assignment(state, task_ref) is not None:
        raise DuplicateTaskError(f"task {task_ref!r} already has an order or an assignment")


def _check_order(state, params, work: str, slots: int, max_price: int) -> None:
    _check_work(params, work)
    if not 0 < slots <= params.max_order_slots:
        raise InvalidSlotsError(f"slots must be in [1, {params.max_order_slots}]")
    if is_inference(work) and slots != 1:
        raise InvalidSlotsError("an inference order buys one slot for one task")
    if not 0 < max_price <= UINT256_MAX:
        raise InvalidPriceError(f"invalid max price {max_price}: must be a positive integer of at most 256 bits")
    capacity = get_capacity(state, work)
    if slots > capacity:
        raise SlotsExceedCapacityError(f"{slots} slots asked; providers offer {capacity} slots per block for {work}")


@public(STORE)
def process_place_bid(state, ctx, owner: bytes, work: str, slots: int, max_price: int, expiry_height: int,
                      task_ref: str = "") -> int:
    """Escrow slots × max_price from `owner` and put the order in the book; returns its id.

    The inference module calls this for each layer task (slots=1, task_ref naming the task).
    """
    params = get_params(state)
    if not ctx.height <= expiry_height <= ctx.height + params.max_order_lifetime:
        raise InvalidExpiryError(f"expiry height {expiry_height} must be in [{ctx.height}, {ctx.height + params.max_order_lifetime}]")
    _check_task_ref(state, work, task_ref)
    _check_order(state, params, work, slots, max_price)
    escrow = slots * max_price
    if escrow > UINT256_MAX:
        raise InvalidPriceError(f"slots × max price {escrow} exceeds 256 bits")
    bank.process_transfer(state, ctx, owner, ESCROW, {DENOM: escrow})
    order = market_pb2.Order(
        id=process_next_number(state, state_key(NEXT_ORDER_ID)), owner=crypto.encode_address(owner), work=work,
        slots=slots, remaining=slots, max_price=str(max_price), expiry_height=expiry_height, task_ref=task_ref,
        escrow=str(escrow), placed_height=ctx.height,
    )
    _insert_order(state, order)
    ctx.emit("order_placed", ("order", str(order.id)), ("owner", order.owner), ("work", work),
             ("slots", str(slots)), ("max_price", order.max_price), ("task", task_ref))
    return order.id


@public(STORE)
def process_place_standing_order(state, ctx, owner: bytes, slots: int, max_price: int, process_id: int) -> int:
    """A process's order for `slots` process slots at up to `max_price` each, every block until removed;
    its fills are kept for the process component (`process_take_standing_fills`), which pays them."""
    _check_order(state, get_params(state), PROCESS_WORK, slots, max_price)
    order = market_pb2.Order(
        id=process_next_number(state, state_key(NEXT_ORDER_ID)), owner=crypto.encode_address(owner),
        work=PROCESS_WORK, slots=slots, remaining=slots, max_price=str(max_price), escrow="0",
        process_id=process_id, placed_height=ctx.height,
    )
    _insert_order(state, order)
    return order.id


@public(STORE)
def process_take_standing_fills(state) -> list[market_pb2.StandingFill]:
    """This block's fills of standing orders, in order id order; they are removed as they are taken."""
    fills = []
    for key, raw in list(iterate_prefix(state, state_key(STANDING_FILL))):
        fills.append(market_pb2.StandingFill.FromString(raw))
        state.delete(key)
    return fills


def signer_owner(msg) -> bytes:
    return parse_address(msg.owner)


def check_stateless_bid(msg: tx_pb2.MsgBid) -> None:
    """A bid buys process slots; inference tasks are placed only by the inference module, for real
    requests whose reward it escrowed (a bid naming any task would get providers slashed to it)."""
    parse_address(msg.owner)
    if is_inference(msg.work):
        raise InferenceBidError(f"work {msg.work!r} is bought with MsgRequestInference, not a bid: "
                                "inference tasks are placed by the inference module")
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
    for key, _ in list(iterate_prefix(state, state_key(EXPIRY, ctx.height))):
        _end_order(state, ctx, get_order(state, decode_key(key)[1]), "expired")


# --- assignments -----------------------------------------------------------------------------

@public(STORE)
def get_assignment(state, task_ref: str) -> market_pb2.Assignment | None:
    return get_message(state, market_pb2.Assignment, state_key(ASSIGNMENT, task_ref))


def _process_assign(state, ctx, params, order: market_pb2.Order, provider: bytes, price: int) -> None:
    _remove_order(state, order)
    assignment = market_pb2.Assignment(
        task_ref=order.task_ref, provider=crypto.encode_address(provider), price=str(price),
        deadline_height=ctx.height + params.task_deadline_blocks, owner=order.owner, work=order.work,
        max_price=order.max_price, expiry_height=order.expiry_height, escrow=order.escrow, assigned_height=ctx.height,
    )
    set_message(state, state_key(ASSIGNMENT, order.task_ref), assignment)
    state.set(state_key(DEADLINE, assignment.deadline_height, order.task_ref), b"\x01")
    ctx.emit("task_assigned", ("task", order.task_ref), ("provider", assignment.provider), ("price", str(price)),
             ("deadline_height", str(assignment.deadline_height)))


def _remove_assignment(state, assignment: market_pb2.Assignment) -> None:
    state.delete(state_key(ASSIGNMENT, assignment.task_ref))
    state.delete(state_key(DEADLINE, assignment.deadline_height, assignment.task_ref))


@public(STORE)
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
    for key, _ in list(iterate_prefix(state, state_key(DEADLINE, ctx.height))):
        assignment = get_assignment(state, decode_key(key)[1])
        _remove_assignment(state, assignment)
        address = crypto.decode_address(assignment.provider)
        provider = get_provider(state, address)
        slashed = int(provider.stake) * params.slash_bps // BPS
        provider.stake = str(int(provider.stake) - slashed)
        set_message(state, state_key(PROVIDER, address), provider)
        bank.process_payment(state, ctx, STAKE, parse_address(assignment.owner), slashed)
        ctx.emit("task_missed", ("task", assignment.task_ref), ("provider", assignment.provider), ("slashed", str(slashed)))
        if assignment.expiry_height < ctx.height:
            bank.process_payment(state, ctx, ESCROW, parse_address(assignment.owner), int(assignment.escrow))
            ctx.emit("task_expired", ("task", assignment.task_ref), ("owner", assignment.owner), ("refund", assignment.escrow))
            continue
        order = market_pb2.Order(
            id=process_next_number(state, state_key(NEXT_ORDER_ID)), owner=assignment.owner, work=assignment.work, slots=1, remaining=1,
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
    for key, _ in iterate_prefix(state, state_key(BOOK, work)):
        _, inverse_price, order_id = decode_key(key)
        order = get_order(state, order_id)
        orders[order_id] = order
        yield UINT256_MAX - inverse_price, order_id, order.remaining


def is_serving(params, provider: market_pb2.Provider) -> bool:
    return not provider.unbonding_height and int(provider.stake) >= int(params.min_stake)


def get_effective_ask(state, params, provider: market_pb2.Provider, address: bytes, height: int,
                      zones: dict | None = None) -> int | None:
    """The ask the market clears this provider on; None while it is withdrawn."""
    if not is_serving(params, provider):
        return None
    return heat.get_effective_ask(state, address, provider.zone, int(provider.ask_price), height, zones)


@public(STORE)
def get_lowest_ask(state, work: str, height: int) -> int | None:
    """The lowest effective ask of the serving providers offering `work`; None when none does."""
    params = get_params(state)
    asks = []
    zones: dict[str, int] = {}
    for key, raw in iterate_prefix(state, state_key(PROVIDER)):
        provider = market_pb2.Provider.FromString(raw)
        if work in compute_works(provider.models):
            ask = get_effective_ask(state, params, provider, decode_key(key)[0], height, zones)
            if ask is not None:
                asks.append(ask)
    return min(asks, default=None)


def compute_supply(state, params, height: int) -> tuple[dict[str, list[tuple[int, bytes]]], dict[bytes, int]]:
    """Every serving provider's effective ask per work kind (best first) and its slots for the block."""
    asks: dict[str, list[tuple[int, bytes]]] = {}
    capacity: dict[bytes, int] = {}
    zones: dict[str, int] = {}
    for key, raw in iterate_prefix(state, state_key(PROVIDER)):
        address, = decode_key(key)
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
    return next(iter(iterate_prefix(state, state_key(BOOK, work))), None) is not None


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
    set_message(state, state_key(CLEARING, work), market_pb2.Clearing(work=work, height=ctx.height, price=str(price),
                                                                      matched_slots=matched))
    ctx.emit("auction_cleared", ("work", work), ("price", str(price)), ("matched_slots", str(matched)))
    fee = price * params.protocol_fee_bps // BPS
    payouts: dict[bytes, int] = {}
    fees = 0
    leased: dict[int, market_pb2.Order] = {}
    for fill in fills:
        order = orders[fill.order_id]
        if order.process_id:
            set_message(state, state_key(STANDING_FILL, order.id, fill.provider), market_pb2.StandingFill(
                order_id=order.id, process_id=order.process_id, provider=crypto.encode_address(fill.provider),
                slots=fill.slots, price=str(price), fee=str(fee)))
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
            set_message(state, state_key(ORDER, order.id), order)
        else:
            _end_order(state, ctx, order, "filled")
    for provider, amount in sorted(payouts.items()):
        bank.process_payment(state, ctx, ESCROW, provider, amount)
    bank.process_payment(state, ctx, ESCROW, bank.FEE_COLLECTOR, fees)


# --- end block -------------------------------------------------------------------------------

def end_block(state, ctx) -> None:
    """Deadlines, then clearing (whose process fills the process component pays next), then the
    orders and stakes whose time has come."""
    params = get_params(state)
    process_deadlines(state, ctx, params)
    process_clearings(state, ctx, params)
    process_expiries(state, ctx)
    process_unbondings(state, ctx)


MESSAGES = {
    compute_type_url(tx_pb2.MsgRegisterProvider): MessageHandler(
        tx_pb2.MsgRegisterProvider, signer_provider, check_stateless_register, check_and_execute_register),
    compute_type_url(tx_pb2.MsgUpdateProvider): MessageHandler(
        tx_pb2.MsgUpdateProvider, signer_provider, check_stateless_update, check_and_execute_update),
    compute_type_url(tx_pb2.MsgUnregisterProvider): MessageHandler(
        tx_pb2.MsgUnregisterProvider, signer_provider, check_stateless_unregister, check_and_execute_unregister),
    compute_type_url(tx_pb2.MsgBid): MessageHandler(tx_pb2.MsgBid, signer_owner, check_stateless_bid, check_and_execute_bid),
    compute_type_url(tx_pb2.MsgCancelOrder): MessageHandler(
        tx_pb2.MsgCancelOrder, signer_owner, check_stateless_cancel, check_and_execute_cancel),
}


# --- genesis ---------------------------------------------------------------------------------

def init_chain(state, section: dict, ctx) -> None:
    """Params and (from an export) the market's records; run after bank, whose module-account
    balances must equal what the records hold in escrow and stake, and after heat, which keeps the
    providers' readings."""
    genesis = decode_genesis(section, market_pb2.GenesisState, DEFAULT_PARAMS, STORE)
    check_params(genesis.params)
    set_message(state, state_key(PARAMS), genesis.params)
    try:
        escrow, stake = _import_records(state, genesis)
    except (crypto.InvalidAddress, ValueError, TxError, KeyError) as error:
        raise GenesisError(f"market genesis: {error}") from None
    for account, held, what in ((ESCROW, escrow, "escrow"), (STAKE, stake, "stake")):
        balance = bank.get_balance(state, account, DENOM)
        if balance != held:
            raise AccountingMismatch(f"market genesis: records hold {held}{DENOM} in {what}; its account has {balance}{DENOM}")


def _import_records(state, genesis: market_pb2.GenesisState) -> tuple[int, int]:
    set_number(state, state_key(NEXT_ORDER_ID), max(genesis.next_order_id, 1))
    escrow = stake = 0
    for provider in genesis.providers:
        address = crypto.decode_address(provider.address)
        set_message(state, state_key(PROVIDER, address), provider)
        stake += _parse_amount(provider.stake, "stake")
        if provider.unbonding_height:
            state.set(state_key(UNBONDING, provider.unbonding_height, address), b"\x01")
        else:
            _process_capacity(state, provider.models, provider.slots_per_block, +1)
    for order in genesis.orders:
        _insert_order(state, order)
        escrow += _parse_amount(order.escrow, "escrow")
    for assignment in genesis.assignments:
        set_message(state, state_key(ASSIGNMENT, assignment.task_ref), assignment)
        state.set(state_key(DEADLINE, assignment.deadline_height, assignment.task_ref), b"\x01")
        escrow += _parse_amount(assignment.escrow, "escrow")
    for clearing in genesis.clearings:
        set_message(state, state_key(CLEARING, clearing.work), clearing)
    return escrow, stake


@public(STORE)
def export_genesis(state) -> dict:
    genesis = market_pb2.GenesisState(
        params=get_params(state),
        next_order_id=get_number(state, state_key(NEXT_ORDER_ID), 1),
        providers=get_messages(state, market_pb2.Provider, state_key(PROVIDER)),
        orders=get_messages(state, market_pb2.Order, state_key(ORDER)),
        assignments=get_messages(state, market_pb2.Assignment, state_key(ASSIGNMENT)),
        clearings=get_messages(state, market_pb2.Clearing, state_key(CLEARING)),
    )
    return encode_json(genesis)


# --- queries (gRPC over ABCI) ----------------------------------------------------------------

def _page(state, prefix: bytes, pagination) -> tuple[list[tuple[bytes, bytes]], bytes]:
    limit = min(pagination.limit or DEFAULT_PAGE, MAX_PAGE)
    start = pagination.key if pagination.key.startswith(prefix) else prefix
    rows = []
    for key, value in state.iterate(start, compute_prefix_end(prefix)):
        if len(rows) == limit:
            return rows, key
        rows.append((key, value))
    return rows, b""


def _provider_view(state, params, provider: market_pb2.Provider, address: bytes) -> query_pb2.ProviderView:
    own, zone = heat.get_temperatures(state, address, provider.zone, state.height)
    record = heat.get_heat(state, address)
    effective = get_effective_ask(state, params, provider, address, state.height)
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
    views = [_provider_view(state, params, market_pb2.Provider.FromString(raw), decode_key(key)[0]) for key, raw in rows]
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
    orders = [get_order(state, decode_key(key)[2]) for key, _ in rows]
    return query_pb2.QueryBookResponse(orders=orders, pagination={"next_key": next_key})


def query_clearing(state, request: query_pb2.QueryClearingRequest) -> query_pb2.QueryClearingResponse:
    _check_work(get_params(state), request.work)
    clearing = get_message(state, market_pb2.Clearing, state_key(CLEARING, request.work))
    if clearing is None:
        raise NotFoundError(f"work {request.work!r} has not cleared yet")
    return query_pb2.QueryClearingResponse(clearing=clearing)


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
    "/maxwell.market.v1.Query/Assignment": (query_pb2.QueryAssignmentRequest, query_assignment),
}
