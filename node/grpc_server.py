"""The node's gRPC server, where a Cosmos SDK node has it (127.0.0.1:9090), with server reflection.

Every module query the app answers over ABCI is served at the same method path by one generic handler:
the raw request bytes go to App.query (chain.app.QUERIES lists them) at the height of the
`x-cosmos-block-height` request header, and the answer's initial metadata carries the height answered.
The SDK's tx, CometBFT and node services are answered from the node (node.grpc_backend). App errors
become gRPC statuses as the SDK's do: NotFound, InvalidArgument for bad input, Unknown otherwise.
"""

import functools
import importlib.metadata
import logging
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError
from grpc_reflection.v1alpha import reflection

from chain import app as registry
from chain import crypto
from chain.coins import DENOM
from chain.errors import SDK, InvalidRequestError
from chain.proto.cosmos.auth.v1beta1 import query_pb2 as auth_query_pb2
from chain.proto.cosmos.base.abci.v1beta1 import abci_pb2 as sdk_abci_pb2
from chain.proto.cosmos.base.node.v1beta1 import query_pb2 as node_pb2
from chain.proto.cosmos.base.query.v1beta1 import pagination_pb2
from chain.proto.cosmos.base.tendermint.v1beta1 import query_pb2 as cmt_pb2, types_pb2 as cmt_types_pb2
from chain.proto.cosmos.crypto.ed25519 import keys_pb2 as ed25519_pb2
from chain.proto.cosmos.tx.v1beta1 import service_pb2, tx_pb2
from chain.proto.tendermint.abci import types_pb2 as abci_pb2
from chain.tx import compute_tx_hash
from node import client, grpc_backend
from node.cometbft_json import INT64_MAX

log = logging.getLogger("maxwell.grpc")

DISABLED_ADDRESSES = ("", "off")
HEIGHT_HEADER = "x-cosmos-block-height"
MAX_RECEIVE_BYTES = 10 * 1024 * 1024
MAX_SEND_BYTES = 2**31 - 1
WORKERS = 8
MAX_CONCURRENT_RPCS = 64
SHUTDOWN_GRACE_S = 2.0
SERVER_OPTIONS = (
    ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
    ("grpc.max_send_message_length", MAX_SEND_BYTES),
    ("grpc.so_reuseport", 0),
)
ADDRESS_PATTERN = re.compile(r"(\[[0-9a-fA-F:]+\]|[^:/\[\]]+):(\d{1,5})")

TX_URL = "/cosmos.tx.v1beta1.Tx"
ED25519_PUBKEY_URL = "/cosmos.crypto.ed25519.PubKey"
VALCONS_PREFIX = crypto.BECH32_PREFIX + "valcons"
DEFAULT_LIMIT = 100
MAX_TXS_PER_PAGE = 100
NOT_FOUND_CODE = 38
INVALID_ARGUMENT_CODES = frozenset({2, 7, 8, 10, 18})
# CometBFT's mempool refusals, answered as TxResponses with the SDK's codes (client.CheckCometError)
MEMPOOL_REFUSAL_CODES = (("tx already exists in cache", 19), ("mempool is full", 20), ("tx too large", 21))
PRUNING_INTERVAL = "1"
NODE_ERROR_STATUSES = (
    (grpc_backend.InvalidTxQuery, grpc.StatusCode.INVALID_ARGUMENT),
    (grpc_backend.BroadcastRefused, grpc.StatusCode.INVALID_ARGUMENT),
    (client.NodeUnreachable, grpc.StatusCode.UNAVAILABLE),
    (grpc_backend.BackendError, grpc.StatusCode.UNKNOWN),
    (client.ClientError, grpc.StatusCode.UNKNOWN),
)


class GrpcError(Exception):
    status = grpc.StatusCode.UNKNOWN


class InvalidArgument(GrpcError):
    status = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(GrpcError):
    status = grpc.StatusCode.NOT_FOUND


class InvalidHeightHeader(InvalidArgument):
    pass


class MalformedRequest(InvalidArgument):
    pass


class HeightOutOfRange(InvalidArgument):
    pass


