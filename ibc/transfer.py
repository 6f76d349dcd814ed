"""ICS-20 fungible token transfer (ibc-go v8's `transfer` application, port `transfer`, version `ics20-1`).

A token leaves the chain it was minted on by escrow in the channel's escrow account, and comes back
by release from it; anywhere else it travels as a voucher `ibc/<SHA-256 of its trace>` that the
receiving chain mints and burns when it goes back. An error acknowledgement or a timeout refunds the
sender. Total escrow per denom is tracked apart from the escrow balances, as in ibc-go, so a send
into an escrow account cannot make it look funded.
"""

import base64
import hashlib
import json
import re

from chain import bank, crypto
from chain.coins import UINT256_MAX, parse_denom, parse_uint
from chain.errors import InvalidAddressError, InvalidCoinsError, TxError, UnauthorizedError
from chain.proto.cosmos.bank.v1beta1 import bank_pb2
from chain.proto.ibc.applications.transfer.v1 import query_pb2, transfer_pb2, tx_pb2
from chain.proto.ibc.applications.transfer.v2 import packet_pb2
from chain.proto.ibc.core.channel.v1 import channel_pb2
from chain.state import (
    MessageHandler, decode_key as decode_key_of, encode_key, get_message, get_number, get_page, public, set_message,
    set_number,
)
from chain.tx import compute_type_url, parse_address
from ibc import channel as channels, host
from ibc.errors import InvalidIbcAddressError, InvalidIbcRequestError, InvalidTypeError, UnknownIbcRequestError

STORE = CODESPACE = "transfer"
PORT_ID = "transfer"
VERSION = "ics20-1"
DENOM_PREFIX = "ibc"
MODULE_ACCOUNT = bank.compute_module_address("transfer")
MAX_RECEIVER_LENGTH = 2048
MAX_MEMO_LENGTH = 32768
MAX_CHANNEL_SEQUENCE = 2**32 - 1
SUCCESS_ACK = b'{"result":"AQ=="}'

DENOM_TRACE = 0x01
TOTAL_ESCROW = 0x02
KEYS = {DENOM_TRACE: (bytes,), TOTAL_ESCROW: (str,)}
HASH_PATTERN = re.compile(r"[0-9A-Fa-f]{64}")


class TransferError(TxError):
    codespace = CODESPACE


class InvalidDenomError(TransferError):
    code = 3


class InvalidVersionError(TransferError):
    code = 4


class InvalidAmountError(TransferError):
    code = 5


class TraceNotFoundError(TransferError):
    code = 6


class InvalidMemoError(TransferError):
    code = 11


def state_key(kind: int, *parts) -> bytes:
    return encode_key(kind, *parts)


def decode_key(key: bytes) -> tuple:
    return decode_key_of(key, KEYS)


# --- denominations ---------------------------------------------------------------------------------

def compute_denom_prefix(port_id: str, channel_id: str) -> str:
    return f"{port_id}/{channel_id}/"


def is_valid_channel_id(text: str) -> bool:
    try:
        host.parse_channel_identifier(text)
    except host.InvalidIdentifierError:
        return False
    return True


def parse_denom_trace(full_denom: str) -> transfer_pb2.DenomTrace:
    """ibc-go ParseDenomTrace: leading port/channel pairs (a channel as ibc-go names them) are the path."""
    parts = full_denom.split("/")
    if parts[0] == full_denom:
        return transfer_pb2.DenomTrace(base_denom=full_denom)
    path = []
    base = None
    for i in range(0, len(parts) - 1, 2):
        if len(parts) > 2 and is_valid_channel_id(parts[i + 1]):
            path += [parts[i], parts[i + 1]]
        else:
            base = parts[i:]
            break
    return transfer_pb2.DenomTrace(path="/".join(path), base_denom="/".join(base or [parts[-1]]))


def compute_full_path(trace: transfer_pb2.DenomTrace) -> str:
    return f"{trace.path}/{trace.base_denom}" if trace.path else trace.base_denom


def compute_trace_hash(trace: transfer_pb2.DenomTrace) -> bytes:
    return hashlib.sha256(compute_full_path(trace).encode()).digest()


