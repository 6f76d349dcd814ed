"""ABCI 2.0 (CometBFT 0.38) socket server.

Every message on the wire is an unsigned varint length followed by a protobuf
`tendermint.abci.Request` (from CometBFT) or `Response` (to CometBFT). CometBFT opens
four connections (consensus, mempool, query, snapshot); each is answered strictly in
request order. Echo and Flush are answered here; every other request goes to the
application method `compute_app_methods` names for its kind (`finalize_block(RequestFinalizeBlock)
-> ResponseFinalizeBlock`, ...). Application calls are synchronous and run one at a
time, all on one worker thread, whichever connection they came from.

As the Go socket server does, an application error is answered with
`ResponseException` and the connection is closed: CometBFT then stops, which is the
intended outcome of an application bug. Ordinary failures must be reported by the
application with response codes instead.
"""

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

from google.protobuf.message import DecodeError

from chain.encoding import MAX_UVARINT_BYTES, UvarintError, decode_uvarint, encode_uvarint
from chain.proto.tendermint.abci import types_pb2 as abci_pb2
from node.faults import log_fault

# Above CometBFT's largest block (100 MiB), so a full FinalizeBlock always fits.
DEFAULT_MAX_MESSAGE_BYTES = 128 * 1024 * 1024

logger = logging.getLogger(__name__)


class ABCIServerError(Exception):
    """Base error of the ABCI server."""


class InvalidAddressError(ABCIServerError):
    """The listen address is not tcp://host:port or unix:///path."""


class ListenError(ABCIServerError):
    """The server could not listen on the address."""


class MalformedFrameError(ABCIServerError):
    """A frame from the client cannot be read; its connection is closed."""


class InvalidVarintError(MalformedFrameError):
    """The length prefix is not an unsigned varint of at most 64 bits."""


class OversizedMessageError(MalformedFrameError):
    """The length prefix exceeds the server's maximum message size."""


class UndecodableMessageError(MalformedFrameError):
    """The frame is not a protobuf tendermint.abci.Request."""


def compute_app_methods(app) -> dict[str, Callable]:
    """The application method answering each kind of request (the `Request.value` oneof field)."""
    return {
        "info": app.info,
        "init_chain": app.init_chain,
        "query": app.query,
        "check_tx": app.check_tx,
        "commit": app.commit,
        "list_snapshots": app.list_snapshots,
        "offer_snapshot": app.offer_snapshot,
        "load_snapshot_chunk": app.load_snapshot_chunk,
        "apply_snapshot_chunk": app.apply_snapshot_chunk,
        "prepare_proposal": app.prepare_proposal,
        "process_proposal": app.process_proposal,
        "extend_vote": app.extend_vote,
        "verify_vote_extension": app.verify_vote_extension,
        "finalize_block": app.finalize_block,
    }


def encode_frame(message) -> bytes:
    body = message.SerializeToString()
    return encode_uvarint(len(body)) + body


async def read_uvarint(reader: asyncio.StreamReader) -> int:
    """Read a length prefix; raises asyncio.IncompleteReadError on a clean end of stream."""
    data = await reader.readexactly(1)
    while data[-1] >= 0x80 and len(data) < MAX_UVARINT_BYTES:
        data += await reader.readexactly(1)
    try:
        return decode_uvarint(data)[0]
    except UvarintError as e:
        raise InvalidVarintError(f"length prefix: {e}") from e


async def read_request(reader: asyncio.StreamReader, max_message_bytes: int) -> abci_pb2.Request:
    length = await read_uvarint(reader)
    if length > max_message_bytes:
        raise OversizedMessageError(f"message of {length} bytes exceeds the limit of {max_message_bytes}")
    body = await reader.readexactly(length)
    request = abci_pb2.Request()
    try:
        request.ParseFromString(body)
    except DecodeError as e:
        raise UndecodableMessageError(f"not a tendermint.abci.Request: {e}") from e
    return request


def parse_address(address: str) -> tuple[str, str, int | None]:
    """("tcp", host, port) or ("unix", path, None)."""
    parsed = urlparse(address)
    if parsed.scheme == "tcp":
        try:
            port = parsed.port
        except ValueError as e:
            raise InvalidAddressError(f"bad port in {address!r}") from e
        if not parsed.hostname or port is None:
            raise InvalidAddressError(f"expected tcp://host:port, got {address!r}")
        return "tcp", parsed.hostname, port
    if parsed.scheme == "unix":
        path = parsed.netloc + parsed.path
        if not path:
            raise InvalidAddressError(f"expected unix:///path, got {address!r}")
        return "unix", path, None
    raise InvalidAddressError(f"expected tcp://host:port or unix:///path, got {address!r}")