class UnsupportedBroadcastMode(InvalidArgument):
    pass


class EmptyField(InvalidArgument):
    pass


class TxNotFound(NotFound):
    pass


class ListenError(Exception):
    pass


class InvalidListenAddress(ListenError):
    pass


def compute_app_error(response: abci_pb2.ResponseQuery) -> GrpcError:
    """The gRPC status of an app error, with the app's log as its message. A module's own error (a query
    handler only reads, so it fails on its request: an unknown work kind, a malformed reference) is
    InvalidArgument, as the SDK's modules answer bad input."""
    if (response.codespace == SDK and response.code == NOT_FOUND_CODE) or "not found" in response.log:
        return NotFound(response.log)
    if response.codespace != SDK or response.code in INVALID_ARGUMENT_CODES:
        return InvalidArgument(response.log)
    return GrpcError(response.log)


def parse_height(metadata) -> int:
    """The x-cosmos-block-height of a request's metadata, 0 (latest) without one."""
    values = [value for key, value in metadata or () if key == HEIGHT_HEADER]
    if not values:
        return 0
    if len(values) > 1 or not re.fullmatch(r"-?[0-9]{1,19}", values[0]):
        raise InvalidHeightHeader(f"invalid height header {HEIGHT_HEADER!r}: {values!r}")
    height = int(values[0])
    if height < 0:
        raise InvalidHeightHeader(f"height < 0; can't be negative: {height}")
    if height > INT64_MAX:
        raise InvalidHeightHeader(f"invalid height header {HEIGHT_HEADER!r}: {height} is out of the int64 range")
    return height


def decode_request(request_class, data: bytes):
    try:
        return request_class.FromString(data)
    except DecodeError:
        raise MalformedRequest(f"invalid request: not a {request_class.DESCRIPTOR.full_name}") from None


def decode_tx(raw: bytes) -> tx_pb2.Tx:
    """The tx as the SDK shows it; a tx that is no cosmos Tx (the heat tx a block opens with) shows empty."""
    try:
        return tx_pb2.Tx.FromString(raw)
    except DecodeError:
        return tx_pb2.Tx()


def compute_tx_any(raw: bytes) -> any_pb2.Any:
    """The tx packed as TxResponse.tx has it; a tx that is no cosmos Tx shows empty there too, not as bytes
    that claim to be a Tx and do not decode as one."""
    try:
        tx_pb2.Tx.FromString(raw)
    except DecodeError:
        raw = b""
    return any_pb2.Any(type_url=TX_URL, value=raw)


def format_timestamp(timestamp) -> str:
    """Go's time.RFC3339, as TxResponse.timestamp has it."""
    return timestamp.ToDatetime().strftime("%Y-%m-%dT%H:%M:%SZ")


def compute_window(pagination: pagination_pb2.PageRequest, total: int) -> tuple[int, int]:
    """(offset, limit) of a PageRequest over `total` items (no key-based paging)."""
    limit = pagination.limit or DEFAULT_LIMIT
    return min(pagination.offset, total), limit


# --- application version -------------------------------------------------------------------------

def compute_git_commit() -> str:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                                capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


@functools.cache
def compute_version_info() -> cmt_pb2.VersionInfo:
    """maxwell's version, commit and pinned runtime dependencies as installed (read once per process)."""
    deps = []
    for requirement in importlib.metadata.requires(registry.APP_NAME) or ():
        if ";" in requirement:
            continue
        name = re.split(r"[=<>!~\[ ]", requirement, maxsplit=1)[0]
        deps.append(cmt_pb2.Module(path=name, version=importlib.metadata.version(name)))
    return cmt_pb2.VersionInfo(
        name=registry.APP_NAME, app_name=registry.APP_NAME, version=importlib.metadata.version(registry.APP_NAME),
        git_commit=compute_git_commit(), go_version=f"python {sys.version.split()[0]}", build_deps=deps)


# --- the services ----------------------------------------------------------------------------------