def compute_ibc_denom(trace: transfer_pb2.DenomTrace) -> str:
    """The denom of a token on this chain: its base denom if native, else its voucher's."""
    if not trace.path:
        return trace.base_denom
    return f"{DENOM_PREFIX}/{compute_trace_hash(trace).hex().upper()}"


def validate_prefixed_denom(denom: str) -> None:
    parts = denom.split("/")
    if parts[0] == denom and denom.strip():
        return
    if not parts[-1].strip():
        raise InvalidDenomError("base denomination cannot be blank")
    trace = parse_denom_trace(denom)
    identifiers = trace.path.split("/") if trace.path else []
    for i in range(0, len(identifiers), 2):
        host.validate_port_identifier(identifiers[i])
        host.validate_channel_identifier(identifiers[i + 1])


def validate_ibc_denom(denom: str) -> None:
    parts = denom.split("/", 1)
    if denom == DENOM_PREFIX:
        raise InvalidDenomError(f"denomination should be prefixed with the format 'ibc/{{hash(trace + \"/\" + "
                                f"{denom})}}'")
    if len(parts) == 2 and parts[0] == DENOM_PREFIX and not HASH_PATTERN.fullmatch(parts[1]):
        raise InvalidDenomError(f"invalid denom trace hash {parts[1]!r}")


def is_sender_chain_source(port_id: str, channel_id: str, full_denom: str) -> bool:
    return not full_denom.startswith(compute_denom_prefix(port_id, channel_id))


def compute_escrow_address(port_id: str, channel_id: str) -> bytes:
    """ADR-028-style: sha256(version || 0x00 || port/channel), first 20 bytes."""
    return hashlib.sha256(VERSION.encode() + b"\x00" + f"{port_id}/{channel_id}".encode()).digest()[:20]


# --- packet data, acknowledgements --------------------------------------------------------------------

def encode_packet_data(data: packet_pb2.FungibleTokenPacketData) -> bytes:
    """ibc-go GetBytes: jsonpb with field names, no empty fields, keys sorted."""
    return channels.encode_go_json({field.name: value for field, value in data.ListFields()})


def decode_packet_data(raw: bytes) -> packet_pb2.FungibleTokenPacketData:
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidTypeError("cannot unmarshal ICS-20 transfer packet data") from None
    fields = packet_pb2.FungibleTokenPacketData.DESCRIPTOR.fields_by_name
    if not isinstance(document, dict) or set(document) - set(fields) or \
            not all(isinstance(value, str) for value in document.values()):
        raise InvalidTypeError("cannot unmarshal ICS-20 transfer packet data")
    return packet_pb2.FungibleTokenPacketData(**document)


def parse_packet_amount(text: str) -> int:
    """An SDK Int: decimal, optionally signed, within 256 bits."""
    if not re.fullmatch(r"[+-]?[0-9]+", text) or abs(int(text)) > UINT256_MAX:
        raise InvalidAmountError(f"unable to parse transfer amount ({text}) into math.Int")
    return int(text)


def check_packet_data(data: packet_pb2.FungibleTokenPacketData) -> int:
    amount = parse_packet_amount(data.amount)
    if amount <= 0:
        raise InvalidAmountError(f"amount must be strictly positive: got {amount}")
    if not data.sender.strip():
        raise InvalidIbcAddressError("sender address cannot be blank")
    if not data.receiver.strip():
        raise InvalidIbcAddressError("receiver address cannot be blank")
    if len(data.memo) > MAX_MEMO_LENGTH:
        raise InvalidMemoError(f"memo must not exceed {MAX_MEMO_LENGTH} bytes")
    validate_prefixed_denom(data.denom)
    return amount


def decode_ack(raw: bytes) -> tuple[bool, str]:
    """(success, the result's bytes as text or the error)."""
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        document = None
    if isinstance(document, dict) and len(document) == 1 and isinstance(document.get("error"), str):
        return False, document["error"]
    if isinstance(document, dict) and len(document) == 1 and isinstance(document.get("result"), str):
        try:
            return True, base64.b64decode(document["result"], validate=True).decode(errors="replace")
        except ValueError:
            pass
    raise UnknownIbcRequestError("cannot unmarshal ICS-20 transfer packet acknowledgement")


# --- store ---------------------------------------------------------------------------------------

