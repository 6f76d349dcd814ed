"""ICS-27 interchain accounts, controller side (ibc-go v8's `icacontroller` submodule, version `ics27-1`).

An account here, the owner, registers an account on another chain over a channel of its own port
`icacontroller-<owner>` to the host's `icahost` port, then sends that account txs to run there
(MsgSendTx). The host picks the address and executes; this side keeps, per owner and connection, the
active channel and the address the host gave in its handshake version.

The channel is ORDERED or UNORDERED as the owner asks (UNORDERED by default, as in ibc-go v8). On an
ORDERED channel a timeout closes the channel; registering again reopens the account on a new channel
with the same address, as the host keeps it.
"""

import base64
import json

from google.protobuf import json_format

from chain import bank, crypto
from chain.errors import GenesisError, InvalidAddressError, NotFoundError, TxError
from chain.proto.ibc.applications.interchain_accounts.controller.v1 import controller_pb2, query_pb2, tx_pb2
from chain.proto.ibc.applications.interchain_accounts.v1 import metadata_pb2, packet_pb2
from chain.proto.ibc.core.channel.v1 import channel_pb2, tx_pb2 as channel_tx_pb2
from chain.state import (
    MessageHandler, decode_key as decode_key_of, encode_key, get_message, iterate_prefix, public, set_message,
)
from chain.tx import compute_type_url, parse_address
from ibc import channel as channels, connection as connections, host
from ibc.errors import InvalidIbcRequestError

STORE = "icacontroller"
CODESPACE = "interchainaccounts"
CONTROLLER_CODESPACE = "icacontroller"
PORT_PREFIX = "icacontroller-"
HOST_PORT_ID = "icahost"
VERSION = "ics27-1"
ENCODINGS = ("proto3", "proto3json")
TX_TYPE = "sdk_multi_msg"
MODULE_ADDRESS = crypto.encode_address(bank.compute_module_address("interchainaccounts"))
MAX_OWNER_LENGTH = 2048
MAX_MEMO_LENGTH = 32768
MAX_ADDRESS_LENGTH = 128
UINT64 = 2**64

ACTIVE_CHANNEL = 0x01
ACCOUNT = 0x02
PORT = 0x03
PARAMS = 0x04
KEYS = {ACTIVE_CHANNEL: (str, str), ACCOUNT: (str, str), PORT: (str,), PARAMS: ()}


class InterchainAccountsError(TxError):
    codespace = CODESPACE


class UnknownDataTypeError(InterchainAccountsError):
    code = 2


class InvalidChannelFlowError(InterchainAccountsError):
    code = 5


class InvalidOutgoingDataError(InterchainAccountsError):
    code = 6


class ActiveChannelAlreadySetError(InterchainAccountsError):
    code = 10


class ActiveChannelNotFoundError(InterchainAccountsError):
    code = 11


class InvalidVersionError(InterchainAccountsError):
    code = 12


class InvalidAccountAddressError(InterchainAccountsError):
    code = 13


class InvalidControllerPortError(InterchainAccountsError):
    code = 15


class InvalidHostPortError(InterchainAccountsError):
    code = 16


class InvalidTimeoutTimestampError(InterchainAccountsError):
    code = 17


class InvalidCodecError(InterchainAccountsError):
    code = 18


class ControllerDisabledError(TxError):
    codespace = CONTROLLER_CODESPACE
    code = 2


def state_key(kind: int, *parts) -> bytes:
    return encode_key(kind, *parts)


def decode_key(key: bytes) -> tuple:
    return decode_key_of(key, KEYS)


# --- ports, metadata ---------------------------------------------------------------------------------

def compute_port_id(owner: str) -> str:
    if not owner.strip():
        raise InvalidAccountAddressError("owner address cannot be empty")
    return PORT_PREFIX + owner


def compute_default_metadata(controller_connection_id: str, host_connection_id: str) -> metadata_pb2.Metadata:
    return metadata_pb2.Metadata(version=VERSION, controller_connection_id=controller_connection_id,
                                 host_connection_id=host_connection_id, encoding=ENCODINGS[0], tx_type=TX_TYPE)


def encode_metadata(metadata: metadata_pb2.Metadata) -> str:
    """The channel version: the metadata in proto3 JSON, every field, in field order (as ibc-go writes it)."""
    document = json_format.MessageToDict(metadata, preserving_proto_field_name=True,
                                         always_print_fields_with_no_presence=True)
    return json.dumps(document, separators=(",", ":"))


def parse_metadata(version: str) -> metadata_pb2.Metadata:
    try:
        return json_format.Parse(version, metadata_pb2.Metadata())
    except json_format.ParseError:
        raise UnknownDataTypeError("cannot unmarshal ICS-27 interchain accounts metadata") from None


