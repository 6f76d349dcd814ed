"""CometBFT v0.38 JSON-RPC over HTTP (POST JSON-RPC 2.0 and GET /<method>?arg=) and websocket events.

Responses use CometBFT's JSON exactly (node.cometbft_json).
"""

import asyncio
import base64
import errno
import json
import logging
import math
import re
import resource
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web
from aiohttp.http_exceptions import HttpProcessingError

from chain.proto.tendermint.abci import types_pb2 as abci_pb2
from chain.proto.tendermint.types import types_pb2
from ibc.tendermint import compute_tx_hash
from node import txindex
from node.cometbft_json import (
    INT64_MAX,
    INT64_MIN,
    INT_STRING_PATTERN,
    compute_time_ns,
    encode_base64,
    encode_block,
    encode_block_id,
    encode_block_meta,
    encode_check_tx,
    encode_commit,
    encode_consensus_param_updates,
    encode_consensus_params,
    encode_event,
    encode_exec_tx_result,
    encode_finalize_block,
    encode_header,
    encode_hex,
    encode_info_response,
    encode_pub_key,
    encode_query_response,
    encode_tx_event_value,
    encode_tx_proof,
    encode_validator,
    format_time_ns,
)
from node.mempool import MempoolError

log = logging.getLogger("maxwell.rpc")
http_log = logging.getLogger("maxwell.rpc.http")

CMT_VERSION = "0.38.17"
P2P_PROTOCOL = 8
BLOCK_PROTOCOL = 11
NODE_CHANNELS = "40202122233038606100"

MAX_BATCH_REQUESTS = 10
MAX_QUERY_LENGTH = 512
DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 100
BLOCKCHAIN_LIMIT = 20
SUBSCRIPTION_BUFFER = 200
WS_PING_PERIOD_S = 27.0
# Descriptors kept for the node's own files (LevelDB tables, the signature helper's pipe, the proof
# verifier), out of reach of RPC connections.
FD_RESERVE = 200
REFUSED_LOG_INTERVAL_S = 10.0
LISTEN_BACKLOG = 128
ACCEPT_RETRY_S = 1.0
OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
SHUTDOWN_TIMEOUT_S = 2.0
URI_REQUEST_ID = -1

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603



class RPCError(Exception):
    """A method failed; reported as -32603 Internal error with the message as `data`, like CometBFT."""


class InvalidParams(Exception):
    pass


class InvalidJSON(ValueError):
    pass


class InvalidListenAddress(ValueError):
    pass


class TooFewFileDescriptors(OSError):
    """The open-file limit leaves nothing for RPC connections once the node's own files are reserved."""


class BodyTooLarge(Exception):
    pass


class BodyReadTimeout(Exception):
    pass


@dataclass(frozen=True)
class RPCConfig:
    """CometBFT's [rpc] settings, with its config.toml names and defaults (durations in seconds), and
    its HTTP server's read timeout: a client must send a request's headers and body within it."""
    max_open_connections: int = 900
    max_subscription_clients: int = 100
    max_subscriptions_per_client: int = 5
    timeout_broadcast_tx_commit: float = 10.0
    max_body_bytes: int = 1_000_000
    read_timeout: float = 10.0


# ---------------------------------------------------------------------------------------------
# JSON


def _reject_constant(name: str):
    raise InvalidJSON(f"invalid character {name!r} looking for beginning of value")


def _decode_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise InvalidJSON(f"number {text} overflows float64")
    return value


def decode_json(data: bytes | str):
    """JSON as Go's encoding/json reads it: no NaN or Infinity, no number beyond float64, and
    nesting no deeper than Python's recursion limit allows."""
    try:
        return json.loads(data, parse_constant=_reject_constant, parse_float=_decode_float)
    except RecursionError:
        raise InvalidJSON("nested too deeply") from None
    except ValueError as e:
        raise InvalidJSON(str(e)) from None


def _describe(value) -> str:
    """A JSON value for an error message; arrays and objects by kind, as they may be too deep to print."""
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return json.dumps(value)


# ---------------------------------------------------------------------------------------------
# Parameters


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # "int", "bool", "string", "bytes" (base64 in JSON), "hexbytes" (hex in JSON)


ROUTES: dict[str, tuple[Param, ...]] = {
    "health": (),
    "status": (),
    "genesis": (),
    "abci_info": (),
    "abci_query": (Param("path", "string"), Param("data", "hexbytes"), Param("height", "int"),
                   Param("prove", "bool")),
    "block": (Param("height", "int"),),
    "block_by_hash": (Param("hash", "bytes"),),
    "block_results": (Param("height", "int"),),
    "blockchain": (Param("minHeight", "int"), Param("maxHeight", "int")),
    "header": (Param("height", "int"),),
    "header_by_hash": (Param("hash", "hexbytes"),),
    "commit": (Param("height", "int"),),
    "validators": (Param("height", "int"), Param("page", "int"), Param("per_page", "int")),
    "consensus_params": (Param("height", "int"),),
    "tx": (Param("hash", "bytes"), Param("prove", "bool")),
    "tx_search": (Param("query", "string"), Param("prove", "bool"), Param("page", "int"),
                  Param("per_page", "int"), Param("order_by", "string")),
    "block_search": (Param("query", "string"), Param("page", "int"), Param("per_page", "int"),
                     Param("order_by", "string")),
    "check_tx": (Param("tx", "bytes"),),
    "broadcast_tx_async": (Param("tx", "bytes"),),
    "broadcast_tx_sync": (Param("tx", "bytes"),),
    "broadcast_tx_commit": (Param("tx", "bytes"),),
    "num_unconfirmed_txs": (),
    "unconfirmed_txs": (Param("limit", "int"),),
}
WS_ROUTES: dict[str, tuple[Param, ...]] = {
    "subscribe": (Param("query", "string"),),
    "unsubscribe": (Param("query", "string"),),
    "unsubscribe_all": (),
}