def get_params() -> transfer_pb2.Params:
    return transfer_pb2.Params(send_enabled=True, receive_enabled=True)


@public(STORE)
def get_denom_trace(state, trace_hash: bytes) -> transfer_pb2.DenomTrace | None:
    return get_message(state, transfer_pb2.DenomTrace, state_key(DENOM_TRACE, trace_hash))


@public(STORE)
def get_total_escrow(state, denom: str) -> int:
    return get_number(state, state_key(TOTAL_ESCROW, denom))


def set_total_escrow(state, denom: str, amount: int) -> None:
    key = state_key(TOTAL_ESCROW, denom)
    if amount:
        set_number(state, key, amount)
    else:
        state.delete(key)


def process_escrow(state, ctx, sender: bytes, escrow: bytes, denom: str, amount: int) -> None:
    bank.process_transfer(state, ctx, sender, escrow, {denom: amount})
    set_total_escrow(state, denom, get_total_escrow(state, denom) + amount)


def process_unescrow(state, ctx, escrow: bytes, receiver: bytes, denom: str, amount: int) -> None:
    bank.process_transfer(state, ctx, escrow, receiver, {denom: amount})
    set_total_escrow(state, denom, get_total_escrow(state, denom) - amount)


def process_mint_voucher(state, ctx, receiver: bytes, trace: transfer_pb2.DenomTrace, amount: int) -> None:
    denom = compute_ibc_denom(trace)
    if receiver in bank.BLOCKED_ADDRESSES:
        raise UnauthorizedError(f"{crypto.encode_address(receiver)} is not allowed to receive funds")
    bank.process_mint(state, ctx, MODULE_ACCOUNT, denom, amount)
    bank.process_transfer(state, ctx, MODULE_ACCOUNT, receiver, {denom: amount})


def process_new_trace(state, ctx, trace: transfer_pb2.DenomTrace) -> None:
    """Records a voucher's trace and its bank metadata the first time it arrives."""
    trace_hash = compute_trace_hash(trace)
    denom = compute_ibc_denom(trace)
    if get_denom_trace(state, trace_hash) is None:
        set_message(state, state_key(DENOM_TRACE, trace_hash), trace)
        ctx.emit("denomination_trace", ("trace_hash", trace_hash.hex().upper()), ("denom", denom))
    if not bank.has_denom_metadata(state, denom):
        full_path = compute_full_path(trace)
        bank.set_denom_metadata(state, bank_pb2.Metadata(
            description=f"IBC token from {full_path}", denom_units=[{"denom": trace.base_denom, "exponent": 0}],
            base=denom, display=full_path, name=f"{full_path} IBC token", symbol=trace.base_denom.upper()))


# --- MsgTransfer -----------------------------------------------------------------------------------

def signer_transfer(msg: tx_pb2.MsgTransfer) -> bytes:
    return parse_address(msg.sender)


def check_stateless_transfer(msg: tx_pb2.MsgTransfer) -> None:
    host.validate_port_identifier(msg.source_port)
    host.validate_channel_identifier(msg.source_channel)
    parse_denom(msg.token.denom)
    if parse_uint(msg.token.amount, "token amount") == 0:
        raise InvalidCoinsError(f"{msg.token.amount}{msg.token.denom}: token amount must be positive")
    if not msg.receiver.strip():
        raise InvalidAddressError("missing recipient address")
    if len(msg.receiver) > MAX_RECEIVER_LENGTH:
        raise InvalidAddressError(f"recipient address must not exceed {MAX_RECEIVER_LENGTH} bytes")
    if len(msg.memo) > MAX_MEMO_LENGTH:
        raise InvalidMemoError(f"memo must not exceed {MAX_MEMO_LENGTH} bytes")
    validate_ibc_denom(msg.token.denom)


def get_full_denom(state, denom: str) -> str:
    """The trace path a token of this chain's `denom` travels under."""
    if not denom.startswith(DENOM_PREFIX + "/"):
        return denom
    trace = get_denom_trace(state, bytes.fromhex(denom.split("/", 1)[1]))
    if trace is None:
        raise TraceNotFoundError(f"denomination trace not found: {denom}")
    return compute_full_path(trace)