def is_valid_account_address(address: str) -> bool:
    return address.isascii() and address.isalnum() and len(address) <= MAX_ADDRESS_LENGTH


def check_metadata(state, connection_id: str, metadata: metadata_pb2.Metadata) -> None:
    """ibc-go ValidateControllerMetadata, for a channel on `connection_id` here."""
    if metadata.encoding not in ENCODINGS:
        raise InvalidCodecError(f"unsupported encoding format {metadata.encoding}")
    if metadata.tx_type != TX_TYPE:
        raise UnknownDataTypeError(f"unsupported transaction type {metadata.tx_type}")
    connection = connections.get_existing_connection(state, connection_id)
    for expected, got in ((connection_id, metadata.controller_connection_id),
                          (connection.counterparty.connection_id, metadata.host_connection_id)):
        if got != expected:
            raise connections.InvalidConnectionError(f"expected {expected}, got {got}")
    if metadata.address and not is_valid_account_address(metadata.address):
        raise InvalidAccountAddressError(f"address must contain strictly alphanumeric characters, not exceeding "
                                         f"{MAX_ADDRESS_LENGTH} characters in length")
    if metadata.version != VERSION:
        raise InvalidVersionError(f"expected {VERSION}, got {metadata.version}")


def is_same_account_metadata(previous_version: str, metadata: metadata_pb2.Metadata) -> bool:
    """Whether a reopening asks for what the closed channel had (everything but the address)."""
    try:
        previous = parse_metadata(previous_version)
    except UnknownDataTypeError:
        return False
    return all(getattr(previous, name) == getattr(metadata, name)
               for name in ("version", "controller_connection_id", "host_connection_id", "encoding", "tx_type"))


# --- store ---------------------------------------------------------------------------------------

def get_params(state) -> controller_pb2.Params:
    return get_message(state, controller_pb2.Params, state_key(PARAMS)) or controller_pb2.Params()


def check_enabled(state) -> None:
    if not get_params(state).controller_enabled:
        raise ControllerDisabledError("controller submodule is disabled")


@public(STORE)
def is_port_bound(state, port_id: str) -> bool:
    return state.get(state_key(PORT, port_id)) is not None


def get_active_channel_id(state, connection_id: str, port_id: str) -> str | None:
    raw = state.get(state_key(ACTIVE_CHANNEL, port_id, connection_id))
    return None if raw is None else raw.decode()


def get_open_active_channel_id(state, connection_id: str, port_id: str) -> str | None:
    channel_id = get_active_channel_id(state, connection_id, port_id)
    if channel_id is None:
        return None
    channel = channels.get_channel(state, port_id, channel_id)
    return channel_id if channel is not None and channel.state == channels.OPEN else None


def get_account_address(state, connection_id: str, port_id: str) -> str | None:
    raw = state.get(state_key(ACCOUNT, port_id, connection_id))
    return None if raw is None else raw.decode()


def get_connection_id(state, port_id: str, channel_id: str) -> str:
    return channels.get_existing_channel(state, port_id, channel_id).connection_hops[0]


# --- messages ------------------------------------------------------------------------------------

def check_owner_and_connection(msg) -> None:
    host.validate_connection_identifier(msg.connection_id)
    if not msg.owner.strip():
        raise InvalidAddressError("owner address cannot be empty")
    if len(msg.owner) > MAX_OWNER_LENGTH:
        raise InvalidAddressError(f"owner address must not exceed {MAX_OWNER_LENGTH} bytes")


def signer_owner(msg) -> bytes:
    return parse_address(msg.owner)


def check_stateless_register(msg: tx_pb2.MsgRegisterInterchainAccount) -> None:
    check_owner_and_connection(msg)


def check_and_execute_register(state, ctx, msg: tx_pb2.MsgRegisterInterchainAccount
                               ) -> tx_pb2.MsgRegisterInterchainAccountResponse:
    port_id = compute_port_id(msg.owner)
    active = get_open_active_channel_id(state, msg.connection_id, port_id)
    if active is not None:
        raise ActiveChannelAlreadySetError(f"existing active channel {active} for portID {port_id} on connection "
                                           f"{msg.connection_id}")
    state.set(state_key(PORT, port_id), b"\x01")
    ordering = msg.ordering or channels.UNORDERED
    opened = channels.process_open_init(state, ctx, channel_tx_pb2.MsgChannelOpenInit(
        port_id=port_id, signer=MODULE_ADDRESS,
        channel=channel_pb2.Channel(state=channels.INIT, ordering=ordering, counterparty={"port_id": HOST_PORT_ID},
                                    connection_hops=[msg.connection_id], version=msg.version)))
    return tx_pb2.MsgRegisterInterchainAccountResponse(channel_id=opened.channel_id, port_id=port_id)