def compute_tx_response(backend, tx) -> sdk_abci_pb2.TxResponse:
    result = tx.result.result
    header = backend.get_header(tx.height)
    return sdk_abci_pb2.TxResponse(
        height=tx.height, txhash=tx.hash.hex().upper(), codespace=result.codespace, code=result.code,
        data=result.data.hex().upper(), raw_log=result.log, info=result.info, gas_wanted=result.gas_wanted,
        gas_used=result.gas_used, tx=compute_tx_any(tx.result.tx),
        timestamp=format_timestamp(header.time) if header else "", events=result.events)


def get_tx(backend, request: service_pb2.GetTxRequest) -> service_pb2.GetTxResponse:
    if not request.hash:
        raise EmptyField("tx hash cannot be empty")
    try:
        tx_hash = bytes.fromhex(request.hash)
    except ValueError:
        raise MalformedRequest(f"tx hash {request.hash!r} is not hex") from None
    tx = backend.get_tx(tx_hash)
    if tx is None:
        raise TxNotFound(f"tx not found: {request.hash}")
    return service_pb2.GetTxResponse(tx=decode_tx(tx.result.tx), tx_response=compute_tx_response(backend, tx))


def get_txs_event(backend, request: service_pb2.GetTxsEventRequest) -> service_pb2.GetTxsEventResponse:
    query = request.query or " AND ".join(request.events)
    if not query:
        raise EmptyField("query cannot be empty")
    limit = min(request.limit or request.pagination.limit or DEFAULT_LIMIT, MAX_TXS_PER_PAGE)
    page = request.page or request.pagination.offset // limit + 1
    order = grpc_backend.ORDER_DESC if request.order_by == service_pb2.ORDER_BY_DESC else "asc"
    txs, total = backend.search_txs(query, page, limit, order)
    return service_pb2.GetTxsEventResponse(txs=[decode_tx(tx.result.tx) for tx in txs],
                                           tx_responses=[compute_tx_response(backend, tx) for tx in txs], total=total)


def broadcast_tx(backend, request: service_pb2.BroadcastTxRequest) -> service_pb2.BroadcastTxResponse:
    if not request.tx_bytes:
        raise EmptyField("invalid empty tx")
    txhash = compute_tx_hash(request.tx_bytes).hex().upper()
    if request.mode == service_pb2.BROADCAST_MODE_ASYNC:
        backend.broadcast_tx_async(request.tx_bytes)
        return service_pb2.BroadcastTxResponse(tx_response=sdk_abci_pb2.TxResponse(txhash=txhash))
    if request.mode != service_pb2.BROADCAST_MODE_SYNC:
        raise UnsupportedBroadcastMode(f"unsupported broadcast mode {service_pb2.BroadcastMode.Name(request.mode)}; "
                                       "supported: BROADCAST_MODE_SYNC, BROADCAST_MODE_ASYNC")
    try:
        check = backend.broadcast_tx(request.tx_bytes)
    except grpc_backend.BroadcastRefused as error:
        code = next((code for text, code in MEMPOOL_REFUSAL_CODES if text in str(error)), None)
        if code is None:
            raise
        return service_pb2.BroadcastTxResponse(tx_response=sdk_abci_pb2.TxResponse(
            txhash=txhash, code=code, codespace=SDK, raw_log=str(error)))
    return service_pb2.BroadcastTxResponse(tx_response=sdk_abci_pb2.TxResponse(
        txhash=txhash, code=check.code, codespace=check.codespace, raw_log=check.log, data=check.data.hex().upper()))


def get_block_with_txs(backend, request: service_pb2.GetBlockWithTxsRequest) -> service_pb2.GetBlockWithTxsResponse:
    block_id, block = get_block(backend, request.height)
    txs = list(block.data.txs)
    offset, limit = compute_window(request.pagination, len(txs))
    return service_pb2.GetBlockWithTxsResponse(
        txs=[decode_tx(tx) for tx in txs[offset:offset + limit]], block_id=block_id, block=block,
        pagination=pagination_pb2.PageResponse(total=len(txs)))


