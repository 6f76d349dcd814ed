"""ICS-24 host paths, commitments and identifiers, against ibc-go v8's own test cases and values seen on chains."""

import hashlib

import pytest

from ibc import host
from ibc.host import Height

MAX_UINT64 = 2**64 - 1
# 195 characters (ibc-go 24-host validate_test.go)
LONG_ID = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit. Duis eros neque, ultricies vel ligula ac, "
           "convallis porttitor elit. Maecenas tincidunt turpis elit, vel faucibus nisl pellentesque sodales")
VALIDATORS = (host.validate_client_identifier, host.validate_connection_identifier,
              host.validate_channel_identifier, host.validate_port_identifier)


def test_paths_as_ibc_go_writes_them():
    assert host.client_state_path("07-tendermint-0") == "clients/07-tendermint-0/clientState"
    assert host.consensus_state_path("07-tendermint-0", Height(1, 5)) == "clients/07-tendermint-0/consensusStates/1-5"
    assert host.client_connections_path("07-tendermint-0") == "clients/07-tendermint-0/connections"
    assert host.connection_path("connection-0") == "connections/connection-0"
    assert host.port_path("transfer") == "ports/transfer"
    assert host.channel_path("transfer", "channel-0") == "channelEnds/ports/transfer/channels/channel-0"
    assert host.next_sequence_send_path("transfer", "channel-0") == "nextSequenceSend/ports/transfer/channels/channel-0"
    assert host.next_sequence_recv_path("transfer", "channel-0") == "nextSequenceRecv/ports/transfer/channels/channel-0"
    assert host.next_sequence_ack_path("transfer", "channel-0") == "nextSequenceAck/ports/transfer/channels/channel-0"
    assert host.packet_commitment_path("transfer", "channel-0", 7) == (
        "commitments/ports/transfer/channels/channel-0/sequences/7")
    assert host.packet_commitment_prefix_path("transfer", "channel-0") == (
        "commitments/ports/transfer/channels/channel-0/sequences")
    assert host.packet_receipt_path("transfer", "channel-0", 7) == "receipts/ports/transfer/channels/channel-0/sequences/7"
    assert host.packet_acknowledgement_path("transfer", "channel-0", 7) == (
        "acks/ports/transfer/channels/channel-0/sequences/7")


def test_ics20_success_acknowledgement_commitment_as_stored_on_chains():
    # hermes's `query packet ack` output for a transfer, and a relayer's proof of
    # acks/ports/transfer/channels/channel-3/sequences/1, both hold this value
    commitment = host.compute_acknowledgement_commitment(b'{"result":"AQ=="}')
    assert commitment.hex() == "08f7557ed51826fe18d84512bf24ec75001edbaf2123a477df72a0a9f3640a7c"


def test_packet_commitment_matches_an_independent_implementation():
    # timeout timestamp 1, timeout height 2-3, data 0x010203: the value an ICS-04 implementation's tests pin
    commitment = host.compute_packet_commitment(1, Height(2, 3), bytes.fromhex("010203"))
    assert commitment.hex() == "5b0cf5e329d27666bff2039d1e0ad4b17a8b185ce7d0c5febfa3ac8f7cff60eb"


def test_packet_commitment_covers_every_field():
    base = host.compute_packet_commitment(100, Height(1, 50), b"data")
    assert base == hashlib.sha256((100).to_bytes(8, "big") + (1).to_bytes(8, "big") + (50).to_bytes(8, "big")
                                  + hashlib.sha256(b"data").digest()).digest()
    others = {host.compute_packet_commitment(101, Height(1, 50), b"data"),
              host.compute_packet_commitment(100, Height(2, 50), b"data"),
              host.compute_packet_commitment(100, Height(1, 51), b"data"),
              host.compute_packet_commitment(100, Height(1, 50), b"datb")}
    assert base not in others and len(others) == 4


@pytest.mark.parametrize("identifier, valid", [
    ("lowercaseid", True), ("._+-#[]<>._+-#[]<>", True), ("lower._+-#[]<>", True), ("1234567890", True),
    ("NOTLOWERCASE", True), ("               ", False), ("1", False),
    ("this identifier is too long to be used as a valid identifier", False), ("lower/case/id", False),
    ("(clientid)", False), ("", False),
])
def test_default_identifier_validator(identifier, valid):
    # ibc-go 24-host TestDefaultIdentifierValidator
    for validate in VALIDATORS:
        if valid:
            validate(identifier)
        else:
            with pytest.raises(host.InvalidIdentifierError):
                validate(identifier)


