"""02-client with the 07-tendermint light client (ibc-go v8): clients of other chains, their consensus
states by height, and the proofs of the counterparty's state that connections and channels verify.

A client is created from a client state and its first consensus state, then moved on by headers the
light client (ibc.lightclient) verifies; misbehaviour (two conflicting headers, or a header that
conflicts with a stored consensus state) freezes it. Verification of a counterparty's path runs
through `verify_membership` / `verify_non_membership`: the proof is an ibc-go MerkleProof checked
with the client state's proof specs against the root of the consensus state at the proof height.
"""

from google.protobuf.any_pb2 import Any

from chain.errors import InvalidRequestError, TxError
from chain.proto.ibc.core.client.v1 import client_pb2, query_pb2, tx_pb2
from chain.proto.ibc.core.commitment.v1 import commitment_pb2
from chain.proto.ibc.lightclients.tendermint.v1 import tendermint_pb2
from chain.sdktypes import compute_nanoseconds, compute_timestamp
from chain.state import MessageHandler, get_page, public
from chain.tx import compute_type_url, pack_any, parse_address
from chain.validators import get_historical_info
from ibc import host, ics23, lightclient
from ibc.host import Height
from ibc.state import (
    CLIENT_STATE, CONSENSUS_HEIGHTS, CONSENSUS_STATE, NEXT_CLIENT_SEQUENCE, PROCESSED_HEIGHT, PROCESSED_TIME, STORE,
    decode_height_index, decode_key, get_uint64, process_next_identifier, set_uint64, state_key,
)

CODESPACE = "client"
COMMITMENT_CODESPACE = "commitment"
CLIENT_TYPE = "07-tendermint"
ALLOWED_CLIENTS = ("06-solomachine", "07-tendermint", "09-localhost")  # ibc-go's default client params
CLIENT_STATE_URL = compute_type_url(tendermint_pb2.ClientState)
CONSENSUS_STATE_URL = compute_type_url(tendermint_pb2.ConsensusState)
HEADER_URL = compute_type_url(tendermint_pb2.Header)
MISBEHAVIOUR_URL = compute_type_url(tendermint_pb2.Misbehaviour)
HASH_SIZE = 32


class ClientError(TxError):
    codespace = CODESPACE


class InvalidClientError(ClientError):
    code = 3


class ClientNotFoundError(ClientError):
    code = 4


class ConsensusStateNotFoundError(ClientError):
    code = 7


class InvalidConsensusError(ClientError):
    code = 8


class InvalidClientTypeError(ClientError):
    code = 10


class InvalidHeaderError(ClientError):
    code = 12


class InvalidHeightError(ClientError):
    code = 26


class ClientNotActiveError(ClientError):
    code = 29


class InvalidProofError(TxError):
    codespace = COMMITMENT_CODESPACE
    code = 2


class InvalidMerkleProofError(InvalidProofError):
    code = 4


# --- the records, as the light client reads them ---------------------------------------------------

def compute_height(height: client_pb2.Height) -> Height:
    return Height(height.revision_number, height.revision_height)


def encode_height(height: Height) -> client_pb2.Height:
    return client_pb2.Height(revision_number=height.revision_number, revision_height=height.revision_height)


def compute_client_state(client_state: tendermint_pb2.ClientState) -> lightclient.ClientState:
    return lightclient.ClientState(
        chain_id=client_state.chain_id, trusting_period=compute_nanoseconds(client_state.trusting_period),
        unbonding_period=compute_nanoseconds(client_state.unbonding_period),
        max_clock_drift=compute_nanoseconds(client_state.max_clock_drift),
        latest_height=compute_height(client_state.latest_height),
        trust_level=lightclient.Fraction(client_state.trust_level.numerator, client_state.trust_level.denominator),
        frozen_height=compute_height(client_state.frozen_height))


def compute_consensus_state(consensus_state: tendermint_pb2.ConsensusState) -> lightclient.ConsensusState:
    return lightclient.ConsensusState(timestamp=compute_nanoseconds(consensus_state.timestamp),
                                      root=consensus_state.root.hash,
                                      next_validators_hash=consensus_state.next_validators_hash)


def encode_consensus_state(consensus_state: lightclient.ConsensusState) -> tendermint_pb2.ConsensusState:
    return tendermint_pb2.ConsensusState(timestamp=compute_timestamp(consensus_state.timestamp),
                                         root={"hash": consensus_state.root},
                                         next_validators_hash=consensus_state.next_validators_hash)