def _check_utf8(param: Param, value: str) -> str:
    try:
        value.encode()
    except UnicodeEncodeError:
        raise InvalidParams(f"{param.name}: not valid UTF-8 (a lone surrogate)") from None
    return value


def _decode_json_param(param: Param, value):
    """One JSON-RPC param as libs/json decodes it (int64 as strings; plain integers accepted too)."""
    if value is None:
        return None
    if param.kind == "int":
        if isinstance(value, str) and INT_STRING_PATTERN.fullmatch(value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidParams(f"{param.name}: invalid 64-bit integer encoding {_describe(value)}, expected string")
        if not INT64_MIN <= value <= INT64_MAX:
            raise InvalidParams(f"{param.name}: {value} overflows int64")
        return value
    if param.kind == "bool":
        if not isinstance(value, bool):
            raise InvalidParams(f"{param.name}: expected true or false")
        return value
    if not isinstance(value, str):
        raise InvalidParams(f"{param.name}: expected a string")
    if param.kind == "string":
        return _check_utf8(param, value)
    if param.kind == "hexbytes":
        try:
            return bytes.fromhex(value)
        except ValueError:
            raise InvalidParams(f"{param.name}: {value!r} is not hex") from None
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise InvalidParams(f"{param.name}: {value!r} is not base64") from None


def decode_json_params(spec: tuple[Param, ...], params) -> dict:
    if params is None:
        return {p.name: None for p in spec}
    if isinstance(params, dict):
        return {p.name: _decode_json_param(p, params.get(p.name)) for p in spec}
    if isinstance(params, list):
        if len(params) != len(spec):
            raise InvalidParams(f"expected {len(spec)} parameters ({[p.name for p in spec]}), got {len(params)}")
        return {p.name: _decode_json_param(p, v) for p, v in zip(spec, params)}
    raise InvalidParams("unknown type for JSON params. Expected map or array")


def _decode_uri_param(param: Param, arg: str):
    """One GET query arg with CometBFT's conventions: 0x-hex, "quoted" strings, bare integers."""
    if arg == "":
        return None
    if param.kind == "int" and INT_STRING_PATTERN.fullmatch(arg):
        return _decode_json_param(param, int(arg))
    if arg.lower().startswith("0x"):
        if param.kind not in ("string", "bytes", "hexbytes"):
            raise InvalidParams(f"{param.name}: got a hex string arg, but expected {param.kind}")
        try:
            raw = bytes.fromhex(arg[2:])
        except ValueError:
            raise InvalidParams(f"{param.name}: {arg!r} is not hex") from None
        if param.kind == "string":
            try:
                return raw.decode()
            except UnicodeDecodeError:
                raise InvalidParams(f"{param.name}: hex value is not UTF-8") from None
        return raw
    try:
        value = decode_json(arg)
    except InvalidJSON:
        raise InvalidParams(f"{param.name}: {arg!r} is not valid (quote strings, 0x-prefix hex)") from None
    if param.kind in ("bytes", "hexbytes") and isinstance(value, str) and arg.startswith('"'):
        return _check_utf8(param, value).encode()
    return _decode_json_param(param, value)


def decode_uri_params(spec: tuple[Param, ...], query) -> dict:
    return {p.name: _decode_uri_param(p, query.get(p.name, "")) for p in spec}


def parse_listen_address(laddr: str) -> tuple[str, int]:
    m = re.fullmatch(r"tcp://(\[[0-9a-fA-F:]+\]|[^:/]+):(\d{1,5})", laddr or "")
    if m is None or int(m.group(2)) > 65535:
        raise InvalidListenAddress(f"invalid listen address {laddr!r} (use tcp://host:port)")
    return m.group(1).strip("[]"), int(m.group(2))


# ---------------------------------------------------------------------------------------------
# Responses


def make_result(request_id, result) -> dict:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def make_error(request_id, code: int, message: str, data: str = "") -> dict:
    error = {"code": code, "message": message}
    if data:
        error["data"] = data
    response = {"jsonrpc": "2.0"}
    if request_id is not None:
        response["id"] = request_id
    response["error"] = error
    return response


_ERROR_MESSAGES = {
    PARSE_ERROR: "Parse error. Invalid JSON",
    INVALID_REQUEST: "Invalid Request",
    METHOD_NOT_FOUND: "Method not found",
    INVALID_PARAMS: "Invalid params",
    INTERNAL_ERROR: "Internal error",
}


def make_error_code(request_id, code: int, data: str = "") -> dict:
    return make_error(request_id, code, _ERROR_MESSAGES[code], data)


def _json_response(body, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(body, separators=(",", ":")), status=status,
                        content_type="application/json")


class _BadRequestId(ValueError):
    pass


def _request_id(request: dict):
    """JSON-RPC id: a string or an integer (Go reads numbers as float64, then int); None for notifications."""
    request_id = request.get("id")
    if request_id is None or isinstance(request_id, str):
        return request_id
    if isinstance(request_id, bool) or not isinstance(request_id, (int, float)):
        raise _BadRequestId(f"json-rpc ID ({_describe(request_id)}) is of unknown type")
    request_id = int(request_id)
    if not INT64_MIN <= request_id <= INT64_MAX:
        raise _BadRequestId("json-rpc ID overflows int64")
    return request_id


def _discard_outcome(future: asyncio.Future) -> None:
    """broadcast_tx_async does not wait for CheckTx; its outcome (or error) is dropped, as in CometBFT."""
    if not future.cancelled():
        future.exception()


def _page_window(page: int | None, per_page: int | None, total: int) -> tuple[int, int]:
    """(skip, count) as rpc/core/env.go validatePage/validatePerPage."""
    per_page = DEFAULT_PER_PAGE if per_page is None or per_page < 1 else min(per_page, MAX_PER_PAGE)
    pages = max((total - 1) // per_page + 1, 1)
    if page is None:
        page = 1
    elif page <= 0 or page > pages:
        raise RPCError(f"page should be within [1, {pages}] range, given {page}")
    skip = (page - 1) * per_page
    return skip, min(per_page, total - skip)


# ---------------------------------------------------------------------------------------------
# Server


def compute_connection_cap(max_open_connections: int) -> int:
    """How many RPC connections may be open: max_open_connections (0 is no cap of its own), within the
    open-file limit less FD_RESERVE, so that block production never runs out of descriptors.

    The soft limit is raised to the hard one first, as Go programs (CometBFT among them) do at start.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return max_open_connections
    allowed = soft - FD_RESERVE
    if allowed < 1:
        raise TooFewFileDescriptors(f"the open-file limit ({soft}) leaves no descriptors for RPC connections: "
                                    f"the node keeps {FD_RESERVE} for its own files; raise it with ulimit -n")
    if max_open_connections == 0 or max_open_connections > allowed:
        log.warning("RPC max_open_connections lowered from %d to %d, so %d of the %d file descriptors "
                    "stay for the node's own files", max_open_connections, allowed, FD_RESERVE, soft)
        return allowed
    return max_open_connections


def _is_server_fault(record: logging.LogRecord) -> bool:
    """aiohttp logs a client's malformed HTTP with a traceback; it is answered 400 and, as in Go, not logged."""
    return not (record.exc_info and isinstance(record.exc_info[1], HttpProcessingError))


http_log.addFilter(_is_server_fault)


def _listen(host: str, port: int) -> socket.socket:
    listener = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET,
                                    backlog=LISTEN_BACKLOG)
    listener.setblocking(False)
    return listener


@dataclass
class _Subscription:
    query: str
    conditions: tuple
    request_id: object


@dataclass(eq=False)
class _WSClient:
    ws: web.WebSocketResponse
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(SUBSCRIPTION_BUFFER))
    subscriptions: dict = field(default_factory=dict)