def test_identifier_errors_name_the_rule():
    with pytest.raises(host.BlankIdentifierError):
        host.validate_client_identifier("   ")
    with pytest.raises(host.IdentifierSeparatorError):
        host.validate_client_identifier("07-tendermint/0")
    with pytest.raises(host.IdentifierLengthError):
        host.validate_client_identifier("c" * 65)
    with pytest.raises(host.IdentifierCharactersError):
        host.validate_client_identifier("(clientid)")
    with pytest.raises(host.IdentifierLengthError):
        host.validate_port_identifier(LONG_ID)
    host.validate_port_identifier("p" * 128)
    with pytest.raises(host.IdentifierLengthError):
        host.validate_channel_identifier("channel")
    host.validate_channel_identifier("channel-0")
    with pytest.raises(host.IdentifierLengthError):
        host.validate_connection_identifier("connect-0")
    assert (host.InvalidIdentifierError.codespace, host.InvalidIdentifierError.code) == ("host", 2)


@pytest.mark.parametrize("identifier, prefix, sequence", [
    ("connection-0", "connection-", 0), ("connection-1", "connection-", 1),
    (f"connection-{MAX_UINT64}", "connection-", MAX_UINT64),
    ("connection-18446744073709551616", "connection-", None), ("connection-2345682193567182931243", "connection-", None),
    ("Connection-0", "connection-", None), ("connection-connection-0", "connection-", None),
    ("connection-0", "prefix", None), ("connection0", "connection-", None), ("               ", "connection-", None),
    ("", "connection-", None), ("connection--1", "connection-", None),
])
def test_parse_identifier(identifier, prefix, sequence):
    # ibc-go 24-host TestParseIdentifier
    if sequence is None:
        with pytest.raises(host.IdentifierFormatError):
            host.parse_identifier(identifier, prefix)
    else:
        assert host.parse_identifier(identifier, prefix) == sequence


@pytest.mark.parametrize("identifier, parsed", [
    ("tendermint-0", ("tendermint", 0)), ("tendermint-1", ("tendermint", 1)),
    ("solomachine-v1-1", ("solomachine-v1", 1)), (f"tendermint-{MAX_UINT64}", ("tendermint", MAX_UINT64)),
    ("t-0", ("t", 0)), ("07-tendermint-12", ("07-tendermint", 12)),
    ("tendermint-18446744073709551616", None), ("tendermint-2345682193567182931243", None),
    ("tendermin\nt-1", None), ("tendermint\n-1", None), ("tendermint0", None), ("               ", None), ("", None),
    ("tendermint--1", None), ("tendermint-tm", None), (" -100", None), ("a\t\t\t-100", None), ("\t\t\ta-100", None),
    ("                  a-100", None), ("-----a-100", None), ("tendermint/-100", None), ("世界-100", None),
])
def test_parse_client_identifier(identifier, parsed):
    # ibc-go 02-client TestParseClientIdentifier
    if parsed is None:
        with pytest.raises(host.IdentifierFormatError):
            host.parse_client_identifier(identifier)
    else:
        assert host.parse_client_identifier(identifier) == parsed
        assert host.format_client_identifier(*parsed) == identifier


@pytest.mark.parametrize("identifier, sequence", [
    ("channel-0", 0), ("channel-1", 1), ("channel-234568219356718293", 234568219356718293),
    ("channel-18446744073709551616", None), ("channel-2345682193567182931243", None), ("Channel-0", None),
    ("channel0", None), ("               ", None), ("", None), ("channel--1", None),
])
def test_parse_channel_identifier(identifier, sequence):
    # ibc-go 04-channel TestParseChannelSequence
    if sequence is None:
        with pytest.raises(host.IdentifierFormatError):
            host.parse_channel_identifier(identifier)
    else:
        assert host.parse_channel_identifier(identifier) == sequence
        assert host.format_channel_identifier(sequence) == identifier


def test_parse_connection_identifier():
    assert host.parse_connection_identifier(host.format_connection_identifier(MAX_UINT64)) == MAX_UINT64
    with pytest.raises(host.IdentifierFormatError):
        host.parse_connection_identifier("connection-connection-0")


def test_heights_order_by_revision_first():
    assert Height(1, 100) < Height(2, 1) < Height(2, 2)
    assert str(Height(4, 10)) == "4-10"