def decode_tx_bytes(backend, request: service_pb2.TxDecodeRequest) -> service_pb2.TxDecodeResponse:
    if not request.tx_bytes:
        raise EmptyField("invalid empty tx bytes")
    return service_pb2.TxDecodeResponse(tx=decode_request(tx_pb2.Tx, request.tx_bytes))


def encode_tx(backend, request: service_pb2.TxEncodeRequest) -> service_pb2.TxEncodeResponse:
    if not request.HasField("tx"):
        raise EmptyField("invalid empty tx")
    return service_pb2.TxEncodeResponse(tx_bytes=request.tx.SerializeToString())


def get_block(backend, height: int):
    """(BlockID, Block) at a height the node has."""
    latest = backend.get_latest_height()
    if height < 1:
        raise HeightOutOfRange(f"height must be greater than 0, but got {height}")
    if height > latest:
        raise HeightOutOfRange(f"requested block height {height} is bigger than the chain length {latest}")
    found = backend.get_block(height)
    if found is None:
        raise HeightOutOfRange(f"block {height} is not available, lowest height is {backend.get_base_height()}")
    return found


def compute_sdk_block(block) -> cmt_types_pb2.Block:
    """The block with its proposer's address in bech32, as the SDK's sdk_block."""
    header = type(block.header)()
    header.CopyFrom(block.header)
    header.ClearField("proposer_address")
    sdk_header = cmt_types_pb2.Header.FromString(header.SerializeToString())
    sdk_header.proposer_address = crypto.encode_address(block.header.proposer_address, VALCONS_PREFIX)
    return cmt_types_pb2.Block(header=sdk_header, data=block.data, evidence=block.evidence,
                               last_commit=block.last_commit)


def get_node_info(backend, request: cmt_pb2.GetNodeInfoRequest) -> cmt_pb2.GetNodeInfoResponse:
    return cmt_pb2.GetNodeInfoResponse(default_node_info=backend.get_node_info(),
                                       application_version=compute_version_info())


def get_syncing(backend, request: cmt_pb2.GetSyncingRequest) -> cmt_pb2.GetSyncingResponse:
    return cmt_pb2.GetSyncingResponse(syncing=backend.is_syncing())


def get_latest_block(backend, request: cmt_pb2.GetLatestBlockRequest) -> cmt_pb2.GetLatestBlockResponse:
    block_id, block = get_block(backend, backend.get_latest_height())
    return cmt_pb2.GetLatestBlockResponse(block_id=block_id, block=block, sdk_block=compute_sdk_block(block))


def get_block_by_height(backend, request: cmt_pb2.GetBlockByHeightRequest) -> cmt_pb2.GetBlockByHeightResponse:
    block_id, block = get_block(backend, request.height)
    return cmt_pb2.GetBlockByHeightResponse(block_id=block_id, block=block, sdk_block=compute_sdk_block(block))


def compute_validator_set(backend, height: int, pagination: pagination_pb2.PageRequest):
    validators = backend.get_validators(height)
    offset, limit = compute_window(pagination, len(validators))
    shown = [cmt_pb2.Validator(
        address=crypto.encode_address(v.address, VALCONS_PREFIX),
        pub_key=any_pb2.Any(type_url=ED25519_PUBKEY_URL,
                            value=ed25519_pb2.PubKey(key=v.pub_key.ed25519).SerializeToString()),
        voting_power=v.voting_power, proposer_priority=v.proposer_priority) for v in validators[offset:offset + limit]]
    return dict(block_height=height, validators=shown, pagination=pagination_pb2.PageResponse(total=len(validators)))


def get_latest_validator_set(backend, request: cmt_pb2.GetLatestValidatorSetRequest):
    return cmt_pb2.GetLatestValidatorSetResponse(
        **compute_validator_set(backend, backend.get_latest_height(), request.pagination))


def get_validator_set_by_height(backend, request: cmt_pb2.GetValidatorSetByHeightRequest):
    get_block(backend, request.height)
    return cmt_pb2.GetValidatorSetByHeightResponse(
        **compute_validator_set(backend, request.height, request.pagination))


