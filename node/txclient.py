"""Sending transactions: the signer's account, the fee at the chain's own minimum gas price, a check of
the signer's funds, signing (SIGN_MODE_DIRECT), broadcast (CheckTx) and waiting for the block that
includes the tx.

`maxwell tx send`, the `maxwell tx market|process` and `maxwell infer request` commands, and the
worker all send through here.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from chain import crypto
from chain.coins import DENOM
from chain.errors import InvalidSequenceError
from chain.proto.cosmos.auth.v1beta1 import query_pb2 as auth_query_pb2
from chain.proto.cosmos.bank.v1beta1 import query_pb2 as bank_query_pb2
from chain.proto.cosmos.tx.v1beta1 import service_pb2
from chain.tx import MAX_GAS_LIMIT, TxParams, compute_required_fee, sign_tx
from node import client
from node.client_config import DEFAULT_GAS

TX_TIMEOUT_SECONDS = 60.0


class TxClientError(client.ClientError):
    pass


class AccountNotFound(TxClientError):
    pass


class InvalidGasPrice(TxClientError):
    """The chain's auth params answer no usable min_gas_price."""


class UnknownDenom(TxClientError):
    """A tx would move a denom the chain has no supply of (a typo such as ujoul)."""


class InsufficientFunds(TxClientError):
    """The signer's balance does not cover what a tx moves plus its fee."""


class TxInterrupted(TxClientError):
    """Interrupted (Ctrl-C) after the node accepted the tx: it may still land in a block."""


class TxRejected(TxClientError):
    """The chain refused a transaction, in CheckTx or in its block; the message is the chain's reason."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


@dataclass
class Signer:
    """One key signing sequential transactions; the sequence is re-read when the chain disagrees."""

    rpc: client.Client
    private_key: bytes
    address: str
    chain_id: str
    fee_params: TxParams
    account_number: int = 0
    sequence: int = 0


def get_fee_params(rpc: client.Client) -> TxParams:
    """TxParams at the chain's minimum gas price (auth Params' min_gas_price, a decimal such as "0.025")."""
    params = rpc.query(auth_query_pb2.QueryParamsRequest(), auth_query_pb2.QueryParamsResponse).params
    try:
        price = Fraction(params.min_gas_price)
    except (ValueError, ZeroDivisionError):
        raise InvalidGasPrice(f"the chain's min_gas_price {params.min_gas_price!r} is not a decimal") from None
    if price < 0:
        raise InvalidGasPrice(f"the chain's min_gas_price {params.min_gas_price!r} is negative")
    return TxParams(min_gas_price_numerator=price.numerator, min_gas_price_denominator=price.denominator)


def load_signer(rpc: client.Client, private_key: bytes) -> Signer:
    """The signer of `private_key` on the node's chain, at its account's current sequence."""
    address = crypto.encode_address(crypto.compute_address(crypto.compute_public_key(private_key)))
    signer = Signer(rpc, private_key, address, rpc.status().chain_id, get_fee_params(rpc))
    process_account_refresh(signer)
    return signer


def process_account_refresh(signer: Signer) -> None:
    account = signer.rpc.get_account(signer.address)
    if account is None:
        raise AccountNotFound(f"account {signer.address} not found on chain {signer.chain_id}: "
                              "it has never received tokens")
    signer.account_number, signer.sequence = account.account_number, account.sequence


def compute_fee(signer: Signer, gas: int, fee: int | None) -> int:
    """The fee given, or the chain's minimum for `gas`."""
    return compute_required_fee(gas, signer.fee_params) if fee is None else fee


def compute_signed_tx(signer: Signer, messages: list, gas: int, fee: int | None = None, memo: str = "") -> bytes:
    """The tx at the signer's sequence; without a fee, it pays the chain's minimum for `gas`."""
    return sign_tx(signer.private_key, messages, chain_id=signer.chain_id, account_number=signer.account_number,
                   sequence=signer.sequence, fee=compute_fee(signer, gas, fee), gas_limit=gas, memo=memo)


def estimate_gas(signer: Signer, messages: list, memo: str, adjustment: float) -> int:
    """The gas the chain's Simulate says the messages use, times `adjustment` (rounded up), within the limit."""
    tx = compute_signed_tx(signer, messages, MAX_GAS_LIMIT, fee=0, memo=memo)  # Simulate charges no fee
    response = signer.rpc.abci_query(client.compute_method_path(service_pb2.SimulateRequest), service_pb2.SimulateRequest(tx_bytes=tx).SerializeToString())
    if response.code:
        raise TxRejected(f"simulation failed: code {response.code} ({response.codespace}): {response.log}",
                         response.code)
    used = service_pb2.SimulateResponse.FromString(response.value).gas_info.gas_used
    return min(math.ceil(used * adjustment), MAX_GAS_LIMIT)


