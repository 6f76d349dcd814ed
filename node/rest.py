"""The node's REST gateway, where a Cosmos SDK node has its API server (127.0.0.1:1317).

It is the SDK's grpc-gateway (v1, with the gogoproto JSON marshaler the SDK configures): each route
is a gRPC method, answered by the very function that answers it over gRPC (grpc_server.make_answers).
A route's path parameters and query string (GET), or its JSON body (POST), fill the request message;
the `x-cosmos-block-height` header picks the height, and the answer's height comes back in it. The
answer is JSON as the SDK renders it (`compute_json`): proto field names, every field emitted,
64-bit integers as strings, bytes base64, enums by name, `@type` on an Any, `null` for an unset
message or empty bytes (what gogo's jsonpb writes for a nil pointer or slice), and the zero value of an
unset message the SDK's protos declare non-nullable (NON_NULLABLE). A failure is the SDK's
`{"code", "message", "details"}` with the HTTP status grpc-gateway gives its gRPC code; an unknown route
or method is 501 Unimplemented, as there. `/swagger/openapi.json` is an OpenAPI 3 document of ROUTES.

ROUTES is one table here rather than a REST_ROUTES next to each module's QUERIES: the paths are the
`google.api.http` annotations of the SDK's .proto files (the project's copies carry none), an HTTP
concern that the deterministic chain/ does not need; test_rest checks that every query is routed.
"""

import asyncio
import base64
import json
import logging
import re
import threading
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc
from aiohttp import web
from google.protobuf import descriptor, descriptor_pool, json_format, message_factory
from google.protobuf.message import DecodeError

from chain import app as registry
from node import client, faucet as faucet_module, grpc_server, metrics, rpc

log = logging.getLogger("maxwell.rest")
http_log = logging.getLogger("maxwell.rest.http")
http_log.addFilter(rpc._is_server_fault)

OPENAPI_PATH = "/swagger/openapi.json"
METRICS_PATH = "/metrics"
FAUCET_PATH = "/faucet"
DASHBOARD_PATH = "/dashboard"
DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboard"  # static files, shipped in the package
DASHBOARD_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
# The SDK's [api] defaults: rpc-max-body-bytes, rpc-read-timeout, max-open-connections.
MAX_BODY_BYTES = 1_000_000
READ_TIMEOUT_S = 10.0
MAX_OPEN_CONNECTIONS = 1000
WORKERS = 8
SHUTDOWN_TIMEOUT_S = 2.0
HEIGHT_HEADER = grpc_server.HEIGHT_HEADER
METADATA_HEIGHT_HEADER = "Grpc-Metadata-X-Cosmos-Block-Height"  # grpc-gateway's copy of the gRPC header
JSON_TYPE = "application/json"
CORS_ANY = "*"
CORS_METHODS = ("GET", "HEAD", "POST")
CORS_HEADERS = frozenset({"accept", "accept-language", "content-language", "origin", "content-type", HEIGHT_HEADER})
NOT_IMPLEMENTED = "Not Implemented"
REST_OF_PATH = "=**}"  # a {field=**} takes the path up to the template's fixed segments after it, slashes included

# grpc-gateway's runtime.HTTPStatusFromCode
HTTP_STATUS = {
    grpc.StatusCode.CANCELLED: 408, grpc.StatusCode.UNKNOWN: 500, grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504, grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403, grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429, grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409, grpc.StatusCode.OUT_OF_RANGE: 400, grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500, grpc.StatusCode.UNAVAILABLE: 503, grpc.StatusCode.DATA_LOSS: 500,
}

