"""Cosmos SDK transactions: TxRaw, SignDoc (SIGN_MODE_DIRECT), single secp256k1 signer.

`decode_tx` is the stateless part of checking a transaction (structure, sizes, message decoding and
basic validation); it needs no state, so its result is cached by tx hash. Verifying the signature
needs the signer's account number from state and happens in the ante handler (auth).
`sign_tx` is the client side, used by the CLI, tests and benchmarks.
"""

import hashlib
from dataclasses import dataclass
from typing import NamedTuple

from google.protobuf.any_pb2 import Any
from google.protobuf.message import DecodeError

from chain import crypto
from chain.coins import DENOM, parse_coins
from chain.errors import (
    InsufficientFeeError,
    InvalidAddressError,
    InvalidPubKeyError,
    InvalidRequestError,
    MemoTooLargeError,
    NoSignaturesError,
    TooManySignaturesError,
    TxDecodeError,
    TxTooLargeError,
    UnknownRequestError,
)
from chain.proto.cosmos.crypto.secp256k1 import keys_pb2
from chain.proto.cosmos.tx.signing.v1beta1 import signing_pb2
from chain.proto.cosmos.tx.v1beta1 import tx_pb2

SECP256K1_PUBKEY_URL = "/cosmos.crypto.secp256k1.PubKey"
MAX_GAS_LIMIT = 2**63 - 1


@dataclass(frozen=True)
class TxParams:
    max_tx_bytes: int = 65536
    max_memo_characters: int = 256
    max_messages: int = 64
    tx_size_cost_per_byte: int = 10
    sig_verify_cost_secp256k1: int = 1000
    min_gas_price_numerator: int = 25
    min_gas_price_denominator: int = 1000


class DecodedTx(NamedTuple):
    """Immutable like a frozen dataclass, and made in a third of the time (every unseen tx makes one)."""

    hash: bytes
    size: int
    body_bytes: bytes
    auth_info_bytes: bytes
    messages: tuple
    type_urls: tuple
    memo: str
    timeout_height: int
    fee: int
    gas_limit: int
    signer: bytes
    public_key: bytes | None
    sequence: int
    signature: bytes

    def sign_bytes(self, chain_id: str, account_number: int) -> bytes:
        return compute_sign_bytes(self.body_bytes, self.auth_info_bytes, chain_id, account_number)


def parse_address(text: str) -> bytes:
    """A message's bech32 address field -> 20 bytes, or the SDK's invalid-address error."""
    try:
        return crypto.decode_address(text)
    except crypto.InvalidAddress as error:
        raise InvalidAddressError(f"invalid address: {error}") from None


def compute_tx_hash(tx: bytes) -> bytes:
    return hashlib.sha256(tx).digest()


def compute_sign_bytes(body_bytes: bytes, auth_info_bytes: bytes, chain_id: str, account_number: int) -> bytes:
    return tx_pb2.SignDoc(
        body_bytes=body_bytes, auth_info_bytes=auth_info_bytes, chain_id=chain_id, account_number=account_number
    ).SerializeToString()


