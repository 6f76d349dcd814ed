"""IBC core as one component of the chain: 02-client, 03-connection and 04-channel over the `ibc` store
(ibc.state), with the applications bound to their ports (05-port) when the node starts.

Its genesis section is ibc-go's (`client_genesis`, `connection_genesis`, `channel_genesis`), each
record as it is at its ICS-24 path, so an exported chain imports with the same IBC state and
commitments.
"""

from google.protobuf import json_format
from google.protobuf.any_pb2 import Any

from chain.errors import GenesisError
from chain.genesis import encode_json
from chain.proto.ibc.core.channel.v1 import channel_pb2
from chain.proto.ibc.core.client.v1 import client_pb2
from chain.proto.ibc.core.connection.v1 import connection_pb2
from chain.proto.ibc.core.types.v1 import genesis_pb2
from chain.state import public
from ibc import channel, client, connection, ica_controller, ica_host, transfer
from ibc.state import (
    CHANNEL, CLIENT_CONNECTIONS, CLIENT_STATE, CONNECTION, CONSENSUS_HEIGHTS, CONSENSUS_STATE,
    NEXT_CHANNEL_SEQUENCE, NEXT_CLIENT_SEQUENCE, NEXT_CONNECTION_SEQUENCE, NEXT_SEQUENCE_ACK, NEXT_SEQUENCE_RECV,
    NEXT_SEQUENCE_SEND, PACKET_ACK, PACKET_COMMITMENT, PACKET_RECEIPT, PROCESSED_HEIGHT, PROCESSED_TIME, STORE,
    compute_client_key, decode_key, set_uint64, state_key,
)

MODULES = (client, connection, channel)
METADATA = (PROCESSED_HEIGHT, PROCESSED_TIME, CONSENSUS_HEIGHTS)  # what ibc-go's 07-tendermint exports as metadata
PACKET_STATES = {PACKET_ACK: "acknowledgements", PACKET_COMMITMENT: "commitments", PACKET_RECEIPT: "receipts"}
PACKET_SEQUENCES = {NEXT_SEQUENCE_SEND: "send_sequences", NEXT_SEQUENCE_RECV: "recv_sequences",
                    NEXT_SEQUENCE_ACK: "ack_sequences"}
NEXT_IDENTIFIERS = {NEXT_CLIENT_SEQUENCE: ("client_genesis", "next_client_sequence"),
                    NEXT_CONNECTION_SEQUENCE: ("connection_genesis", "next_connection_sequence"),
                    NEXT_CHANNEL_SEQUENCE: ("channel_genesis", "next_channel_sequence")}
__all__ = ("STORE", "state_key", "decode_key", "MESSAGES", "QUERIES", "init_chain", "export_genesis")
MESSAGES = {url: handler for module in MODULES for url, handler in module.MESSAGES.items()}
QUERIES = {path: route for module in MODULES for path, route in module.QUERIES.items()}

channel.bind_port(transfer.PORT_ID, transfer)
channel.bind_port_prefix(ica_controller.PORT_PREFIX, ica_controller)
channel.bind_port(ica_host.PORT_ID, ica_host)


def compute_params(state) -> dict:
    """The three submodules' params (constants here, ibc-go's defaults), as their queries answer them."""
    return {"client_genesis": client.query_client_params(state, None).params,
            "connection_genesis": connection.query_connection_params(state, None).params,
            "channel_genesis": channel.query_channel_params(state, None).params}