# (HTTP method, path template, gRPC method), in the order of the .proto files, the first match winning
# as in grpc-gateway v1 (so blocks/latest comes before blocks/{height}).
ROUTES = (
    ("GET", "/cosmos/auth/v1beta1/accounts/{address}", "/cosmos.auth.v1beta1.Query/Account"),
    ("GET", "/cosmos/auth/v1beta1/params", "/cosmos.auth.v1beta1.Query/Params"),
    ("GET", "/cosmos/bank/v1beta1/balances/{address}/by_denom", "/cosmos.bank.v1beta1.Query/Balance"),
    ("GET", "/cosmos/bank/v1beta1/balances/{address}", "/cosmos.bank.v1beta1.Query/AllBalances"),
    ("GET", "/cosmos/bank/v1beta1/supply", "/cosmos.bank.v1beta1.Query/TotalSupply"),
    ("GET", "/cosmos/bank/v1beta1/supply/by_denom", "/cosmos.bank.v1beta1.Query/SupplyOf"),
    ("GET", "/cosmos/bank/v1beta1/params", "/cosmos.bank.v1beta1.Query/Params"),
    ("GET", "/cosmos/bank/v1beta1/denoms_metadata/{denom}", "/cosmos.bank.v1beta1.Query/DenomMetadata"),
    ("GET", "/cosmos/staking/v1beta1/validators", "/cosmos.staking.v1beta1.Query/Validators"),
    ("GET", "/cosmos/staking/v1beta1/validators/{validator_addr}", "/cosmos.staking.v1beta1.Query/Validator"),
    ("GET", "/cosmos/staking/v1beta1/validators/{validator_addr}/delegations/{delegator_addr}",
     "/cosmos.staking.v1beta1.Query/Delegation"),
    ("GET", "/cosmos/staking/v1beta1/validators/{validator_addr}/delegations/{delegator_addr}/unbonding_delegation",
     "/cosmos.staking.v1beta1.Query/UnbondingDelegation"),
    ("GET", "/cosmos/staking/v1beta1/delegations/{delegator_addr}",
     "/cosmos.staking.v1beta1.Query/DelegatorDelegations"),
    ("GET", "/cosmos/staking/v1beta1/historical_info/{height}", "/cosmos.staking.v1beta1.Query/HistoricalInfo"),
    ("GET", "/cosmos/staking/v1beta1/pool", "/cosmos.staking.v1beta1.Query/Pool"),
    ("GET", "/cosmos/staking/v1beta1/params", "/cosmos.staking.v1beta1.Query/Params"),
    ("GET", "/cosmos/slashing/v1beta1/params", "/cosmos.slashing.v1beta1.Query/Params"),
    ("GET", "/cosmos/slashing/v1beta1/signing_infos/{cons_address}", "/cosmos.slashing.v1beta1.Query/SigningInfo"),
    ("GET", "/cosmos/slashing/v1beta1/signing_infos", "/cosmos.slashing.v1beta1.Query/SigningInfos"),
    ("POST", "/cosmos/tx/v1beta1/simulate", "/cosmos.tx.v1beta1.Service/Simulate"),
    ("GET", "/cosmos/tx/v1beta1/txs/{hash}", "/cosmos.tx.v1beta1.Service/GetTx"),
    ("POST", "/cosmos/tx/v1beta1/txs", "/cosmos.tx.v1beta1.Service/BroadcastTx"),
    ("GET", "/cosmos/tx/v1beta1/txs", "/cosmos.tx.v1beta1.Service/GetTxsEvent"),
    ("GET", "/cosmos/tx/v1beta1/txs/block/{height}", "/cosmos.tx.v1beta1.Service/GetBlockWithTxs"),
    ("POST", "/cosmos/tx/v1beta1/decode", "/cosmos.tx.v1beta1.Service/TxDecode"),
    ("POST", "/cosmos/tx/v1beta1/encode", "/cosmos.tx.v1beta1.Service/TxEncode"),
    ("GET", "/cosmos/base/tendermint/v1beta1/node_info", "/cosmos.base.tendermint.v1beta1.Service/GetNodeInfo"),
    ("GET", "/cosmos/base/tendermint/v1beta1/syncing", "/cosmos.base.tendermint.v1beta1.Service/GetSyncing"),
    ("GET", "/cosmos/base/tendermint/v1beta1/blocks/latest", "/cosmos.base.tendermint.v1beta1.Service/GetLatestBlock"),
    ("GET", "/cosmos/base/tendermint/v1beta1/blocks/{height}",
     "/cosmos.base.tendermint.v1beta1.Service/GetBlockByHeight"),
    ("GET", "/cosmos/base/tendermint/v1beta1/validatorsets/latest",
     "/cosmos.base.tendermint.v1beta1.Service/GetLatestValidatorSet"),
    ("GET", "/cosmos/base/tendermint/v1beta1/validatorsets/{height}",
     "/cosmos.base.tendermint.v1beta1.Service/GetValidatorSetByHeight"),
    ("GET", "/cosmos/base/tendermint/v1beta1/abci_query", "/cosmos.base.tendermint.v1beta1.Service/ABCIQuery"),
    ("GET", "/cosmos/base/node/v1beta1/config", "/cosmos.base.node.v1beta1.Service/Config"),
    ("GET", "/cosmos/base/node/v1beta1/status", "/cosmos.base.node.v1beta1.Service/Status"),
    ("GET", "/maxwell/market/v1/params", "/maxwell.market.v1.Query/Params"),
    ("GET", "/maxwell/market/v1/providers", "/maxwell.market.v1.Query/Providers"),
    ("GET", "/maxwell/market/v1/providers/{address}", "/maxwell.market.v1.Query/Provider"),
    ("GET", "/maxwell/market/v1/book/{work=**}", "/maxwell.market.v1.Query/Book"),  # inference/<model>
    ("GET", "/maxwell/market/v1/clearing/{work=**}", "/maxwell.market.v1.Query/Clearing"),
    ("GET", "/maxwell/market/v1/processes/{id}", "/maxwell.market.v1.Query/Process"),
    ("GET", "/maxwell/market/v1/assignments/{task_ref=**}", "/maxwell.market.v1.Query/Assignment"),
    ("GET", "/maxwell/inference/v1/models", "/maxwell.inference.v1.Query/Models"),
    ("GET", "/maxwell/inference/v1/models/{name}", "/maxwell.inference.v1.Query/Model"),
    ("GET", "/maxwell/inference/v1/requests/{request_id}", "/maxwell.inference.v1.Query/Request"),
    ("GET", "/maxwell/inference/v1/results/{request_id}", "/maxwell.inference.v1.Query/Result"),
    ("GET", "/ibc/core/client/v1/client_states/{client_id}", "/ibc.core.client.v1.Query/ClientState"),
    ("GET", "/ibc/core/client/v1/client_states", "/ibc.core.client.v1.Query/ClientStates"),
    ("GET", "/ibc/core/client/v1/consensus_states/{client_id}/revision/{revision_number}/height/{revision_height}",
     "/ibc.core.client.v1.Query/ConsensusState"),
    ("GET", "/ibc/core/client/v1/consensus_states/{client_id}", "/ibc.core.client.v1.Query/ConsensusStates"),
    ("GET", "/ibc/core/client/v1/consensus_states/{client_id}/heights",
     "/ibc.core.client.v1.Query/ConsensusStateHeights"),
    ("GET", "/ibc/core/client/v1/client_status/{client_id}", "/ibc.core.client.v1.Query/ClientStatus"),
    ("GET", "/ibc/core/client/v1/params", "/ibc.core.client.v1.Query/ClientParams"),
    ("GET", "/ibc/core/connection/v1/connections/{connection_id}", "/ibc.core.connection.v1.Query/Connection"),
    ("GET", "/ibc/core/connection/v1/connections", "/ibc.core.connection.v1.Query/Connections"),
    ("GET", "/ibc/core/connection/v1/client_connections/{client_id}",
     "/ibc.core.connection.v1.Query/ClientConnections"),
    ("GET", "/ibc/core/connection/v1/connections/{connection_id}/client_state",
     "/ibc.core.connection.v1.Query/ConnectionClientState"),
    ("GET", "/ibc/core/connection/v1/connections/{connection_id}/consensus_state/revision/{revision_number}/height/{revision_height}",
     "/ibc.core.connection.v1.Query/ConnectionConsensusState"),
    ("GET", "/ibc/core/connection/v1/params", "/ibc.core.connection.v1.Query/ConnectionParams"),
    ("GET", "/ibc/core/channel/v1/channels/{channel_id}/ports/{port_id}", "/ibc.core.channel.v1.Query/Channel"),
    ("GET", "/ibc/core/channel/v1/channels", "/ibc.core.channel.v1.Query/Channels"),
    ("GET", "/ibc/core/channel/v1/connections/{connection}/channels", "/ibc.core.channel.v1.Query/ConnectionChannels"),
    ("GET", "/ibc/core/channel/v1/channels/{channel_id}/ports/{port_id}/client_state",
     "/ibc.core.channel.v1.Query/ChannelClientState"),
    ("GET", "/ibc/core/channel/v1/channels/{channel_id}/ports/{port_id}/consensus_state/revision/{revision_number}/height/{revision_height}",
     "/ibc.core.channel.v1.Query/ChannelConsensusState"),
    ("GET", "/ibc/core/channel/v1/channels/{channel_id}/ports/{port_id}/packet_commitments/{sequence}",
     "/ibc.core.channel.v1.Query/PacketCommitment"),
    ("GET", "/ibc/core/channel/v1/channels/{channel_id}/ports/{port_id}/packet_commitments",
     "/ibc.core.channel.v1.Query/PacketCommitments"),
    ("GET", "/ibc/core/channel/v1/channels/{channel_id}/ports/{port_id}/packet_receipts/{sequence}",
     "/ibc.core.channel.v1.Query/PacketReceipt"),
    ("GET", "/ibc/core/channel/v1/channels/{channel_id}/ports/{port_id}/packet_acks/{sequence}",
     "/ibc.core.channel.v1.Query/PacketAcknowledgement"),
    ("GET", "/ibc/core/channel/v1/channels/{channel_id}/ports/{port_id}/packet_acknowledgements",
     "/ibc.core.channel.v1.Query/PacketAcknowledgements"),
    ("GET", "/ibc/core/channel/v1/channels/{channel_id}/ports/{port_id}/packet_commitments/{packet_commitment_sequences}/unreceived_packets",
     "/ibc.core.channel.v1.Query/UnreceivedPackets"),
    ("GET", "/ibc/core/channel/v1/channels/{channel_id}/ports/{port_id}/packet_commitments/{packet_ack_sequences}/unreceived_acks",
     "/ibc.core.channel.v1.Query/UnreceivedAcks"),
    ("GET", "/ibc/core/channel/v1/channels/{channel_id}/ports/{port_id}/next_sequence",
     "/ibc.core.channel.v1.Query/NextSequenceReceive"),
    ("GET", "/ibc/core/channel/v1/channels/{channel_id}/ports/{port_id}/next_sequence_send",
     "/ibc.core.channel.v1.Query/NextSequenceSend"),
    ("GET", "/ibc/core/channel/v1/params", "/ibc.core.channel.v1.Query/ChannelParams"),
    ("GET", "/ibc/apps/transfer/v1/denom_traces", "/ibc.applications.transfer.v1.Query/DenomTraces"),
    ("GET", "/ibc/apps/transfer/v1/denom_traces/{hash=**}", "/ibc.applications.transfer.v1.Query/DenomTrace"),
    ("GET", "/ibc/apps/transfer/v1/params", "/ibc.applications.transfer.v1.Query/Params"),
    ("GET", "/ibc/apps/transfer/v1/denom_hashes/{trace=**}", "/ibc.applications.transfer.v1.Query/DenomHash"),
    ("GET", "/ibc/apps/transfer/v1/channels/{channel_id}/ports/{port_id}/escrow_address",
     "/ibc.applications.transfer.v1.Query/EscrowAddress"),
    ("GET", "/ibc/apps/transfer/v1/denoms/{denom=**}/total_escrow",
     "/ibc.applications.transfer.v1.Query/TotalEscrowForDenom"),
    ("GET", "/ibc/apps/interchain_accounts/controller/v1/owners/{owner}/connections/{connection_id}",
     "/ibc.applications.interchain_accounts.controller.v1.Query/InterchainAccount"),
    ("GET", "/ibc/apps/interchain_accounts/controller/v1/params",
     "/ibc.applications.interchain_accounts.controller.v1.Query/Params"),
    ("GET", "/ibc/apps/interchain_accounts/host/v1/params", "/ibc.applications.interchain_accounts.host.v1.Query/Params"),
)