def query_abci(backend, request: cmt_pb2.ABCIQueryRequest) -> cmt_pb2.ABCIQueryResponse:
    if not request.path:
        raise EmptyField("empty query path")
    response = backend.query(abci_pb2.RequestQuery(data=request.data, path=request.path, height=request.height,
                                                   prove=request.prove))
    return cmt_pb2.ABCIQueryResponse(
        code=response.code, log=response.log, info=response.info, index=response.index, key=response.key,
        value=response.value, proof_ops=cmt_pb2.ProofOps.FromString(response.proof_ops.SerializeToString()),
        height=response.height, codespace=response.codespace)


def get_config(backend, request: node_pb2.ConfigRequest) -> node_pb2.ConfigResponse:
    """The node's minimum gas price: its own (app.toml) where it is above the chain's, else the chain's."""
    response = backend.query(abci_pb2.RequestQuery(path=registry.QUERY_PATHS[auth_query_pb2.QueryParamsRequest]))
    price = auth_query_pb2.QueryParamsResponse.FromString(response.value).params.min_gas_price
    if backend.minimum_gas_price is not None and backend.minimum_gas_price > Fraction(price):
        price = format(Decimal(backend.minimum_gas_price.numerator) / backend.minimum_gas_price.denominator, "f")
    return node_pb2.ConfigResponse(minimum_gas_price=price + DENOM,
                                   pruning_keep_recent=str(backend.store.keep_recent),
                                   pruning_interval=PRUNING_INTERVAL)


def get_status(backend, request: node_pb2.StatusRequest) -> node_pb2.StatusResponse:
    info = backend.info()
    header = backend.get_header(info.last_block_height)
    return node_pb2.StatusResponse(
        earliest_store_height=backend.store.oldest_height, height=info.last_block_height,
        timestamp=header.time if header else None, app_hash=info.last_block_app_hash,
        validator_hash=header.next_validators_hash if header else b"")


SERVICES = {
    "cosmos.tx.v1beta1.Service": {
        "GetTx": (service_pb2.GetTxRequest, get_tx),
        "BroadcastTx": (service_pb2.BroadcastTxRequest, broadcast_tx),
        "GetTxsEvent": (service_pb2.GetTxsEventRequest, get_txs_event),
        "GetBlockWithTxs": (service_pb2.GetBlockWithTxsRequest, get_block_with_txs),
        "TxDecode": (service_pb2.TxDecodeRequest, decode_tx_bytes),
        "TxEncode": (service_pb2.TxEncodeRequest, encode_tx),
    },
    "cosmos.base.tendermint.v1beta1.Service": {
        "GetNodeInfo": (cmt_pb2.GetNodeInfoRequest, get_node_info),
        "GetSyncing": (cmt_pb2.GetSyncingRequest, get_syncing),
        "GetLatestBlock": (cmt_pb2.GetLatestBlockRequest, get_latest_block),
        "GetBlockByHeight": (cmt_pb2.GetBlockByHeightRequest, get_block_by_height),
        "GetLatestValidatorSet": (cmt_pb2.GetLatestValidatorSetRequest, get_latest_validator_set),
        "GetValidatorSetByHeight": (cmt_pb2.GetValidatorSetByHeightRequest, get_validator_set_by_height),
        "ABCIQuery": (cmt_pb2.ABCIQueryRequest, query_abci),
    },
    "cosmos.base.node.v1beta1.Service": {
        "Config": (node_pb2.ConfigRequest, get_config),
        "Status": (node_pb2.StatusRequest, get_status),
    },
}
APP_QUERY_PATHS = (*registry.QUERIES, registry.SIMULATE_PATH)
NODE_METHODS = {f"/{service}/{method}": route for service, methods in SERVICES.items()
                for method, route in methods.items()}
SERVICE_NAMES = tuple(sorted({path.split("/")[1] for path in (*APP_QUERY_PATHS, *NODE_METHODS)}))


# --- the server -------------------------------------------------------------------------------------

def make_app_query(backend, path: str):
    """A module query (or Simulate): the raw request to App.query, its raw answer back."""
    def answer(data: bytes, height: int) -> tuple[bytes, int]:
        response = backend.query(abci_pb2.RequestQuery(path=path, data=data, height=height))
        if response.code:
            raise compute_app_error(response)
        return response.value, response.height
    return answer


