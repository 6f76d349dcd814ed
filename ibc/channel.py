"""04-channel and 05-port (ibc-go v8): channel handshakes over an open connection, and packets — sent
with a commitment, received with a receipt (unordered) or the next receive sequence (ordered),
acknowledged or timed out against proofs of the counterparty's state.

Ports are bound to applications when the node starts (`bind_port`); each application answers the
channel callbacks of ibc-go's IBCModule (`on_chan_open_init`, …, `on_recv_packet`, …). An application's
writes for a received packet are kept only when its acknowledgement is a success, as in ibc-go.
"""

import dataclasses
import json

from chain.errors import TxError
from chain.proto.ibc.core.channel.v1 import channel_pb2, query_pb2, tx_pb2
from chain.proto.ibc.core.connection.v1 import connection_pb2
from chain.proto.tendermint.abci import types_pb2 as abci
from chain.state import MessageHandler, compute_sub_state, get_message, get_page, public, set_message
from chain.tx import compute_type_url, pack_any, parse_address
from ibc import client, connection as connections, host
from ibc.host import Height
from ibc.state import (
    CHANNEL, NEXT_CHANNEL_SEQUENCE, NEXT_SEQUENCE_ACK, NEXT_SEQUENCE_RECV, NEXT_SEQUENCE_SEND, PACKET_ACK,
    PACKET_COMMITMENT, PACKET_RECEIPT, STORE, decode_key, get_uint64, process_next_identifier, set_uint64, state_key,
)

CODESPACE = "channel"
PORT_CODESPACE = "port"
INIT, TRYOPEN, OPEN, CLOSED = (channel_pb2.STATE_INIT, channel_pb2.STATE_TRYOPEN, channel_pb2.STATE_OPEN,
                               channel_pb2.STATE_CLOSED)
UNORDERED, ORDERED = channel_pb2.ORDER_UNORDERED, channel_pb2.ORDER_ORDERED
NOOP, SUCCESS = tx_pb2.RESPONSE_RESULT_TYPE_NOOP, tx_pb2.RESPONSE_RESULT_TYPE_SUCCESS
CALLBACK_ERROR_PREFIX = "ibccallbackerror-"
ACK_ERROR_TEXT = "error handling packet: see events for details"

ROUTES: dict[str, object] = {}  # port -> the application bound to it
PREFIX_ROUTES: dict[str, object] = {}  # port prefix -> the application that binds such ports as it runs


class ChannelError(TxError):
    codespace = CODESPACE


class ChannelNotFoundError(ChannelError):
    code = 3


class InvalidChannelError(ChannelError):
    code = 4


class InvalidChannelStateError(ChannelError):
    code = 5


class InvalidChannelOrderingError(ChannelError):
    code = 6


class InvalidCounterpartyError(ChannelError):
    code = 7


class SequenceSendNotFoundError(ChannelError):
    code = 10


class SequenceReceiveNotFoundError(ChannelError):
    code = 11


class SequenceAckNotFoundError(ChannelError):
    code = 12


class InvalidPacketError(ChannelError):
    code = 13


class TooManyConnectionHopsError(ChannelError):
    code = 15


class InvalidAcknowledgementError(ChannelError):
    code = 16


class AcknowledgementExistsError(ChannelError):
    code = 17


class PacketReceivedError(ChannelError):
    code = 19


class PacketSequenceOutOfOrderError(ChannelError):
    code = 21


class InvalidChannelVersionError(ChannelError):
    code = 24


class TimeoutNotReachedError(ChannelError):
    code = 39


class TimeoutElapsedError(ChannelError):
    code = 40


class PortNotFoundError(TxError):
    codespace = PORT_CODESPACE
    code = 3


class Redundant(Exception):
    """The packet was relayed before: the message changes nothing and succeeds (ibc-go's ErrNoOpMsg)."""


def bind_port(port_id: str, application) -> None:
    ROUTES[port_id] = application


def bind_port_prefix(prefix: str, application) -> None:
    """Ports `prefix…` route to `application` once its `is_port_bound(state, port_id)` says it bound them
    (ibc-go's capabilities for ports made at run time, as ICS-27's `icacontroller-<owner>`)."""
    PREFIX_ROUTES[prefix] = application


def get_application(state, port_id: str):
    application = ROUTES.get(port_id)
    if application is None:
        application = next((candidate for prefix, candidate in PREFIX_ROUTES.items()
                            if port_id.startswith(prefix) and candidate.is_port_bound(state, port_id)), None)
    if application is None:
        raise PortNotFoundError(f"route not found to module: no application bound to port {port_id!r}")
    return application


# --- acknowledgements ----------------------------------------------------------------------------