def compute_header(header: tendermint_pb2.Header) -> lightclient.Header:
    return lightclient.Header(signed_header=header.signed_header, validator_set=header.validator_set,
                              trusted_height=compute_height(header.trusted_height),
                              trusted_validators=header.trusted_validators)


def unpack(any_message, type_url: str, message_class, error: type, what: str):
    if any_message.type_url != type_url:
        raise error(f"{what} of type {any_message.type_url!r} is not supported: expected {type_url}")
    try:
        return message_class.FromString(any_message.value)
    except Exception:
        raise error(f"{what} is not a valid {message_class.DESCRIPTOR.full_name}") from None


# --- store ---------------------------------------------------------------------------------------

def decode_any(raw: bytes, message_class):
    """A record stored as an Any (client and consensus states, as ibc-go stores them)."""
    return message_class.FromString(Any.FromString(raw).value)


@public(STORE)
def get_client_state(state, client_id: str) -> tendermint_pb2.ClientState | None:
    raw = state.get(state_key(CLIENT_STATE, client_id))
    return None if raw is None else decode_any(raw, tendermint_pb2.ClientState)


def set_client_state(state, client_id: str, client_state: tendermint_pb2.ClientState) -> None:
    state.set(state_key(CLIENT_STATE, client_id), pack_any(client_state).SerializeToString())


@public(STORE)
def get_consensus_state(state, client_id: str, height: Height) -> tendermint_pb2.ConsensusState | None:
    raw = state.get(state_key(CONSENSUS_STATE, client_id, height))
    return None if raw is None else decode_any(raw, tendermint_pb2.ConsensusState)


def set_consensus_state(state, ctx, client_id: str, height: Height, consensus_state: tendermint_pb2.ConsensusState) -> None:
    """The consensus state, when and at which of our heights it was stored (for connection delays), and
    its entry in the height-ordered index (whose value, as in ibc-go, is the state's key in the client's
    part of the store)."""
    state.set(state_key(CONSENSUS_STATE, client_id, height), pack_any(consensus_state).SerializeToString())
    set_uint64(state, state_key(PROCESSED_TIME, client_id, height), ctx.time_ns)
    state.set(state_key(PROCESSED_HEIGHT, client_id, height), str(get_self_height(ctx)).encode())
    state.set(state_key(CONSENSUS_HEIGHTS, client_id, height), host.client_consensus_state_path(height).encode())


def delete_consensus_state(state, client_id: str, height: Height) -> None:
    for kind in (CONSENSUS_STATE, PROCESSED_TIME, PROCESSED_HEIGHT, CONSENSUS_HEIGHTS):
        state.delete(state_key(kind, client_id, height))


def iterate_consensus_heights(state, client_id: str, reverse: bool = False, start: Height | None = None):
    """The heights of a client's consensus states in order (from `start`, inclusive, when given)."""
    prefix = state_key(CONSENSUS_HEIGHTS, client_id)
    low = state_key(CONSENSUS_HEIGHTS, client_id, start) if start and not reverse else prefix
    high = state_key(CONSENSUS_HEIGHTS, client_id, start) + b"\x00" if start and reverse else prefix + b"\xff" * 17
    for key, _ in state.iterate(low, high, reverse=reverse):
        yield decode_height_index(key)


def get_neighbours(state, client_id: str, height: Height) -> dict[Height, lightclient.ConsensusState]:
    """The consensus states just below and just above `height` (what misbehaviour by time is judged on)."""
    found = {}
    for reverse in (True, False):
        for other in iterate_consensus_heights(state, client_id, reverse=reverse, start=height):
            if other != height:
                found[other] = compute_consensus_state(get_consensus_state(state, client_id, other))
                break
    return found


def process_prune_oldest(state, client_id: str, client_state: lightclient.ClientState, now: int) -> None:
    """ibc-go prunes a client's oldest consensus state once it has expired, one per update."""
    for height in iterate_consensus_heights(state, client_id):
        oldest = get_consensus_state(state, client_id, height)
        if lightclient.is_expired(client_state, compute_nanoseconds(oldest.timestamp), now) and \
                height != client_state.latest_height:
            delete_consensus_state(state, client_id, height)
        return


# --- this chain's own heights ----------------------------------------------------------------------

def get_self_height(ctx) -> Height:
    """This chain's height as IBC counts it: the revision of its chain id, the block height."""
    return Height(lightclient.get_revision_number(ctx.chain_id), ctx.height)


# --- status ----------------------------------------------------------------------------------------

