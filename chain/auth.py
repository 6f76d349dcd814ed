"""Accounts: address -> BaseAccount{pub_key, account_number, sequence}; the sequence is replay protection."""

import json

from chain import crypto
from chain.errors import GenesisError, InvalidAddressError, NotFoundError
from chain.proto.cosmos.auth.v1beta1 import auth_pb2, query_pb2
from chain.state import (
    GasParams, decode_key as decode_key_of, encode_key, get_message, get_messages, process_next_number, public,
    set_message,
)
from chain.tx import SECP256K1_PUBKEY_URL, TxParams, pack_any
from chain.proto.cosmos.crypto.secp256k1 import keys_pb2

STORE = "auth"
BASE_ACCOUNT_URL = "/cosmos.auth.v1beta1.BaseAccount"

ACCOUNT = 0x01
NEXT_ACCOUNT_NUMBER = 0x02
PARAMS = 0x03
CHAIN_ID = 0x04


KEYS = {ACCOUNT: (bytes,), NEXT_ACCOUNT_NUMBER: (), PARAMS: (), CHAIN_ID: ()}


def state_key(kind: int, *parts) -> bytes:
    return encode_key(kind, *parts)


def decode_key(key: bytes) -> tuple:
    return decode_key_of(key, KEYS)


@public(STORE)
def get_account(state, address: bytes) -> auth_pb2.BaseAccount | None:
    return get_message(state, auth_pb2.BaseAccount, state_key(ACCOUNT, address))


@public(STORE)
def set_account(state, account: auth_pb2.BaseAccount) -> None:
    set_message(state, state_key(ACCOUNT, crypto.decode_address(account.address)), account)


def get_public_key(account: auth_pb2.BaseAccount) -> bytes | None:
    if not account.HasField("pub_key"):
        return None
    key = keys_pb2.PubKey()
    key.ParseFromString(account.pub_key.value)
    return key.key


def set_public_key(account: auth_pb2.BaseAccount, public_key: bytes) -> None:
    account.pub_key.CopyFrom(pack_any(keys_pb2.PubKey(key=public_key), SECP256K1_PUBKEY_URL))


def process_new_account(state, address: bytes) -> auth_pb2.BaseAccount:
    number = process_next_number(state, state_key(NEXT_ACCOUNT_NUMBER), first=0)
    account = auth_pb2.BaseAccount(address=crypto.encode_address(address), account_number=number)
    set_account(state, account)
    return account


@public(STORE)
def process_ensure_account(state, address: bytes) -> auth_pb2.BaseAccount:
    return get_account(state, address) or process_new_account(state, address)


@public(STORE)
def get_chain_id(state) -> str:
    raw = state.get(state_key(CHAIN_ID))
    return raw.decode() if raw else ""


@public(STORE)
def get_params(state) -> tuple[TxParams, GasParams]:
    raw = state.get(state_key(PARAMS))
    if raw is None:
        return TxParams(), GasParams()
    stored = json.loads(raw)
    return TxParams(**stored["tx"]), GasParams(**stored["gas"])


# --- genesis ---------------------------------------------------------------------------------

def compute_default_genesis() -> dict:
    return {"params": compute_params_genesis(TxParams(), GasParams()), "accounts": []}


def compute_params_genesis(tx: TxParams, gas: GasParams) -> dict:
    fields = {name: str(value) for name, value in vars(tx).items() if not name.startswith("min_gas_price")}
    fields["min_gas_price"] = compute_decimal_text(tx.min_gas_price_numerator, tx.min_gas_price_denominator)
    fields["gas"] = {name: str(value) for name, value in vars(gas).items()}
    return fields


