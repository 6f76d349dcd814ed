"""The process component: long-lived jobs that hold slots every block and keep memory on chain.

Each block a process pays rent: the slots it held at that block's clearing price, plus
`memory_rent_per_byte` for every byte of memory it keeps (key and value bytes). A process holds a
standing order in the market's book (placed through the market's book API) that bids again every
block; the market's end_block records what it filled, and this component's end_block, which runs
after it, charges the rent from the process's escrow and pays the providers — or kills the process
(apoptosis) when the escrow cannot pay.

Rent for memory alone is predictable, so it is settled lazily: a process records the last block it
paid for (`paid_height`) and the block at which memory rent alone would exhaust its escrow
(`death_height`); the chain touches it only when it is matched, changes its memory, is topped up, or
reaches that block. Allocating memory costs ordinary write gas; erasing it pays the entropy tax of
the core gas schedule (`GasParams.erase_cost_per_byte`), converted to ujoule at the minimum gas
price when the chain erases a dead process's memory outside any transaction.

Money: escrows live in the PROCESS_ESCROW module account; the records account for its balance.

Store layout (`encode_key`; ints are 32-byte big-endian so they sort numerically):
    0x01                        -> ProcessParams
    0x02                        -> next process id
    0x10 | process id           -> Process
    0x11 | process id | key     -> memory value
    0x12 | height | process id  -> memory rent exhausts the escrow at height
"""



from chain import auth, bank, crypto, market
from chain.coins import DENOM, parse_uint
from chain.errors import GenesisError, TxError
from chain.genesis import decode_genesis, encode_json
from chain.proto.maxwell.market.v1 import market_pb2, query_pb2, tx_pb2
from chain.state import (
    MessageHandler, decode_key as decode_key_of, encode_key, get_message, get_messages, get_shared_message,
    get_number, iterate_prefix, process_next_number, public, set_message, set_number,
)
from chain.tx import compute_required_fee, compute_type_url, parse_address

STORE = "process"
CODESPACE = "process"
ESCROW = bank.compute_module_address("process_escrow")
MAX_MEMORY_KEY_BYTES = 64

PARAMS = 0x01
NEXT_PROCESS_ID = 0x02
PROCESS = 0x10
MEMORY = 0x11
DEATH = 0x12
KEYS = {PARAMS: (), NEXT_PROCESS_ID: (), PROCESS: (int,), MEMORY: (int, bytes), DEATH: (int, int)}

DEFAULT_PARAMS = market_pb2.ProcessParams(
    memory_rent_per_byte="1",
    max_process_memory_bytes=65_536,
    max_memory_value_bytes=4096,
)


class ProcessError(TxError):
    codespace = CODESPACE


class ProcessNotFoundError(ProcessError):
    code = 2


class NotProcessOwnerError(ProcessError):
    code = 3


class ProcessEscrowError(ProcessError):
    code = 4


class MemoryLimitError(ProcessError):
    code = 5


class InvalidMemoryKeyError(ProcessError):
    code = 6


class MemoryKeyNotFoundError(ProcessError):
    code = 7


class InvalidAmountError(ProcessError):
    code = 8


class InvalidSlotsError(ProcessError):
    code = 9


class InvalidRentError(ProcessError):
    code = 10


class InvalidParams(GenesisError):
    pass


class AccountingMismatch(GenesisError):
    pass


# --- economics -----------------------------------------------------------------------------

def compute_memory_size(key: bytes, value: bytes) -> int:
    return len(key) + len(value)


def compute_memory_rent(memory_bytes: int, rent_per_byte: int, blocks: int) -> int:
    return memory_bytes * rent_per_byte * max(blocks, 0)


def compute_death_height(paid_height: int, escrow: int, memory_bytes: int, rent_per_byte: int) -> int:
    """The first block whose memory rent the escrow cannot pay; 0 when memory costs nothing."""
    per_block = memory_bytes * rent_per_byte
    if per_block == 0:
        return 0
    return paid_height + escrow // per_block + 1