def encode_go_json(document) -> bytes:
    """JSON as Go's encoding/json writes a sorted document (sdk.MustSortJSON): compact, keys sorted, and
    <, > and & escaped."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                          ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text.encode()


def compute_error_ack(error: TxError) -> bytes:
    """ibc-go NewErrorAcknowledgement: the code only, which is deterministic (never the log)."""
    return encode_go_json({"error": f"ABCI code: {error.code}: {ACK_ERROR_TEXT}"})


# --- records -------------------------------------------------------------------------------------

@public(STORE)
def get_channel(state, port_id: str, channel_id: str) -> channel_pb2.Channel | None:
    return get_message(state, channel_pb2.Channel, state_key(CHANNEL, port_id, channel_id))


def get_existing_channel(state, port_id: str, channel_id: str) -> channel_pb2.Channel:
    channel = get_channel(state, port_id, channel_id)
    if channel is None:
        raise ChannelNotFoundError(f"channel not found: port ID ({port_id}) channel ID ({channel_id})")
    return channel


def get_open_connection(state, channel: channel_pb2.Channel) -> connection_pb2.ConnectionEnd:
    connection_id = channel.connection_hops[0]
    connection = connections.get_connection(state, connection_id)
    if connection is None:
        raise connections.ConnectionNotFoundError(f"connection not found: {connection_id}")
    if connection.state != connections.OPEN:
        raise connections.InvalidConnectionStateError(
            f"connection state is not OPEN (got {connection_pb2.State.Name(connection.state)})")
    return connection


def compute_ordering_feature(ordering: int) -> str:
    return channel_pb2.Order.Name(ordering)


def compute_height(height) -> Height:
    return Height(height.revision_number, height.revision_height)


def is_zero(height) -> bool:
    return height.revision_number == 0 and height.revision_height == 0


def compute_commitment(packet: channel_pb2.Packet) -> bytes:
    return host.compute_packet_commitment(packet.timeout_timestamp, compute_height(packet.timeout_height), packet.data)


# --- events --------------------------------------------------------------------------------------

def emit_channel_event(ctx, kind: str, port_id: str, channel_id: str, channel: channel_pb2.Channel,
                       *extra: tuple[str, str], with_version: bool = False) -> None:
    attributes = [("port_id", port_id), ("channel_id", channel_id),
                  ("counterparty_port_id", channel.counterparty.port_id),
                  ("counterparty_channel_id", channel.counterparty.channel_id),
                  ("connection_id", channel.connection_hops[0]), *extra]
    if with_version:
        attributes.append(("version", channel.version))
    ctx.emit(kind, *attributes)
    ctx.emit("message", ("module", "ibc_channel"))


def emit_packet_event(ctx, kind: str, packet: channel_pb2.Packet, channel: channel_pb2.Channel,
                      with_data: bool = True, ack: bytes | None = None) -> None:
    attributes = []
    if with_data:
        attributes += [("packet_data", packet.data.decode(errors="replace")), ("packet_data_hex", packet.data.hex())]
    height = packet.timeout_height
    attributes += [
        ("packet_timeout_height", f"{height.revision_number}-{height.revision_height}"),
        ("packet_timeout_timestamp", str(packet.timeout_timestamp)), ("packet_sequence", str(packet.sequence)),
        ("packet_src_port", packet.source_port), ("packet_src_channel", packet.source_channel),
        ("packet_dst_port", packet.destination_port), ("packet_dst_channel", packet.destination_channel)]
    if ack is not None:
        attributes += [("packet_ack", ack.decode(errors="replace")), ("packet_ack_hex", ack.hex())]
    else:
        attributes.append(("packet_channel_ordering", channel_pb2.Order.Name(channel.ordering)))
    attributes += [("packet_connection", channel.connection_hops[0]), ("connection_id", channel.connection_hops[0])]
    ctx.emit(kind, *attributes)
    ctx.emit("message", ("module", "ibc_channel"))


# --- handshake -----------------------------------------------------------------------------------

def signer_of(msg) -> bytes:
    return parse_address(msg.signer)


def check_channel_basics(port_id: str, channel: channel_pb2.Channel, state_expected: int) -> None:
    host.validate_port_identifier(port_id)
    if channel.state != state_expected:
        raise InvalidChannelStateError(f"channel state must be {channel_pb2.State.Name(state_expected)}")
    if channel.ordering not in (UNORDERED, ORDERED):
        raise InvalidChannelOrderingError(f"invalid channel ordering {channel.ordering}")
    if len(channel.connection_hops) != 1:
        raise TooManyConnectionHopsError("current IBC version only supports one connection hop")
    host.validate_connection_identifier(channel.connection_hops[0])
    host.validate_port_identifier(channel.counterparty.port_id)


def check_proof(proof: bytes, height) -> None:
    connections.check_proof_height(height, proof)


def get_handshake_connection(state, ctx, channel: channel_pb2.Channel) -> connection_pb2.ConnectionEnd:
    """The channel's connection, whose one version must allow the channel's ordering."""
    connection_id = channel.connection_hops[0]
    connection = connections.get_connection(state, connection_id)
    if connection is None:
        raise connections.ConnectionNotFoundError(f"connection not found: {connection_id}")
    if len(connection.versions) != 1:
        raise connections.InvalidVersionError(
            f"single version must be negotiated on connection before opening channel, got: {list(connection.versions)}")
    if not connections.is_supported_ordering(connection.versions[0], compute_ordering_feature(channel.ordering)):
        raise connections.InvalidVersionError(
            f"connection version {connection.versions[0]} does not support channel ordering: "
            f"{compute_ordering_feature(channel.ordering)}")
    client.check_active(state, ctx, connection.client_id)
    return connection


def compute_counterparty_channel(channel_state: int, ordering: int, port_id: str, channel_id: str, connection,
                                 version: str, upgrade_sequence: int = 0) -> channel_pb2.Channel:
    """The counterparty's end of our channel (port_id, channel_id) as it stores it once in `channel_state`: the
    value a handshake, close or timeout-on-close proof must show at the counterparty's channel path."""
    return channel_pb2.Channel(state=channel_state, ordering=ordering,
                               counterparty={"port_id": port_id, "channel_id": channel_id},
                               connection_hops=[connection.counterparty.connection_id], version=version,
                               upgrade_sequence=upgrade_sequence)


def verify_channel_state(state, ctx, connection, height, proof: bytes, port_id: str, channel_id: str,
                         expected: channel_pb2.Channel) -> None:
    connections.verify_membership(state, ctx, connection, compute_height(height), proof,
                                  host.channel_path(port_id, channel_id), expected.SerializeToString(), delayed=False)


def process_new_channel(state, port_id: str, channel_id: str, channel: channel_pb2.Channel) -> None:
    set_message(state, state_key(CHANNEL, port_id, channel_id), channel)
    for kind in (NEXT_SEQUENCE_SEND, NEXT_SEQUENCE_RECV, NEXT_SEQUENCE_ACK):
        set_uint64(state, state_key(kind, port_id, channel_id), 1)


def check_stateless_open_init(msg: tx_pb2.MsgChannelOpenInit) -> None:
    check_channel_basics(msg.port_id, msg.channel, INIT)
    if msg.channel.counterparty.channel_id:
        raise InvalidCounterpartyError("counterparty channel identifier must be empty")


