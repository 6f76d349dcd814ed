"""ICS-24 host requirements as ibc-go v8 implements them: store paths, commitments, identifiers.

A path's store key is its UTF-8 bytes (ibc-go's `...Key` functions are `[]byte(...Path)`).
"""

import hashlib
import re
from dataclasses import dataclass

from chain.errors import TxError

CODESPACE = "host"

KEY_CLIENT_STORE_PREFIX = "clients"
KEY_CLIENT_STATE = "clientState"
KEY_CONSENSUS_STATE_PREFIX = "consensusStates"
KEY_CONNECTION_PREFIX = "connections"
KEY_CHANNEL_END_PREFIX = "channelEnds"
KEY_CHANNEL_PREFIX = "channels"
KEY_PORT_PREFIX = "ports"
KEY_SEQUENCE_PREFIX = "sequences"
KEY_NEXT_SEQUENCE_SEND_PREFIX = "nextSequenceSend"
KEY_NEXT_SEQUENCE_RECV_PREFIX = "nextSequenceRecv"
KEY_NEXT_SEQUENCE_ACK_PREFIX = "nextSequenceAck"
KEY_PACKET_COMMITMENT_PREFIX = "commitments"
KEY_PACKET_ACK_PREFIX = "acks"
KEY_PACKET_RECEIPT_PREFIX = "receipts"

# The value ibc-go stores under a receipt path once a packet is received.
PACKET_RECEIPT = b"\x01"

DEFAULT_MAX_IDENTIFIER_LENGTH = 64
MAX_PORT_IDENTIFIER_LENGTH = 128
MIN_CLIENT_IDENTIFIER_LENGTH = 9
MIN_CONNECTION_IDENTIFIER_LENGTH = 10
MIN_CHANNEL_IDENTIFIER_LENGTH = 8
MIN_PORT_IDENTIFIER_LENGTH = 2
MAX_UINT64 = 2**64 - 1

CONNECTION_PREFIX = "connection-"
CHANNEL_PREFIX = "channel-"

IDENTIFIER_CHARACTERS = re.compile(r"[a-zA-Z0-9._+\-#\[\]<>]+")
CLIENT_IDENTIFIER_FORMAT = re.compile(r"\w+([\w-]+\w)?-[0-9]{1,20}", re.ASCII)
CONNECTION_IDENTIFIER_FORMAT = re.compile(r"connection-[0-9]{1,20}")
CHANNEL_IDENTIFIER_FORMAT = re.compile(r"channel-[0-9]{1,20}")


class InvalidIdentifierError(TxError):
    codespace = CODESPACE
    code = 2


class BlankIdentifierError(InvalidIdentifierError):
    pass


class IdentifierSeparatorError(InvalidIdentifierError):
    pass


class IdentifierLengthError(InvalidIdentifierError):
    pass


class IdentifierCharactersError(InvalidIdentifierError):
    pass


class IdentifierFormatError(InvalidIdentifierError):
    """The identifier is not `{prefix}{N}` (or `{client-type}-{N}`) with N a uint64."""


@dataclass(frozen=True, order=True)
class Height:
    """An IBC height; ordered by revision number, then revision height; written `{revision}-{height}`."""
    revision_number: int
    revision_height: int

    def __str__(self) -> str:
        return f"{self.revision_number}-{self.revision_height}"


# --- identifiers -------------------------------------------------------------------------------


def validate_identifier(identifier: str, min_length: int, max_length: int) -> None:
    """ibc-go's default identifier validator, its checks in its order."""
    if not identifier.strip():
        raise BlankIdentifierError("identifier cannot be blank")
    if "/" in identifier:
        raise IdentifierSeparatorError(f"identifier {identifier} cannot contain separator '/'")
    length = len(identifier.encode())
    if not min_length <= length <= max_length:
        raise IdentifierLengthError(
            f"identifier {identifier} has invalid length: {length}, must be between {min_length}-{max_length} characters")
    if IDENTIFIER_CHARACTERS.fullmatch(identifier) is None:
        raise IdentifierCharactersError(
            f"identifier {identifier} must contain only alphanumeric or the following characters: "
            f"'.', '_', '+', '-', '#', '[', ']', '<', '>'")


def validate_client_identifier(identifier: str) -> None:
    validate_identifier(identifier, MIN_CLIENT_IDENTIFIER_LENGTH, DEFAULT_MAX_IDENTIFIER_LENGTH)


def validate_connection_identifier(identifier: str) -> None:
    validate_identifier(identifier, MIN_CONNECTION_IDENTIFIER_LENGTH, DEFAULT_MAX_IDENTIFIER_LENGTH)


def validate_channel_identifier(identifier: str) -> None:
    validate_identifier(identifier, MIN_CHANNEL_IDENTIFIER_LENGTH, DEFAULT_MAX_IDENTIFIER_LENGTH)


def validate_port_identifier(identifier: str) -> None:
    validate_identifier(identifier, MIN_PORT_IDENTIFIER_LENGTH, MAX_PORT_IDENTIFIER_LENGTH)


def _parse_sequence(text: str, identifier: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) > MAX_UINT64:
        raise IdentifierFormatError(f"identifier {identifier} does not end in a uint64 sequence")
    return int(text)


def parse_identifier(identifier: str, prefix: str) -> int:
    """The sequence N of an identifier `{prefix}{N}` (ibc-go ParseIdentifier)."""
    if not identifier.startswith(prefix):
        raise IdentifierFormatError(f"identifier doesn't contain prefix `{prefix}`")
    parts = identifier.split(prefix)
    if len(parts) != 2:
        raise IdentifierFormatError(f"identifier must be in format: `{prefix}{{N}}`")
    return _parse_sequence(parts[1], identifier)