def check_and_execute_transfer(state, ctx, msg: tx_pb2.MsgTransfer) -> tx_pb2.MsgTransferResponse:
    sender = parse_address(msg.sender)
    if sender in bank.BLOCKED_ADDRESSES:
        raise UnauthorizedError(f"{msg.sender} is not allowed to send funds")
    if channels.get_channel(state, msg.source_port, msg.source_channel) is None:
        raise channels.ChannelNotFoundError(f"port ID ({msg.source_port}) channel ID ({msg.source_channel}): "
                                            "channel not found")
    amount, denom = int(msg.token.amount), msg.token.denom
    full_denom = get_full_denom(state, denom)
    if is_sender_chain_source(msg.source_port, msg.source_channel, full_denom):
        process_escrow(state, ctx, sender, compute_escrow_address(msg.source_port, msg.source_channel), denom, amount)
    else:
        bank.process_transfer(state, ctx, sender, MODULE_ACCOUNT, {denom: amount})
        bank.process_burn(state, ctx, MODULE_ACCOUNT, amount, denom)
    data = packet_pb2.FungibleTokenPacketData(denom=full_denom, amount=str(amount), sender=msg.sender,
                                              receiver=msg.receiver, memo=msg.memo)
    sequence = channels.process_send_packet(state, ctx, msg.source_port, msg.source_channel, msg.timeout_height,
                                            msg.timeout_timestamp, encode_packet_data(data))
    ctx.emit("ibc_transfer", ("sender", msg.sender), ("receiver", msg.receiver), ("amount", str(amount)),
             ("denom", full_denom), ("memo", msg.memo))
    ctx.emit("message", ("module", STORE))
    return tx_pb2.MsgTransferResponse(sequence=sequence)


MESSAGES = {
    compute_type_url(tx_pb2.MsgTransfer): MessageHandler(
        tx_pb2.MsgTransfer, signer_transfer, check_stateless_transfer, check_and_execute_transfer),
}


# --- the channel callbacks (ibc-go's IBCModule) ----------------------------------------------------------

def check_channel_params(ordering: int, port_id: str, channel_id: str) -> None:
    if ordering != channels.UNORDERED:
        raise channels.InvalidChannelOrderingError(
            f"expected {channel_pb2.Order.Name(channels.UNORDERED)} channel, got {channel_pb2.Order.Name(ordering)}")
    if port_id != PORT_ID:
        raise TransferError(f"invalid port: {port_id}, expected {PORT_ID}")
    if host.parse_channel_identifier(channel_id) > MAX_CHANNEL_SEQUENCE:
        raise TransferError(f"channel sequence {channel_id} is greater than max allowed transfer channels")


@public(STORE)
def on_chan_open_init(state, ctx, ordering: int, connection_hops, port_id: str, channel_id: str, counterparty, version: str) -> str:
    check_channel_params(ordering, port_id, channel_id)
    if version and version != VERSION:
        raise InvalidVersionError(f"expected {VERSION}, got {version}")
    return VERSION


@public(STORE)
def on_chan_open_try(state, ctx, ordering: int, connection_hops, port_id: str, channel_id: str, counterparty,
                     counterparty_version: str) -> str:
    check_channel_params(ordering, port_id, channel_id)
    if counterparty_version != VERSION:
        raise InvalidVersionError(f"invalid counterparty version: expected {VERSION}, got {counterparty_version}")
    return VERSION


@public(STORE)
def on_chan_open_ack(state, ctx, port_id: str, channel_id: str, counterparty_channel_id: str,
                     counterparty_version: str) -> None:
    if counterparty_version != VERSION:
        raise InvalidVersionError(f"invalid counterparty version: expected {VERSION}, got {counterparty_version}")


@public(STORE)
def on_chan_open_confirm(state, ctx, port_id: str, channel_id: str) -> None:
    pass


@public(STORE)
def on_chan_close_init(state, ctx, port_id: str, channel_id: str) -> None:
    raise InvalidIbcRequestError("user cannot close channel")


@public(STORE)
def on_chan_close_confirm(state, ctx, port_id: str, channel_id: str) -> None:
    pass