# The singular message fields the SDK's protos declare (gogoproto.nullable) = false, of the messages the routes
# answer with: gogo decodes one that is absent from the wire as its zero value, which jsonpb writes out in
# full (a zero stdtime Timestamp as year 1, a zero Duration as 0s) where a nullable one is null.
NON_NULLABLE = {
    "cosmos.bank.v1beta1.QueryDenomMetadataResponse": ("metadata",),
    "cosmos.bank.v1beta1.QuerySupplyOfResponse": ("amount",),
    "cosmos.base.tendermint.v1beta1.Block": ("data", "evidence", "header"),
    "cosmos.base.tendermint.v1beta1.Header": ("last_block_id", "time", "version"),
    "cosmos.slashing.v1beta1.Params": ("downtime_jail_duration",),
    "cosmos.slashing.v1beta1.QuerySigningInfoResponse": ("val_signing_info",),
    "cosmos.slashing.v1beta1.ValidatorSigningInfo": ("jailed_until",),
    "cosmos.staking.v1beta1.Commission": ("commission_rates", "update_time"),
    "cosmos.staking.v1beta1.DelegationResponse": ("balance", "delegation"),
    "cosmos.staking.v1beta1.HistoricalInfo": ("header",),
    "cosmos.staking.v1beta1.Params": ("unbonding_time",),
    "cosmos.staking.v1beta1.QueryUnbondingDelegationResponse": ("unbond",),
    "cosmos.staking.v1beta1.QueryValidatorResponse": ("validator",),
    "cosmos.staking.v1beta1.UnbondingDelegationEntry": ("completion_time",),
    "cosmos.staking.v1beta1.Validator": ("commission", "description", "unbonding_time"),
    "tendermint.p2p.DefaultNodeInfo": ("other", "protocol_version"),
    "tendermint.types.Block": ("data", "evidence", "header"),
    "tendermint.types.BlockID": ("part_set_header",),
    "tendermint.types.Commit": ("block_id",),
    "tendermint.types.CommitSig": ("timestamp",),
    "tendermint.types.DuplicateVoteEvidence": ("timestamp",),
    "tendermint.types.Header": ("last_block_id", "time", "version"),
    "tendermint.types.LightClientAttackEvidence": ("timestamp",),
    "tendermint.types.Validator": ("pub_key",),
    "tendermint.types.Vote": ("block_id", "timestamp"),
}
ZERO_VALUES = {"google.protobuf.Timestamp": "0001-01-01T00:00:00Z", "google.protobuf.Duration": "0s"}

