"""A small CometBFT JSON-RPC client (POST over HTTP), as the CLI needs it.

Results are decoded the way CometBFT 0.38 encodes them: int64s as decimal strings, bytes as base64,
hashes as upper-case hex. Also here: checking an ics23 proof from `abci_query` against an app hash.
"""

import base64
import binascii
import http.client
import json
import time
from dataclasses import dataclass, field
from urllib.parse import urlparse

from google.protobuf.message import DecodeError

from chain.errors import NotFoundError
from chain.proto.cosmos.auth.v1beta1 import auth_pb2
from chain.proto.cosmos.auth.v1beta1 import query_pb2 as auth_query_pb2
from node.client_config import DEFAULT_NODE

REQUEST_TIMEOUT_SECONDS = 10.0
POLL_INTERVAL_SECONDS = 0.2
PROOF_OP_TYPES = ("ics23:smt", "ics23:simple")


def compute_method_path(request_class) -> str:
    """The gRPC method path (/package.Service/Method) that takes `request_class`, read from the services of
    the request's own .proto file: what the chain answers over ABCI Query (chain.app.QUERY_PATHS), known
    without importing the chain's modules."""
    request = request_class.DESCRIPTOR
    paths = [f"/{service.full_name}/{method.name}" for service in request.file.services_by_name.values()
             for method in service.methods if method.input_type is request]
    if len(paths) != 1:
        raise ValueError(f"{request.full_name} is the request of {len(paths)} methods of its file's services")
    return paths[0]


class ClientError(Exception):
    pass


class InvalidNodeUrl(ClientError):
    pass


class NodeUnreachable(ClientError):
    pass


class RpcError(ClientError):
    pass


class InvalidResponse(ClientError):
    pass


class WaitTimeout(ClientError):
    pass


class QueryFailed(ClientError):
    """The node answered a query with an error: its code, codespace and log."""

    def __init__(self, path: str, response: "QueryResponse"):
        super().__init__(f"query {path} failed: code {response.code} ({response.codespace}): {response.log}")
        self.code = response.code
        self.codespace = response.codespace


class ProofError(ClientError):
    pass


@dataclass(frozen=True)
class Status:
    chain_id: str
    version: str
    moniker: str
    latest_block_height: int
    latest_block_hash: bytes
    latest_app_hash: bytes
    latest_block_time: str
    catching_up: bool


@dataclass(frozen=True)
class ProofOp:
    type: str
    key: bytes
    data: bytes


@dataclass(frozen=True)
class QueryResponse:
    code: int
    codespace: str
    log: str
    key: bytes
    value: bytes
    proof_ops: tuple[ProofOp, ...]
    height: int


@dataclass(frozen=True)
class BroadcastResult:
    code: int
    codespace: str
    log: str
    hash: bytes


@dataclass(frozen=True)
class Event:
    type: str
    attributes: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class TxResult:
    hash: bytes
    height: int
    index: int
    code: int
    codespace: str
    log: str
    gas_wanted: int
    gas_used: int
    events: tuple[Event, ...]
    tx: bytes


@dataclass(frozen=True)
class Block:
    hash: bytes
    chain_id: str
    height: int
    time: str
    app_hash: bytes
    proposer_address: bytes
    txs: tuple[bytes, ...] = field(default=())


def compute_http_url(node: str) -> str:
    """Accepts http(s)://host:port and, like CometBFT's tools, tcp://host:port."""
    parsed = urlparse(node)
    if parsed.scheme not in ("http", "https", "tcp") or not parsed.hostname:
        raise InvalidNodeUrl(f"invalid node URL {node!r}: expected http://host:port or tcp://host:port")
    try:
        parsed.port
    except ValueError:
        raise InvalidNodeUrl(f"invalid node URL {node!r}: bad port") from None
    scheme = "http" if parsed.scheme == "tcp" else parsed.scheme
    return parsed._replace(scheme=scheme).geturl()


# --- decoding CometBFT JSON ---------------------------------------------------------------------

def _field(data: dict, name: str, default=None):
    if not isinstance(data, dict):
        raise InvalidResponse(f"expected a JSON object around {name!r}")
    value = data.get(name, default)
    return default if value is None else value


def decode_int(data: dict, name: str) -> int:
    value = _field(data, name, "0")
    try:
        return int(str(value))
    except ValueError:
        raise InvalidResponse(f"{name!r} is not an integer: {value!r}") from None


def decode_base64(data: dict, name: str) -> bytes:
    value = _field(data, name, "")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise InvalidResponse(f"{name!r} is not base64") from None


def decode_hex(data: dict, name: str) -> bytes:
    value = _field(data, name, "")
    try:
        return bytes.fromhex(value)
    except (TypeError, ValueError):
        raise InvalidResponse(f"{name!r} is not hex") from None


def decode_str(data: dict, name: str) -> str:
    value = _field(data, name, "")
    if not isinstance(value, str):
        raise InvalidResponse(f"{name!r} is not a string")
    return value