@public(STORE)
def get_status(state, ctx, client_id: str) -> str:
    client_state = get_client_state(state, client_id)
    if client_state is None:
        return "Unknown"
    light = compute_client_state(client_state)
    latest = get_consensus_state(state, client_id, light.latest_height)
    return lightclient.get_client_status(light, latest and compute_consensus_state(latest), ctx.time_ns)


def get_existing_client_state(state, client_id: str) -> tendermint_pb2.ClientState:
    client_state = get_client_state(state, client_id)
    if client_state is None:
        raise ClientNotFoundError(f"light client not found: client {client_id!r}")
    return client_state


@public(STORE)
def check_active(state, ctx, client_id: str) -> tendermint_pb2.ClientState:
    client_state = get_existing_client_state(state, client_id)
    status = get_status(state, ctx, client_id)
    if status != lightclient.STATUS_ACTIVE:
        raise ClientNotActiveError(f"client ({client_id}) status is {status}: client state is not active")
    return client_state


@public(STORE)
def get_latest_height(state, client_id: str) -> Height:
    return compute_height(get_existing_client_state(state, client_id).latest_height)


@public(STORE)
def get_timestamp_at_height(state, client_id: str, height: Height) -> int:
    consensus_state = get_consensus_state(state, client_id, height)
    if consensus_state is None:
        raise ConsensusStateNotFoundError(f"consensus state not found: client {client_id!r} at height {height}")
    return compute_nanoseconds(consensus_state.timestamp)


# --- verification of the counterparty's state -------------------------------------------------------

def get_verification_root(state, ctx, client_id: str, height: Height, delay_ns: int, delay_blocks: int):
    """The client state and the root its proofs at `height` verify against, once the delay has passed."""
    client_state = check_active(state, ctx, client_id)
    if compute_height(client_state.latest_height) < height:
        raise InvalidHeightError(f"client state height < proof height ({client_state.latest_height.revision_number}-"
                                 f"{client_state.latest_height.revision_height} < {height}), please ensure the client "
                                 "has been updated")
    consensus_state = get_consensus_state(state, client_id, height)
    if consensus_state is None:
        raise ConsensusStateNotFoundError(f"please ensure the proof was constructed against a height that exists "
                                          f"on the client: consensus state not found for height {height}")
    processed_time = get_uint64(state, state_key(PROCESSED_TIME, client_id, height)) or 0
    if ctx.time_ns < processed_time + delay_ns:
        raise InvalidProofError(f"cannot verify packet until time: {processed_time + delay_ns}, "
                                f"current time: {ctx.time_ns}: delay period has not passed")
    processed = state.get(state_key(PROCESSED_HEIGHT, client_id, height)) or b"0-0"
    processed_height = int(processed.decode().rsplit("-", 1)[1])
    if delay_blocks and ctx.height < processed_height + delay_blocks:
        raise InvalidProofError(f"cannot verify packet until height: {processed_height + delay_blocks}, "
                                f"current height: {ctx.height}: delay period has not passed")
    return client_state, consensus_state.root.hash


def decode_merkle_proof(proof: bytes) -> commitment_pb2.MerkleProof:
    if not proof:
        raise InvalidProofError("proof cannot be empty")
    try:
        merkle_proof = commitment_pb2.MerkleProof.FromString(proof)
    except Exception:
        raise InvalidMerkleProofError("failed to unmarshal proof into ICS 23 commitment merkle proof") from None
    if not merkle_proof.proofs:
        raise InvalidMerkleProofError("proof cannot be empty")
    return merkle_proof


@public(STORE)
def verify_membership(state, ctx, client_id: str, height: Height, delay: tuple[int, int], proof: bytes,
                      prefix: bytes, path: str, value: bytes) -> None:
    """The counterparty's store holds `value` at `prefix`/`path` at `height` (delay: ns and blocks)."""
    client_state, root = get_verification_root(state, ctx, client_id, height, *delay)
    merkle_proof = decode_merkle_proof(proof)
    try:
        ics23.verify_chained_membership(list(client_state.proof_specs), root, list(merkle_proof.proofs),
                                        [prefix, path.encode()], value)
    except ics23.Ics23Error as error:
        raise InvalidProofError(f"failed to verify membership proof at path {path!r} at height {height}: "
                                f"{error}") from None