F = descriptor.FieldDescriptor
SIGNED_BITS = {F.TYPE_INT32: 32, F.TYPE_SINT32: 32, F.TYPE_SFIXED32: 32,
               F.TYPE_INT64: 64, F.TYPE_SINT64: 64, F.TYPE_SFIXED64: 64}
UNSIGNED_BITS = {F.TYPE_UINT32: 32, F.TYPE_FIXED32: 32, F.TYPE_UINT64: 64, F.TYPE_FIXED64: 64}
GO_TRUE, GO_FALSE = ("1", "t", "T", "TRUE", "true", "True"), ("0", "f", "F", "FALSE", "false", "False")
GO_INT_PATTERN = re.compile(r"[+-]?[0-9]+")
ANY_NAME = "google.protobuf.Any"
ANY_TYPE_KEY = "@type"
WELL_KNOWN_PREFIX = "google.protobuf."


class RestError(Exception):
    def __init__(self, status: grpc.StatusCode, message: str):
        super().__init__(message)
        self.status = status


class UnreadableBody(RestError):
    """The body is too large or too slow: answered, and the connection closed rather than drained."""

    def __init__(self, message: str):
        super().__init__(grpc.StatusCode.INVALID_ARGUMENT, message)


def invalid_argument(message: str) -> RestError:
    return RestError(grpc.StatusCode.INVALID_ARGUMENT, message)


class InvalidRestAddress(grpc_server.ListenError):
    pass


class InvalidCorsOrigins(ValueError):
    pass


# --- routes --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Route:
    method: str
    template: str
    grpc_path: str
    segments: tuple[str, ...]
    request_class: type
    response_class: type

    @property
    def path_fields(self) -> tuple[str, ...]:
        return tuple(segment.strip("{}").split("=")[0] for segment in self.segments if segment.startswith("{"))

    @property
    def has_body(self) -> bool:
        return self.method == "POST"


def get_method_descriptor(grpc_path: str) -> descriptor.MethodDescriptor:
    service, method = grpc_path.strip("/").split("/")
    return descriptor_pool.Default().FindServiceByName(service).methods_by_name[method]


def compute_routes() -> tuple[Route, ...]:
    routes = []
    for method, template, grpc_path in ROUTES:
        found = get_method_descriptor(grpc_path)
        routes.append(Route(method, template, grpc_path, tuple(template.strip("/").split("/")),
                            message_factory.GetMessageClass(found.input_type),
                            message_factory.GetMessageClass(found.output_type)))
    return tuple(routes)


def match_template(segments: tuple[str, ...], parts: list[str]) -> dict[str, str] | None:
    """The path parameters of `parts` (the request path split at /) under a template, None if it does not match."""
    params = {}
    for index, segment in enumerate(segments):
        if segment.endswith(REST_OF_PATH):
            tail = segments[index + 1:]
            end = len(parts) - len(tail)
            if end <= index or any(s != p for s, p in zip(tail, parts[end:])):
                return None
            params[segment[1:-len(REST_OF_PATH)]] = "/".join(parts[index:end])
            return params
        if index >= len(parts):
            return None
        if segment.startswith("{"):
            params[segment[1:-1]] = parts[index]
        elif segment != parts[index]:
            return None
    return params if len(parts) == len(segments) else None


def find_route(routes, method: str, path: str) -> tuple[Route, dict[str, str]]:
    """The first route of `method` matching `path`; grpc-gateway's 501 for a path or method no route has."""
    parts = path[1:].split("/")
    for route in routes:
        if route.method == method:
            params = match_template(route.segments, parts)
            if params is not None:
                return route, params
    raise RestError(grpc.StatusCode.UNIMPLEMENTED, NOT_IMPLEMENTED)


# --- requests: path parameters, the query string (grpc-gateway's PopulateQueryParameters), the body ----

def find_field(message_descriptor, name: str):
    """A field by its proto name or its JSON name, as grpc-gateway finds it; None for none."""
    return message_descriptor.fields_by_name.get(name) or next(
        (field for field in message_descriptor.fields if field.json_name == name), None)


def parse_go_int(text: str, bits: int, signed: bool) -> int:
    """strconv.ParseInt / ParseUint (base 10), with their error texts."""
    name = "ParseInt" if signed else "ParseUint"
    if not GO_INT_PATTERN.fullmatch(text) or (not signed and text[0] in "+-"):
        raise ValueError(f"strconv.{name}: parsing {json.dumps(text)}: invalid syntax")
    value = int(text)
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if not low <= value <= high:
        raise ValueError(f"strconv.{name}: parsing {json.dumps(text)}: value out of range")
    return value