def check_and_execute_open_init(state, ctx, msg: tx_pb2.MsgChannelOpenInit) -> tx_pb2.MsgChannelOpenInitResponse:
    application = get_application(state, msg.port_id)
    get_handshake_connection(state, ctx, msg.channel)
    channel_id = host.format_channel_identifier(process_next_identifier(state, NEXT_CHANNEL_SEQUENCE))
    channel = channel_pb2.Channel()
    channel.CopyFrom(msg.channel)
    channel.version = application.on_chan_open_init(state, ctx, channel.ordering, channel.connection_hops,
                                                    msg.port_id, channel_id, channel.counterparty, channel.version)
    process_new_channel(state, msg.port_id, channel_id, channel)
    emit_channel_event(ctx, "channel_open_init", msg.port_id, channel_id, channel, with_version=True)
    return tx_pb2.MsgChannelOpenInitResponse(channel_id=channel_id, version=channel.version)


@public(STORE)
def process_open_init(state, ctx, msg: tx_pb2.MsgChannelOpenInit) -> tx_pb2.MsgChannelOpenInitResponse:
    """A MsgChannelOpenInit an application sends itself (ICS-27 registering an account)."""
    check_stateless_open_init(msg)
    return check_and_execute_open_init(state, ctx, msg)


def check_stateless_open_try(msg: tx_pb2.MsgChannelOpenTry) -> None:
    check_channel_basics(msg.port_id, msg.channel, TRYOPEN)
    host.validate_channel_identifier(msg.channel.counterparty.channel_id)
    check_proof(msg.proof_init, msg.proof_height)


def check_and_execute_open_try(state, ctx, msg: tx_pb2.MsgChannelOpenTry) -> tx_pb2.MsgChannelOpenTryResponse:
    application = get_application(state, msg.port_id)
    connection = get_handshake_connection(state, ctx, msg.channel)
    if connection.state != connections.OPEN:
        raise connections.InvalidConnectionStateError(
            f"connection state is not OPEN (got {connection_pb2.State.Name(connection.state)})")
    channel_id = host.format_channel_identifier(process_next_identifier(state, NEXT_CHANNEL_SEQUENCE))
    expected = compute_counterparty_channel(INIT, msg.channel.ordering, msg.port_id, "", connection,
                                            msg.counterparty_version)
    verify_channel_state(state, ctx, connection, msg.proof_height, msg.proof_init, msg.channel.counterparty.port_id,
                         msg.channel.counterparty.channel_id, expected)
    channel = channel_pb2.Channel()
    channel.CopyFrom(msg.channel)
    channel.version = application.on_chan_open_try(state, ctx, channel.ordering, channel.connection_hops,
                                                   msg.port_id, channel_id, channel.counterparty,
                                                   msg.counterparty_version)
    process_new_channel(state, msg.port_id, channel_id, channel)
    emit_channel_event(ctx, "channel_open_try", msg.port_id, channel_id, channel, with_version=True)
    return tx_pb2.MsgChannelOpenTryResponse(version=channel.version, channel_id=channel_id)


def check_stateless_open_ack(msg: tx_pb2.MsgChannelOpenAck) -> None:
    host.validate_port_identifier(msg.port_id)
    host.validate_channel_identifier(msg.channel_id)
    host.validate_channel_identifier(msg.counterparty_channel_id)
    check_proof(msg.proof_try, msg.proof_height)


def check_and_execute_open_ack(state, ctx, msg: tx_pb2.MsgChannelOpenAck) -> tx_pb2.MsgChannelOpenAckResponse:
    channel = get_existing_channel(state, msg.port_id, msg.channel_id)
    if channel.state != INIT:
        raise InvalidChannelStateError(f"channel state should be INIT (got {channel_pb2.State.Name(channel.state)})")
    connection = get_open_connection(state, channel)
    expected = compute_counterparty_channel(TRYOPEN, channel.ordering, msg.port_id, msg.channel_id, connection,
                                            msg.counterparty_version)
    verify_channel_state(state, ctx, connection, msg.proof_height, msg.proof_try, channel.counterparty.port_id,
                         msg.counterparty_channel_id, expected)
    get_application(state, msg.port_id).on_chan_open_ack(state, ctx, msg.port_id, msg.channel_id, msg.counterparty_channel_id,
                                                  msg.counterparty_version)
    channel.state = OPEN
    channel.version = msg.counterparty_version
    channel.counterparty.channel_id = msg.counterparty_channel_id
    set_message(state, state_key(CHANNEL, msg.port_id, msg.channel_id), channel)
    emit_channel_event(ctx, "channel_open_ack", msg.port_id, msg.channel_id, channel)
    return tx_pb2.MsgChannelOpenAckResponse()


def check_stateless_open_confirm(msg: tx_pb2.MsgChannelOpenConfirm) -> None:
    host.validate_port_identifier(msg.port_id)
    host.validate_channel_identifier(msg.channel_id)
    check_proof(msg.proof_ack, msg.proof_height)


def check_and_execute_open_confirm(state, ctx, msg: tx_pb2.MsgChannelOpenConfirm
                                   ) -> tx_pb2.MsgChannelOpenConfirmResponse:
    channel = get_existing_channel(state, msg.port_id, msg.channel_id)
    if channel.state != TRYOPEN:
        raise InvalidChannelStateError(
            f"channel state is not TRYOPEN (got {channel_pb2.State.Name(channel.state)})")
    connection = get_open_connection(state, channel)
    expected = compute_counterparty_channel(OPEN, channel.ordering, msg.port_id, msg.channel_id, connection,
                                            channel.version)
    verify_channel_state(state, ctx, connection, msg.proof_height, msg.proof_ack, channel.counterparty.port_id,
                         channel.counterparty.channel_id, expected)
    get_application(state, msg.port_id).on_chan_open_confirm(state, ctx, msg.port_id, msg.channel_id)
    channel.state = OPEN
    set_message(state, state_key(CHANNEL, msg.port_id, msg.channel_id), channel)
    emit_channel_event(ctx, "channel_open_confirm", msg.port_id, msg.channel_id, channel)
    return tx_pb2.MsgChannelOpenConfirmResponse()