@public(STORE)
def verify_non_membership(state, ctx, client_id: str, height: Height, delay: tuple[int, int], proof: bytes,
                          prefix: bytes, path: str) -> None:
    client_state, root = get_verification_root(state, ctx, client_id, height, *delay)
    merkle_proof = decode_merkle_proof(proof)
    try:
        ics23.verify_chained_non_membership(list(client_state.proof_specs), root, list(merkle_proof.proofs),
                                            [prefix, path.encode()])
    except ics23.Ics23Error as error:
        raise InvalidProofError(f"failed to verify non-membership proof at path {path!r} at height {height}: "
                                f"{error}") from None


# --- messages ------------------------------------------------------------------------------------

def validate_client_state(client_state: tendermint_pb2.ClientState) -> None:
    """07-tendermint ClientState.Validate: the light client's rules, plus proof specs and upgrade path."""
    lightclient.validate_client_state(compute_client_state(client_state))
    if not client_state.proof_specs:
        raise InvalidClientError("proof specs cannot be nil for tm client")
    if any(not key.strip() for key in client_state.upgrade_path):
        raise InvalidClientError("key in upgrade path cannot be empty")


def validate_consensus_state(consensus_state: tendermint_pb2.ConsensusState) -> None:
    if not consensus_state.root.hash:
        raise InvalidConsensusError("root cannot be empty")
    if len(consensus_state.next_validators_hash) != HASH_SIZE:
        raise InvalidConsensusError(f"next validators hash is invalid: expected size to be {HASH_SIZE} bytes, "
                                    f"got {len(consensus_state.next_validators_hash)} bytes")
    if compute_nanoseconds(consensus_state.timestamp) <= 0:
        raise InvalidConsensusError("timestamp must be a positive Unix time")


def emit_message(ctx, module: str) -> None:
    ctx.emit("message", ("module", module))


def signer_create_client(msg: tx_pb2.MsgCreateClient) -> bytes:
    return parse_address(msg.signer)


def check_stateless_create_client(msg: tx_pb2.MsgCreateClient) -> None:
    client_state = unpack(msg.client_state, CLIENT_STATE_URL, tendermint_pb2.ClientState, InvalidClientError,
                          "client state")
    consensus_state = unpack(msg.consensus_state, CONSENSUS_STATE_URL, tendermint_pb2.ConsensusState,
                             InvalidConsensusError, "consensus state")
    validate_client_state(client_state)
    validate_consensus_state(consensus_state)


def check_and_execute_create_client(state, ctx, msg: tx_pb2.MsgCreateClient) -> tx_pb2.MsgCreateClientResponse:
    if CLIENT_TYPE not in ALLOWED_CLIENTS:
        raise InvalidClientTypeError(f"client state type {CLIENT_TYPE} is not registered in the allowlist")
    client_state = tendermint_pb2.ClientState.FromString(msg.client_state.value)
    consensus_state = tendermint_pb2.ConsensusState.FromString(msg.consensus_state.value)
    client_id = host.format_client_identifier(CLIENT_TYPE, process_next_identifier(state, NEXT_CLIENT_SEQUENCE))
    height = compute_height(client_state.latest_height)
    set_client_state(state, client_id, client_state)
    set_consensus_state(state, ctx, client_id, height, consensus_state)
    status = get_status(state, ctx, client_id)
    if status != lightclient.STATUS_ACTIVE:
        raise ClientNotActiveError(f"cannot create client ({client_id}) with status {status}")
    ctx.emit("create_client", ("client_id", client_id), ("client_type", CLIENT_TYPE),
             ("consensus_height", str(height)))
    emit_message(ctx, "ibc_client")
    return tx_pb2.MsgCreateClientResponse()


def compute_client_message(any_message):
    if any_message.type_url == MISBEHAVIOUR_URL:
        misbehaviour = unpack(any_message, MISBEHAVIOUR_URL, tendermint_pb2.Misbehaviour, InvalidHeaderError,
                              "client message")
        return lightclient.Misbehaviour(misbehaviour.client_id, compute_header(misbehaviour.header_1),
                                        compute_header(misbehaviour.header_2))
    return compute_header(unpack(any_message, HEADER_URL, tendermint_pb2.Header, InvalidHeaderError, "client message"))


def get_relevant_consensus_states(state, client_id: str, message) -> dict[Height, lightclient.ConsensusState]:
    """What the light client reads of the stored consensus states for this message: the trusted ones, the
    one at the header's height and its neighbours."""
    headers = (message.header_1, message.header_2) if isinstance(message, lightclient.Misbehaviour) else (message,)
    found = {}
    for header in headers:
        heights = [header.trusted_height, lightclient.get_header_height(header)]
        for height in heights:
            stored = get_consensus_state(state, client_id, height)
            if stored is not None:
                found[height] = compute_consensus_state(stored)
        if not isinstance(message, lightclient.Misbehaviour):
            found.update(get_neighbours(state, client_id, lightclient.get_header_height(header)))
    return found