def parse_scalar(field, text: str):
    """A query-string or path value for a scalar field, as grpc-gateway's runtime converts it."""
    kind = field.type
    if kind == F.TYPE_STRING:
        return text
    if kind == F.TYPE_BOOL:
        if text in GO_TRUE or text in GO_FALSE:
            return text in GO_TRUE
        raise ValueError(f"strconv.ParseBool: parsing {json.dumps(text)}: invalid syntax")
    if kind in SIGNED_BITS:
        return parse_go_int(text, SIGNED_BITS[kind], True)
    if kind in UNSIGNED_BITS:
        return parse_go_int(text, UNSIGNED_BITS[kind], False)
    if kind in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"strconv.ParseFloat: parsing {json.dumps(text)}: invalid syntax") from None
    if kind == F.TYPE_BYTES:
        return decode_base64(text)
    if kind == F.TYPE_ENUM:
        value = field.enum_type.values_by_name.get(text)
        if value is not None:
            return value.number
        if not GO_INT_PATTERN.fullmatch(text) or int(text) not in field.enum_type.values_by_number:
            raise ValueError(f"{text} is not valid")
        return int(text)
    raise ValueError(f"field type {field.message_type.full_name} is not supported in query parameters")


def decode_base64(text: str) -> bytes:
    """Standard base64, else URL-safe (grpc-gateway's runtime.Bytes)."""
    for alphabet in (b"+/", b"-_"):
        try:
            return base64.b64decode(text, altchars=alphabet, validate=True)
        except ValueError:
            continue
    raise ValueError(f"illegal base64 data in {json.dumps(text)}")


def set_field_path(message, path: list[str], values: list[str]) -> None:
    """Sets the field at a dotted path (a query parameter's name); an unknown name is ignored."""
    for index, name in enumerate(path):
        field = find_field(message.DESCRIPTOR, name)
        if field is None:
            return
        is_last = index == len(path) - 1
        if field.type == F.TYPE_MESSAGE and not field.is_repeated:
            if is_last:
                raise ValueError(f"field type {field.message_type.full_name} is not supported in query parameters")
            message = getattr(message, field.name)
            continue
        if not is_last:
            raise ValueError(f"unexpected nested field {path[index + 1]} in {'.'.join(path[:index + 1])}")
        if field.is_repeated:
            if field.type == F.TYPE_MESSAGE:
                raise ValueError(f"unsupported field type {field.message_type.full_name}")
            target = getattr(message, field.name)
            del target[:]
            target.extend(parse_scalar(field, value) for value in values)
        else:
            setattr(message, field.name, parse_scalar(field, values[0]))
        return


def process_query_parameters(message, query, path_fields: tuple[str, ...]) -> None:
    for key in dict.fromkeys(query):
        path = key.split(".")
        if path[0] in path_fields:
            continue  # a path parameter is not overridden from the query string
        try:
            set_field_path(message, path, query.getall(key))
        except ValueError as error:
            raise invalid_argument(f"type mismatch, parameter: {key}, error: {error}") from None


def process_path_parameters(message, params: dict[str, str]) -> None:
    """A repeated field in the path is its values separated by commas, as grpc-gateway reads it."""
    for name, value in params.items():
        field = message.DESCRIPTOR.fields_by_name[name]
        try:
            if field.is_repeated:
                target = getattr(message, name)
                del target[:]
                target.extend(parse_scalar(field, part) for part in value.split(","))
                continue
            setattr(message, name, parse_scalar(field, value))
        except ValueError as error:
            raise invalid_argument(f"type mismatch, parameter: {name}, error: {error}") from None


def process_body(message, body: bytes, content_type: str) -> None:
    """A JSON body (whatever its declared type: the SDK's marshaler is registered for every MIME type)."""
    if not body.strip():
        return
    try:
        json_format.ParseDict(rpc.decode_json(body), message)
    except (rpc.InvalidJSON, UnicodeDecodeError) as error:
        raise invalid_argument(f"the body is not JSON ({content_type or 'no content type'}): {error}") from None
    except (json_format.ParseError, ValueError, TypeError, AttributeError, KeyError, IndexError,
            RecursionError) as error:  # ParseDict fails on some malformed input with more than ParseError
        raise invalid_argument(f"the body is no {message.DESCRIPTOR.full_name}: {' '.join(str(error).split())}") \
            from None


def parse_height_header(headers) -> int:
    return grpc_server.parse_height([(HEIGHT_HEADER, value) for value in headers.getall(HEIGHT_HEADER, ())])


# --- responses: proto JSON as the SDK's gateway writes it ------------------------------------------

def compute_json(message) -> dict:
    """The message as gogo's jsonpb (EmitDefaults, OrigName) renders what the gRPC answer decodes to."""
    rendered = json_format.MessageToDict(message, always_print_fields_with_no_presence=True,
                                         preserving_proto_field_name=True)
    fill_nulls(message, rendered)
    return rendered


def unpack_any(message):
    name = message.type_url.rsplit("/", 1)[-1]
    return message_factory.GetMessageClass(descriptor_pool.Default().FindMessageTypeByName(name)).FromString(
        message.value)


def compute_zero_json(message_descriptor):
    return ZERO_VALUES.get(message_descriptor.full_name) or compute_json(
        message_factory.GetMessageClass(message_descriptor)())


def fill_nulls(message, rendered: dict) -> None:
    """Puts in what gogo writes for an unset message (null, or its zero value if non-nullable) and for empty
    bytes (null), which MessageToDict leaves out or writes as ""."""
    full_name = message.DESCRIPTOR.full_name
    if full_name == ANY_NAME:
        inner = unpack_any(message)
        if not inner.DESCRIPTOR.full_name.startswith(WELL_KNOWN_PREFIX):
            fill_nulls(inner, rendered)
        return
    if full_name.startswith(WELL_KNOWN_PREFIX):
        return
    for field in message.DESCRIPTOR.fields:
        value, name = getattr(message, field.name), field.name
        if field.is_repeated:
            if field.type == F.TYPE_MESSAGE:
                for entry, shown in zip(value, rendered[name]):
                    if isinstance(shown, dict):
                        fill_nulls(entry, shown)
        elif field.type == F.TYPE_MESSAGE:
            if message.HasField(name):
                if isinstance(rendered[name], dict):
                    fill_nulls(value, rendered[name])
            elif name in NON_NULLABLE.get(full_name, ()):
                rendered[name] = compute_zero_json(field.message_type)
            elif field.containing_oneof is None:  # gogo leaves an unset oneof out, as MessageToDict does
                rendered[name] = None
        elif field.type == F.TYPE_BYTES and not value and not field.has_presence:
            rendered[name] = None
    ordered = {key: rendered.pop(key) for key in [ANY_TYPE_KEY, *message.DESCRIPTOR.fields_by_name] if key in rendered}
    rendered.update(ordered)  # in the order of the .proto, as gogo writes it