def process_receive(state, ctx, packet, data: packet_pb2.FungibleTokenPacketData) -> None:
    amount = check_packet_data(data)
    try:
        receiver = crypto.decode_address(data.receiver)
    except crypto.InvalidAddress as error:
        raise TxError(f"failed to decode receiver address: {data.receiver}: {error}") from None
    if receiver in bank.BLOCKED_ADDRESSES:
        raise UnauthorizedError(f"{data.receiver} is not allowed to receive funds")
    source_prefix = compute_denom_prefix(packet.source_port, packet.source_channel)
    if data.denom.startswith(source_prefix):  # a token of ours coming home
        trace = parse_denom_trace(data.denom[len(source_prefix):])
        escrow = compute_escrow_address(packet.destination_port, packet.destination_channel)
        process_unescrow(state, ctx, escrow, receiver, compute_ibc_denom(trace), amount)
        return
    trace = parse_denom_trace(compute_denom_prefix(packet.destination_port, packet.destination_channel) + data.denom)
    process_new_trace(state, ctx, trace)
    process_mint_voucher(state, ctx, receiver, trace, amount)


def emit_packet_event(ctx, data: packet_pb2.FungibleTokenPacketData, *extra: tuple[str, str]) -> None:
    ctx.emit("fungible_token_packet", ("module", STORE), ("sender", data.sender), ("receiver", data.receiver),
             ("denom", data.denom), ("amount", data.amount), ("memo", data.memo), *extra)


@public(STORE)
def on_recv_packet(state, ctx, packet, relayer: str) -> tuple[bytes, bool]:
    """The acknowledgement and whether it is a success; the caller keeps the writes only then."""
    data = packet_pb2.FungibleTokenPacketData()
    error = None
    try:
        data = decode_packet_data(packet.data)
        process_receive(state, ctx, packet, data)
    except TxError as failure:
        error = failure
    ack = SUCCESS_ACK if error is None else channels.compute_error_ack(error)
    extra = [("success", "true" if error is None else "false")]
    if error is not None:
        extra.append(("error", str(error)))
    emit_packet_event(ctx, data, *extra)
    return ack, error is None


def process_refund(state, ctx, packet, data: packet_pb2.FungibleTokenPacketData) -> None:
    trace = parse_denom_trace(data.denom)
    denom, amount = compute_ibc_denom(trace), parse_packet_amount(data.amount)
    sender = parse_address(data.sender)
    if is_sender_chain_source(packet.source_port, packet.source_channel, data.denom):
        process_unescrow(state, ctx, compute_escrow_address(packet.source_port, packet.source_channel), sender,
                         denom, amount)
    else:
        process_mint_voucher(state, ctx, sender, trace, amount)


@public(STORE)
def on_acknowledgement_packet(state, ctx, packet, acknowledgement: bytes, relayer: str) -> None:
    success, detail = decode_ack(acknowledgement)
    try:
        data = decode_packet_data(packet.data)
    except InvalidTypeError:
        raise UnknownIbcRequestError("cannot unmarshal ICS-20 transfer packet data") from None
    if not success:
        process_refund(state, ctx, packet, data)
    emit_packet_event(ctx, data, ("acknowledgement", acknowledgement.decode(errors="replace")),
                      ("success", detail) if success else ("error", detail))


@public(STORE)
def on_timeout_packet(state, ctx, packet, relayer: str) -> None:
    try:
        data = decode_packet_data(packet.data)
    except InvalidTypeError:
        raise UnknownIbcRequestError("cannot unmarshal ICS-20 transfer packet data") from None
    process_refund(state, ctx, packet, data)
    ctx.emit("timeout", ("module", STORE), ("refund_receiver", data.sender), ("refund_denom", data.denom),
             ("refund_amount", data.amount), ("memo", data.memo))


# --- genesis ---------------------------------------------------------------------------------------

def init_chain(state, section: dict, ctx) -> None:
    for entry in (section or {}).get("denom_traces", []):
        trace = transfer_pb2.DenomTrace(path=entry.get("path", ""), base_denom=entry["base_denom"])
        set_message(state, state_key(DENOM_TRACE, compute_trace_hash(trace)), trace)
    for entry in (section or {}).get("total_escrowed", []):
        set_total_escrow(state, entry["denom"], int(entry["amount"]))