def process_client_message(state, ctx, client_id: str, any_message, event: str) -> None:
    client_state = get_existing_client_state(state, client_id)
    message = compute_client_message(any_message)
    light = compute_client_state(client_state)
    update = lightclient.update_client(light, get_relevant_consensus_states(state, client_id, message), message,
                                       ctx.time_ns)
    if update.client_state.frozen_height != light.frozen_height:
        client_state.frozen_height.CopyFrom(encode_height(update.client_state.frozen_height))
        set_client_state(state, client_id, client_state)
        ctx.emit("client_misbehaviour", ("client_id", client_id), ("client_type", CLIENT_TYPE))
        emit_message(ctx, "ibc_client")
        return
    if update.height is None:  # misbehaviour that was none: a no-op, as in ibc-go
        return
    if update.consensus_state is not None:
        client_state.latest_height.CopyFrom(encode_height(update.client_state.latest_height))
        set_client_state(state, client_id, client_state)
        set_consensus_state(state, ctx, client_id, update.height, encode_consensus_state(update.consensus_state))
        process_prune_oldest(state, client_id, update.client_state, ctx.time_ns)
    ctx.emit(event, ("client_id", client_id), ("client_type", CLIENT_TYPE), ("consensus_height", str(update.height)),
             ("consensus_heights", str(update.height)), ("header", any_message.SerializeToString().hex()))
    emit_message(ctx, "ibc_client")


def signer_update_client(msg) -> bytes:
    return parse_address(msg.signer)


def check_stateless_update_client(msg: tx_pb2.MsgUpdateClient) -> None:
    host.validate_client_identifier(msg.client_id)
    compute_client_message(msg.client_message)


def check_and_execute_update_client(state, ctx, msg: tx_pb2.MsgUpdateClient) -> tx_pb2.MsgUpdateClientResponse:
    process_client_message(state, ctx, msg.client_id, msg.client_message, "update_client")
    return tx_pb2.MsgUpdateClientResponse()


def check_stateless_submit_misbehaviour(msg: tx_pb2.MsgSubmitMisbehaviour) -> None:
    host.validate_client_identifier(msg.client_id)
    unpack(msg.misbehaviour, MISBEHAVIOUR_URL, tendermint_pb2.Misbehaviour, InvalidHeaderError, "misbehaviour")


def check_and_execute_submit_misbehaviour(state, ctx, msg: tx_pb2.MsgSubmitMisbehaviour
                                          ) -> tx_pb2.MsgSubmitMisbehaviourResponse:
    process_client_message(state, ctx, msg.client_id, msg.misbehaviour, "client_misbehaviour")
    return tx_pb2.MsgSubmitMisbehaviourResponse()


MESSAGES = {
    compute_type_url(tx_pb2.MsgCreateClient): MessageHandler(
        tx_pb2.MsgCreateClient, signer_create_client, check_stateless_create_client, check_and_execute_create_client),
    compute_type_url(tx_pb2.MsgUpdateClient): MessageHandler(
        tx_pb2.MsgUpdateClient, signer_update_client, check_stateless_update_client, check_and_execute_update_client),
    compute_type_url(tx_pb2.MsgSubmitMisbehaviour): MessageHandler(
        tx_pb2.MsgSubmitMisbehaviour, signer_update_client, check_stateless_submit_misbehaviour,
        check_and_execute_submit_misbehaviour),
}


# --- queries -------------------------------------------------------------------------------------

def compute_query_height(state) -> client_pb2.Height:
    """The height a query answered at (the chain's revision is that of its id, which queries do not know:
    ibc-go reports it from the context the same way)."""
    return client_pb2.Height(revision_number=1, revision_height=state.height)


def query_client_state(state, request: query_pb2.QueryClientStateRequest) -> query_pb2.QueryClientStateResponse:
    host.validate_client_identifier(request.client_id)
    client_state = get_existing_client_state(state, request.client_id)
    return query_pb2.QueryClientStateResponse(client_state=pack_any(client_state))