def compute_erase_tax(erased_bytes: int, gas_params, tx_params) -> int:
    """The entropy tax of erasing `erased_bytes`, in ujoule at the minimum gas price (rounded up)."""
    gas = erased_bytes * gas_params.erase_cost_per_byte
    return compute_required_fee(gas, tx_params)


# --- state ---------------------------------------------------------------------------------

def state_key(kind: int, *parts) -> bytes:
    return encode_key(kind, *parts)


def decode_key(key: bytes) -> tuple:
    return decode_key_of(key, KEYS)


@public(STORE)
def get_params(state) -> market_pb2.ProcessParams:
    return get_shared_message(state, market_pb2.ProcessParams, state_key(PARAMS))


def check_params(params: market_pb2.ProcessParams) -> None:
    try:
        parse_uint(params.memory_rent_per_byte, "memory_rent_per_byte")
    except TxError as error:
        raise InvalidParams(f"process params: {error}") from None
    if params.max_process_memory_bytes < 1 or params.max_memory_value_bytes < 1:
        raise InvalidParams("process params: max_process_memory_bytes and max_memory_value_bytes must be positive")


@public(STORE)
def get_process(state, process_id: int) -> market_pb2.Process | None:
    return get_message(state, market_pb2.Process, state_key(PROCESS, process_id))


def _get_owned_process(state, process_id: int, owner: str) -> market_pb2.Process:
    record = get_process(state, process_id)
    if record is None:
        raise ProcessNotFoundError(f"process {process_id} does not exist")
    if record.owner != owner:
        raise NotProcessOwnerError(f"process {process_id} belongs to {record.owner}")
    return record


def _settle_memory_rent(state, ctx, params, record: market_pb2.Process, through_height: int) -> None:
    """Pay memory rent up to `through_height` to the fee pool (the death schedule keeps it affordable)."""
    due = compute_memory_rent(record.memory_bytes, int(params.memory_rent_per_byte), through_height - record.paid_height)
    charged = min(due, int(record.escrow))
    record.escrow = str(int(record.escrow) - charged)
    record.paid_height = max(record.paid_height, through_height)
    bank.process_payment(state, ctx, ESCROW, bank.FEE_COLLECTOR, charged)


def _save_process(state, params, record: market_pb2.Process) -> None:
    """Store the process and move its death to where its escrow now runs out."""
    if record.death_height:
        state.delete(state_key(DEATH, record.death_height, record.id))
    record.death_height = compute_death_height(
        record.paid_height, int(record.escrow), record.memory_bytes, int(params.memory_rent_per_byte))
    if record.death_height:
        state.set(state_key(DEATH, record.death_height, record.id), b"\x01")
    set_message(state, state_key(PROCESS, record.id), record)


def process_rent(state, ctx, params, record: market_pb2.Process, fills: list[market_pb2.StandingFill]) -> None:
    """Charge a matched process this block's rent and pay its providers, or kill it."""
    price = int(fills[0].price)
    slots = sum(fill.slots for fill in fills)
    memory = compute_memory_rent(record.memory_bytes, int(params.memory_rent_per_byte), ctx.height - record.paid_height)
    if memory + slots * price > int(record.escrow):
        process_apoptosis(state, ctx, params, record, "rent", tax_from_escrow=True)
        return
    record.escrow = str(int(record.escrow) - memory - slots * price)
    record.paid_height = ctx.height
    _save_process(state, params, record)
    fees = memory
    for fill in fills:
        fee = int(fill.fee)
        bank.process_payment(state, ctx, ESCROW, crypto.decode_address(fill.provider), fill.slots * (price - fee))
        fees += fill.slots * fee
        ctx.emit("lease_filled", ("order", str(record.order_id)), ("provider", fill.provider),
                 ("slots", str(fill.slots)), ("price", str(price)), ("process", str(record.id)))
    bank.process_payment(state, ctx, ESCROW, bank.FEE_COLLECTOR, fees)