async def _is_unix_socket_live(path: str) -> bool:
    """asyncio replaces an existing socket file, so first check that nobody answers on it."""
    if not os.path.exists(path):
        return False
    try:
        _, writer = await asyncio.open_unix_connection(path)
    except OSError:
        return False
    writer.close()
    return True


class ABCIServer:
    """A listening ABCI server; create it with `serve`."""

    def __init__(self, app, max_message_bytes: int):
        self.app_methods = compute_app_methods(app)
        self.max_message_bytes = max_message_bytes
        self.address = ""
        self._server: asyncio.AbstractServer | None = None
        self._unix_path: str | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="abci-app")
        self._connections: dict[asyncio.Task, asyncio.StreamWriter] = {}

    async def start(self, address: str) -> None:
        kind, host_or_path, port = parse_address(address)
        try:
            if kind == "tcp":
                self._server = await asyncio.start_server(self._serve_connection, host_or_path, port)
                bound_host, bound_port = self._server.sockets[0].getsockname()[:2]
                self.address = f"tcp://{bound_host}:{bound_port}"
            else:
                if await _is_unix_socket_live(host_or_path):
                    raise ListenError(f"cannot listen on {address}: another server is listening there")
                self._server = await asyncio.start_unix_server(self._serve_connection, host_or_path)
                self._unix_path = host_or_path
                self.address = f"unix://{host_or_path}"
        except OSError as e:
            self._executor.shutdown(wait=False)
            raise ListenError(f"cannot listen on {address}: {e.strerror or e}") from e
        logger.info("ABCI server listening on %s", self.address)

    async def close(self) -> None:
        """Stop listening, drop every connection, and wait for a running app call to finish."""
        if self._server is not None:
            self._server.close()
        for writer in self._connections.values():
            writer.close()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        await asyncio.to_thread(self._executor.shutdown, True, cancel_futures=True)
        if self._unix_path is not None and os.path.exists(self._unix_path):
            os.unlink(self._unix_path)
            self._unix_path = None

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._connections[task] = writer
        peer = writer.get_extra_info("peername") or self.address
        logger.debug("ABCI connection from %s", peer)
        try:
            await self._process_requests(reader, writer)
        except asyncio.IncompleteReadError:
            logger.debug("ABCI connection from %s closed by the client", peer)
        except MalformedFrameError as e:
            logger.warning("closing ABCI connection from %s: malformed frame: %s", peer, e)
        except ConnectionError as e:
            logger.info("ABCI connection from %s lost: %s", peer, e)
        finally:
            del self._connections[task]
            writer.close()

    async def _process_requests(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            request = await read_request(reader, self.max_message_bytes)
            response = await self._execute_request(request)
            writer.write(encode_frame(response))
            await writer.drain()
            if response.WhichOneof("value") == "exception":
                logger.warning("closing ABCI connection after an exception: %s", response.exception.error)
                return

    async def _execute_request(self, request: abci_pb2.Request) -> abci_pb2.Response:
        kind = request.WhichOneof("value")
        if kind == "echo":
            return abci_pb2.Response(echo=abci_pb2.ResponseEcho(message=request.echo.message))
        if kind == "flush":
            return abci_pb2.Response(flush=abci_pb2.ResponseFlush())
        method = self.app_methods.get(kind)
        if method is None:
            return abci_pb2.Response(exception=abci_pb2.ResponseException(error=f"unknown request {kind!r}"))
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call_app, kind, method, getattr(request, kind))

    def _call_app(self, kind: str, method: Callable, request) -> abci_pb2.Response:
        response = abci_pb2.Response()
        try:
            getattr(response, kind).CopyFrom(method(request))
        except Exception as e:
            log_fault(logger, f"application failed in {kind}", e)
            return abci_pb2.Response(exception=abci_pb2.ResponseException(error=f"{kind}: {type(e).__name__}: {e}"))
        return response


async def serve(app, address: str, *, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> ABCIServer:
    """Start serving `app` on tcp://host:port or unix:///path (port 0 picks a free port)."""
    server = ABCIServer(app, max_message_bytes)
    await server.start(address)
    return server


def run(app, address: str, *, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
    """Serve until SIGINT or SIGTERM, then close cleanly (a running app call completes first)."""

    async def main() -> None:
        server = await serve(app, address, max_message_bytes=max_message_bytes)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
            logger.info("ABCI server on %s shutting down", server.address)
        finally:
            await server.close()

    asyncio.run(main())
