"""03-connection (ibc-go v8.8): the four-step handshake between a client here and its counterpart on the
other chain, and the proofs of the counterparty's state that a connection verifies for its channels.

Since ibc-go v8.5 the handshake no longer checks the counterparty's client of this chain (its client
and consensus state proofs are ignored), so each step proves one thing: the counterparty's connection
end in the state that step expects. Packet proofs wait for the connection's delay period.
"""

from chain.errors import TxError
from chain.proto.ibc.core.client.v1 import client_pb2
from chain.proto.ibc.core.connection.v1 import connection_pb2, query_pb2, tx_pb2
from chain.state import MessageHandler, get_message, get_page, public, set_message
from chain.tx import compute_type_url, pack_any, parse_address
from ibc import client, host
from ibc.host import Height
from ibc.state import (
    CLIENT_CONNECTIONS, COMMITMENT_PREFIX, CONNECTION, NEXT_CONNECTION_SEQUENCE, STORE, decode_key,
    process_next_identifier, state_key,
)

CODESPACE = "connection"
VERSION_IDENTIFIER = "1"
FEATURES = ("ORDER_ORDERED", "ORDER_UNORDERED")
MAX_EXPECTED_TIME_PER_BLOCK_NS = 30 * 10**9  # ibc-go's default connection param
INIT, TRYOPEN, OPEN = connection_pb2.STATE_INIT, connection_pb2.STATE_TRYOPEN, connection_pb2.STATE_OPEN


class ConnectionError(TxError):
    codespace = CODESPACE


class ConnectionNotFoundError(ConnectionError):
    code = 3


class ClientPathsNotFoundError(ConnectionError):
    code = 4


class InvalidConnectionStateError(ConnectionError):
    code = 6


class InvalidCounterpartyError(ConnectionError):
    code = 7


class InvalidConnectionError(ConnectionError):
    code = 8


class InvalidVersionError(ConnectionError):
    code = 9


class VersionNegotiationFailedError(ConnectionError):
    code = 10


def compute_supported_versions() -> list[connection_pb2.Version]:
    return [connection_pb2.Version(identifier=VERSION_IDENTIFIER, features=FEATURES)]


def is_supported_version(supported: list[connection_pb2.Version], version: connection_pb2.Version) -> bool:
    """The version's identifier is one of `supported`'s and its features a subset of that one's."""
    for candidate in supported:
        if candidate.identifier == version.identifier:
            return set(version.features) <= set(candidate.features)
    return False


def validate_version(version: connection_pb2.Version) -> None:
    if not version.identifier.strip():
        raise InvalidVersionError("version identifier cannot be blank")
    if any(not feature.strip() for feature in version.features):
        raise InvalidVersionError("feature cannot be blank")


def compute_picked_version(counterparty_versions) -> connection_pb2.Version:
    """ibc-go PickVersion: the first of our versions the counterparty also offers, with the features both have."""
    for supported in compute_supported_versions():
        for offered in counterparty_versions:
            if offered.identifier == supported.identifier:
                features = [f for f in supported.features if f in offered.features]
                if features:
                    return connection_pb2.Version(identifier=supported.identifier, features=features)
    raise VersionNegotiationFailedError(
        f"failed to find a matching counterparty version {list(counterparty_versions)} from the supported version list")


def is_supported_ordering(version: connection_pb2.Version, ordering: str) -> bool:
    return ordering in version.features


# --- store ---------------------------------------------------------------------------------------

@public(STORE)
def get_connection(state, connection_id: str) -> connection_pb2.ConnectionEnd | None:
    return get_message(state, connection_pb2.ConnectionEnd, state_key(CONNECTION, connection_id))


def get_existing_connection(state, connection_id: str) -> connection_pb2.ConnectionEnd:
    connection = get_connection(state, connection_id)
    if connection is None:
        raise ConnectionNotFoundError(f"connection not found: {connection_id}")
    return connection


def process_add_client_path(state, client_id: str, connection_id: str) -> None:
    key = state_key(CLIENT_CONNECTIONS, client_id)
    paths = get_message(state, connection_pb2.ClientPaths, key) or connection_pb2.ClientPaths()
    paths.paths.append(connection_id)
    set_message(state, key, paths)


def compute_prefix() -> dict:
    return {"key_prefix": COMMITMENT_PREFIX}