def init_chain(state, section: dict, ctx) -> None:
    if not isinstance(section, dict):
        raise GenesisError("ibc genesis must be an object")
    try:
        genesis = json_format.ParseDict(section, genesis_pb2.GenesisState())
    except (json_format.ParseError, TypeError, AttributeError) as error:
        raise GenesisError(f"ibc genesis: {error}") from None
    for name, params in compute_params(state).items():
        given = getattr(genesis, name)
        if given.HasField("params") and given.params != params:
            raise GenesisError(f"ibc genesis: {name}.params must be {json_format.MessageToDict(params)}, the "
                               "params this chain runs with")
    clients, connections, channels = genesis.client_genesis, genesis.connection_genesis, genesis.channel_genesis
    for entry in clients.clients_metadata:
        for metadata in entry.client_metadata:
            key = compute_client_key(entry.client_id, metadata.key)
            try:
                kind, owner, *_ = decode_key(key)
            except ValueError:
                kind, owner = None, None
            if kind not in METADATA or owner != entry.client_id:
                raise GenesisError(f"ibc genesis: {key!r} is no metadata of client {entry.client_id}")
            state.set(key, metadata.value)
    for entry in clients.clients:
        state.set(state_key(CLIENT_STATE, entry.client_id), entry.client_state.SerializeToString())
    for entry in clients.clients_consensus:
        for consensus in entry.consensus_states:
            state.set(state_key(CONSENSUS_STATE, entry.client_id, client.compute_height(consensus.height)),
                      consensus.consensus_state.SerializeToString())
    for entry in connections.connections:
        state.set(state_key(CONNECTION, entry.id), connection_pb2.ConnectionEnd(
            client_id=entry.client_id, versions=entry.versions, state=entry.state, counterparty=entry.counterparty,
            delay_period=entry.delay_period).SerializeToString())
    for entry in connections.client_connection_paths:
        state.set(state_key(CLIENT_CONNECTIONS, entry.client_id),
                  connection_pb2.ClientPaths(paths=entry.paths).SerializeToString())
    for entry in channels.channels:
        state.set(state_key(CHANNEL, entry.port_id, entry.channel_id), channel_pb2.Channel(
            state=entry.state, ordering=entry.ordering, counterparty=entry.counterparty,
            connection_hops=entry.connection_hops, version=entry.version,
            upgrade_sequence=entry.upgrade_sequence).SerializeToString())
    for kind, field in PACKET_STATES.items():
        for entry in getattr(channels, field):
            state.set(state_key(kind, entry.port_id, entry.channel_id, entry.sequence), entry.data)
    for kind, field in PACKET_SEQUENCES.items():
        for entry in getattr(channels, field):
            set_uint64(state, state_key(kind, entry.port_id, entry.channel_id), entry.sequence)
    for kind, (section_name, field) in NEXT_IDENTIFIERS.items():
        sequence = getattr(getattr(genesis, section_name), field)
        if sequence:
            set_uint64(state, state_key(kind), sequence)


@public(STORE)
def export_genesis(state) -> dict:
    """ibc-go's GenesisState of IBC core (client_genesis, connection_genesis, channel_genesis)."""
    genesis = genesis_pb2.GenesisState()
    clients, connections, channels = genesis.client_genesis, genesis.connection_genesis, genesis.channel_genesis
    consensus, metadata = {}, {}
    for key, value in state.iterate():
        kind, *parts = decode_key(key)
        if kind == CLIENT_STATE:
            clients.clients.add(client_id=parts[0], client_state=Any.FromString(value))
        elif kind == CONSENSUS_STATE:
            consensus.setdefault(parts[0], []).append(client_pb2.ConsensusStateWithHeight(
                height=client.encode_height(parts[1]), consensus_state=Any.FromString(value)))
        elif kind in METADATA:
            metadata.setdefault(parts[0], []).append(client_pb2.GenesisMetadata(
                key=key[len(compute_client_key(parts[0], b"")):], value=value))
        elif kind == CLIENT_CONNECTIONS:
            connections.client_connection_paths.add(client_id=parts[0],
                                                    paths=connection_pb2.ClientPaths.FromString(value).paths)
        elif kind == CONNECTION:
            connections.connections.append(connection.compute_identified(
                key, connection_pb2.ConnectionEnd.FromString(value)))
        elif kind == CHANNEL:
            channels.channels.append(channel.compute_identified(key, channel_pb2.Channel.FromString(value)))
        elif kind in PACKET_STATES:
            getattr(channels, PACKET_STATES[kind]).add(port_id=parts[0], channel_id=parts[1], sequence=parts[2],
                                                       data=value)
        elif kind in PACKET_SEQUENCES:
            getattr(channels, PACKET_SEQUENCES[kind]).add(port_id=parts[0], channel_id=parts[1],
                                                          sequence=int.from_bytes(value, "big"))
        else:
            section_name, field = NEXT_IDENTIFIERS[kind]
            setattr(getattr(genesis, section_name), field, int.from_bytes(value, "big"))
    for client_id, states in consensus.items():
        clients.clients_consensus.add(client_id=client_id, consensus_states=states)
    for client_id, records in metadata.items():
        clients.clients_metadata.add(client_id=client_id, client_metadata=records)
    for name, params in compute_params(state).items():
        getattr(genesis, name).params.CopyFrom(params)
    return encode_json(genesis, all_fields=True)