@public(STORE)
def export_genesis(state) -> dict:
    traces = [transfer_pb2.DenomTrace.FromString(raw) for _, raw in state.iterate(
        state_key(DENOM_TRACE), state_key(DENOM_TRACE + 1))]
    escrows = [(decode_key(key)[0], int(raw)) for key, raw in state.iterate(
        state_key(TOTAL_ESCROW), state_key(TOTAL_ESCROW + 1))]
    return {"port_id": PORT_ID, "params": {"send_enabled": True, "receive_enabled": True},
            "denom_traces": [{"path": t.path, "base_denom": t.base_denom} for t in traces],
            "total_escrowed": [{"denom": denom, "amount": str(amount)} for denom, amount in escrows]}


# --- queries -------------------------------------------------------------------------------------

def parse_trace_hash(text: str) -> bytes:
    text = text.removeprefix(DENOM_PREFIX + "/")
    if not HASH_PATTERN.fullmatch(text):
        raise InvalidDenomError(f"invalid denom trace hash: {text}")
    return bytes.fromhex(text)


def query_denom_trace(state, request: query_pb2.QueryDenomTraceRequest) -> query_pb2.QueryDenomTraceResponse:
    trace = get_denom_trace(state, parse_trace_hash(request.hash))
    if trace is None:
        raise TraceNotFoundError(f"denomination trace not found: {request.hash}")
    return query_pb2.QueryDenomTraceResponse(denom_trace=trace)


def query_denom_traces(state, request: query_pb2.QueryDenomTracesRequest) -> query_pb2.QueryDenomTracesResponse:
    rows, next_key = get_page(state, state_key(DENOM_TRACE), request.pagination)
    return query_pb2.QueryDenomTracesResponse(denom_traces=[transfer_pb2.DenomTrace.FromString(raw) for _, raw in rows],
                                              pagination={"next_key": next_key})


def query_params(state, request: query_pb2.QueryParamsRequest) -> query_pb2.QueryParamsResponse:
    return query_pb2.QueryParamsResponse(params=get_params())


def query_denom_hash(state, request: query_pb2.QueryDenomHashRequest) -> query_pb2.QueryDenomHashResponse:
    validate_prefixed_denom(request.trace)
    trace = parse_denom_trace(request.trace)
    if get_denom_trace(state, compute_trace_hash(trace)) is None:
        raise TraceNotFoundError(f"denomination trace not found: {request.trace}")
    return query_pb2.QueryDenomHashResponse(hash=compute_trace_hash(trace).hex().upper())


def query_escrow_address(state, request: query_pb2.QueryEscrowAddressRequest) -> query_pb2.QueryEscrowAddressResponse:
    host.validate_port_identifier(request.port_id)
    host.validate_channel_identifier(request.channel_id)
    if channels.get_channel(state, request.port_id, request.channel_id) is None:
        raise channels.ChannelNotFoundError(f"port-id: {request.port_id}, channel-id: {request.channel_id}")
    address = compute_escrow_address(request.port_id, request.channel_id)
    return query_pb2.QueryEscrowAddressResponse(escrow_address=crypto.encode_address(address))


def query_total_escrow(state, request: query_pb2.QueryTotalEscrowForDenomRequest
                       ) -> query_pb2.QueryTotalEscrowForDenomResponse:
    denom = parse_denom(request.denom)
    return query_pb2.QueryTotalEscrowForDenomResponse(amount={"denom": denom,
                                                              "amount": str(get_total_escrow(state, denom))})


QUERY = "/ibc.applications.transfer.v1.Query/"
QUERIES = {
    QUERY + "DenomTrace": (query_pb2.QueryDenomTraceRequest, query_denom_trace),
    QUERY + "DenomTraces": (query_pb2.QueryDenomTracesRequest, query_denom_traces),
    QUERY + "Params": (query_pb2.QueryParamsRequest, query_params),
    QUERY + "DenomHash": (query_pb2.QueryDenomHashRequest, query_denom_hash),
    QUERY + "EscrowAddress": (query_pb2.QueryEscrowAddressRequest, query_escrow_address),
    QUERY + "TotalEscrowForDenom": (query_pb2.QueryTotalEscrowForDenomRequest, query_total_escrow),
}