def check_stateless_close_init(msg: tx_pb2.MsgChannelCloseInit) -> None:
    host.validate_port_identifier(msg.port_id)
    host.validate_channel_identifier(msg.channel_id)


def check_and_execute_close_init(state, ctx, msg: tx_pb2.MsgChannelCloseInit) -> tx_pb2.MsgChannelCloseInitResponse:
    application = get_application(state, msg.port_id)
    channel = get_existing_channel(state, msg.port_id, msg.channel_id)
    if channel.state == CLOSED:
        raise InvalidChannelStateError("channel is already CLOSED")
    get_open_connection(state, channel)
    application.on_chan_close_init(state, ctx, msg.port_id, msg.channel_id)
    channel.state = CLOSED
    set_message(state, state_key(CHANNEL, msg.port_id, msg.channel_id), channel)
    emit_channel_event(ctx, "channel_close_init", msg.port_id, msg.channel_id, channel)
    return tx_pb2.MsgChannelCloseInitResponse()


def check_stateless_close_confirm(msg: tx_pb2.MsgChannelCloseConfirm) -> None:
    host.validate_port_identifier(msg.port_id)
    host.validate_channel_identifier(msg.channel_id)
    check_proof(msg.proof_init, msg.proof_height)


def check_and_execute_close_confirm(state, ctx, msg: tx_pb2.MsgChannelCloseConfirm
                                    ) -> tx_pb2.MsgChannelCloseConfirmResponse:
    application = get_application(state, msg.port_id)
    channel = get_existing_channel(state, msg.port_id, msg.channel_id)
    if channel.state == CLOSED:
        raise InvalidChannelStateError("channel is already CLOSED")
    connection = get_open_connection(state, channel)
    expected = compute_counterparty_channel(CLOSED, channel.ordering, msg.port_id, msg.channel_id, connection,
                                            channel.version, msg.counterparty_upgrade_sequence)
    verify_channel_state(state, ctx, connection, msg.proof_height, msg.proof_init, channel.counterparty.port_id,
                         channel.counterparty.channel_id, expected)
    application.on_chan_close_confirm(state, ctx, msg.port_id, msg.channel_id)
    channel.state = CLOSED
    set_message(state, state_key(CHANNEL, msg.port_id, msg.channel_id), channel)
    emit_channel_event(ctx, "channel_close_confirm", msg.port_id, msg.channel_id, channel)
    return tx_pb2.MsgChannelCloseConfirmResponse()


# --- packets -------------------------------------------------------------------------------------

def check_packet(packet: channel_pb2.Packet) -> None:
    """ibc-go Packet.ValidateBasic."""
    for validate, value in ((host.validate_port_identifier, packet.source_port),
                            (host.validate_channel_identifier, packet.source_channel),
                            (host.validate_port_identifier, packet.destination_port),
                            (host.validate_channel_identifier, packet.destination_channel)):
        validate(value)
    if packet.sequence == 0:
        raise InvalidPacketError("packet sequence cannot be 0")
    if is_zero(packet.timeout_height) and packet.timeout_timestamp == 0:
        raise InvalidPacketError("packet timeout height and packet timeout timestamp cannot both be 0")
    if not packet.data:
        raise InvalidPacketError("packet data bytes cannot be empty")


def is_timeout_elapsed(timeout_height, timeout_timestamp: int, height: Height, timestamp: int) -> bool:
    return (not is_zero(timeout_height) and height >= compute_height(timeout_height)) or \
        (timeout_timestamp != 0 and timestamp >= timeout_timestamp)


@public(STORE)
def process_send_packet(state, ctx, source_port: str, source_channel: str, timeout_height, timeout_timestamp: int,
                        data: bytes) -> int:
    """ibc-go SendPacket, for the application bound to `source_port`: the packet's sequence."""
    channel = get_existing_channel(state, source_port, source_channel)
    if channel.state != OPEN:
        raise InvalidChannelStateError(f"channel is not OPEN (got {channel_pb2.State.Name(channel.state)})")
    key = state_key(NEXT_SEQUENCE_SEND, source_port, source_channel)
    sequence = get_uint64(state, key)
    if sequence is None:
        raise SequenceSendNotFoundError(f"source port: {source_port}, source channel: {source_channel}")
    packet = channel_pb2.Packet(sequence=sequence, source_port=source_port, source_channel=source_channel,
                                destination_port=channel.counterparty.port_id,
                                destination_channel=channel.counterparty.channel_id, data=data,
                                timeout_height=timeout_height, timeout_timestamp=timeout_timestamp)
    check_packet(packet)
    connection = connections.get_existing_connection(state, channel.connection_hops[0])
    client.check_active(state, ctx, connection.client_id)
    latest = client.get_latest_height(state, connection.client_id)
    latest_time = client.get_timestamp_at_height(state, connection.client_id, latest)
    if is_timeout_elapsed(packet.timeout_height, timeout_timestamp, latest, latest_time):
        raise TimeoutElapsedError(f"latest height {latest} and time {latest_time} of the counterparty are past the "
                                  "packet's timeout: invalid packet timeout")
    set_uint64(state, key, sequence + 1)
    state.set(state_key(PACKET_COMMITMENT, source_port, source_channel, sequence), compute_commitment(packet))
    emit_packet_event(ctx, "send_packet", packet, channel)
    return sequence


def get_packet_channel(state, packet: channel_pb2.Packet, incoming: bool) -> channel_pb2.Channel:
    """The channel end here of the packet, whose other end must be the packet's other end."""
    port, channel_id = ((packet.destination_port, packet.destination_channel) if incoming
                        else (packet.source_port, packet.source_channel))
    other_port, other_channel = ((packet.source_port, packet.source_channel) if incoming
                                 else (packet.destination_port, packet.destination_channel))
    channel = get_existing_channel(state, port, channel_id)
    if channel.counterparty.port_id != other_port:
        raise InvalidPacketError(f"packet {'source' if incoming else 'destination'} port doesn't match the "
                                 f"counterparty's port ({other_port} ≠ {channel.counterparty.port_id})")
    if channel.counterparty.channel_id != other_channel:
        raise InvalidPacketError(f"packet {'source' if incoming else 'destination'} channel doesn't match the "
                                 f"counterparty's channel ({other_channel} ≠ {channel.counterparty.channel_id})")
    return channel


