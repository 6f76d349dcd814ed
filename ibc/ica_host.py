"""ICS-27 interchain accounts, host side (ibc-go v8's `icahost` submodule, port `icahost`).

A controller chain opens a channel from its `icacontroller-<owner>` port; in the handshake this chain
makes the owner an account here and answers its address in the channel version. Each EXECUTE_TX
packet then carries messages for that account: they run as that account's own txs would, all or
none, if every one is allowed (`allow_messages`, `*` for all) and signed by that account alone. The
account has no key, so nothing but its controller's packets can move what it holds.

Its address is derived from the connection, the controller's port and the hash of the block that
opens the channel, as ibc-go derives it from the block header: nobody can fund (and so occupy) the
address before the channel is opened.
"""

import base64
import hashlib

from google.protobuf.message import DecodeError

from chain import auth, crypto
from chain.errors import GenesisError, TxError, UnauthorizedError
from chain.proto.cosmos.base.abci.v1beta1 import abci_pb2 as sdk_abci
from chain.proto.ibc.applications.interchain_accounts.host.v1 import host_pb2, query_pb2
from chain.proto.ibc.applications.interchain_accounts.v1 import packet_pb2
from chain.state import State, decode_key as decode_key_of, encode_key, get_message, iterate_prefix, public, set_message
from chain.tx import pack_any
from ibc import channel as channels, connection as connections, ica
from ibc.errors import InvalidIbcRequestError

STORE = "icahost"
CODESPACE = ica.CODESPACE
PORT_ID = ica.HOST_PORT_ID
ALLOW_ALL = "*"
ADDRESS_DOMAIN = b"icahost-accounts"

ACTIVE_CHANNEL = 0x01
ACCOUNT = 0x02
PARAMS = 0x03
KEYS = {ACTIVE_CHANNEL: (str, str), ACCOUNT: (str, str), PARAMS: ()}

ROUTER: dict = {}  # type URL -> (MessageHandler, its module's store), the app's (bind_router)


class HostDisabledError(TxError):
    codespace = STORE
    code = 2


def state_key(kind: int, *parts) -> bytes:
    return encode_key(kind, *parts)


def decode_key(key: bytes) -> tuple:
    return decode_key_of(key, KEYS)


def bind_router(handlers: dict, stores: dict) -> None:
    """The app's messages, which packets may run (ibc-go's MessageRouter)."""
    ROUTER.update({url: (handler, stores[url]) for url, handler in handlers.items()})


def compute_address(connection_id: str, controller_port_id: str, block_hash: bytes) -> bytes:
    return hashlib.sha256(ADDRESS_DOMAIN + b"\x00" + (connection_id + controller_port_id).encode() +
                          block_hash).digest()[:crypto.ADDRESS_LENGTH]


# --- store ---------------------------------------------------------------------------------------

def get_params(state) -> host_pb2.Params:
    return get_message(state, host_pb2.Params, state_key(PARAMS)) or host_pb2.Params()


def check_enabled(state) -> None:
    if not get_params(state).host_enabled:
        raise HostDisabledError("host submodule is disabled")


def get_active_channel_id(state, connection_id: str, controller_port_id: str) -> str | None:
    raw = state.get(state_key(ACTIVE_CHANNEL, controller_port_id, connection_id))
    return None if raw is None else raw.decode()


def get_account_address(state, connection_id: str, controller_port_id: str) -> str | None:
    raw = state.get(state_key(ACCOUNT, controller_port_id, connection_id))
    return None if raw is None else raw.decode()


def process_new_account(state, ctx, connection_id: str, controller_port_id: str) -> str:
    address = compute_address(connection_id, controller_port_id, ctx.block_hash)
    if auth.get_account(state, address) is not None:
        raise ica.AccountAlreadyExistError(f"existing account for newly generated interchain account address "
                                           f"{crypto.encode_address(address)}")
    auth.process_ensure_account(state, address)
    text = crypto.encode_address(address)
    state.set(state_key(ACCOUNT, controller_port_id, connection_id), text.encode())
    return text