def compute_delay(connection: connection_pb2.ConnectionEnd) -> tuple[int, int]:
    """The delay period in ns, and in blocks at the expected time per block (rounded up), as ibc-go."""
    blocks = -(-connection.delay_period // MAX_EXPECTED_TIME_PER_BLOCK_NS)
    return connection.delay_period, blocks


# --- proofs of the counterparty's state, for the handshake and for channels ----------------------------

@public(STORE)
def verify_membership(state, ctx, connection: connection_pb2.ConnectionEnd, height: Height, proof: bytes, path: str,
                      value: bytes, delayed: bool = True) -> None:
    delay = compute_delay(connection) if delayed else (0, 0)
    client.verify_membership(state, ctx, connection.client_id, height, delay, proof,
                             connection.counterparty.prefix.key_prefix, path, value)


@public(STORE)
def verify_non_membership(state, ctx, connection: connection_pb2.ConnectionEnd, height: Height, proof: bytes,
                          path: str) -> None:
    client.verify_non_membership(state, ctx, connection.client_id, height, compute_delay(connection), proof,
                                 connection.counterparty.prefix.key_prefix, path)


def verify_connection_state(state, ctx, connection, height: Height, proof: bytes, connection_id: str,
                            expected: connection_pb2.ConnectionEnd) -> None:
    verify_membership(state, ctx, connection, height, proof, host.connection_path(connection_id),
                      expected.SerializeToString(), delayed=False)


def emit_connection_event(ctx, kind: str, connection_id: str, connection: connection_pb2.ConnectionEnd) -> None:
    ctx.emit(kind, ("connection_id", connection_id), ("client_id", connection.client_id),
             ("counterparty_client_id", connection.counterparty.client_id),
             ("counterparty_connection_id", connection.counterparty.connection_id))
    ctx.emit("message", ("module", "ibc_connection"))


def check_proof_height(height: client_pb2.Height, proof: bytes) -> None:
    if not proof:
        raise client.InvalidProofError("cannot submit an empty proof")
    if height.revision_height == 0:
        raise client.InvalidHeightError("proof height must be non-zero")


def check_counterparty(counterparty: connection_pb2.Counterparty, with_connection: bool) -> None:
    if counterparty.connection_id and not with_connection:
        raise InvalidCounterpartyError("counterparty connection identifier must be empty")
    if with_connection:
        host.validate_connection_identifier(counterparty.connection_id)
    host.validate_client_identifier(counterparty.client_id)
    if not counterparty.prefix.key_prefix:
        raise InvalidCounterpartyError("counterparty prefix cannot be empty")


# --- messages ------------------------------------------------------------------------------------

def signer_of(msg) -> bytes:
    return parse_address(msg.signer)


def check_stateless_open_init(msg: tx_pb2.MsgConnectionOpenInit) -> None:
    host.validate_client_identifier(msg.client_id)
    check_counterparty(msg.counterparty, with_connection=False)
    if msg.HasField("version"):
        validate_version(msg.version)


def check_and_execute_open_init(state, ctx, msg: tx_pb2.MsgConnectionOpenInit) -> tx_pb2.MsgConnectionOpenInitResponse:
    versions = compute_supported_versions()
    if msg.HasField("version"):
        if not is_supported_version(versions, msg.version):
            raise InvalidVersionError(f"version {msg.version} is not supported")
        versions = [msg.version]
    client.check_active(state, ctx, msg.client_id)
    connection_id = host.format_connection_identifier(process_next_identifier(state, NEXT_CONNECTION_SEQUENCE))
    connection = connection_pb2.ConnectionEnd(client_id=msg.client_id, versions=versions, state=INIT,
                                              counterparty=msg.counterparty, delay_period=msg.delay_period)
    set_message(state, state_key(CONNECTION, connection_id), connection)
    process_add_client_path(state, msg.client_id, connection_id)
    emit_connection_event(ctx, "connection_open_init", connection_id, connection)
    return tx_pb2.MsgConnectionOpenInitResponse()


def check_stateless_open_try(msg: tx_pb2.MsgConnectionOpenTry) -> None:
    host.validate_client_identifier(msg.client_id)
    check_counterparty(msg.counterparty, with_connection=True)
    if not msg.counterparty_versions:
        raise InvalidVersionError("empty counterparty versions")
    for version in msg.counterparty_versions:
        validate_version(version)
    check_proof_height(msg.proof_height, msg.proof_init)


def check_and_execute_open_try(state, ctx, msg: tx_pb2.MsgConnectionOpenTry) -> tx_pb2.MsgConnectionOpenTryResponse:
    connection_id = host.format_connection_identifier(process_next_identifier(state, NEXT_CONNECTION_SEQUENCE))
    expected = connection_pb2.ConnectionEnd(
        client_id=msg.counterparty.client_id, versions=msg.counterparty_versions, state=INIT,
        counterparty={"client_id": msg.client_id, "prefix": compute_prefix()}, delay_period=msg.delay_period)
    version = compute_picked_version(msg.counterparty_versions)
    connection = connection_pb2.ConnectionEnd(client_id=msg.client_id, versions=[version], state=TRYOPEN,
                                              counterparty=msg.counterparty, delay_period=msg.delay_period)
    verify_connection_state(state, ctx, connection, client.compute_height(msg.proof_height), msg.proof_init,
                            msg.counterparty.connection_id, expected)
    set_message(state, state_key(CONNECTION, connection_id), connection)
    process_add_client_path(state, msg.client_id, connection_id)
    emit_connection_event(ctx, "connection_open_try", connection_id, connection)
    return tx_pb2.MsgConnectionOpenTryResponse()


def check_stateless_open_ack(msg: tx_pb2.MsgConnectionOpenAck) -> None:
    host.validate_connection_identifier(msg.connection_id)
    host.validate_connection_identifier(msg.counterparty_connection_id)
    validate_version(msg.version)
    check_proof_height(msg.proof_height, msg.proof_try)


def check_and_execute_open_ack(state, ctx, msg: tx_pb2.MsgConnectionOpenAck) -> tx_pb2.MsgConnectionOpenAckResponse:
    connection = get_existing_connection(state, msg.connection_id)
    if connection.state != INIT:
        raise InvalidConnectionStateError(
            f"connection state is not INIT (got {connection_pb2.State.Name(connection.state)})")
    if not is_supported_version(list(connection.versions), msg.version):
        raise InvalidVersionError(f"the counterparty selected version {msg.version} is not supported by versions "
                                  f"selected on INIT {list(connection.versions)}")
    expected = connection_pb2.ConnectionEnd(
        client_id=connection.counterparty.client_id, versions=[msg.version], state=TRYOPEN,
        counterparty={"client_id": connection.client_id, "connection_id": msg.connection_id, "prefix": compute_prefix()},
        delay_period=connection.delay_period)
    verify_connection_state(state, ctx, connection, client.compute_height(msg.proof_height), msg.proof_try,
                            msg.counterparty_connection_id, expected)
    connection.state = OPEN
    del connection.versions[:]
    connection.versions.append(msg.version)
    connection.counterparty.connection_id = msg.counterparty_connection_id
    set_message(state, state_key(CONNECTION, msg.connection_id), connection)
    emit_connection_event(ctx, "connection_open_ack", msg.connection_id, connection)
    return tx_pb2.MsgConnectionOpenAckResponse()


def check_stateless_open_confirm(msg: tx_pb2.MsgConnectionOpenConfirm) -> None:
    host.validate_connection_identifier(msg.connection_id)
    check_proof_height(msg.proof_height, msg.proof_ack)


def check_and_execute_open_confirm(state, ctx, msg: tx_pb2.MsgConnectionOpenConfirm
                                   ) -> tx_pb2.MsgConnectionOpenConfirmResponse:
    connection = get_existing_connection(state, msg.connection_id)
    if connection.state != TRYOPEN:
        raise InvalidConnectionStateError(
            f"connection state is not TRYOPEN (got {connection_pb2.State.Name(connection.state)})")
    expected = connection_pb2.ConnectionEnd(
        client_id=connection.counterparty.client_id, versions=connection.versions, state=OPEN,
        counterparty={"client_id": connection.client_id, "connection_id": msg.connection_id, "prefix": compute_prefix()},
        delay_period=connection.delay_period)
    verify_connection_state(state, ctx, connection, client.compute_height(msg.proof_height), msg.proof_ack,
                            connection.counterparty.connection_id, expected)
    connection.state = OPEN
    set_message(state, state_key(CONNECTION, msg.connection_id), connection)
    emit_connection_event(ctx, "connection_open_confirm", msg.connection_id, connection)
    return tx_pb2.MsgConnectionOpenConfirmResponse()


def make_handler(message_class, check_stateless, check_and_execute) -> tuple[str, MessageHandler]:
    return compute_type_url(message_class), MessageHandler(message_class, signer_of, check_stateless, check_and_execute)


MESSAGES = dict((
    make_handler(tx_pb2.MsgConnectionOpenInit, check_stateless_open_init, check_and_execute_open_init),
    make_handler(tx_pb2.MsgConnectionOpenTry, check_stateless_open_try, check_and_execute_open_try),
    make_handler(tx_pb2.MsgConnectionOpenAck, check_stateless_open_ack, check_and_execute_open_ack),
    make_handler(tx_pb2.MsgConnectionOpenConfirm, check_stateless_open_confirm, check_and_execute_open_confirm),
))


# --- queries -------------------------------------------------------------------------------------

def compute_identified(key: bytes, end: connection_pb2.ConnectionEnd) -> connection_pb2.IdentifiedConnection:
    return connection_pb2.IdentifiedConnection(id=decode_key(key)[1], client_id=end.client_id, versions=end.versions,
                                               state=end.state, counterparty=end.counterparty,
                                               delay_period=end.delay_period)


def query_connection(state, request: query_pb2.QueryConnectionRequest) -> query_pb2.QueryConnectionResponse:
    host.validate_connection_identifier(request.connection_id)
    return query_pb2.QueryConnectionResponse(connection=get_existing_connection(state, request.connection_id))


def query_connections(state, request: query_pb2.QueryConnectionsRequest) -> query_pb2.QueryConnectionsResponse:
    rows, next_key = get_page(state, b"connections/", request.pagination)
    connections = [compute_identified(key, connection_pb2.ConnectionEnd.FromString(raw)) for key, raw in rows]
    return query_pb2.QueryConnectionsResponse(connections=connections, pagination={"next_key": next_key},
                                              height=client.compute_query_height(state))


def query_client_connections(state, request: query_pb2.QueryClientConnectionsRequest
                             ) -> query_pb2.QueryClientConnectionsResponse:
    host.validate_client_identifier(request.client_id)
    paths = get_message(state, connection_pb2.ClientPaths, state_key(CLIENT_CONNECTIONS, request.client_id))
    if paths is None:
        raise ClientPathsNotFoundError(f"light client connection paths not found: {request.client_id}")
    return query_pb2.QueryClientConnectionsResponse(connection_paths=paths.paths)


def query_connection_client_state(state, request: query_pb2.QueryConnectionClientStateRequest
                                  ) -> query_pb2.QueryConnectionClientStateResponse:
    host.validate_connection_identifier(request.connection_id)
    connection = get_existing_connection(state, request.connection_id)
    client_state = client.get_existing_client_state(state, connection.client_id)
    return query_pb2.QueryConnectionClientStateResponse(identified_client_state={
        "client_id": connection.client_id, "client_state": pack_any(client_state)})


def query_connection_consensus_state(state, request: query_pb2.QueryConnectionConsensusStateRequest
                                     ) -> query_pb2.QueryConnectionConsensusStateResponse:
    host.validate_connection_identifier(request.connection_id)
    connection = get_existing_connection(state, request.connection_id)
    height = Height(request.revision_number, request.revision_height)
    consensus_state = client.get_consensus_state(state, connection.client_id, height)
    if consensus_state is None:
        raise client.ConsensusStateNotFoundError(f"client-id: {connection.client_id}, height: {height}: "
                                                 "consensus state not found")
    return query_pb2.QueryConnectionConsensusStateResponse(consensus_state=pack_any(consensus_state),
                                                           client_id=connection.client_id)


def query_connection_params(state, request: query_pb2.QueryConnectionParamsRequest
                            ) -> query_pb2.QueryConnectionParamsResponse:
    return query_pb2.QueryConnectionParamsResponse(params={
        "max_expected_time_per_block": MAX_EXPECTED_TIME_PER_BLOCK_NS})


QUERIES = {
    "/ibc.core.connection.v1.Query/Connection": (query_pb2.QueryConnectionRequest, query_connection),
    "/ibc.core.connection.v1.Query/Connections": (query_pb2.QueryConnectionsRequest, query_connections),
    "/ibc.core.connection.v1.Query/ClientConnections": (
        query_pb2.QueryClientConnectionsRequest, query_client_connections),
    "/ibc.core.connection.v1.Query/ConnectionClientState": (
        query_pb2.QueryConnectionClientStateRequest, query_connection_client_state),
    "/ibc.core.connection.v1.Query/ConnectionConsensusState": (
        query_pb2.QueryConnectionConsensusStateRequest, query_connection_consensus_state),
    "/ibc.core.connection.v1.Query/ConnectionParams": (
        query_pb2.QueryConnectionParamsRequest, query_connection_params),
}