def check_stateless_packet_message(msg) -> None:
    check_packet(msg.packet)
    proof = getattr(msg, "proof_commitment", None) or getattr(msg, "proof_acked", None) or \
        getattr(msg, "proof_unreceived", None)
    check_proof(proof or b"", msg.proof_height)


def compute_callback_context(ctx):
    """A context whose events stay apart until the callback's outcome is known."""
    return dataclasses.replace(ctx, events=[])


def process_recv_packet(state, ctx, msg: tx_pb2.MsgRecvPacket) -> None:
    packet = msg.packet
    channel = get_packet_channel(state, packet, incoming=True)
    if channel.state != OPEN:
        raise InvalidChannelStateError(f"channel state is not OPEN (got {channel_pb2.State.Name(channel.state)})")
    connection = get_open_connection(state, channel)
    self_height = client.get_self_height(ctx)
    if is_timeout_elapsed(packet.timeout_height, packet.timeout_timestamp, self_height, ctx.time_ns):
        raise TimeoutElapsedError(f"block height {self_height} or time {ctx.time_ns} is past the packet's timeout "
                                  f"(height {compute_height(packet.timeout_height)}, time {packet.timeout_timestamp})")
    connections.verify_membership(
        state, ctx, connection, compute_height(msg.proof_height), msg.proof_commitment,
        host.packet_commitment_path(packet.source_port, packet.source_channel, packet.sequence),
        compute_commitment(packet))
    port, channel_id = packet.destination_port, packet.destination_channel
    if channel.ordering == UNORDERED:
        receipt = state_key(PACKET_RECEIPT, port, channel_id, packet.sequence)
        if state.get(receipt) is not None:
            raise Redundant()
        state.set(receipt, host.PACKET_RECEIPT)
    else:
        key = state_key(NEXT_SEQUENCE_RECV, port, channel_id)
        expected = get_uint64(state, key)
        if expected is None:
            raise SequenceReceiveNotFoundError(f"destination port: {port}, destination channel: {channel_id}")
        if packet.sequence < expected:
            raise Redundant()
        if packet.sequence > expected:
            raise PacketSequenceOutOfOrderError(f"packet sequence ≠ next receive sequence ({packet.sequence} ≠ "
                                                f"{expected})")
        set_uint64(state, key, expected + 1)
    emit_packet_event(ctx, "recv_packet", packet, channel)
    application = get_application(state, port)
    callback_state, branch = compute_sub_state(state)
    callback_ctx = compute_callback_context(ctx)
    ack, success = application.on_recv_packet(callback_state, callback_ctx, packet, msg.signer)
    if success:
        branch.write()
        ctx.events.extend(callback_ctx.events)
    else:
        ctx.events.extend(compute_error_events(callback_ctx.events))
    process_write_acknowledgement(state, ctx, packet, channel, ack)


def compute_error_events(events: list[bytes]) -> list[bytes]:
    """ibc-go keeps the events of a callback that failed, with their type prefixed `ibccallbackerror-`."""
    renamed = []
    for raw in events:
        event = abci.Event.FromString(raw)
        event.type = CALLBACK_ERROR_PREFIX + event.type
        renamed.append(event.SerializeToString())
    return renamed


def process_write_acknowledgement(state, ctx, packet: channel_pb2.Packet, channel: channel_pb2.Channel,
                                  ack: bytes) -> None:
    key = state_key(PACKET_ACK, packet.destination_port, packet.destination_channel, packet.sequence)
    if state.get(key) is not None:
        raise AcknowledgementExistsError(f"acknowledgement for packet {packet.sequence} already exists")
    if not ack:
        raise InvalidAcknowledgementError("acknowledgement cannot be empty")
    state.set(key, host.compute_acknowledgement_commitment(ack))
    emit_packet_event(ctx, "write_acknowledgement", packet, channel, ack=ack)


def execute_packet_message(state, ctx, msg, process, response_class):
    """Runs a packet message; one relayed before answers NOOP and changes nothing (ibc-go's redundancy rule)."""
    try:
        process(state, ctx, msg)
    except Redundant:
        ctx.emit("message", ("module", "ibc_channel"))
        return response_class(result=NOOP)
    return response_class(result=SUCCESS)


def check_and_execute_recv_packet(state, ctx, msg: tx_pb2.MsgRecvPacket) -> tx_pb2.MsgRecvPacketResponse:
    return execute_packet_message(state, ctx, msg, process_recv_packet, tx_pb2.MsgRecvPacketResponse)


def get_sent_commitment(state, packet: channel_pb2.Packet) -> bytes:
    """The commitment of a packet sent from here, or Redundant once it has been acknowledged or timed out."""
    stored = state.get(state_key(PACKET_COMMITMENT, packet.source_port, packet.source_channel, packet.sequence))
    if stored is None:
        raise Redundant()
    if stored != compute_commitment(packet):
        raise InvalidPacketError(f"commitment bytes are not equal: got ({compute_commitment(packet).hex()}), "
                                 f"expected ({stored.hex()})")
    return stored


