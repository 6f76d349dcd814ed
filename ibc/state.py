"""The `ibc` store: its keys are the ICS-24 paths themselves, because a counterparty proves them.

Clients, connections, channels and packets (ibc.client, ibc.connection, ibc.channel) share this one
store as in ibc-go, whose proofs a counterparty verifies under the commitment prefix `ibc`. Keys come
from `state_key(kind, *parts)`; `decode_key` reads a key back into (kind, parts). Numbers the
counterparty reads (next sequences) are 8-byte big-endian, as ibc-go writes them.
"""

import re

from ibc import host
from ibc.host import Height

STORE = "ibc"
COMMITMENT_PREFIX = STORE.encode()

CLIENT_STATE = 0x01
CONSENSUS_STATE = 0x02
PROCESSED_TIME = 0x03
PROCESSED_HEIGHT = 0x04
CONSENSUS_HEIGHTS = 0x05
CLIENT_CONNECTIONS = 0x06
NEXT_CLIENT_SEQUENCE = 0x07
CONNECTION = 0x10
NEXT_CONNECTION_SEQUENCE = 0x11
CHANNEL = 0x20
NEXT_CHANNEL_SEQUENCE = 0x21
NEXT_SEQUENCE_SEND = 0x22
NEXT_SEQUENCE_RECV = 0x23
NEXT_SEQUENCE_ACK = 0x24
PACKET_COMMITMENT = 0x25
PACKET_RECEIPT = 0x26
PACKET_ACK = 0x27

CONSENSUS_HEIGHTS_PATH = "iterateConsensusStates"
HEIGHT_INDEX_LENGTH = 16  # the index's big-endian revision number and height

_PATHS = {
    CLIENT_STATE: lambda client_id: host.client_state_path(client_id),
    CONSENSUS_STATE: lambda client_id, height: host.consensus_state_path(client_id, height),
    PROCESSED_TIME: lambda client_id, height: host.consensus_state_path(client_id, height) + "/processedTime",
    PROCESSED_HEIGHT: lambda client_id, height: host.consensus_state_path(client_id, height) + "/processedHeight",
    CLIENT_CONNECTIONS: lambda client_id: host.client_connections_path(client_id),
    NEXT_CLIENT_SEQUENCE: lambda: "nextClientSequence",
    CONNECTION: lambda connection_id: host.connection_path(connection_id),
    NEXT_CONNECTION_SEQUENCE: lambda: "nextConnectionSequence",
    CHANNEL: lambda port, channel: host.channel_path(port, channel),
    NEXT_CHANNEL_SEQUENCE: lambda: "nextChannelSequence",
    NEXT_SEQUENCE_SEND: lambda port, channel: host.next_sequence_send_path(port, channel),
    NEXT_SEQUENCE_RECV: lambda port, channel: host.next_sequence_recv_path(port, channel),
    NEXT_SEQUENCE_ACK: lambda port, channel: host.next_sequence_ack_path(port, channel),
    PACKET_COMMITMENT: lambda port, channel, sequence: host.packet_commitment_path(port, channel, sequence),
    PACKET_RECEIPT: lambda port, channel, sequence: host.packet_receipt_path(port, channel, sequence),
    PACKET_ACK: lambda port, channel, sequence: host.packet_acknowledgement_path(port, channel, sequence),
}