def process_apoptosis(state, ctx, params, record: market_pb2.Process, reason: str, tax_from_escrow: bool) -> None:
    """Kill a process: free its slots, erase its memory, pay what it owes, refund the rest.

    Outside a transaction the entropy tax of the erasure is charged from the escrow; inside one
    (MsgStopProcess) the deletes already charged it as gas.
    """
    _settle_memory_rent(state, ctx, params, record, ctx.height - 1)
    market.process_remove_order(state, record.order_id)
    for key, _ in list(iterate_prefix(state, state_key(MEMORY, record.id))):
        state.delete(key)
    tax = 0
    if tax_from_escrow:
        tx_params, _ = auth.get_params(state)
        tax = min(int(record.escrow), compute_erase_tax(record.memory_bytes, state.gas, tx_params))
    refund = int(record.escrow) - tax
    bank.process_payment(state, ctx, ESCROW, bank.FEE_COLLECTOR, tax)
    bank.process_payment(state, ctx, ESCROW, parse_address(record.owner), refund)
    if record.death_height:
        state.delete(state_key(DEATH, record.death_height, record.id))
    state.delete(state_key(PROCESS, record.id))
    ctx.emit("apoptosis", ("process", str(record.id)), ("height", str(ctx.height)), ("reason", reason),
             ("erased_bytes", str(record.memory_bytes)), ("tax", str(tax)), ("refund", str(refund)))


# --- messages ------------------------------------------------------------------------------

def signer_owner(msg) -> bytes:
    return parse_address(msg.owner)


def _parse_rent(text: str) -> int:
    rent = parse_uint(text, "max rent", InvalidRentError)
    if rent == 0:
        raise InvalidRentError("max rent must be positive")
    return rent


def check_stateless_start(msg: tx_pb2.MsgStartProcess) -> None:
    parse_address(msg.owner)
    _parse_rent(msg.max_rent)
    parse_uint(msg.escrow, "escrow", InvalidAmountError)
    if msg.slots == 0:
        raise InvalidSlotsError("a process holds at least one slot")


def check_and_execute_start(state, ctx, msg: tx_pb2.MsgStartProcess) -> tx_pb2.MsgStartProcessResponse:
    owner = parse_address(msg.owner)
    params = get_params(state)
    max_rent, escrow = _parse_rent(msg.max_rent), parse_uint(msg.escrow, "escrow", InvalidAmountError)
    if escrow < msg.slots * max_rent:
        raise ProcessEscrowError(f"escrow {escrow}{DENOM} must cover one block at max rent "
                                 f"({msg.slots} × {max_rent} = {msg.slots * max_rent}{DENOM})")
    process_id = process_next_number(state, state_key(NEXT_PROCESS_ID))
    order_id = market.process_place_standing_order(state, ctx, owner, msg.slots, max_rent, process_id)
    bank.process_transfer(state, ctx, owner, ESCROW, {DENOM: escrow})
    record = market_pb2.Process(
        id=process_id, owner=msg.owner, slots=msg.slots, max_rent=str(max_rent), escrow=str(escrow),
        paid_height=ctx.height - 1, started_height=ctx.height, order_id=order_id,
    )
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
    old = state.get(key)
    size = record.memory_bytes - (0 if old is None else compute_memory_size(msg.key, old))
    size += compute_memory_size(msg.key, msg.value)
    if size > params.max_process_memory_bytes:
        raise MemoryLimitError(f"process memory would be {size} bytes; at most {params.max_process_memory_bytes}")
    _settle_memory_rent(state, ctx, params, record, ctx.height - 1)
    state.set(key, msg.value)
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
    old = state.get(key)
    if old is None:
        raise MemoryKeyNotFoundError(f"process {record.id} has no memory key {msg.key.hex()}")
    _settle_memory_rent(state, ctx, params, record, ctx.height - 1)
    state.delete(key)
    record.memory_bytes -= compute_memory_size(msg.key, old)
    _save_process(state, params, record)
    return tx_pb2.MsgProcessDeleteResponse()