def process_acknowledgement(state, ctx, msg: tx_pb2.MsgAcknowledgement) -> None:
    packet = msg.packet
    channel = get_packet_channel(state, packet, incoming=False)
    if channel.state != OPEN:
        raise InvalidChannelStateError(f"channel state is not OPEN (got {channel_pb2.State.Name(channel.state)})")
    connection = get_open_connection(state, channel)
    get_sent_commitment(state, packet)
    connections.verify_membership(
        state, ctx, connection, compute_height(msg.proof_height), msg.proof_acked,
        host.packet_acknowledgement_path(packet.destination_port, packet.destination_channel, packet.sequence),
        host.compute_acknowledgement_commitment(msg.acknowledgement))
    if channel.ordering == ORDERED:
        key = state_key(NEXT_SEQUENCE_ACK, packet.source_port, packet.source_channel)
        expected = get_uint64(state, key)
        if expected is None:
            raise SequenceAckNotFoundError(f"source port: {packet.source_port}, source channel: {packet.source_channel}")
        if packet.sequence != expected:
            raise PacketSequenceOutOfOrderError(f"packet sequence ≠ next ack sequence ({packet.sequence} ≠ {expected})")
        set_uint64(state, key, expected + 1)
    state.delete(state_key(PACKET_COMMITMENT, packet.source_port, packet.source_channel, packet.sequence))
    emit_packet_event(ctx, "acknowledge_packet", packet, channel, with_data=False)
    get_application(state, packet.source_port).on_acknowledgement_packet(state, ctx, packet, msg.acknowledgement, msg.signer)


def check_and_execute_acknowledgement(state, ctx, msg: tx_pb2.MsgAcknowledgement) -> tx_pb2.MsgAcknowledgementResponse:
    if not msg.acknowledgement:
        raise InvalidAcknowledgementError("ack bytes cannot be empty")
    return execute_packet_message(state, ctx, msg, process_acknowledgement, tx_pb2.MsgAcknowledgementResponse)


def process_timeout_proofs(state, ctx, msg, channel, connection, proof: bytes, received_error: type) -> None:
    """What proves a packet was not received: no receipt (unordered), or a next receive sequence at or below
    the packet's (ordered); else `received_error`."""
    packet = msg.packet
    height = compute_height(msg.proof_height)
    if channel.ordering == ORDERED:
        if msg.next_sequence_recv > packet.sequence:
            raise received_error(f"packet already received, next sequence receive > packet sequence "
                                 f"({msg.next_sequence_recv} > {packet.sequence})")
        connections.verify_membership(
            state, ctx, connection, height, proof,
            host.next_sequence_recv_path(packet.destination_port, packet.destination_channel),
            msg.next_sequence_recv.to_bytes(8, "big"))
    else:
        connections.verify_non_membership(
            state, ctx, connection, height, proof,
            host.packet_receipt_path(packet.destination_port, packet.destination_channel, packet.sequence))


def process_timed_out(state, ctx, packet, channel, port_id: str, signer: str) -> None:
    state.delete(state_key(PACKET_COMMITMENT, packet.source_port, packet.source_channel, packet.sequence))
    if channel.ordering == ORDERED:
        channel.state = CLOSED
        set_message(state, state_key(CHANNEL, packet.source_port, packet.source_channel), channel)
        emit_channel_event(ctx, "channel_closed", packet.source_port, packet.source_channel, channel,
                           ("packet_channel_ordering", channel_pb2.Order.Name(channel.ordering)))
    emit_packet_event(ctx, "timeout_packet", packet, channel, with_data=False)
    get_application(state, port_id).on_timeout_packet(state, ctx, packet, signer)


def process_timeout(state, ctx, msg: tx_pb2.MsgTimeout) -> None:
    packet = msg.packet
    channel = get_packet_channel(state, packet, incoming=False)
    connection = connections.get_existing_connection(state, channel.connection_hops[0])
    height = compute_height(msg.proof_height)
    timestamp = client.get_timestamp_at_height(state, connection.client_id, height)
    if not is_timeout_elapsed(packet.timeout_height, packet.timeout_timestamp, height, timestamp):
        raise TimeoutNotReachedError(f"proof height {height} and its time {timestamp} are before the packet's "
                                     f"timeout (height {compute_height(packet.timeout_height)}, time "
                                     f"{packet.timeout_timestamp}): packet timeout not reached")
    get_sent_commitment(state, packet)
    process_timeout_proofs(state, ctx, msg, channel, connection, msg.proof_unreceived, PacketReceivedError)
    process_timed_out(state, ctx, packet, channel, packet.source_port, msg.signer)


def check_and_execute_timeout(state, ctx, msg: tx_pb2.MsgTimeout) -> tx_pb2.MsgTimeoutResponse:
    return execute_packet_message(state, ctx, msg, process_timeout, tx_pb2.MsgTimeoutResponse)


def check_stateless_timeout_on_close(msg: tx_pb2.MsgTimeoutOnClose) -> None:
    check_stateless_packet_message(msg)
    check_proof(msg.proof_close, msg.proof_height)


def process_timeout_on_close(state, ctx, msg: tx_pb2.MsgTimeoutOnClose) -> None:
    packet = msg.packet
    channel = get_packet_channel(state, packet, incoming=False)
    connection = connections.get_existing_connection(state, channel.connection_hops[0])
    get_sent_commitment(state, packet)
    expected = compute_counterparty_channel(CLOSED, channel.ordering, packet.source_port, packet.source_channel,
                                            connection, channel.version, msg.counterparty_upgrade_sequence)
    verify_channel_state(state, ctx, connection, msg.proof_height, msg.proof_close, packet.destination_port,
                         packet.destination_channel, expected)
    process_timeout_proofs(state, ctx, msg, channel, connection, msg.proof_unreceived, InvalidPacketError)
    process_timed_out(state, ctx, packet, channel, packet.source_port, msg.signer)


def check_and_execute_timeout_on_close(state, ctx, msg: tx_pb2.MsgTimeoutOnClose) -> tx_pb2.MsgTimeoutOnCloseResponse:
    return execute_packet_message(state, ctx, msg, process_timeout_on_close, tx_pb2.MsgTimeoutOnCloseResponse)


def make_handler(message_class, check_stateless, check_and_execute) -> tuple[str, MessageHandler]:
    return compute_type_url(message_class), MessageHandler(message_class, signer_of, check_stateless, check_and_execute)