def compute_error_body(status: grpc.StatusCode, message: str) -> dict:
    """google.rpc.Status as grpc-gateway's DefaultHTTPProtoErrorHandler writes it."""
    return {"code": status.value[0], "message": message, "details": []}


def make_json_response(body, status: int = 200, headers=None) -> web.Response:
    return web.Response(body=json.dumps(body, separators=(",", ":")).encode(), status=status,
                        content_type=JSON_TYPE, headers=headers)


def make_error_response(error: RestError) -> web.Response:
    return make_json_response(compute_error_body(error.status, str(error)), HTTP_STATUS[error.status])


# --- CORS (gorilla/handlers' CORS, which the SDK puts around its router when enabled-unsafe-cors) ---

def parse_cors(origins: str) -> frozenset[str]:
    """`off` (or nothing) for no CORS, `*` for any origin, else a comma-separated list of origins."""
    if origins.strip() in grpc_server.DISABLED_ADDRESSES:
        return frozenset()
    allowed = frozenset(origin.strip().rstrip("/") for origin in origins.split(",") if origin.strip())
    for origin in allowed - {CORS_ANY}:
        if not re.fullmatch(r"https?://[^/\s,]+", origin):
            raise InvalidCorsOrigins(f"invalid CORS origin {origin!r} (use *, or origins such as https://app.example)")
    return allowed


def compute_cors_headers(allowed: frozenset[str], origin: str | None) -> dict[str, str]:
    if not allowed or origin is None or not (CORS_ANY in allowed or origin in allowed):
        return {}
    if CORS_ANY in allowed:
        return {"Access-Control-Allow-Origin": CORS_ANY, "Access-Control-Expose-Headers": HEIGHT_HEADER}
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin", "Access-Control-Expose-Headers": HEIGHT_HEADER}


def is_preflight(request: web.BaseRequest) -> bool:
    return request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers


def answer_preflight(allowed: frozenset[str], request: web.BaseRequest) -> web.Response:
    headers = compute_cors_headers(allowed, request.headers.get("Origin"))
    if not headers:
        return web.Response(status=200)
    if request.headers["Access-Control-Request-Method"].upper() not in CORS_METHODS:
        return web.Response(status=405)
    requested = [name.strip() for name in request.headers.get("Access-Control-Request-Headers", "").split(",")
                 if name.strip()]
    if any(name.lower() not in CORS_HEADERS for name in requested):
        return web.Response(status=403)
    headers.pop("Access-Control-Expose-Headers")
    headers["Access-Control-Allow-Methods"] = ", ".join(CORS_METHODS)
    if requested:
        headers["Access-Control-Allow-Headers"] = ", ".join(requested)
    return web.Response(status=200, headers=headers)


# --- OpenAPI -------------------------------------------------------------------------------------

SCALAR_SCHEMAS = {
    F.TYPE_STRING: {"type": "string"}, F.TYPE_BOOL: {"type": "boolean"},
    F.TYPE_DOUBLE: {"type": "number"}, F.TYPE_FLOAT: {"type": "number"},
    F.TYPE_BYTES: {"type": "string", "format": "byte"},
}
WELL_KNOWN_SCHEMAS = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string"},
    ANY_NAME: {"type": "object", "properties": {"@type": {"type": "string"}}, "additionalProperties": True},
}
STATUS_SCHEMA = {"type": "object", "required": ["code", "message", "details"], "properties": {
    "code": {"type": "integer"}, "message": {"type": "string"}, "details": {"type": "array", "items": {}}}}


def compute_integer_schema(field, in_url: bool) -> dict:
    """An integer field: a JSON number if 32-bit, a decimal string if 64-bit (a number in a URL)."""
    signed = field.type in SIGNED_BITS
    bits = SIGNED_BITS.get(field.type) or UNSIGNED_BITS[field.type]
    if bits == 32 or in_url:
        low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        return {"type": "integer", "minimum": low, "maximum": high}
    return {"type": "string", "format": "int64" if signed else "uint64"}


def compute_field_schema(field, schemas: dict, in_url: bool = False) -> dict:
    if field.type == F.TYPE_MESSAGE:
        schema = compute_message_schema(field.message_type, schemas)
    elif field.type == F.TYPE_ENUM:
        schema = {"type": "string", "enum": [value.name for value in field.enum_type.values]}
    elif field.type in SIGNED_BITS or field.type in UNSIGNED_BITS:
        schema = compute_integer_schema(field, in_url)
    else:
        schema = dict(SCALAR_SCHEMAS[field.type])
    if field.is_repeated:
        return {"type": "array", "items": schema}
    if not in_url and field.type in (F.TYPE_MESSAGE, F.TYPE_BYTES):
        return {"nullable": True, "allOf": [schema]} if "$ref" in schema else {**schema, "nullable": True}
    return schema


def compute_message_schema(message_descriptor, schemas: dict) -> dict:
    """A $ref to the message's schema in `schemas`, which it adds (with those of its fields) if missing."""
    name = message_descriptor.full_name
    if name in WELL_KNOWN_SCHEMAS:
        return dict(WELL_KNOWN_SCHEMAS[name])
    if name not in schemas:
        schemas[name] = {}
        schemas[name] = {"type": "object", "properties": {
            field.name: compute_field_schema(field, schemas) for field in message_descriptor.fields}}
    return {"$ref": f"#/components/schemas/{name}"}


