"""ICS-27 interchain accounts, controller side (ibc-go v8's `icacontroller` submodule, version `ics27-1`).

An account here, the owner, registers an account on another chain over a channel of its own port
`icacontroller-<owner>` to the host's `icahost` port, then sends that account txs to run there
(MsgSendTx). The host picks the address and executes; this side keeps, per owner and connection, the
active channel and the address the host gave in its handshake version.

The channel is ORDERED or UNORDERED as the owner asks (UNORDERED by default, as in ibc-go v8). On an
ORDERED channel a timeout closes the channel; registering again reopens the account on a new channel
with the same address, as the host keeps it.
"""

from chain import bank, crypto
from chain.errors import GenesisError, InvalidAddressError, NotFoundError, TxError
from chain.proto.ibc.applications.interchain_accounts.controller.v1 import controller_pb2, query_pb2, tx_pb2
from chain.proto.ibc.core.channel.v1 import channel_pb2, tx_pb2 as channel_tx_pb2
from chain.state import (
    MessageHandler, decode_key as decode_key_of, encode_key, get_message, iterate_prefix, public, set_message,
)
from chain.tx import compute_type_url, parse_address
from ibc import channel as channels, connection as connections, host, ica
from ibc.errors import InvalidIbcRequestError

STORE = "icacontroller"
CODESPACE = ica.CODESPACE
PORT_PREFIX = ica.PORT_PREFIX
MODULE_ADDRESS = crypto.encode_address(bank.compute_module_address("interchainaccounts"))
MAX_OWNER_LENGTH = 2048
UINT64 = 2**64

ACTIVE_CHANNEL = 0x01
ACCOUNT = 0x02
PORT = 0x03
PARAMS = 0x04
KEYS = {ACTIVE_CHANNEL: (str, str), ACCOUNT: (str, str), PORT: (str,), PARAMS: ()}


class ControllerDisabledError(TxError):
    codespace = STORE
    code = 2


def state_key(kind: int, *parts) -> bytes:
    return encode_key(kind, *parts)


def decode_key(key: bytes) -> tuple:
    return decode_key_of(key, KEYS)


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
    port_id = ica.compute_port_id(msg.owner)
    active = get_open_active_channel_id(state, msg.connection_id, port_id)
    if active is not None:
        raise ica.ActiveChannelAlreadySetError(f"existing active channel {active} for portID {port_id} on connection "
                                               f"{msg.connection_id}")
    state.set(state_key(PORT, port_id), b"\x01")
    ordering = msg.ordering or channels.UNORDERED
    opened = channels.process_open_init(state, ctx, channel_tx_pb2.MsgChannelOpenInit(
        port_id=port_id, signer=MODULE_ADDRESS,
        channel=channel_pb2.Channel(state=channels.INIT, ordering=ordering, counterparty={"port_id": ica.HOST_PORT_ID},
                                    connection_hops=[msg.connection_id], version=msg.version)))
    return tx_pb2.MsgRegisterInterchainAccountResponse(channel_id=opened.channel_id, port_id=port_id)


def check_stateless_send_tx(msg: tx_pb2.MsgSendTx) -> None:
    check_owner_and_connection(msg)
    ica.check_packet_data(msg.packet_data)
    if msg.relative_timeout == 0:
        raise InvalidIbcRequestError("relative timeout cannot be zero")