# --- the channel callbacks -----------------------------------------------------------------------

@public(STORE)
def on_chan_open_init(state, ctx, ordering: int, connection_hops, port_id: str, channel_id: str, counterparty,
                      version: str) -> str:
    raise ica.InvalidChannelFlowError("channel handshake must be initiated by controller chain")


@public(STORE)
def on_chan_open_try(state, ctx, ordering: int, connection_hops, port_id: str, channel_id: str, counterparty,
                     counterparty_version: str) -> str:
    check_enabled(state)
    if port_id != PORT_ID:
        raise ica.InvalidHostPortError(f"expected {PORT_ID}, got {port_id}")
    connection_id = connection_hops[0]
    controller_connection_id = connections.get_existing_connection(state, connection_id).counterparty.connection_id
    try:
        metadata = ica.parse_metadata(counterparty_version)
    except ica.UnknownDataTypeError:
        metadata = ica.compute_default_metadata(controller_connection_id, connection_id)
    ica.check_metadata(metadata, controller_connection_id, connection_id)
    active = get_active_channel_id(state, connection_id, counterparty.port_id)
    if active is not None and channels.get_existing_channel(state, port_id, active).state != channels.CLOSED:
        raise ica.ActiveChannelAlreadySetError(f"existing active channel {active} for portID {port_id} must be "
                                               "STATE_CLOSED")
    address = get_account_address(state, metadata.host_connection_id, counterparty.port_id)
    metadata.address = address or process_new_account(state, ctx, metadata.host_connection_id, counterparty.port_id)
    return ica.encode_metadata(metadata)


@public(STORE)
def on_chan_open_ack(state, ctx, port_id: str, channel_id: str, counterparty_channel_id: str,
                     counterparty_version: str) -> None:
    raise ica.InvalidChannelFlowError("channel handshake must be initiated by controller chain")


@public(STORE)
def on_chan_open_confirm(state, ctx, port_id: str, channel_id: str) -> None:
    check_enabled(state)
    channel = channels.get_existing_channel(state, port_id, channel_id)
    state.set(state_key(ACTIVE_CHANNEL, channel.counterparty.port_id, channel.connection_hops[0]), channel_id.encode())


@public(STORE)
def on_chan_close_init(state, ctx, port_id: str, channel_id: str) -> None:
    raise InvalidIbcRequestError("user cannot close channel")


@public(STORE)
def on_chan_close_confirm(state, ctx, port_id: str, channel_id: str) -> None:
    pass


# --- packets -------------------------------------------------------------------------------------

def check_authorized(state, url: str, handler, message, account: bytes) -> None:
    allowed = get_params(state).allow_messages
    if ALLOW_ALL not in allowed and url not in allowed:
        raise UnauthorizedError(f"message type not allowed: {url}")
    signer = handler.signer(message)
    if signer != account:
        raise UnauthorizedError(f"unexpected signer address: expected {crypto.encode_address(account)}, got "
                                f"{crypto.encode_address(signer)}")


def process_execute_tx(state, ctx, packet, channel, cosmos_tx: packet_pb2.CosmosTx) -> list:
    """ibc-go executeTx: every message authorized first, then each run in turn; the responses."""
    address = get_account_address(state, channel.connection_hops[0], packet.source_port)
    if address is None:
        raise ica.InterchainAccountNotFoundError(f"failed to retrieve interchain account on port {packet.source_port}")
    account = crypto.decode_address(address)
    messages = []
    for any_message in cosmos_tx.messages:
        route = ROUTER.get(any_message.type_url)
        if route is None:
            raise ica.UnknownDataTypeError(f"cannot unmarshal CosmosTx: unknown message type {any_message.type_url}")
        handler, store = route
        try:
            message = handler.proto.FromString(any_message.value)
        except DecodeError:
            raise ica.UnknownDataTypeError(f"cannot unmarshal CosmosTx message {any_message.type_url}") from None
        check_authorized(state, any_message.type_url, handler, message, account)
        messages.append((any_message.type_url, handler, store, message))
    responses = []
    for url, handler, store, message in messages:
        handler.check_stateless(message)
        ctx.emit("message", ("action", url), ("sender", address), ("module", store))
        responses.append(pack_any(handler.check_and_execute(State(state.branch, state.meter, state.gas, store), ctx,
                                                            message)))
    return responses