def check_stateless_send_tx(msg: tx_pb2.MsgSendTx) -> None:
    check_owner_and_connection(msg)
    check_packet_data(msg.packet_data)
    if msg.relative_timeout == 0:
        raise InvalidIbcRequestError("relative timeout cannot be zero")


def check_packet_data(data: packet_pb2.InterchainAccountPacketData) -> None:
    if data.type == packet_pb2.TYPE_UNSPECIFIED:
        raise InvalidOutgoingDataError("packet data type cannot be unspecified")
    if not data.data:
        raise InvalidOutgoingDataError("packet data cannot be empty")
    if len(data.memo) > MAX_MEMO_LENGTH:
        raise InvalidOutgoingDataError(f"packet data memo cannot be greater than {MAX_MEMO_LENGTH} characters")


def encode_packet_data(data: packet_pb2.InterchainAccountPacketData) -> bytes:
    """ibc-go GetBytes: proto3 JSON with every field, keys sorted."""
    return channels.encode_go_json({"type": packet_pb2.Type.Name(data.type),
                                    "data": base64.b64encode(data.data).decode(), "memo": data.memo})


def check_and_execute_send_tx(state, ctx, msg: tx_pb2.MsgSendTx) -> tx_pb2.MsgSendTxResponse:
    port_id = compute_port_id(msg.owner)
    timeout = (ctx.time_ns + msg.relative_timeout) % UINT64  # Go's uint64 sum: an overflow lands in the past
    check_enabled(state)
    channel_id = get_open_active_channel_id(state, msg.connection_id, port_id)
    if channel_id is None:
        raise ActiveChannelNotFoundError(f"failed to retrieve active channel on connection {msg.connection_id} for "
                                         f"port {port_id}")
    if ctx.time_ns >= timeout:
        raise InvalidTimeoutTimestampError("timeout timestamp must be in the future")
    sequence = channels.process_send_packet(state, ctx, port_id, channel_id, None, timeout,
                                            encode_packet_data(msg.packet_data))
    return tx_pb2.MsgSendTxResponse(sequence=sequence)


MESSAGES = {
    compute_type_url(tx_pb2.MsgRegisterInterchainAccount): MessageHandler(
        tx_pb2.MsgRegisterInterchainAccount, signer_owner, check_stateless_register, check_and_execute_register),
    compute_type_url(tx_pb2.MsgSendTx): MessageHandler(
        tx_pb2.MsgSendTx, signer_owner, check_stateless_send_tx, check_and_execute_send_tx),
}


# --- the channel callbacks (ibc-go's controller IBCMiddleware with no underlying app) --------------------

@public(STORE)
def on_chan_open_init(state, ctx, ordering: int, connection_hops, port_id: str, channel_id: str, counterparty, version: str) -> str:
    check_enabled(state)
    if not port_id.startswith(PORT_PREFIX):
        raise InvalidControllerPortError(f"expected {PORT_PREFIX}{{owner-account-address}}, got {port_id}")
    if counterparty.port_id != HOST_PORT_ID:
        raise InvalidHostPortError(f"expected {HOST_PORT_ID}, got {counterparty.port_id}")
    connection_id = connection_hops[0]
    if version.strip():
        metadata = parse_metadata(version)
    else:
        connection = connections.get_existing_connection(state, connection_id)
        metadata = compute_default_metadata(connection_id, connection.counterparty.connection_id)
    check_metadata(state, connection_id, metadata)
    active = get_active_channel_id(state, connection_id, port_id)
    if active is not None:
        channel = channels.get_existing_channel(state, port_id, active)
        if channel.state != channels.CLOSED:
            raise ActiveChannelAlreadySetError(f"existing active channel {active} for portID {port_id} must be "
                                               "STATE_CLOSED")
        if channel.ordering != ordering:
            raise channels.InvalidChannelOrderingError(
                f"order cannot change when reopening a channel expected {channel_pb2.Order.Name(channel.ordering)}, "
                f"got {channel_pb2.Order.Name(ordering)}")
        if not is_same_account_metadata(channel.version, metadata):
            raise InvalidVersionError("previous active channel metadata does not match provided version")
    return encode_metadata(metadata)


@public(STORE)
def on_chan_open_try(state, ctx, ordering: int, connection_hops, port_id: str, channel_id: str, counterparty,
                     counterparty_version: str) -> str:
    raise InvalidChannelFlowError("channel handshake must be initiated by controller chain")