def get_balances(rpc: client.Client, address: str) -> dict[str, int]:
    request = bank_query_pb2.QueryAllBalancesRequest(address=address)
    reply = rpc.query(request, bank_query_pb2.QueryAllBalancesResponse)
    return {coin.denom: int(coin.amount) for coin in reply.balances}


def get_denoms(rpc: client.Client) -> set[str]:
    """The denoms the chain has a supply of."""
    reply = rpc.query(bank_query_pb2.QueryTotalSupplyRequest(), bank_query_pb2.QueryTotalSupplyResponse)
    return {coin.denom for coin in reply.supply}


def compute_cost_text(denom: str, amount: int, fee: int) -> str:
    if not amount:
        return f"the fee of {fee}{DENOM}"
    if denom == DENOM and fee:
        return f"{amount}{denom} asked plus a fee of {fee}{DENOM}"
    return f"{amount}{denom} asked"


def check_funds(signer: Signer, spend: dict[str, int], fee: int) -> None:
    """Before signing: every denom of `spend` (what the tx moves out of the account) exists on the chain,
    and the signer's balances cover it plus the fee."""
    balances = get_balances(signer.rpc, signer.address)
    if set(spend) - set(balances):
        denoms = get_denoms(signer.rpc)
        unknown = sorted(set(spend) - denoms)
        if unknown:
            raise UnknownDenom(f"unknown denom {unknown[0]}: the chain's denoms are {', '.join(sorted(denoms))}")
    for denom, amount in sorted({DENOM: 0, **spend}.items()):
        balance = balances.get(denom, 0)
        if balance < amount + (fee if denom == DENOM else 0):
            raise InsufficientFunds(f"insufficient funds: balance {balance}{denom} is smaller than "
                                    f"{compute_cost_text(denom, amount, fee)}")


def compute_check_tx_error(checked: client.BroadcastResult) -> TxRejected:
    return TxRejected(f"tx rejected: code {checked.code} ({checked.codespace}): {checked.log}", checked.code)


def compute_block_error(result: client.TxResult) -> TxRejected:
    return TxRejected(f"tx {result.hash.hex().upper()} failed in block {result.height}: code {result.code} "
                      f"({result.codespace}): {result.log}", result.code)


def process_broadcast(signer: Signer, tx: bytes) -> client.BroadcastResult:
    """CheckTx the signed bytes; a pass consumes the signer's sequence."""
    checked = signer.rpc.broadcast_tx_sync(tx)
    if checked.code:
        raise compute_check_tx_error(checked)
    signer.sequence += 1
    return checked


def wait_for_inclusion(rpc: client.Client, tx_hash: bytes) -> client.TxResult:
    """The result of the tx once a block includes it (polling /tx); TxRejected if it failed there."""
    result = rpc.wait_for_tx(tx_hash, TX_TIMEOUT_SECONDS)
    if result.code:
        raise compute_block_error(result)
    return result


def execute_messages(signer: Signer, messages: list, gas: int = DEFAULT_GAS, fee: int | None = None,
                     memo: str = "", wait: bool = True, on_signed: Callable[[bytes], None] | None = None,
                     on_accepted: Callable[[bytes], None] | None = None) -> tuple[bytes, client.TxResult | None]:
    """Sign, broadcast and (with `wait`) wait for inclusion; one retry, re-signed, after a sequence mismatch.

    `on_signed(tx)` sees each signed tx before it is broadcast (the worker records it first), `on_accepted(hash)`
    the hash as soon as CheckTx passed. Ctrl-C from then on raises TxInterrupted naming the hash.
    """
    for attempt in range(2):
        tx = compute_signed_tx(signer, messages, gas, fee, memo)
        if on_signed is not None:
            on_signed(tx)
        try:
            checked = process_broadcast(signer, tx)
            break
        except TxRejected as error:
            if error.code != InvalidSequenceError.code or attempt:
                raise
            process_account_refresh(signer)
    return process_accepted(signer.rpc, checked, wait, on_accepted)


def process_accepted(rpc: client.Client, checked: client.BroadcastResult, wait: bool,
                     on_accepted: Callable[[bytes], None] | None) -> tuple[bytes, client.TxResult | None]:
    try:
        if on_accepted is not None:
            on_accepted(checked.hash)
        return checked.hash, wait_for_inclusion(rpc, checked.hash) if wait else None
    except KeyboardInterrupt:
        tx_hash = checked.hash.hex().upper()
        raise TxInterrupted(f"interrupted: tx {tx_hash} was accepted by the node and may still land; "
                            f"look it up with `maxwell query tx {tx_hash}`") from None


def execute_broadcast(rpc: client.Client, tx: bytes, wait: bool = True,
                      on_accepted: Callable[[bytes], None] | None = None) -> tuple[bytes, client.TxResult | None]:
    """Broadcast a tx signed elsewhere (`maxwell tx broadcast`), then as execute_messages."""
    checked = rpc.broadcast_tx_sync(tx)
    if checked.code:
        raise compute_check_tx_error(checked)
    return process_accepted(rpc, checked, wait, on_accepted)