def check_and_execute_send_tx(state, ctx, msg: tx_pb2.MsgSendTx) -> tx_pb2.MsgSendTxResponse:
    port_id = ica.compute_port_id(msg.owner)
    timeout = (ctx.time_ns + msg.relative_timeout) % UINT64  # Go's uint64 sum: an overflow lands in the past
    check_enabled(state)
    channel_id = get_open_active_channel_id(state, msg.connection_id, port_id)
    if channel_id is None:
        raise ica.ActiveChannelNotFoundError(f"failed to retrieve active channel on connection {msg.connection_id} for "
                                             f"port {port_id}")
    if ctx.time_ns >= timeout:
        raise ica.InvalidTimeoutTimestampError("timeout timestamp must be in the future")
    sequence = channels.process_send_packet(state, ctx, port_id, channel_id, None, timeout,
                                            ica.encode_packet_data(msg.packet_data))
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
        raise ica.InvalidControllerPortError(f"expected {PORT_PREFIX}{{owner-account-address}}, got {port_id}")
    if counterparty.port_id != ica.HOST_PORT_ID:
        raise ica.InvalidHostPortError(f"expected {ica.HOST_PORT_ID}, got {counterparty.port_id}")
    connection_id = connection_hops[0]
    counterparty_connection_id = connections.get_existing_connection(state, connection_id).counterparty.connection_id
    metadata = (ica.parse_metadata(version) if version.strip()
                else ica.compute_default_metadata(connection_id, counterparty_connection_id))
    ica.check_metadata(metadata, connection_id, counterparty_connection_id)
    active = get_active_channel_id(state, connection_id, port_id)
    if active is not None:
        channel = channels.get_existing_channel(state, port_id, active)
        if channel.state != channels.CLOSED:
            raise ica.ActiveChannelAlreadySetError(f"existing active channel {active} for portID {port_id} must be "
                                                   "STATE_CLOSED")
        if channel.ordering != ordering:
            raise channels.InvalidChannelOrderingError(
                f"order cannot change when reopening a channel expected {channel_pb2.Order.Name(channel.ordering)}, "
                f"got {channel_pb2.Order.Name(ordering)}")
        if not ica.is_same_account_metadata(channel.version, metadata):
            raise ica.InvalidVersionError("previous active channel metadata does not match provided version")
    return ica.encode_metadata(metadata)


@public(STORE)
def on_chan_open_try(state, ctx, ordering: int, connection_hops, port_id: str, channel_id: str, counterparty,
                     counterparty_version: str) -> str:
    raise ica.InvalidChannelFlowError("channel handshake must be initiated by controller chain")


@public(STORE)
def on_chan_open_ack(state, ctx, port_id: str, channel_id: str, counterparty_channel_id: str,
                     counterparty_version: str) -> None:
    check_enabled(state)
    if port_id == ica.HOST_PORT_ID:
        raise ica.InvalidControllerPortError(f"portID cannot be host chain port ID: {ica.HOST_PORT_ID}")
    if not port_id.startswith(PORT_PREFIX):
        raise ica.InvalidControllerPortError(f"expected {PORT_PREFIX}{{owner-account-address}}, got {port_id}")
    metadata = ica.parse_metadata(counterparty_version)
    active = get_open_active_channel_id(state, metadata.controller_connection_id, port_id)
    if active is not None:
        raise ica.ActiveChannelAlreadySetError(f"existing active channel {active} for portID {port_id}")
    connection_id = get_connection_id(state, port_id, channel_id)
    ica.check_metadata(metadata, connection_id,
                       connections.get_existing_connection(state, connection_id).counterparty.connection_id)
    if not metadata.address.strip():
        raise ica.InvalidAccountAddressError("interchain account address cannot be empty")
    state.set(state_key(ACTIVE_CHANNEL, port_id, metadata.controller_connection_id), channel_id.encode())
    state.set(state_key(ACCOUNT, port_id, metadata.controller_connection_id), metadata.address.encode())


@public(STORE)
def on_chan_open_confirm(state, ctx, port_id: str, channel_id: str) -> None:
    raise ica.InvalidChannelFlowError("channel handshake must be initiated by controller chain")


@public(STORE)
def on_chan_close_init(state, ctx, port_id: str, channel_id: str) -> None:
    raise InvalidIbcRequestError("user cannot close channel")


@public(STORE)
def on_chan_close_confirm(state, ctx, port_id: str, channel_id: str) -> None:
    pass


@public(STORE)
def on_recv_packet(state, ctx, packet, relayer: str) -> tuple[bytes, bool]:
    error = ica.InvalidChannelFlowError("cannot receive packet on controller chain")
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
        port_id = ica.compute_port_id(request.owner)
    except ica.InvalidAccountAddressError as error:
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
