"""ICS-27 interchain accounts, what its controller (ibc.ica_controller) and host (ibc.ica_host) share:
the `ics27-1` channel version (Metadata as JSON), the packet data, and ibc-go's errors (codespace
`interchainaccounts`)."""

import base64
import json

from google.protobuf import json_format
from google.protobuf.message import DecodeError

from chain.errors import TxError
from chain.genesis import encode_json
from chain.proto.ibc.applications.interchain_accounts.v1 import metadata_pb2, packet_pb2
from ibc import channel as channels, connection as connections

CODESPACE = "interchainaccounts"
PORT_PREFIX = "icacontroller-"
HOST_PORT_ID = "icahost"
VERSION = "ics27-1"
ENCODINGS = ("proto3", "proto3json")
TX_TYPE = "sdk_multi_msg"
MAX_MEMO_LENGTH = 32768
MAX_ADDRESS_LENGTH = 128


class InterchainAccountsError(TxError):
    codespace = CODESPACE


class UnknownDataTypeError(InterchainAccountsError):
    code = 2


class AccountAlreadyExistError(InterchainAccountsError):
    code = 3


class InvalidChannelFlowError(InterchainAccountsError):
    code = 5


class InvalidOutgoingDataError(InterchainAccountsError):
    code = 6


class InterchainAccountNotFoundError(InterchainAccountsError):
    code = 8


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


# --- the channel version ------------------------------------------------------------------------------

def compute_port_id(owner: str) -> str:
    if not owner.strip():
        raise InvalidAccountAddressError("owner address cannot be empty")
    return PORT_PREFIX + owner


def compute_default_metadata(controller_connection_id: str, host_connection_id: str) -> metadata_pb2.Metadata:
    return metadata_pb2.Metadata(version=VERSION, controller_connection_id=controller_connection_id,
                                 host_connection_id=host_connection_id, encoding=ENCODINGS[0], tx_type=TX_TYPE)


def encode_metadata(metadata: metadata_pb2.Metadata) -> str:
    """The channel version: the metadata in proto3 JSON, every field, in field order (as ibc-go writes it)."""
    return json.dumps(encode_json(metadata, all_fields=True), separators=(",", ":"))


def parse_metadata(version: str) -> metadata_pb2.Metadata:
    try:
        return json_format.Parse(version, metadata_pb2.Metadata())
    except json_format.ParseError:
        raise UnknownDataTypeError("cannot unmarshal ICS-27 interchain accounts metadata") from None


def is_valid_account_address(address: str) -> bool:
    return address.isascii() and address.isalnum() and len(address) <= MAX_ADDRESS_LENGTH


def check_metadata(metadata: metadata_pb2.Metadata, controller_connection_id: str, host_connection_id: str) -> None:
    """ibc-go ValidateControllerMetadata / ValidateHostMetadata: the connection IDs are this chain's
    connection and its counterparty, in the roles of the side that checks."""
    if metadata.encoding not in ENCODINGS:
        raise InvalidCodecError(f"unsupported encoding format {metadata.encoding}")
    if metadata.tx_type != TX_TYPE:
        raise UnknownDataTypeError(f"unsupported transaction type {metadata.tx_type}")
    for expected, got in ((controller_connection_id, metadata.controller_connection_id),
                          (host_connection_id, metadata.host_connection_id)):
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


# --- packet data ---------------------------------------------------------------------------------

def check_packet_data(data: packet_pb2.InterchainAccountPacketData) -> None:
    if data.type == packet_pb2.TYPE_UNSPECIFIED:
        raise InvalidOutgoingDataError("packet data type cannot be unspecified")
    if not data.data:
        raise InvalidOutgoingDataError("packet data cannot be empty")
    if len(data.memo) > MAX_MEMO_LENGTH:
        raise InvalidOutgoingDataError(f"packet data memo cannot be greater than {MAX_MEMO_LENGTH} characters")


def encode_packet_data(data: packet_pb2.InterchainAccountPacketData) -> bytes:
    """ibc-go GetBytes: proto3 JSON with every field, keys sorted."""
    return channels.encode_go_json({"data": base64.b64encode(data.data).decode(), "memo": data.memo,
                                    "type": packet_pb2.Type.Name(data.type)})


def decode_packet_data(raw: bytes) -> packet_pb2.InterchainAccountPacketData:
    try:
        return json_format.Parse(raw, packet_pb2.InterchainAccountPacketData())
    except (json_format.ParseError, UnicodeDecodeError):
        raise UnknownDataTypeError("cannot unmarshal ICS-27 interchain account packet data") from None


def decode_cosmos_tx(data: bytes, encoding: str) -> packet_pb2.CosmosTx:
    """The messages of EXECUTE_TX packet data, in the channel's encoding (protobuf or proto3 JSON)."""
    try:
        if encoding == ENCODINGS[0]:
            return packet_pb2.CosmosTx.FromString(data)
        return json_format.Parse(data, packet_pb2.CosmosTx())
    except (DecodeError, json_format.ParseError):
        raise UnknownDataTypeError(f"cannot unmarshal CosmosTx with {encoding} encoding") from None