def decode_status(result: dict) -> Status:
    node_info, sync_info = _field(result, "node_info", {}), _field(result, "sync_info", {})
    return Status(
        chain_id=decode_str(node_info, "network"),
        version=decode_str(node_info, "version"),
        moniker=decode_str(node_info, "moniker"),
        latest_block_height=decode_int(sync_info, "latest_block_height"),
        latest_block_hash=decode_hex(sync_info, "latest_block_hash"),
        latest_app_hash=decode_hex(sync_info, "latest_app_hash"),
        latest_block_time=decode_str(sync_info, "latest_block_time"),
        catching_up=bool(_field(sync_info, "catching_up", False)),
    )


def decode_query_response(result: dict) -> QueryResponse:
    response = _field(result, "response", {})
    # CometBFT writes "proof_ops"; some implementations follow the protobuf JSON name.
    ops = _field(response, "proof_ops", None) or _field(response, "proofOps", {})
    return QueryResponse(
        code=decode_int(response, "code"),
        codespace=decode_str(response, "codespace"),
        log=decode_str(response, "log"),
        key=decode_base64(response, "key"),
        value=decode_base64(response, "value"),
        proof_ops=tuple(
            ProofOp(decode_str(op, "type"), decode_base64(op, "key"), decode_base64(op, "data"))
            for op in _field(ops, "ops", [])
        ),
        height=decode_int(response, "height"),
    )


def decode_broadcast_result(result: dict) -> BroadcastResult:
    return BroadcastResult(
        code=decode_int(result, "code"),
        codespace=decode_str(result, "codespace"),
        log=decode_str(result, "log"),
        hash=decode_hex(result, "hash"),
    )


def decode_events(events: list) -> tuple[Event, ...]:
    return tuple(
        Event(
            decode_str(event, "type"),
            tuple((decode_str(a, "key"), decode_str(a, "value")) for a in _field(event, "attributes", [])),
        )
        for event in events
    )


def decode_tx_result(result: dict) -> TxResult:
    tx_result = _field(result, "tx_result", {})
    return TxResult(
        hash=decode_hex(result, "hash"),
        height=decode_int(result, "height"),
        index=decode_int(result, "index"),
        code=decode_int(tx_result, "code"),
        codespace=decode_str(tx_result, "codespace"),
        log=decode_str(tx_result, "log"),
        gas_wanted=decode_int(tx_result, "gas_wanted"),
        gas_used=decode_int(tx_result, "gas_used"),
        events=decode_events(_field(tx_result, "events", [])),
        tx=decode_base64(result, "tx"),
    )


def decode_block(result: dict) -> Block:
    block = _field(result, "block", {})
    header = _field(block, "header", {})
    txs = _field(_field(block, "data", {}), "txs", [])
    return Block(
        hash=decode_hex(_field(result, "block_id", {}), "hash"),
        chain_id=decode_str(header, "chain_id"),
        height=decode_int(header, "height"),
        time=decode_str(header, "time"),
        app_hash=decode_hex(header, "app_hash"),
        proposer_address=decode_hex(header, "proposer_address"),
        txs=tuple(decode_base64({"tx": tx}, "tx") for tx in txs),
    )


# --- calls --------------------------------------------------------------------------------------