def parse_client_identifier(identifier: str) -> tuple[str, int]:
    """(client type, sequence) of a `{client-type}-{N}` client identifier."""
    if CLIENT_IDENTIFIER_FORMAT.fullmatch(identifier) is None:
        raise IdentifierFormatError(f"invalid client identifier {identifier} is not in format: `{{client-type}}-{{N}}`")
    client_type, sequence = identifier.rsplit("-", 1)
    return client_type, _parse_sequence(sequence, identifier)


def parse_connection_identifier(identifier: str) -> int:
    if CONNECTION_IDENTIFIER_FORMAT.fullmatch(identifier) is None:
        raise IdentifierFormatError(f"invalid connection identifier {identifier} is not in format `connection-{{N}}`")
    return parse_identifier(identifier, CONNECTION_PREFIX)


def parse_channel_identifier(identifier: str) -> int:
    if CHANNEL_IDENTIFIER_FORMAT.fullmatch(identifier) is None:
        raise IdentifierFormatError(f"invalid channel identifier {identifier} is not in format `channel-{{N}}`")
    return parse_identifier(identifier, CHANNEL_PREFIX)


def format_client_identifier(client_type: str, sequence: int) -> str:
    return f"{client_type}-{sequence}"


def format_connection_identifier(sequence: int) -> str:
    return f"{CONNECTION_PREFIX}{sequence}"


def format_channel_identifier(sequence: int) -> str:
    return f"{CHANNEL_PREFIX}{sequence}"


# --- paths -------------------------------------------------------------------------------------


def client_path(client_id: str, path: str) -> str:
    return f"{KEY_CLIENT_STORE_PREFIX}/{client_id}/{path}"


def client_state_path(client_id: str) -> str:
    return client_path(client_id, KEY_CLIENT_STATE)


def consensus_state_path(client_id: str, height: Height) -> str:
    return client_path(client_id, client_consensus_state_path(height))


def client_consensus_state_path(height: Height) -> str:
    """The consensus state's path inside its client's part of the store (ibc-go's ConsensusStatePath)."""
    return f"{KEY_CONSENSUS_STATE_PREFIX}/{height}"


def client_connections_path(client_id: str) -> str:
    return client_path(client_id, KEY_CONNECTION_PREFIX)


def connection_path(connection_id: str) -> str:
    return f"{KEY_CONNECTION_PREFIX}/{connection_id}"


def port_path(port_id: str) -> str:
    return f"{KEY_PORT_PREFIX}/{port_id}"


def _channel_path(port_id: str, channel_id: str) -> str:
    return f"{KEY_PORT_PREFIX}/{port_id}/{KEY_CHANNEL_PREFIX}/{channel_id}"


def channel_path(port_id: str, channel_id: str) -> str:
    return f"{KEY_CHANNEL_END_PREFIX}/{_channel_path(port_id, channel_id)}"


def next_sequence_send_path(port_id: str, channel_id: str) -> str:
    return f"{KEY_NEXT_SEQUENCE_SEND_PREFIX}/{_channel_path(port_id, channel_id)}"


def next_sequence_recv_path(port_id: str, channel_id: str) -> str:
    return f"{KEY_NEXT_SEQUENCE_RECV_PREFIX}/{_channel_path(port_id, channel_id)}"


def next_sequence_ack_path(port_id: str, channel_id: str) -> str:
    return f"{KEY_NEXT_SEQUENCE_ACK_PREFIX}/{_channel_path(port_id, channel_id)}"


def packet_commitment_prefix_path(port_id: str, channel_id: str) -> str:
    return f"{KEY_PACKET_COMMITMENT_PREFIX}/{_channel_path(port_id, channel_id)}/{KEY_SEQUENCE_PREFIX}"


def packet_commitment_path(port_id: str, channel_id: str, sequence: int) -> str:
    return f"{packet_commitment_prefix_path(port_id, channel_id)}/{sequence}"


def packet_acknowledgement_prefix_path(port_id: str, channel_id: str) -> str:
    return f"{KEY_PACKET_ACK_PREFIX}/{_channel_path(port_id, channel_id)}/{KEY_SEQUENCE_PREFIX}"


def packet_acknowledgement_path(port_id: str, channel_id: str, sequence: int) -> str:
    return f"{packet_acknowledgement_prefix_path(port_id, channel_id)}/{sequence}"


def packet_receipt_path(port_id: str, channel_id: str, sequence: int) -> str:
    return f"{KEY_PACKET_RECEIPT_PREFIX}/{_channel_path(port_id, channel_id)}/{KEY_SEQUENCE_PREFIX}/{sequence}"


# --- commitments -------------------------------------------------------------------------------


def _uint64_big_endian(value: int) -> bytes:
    return value.to_bytes(8, "big")


def compute_packet_commitment(timeout_timestamp: int, timeout_height: Height, data: bytes) -> bytes:
    """sha256(timeout_timestamp || timeout revision number || timeout revision height || sha256(data)),
    each number 8 bytes big-endian (04-channel CommitPacket)."""
    return hashlib.sha256(
        _uint64_big_endian(timeout_timestamp)
        + _uint64_big_endian(timeout_height.revision_number)
        + _uint64_big_endian(timeout_height.revision_height)
        + hashlib.sha256(data).digest()
    ).digest()


def compute_acknowledgement_commitment(acknowledgement: bytes) -> bytes:
    return hashlib.sha256(acknowledgement).digest()