MESSAGES = dict((
    make_handler(tx_pb2.MsgChannelOpenInit, check_stateless_open_init, check_and_execute_open_init),
    make_handler(tx_pb2.MsgChannelOpenTry, check_stateless_open_try, check_and_execute_open_try),
    make_handler(tx_pb2.MsgChannelOpenAck, check_stateless_open_ack, check_and_execute_open_ack),
    make_handler(tx_pb2.MsgChannelOpenConfirm, check_stateless_open_confirm, check_and_execute_open_confirm),
    make_handler(tx_pb2.MsgChannelCloseInit, check_stateless_close_init, check_and_execute_close_init),
    make_handler(tx_pb2.MsgChannelCloseConfirm, check_stateless_close_confirm, check_and_execute_close_confirm),
    make_handler(tx_pb2.MsgRecvPacket, check_stateless_packet_message, check_and_execute_recv_packet),
    make_handler(tx_pb2.MsgAcknowledgement, check_stateless_packet_message, check_and_execute_acknowledgement),
    make_handler(tx_pb2.MsgTimeout, check_stateless_packet_message, check_and_execute_timeout),
    make_handler(tx_pb2.MsgTimeoutOnClose, check_stateless_timeout_on_close, check_and_execute_timeout_on_close),
))


# --- queries -------------------------------------------------------------------------------------

def compute_identified(key: bytes, channel: channel_pb2.Channel) -> channel_pb2.IdentifiedChannel:
    _, port_id, channel_id = decode_key(key)
    return channel_pb2.IdentifiedChannel(
        state=channel.state, ordering=channel.ordering, counterparty=channel.counterparty,
        connection_hops=channel.connection_hops, version=channel.version, port_id=port_id, channel_id=channel_id,
        upgrade_sequence=channel.upgrade_sequence)


def validate_ids(request) -> None:
    host.validate_port_identifier(request.port_id)
    host.validate_channel_identifier(request.channel_id)


def query_channel(state, request: query_pb2.QueryChannelRequest) -> query_pb2.QueryChannelResponse:
    validate_ids(request)
    return query_pb2.QueryChannelResponse(channel=get_existing_channel(state, request.port_id, request.channel_id))


def query_channels(state, request: query_pb2.QueryChannelsRequest) -> query_pb2.QueryChannelsResponse:
    rows, next_key = get_page(state, b"channelEnds/ports/", request.pagination)
    return query_pb2.QueryChannelsResponse(
        channels=[compute_identified(key, channel_pb2.Channel.FromString(raw)) for key, raw in rows],
        pagination={"next_key": next_key}, height=client.compute_query_height(state))


def query_connection_channels(state, request: query_pb2.QueryConnectionChannelsRequest
                              ) -> query_pb2.QueryConnectionChannelsResponse:
    host.validate_connection_identifier(request.connection)
    rows, next_key = get_page(state, b"channelEnds/ports/", request.pagination,
                              keep=lambda raw: channel_pb2.Channel.FromString(raw).connection_hops[:1] == [
                                  request.connection])
    return query_pb2.QueryConnectionChannelsResponse(
        channels=[compute_identified(key, channel_pb2.Channel.FromString(raw)) for key, raw in rows],
        pagination={"next_key": next_key}, height=client.compute_query_height(state))


def get_channel_client(state, request) -> tuple[str, object]:
    validate_ids(request)
    channel = get_existing_channel(state, request.port_id, request.channel_id)
    connection = connections.get_existing_connection(state, channel.connection_hops[0])
    return connection.client_id, client.get_existing_client_state(state, connection.client_id)


def query_channel_client_state(state, request: query_pb2.QueryChannelClientStateRequest
                               ) -> query_pb2.QueryChannelClientStateResponse:
    client_id, client_state = get_channel_client(state, request)
    return query_pb2.QueryChannelClientStateResponse(identified_client_state={
        "client_id": client_id, "client_state": pack_any(client_state)})


def query_channel_consensus_state(state, request: query_pb2.QueryChannelConsensusStateRequest
                                  ) -> query_pb2.QueryChannelConsensusStateResponse:
    client_id, _ = get_channel_client(state, request)
    height = Height(request.revision_number, request.revision_height)
    consensus_state = client.get_consensus_state(state, client_id, height)
    if consensus_state is None:
        raise client.ConsensusStateNotFoundError(f"client-id: {client_id}, height: {height}: consensus state not found")
    return query_pb2.QueryChannelConsensusStateResponse(consensus_state=pack_any(consensus_state), client_id=client_id)


def query_packet_commitment(state, request: query_pb2.QueryPacketCommitmentRequest
                            ) -> query_pb2.QueryPacketCommitmentResponse:
    validate_ids(request)
    if request.sequence == 0:
        raise InvalidPacketError("packet sequence cannot be 0")
    commitment = state.get(state_key(PACKET_COMMITMENT, request.port_id, request.channel_id, request.sequence))
    if commitment is None:
        raise ChannelError("packet commitment hash not found")
    return query_pb2.QueryPacketCommitmentResponse(commitment=commitment)


def get_packet_states(state, kind: int, request) -> tuple[list, bytes]:
    validate_ids(request)
    prefix = state_key(kind, request.port_id, request.channel_id, 0).rsplit(b"/", 1)[0] + b"/"
    rows, next_key = get_page(state, prefix, request.pagination)
    return [channel_pb2.PacketState(port_id=request.port_id, channel_id=request.channel_id,
                                    sequence=decode_key(key)[3], data=raw) for key, raw in rows], next_key


def query_packet_commitments(state, request: query_pb2.QueryPacketCommitmentsRequest
                             ) -> query_pb2.QueryPacketCommitmentsResponse:
    commitments, next_key = get_packet_states(state, PACKET_COMMITMENT, request)
    return query_pb2.QueryPacketCommitmentsResponse(commitments=commitments, pagination={"next_key": next_key},
                                                    height=client.compute_query_height(state))


def query_packet_receipt(state, request: query_pb2.QueryPacketReceiptRequest) -> query_pb2.QueryPacketReceiptResponse:
    validate_ids(request)
    received = state.get(state_key(PACKET_RECEIPT, request.port_id, request.channel_id, request.sequence)) is not None
    return query_pb2.QueryPacketReceiptResponse(received=received)