def make_node_method(backend, request_class, function):
    def answer(data: bytes, height: int) -> tuple[bytes, int]:
        response = function(backend, decode_request(request_class, data))
        return response.SerializeToString(), height or backend.store.height
    return answer


class NodeQueries:
    """The app, with the node's services also answered through ABCI Query (abci_query): the SDK registers
    them on its query router, so relayers ask `/cosmos.base.node.v1beta1.Service/Config` and
    `/cosmos.base.tendermint.v1beta1.Service/GetNodeInfo` there (Hermes's health check does)."""

    def __init__(self, app, backend):
        self.app, self.backend = app, backend

    def __getattr__(self, name):
        return getattr(self.app, name)

    def query(self, request: abci_pb2.RequestQuery) -> abci_pb2.ResponseQuery:
        route = NODE_METHODS.get(request.path)
        if route is None:
            return self.app.query(request)
        request_class, function = route
        try:
            value = function(self.backend, decode_request(request_class, request.data)).SerializeToString()
        except ANSWER_ERRORS as error:
            return abci_pb2.ResponseQuery(code=InvalidRequestError.code, codespace=SDK, log=str(error))
        return abci_pb2.ResponseQuery(value=value, height=request.height or self.backend.store.height)


def make_answers(backend) -> dict:
    """Every method path served -> answer(request bytes, height) -> (response bytes, height answered);
    the gRPC server and the REST gateway (node.rest) both answer through these."""
    answers = {path: make_app_query(backend, path) for path in APP_QUERY_PATHS}
    answers.update({path: make_node_method(backend, request_class, function)
                    for path, (request_class, function) in NODE_METHODS.items()})
    return answers


ANSWER_ERRORS = (GrpcError, grpc_backend.BackendError, client.ClientError)


def compute_status(error: Exception) -> grpc.StatusCode:
    """The gRPC status of one of ANSWER_ERRORS."""
    if isinstance(error, GrpcError):
        return error.status
    return next(status for kind, status in NODE_ERROR_STATUSES if isinstance(error, kind))


def make_handler(answer):
    def handle(data: bytes, context: grpc.ServicerContext) -> bytes:
        try:
            value, height = answer(data, parse_height(context.invocation_metadata()))
        except ANSWER_ERRORS as error:
            context.abort(compute_status(error), str(error))
        context.send_initial_metadata(((HEIGHT_HEADER, str(height)),))
        return value
    return grpc.unary_unary_rpc_method_handler(handle)


class Handler(grpc.GenericRpcHandler):
    """Raw bytes in and out, by method path; None (UNIMPLEMENTED) for a method no one serves."""

    def __init__(self, backend):
        self.handlers = {path: make_handler(answer) for path, answer in make_answers(backend).items()}

    def service(self, handler_call_details):
        return self.handlers.get(handler_call_details.method)


def check_address(address: str) -> None:
    """A listen address is host:port, or one of DISABLED_ADDRESSES."""
    match = ADDRESS_PATTERN.fullmatch(address)
    if is_enabled(address) and (match is None or int(match.group(2)) > 65535):
        raise InvalidListenAddress(f"invalid gRPC listen address {address!r} (use host:port, or off)")


def serve(backend, address: str) -> tuple[grpc.Server, int]:
    """Serve `backend` on host:port (port 0 picks a free one); the server and its port."""
    check_address(address)
    server = grpc.server(ThreadPoolExecutor(WORKERS, thread_name_prefix="grpc"), handlers=[Handler(backend)],
                         options=SERVER_OPTIONS, maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS)
    reflection.enable_server_reflection((*SERVICE_NAMES, reflection.SERVICE_NAME), server)
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as error:
        raise ListenError(f"cannot listen for gRPC on {address}: {error}") from None
    server.start()
    log.info("gRPC server listening on %s", address.rsplit(":", 1)[0] + f":{port}")
    return server, port


def is_enabled(address: str) -> bool:
    return address not in DISABLED_ADDRESSES