class Client:
    def __init__(self, node: str = DEFAULT_NODE, timeout: float = REQUEST_TIMEOUT_SECONDS):
        self.node = node
        self.url = compute_http_url(node)
        self.timeout = timeout
        self.next_id = 0

    def post(self, body: bytes) -> tuple[int, bytes]:
        """One JSON-RPC POST on a connection of its own (http.client directly: urllib.request would look up proxies)."""
        parsed = urlparse(self.url)
        connection_class = http.client.HTTPSConnection if parsed.scheme == "https" else http.client.HTTPConnection
        connection = connection_class(parsed.hostname, parsed.port, timeout=self.timeout)
        try:
            connection.request("POST", (parsed.path or "/") + (f"?{parsed.query}" if parsed.query else ""), body,
                               {"Content-Type": "application/json"})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def call(self, method: str, params: dict) -> dict:
        self.next_id += 1
        body = json.dumps({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}).encode()
        try:
            status, raw = self.post(body)
        except (OSError, http.client.HTTPException) as error:
            raise NodeUnreachable(f"cannot reach node at {self.node}: {error}") from None
        if status >= 400 and not raw:
            raise RpcError(f"{method}: HTTP {status} from {self.node}")
        try:
            reply = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise InvalidResponse(f"{method}: the node at {self.node} did not answer with JSON") from None
        if not isinstance(reply, dict):
            raise InvalidResponse(f"{method}: the node at {self.node} answered with {type(reply).__name__}")
        if reply.get("error"):
            error = reply["error"]
            detail = error.get("data") or error.get("message") if isinstance(error, dict) else error
            raise RpcError(f"{method}: {detail}")
        result = reply.get("result")
        if not isinstance(result, dict):
            raise InvalidResponse(f"{method}: no result in the node's answer")
        return result

    def status(self) -> Status:
        return decode_status(self.call("status", {}))

    def abci_query(self, path: str, data: bytes, height: int = 0, prove: bool = False) -> QueryResponse:
        params = {"path": path, "data": data.hex(), "height": str(height), "prove": prove}
        return decode_query_response(self.call("abci_query", params))

    def query_grpc(self, request, response_class, height: int = 0):
        """A module query over ABCI (at its gRPC method's path): the decoded answer and the height it was
        answered at."""
        path = compute_method_path(type(request))
        response = self.abci_query(path, request.SerializeToString(), height=height)
        if response.code:
            raise QueryFailed(path, response)
        try:
            return response_class.FromString(response.value), response.height
        except DecodeError:
            raise InvalidResponse(f"query {path}: the node's answer is not a {response_class.DESCRIPTOR.name}") from None

    def query(self, request, response_class, height: int = 0):
        return self.query_grpc(request, response_class, height)[0]

    def query_optional(self, request, response_class, not_found, height: int = 0):
        """The query's answer, or None when the node answers with one of the `not_found` (codespace,
        code) errors: the record does not exist."""
        try:
            return self.query(request, response_class, height)
        except QueryFailed as error:
            if (error.codespace, error.code) in not_found:
                return None
            raise

    def get_account(self, address: str) -> auth_pb2.BaseAccount | None:
        """The account at `address`, or None if the chain has none there."""
        request = auth_query_pb2.QueryAccountRequest(address=address)
        reply = self.query_optional(request, auth_query_pb2.QueryAccountResponse,
                                    {(NotFoundError.codespace, NotFoundError.code)})
        if reply is None:
            return None
        account = auth_pb2.BaseAccount()
        if not reply.account.Unpack(account):
            raise InvalidResponse(f"account {address} is a {reply.account.type_url}, not a BaseAccount")
        return account

    def broadcast_tx_sync(self, tx: bytes) -> BroadcastResult:
        return decode_broadcast_result(self.call("broadcast_tx_sync", {"tx": base64.b64encode(tx).decode()}))

    def tx(self, tx_hash: bytes) -> TxResult | None:
        """The included tx, or None while CometBFT does not know it."""
        try:
            result = self.call("tx", {"hash": base64.b64encode(tx_hash).decode(), "prove": False})
        except RpcError as error:
            if f"tx ({tx_hash.hex().upper()}) not found" in str(error):
                return None
            raise
        return decode_tx_result(result)

    def search_txs(self, query: str, page: int = 1, per_page: int = 30, order: str = "asc") -> tuple[list[TxResult], int]:
        """The txs CometBFT's index finds for an events query (`tx_search`), and how many there are in all."""
        result = self.call("tx_search", {"query": query, "prove": False, "page": str(page),
                                         "per_page": str(per_page), "order_by": order})
        return [decode_tx_result(tx) for tx in _field(result, "txs", [])], int(_field(result, "total_count", 0))

    def block(self, height: int | None = None) -> Block:
        return decode_block(self.call("block", {} if height is None else {"height": str(height)}))

    def wait_for_height(self, height: int, timeout: float) -> Status:
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            if status.latest_block_height >= height:
                return status
            if time.monotonic() > deadline:
                raise WaitTimeout(f"block {height} was not produced within {timeout:g}s")
            time.sleep(POLL_INTERVAL_SECONDS)

    def wait_for_tx(self, tx_hash: bytes, timeout: float) -> TxResult:
        deadline = time.monotonic() + timeout
        while True:
            result = self.tx(tx_hash)
            if result is not None:
                return result
            if time.monotonic() > deadline:
                raise WaitTimeout(f"tx {tx_hash.hex().upper()} was not included within {timeout:g}s")
            time.sleep(POLL_INTERVAL_SECONDS)


# --- proofs -------------------------------------------------------------------------------------

def verify_store_proof(store: str, key: bytes, value: bytes, proof_ops: tuple[ProofOp, ...], app_hash: bytes) -> None:
    """Checks that `store`/`key` holds `value` (or, for an empty value, is absent) under `app_hash`.

    The proof is [ics23 proof of the key in the store, ics23 proof of the store root in the app hash].
    """
    from ibc import ics23  # only commands that check proofs pay for importing the verifier
    specs = (ics23.SMT_SPEC, ics23.TENDERMINT_SPEC)
    if tuple(op.type for op in proof_ops) != PROOF_OP_TYPES:
        raise ProofError(f"expected proof ops {list(PROOF_OP_TYPES)}, got {[op.type for op in proof_ops]}")
    if proof_ops[0].key != key or proof_ops[1].key != store.encode():
        raise ProofError("the proof is for another key")
    try:
        proofs = [ics23.decode_commitment_proof(op.data) for op in proof_ops]
        if value:
            ics23.verify_chained_membership(specs, app_hash, proofs, [store.encode(), key], value)
        else:
            ics23.verify_chained_non_membership(specs, app_hash, proofs, [store.encode(), key])
    except ics23.Ics23Error as error:
        raise ProofError(f"proof does not verify: {error}") from None