def compute_params(section: dict) -> tuple[TxParams, GasParams]:
    """Genesis params (decimal strings; min_gas_price a decimal such as "0.025") -> parameters."""
    params = dict(section)
    numerator, denominator = compute_decimal_fraction(params.pop("min_gas_price", "0.025"))
    gas_fields = params.pop("gas", {})
    try:
        tx_values = {name: int(str(value)) for name, value in params.items()}
        gas_values = {name: int(str(value)) for name, value in gas_fields.items()}
        tx = TxParams(min_gas_price_numerator=numerator, min_gas_price_denominator=denominator, **tx_values)
        gas = GasParams(**gas_values)
    except (TypeError, ValueError, AttributeError) as error:
        raise GenesisError(f"auth params: {error}") from None
    if min([*tx_values.values(), *gas_values.values()], default=0) < 0:
        raise GenesisError("auth params must be non-negative")
    return tx, gas


def compute_decimal_fraction(text: str) -> tuple[int, int]:
    whole, _, fraction = str(text).partition(".")
    if not (whole.isdigit() and (fraction == "" or fraction.isdigit())) or len(fraction) > 18:
        raise GenesisError(f"invalid decimal {text!r}")
    return int(whole + fraction), 10 ** len(fraction)


def init_chain(state, section: dict, ctx) -> None:
    if not isinstance(section, dict):
        raise GenesisError("auth genesis must be an object")
    tx, gas = compute_params(section.get("params", {}))
    state.set(state_key(CHAIN_ID), ctx.chain_id.encode())
    state.set(state_key(PARAMS), json.dumps({"tx": vars(tx), "gas": vars(gas)}, sort_keys=True).encode())
    for entry in section.get("accounts", []):
        try:
            address = crypto.decode_address(entry["address"])
        except (crypto.InvalidAddress, KeyError, TypeError) as error:
            raise GenesisError(f"auth accounts: {error}") from None
        if get_account(state, address) is not None:
            raise GenesisError(f"auth accounts: duplicate account {entry['address']}")
        process_new_account(state, address)


@public(STORE)
def export_genesis(state) -> dict:
    return {
        "params": compute_params_genesis(*get_params(state)),
        "accounts": [
            {"address": account.address, "account_number": str(account.account_number), "sequence": str(account.sequence)}
            for account in get_messages(state, auth_pb2.BaseAccount, state_key(ACCOUNT))
        ],
    }


def compute_decimal_text(numerator: int, denominator: int) -> str:
    digits = len(str(denominator)) - 1
    if digits == 0:
        return str(numerator)
    text = str(numerator).rjust(digits + 1, "0")
    return f"{text[:-digits]}.{text[-digits:]}"


# --- queries (gRPC over ABCI) -----------------------------------------------------------------

def query_account(state, request: query_pb2.QueryAccountRequest) -> query_pb2.QueryAccountResponse:
    try:
        address = crypto.decode_address(request.address)
    except crypto.InvalidAddress as error:
        raise InvalidAddressError(str(error)) from None
    account = get_account(state, address)
    if account is None:
        raise NotFoundError(f"rpc error: code = NotFound desc = account {request.address} not found: key not found")
    return query_pb2.QueryAccountResponse(account=pack_any(account, BASE_ACCOUNT_URL))


def query_params(state, request: query_pb2.QueryParamsRequest) -> query_pb2.QueryParamsResponse:
    params, _ = get_params(state)
    return query_pb2.QueryParamsResponse(
        params=auth_pb2.Params(
            max_memo_characters=params.max_memo_characters,
            tx_sig_limit=1,
            tx_size_cost_per_byte=params.tx_size_cost_per_byte,
            sig_verify_cost_secp256k1=params.sig_verify_cost_secp256k1,
            min_gas_price=compute_decimal_text(params.min_gas_price_numerator, params.min_gas_price_denominator),
        )
    )


QUERIES = {
    "/cosmos.auth.v1beta1.Query/Account": (query_pb2.QueryAccountRequest, query_account),
    "/cosmos.auth.v1beta1.Query/Params": (query_pb2.QueryParamsRequest, query_params),
}