@public(STORE)
def on_recv_packet(state, ctx, packet, relayer: str) -> tuple[bytes, bool]:
    """The acknowledgement and whether it is a success; the caller keeps the writes only then."""
    error = None
    try:
        check_enabled(state)
        data = ica.decode_packet_data(packet.data)
        if data.type != packet_pb2.TYPE_EXECUTE_TX:
            raise ica.UnknownDataTypeError("unknown data type")
        channel = channels.get_existing_channel(state, packet.destination_port, packet.destination_channel)
        cosmos_tx = ica.decode_cosmos_tx(data.data, ica.parse_metadata(channel.version).encoding)
        responses = process_execute_tx(state, ctx, packet, channel, cosmos_tx)
    except TxError as failure:
        error = failure
    attributes = [("module", CODESPACE), ("host_channel_id", packet.destination_channel),
                  ("success", "true" if error is None else "false")]
    if error is not None:
        attributes.append(("error", str(error)))
    ctx.emit("ics27_packet", *attributes)
    if error is not None:
        return channels.compute_error_ack(error), False
    result = sdk_abci.TxMsgData(msg_responses=responses).SerializeToString()
    return channels.encode_go_json({"result": base64.b64encode(result).decode()}), True


@public(STORE)
def on_acknowledgement_packet(state, ctx, packet, acknowledgement: bytes, relayer: str) -> None:
    raise ica.InvalidChannelFlowError("cannot receive acknowledgement on a host channel end, a host chain does not "
                                      "send a packet over the channel")


@public(STORE)
def on_timeout_packet(state, ctx, packet, relayer: str) -> None:
    raise ica.InvalidChannelFlowError("cannot cause a packet timeout on a host channel end, a host chain does not "
                                      "send a packet over the channel")


# --- genesis (ibc-go's HostGenesisState) ---------------------------------------------------------------

def init_chain(state, section: dict, ctx) -> None:
    section = section or {}
    try:
        params = section.get("params", {"host_enabled": True, "allow_messages": [ALLOW_ALL]})
        set_message(state, state_key(PARAMS), host_pb2.Params(host_enabled=params["host_enabled"],
                                                              allow_messages=params["allow_messages"]))
        for entry in section.get("active_channels", []):
            state.set(state_key(ACTIVE_CHANNEL, entry["port_id"], entry["connection_id"]), entry["channel_id"].encode())
        for entry in section.get("interchain_accounts", []):
            state.set(state_key(ACCOUNT, entry["port_id"], entry["connection_id"]), entry["account_address"].encode())
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        raise GenesisError(f"icahost genesis: malformed entry: {error}") from None


def export_genesis(state) -> dict:
    def rows(kind: int) -> list[tuple[tuple, str]]:
        return [(decode_key(key)[1:], value.decode()) for key, value in iterate_prefix(state, state_key(kind))]

    params = get_params(state)
    return {
        "active_channels": [{"connection_id": connection_id, "port_id": port_id, "channel_id": channel_id,
                             "is_middleware_enabled": False}
                            for (port_id, connection_id), channel_id in rows(ACTIVE_CHANNEL)],
        "interchain_accounts": [{"connection_id": connection_id, "port_id": port_id, "account_address": address}
                                for (port_id, connection_id), address in rows(ACCOUNT)],
        "port": PORT_ID,
        "params": {"host_enabled": params.host_enabled, "allow_messages": list(params.allow_messages)},
    }


# --- queries -------------------------------------------------------------------------------------

def query_params(state, request: query_pb2.QueryParamsRequest) -> query_pb2.QueryParamsResponse:
    return query_pb2.QueryParamsResponse(params=get_params(state))


QUERIES = {"/ibc.applications.interchain_accounts.host.v1.Query/Params": (query_pb2.QueryParamsRequest, query_params)}