def query_packet_acknowledgement(state, request: query_pb2.QueryPacketAcknowledgementRequest
                                 ) -> query_pb2.QueryPacketAcknowledgementResponse:
    validate_ids(request)
    ack = state.get(state_key(PACKET_ACK, request.port_id, request.channel_id, request.sequence))
    if ack is None:
        raise ChannelError("packet acknowledgement hash not found")
    return query_pb2.QueryPacketAcknowledgementResponse(acknowledgement=ack)


def query_packet_acknowledgements(state, request: query_pb2.QueryPacketAcknowledgementsRequest
                                  ) -> query_pb2.QueryPacketAcknowledgementsResponse:
    if request.packet_commitment_sequences:
        validate_ids(request)
        acks = [channel_pb2.PacketState(port_id=request.port_id, channel_id=request.channel_id, sequence=sequence,
                                        data=ack)
                for sequence in request.packet_commitment_sequences
                if (ack := state.get(state_key(PACKET_ACK, request.port_id, request.channel_id, sequence)))]
        return query_pb2.QueryPacketAcknowledgementsResponse(acknowledgements=acks,
                                                             height=client.compute_query_height(state))
    acks, next_key = get_packet_states(state, PACKET_ACK, request)
    return query_pb2.QueryPacketAcknowledgementsResponse(acknowledgements=acks, pagination={"next_key": next_key},
                                                         height=client.compute_query_height(state))


def query_unreceived_packets(state, request: query_pb2.QueryUnreceivedPacketsRequest
                             ) -> query_pb2.QueryUnreceivedPacketsResponse:
    """Of the sequences the counterparty committed, those this chain has not received."""
    validate_ids(request)
    channel = get_existing_channel(state, request.port_id, request.channel_id)
    next_recv = get_uint64(state, state_key(NEXT_SEQUENCE_RECV, request.port_id, request.channel_id)) or 1
    unreceived = []
    for sequence in request.packet_commitment_sequences:
        if sequence == 0:
            raise InvalidPacketError("packet sequence cannot be 0")
        if channel.ordering == ORDERED:
            received = sequence < next_recv
        else:
            received = state.get(state_key(PACKET_RECEIPT, request.port_id, request.channel_id, sequence)) is not None
        if not received:
            unreceived.append(sequence)
    return query_pb2.QueryUnreceivedPacketsResponse(sequences=unreceived, height=client.compute_query_height(state))


def query_unreceived_acks(state, request: query_pb2.QueryUnreceivedAcksRequest) -> query_pb2.QueryUnreceivedAcksResponse:
    """Of the sequences the counterparty acknowledged, those whose commitment is still here."""
    validate_ids(request)
    unreceived = []
    for sequence in request.packet_ack_sequences:
        if sequence == 0:
            raise InvalidPacketError("packet sequence cannot be 0")
        if state.get(state_key(PACKET_COMMITMENT, request.port_id, request.channel_id, sequence)) is not None:
            unreceived.append(sequence)
    return query_pb2.QueryUnreceivedAcksResponse(sequences=unreceived, height=client.compute_query_height(state))


def query_next_sequence(kind: int, error: type, response_class, field: str):
    def query(state, request):
        validate_ids(request)
        get_existing_channel(state, request.port_id, request.channel_id)
        sequence = get_uint64(state, state_key(kind, request.port_id, request.channel_id))
        if sequence is None:
            raise error(f"port-id: {request.port_id}, channel-id {request.channel_id}")
        return response_class(**{field: sequence})
    return query


def query_channel_params(state, request: query_pb2.QueryChannelParamsRequest) -> query_pb2.QueryChannelParamsResponse:
    return query_pb2.QueryChannelParamsResponse(params={"upgrade_timeout": {"timestamp": 600 * 10**9}})


QUERY = "/ibc.core.channel.v1.Query/"
QUERIES = {
    QUERY + "Channel": (query_pb2.QueryChannelRequest, query_channel),
    QUERY + "Channels": (query_pb2.QueryChannelsRequest, query_channels),
    QUERY + "ConnectionChannels": (query_pb2.QueryConnectionChannelsRequest, query_connection_channels),
    QUERY + "ChannelClientState": (query_pb2.QueryChannelClientStateRequest, query_channel_client_state),
    QUERY + "ChannelConsensusState": (query_pb2.QueryChannelConsensusStateRequest, query_channel_consensus_state),
    QUERY + "PacketCommitment": (query_pb2.QueryPacketCommitmentRequest, query_packet_commitment),
    QUERY + "PacketCommitments": (query_pb2.QueryPacketCommitmentsRequest, query_packet_commitments),
    QUERY + "PacketReceipt": (query_pb2.QueryPacketReceiptRequest, query_packet_receipt),
    QUERY + "PacketAcknowledgement": (query_pb2.QueryPacketAcknowledgementRequest, query_packet_acknowledgement),
    QUERY + "PacketAcknowledgements": (query_pb2.QueryPacketAcknowledgementsRequest, query_packet_acknowledgements),
    QUERY + "UnreceivedPackets": (query_pb2.QueryUnreceivedPacketsRequest, query_unreceived_packets),
    QUERY + "UnreceivedAcks": (query_pb2.QueryUnreceivedAcksRequest, query_unreceived_acks),
    QUERY + "NextSequenceReceive": (query_pb2.QueryNextSequenceReceiveRequest, query_next_sequence(
        NEXT_SEQUENCE_RECV, SequenceReceiveNotFoundError, query_pb2.QueryNextSequenceReceiveResponse,
        "next_sequence_receive")),
    QUERY + "NextSequenceSend": (query_pb2.QueryNextSequenceSendRequest, query_next_sequence(
        NEXT_SEQUENCE_SEND, SequenceSendNotFoundError, query_pb2.QueryNextSequenceSendResponse, "next_sequence_send")),
    QUERY + "ChannelParams": (query_pb2.QueryChannelParamsRequest, query_channel_params),
}