def check_stateless_top_up(msg: tx_pb2.MsgTopUp) -> None:
    parse_address(msg.owner)
    if parse_uint(msg.amount, "amount", InvalidAmountError) == 0:
        raise InvalidAmountError("a top-up adds a positive amount")


def check_and_execute_top_up(state, ctx, msg: tx_pb2.MsgTopUp) -> tx_pb2.MsgTopUpResponse:
    params = get_params(state)
    record = _get_owned_process(state, msg.process_id, msg.owner)
    amount = parse_uint(msg.amount, "amount", InvalidAmountError)
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


MESSAGES = {
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


# --- end block -----------------------------------------------------------------------------

def end_block(state, ctx) -> None:
    """Rent for the slots the market filled this block, then the processes whose escrow cannot pay
    this block's memory rent."""
    params = get_params(state)
    fills: dict[int, list[market_pb2.StandingFill]] = {}
    for fill in market.process_take_standing_fills(state):
        fills.setdefault(fill.process_id, []).append(fill)
    for process_id, process_fills in fills.items():
        process_rent(state, ctx, params, get_process(state, process_id), process_fills)
    for key, _ in list(iterate_prefix(state, state_key(DEATH, ctx.height))):
        process_apoptosis(state, ctx, params, get_process(state, decode_key(key)[1]), "rent", tax_from_escrow=True)


# --- genesis -------------------------------------------------------------------------------

def init_chain(state, section: dict, ctx) -> None:
    """Params and (from an export) processes and their memory; run after bank and market (whose book
    holds the processes' standing orders)."""
    genesis = decode_genesis(section, market_pb2.ProcessGenesisState, DEFAULT_PARAMS, STORE)
    check_params(genesis.params)
    set_message(state, state_key(PARAMS), genesis.params)
    held = 0
    try:
        for record in genesis.processes:
            set_message(state, state_key(PROCESS, record.id), record)
            if record.death_height:
                state.set(state_key(DEATH, record.death_height, record.id), b"\x01")
            held += parse_uint(record.escrow, "escrow")
        for entry in genesis.memory:
            state.set(state_key(MEMORY, entry.process_id, entry.key), entry.value)
    except (TxError, ValueError) as error:
        raise GenesisError(f"process genesis: {error}") from None
    last = max((record.id for record in genesis.processes), default=0)
    set_number(state, state_key(NEXT_PROCESS_ID), max(genesis.next_process_id, last + 1))
    balance = bank.get_balance(state, ESCROW, DENOM)
    if balance != held:
        raise AccountingMismatch(f"process genesis: records hold {held}{DENOM} in escrow; its account has {balance}{DENOM}")


@public(STORE)
def export_genesis(state) -> dict:
    memory = []
    for key, value in iterate_prefix(state, state_key(MEMORY)):
        process_id, memory_key = decode_key(key)
        memory.append(market_pb2.MemoryEntry(process_id=process_id, key=memory_key, value=value))
    genesis = market_pb2.ProcessGenesisState(
        params=get_params(state),
        next_process_id=get_number(state, state_key(NEXT_PROCESS_ID), 1),
        processes=get_messages(state, market_pb2.Process, state_key(PROCESS)),
        memory=memory,
    )
    return encode_json(genesis)


# --- queries -------------------------------------------------------------------------------

def query_process(state, request: query_pb2.QueryProcessRequest) -> query_pb2.QueryProcessResponse:
    record = get_process(state, request.id)
    if record is None:
        raise ProcessNotFoundError(f"process {request.id} does not exist")
    memory = [market_pb2.MemoryEntry(process_id=record.id, key=decode_key(key)[1], value=value)
              for key, value in iterate_prefix(state, state_key(MEMORY, record.id))]
    return query_pb2.QueryProcessResponse(process=record, memory=memory)


QUERIES = {
    "/maxwell.market.v1.Query/Process": (query_pb2.QueryProcessRequest, query_process),
}