_ID = r"([^/]+)"
_HEIGHT = r"([0-9]+)-([0-9]+)"
_PATTERNS = {
    CLIENT_STATE: rf"clients/{_ID}/clientState",
    CONSENSUS_STATE: rf"clients/{_ID}/consensusStates/{_HEIGHT}",
    PROCESSED_TIME: rf"clients/{_ID}/consensusStates/{_HEIGHT}/processedTime",
    PROCESSED_HEIGHT: rf"clients/{_ID}/consensusStates/{_HEIGHT}/processedHeight",
    CLIENT_CONNECTIONS: rf"clients/{_ID}/connections",
    CONNECTION: rf"connections/{_ID}",
    CHANNEL: rf"channelEnds/ports/{_ID}/channels/{_ID}",
    NEXT_SEQUENCE_SEND: rf"nextSequenceSend/ports/{_ID}/channels/{_ID}",
    NEXT_SEQUENCE_RECV: rf"nextSequenceRecv/ports/{_ID}/channels/{_ID}",
    NEXT_SEQUENCE_ACK: rf"nextSequenceAck/ports/{_ID}/channels/{_ID}",
    PACKET_COMMITMENT: rf"commitments/ports/{_ID}/channels/{_ID}/sequences/([0-9]+)",
    PACKET_RECEIPT: rf"receipts/ports/{_ID}/channels/{_ID}/sequences/([0-9]+)",
    PACKET_ACK: rf"acks/ports/{_ID}/channels/{_ID}/sequences/([0-9]+)",
    **{kind: re.escape(_PATHS[kind]()) for kind in (NEXT_CLIENT_SEQUENCE, NEXT_CONNECTION_SEQUENCE, NEXT_CHANNEL_SEQUENCE)},
}
_COMPILED = {kind: re.compile(pattern) for kind, pattern in _PATTERNS.items()}
_HEIGHT_KINDS = (CONSENSUS_STATE, PROCESSED_TIME, PROCESSED_HEIGHT)
_SEQUENCE_KINDS = (PACKET_COMMITMENT, PACKET_RECEIPT, PACKET_ACK)


def state_key(kind: int, *parts) -> bytes:
    """The ICS-24 path of a record; CONSENSUS_HEIGHTS(client_id[, height]) is the height-ordered index of a
    client's consensus states (ibc-go's iteration key: big-endian revision number and height)."""
    if kind == CONSENSUS_HEIGHTS:
        client_id, *height = parts
        prefix = host.client_path(client_id, CONSENSUS_HEIGHTS_PATH).encode()
        return prefix + b"".join(n.to_bytes(8, "big") for h in height for n in (h.revision_number, h.revision_height))
    return _PATHS[kind](*parts).encode()


def compute_client_key(client_id: str, relative: bytes) -> bytes:
    """A key in a client's own part of the store, `clients/<id>/<relative>` (ibc-go's client store)."""
    return host.client_path(client_id, "").encode() + relative


def decode_key(key: bytes) -> tuple:
    """(kind, *parts) of a key `state_key` made."""
    clients, index = f"{host.KEY_CLIENT_STORE_PREFIX}/".encode(), f"/{CONSENSUS_HEIGHTS_PATH}".encode()
    if key.startswith(clients) and key[:-HEIGHT_INDEX_LENGTH].endswith(index):
        return CONSENSUS_HEIGHTS, key[len(clients):-HEIGHT_INDEX_LENGTH - len(index)].decode(), decode_height_index(key)
    try:
        text = key.decode()
    except UnicodeDecodeError:
        raise ValueError(f"{key!r} is not a key of the ibc store") from None
    for kind, pattern in _COMPILED.items():
        match = pattern.fullmatch(text)
        if match is None:
            continue
        parts = list(match.groups())
        if kind in _HEIGHT_KINDS:
            parts = [parts[0], Height(int(parts[1]), int(parts[2]))]
        if kind in _SEQUENCE_KINDS:
            parts[2] = int(parts[2])
        return (kind, *parts)
    raise ValueError(f"{text!r} is not a key of the ibc store")


def decode_height_index(key: bytes) -> Height:
    return Height(int.from_bytes(key[-HEIGHT_INDEX_LENGTH:-8], "big"), int.from_bytes(key[-8:], "big"))


def get_uint64(state, key: bytes) -> int | None:
    raw = state.get(key)
    return None if raw is None else int.from_bytes(raw, "big")


def set_uint64(state, key: bytes, value: int) -> None:
    state.set(key, value.to_bytes(8, "big"))


def process_next_identifier(state, kind: int) -> int:
    """The next of a sequence of identifiers (clients, connections, channels), counted from 0."""
    key = state_key(kind)
    sequence = get_uint64(state, key) or 0
    set_uint64(state, key, sequence + 1)
    return sequence