class RPCServer:
    """Serves a DevChain's RPC on its own thread and asyncio loop."""

    def __init__(self, chain, laddr: str, config: RPCConfig = RPCConfig()):
        self.chain = chain
        self.host, self.port = parse_listen_address(laddr)
        self.laddr = laddr
        self.config = config
        self.max_open_connections = 0
        self._refused: int | None = None
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="rpc")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: web.Server | None = None
        self._listener: socket.socket | None = None
        self._accept_failing = False
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._clients: set[_WSClient] = set()
        self._tx_waiters: dict[bytes, list[asyncio.Future]] = {}
        # The methods of ROUTES: these run on the executor, the async ones on the server's loop.
        self._methods = {
            "health": self._rpc_health,
            "status": self._rpc_status,
            "genesis": self._rpc_genesis,
            "abci_info": self._rpc_abci_info,
            "abci_query": self._rpc_abci_query,
            "block": self._rpc_block,
            "block_by_hash": self._rpc_block_by_hash,
            "block_results": self._rpc_block_results,
            "blockchain": self._rpc_blockchain,
            "header": self._rpc_header,
            "header_by_hash": self._rpc_header_by_hash,
            "commit": self._rpc_commit,
            "validators": self._rpc_validators,
            "consensus_params": self._rpc_consensus_params,
            "tx": self._rpc_tx,
            "tx_search": self._rpc_tx_search,
            "block_search": self._rpc_block_search,
            "check_tx": self._rpc_check_tx,
            "num_unconfirmed_txs": self._rpc_num_unconfirmed_txs,
            "unconfirmed_txs": self._rpc_unconfirmed_txs,
            "broadcast_tx_sync": self._rpc_broadcast_tx_sync,
        }
        self._async_methods = {
            "broadcast_tx_async": self._async_broadcast_tx_async,
            "broadcast_tx_commit": self._async_broadcast_tx_commit,
        }

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        self.max_open_connections = compute_connection_cap(self.config.max_open_connections)
        self._thread = threading.Thread(target=self._serve, name="rpc-server", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._start_error is not None:
            raise self._start_error
        self.chain.subscribe(self._on_block)

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        self.chain.unsubscribe(self._on_block)
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        self._thread.join(timeout=10)
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            # An unfinished request's headers, or an idle keep-alive connection, are dropped after the
            # read timeout (as Go's ReadHeaderTimeout and IdleTimeout); the body has its own (_read_body),
            # and the rest of a refused one is drained for at most that long. aiohttp's parser bounds the
            # headers (8190 bytes a line, 128 lines), about CometBFT's max_header_bytes of 1 MiB.
            timeout = self.config.read_timeout
            self._server = web.Server(self._handle, loop=loop, keepalive_timeout=timeout, lingering_time=timeout,
                                      logger=http_log, access_log=None)
            self._listener = _listen(self.host, self.port)
            self.port = self._listener.getsockname()[1]
            self.laddr = f"tcp://{self.host}:{self.port}"
            loop.create_task(self._accept())
        except BaseException as e:  # noqa: BLE001 - reported to the thread that called start()
            self._start_error = e
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        loop.run_forever()
        loop.close()

    async def _shutdown(self) -> None:
        for client in list(self._clients):
            await client.ws.close()
        self._server.pre_shutdown()
        await self._server.shutdown(SHUTDOWN_TIMEOUT_S)
        # The accept loop, and what aiohttp leaves draining a refused body until its lingering time.
        tasks = asyncio.all_tasks() - {asyncio.current_task()}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._listener.close()
        self._loop.call_soon(self._loop.stop)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def _accept(self) -> None:
        """Serve each connection accepted; one over max_open_connections is closed at once, so a flood of
        them holds no more than one descriptor at a time."""
        while True:
            try:
                conn, _ = await self._loop.sock_accept(self._listener)
            except OSError as e:
                if e.errno not in OUT_OF_DESCRIPTORS:
                    continue
                if not self._accept_failing:
                    log.warning("cannot accept RPC connections: %s; retrying every %g s", e, ACCEPT_RETRY_S)
                    self._accept_failing = True
                await asyncio.sleep(ACCEPT_RETRY_S)
                continue
            self._accept_failing = False
            if len(self._server.connections) >= self.max_open_connections:
                conn.close()
                self._count_refused()
                continue
            await self._loop.connect_accepted_socket(self._server, conn)

    def _count_refused(self) -> None:
        """Log a refused connection at once, then the count of those refused every interval while any are."""
        if self._refused is None:
            log.warning("max_open_connections %d reached: new RPC connections are closed at once",
                        self.max_open_connections)
            self._refused = 0
            self._loop.call_later(REFUSED_LOG_INTERVAL_S, self._report_refused)
        else:
            self._refused += 1

    def _report_refused(self) -> None:
        if not self._refused:
            self._refused = None
            return
        log.warning("closed %d RPC connections over max_open_connections %d in the last %.0f s",
                    self._refused, self.max_open_connections, REFUSED_LOG_INTERVAL_S)
        self._refused = 0
        self._loop.call_later(REFUSED_LOG_INTERVAL_S, self._report_refused)

    # -- HTTP -------------------------------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Routes as CometBFT's mux, whatever the HTTP method: JSON-RPC at /, the websocket, /<method>."""
        name = request.path.removeprefix("/")
        if name == "":
            return await self._handle_post(request)
        if name == "websocket":
            return await self._handle_websocket(request)
        return await self._handle_uri(request, name)

    async def _read_body(self, request: web.BaseRequest) -> bytes:
        """The body, within max_body_bytes (one declared larger is refused before reading) and the read timeout."""
        limit = self.config.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise BodyTooLarge(f"http: request body too large (Content-Length {request.content_length}, "
                               f"max_body_bytes {limit})")
        body = bytearray()
        try:
            async with asyncio.timeout(self.config.read_timeout):
                while len(body) <= limit and (chunk := await request.content.read(limit + 1 - len(body))):
                    body += chunk
        except TimeoutError:
            raise BodyReadTimeout(f"i/o timeout: the body did not arrive within {self.config.read_timeout:g} s") \
                from None
        if len(body) > limit:
            raise BodyTooLarge(f"http: request body too large (max_body_bytes {limit})")
        return bytes(body)

    async def _handle_index(self, request: web.BaseRequest) -> web.Response:
        links = "".join(f"<a href=\"/{m}\">/{m}</a><br>" for m in sorted(ROUTES))
        return web.Response(text=f"<html><body>Available endpoints:<br>{links}</body></html>",
                            content_type="text/html")

    async def _handle_post(self, request: web.BaseRequest) -> web.Response:
        try:
            body = await self._read_body(request)
        except (BodyTooLarge, BodyReadTimeout) as e:
            response = _json_response(make_error_code(None, INVALID_REQUEST, f"error reading request body: {e}"), 400)
            response.force_close()
            return response
        if not body:
            return await self._handle_index(request)
        try:
            decoded = decode_json(body)
        except InvalidJSON as e:
            return _json_response(make_error_code(None, PARSE_ERROR, f"error unmarshaling request: {e}"), 500)
        batch = isinstance(decoded, list)
        requests = decoded if batch else [decoded]
        if batch and len(requests) > MAX_BATCH_REQUESTS:
            return _json_response([make_error_code(None, INVALID_REQUEST, f"batch request exceeds maximum "
                                                   f"({MAX_BATCH_REQUESTS}) allowed number of requests")])
        if not all(isinstance(r, dict) for r in requests):
            return _json_response(make_error_code(None, PARSE_ERROR, "error unmarshaling request: not an object"),
                                  500)
        try:
            ids = [_request_id(r) for r in requests]
        except _BadRequestId as e:
            return _json_response(make_error_code(None, PARSE_ERROR, f"error unmarshaling request: {e}"), 500)
        responses = []
        for req, request_id in zip(requests, ids):
            if request_id is None:
                continue
            method = req.get("method")
            if not isinstance(method, str) or method not in ROUTES:
                responses.append(make_error_code(request_id, METHOD_NOT_FOUND))
                continue
            try:
                args = decode_json_params(ROUTES[method], req.get("params"))
            except InvalidParams as e:
                responses.append(make_error_code(
                    request_id, INVALID_PARAMS, f"error converting json params to arguments: {e}"))
                continue
            responses.append(await self._call(request_id, method, args))
        if not responses:
            return web.Response(status=200)
        return _json_response(responses if batch else responses[0])

    async def _handle_uri(self, request: web.BaseRequest, method: str) -> web.Response:
        if method in WS_ROUTES:
            return _json_response(make_error_code(URI_REQUEST_ID, METHOD_NOT_FOUND), 404)
        if method not in ROUTES:
            raise web.HTTPNotFound()
        try:
            args = decode_uri_params(ROUTES[method], request.query)
        except InvalidParams as e:
            return _json_response(make_error_code(
                URI_REQUEST_ID, INVALID_PARAMS, f"error converting http params to arguments: {e}"), 500)
        response = await self._call(URI_REQUEST_ID, method, args)
        return _json_response(response, 500 if "error" in response else 200)

    async def _call(self, request_id, method: str, args: dict) -> dict:
        try:
            if method in self._async_methods:
                result = await self._async_methods[method](**args)
            else:
                method_fn = self._methods[method]
                result = await self._loop.run_in_executor(self._executor, lambda: method_fn(**args))
        except (RPCError, MempoolError, txindex.QueryError) as e:
            return make_error_code(request_id, INTERNAL_ERROR, str(e))
        except Exception as e:  # noqa: BLE001 - a failing method must not take the node down
            log.exception("RPC method %s failed", method)
            return make_error_code(request_id, INTERNAL_ERROR, f"{type(e).__name__}: {e}")
        return make_result(request_id, result)

    # -- websocket ----------------------------------------------------------------------------

    async def _handle_websocket(self, request: web.BaseRequest) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=self.config.max_body_bytes, heartbeat=WS_PING_PERIOD_S,
                                   timeout=SHUTDOWN_TIMEOUT_S)
        await ws.prepare(request)
        client = _WSClient(ws=ws)
        self._clients.add(client)
        writer = asyncio.ensure_future(self._write_ws(client))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    response = await self._handle_ws_message(client, msg.data)
                    if response is not None:
                        self._enqueue(client, response)
                elif msg.type == WSMsgType.BINARY:
                    self._enqueue(client, make_error_code(None, PARSE_ERROR, "binary messages are not JSON-RPC"))
        finally:
            self._clients.discard(client)
            client.subscriptions.clear()
            writer.cancel()
        return ws

    async def _write_ws(self, client: _WSClient) -> None:
        while True:
            message = await client.queue.get()
            try:
                await client.ws.send_str(message)
            except (ConnectionError, RuntimeError):
                return

    def _enqueue(self, client: _WSClient, response: dict) -> None:
        try:
            client.queue.put_nowait(json.dumps(response, separators=(",", ":")))
        except asyncio.QueueFull:
            log.info("closing slow websocket client")
            client.subscriptions.clear()
            asyncio.ensure_future(client.ws.close())

    async def _handle_ws_message(self, client: _WSClient, text: str) -> dict | None:
        try:
            req = decode_json(text)
            if not isinstance(req, dict):
                raise InvalidJSON("not an object")
            request_id = _request_id(req)
        except (InvalidJSON, _BadRequestId) as e:
            return make_error_code(None, PARSE_ERROR, f"error unmarshaling request: {e}")
        if request_id is None:
            return None
        method = req.get("method")
        spec = ROUTES.get(method) if isinstance(method, str) else None
        if spec is None and isinstance(method, str):
            spec = WS_ROUTES.get(method)
        if spec is None:
            return make_error_code(request_id, METHOD_NOT_FOUND)
        try:
            args = decode_json_params(spec, req.get("params"))
        except InvalidParams as e:
            return make_error_code(request_id, INTERNAL_ERROR, f"error converting json params to arguments: {e}")
        if method in WS_ROUTES:
            try:
                return make_result(request_id, self._process_ws_method(client, request_id, method, args))
            except (RPCError, txindex.QueryError) as e:
                return make_error_code(request_id, INTERNAL_ERROR, str(e))
        return await self._call(request_id, method, args)

    def _process_ws_method(self, client: _WSClient, request_id, method: str, args: dict) -> dict:
        if method == "unsubscribe_all":
            if not client.subscriptions:
                raise RPCError("subscription not found")
            client.subscriptions.clear()
            return {}
        query = args.get("query") or ""
        if len(query) > MAX_QUERY_LENGTH:
            raise RPCError("maximum query length exceeded")
        try:
            conditions = txindex.parse_query(query)
        except txindex.QueryError as e:
            raise RPCError(f"failed to parse query: {e}") from None
        if method == "unsubscribe":
            if client.subscriptions.pop(query, None) is None:
                raise RPCError("subscription not found")
            return {}
        if not client.subscriptions:
            self._check_subscription_clients()
        if len(client.subscriptions) >= self.config.max_subscriptions_per_client:
            raise RPCError(f"max_subscriptions_per_client {self.config.max_subscriptions_per_client} reached")
        if query in client.subscriptions:
            raise RPCError("already subscribed")
        client.subscriptions[query] = _Subscription(query=query, conditions=conditions, request_id=request_id)
        return {}

    def _check_subscription_clients(self) -> None:
        """As CometBFT's event bus, each broadcast_tx_commit waiting for its tx is a subscription client too."""
        clients = sum(1 for c in self._clients if c.subscriptions)
        clients += sum(len(waiters) for waiters in self._tx_waiters.values())
        if clients >= self.config.max_subscription_clients:
            raise RPCError(f"max_subscription_clients {self.config.max_subscription_clients} reached")

    # -- events -------------------------------------------------------------------------------

    def _on_block(self, event) -> None:
        """Called by the block producer thread after each committed block."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._publish_block, event)

    def _publish(self, event_type: str, encode_value, events: dict[str, list[str]]) -> None:
        """Send one event to every matching subscription; the value is encoded only if someone listens."""
        value = None
        for client in list(self._clients):
            for sub in list(client.subscriptions.values()):
                if txindex.is_event_map_matching(sub.conditions, events):
                    if value is None:
                        value = encode_value()
                    self._enqueue(client, make_result(sub.request_id, {
                        "query": sub.query,
                        "data": {"type": f"tendermint/event/{event_type}", "value": value},
                        "events": events,
                    }))

    def _publish_block(self, event) -> None:
        block, response = event.block, event.response
        height = block.header.height
        block_events = txindex.compute_event_map(response.events)
        event_types = block_events.get(txindex.EVENT_TYPE_TAG, [])
        self._publish("NewBlock", lambda: {
            "block": encode_block(block),
            "block_id": encode_block_id(event.block_id),
            "result_finalize_block": encode_finalize_block(response),
        }, {**block_events, txindex.EVENT_TYPE_TAG: event_types + ["NewBlock"]})
        self._publish("NewBlockHeader", lambda: {"header": encode_header(block.header)},
                      {txindex.EVENT_TYPE_TAG: ["NewBlockHeader"]})
        self._publish("NewBlockEvents", lambda: {
            "height": str(height),
            "events": [encode_event(e) for e in response.events] or None,
            "num_txs": str(len(block.data.txs)),
        }, {**block_events, txindex.EVENT_TYPE_TAG: event_types + ["NewBlockEvents"]})
        for index, (tx, tx_hash) in enumerate(zip(block.data.txs, event.tx_hashes)):
            result = response.tx_results[index]
            self._publish("Tx", lambda: {"TxResult": encode_tx_event_value(height, index, tx, result)},
                          txindex.compute_tx_event_map(tx_hash, height, result.events))
            for waiter in self._tx_waiters.pop(tx_hash, []):
                if not waiter.done():
                    waiter.set_result((height, result))

    # -- methods (run on the executor) ----------------------------------------------------------

    def _latest_height(self) -> int:
        """The last height whose block is executed, committed and indexed (the block store may be one ahead)."""
        return self.chain.state.last_block_height

    def _get_height(self, height: int | None, latest: int) -> int:
        if height is None:
            return latest
        if height <= 0:
            raise RPCError(f"height must be greater than 0, but got {height}")
        if height > latest:
            raise RPCError(f"height {height} must be less than or equal to the current blockchain height {latest}")
        base = self.chain.blockstore.get_base()
        if height < base:
            raise RPCError(f"height {height} is not available, lowest height is {base}")
        return height

    def _rpc_health(self) -> dict:
        if self.chain.halt_error is not None:
            raise RPCError(f"block production halted: {self.chain.halt_error}")
        return {}

    def _rpc_status(self) -> dict:
        store = self.chain.blockstore
        state = self.chain.state
        latest_height = self._latest_height()
        latest = store.get_block_meta(latest_height) if latest_height else None
        base_height = store.get_base()
        earliest = store.get_block_meta(base_height) if base_height else None
        validator = self.chain.validator
        return {
            "node_info": {
                "protocol_version": {"p2p": str(P2P_PROTOCOL), "block": str(BLOCK_PROTOCOL),
                                     "app": str(state.app_version)},
                "id": validator.address.hex(),
                "listen_addr": self.laddr,
                "network": self.chain.genesis.chain_id,
                "version": CMT_VERSION,
                "channels": NODE_CHANNELS,
                "moniker": self.chain.moniker,
                "other": {"tx_index": "on", "rpc_address": self.laddr},
            },
            "sync_info": {
                "latest_block_hash": encode_hex(latest.block_id.hash) if latest else "",
                "latest_app_hash": encode_hex(latest.header.app_hash) if latest else "",
                "latest_block_height": str(latest_height),
                "latest_block_time": format_time_ns(compute_time_ns(latest.header.time) if latest else 0),
                "earliest_block_hash": encode_hex(earliest.block_id.hash) if earliest else "",
                "earliest_app_hash": encode_hex(earliest.header.app_hash) if earliest else "",
                "earliest_block_height": str(base_height),
                "earliest_block_time": format_time_ns(compute_time_ns(earliest.header.time) if earliest else 0),
                "catching_up": False,
            },
            "validator_info": {
                "address": encode_hex(validator.address),
                "pub_key": encode_pub_key(validator.pub_key),
                "voting_power": str(validator.voting_power),
            },
        }

    def _rpc_genesis(self) -> dict:
        return {"genesis": self.chain.genesis.doc}

    def _rpc_abci_info(self) -> dict:
        return {"response": encode_info_response(self.chain.get_info())}

    def _rpc_abci_query(self, path, data, height, prove) -> dict:
        request = abci_pb2.RequestQuery(path=path or "", data=data or b"", height=height or 0, prove=bool(prove))
        return {"response": encode_query_response(self.chain.get_query(request))}

    def _rpc_block(self, height) -> dict:
        store = self.chain.blockstore
        height = self._get_height(height, self._latest_height())
        block, meta = store.get_block(height), store.get_block_meta(height)
        if block is None or meta is None:
            return {"block_id": encode_block_id(types_pb2.BlockID()), "block": None}
        return {"block_id": encode_block_id(meta.block_id), "block": encode_block(block)}

    def _rpc_block_by_hash(self, hash) -> dict:
        height = self.chain.blockstore.get_height_by_hash(hash or b"")
        if height is None or height > self._latest_height():
            return {"block_id": encode_block_id(types_pb2.BlockID()), "block": None}
        return self._rpc_block(height)

    def _rpc_block_results(self, height) -> dict:
        store = self.chain.blockstore
        height = self._get_height(height, self._latest_height())
        results = store.get_results(height)
        if results is None:
            raise RPCError(f"could not find results for height #{height}")
        return {
            "height": str(height),
            "txs_results": [encode_exec_tx_result(r) for r in results.tx_results] or None,
            "finalize_block_events": [encode_event(e) for e in results.events] or None,
            "validator_updates": None,
            "consensus_param_updates": encode_consensus_param_updates(results.consensus_param_updates)
            if results.HasField("consensus_param_updates") else None,
            "app_hash": encode_base64(results.app_hash),
        }

    def _rpc_blockchain(self, minHeight, maxHeight) -> dict:  # noqa: N803 - CometBFT's parameter names
        store = self.chain.blockstore
        latest, base = self._latest_height(), store.get_base()
        low, high = minHeight or 0, maxHeight or 0
        if low < 0 or high < 0:
            raise RPCError("heights must be non-negative")
        low = max(base, low or 1)
        high = min(latest, high or latest)
        low = max(low, high - BLOCKCHAIN_LIMIT + 1)
        if low > high:
            raise RPCError(f"min height {low} can't be greater than max height {high}")
        metas = [store.get_block_meta(h) for h in range(high, low - 1, -1)]
        return {"last_height": str(latest), "block_metas": [encode_block_meta(m) for m in metas if m]}

    def _rpc_header(self, height) -> dict:
        store = self.chain.blockstore
        meta = store.get_block_meta(self._get_height(height, self._latest_height()))
        return {"header": encode_header(meta.header) if meta else None}

    def _rpc_header_by_hash(self, hash) -> dict:
        height = self.chain.blockstore.get_height_by_hash(hash or b"")
        if height is None or height > self._latest_height():
            return {"header": None}
        meta = self.chain.blockstore.get_block_meta(height)
        return {"header": encode_header(meta.header) if meta else None}

    def _rpc_commit(self, height) -> dict | None:
        store = self.chain.blockstore
        height = self._get_height(height, self._latest_height())
        meta = store.get_block_meta(height)
        found = store.get_commit(height)
        if meta is None or found is None:
            return None
        commit, canonical = found
        return {"signed_header": {"header": encode_header(meta.header), "commit": encode_commit(commit)},
                "canonical": canonical}

    def _rpc_validators(self, height, page, per_page) -> dict:
        height = self._get_height(height, self._latest_height() + 1)
        validators = [self.chain.validator]
        skip, count = _page_window(page, per_page, len(validators))
        shown = validators[skip:skip + count]
        return {"block_height": str(height), "validators": [encode_validator(v) for v in shown],
                "count": str(len(shown)), "total": str(len(validators))}

    def _rpc_consensus_params(self, height) -> dict:
        height = self._get_height(height, self._latest_height() + 1)
        params = self.chain.blockstore.get_params(height)
        if params is None:
            raise RPCError(f"could not find consensus params for height #{height}")
        return {"block_height": str(height), "consensus_params": encode_consensus_params(params)}

    def _encode_indexed_tx(self, tx: txindex.IndexedTx, prove: bool) -> dict:
        out = {
            "hash": encode_hex(tx.hash),
            "height": str(tx.height),
            "index": tx.index,
            "tx_result": encode_exec_tx_result(tx.result.result),
            "tx": encode_base64(tx.result.tx),
        }
        if prove:
            block = self.chain.blockstore.get_block(tx.height)
            if block is not None:
                out["proof"] = encode_tx_proof(list(block.data.txs), tx.index)
        return out

    def _rpc_tx(self, hash, prove) -> dict:
        found = self.chain.txindex.get_tx(hash or b"")
        if found is None:
            raise RPCError(f"tx ({encode_hex(hash or b'')}) not found")
        return self._encode_indexed_tx(found, bool(prove))

    def _rpc_tx_search(self, query, prove, page, per_page, order_by) -> dict:
        if len(query or "") > MAX_QUERY_LENGTH:
            raise RPCError("maximum query length exceeded")
        if order_by not in (None, "", "asc", "desc"):
            raise RPCError("expected order_by to be either `asc` or `desc` or empty")
        found = self.chain.txindex.search_txs(txindex.parse_query(query or ""))
        if order_by == "desc":
            found.reverse()
        skip, count = _page_window(page, per_page, len(found))
        return {"txs": [self._encode_indexed_tx(t, bool(prove)) for t in found[skip:skip + count]],
                "total_count": str(len(found))}

    def _rpc_block_search(self, query, page, per_page, order_by) -> dict:
        if len(query or "") > MAX_QUERY_LENGTH:
            raise RPCError("maximum query length exceeded")
        if order_by not in (None, "", "asc", "desc"):
            raise RPCError("expected order_by to be either `asc` or `desc` or empty")
        heights = self.chain.txindex.search_blocks(txindex.parse_query(query or ""))
        if order_by != "asc":
            heights.reverse()
        skip, count = _page_window(page, per_page, len(heights))
        blocks = []
        for height in heights[skip:skip + count]:
            block, meta = self.chain.blockstore.get_block(height), self.chain.blockstore.get_block_meta(height)
            if block is not None and meta is not None:
                blocks.append({"block_id": encode_block_id(meta.block_id), "block": encode_block(block)})
        return {"blocks": blocks, "total_count": str(len(heights))}

    def _rpc_check_tx(self, tx) -> dict:
        return encode_check_tx(self.chain.check_tx(abci_pb2.RequestCheckTx(tx=tx or b"", type=abci_pb2.NEW)))

    def _rpc_num_unconfirmed_txs(self) -> dict:
        mempool = self.chain.mempool
        size = str(mempool.size())
        return {"n_txs": size, "total": size, "total_bytes": str(mempool.size_bytes()), "txs": None}

    def _rpc_unconfirmed_txs(self, limit) -> dict:
        mempool = self.chain.mempool
        limit = DEFAULT_PER_PAGE if limit is None or limit < 1 else min(limit, MAX_PER_PAGE)
        txs = mempool.get_txs(limit)
        return {"n_txs": str(len(txs)), "total": str(mempool.size()), "total_bytes": str(mempool.size_bytes()),
                "txs": [base64.b64encode(tx).decode() for tx in txs]}

    def _rpc_broadcast_tx_sync(self, tx) -> dict:
        tx = tx or b""
        response = self.chain.mempool.process_tx(tx)
        return {"code": response.code, "data": encode_hex(response.data), "log": response.log,
                "codespace": response.codespace, "hash": encode_hex(compute_tx_hash(tx))}

    # -- async methods ---------------------------------------------------------------------------

    async def _async_broadcast_tx_async(self, tx) -> dict:
        tx = tx or b""
        future = self._loop.run_in_executor(self._executor, self.chain.mempool.process_tx, tx)
        future.add_done_callback(_discard_outcome)
        return {"code": 0, "data": "", "log": "", "codespace": "", "hash": encode_hex(compute_tx_hash(tx))}

    async def _async_broadcast_tx_commit(self, tx) -> dict:
        tx = tx or b""
        tx_hash = compute_tx_hash(tx)
        self._check_subscription_clients()
        waiter = self._loop.create_future()
        self._tx_waiters.setdefault(tx_hash, []).append(waiter)
        try:
            try:
                check = await self._loop.run_in_executor(self._executor, self.chain.mempool.process_tx, tx)
            except MempoolError as e:
                raise RPCError(f"error on broadcastTxCommit: {e}") from None
            result = {"check_tx": encode_check_tx(check), "tx_result": encode_exec_tx_result(abci_pb2.ExecTxResult()),
                      "hash": encode_hex(tx_hash), "height": "0"}
            if check.code != 0:
                return result
            try:
                height, exec_result = await asyncio.wait_for(waiter, self.config.timeout_broadcast_tx_commit)
            except asyncio.TimeoutError:
                raise RPCError("timed out waiting for tx to be included in a block") from None
            result.update(tx_result=encode_exec_tx_result(exec_result), height=str(height))
            return result
        finally:
            waiters = self._tx_waiters.get(tx_hash, [])
            if waiter in waiters:
                waiters.remove(waiter)
                if not waiters:
                    del self._tx_waiters[tx_hash]