@public(STORE)
def on_chan_open_ack(state, ctx, port_id: str, channel_id: str, counterparty_channel_id: str,
                     counterparty_version: str) -> None:
    check_enabled(state)
    if port_id == HOST_PORT_ID:
        raise InvalidControllerPortError(f"portID cannot be host chain port ID: {HOST_PORT_ID}")
    if not port_id.startswith(PORT_PREFIX):
        raise InvalidControllerPortError(f"expected {PORT_PREFIX}{{owner-account-address}}, got {port_id}")
    metadata = parse_metadata(counterparty_version)
    active = get_open_active_channel_id(state, metadata.controller_connection_id, port_id)
    if active is not None:
        raise ActiveChannelAlreadySetError(f"existing active channel {active} for portID {port_id}")
    check_metadata(state, get_connection_id(state, port_id, channel_id), metadata)
    if not metadata.address.strip():
        raise InvalidAccountAddressError("interchain account address cannot be empty")
    state.set(state_key(ACTIVE_CHANNEL, port_id, metadata.controller_connection_id), channel_id.encode())
    state.set(state_key(ACCOUNT, port_id, metadata.controller_connection_id), metadata.address.encode())


@public(STORE)
def on_chan_open_confirm(state, ctx, port_id: str, channel_id: str) -> None:
    raise InvalidChannelFlowError("channel handshake must be initiated by controller chain")


@public(STORE)
def on_chan_close_init(state, ctx, port_id: str, channel_id: str) -> None:
    raise InvalidIbcRequestError("user cannot close channel")


@public(STORE)
def on_chan_close_confirm(state, ctx, port_id: str, channel_id: str) -> None:
    pass


@public(STORE)
def on_recv_packet(state, ctx, packet, relayer: str) -> tuple[bytes, bool]:
    error = InvalidChannelFlowError("cannot receive packet on controller chain")
    ack = channels.compute_error_ack(error)
    ctx.emit("ics27_packet", ("module", CODESPACE), ("controller_channel_id", packet.destination_channel),
             ("success", "false"), ("error", str(error)))
    return ack, False


@public(STORE)
def on_acknowledgement_packet(state, ctx, packet, acknowledgement: bytes, relayer: str) -> None:
    check_enabled(state)


@public(STORE)
def on_timeout_packet(state, ctx, packet, relayer: str) -> None:
    check_enabled(state)


# --- genesis (ibc-go's ControllerGenesisState) ---------------------------------------------------------

def init_chain(state, section: dict, ctx) -> None:
    section = section or {}
    try:
        params = section.get("params", {"controller_enabled": True})
        set_message(state, state_key(PARAMS), controller_pb2.Params(controller_enabled=params["controller_enabled"]))
        for port_id in section.get("ports", []):
            state.set(state_key(PORT, port_id), b"\x01")
        for entry in section.get("active_channels", []):
            state.set(state_key(ACTIVE_CHANNEL, entry["port_id"], entry["connection_id"]), entry["channel_id"].encode())
        for entry in section.get("interchain_accounts", []):
            state.set(state_key(ACCOUNT, entry["port_id"], entry["connection_id"]), entry["account_address"].encode())
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        raise GenesisError(f"icacontroller genesis: malformed entry: {error}") from None


def export_genesis(state) -> dict:
    def rows(kind: int) -> list[tuple[tuple, str]]:
        return [(decode_key(key)[1:], value.decode()) for key, value in iterate_prefix(state, state_key(kind))]

    return {
        "active_channels": [{"connection_id": connection_id, "port_id": port_id, "channel_id": channel_id,
                             "is_middleware_enabled": False} for (port_id, connection_id), channel_id in rows(ACTIVE_CHANNEL)],
        "interchain_accounts": [{"connection_id": connection_id, "port_id": port_id, "account_address": address}
                                for (port_id, connection_id), address in rows(ACCOUNT)],
        "ports": [port_id for (port_id,), _ in rows(PORT)],
        "params": {"controller_enabled": get_params(state).controller_enabled},
    }


# --- queries -------------------------------------------------------------------------------------

def query_interchain_account(state, request: query_pb2.QueryInterchainAccountRequest
                             ) -> query_pb2.QueryInterchainAccountResponse:
    try:
        port_id = compute_port_id(request.owner)
    except InvalidAccountAddressError as error:
        raise InvalidIbcRequestError(f"failed to generate portID from owner address: {error}") from None
    address = get_account_address(state, request.connection_id, port_id)
    if address is None:
        raise NotFoundError(f"failed to retrieve account address for {port_id} on connection {request.connection_id}: "
                            "not found")
    return query_pb2.QueryInterchainAccountResponse(address=address)


def query_params(state, request: query_pb2.QueryParamsRequest) -> query_pb2.QueryParamsResponse:
    return query_pb2.QueryParamsResponse(params=get_params(state))


QUERY = "/ibc.applications.interchain_accounts.controller.v1.Query/"
QUERIES = {
    QUERY + "InterchainAccount": (query_pb2.QueryInterchainAccountRequest, query_interchain_account),
    QUERY + "Params": (query_pb2.QueryParamsRequest, query_params),
}