def compute_query_parameters(message_descriptor, prefix: str = "", depth: int = 0):
    """(name, field) of each query parameter a request takes: its scalar fields, nested ones by dotted name."""
    for field in message_descriptor.fields:
        name = prefix + field.name
        if field.type == F.TYPE_MESSAGE:
            if not field.is_repeated and not field.message_type.full_name.startswith(WELL_KNOWN_PREFIX) \
                    and depth < 2:
                yield from compute_query_parameters(field.message_type, name + ".", depth + 1)
        else:
            yield name, field


def compute_openapi(routes) -> dict:
    schemas = {"google.rpc.Status": STATUS_SCHEMA}
    paths = {}
    for route in routes:
        fields = route.request_class.DESCRIPTOR.fields_by_name
        parameters = [{"name": name, "in": "path", "required": True,
                       "schema": compute_field_schema(fields[name], schemas, in_url=True)}
                      for name in route.path_fields]
        operation = {
            "operationId": route.grpc_path.strip("/").replace(".", "_").replace("/", "_"),
            "summary": route.grpc_path,
            "parameters": parameters,
            "responses": {
                "200": {"description": "the answer", "content": {JSON_TYPE: {
                    "schema": compute_message_schema(route.response_class.DESCRIPTOR, schemas)}}},
                "default": {"description": "an error", "content": {JSON_TYPE: {
                    "schema": {"$ref": "#/components/schemas/google.rpc.Status"}}}},
            },
        }
        if route.has_body:
            operation["requestBody"] = {"required": True, "content": {JSON_TYPE: {
                "schema": compute_message_schema(route.request_class.DESCRIPTOR, schemas)}}}
        else:
            parameters += [{"name": name, "in": "query", "required": False,
                            "schema": compute_field_schema(field, schemas, in_url=True)}
                           for name, field in compute_query_parameters(route.request_class.DESCRIPTOR)
                           if name.split(".")[0] not in route.path_fields]
        parameters.append({"name": HEIGHT_HEADER, "in": "header", "required": False,
                           "schema": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}})
        paths.setdefault(route.template.replace(REST_OF_PATH, "}"), {})[route.method.lower()] = operation
    return {"openapi": "3.0.3", "info": {"title": f"{registry.APP_NAME} REST", "version": registry.SOFTWARE_VERSION},
            "paths": paths, "components": {"schemas": schemas}}


# --- the dashboard ------------------------------------------------------------------------------

def compute_dashboard_files(rpc_url: str) -> dict[str, tuple[bytes, str]]:
    """The dashboard's static files by name, read once, and config.json: where the page finds the node's
    CometBFT websocket (the page reads everything else from this gateway)."""
    files = {path.name: (path.read_bytes(), DASHBOARD_TYPES[path.suffix])
             for path in sorted(DASHBOARD_DIR.iterdir()) if path.suffix in DASHBOARD_TYPES}
    config = {"rpc": rpc_url, "websocket": "ws" + rpc_url.removeprefix("http").rstrip("/") + "/websocket"}
    files["config.json"] = (json.dumps(config).encode(), JSON_TYPE)
    return files


# --- the server ----------------------------------------------------------------------------------

class RestGateway:
    """The routes over a backend (grpc_backend.DevBackend or CometBackend), as aiohttp handlers."""

    def __init__(self, backend, cors: frozenset[str] = frozenset(), max_body_bytes: int = MAX_BODY_BYTES,
                 read_timeout: float = READ_TIMEOUT_S, faucet=None):
        """`faucet` (node.faucet.Faucet), when given, answers POST /faucet."""
        self.answers = grpc_server.make_answers(backend)
        self.faucet = faucet
        self.routes = compute_routes()
        self.openapi = json.dumps(compute_openapi(self.routes)).encode()
        self.backend = backend
        self.dashboard = None  # read at the first request: the node's RPC listens by then
        self.cors = cors
        self.max_body_bytes = max_body_bytes
        self.read_timeout = read_timeout
        self.executor = ThreadPoolExecutor(WORKERS, thread_name_prefix="rest")

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if self.cors and is_preflight(request):
            return answer_preflight(self.cors, request)
        try:
            response = await self.answer(request)
        except RestError as error:
            response = make_error_response(error)
            if isinstance(error, UnreadableBody):
                response.force_close()
        response.headers.update(compute_cors_headers(self.cors, request.headers.get("Origin")))
        return response

    async def answer(self, request: web.BaseRequest) -> web.Response:
        if request.method == "GET" and request.path == OPENAPI_PATH:
            return web.Response(body=self.openapi, content_type=JSON_TYPE)
        if request.method == "GET" and request.path == METRICS_PATH:
            body, content_type = metrics.render()
            return web.Response(body=body, headers={"Content-Type": content_type})
        if request.method == "POST" and request.path == FAUCET_PATH and self.faucet is not None:
            return await self.answer_faucet(request)
        if request.method == "GET" and (request.path == DASHBOARD_PATH or request.path.startswith(DASHBOARD_PATH + "/")):
            return self.answer_dashboard(request.path)
        route, params = find_route(self.routes, request.method, request.path)
        message = route.request_class()
        if route.has_body:
            process_body(message, await self.read_body(request), request.headers.get("Content-Type", ""))
        else:
            process_query_parameters(message, request.query, route.path_fields)
        process_path_parameters(message, params)
        try:
            height = parse_height_header(request.headers)
            loop = asyncio.get_running_loop()
            value, height = await loop.run_in_executor(
                self.executor, self.answers[route.grpc_path], message.SerializeToString(), height)
        except grpc_server.ANSWER_ERRORS as error:
            raise RestError(grpc_server.compute_status(error), str(error)) from None
        try:
            body = compute_json(route.response_class.FromString(value))
        except (TypeError, KeyError, DecodeError) as error:  # an Any of a type no one registered (TxDecode)
            raise invalid_argument(f"cannot render the answer as JSON: {error}") from None
        height_headers = {HEIGHT_HEADER: str(height), METADATA_HEIGHT_HEADER: str(height)}
        return make_json_response(body, headers=height_headers)

    def answer_dashboard(self, path: str) -> web.Response:
        if self.dashboard is None:
            self.dashboard = compute_dashboard_files(self.backend.get_rpc_url())
        name = path.removeprefix(DASHBOARD_PATH).strip("/") or "index.html"
        if name not in self.dashboard:
            raise RestError(grpc.StatusCode.NOT_FOUND, f"no dashboard file {name!r}")
        body, content_type = self.dashboard[name]
        return web.Response(body=body, headers={"Content-Type": content_type, "Cache-Control": "no-cache"})

    async def answer_faucet(self, request: web.BaseRequest) -> web.Response:
        """`{"address": "mxw1..."}` in; the grant (address, amount, txhash) out."""
        try:
            document = json.loads(await self.read_body(request))
        except ValueError:
            raise invalid_argument("the body must be JSON: {\"address\": \"mxw1...\"}") from None
        address = document.get("address") if isinstance(document, dict) else None
        if not isinstance(address, str):
            raise invalid_argument("the body must name an address: {\"address\": \"mxw1...\"}")
        try:
            grant = await asyncio.get_running_loop().run_in_executor(self.executor, self.faucet.send, address)
        except faucet_module.InvalidRecipient as error:
            raise invalid_argument(str(error)) from None
        except faucet_module.RateLimited as error:
            raise RestError(grpc.StatusCode.RESOURCE_EXHAUSTED, str(error)) from None
        except client.ClientError as error:
            raise RestError(grpc.StatusCode.UNAVAILABLE, f"the faucet could not send: {error}") from None
        return make_json_response(grant, 200)

    async def read_body(self, request: web.BaseRequest) -> bytes:
        """The body within max_body_bytes and the read timeout, else InvalidArgument and the connection closed."""
        limit = self.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise UnreadableBody(f"http: request body too large (Content-Length {request.content_length}, "
                                 f"limit {limit} bytes)")
        body = bytearray()
        try:
            async with asyncio.timeout(self.read_timeout):
                while len(body) <= limit and (chunk := await request.content.read(limit + 1 - len(body))):
                    body += chunk
        except TimeoutError:
            raise UnreadableBody(f"i/o timeout: the body did not arrive within {self.read_timeout:g} s") from None
        if len(body) > limit:
            raise UnreadableBody(f"http: request body too large (limit {limit} bytes)")
        return bytes(body)