def query_client_states(state, request: query_pb2.QueryClientStatesRequest) -> query_pb2.QueryClientStatesResponse:
    rows, next_key = get_page(state, b"clients/", request.pagination,
                              keep_key=lambda key: key.endswith(b"/clientState"))
    return query_pb2.QueryClientStatesResponse(
        client_states=[client_pb2.IdentifiedClientState(client_id=decode_key(key)[1], client_state=Any.FromString(raw))
                       for key, raw in rows],
        pagination={"next_key": next_key})


def query_consensus_state(state, request: query_pb2.QueryConsensusStateRequest
                          ) -> query_pb2.QueryConsensusStateResponse:
    host.validate_client_identifier(request.client_id)
    if request.latest_height:
        height = get_latest_height(state, request.client_id)
    elif request.revision_height == 0:
        raise InvalidRequestError("consensus state height cannot be 0")
    else:
        height = Height(request.revision_number, request.revision_height)
    consensus_state = get_consensus_state(state, request.client_id, height)
    if consensus_state is None:
        raise ConsensusStateNotFoundError(f"client-id: {request.client_id}, height: {height}: consensus state not found")
    return query_pb2.QueryConsensusStateResponse(consensus_state=pack_any(consensus_state))


def query_consensus_states(state, request: query_pb2.QueryConsensusStatesRequest
                           ) -> query_pb2.QueryConsensusStatesResponse:
    host.validate_client_identifier(request.client_id)
    prefix = state_key(CONSENSUS_HEIGHTS, request.client_id)
    rows, next_key = get_page(state, prefix, request.pagination)
    return query_pb2.QueryConsensusStatesResponse(
        consensus_states=[client_pb2.ConsensusStateWithHeight(
            height=encode_height(decode_height_index(key)), consensus_state=Any.FromString(state.get(raw)))
            for key, raw in rows],
        pagination={"next_key": next_key})


def query_consensus_state_heights(state, request: query_pb2.QueryConsensusStateHeightsRequest
                                  ) -> query_pb2.QueryConsensusStateHeightsResponse:
    host.validate_client_identifier(request.client_id)
    rows, next_key = get_page(state, state_key(CONSENSUS_HEIGHTS, request.client_id), request.pagination)
    return query_pb2.QueryConsensusStateHeightsResponse(
        consensus_state_heights=[encode_height(decode_height_index(key)) for key, _ in rows],
        pagination={"next_key": next_key})


def get_query_time(state, client_id: str, light: lightclient.ClientState) -> int:
    """"Now" for a status query, which has no block: the queried block's time from staking's historical info
    (ibc-go judges at the query's block time); where none is kept (a chain whose validators staking does not
    elect), the time the latest consensus state was stored, a lower bound that still shows a frozen client
    and one expired already then."""
    info = get_historical_info(state, state.height)
    if info is not None:
        return compute_nanoseconds(info.header.time)
    return get_uint64(state, state_key(PROCESSED_TIME, client_id, light.latest_height)) or 0


def query_client_status(state, request: query_pb2.QueryClientStatusRequest) -> query_pb2.QueryClientStatusResponse:
    host.validate_client_identifier(request.client_id)
    client_state = get_existing_client_state(state, request.client_id)
    light = compute_client_state(client_state)
    latest = get_consensus_state(state, request.client_id, light.latest_height)
    return query_pb2.QueryClientStatusResponse(status=lightclient.get_client_status(
        light, latest and compute_consensus_state(latest), get_query_time(state, request.client_id, light)))


def query_client_params(state, request: query_pb2.QueryClientParamsRequest) -> query_pb2.QueryClientParamsResponse:
    return query_pb2.QueryClientParamsResponse(params={"allowed_clients": ALLOWED_CLIENTS})


QUERIES = {
    "/ibc.core.client.v1.Query/ClientState": (query_pb2.QueryClientStateRequest, query_client_state),
    "/ibc.core.client.v1.Query/ClientStates": (query_pb2.QueryClientStatesRequest, query_client_states),
    "/ibc.core.client.v1.Query/ConsensusState": (query_pb2.QueryConsensusStateRequest, query_consensus_state),
    "/ibc.core.client.v1.Query/ConsensusStates": (query_pb2.QueryConsensusStatesRequest, query_consensus_states),
    "/ibc.core.client.v1.Query/ConsensusStateHeights": (
        query_pb2.QueryConsensusStateHeightsRequest, query_consensus_state_heights),
    "/ibc.core.client.v1.Query/ClientStatus": (query_pb2.QueryClientStatusRequest, query_client_status),
    "/ibc.core.client.v1.Query/ClientParams": (query_pb2.QueryClientParamsRequest, query_client_params),
}