def compute_gas_cost(gas: int, numerator: int, denominator: int) -> int:
    """`gas` at a price of numerator/denominator ujoule per gas, rounded up."""
    return -(-gas * numerator // denominator)


def compute_required_fee(gas_limit: int, params: TxParams) -> int:
    return compute_gas_cost(gas_limit, params.min_gas_price_numerator, params.min_gas_price_denominator)


def _parse(message_class, data: bytes, what: str):
    try:
        return message_class.FromString(data)
    except DecodeError as error:
        raise TxDecodeError(f"tx parse error: invalid {what}: {error}") from None


def decode_tx(tx: bytes, handlers: dict, params: TxParams, simulate: bool = False) -> DecodedTx:
    """Decode and validate without state. `handlers` maps a message type URL to its handler.

    In simulation (gas estimation, as cosmjs does it) the signature may be empty, the sign mode
    unspecified and the fee absent.
    """
    if len(tx) > params.max_tx_bytes:
        raise TxTooLargeError(f"tx too large: {len(tx)} bytes, max {params.max_tx_bytes}")
    raw = _parse(tx_pb2.TxRaw, tx, "TxRaw")
    body = _parse(tx_pb2.TxBody, raw.body_bytes, "TxBody")
    auth_info = _parse(tx_pb2.AuthInfo, raw.auth_info_bytes, "AuthInfo")
    if not body.messages:
        raise InvalidRequestError("invalid request: tx has no messages")
    if len(body.messages) > params.max_messages:
        raise InvalidRequestError(f"invalid request: tx has more than {params.max_messages} messages")
    if body.extension_options:
        raise UnknownRequestError("unknown extension options")
    if len(body.memo) > params.max_memo_characters:
        raise MemoTooLargeError(f"memo too large: {len(body.memo)} > {params.max_memo_characters} characters")

    messages, type_urls, signers = [], [], set()
    for any_message in body.messages:
        type_url = any_message.type_url
        handler = handlers.get(type_url)
        if handler is None:
            raise UnknownRequestError(f"unknown message type {type_url!r}")
        message = _parse(handler.proto, any_message.value, type_url)
        handler.check_stateless(message)
        messages.append(message)
        type_urls.append(type_url)
        signers.add(handler.signer(message))
    if len(signers) != 1:
        raise TooManySignaturesError("maxwell accepts transactions with exactly one signer")

    if len(raw.signatures) == 0 or len(auth_info.signer_infos) == 0:
        raise NoSignaturesError("no signatures supplied")
    if len(raw.signatures) != 1 or len(auth_info.signer_infos) != 1:
        raise TooManySignaturesError("wrong number of signatures: expected 1")
    signer_info = auth_info.signer_infos[0]
    if not simulate and (
        signer_info.mode_info.WhichOneof("sum") != "single" or signer_info.mode_info.single.mode != signing_pb2.SIGN_MODE_DIRECT
    ):
        raise InvalidRequestError("invalid request: only SIGN_MODE_DIRECT single signatures are accepted")
    public_key = None
    if signer_info.HasField("public_key"):
        if signer_info.public_key.type_url != SECP256K1_PUBKEY_URL:
            raise InvalidPubKeyError(f"invalid pubkey: unsupported key type {signer_info.public_key.type_url!r}")
        public_key = _parse(keys_pb2.PubKey, signer_info.public_key.value, "PubKey").key
        if len(public_key) != crypto.PUBKEY_LENGTH:
            raise InvalidPubKeyError("invalid pubkey: secp256k1 keys are 33 bytes compressed")

    fee_coins = parse_coins(auth_info.fee.amount)
    if set(fee_coins) - {DENOM}:
        raise InsufficientFeeError(f"insufficient fee: fees are paid in {DENOM}")
    fee = fee_coins.get(DENOM, 0)
    gas_limit = MAX_GAS_LIMIT if simulate else auth_info.fee.gas_limit
    if gas_limit == 0 or gas_limit > MAX_GAS_LIMIT:
        raise InvalidRequestError(f"invalid gas limit {gas_limit}")
    required = compute_required_fee(gas_limit, params)
    if not simulate and fee < required:
        raise InsufficientFeeError(f"insufficient fee; got: {fee}{DENOM} required: {required}{DENOM}")
    if auth_info.fee.payer or auth_info.fee.granter:
        raise InvalidRequestError("invalid request: fee payer and granter are not supported")

    return DecodedTx(
        hash=compute_tx_hash(tx),
        size=len(tx),
        body_bytes=raw.body_bytes,
        auth_info_bytes=raw.auth_info_bytes,
        messages=tuple(messages),
        type_urls=tuple(type_urls),
        memo=body.memo,
        timeout_height=body.timeout_height,
        fee=fee,
        gas_limit=gas_limit,
        signer=signers.pop(),
        public_key=public_key,
        sequence=signer_info.sequence,
        signature=raw.signatures[0],
    )


def compute_type_url(message_class) -> str:
    return "/" + message_class.DESCRIPTOR.full_name


def pack_any(message, type_url: str | None = None) -> Any:
    return Any(type_url=type_url or compute_type_url(message), value=message.SerializeToString())


def sign_tx(
    private_key: bytes,
    messages: list,
    *,
    chain_id: str,
    account_number: int,
    sequence: int,
    fee: int,
    gas_limit: int,
    memo: str = "",
    timeout_height: int = 0,
) -> bytes:
    """Build and sign a TxRaw with SIGN_MODE_DIRECT, as Keplr and cosmjs do."""
    return sign_body(private_key, compute_tx_body(messages, memo, timeout_height), compute_fee_message(fee, gas_limit),
                     chain_id=chain_id, account_number=account_number, sequence=sequence).SerializeToString()


def compute_tx_body(messages: list, memo: str = "", timeout_height: int = 0) -> tx_pb2.TxBody:
    return tx_pb2.TxBody(messages=[pack_any(m) for m in messages], memo=memo, timeout_height=timeout_height)


def compute_fee_message(fee: int, gas_limit: int) -> tx_pb2.Fee:
    return tx_pb2.Fee(amount=[{"denom": DENOM, "amount": str(fee)}] if fee else [], gas_limit=gas_limit)


def sign_body(private_key: bytes, body: tx_pb2.TxBody, fee: tx_pb2.Fee, *, chain_id: str, account_number: int,
              sequence: int) -> tx_pb2.TxRaw:
    """A tx body and fee signed by one key (SIGN_MODE_DIRECT): what `sign_tx` builds, and `tx sign` signs."""
    public_key = crypto.compute_public_key(private_key)
    auth_info = tx_pb2.AuthInfo(
        signer_infos=[
            tx_pb2.SignerInfo(
                public_key=pack_any(keys_pb2.PubKey(key=public_key), SECP256K1_PUBKEY_URL),
                mode_info=tx_pb2.ModeInfo(single=tx_pb2.ModeInfo.Single(mode=signing_pb2.SIGN_MODE_DIRECT)),
                sequence=sequence,
            )
        ],
        fee=fee,
    )
    body_bytes = body.SerializeToString()
    auth_info_bytes = auth_info.SerializeToString()
    signature = crypto.sign(private_key, compute_sign_bytes(body_bytes, auth_info_bytes, chain_id, account_number))
    return tx_pb2.TxRaw(body_bytes=body_bytes, auth_info_bytes=auth_info_bytes, signatures=[signature])
