"""Balances and supply of JOULE (and any other denom), and MsgSend."""

import hashlib

from chain import auth, crypto
from chain.coins import DENOM, UINT256_MAX, format_coins, parse_coins, parse_denom, parse_uint
from chain.errors import (
    GenesisError,
    InsufficientFundsError,
    InvalidCoinsError,
    InvalidRequestError,
    NotFoundError,
)
from chain.proto.cosmos.bank.v1beta1 import bank_pb2, query_pb2, tx_pb2
from chain.state import (
    MessageHandler, decode_key as decode_key_of, decode_number, encode_key, get_number, iterate_prefix, public,
    set_message, set_number,
)
from chain.tx import parse_address

STORE = "bank"
MSG_SEND_URL = "/cosmos.bank.v1beta1.MsgSend"
MODULE_ACCOUNTS = (
    "fee_collector", "market_escrow", "market_stake", "process_escrow", "inference_escrow", "bonded_tokens_pool",
    "not_bonded_tokens_pool", "transfer",
)


def compute_module_address(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest()[:20]


FEE_COLLECTOR = compute_module_address("fee_collector")
BLOCKED_ADDRESSES = frozenset(compute_module_address(name) for name in MODULE_ACCOUNTS)
MAX_PAGE = 1000

BALANCE = 0x01
SUPPLY = 0x02
DENOM_METADATA = 0x03


class SupplyMismatch(GenesisError):
    pass


KEYS = {BALANCE: (bytes, str), SUPPLY: (str,), DENOM_METADATA: (str,)}


def state_key(kind: int, *parts) -> bytes:
    return encode_key(kind, *parts)


def decode_key(key: bytes) -> tuple:
    return decode_key_of(key, KEYS)


@public(STORE)
def get_balance(state, address: bytes, denom: str) -> int:
    return get_number(state, state_key(BALANCE, address, denom))


@public(STORE)
def get_all_balances(state, address: bytes) -> dict[str, int]:
    return {decode_key(key)[1]: decode_number(raw) for key, raw in iterate_prefix(state, state_key(BALANCE, address))}


@public(STORE)
def get_supply(state, denom: str) -> int:
    return get_number(state, state_key(SUPPLY, denom))


@public(STORE)
def iterate_supply(state):
    for key, raw in iterate_prefix(state, state_key(SUPPLY)):
        yield decode_key(key)[0], decode_number(raw)


def set_balance(state, address: bytes, denom: str, amount: int) -> None:
    key = state_key(BALANCE, address, denom)
    if amount:
        set_number(state, key, amount)
    else:
        state.delete(key)


def process_debit(state, address: bytes, denom: str, amount: int) -> None:
    balance = get_balance(state, address, denom)
    if balance < amount:
        raise InsufficientFundsError(
            f"spendable balance {balance}{denom} is smaller than {amount}{denom}: insufficient funds"
        )
    set_balance(state, address, denom, balance - amount)


@public(STORE)
def process_transfer(state, ctx, sender: bytes, recipient: bytes, coins: dict[str, int]) -> None:
    """Move coins; emits coin_spent, coin_received and transfer where the balances change."""
    for denom, amount in sorted(coins.items()):
        process_debit(state, sender, denom, amount)
    for denom, amount in sorted(coins.items()):
        set_balance(state, recipient, denom, get_balance(state, recipient, denom) + amount)
    text = format_coins(coins)
    sender_text, recipient_text = crypto.encode_address(sender), crypto.encode_address(recipient)
    ctx.emit("coin_spent", ("spender", sender_text), ("amount", text))
    ctx.emit("coin_received", ("receiver", recipient_text), ("amount", text))
    ctx.emit("transfer", ("recipient", recipient_text), ("sender", sender_text), ("amount", text))


@public(STORE)
def process_payment(state, ctx, sender: bytes, recipient: bytes, amount: int) -> None:
    """Moves `amount` ujoule (nothing when zero): escrows, refunds, rents and rewards."""
    if amount:
        process_transfer(state, ctx, sender, recipient, {DENOM: amount})


@public(STORE)
def process_burn(state, ctx, account: bytes, amount: int, denom: str = DENOM) -> None:
    """Destroys `amount` of `account`'s `denom` (slashed stake, IBC vouchers sent home); the supply falls by as much."""
    if not amount:
        return
    process_debit(state, account, denom, amount)
    set_number(state, state_key(SUPPLY, denom), get_supply(state, denom) - amount)
    text, burner = format_coins({denom: amount}), crypto.encode_address(account)
    ctx.emit("coin_spent", ("spender", burner), ("amount", text))
    ctx.emit("burn", ("burner", burner), ("amount", text))


@public(STORE)
def process_mint(state, ctx, account: bytes, denom: str, amount: int) -> None:
    """Creates `amount` of `denom` in `account` (IBC vouchers); the supply grows by as much, within 256 bits."""
    supply = get_supply(state, denom) + amount
    if supply > UINT256_MAX:
        raise InvalidCoinsError(f"minting {amount}{denom} would take its supply past 256 bits")
    set_number(state, state_key(SUPPLY, denom), supply)
    set_balance(state, account, denom, get_balance(state, account, denom) + amount)
    text, minter = format_coins({denom: amount}), crypto.encode_address(account)
    ctx.emit("coinbase", ("minter", minter), ("amount", text))
    ctx.emit("coin_received", ("receiver", minter), ("amount", text))


@public(STORE)
def has_denom_metadata(state, denom: str) -> bool:
    return state.get(state_key(DENOM_METADATA, denom)) is not None


@public(STORE)
def set_denom_metadata(state, metadata: bank_pb2.Metadata) -> None:
    set_message(state, state_key(DENOM_METADATA, metadata.base), metadata)


# --- MsgSend ----------------------------------------------------------------------------------

def signer_send(msg: tx_pb2.MsgSend) -> bytes:
    return parse_address(msg.from_address)


def check_stateless_send(msg: tx_pb2.MsgSend) -> None:
    parse_address(msg.from_address)
    parse_address(msg.to_address)
    if not msg.amount:
        raise InvalidCoinsError("invalid coins: send amount is empty")
    parse_coins(msg.amount)


def check_and_execute_send(state, ctx, msg: tx_pb2.MsgSend) -> tx_pb2.MsgSendResponse:
    sender, recipient = parse_address(msg.from_address), parse_address(msg.to_address)
    if recipient in BLOCKED_ADDRESSES:
        raise InvalidRequestError(f"invalid request: {msg.to_address} is a module account and cannot receive sends")
    auth.process_ensure_account(state, recipient)
    process_transfer(state, ctx, sender, recipient, parse_coins(msg.amount))
    ctx.emit("message", ("sender", msg.from_address), ("module", "bank"))
    return tx_pb2.MsgSendResponse()


MESSAGES = {
    MSG_SEND_URL: MessageHandler(tx_pb2.MsgSend, signer_send, check_stateless_send, check_and_execute_send),
}


# --- genesis ----------------------------------------------------------------------------------

def compute_default_genesis() -> dict:
    return {
        "params": {"default_send_enabled": True, "send_enabled": []},
        "balances": [],
        "supply": [],
        "denom_metadata": [
            {
                "description": "The energy token of maxwell",
                "denom_units": [{"denom": DENOM, "exponent": 0}, {"denom": "joule", "exponent": 6}],
                "base": DENOM,
                "display": "joule",
                "name": "JOULE",
                "symbol": "JOULE",
            }
        ],
    }


def init_chain(state, section: dict, ctx) -> None:
    if not isinstance(section, dict):
        raise GenesisError("bank genesis must be an object")
    totals: dict[str, int] = {}
    try:
        for entry in section.get("balances", []):
            address = crypto.decode_address(entry["address"])
            auth.process_ensure_account(state, address)
            for denom, amount in parse_coins(entry["coins"]).items():
                if get_balance(state, address, denom):
                    raise GenesisError(f"bank balances: duplicate {denom} balance for {entry['address']}")
                set_balance(state, address, denom, amount)
                totals[denom] = totals.get(denom, 0) + amount
        declared = {coin["denom"]: parse_uint(coin["amount"]) for coin in section.get("supply", [])}
        for metadata in section.get("denom_metadata", []):
            set_message(state, state_key(DENOM_METADATA, parse_denom(metadata["base"])), _metadata(metadata))
    except (crypto.InvalidAddress, InvalidCoinsError, KeyError, TypeError) as error:
        raise GenesisError(f"bank genesis: {error}") from None
    if declared and declared != totals:
        raise SupplyMismatch(f"bank genesis: declared supply {declared} does not equal the sum of balances {totals}")
    for denom, amount in totals.items():
        if amount > UINT256_MAX:
            raise GenesisError(f"bank genesis: total {denom} exceeds 256 bits")
        set_number(state, state_key(SUPPLY, denom), amount)


def _metadata(entry: dict) -> bank_pb2.Metadata:
    return bank_pb2.Metadata(
        description=entry.get("description", ""),
        denom_units=[bank_pb2.DenomUnit(denom=u["denom"], exponent=int(u.get("exponent", 0))) for u in entry.get("denom_units", [])],
        base=entry["base"],
        display=entry.get("display", ""),
        name=entry.get("name", ""),
        symbol=entry.get("symbol", ""),
    )


@public(STORE)
def export_genesis(state) -> dict:
    balances: dict[bytes, dict[str, int]] = {}
    for key, raw in iterate_prefix(state, state_key(BALANCE)):
        address, denom = decode_key(key)
        balances.setdefault(address, {})[denom] = decode_number(raw)
    return {
        "params": {"default_send_enabled": True, "send_enabled": []},
        "balances": [
            {"address": crypto.encode_address(a), "coins": [{"denom": d, "amount": str(v)} for d, v in sorted(c.items())]}
            for a, c in sorted(balances.items())
        ],
        "supply": [{"denom": d, "amount": str(v)} for d, v in iterate_supply(state)],
    }


# --- queries (gRPC over ABCI) -----------------------------------------------------------------

def query_balance(state, request: query_pb2.QueryBalanceRequest) -> query_pb2.QueryBalanceResponse:
    address = parse_address(request.address)
    denom = parse_denom(request.denom)
    return query_pb2.QueryBalanceResponse(balance={"denom": denom, "amount": str(get_balance(state, address, denom))})


def query_all_balances(state, request: query_pb2.QueryAllBalancesRequest) -> query_pb2.QueryAllBalancesResponse:
    balances = get_all_balances(state, parse_address(request.address))
    coins = [{"denom": d, "amount": str(v)} for d, v in sorted(balances.items())]
    return query_pb2.QueryAllBalancesResponse(balances=coins, pagination={"total": len(coins)})


def query_total_supply(state, request: query_pb2.QueryTotalSupplyRequest) -> query_pb2.QueryTotalSupplyResponse:
    supply = [{"denom": d, "amount": str(v)} for d, v in iterate_supply(state)]
    return query_pb2.QueryTotalSupplyResponse(supply=supply, pagination={"total": len(supply)})


def query_supply_of(state, request: query_pb2.QuerySupplyOfRequest) -> query_pb2.QuerySupplyOfResponse:
    denom = parse_denom(request.denom)
    return query_pb2.QuerySupplyOfResponse(amount={"denom": denom, "amount": str(get_supply(state, denom))})


def query_params(state, request: query_pb2.QueryParamsRequest) -> query_pb2.QueryParamsResponse:
    return query_pb2.QueryParamsResponse(params={"default_send_enabled": True})


def query_denom_metadata(state, request: query_pb2.QueryDenomMetadataRequest) -> query_pb2.QueryDenomMetadataResponse:
    raw = state.get(state_key(DENOM_METADATA, parse_denom(request.denom)))
    if raw is None:
        raise NotFoundError(f"rpc error: code = NotFound desc = client metadata for denom {request.denom}")
    return query_pb2.QueryDenomMetadataResponse(metadata=bank_pb2.Metadata.FromString(raw))


QUERIES = {
    "/cosmos.bank.v1beta1.Query/Balance": (query_pb2.QueryBalanceRequest, query_balance),
    "/cosmos.bank.v1beta1.Query/AllBalances": (query_pb2.QueryAllBalancesRequest, query_all_balances),
    "/cosmos.bank.v1beta1.Query/TotalSupply": (query_pb2.QueryTotalSupplyRequest, query_total_supply),
    "/cosmos.bank.v1beta1.Query/SupplyOf": (query_pb2.QuerySupplyOfRequest, query_supply_of),
    "/cosmos.bank.v1beta1.Query/Params": (query_pb2.QueryParamsRequest, query_params),
    "/cosmos.bank.v1beta1.Query/DenomMetadata": (query_pb2.QueryDenomMetadataRequest, query_denom_metadata),
}