class RestServer:
    """Serves a RestGateway on its own thread and asyncio loop."""

    def __init__(self, gateway: RestGateway, host: str, port: int, max_open_connections: int = MAX_OPEN_CONNECTIONS):
        self.gateway = gateway
        self.host, self.port = host, port
        self.max_open_connections = max_open_connections
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: web.Server | None = None
        self._listener = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._serve, name="rest-server", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._start_error is not None:
            raise self._start_error

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        self._thread.join(timeout=10)
        self.gateway.executor.shutdown(wait=True, cancel_futures=True)

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            # As the RPC server: unfinished headers and idle keep-alive connections go after the read timeout.
            timeout = self.gateway.read_timeout
            self._server = web.Server(self._handle, loop=loop, keepalive_timeout=timeout, lingering_time=timeout,
                                      logger=http_log, access_log=None)
            self._listener = rpc._listen(self.host, self.port)
            self.port = self._listener.getsockname()[1]
            loop.create_task(self._accept())
        except OSError as error:
            self._start_error = grpc_server.ListenError(f"cannot listen for REST on {self.host}:{self.port}: {error}")
        except BaseException as error:  # noqa: BLE001 - reported to the thread that called start()
            self._start_error = error
        self._ready.set()
        if self._start_error is None:
            loop.run_forever()
        loop.close()

    async def _accept(self) -> None:
        """Serves each connection accepted, one at a time so that the count is exact; one over
        max_open_connections is closed at once (and on running out of descriptors, accepting waits)."""
        while True:
            try:
                conn, _ = await self._loop.sock_accept(self._listener)
            except OSError as error:
                if error.errno in rpc.OUT_OF_DESCRIPTORS:
                    await asyncio.sleep(rpc.ACCEPT_RETRY_S)
                continue
            if len(self._server.connections) >= self.max_open_connections:
                conn.close()
                continue
            await self._loop.connect_accepted_socket(self._server, conn)

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        try:
            return await self.gateway.handle(request)
        except Exception:  # noqa: BLE001 - a bug answers 500 and is logged; the server serves on
            log.exception("REST %s %s failed", request.method, request.path)
            return make_json_response(compute_error_body(grpc.StatusCode.INTERNAL, "internal error"), 500)

    async def _shutdown(self) -> None:
        self._server.pre_shutdown()
        await self._server.shutdown(SHUTDOWN_TIMEOUT_S)
        tasks = asyncio.all_tasks() - {asyncio.current_task()}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._listener.close()
        self._loop.call_soon(self._loop.stop)


def parse_address(address: str) -> tuple[str, int]:
    """host:port (or tcp://host:port, as the SDK's app.toml writes it)."""
    match = grpc_server.ADDRESS_PATTERN.fullmatch(address.removeprefix("tcp://"))
    if match is None or int(match.group(2)) > 65535:
        raise InvalidRestAddress(f"invalid REST listen address {address!r} (use host:port, or off)")
    return match.group(1).strip("[]"), int(match.group(2))


def check_address(address: str) -> None:
    if grpc_server.is_enabled(address):
        parse_address(address)


def serve(backend, address: str, cors: str = "off", faucet=None) -> RestServer:
    """Serve the REST gateway of `backend` on host:port (port 0 picks a free one), started; with a `faucet`
    (node.faucet.Faucet) it answers POST /faucet too."""
    host, port = parse_address(address)
    server = RestServer(RestGateway(backend, parse_cors(cors), faucet=faucet), host, port)
    server.start()
    log.info("REST server listening on %s", server.url)
    return server
