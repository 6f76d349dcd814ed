"""A synchronous ABCI client that talks to an ABCI server the way CometBFT 0.38 does.

Frames are an unsigned varint length then a protobuf `tendermint.abci.Request`; every
call sends its request followed by a Flush (CometBFT's socket client does the same for
each synchronous call) and returns the typed Response* message.

    with ABCIClient("tcp://127.0.0.1:26658") as client:
        client.info(version="0.38.17")
        client.finalize_block(height=1, txs=[b"k=v"])
"""

import socket
from urllib.parse import urlparse

from chain.encoding import encode_uvarint
from chain.proto.tendermint.abci import types_pb2 as abci_pb2

REQUEST_TYPES = {
    field.name: getattr(abci_pb2, field.message_type.name)
    for field in abci_pb2.Request.DESCRIPTOR.oneofs_by_name["value"].fields
}


class ABCIClientError(Exception):
    """Base error of the test ABCI client."""


class ABCIExceptionResponse(ABCIClientError):
    """The server answered with ResponseException."""

    def __init__(self, error: str):
        super().__init__(error)
        self.error = error


class UnexpectedResponseError(ABCIClientError):
    """The server answered with a response of another type than the request."""


class ConnectionClosedError(ABCIClientError):
    """The server closed the connection."""


def connect(address: str, timeout: float) -> socket.socket:
    parsed = urlparse(address)
    if parsed.scheme == "tcp":
        return socket.create_connection((parsed.hostname, parsed.port), timeout=timeout)
    if parsed.scheme == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(parsed.netloc + parsed.path)
        return sock
    raise ValueError(f"expected tcp://host:port or unix:///path, got {address!r}")


class ABCIClient:
    def __init__(self, address: str, timeout: float = 10.0):
        self.sock = connect(address, timeout)
        self._reader = self.sock.makefile("rb")

    def __enter__(self) -> "ABCIClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._reader.close()
        self.sock.close()

    # ------------------------------------------------------------ raw frames

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, request: abci_pb2.Request) -> None:
        body = request.SerializeToString()
        self.sock.sendall(encode_uvarint(len(body)) + body)

    def send_flush(self) -> None:
        self.send(abci_pb2.Request(flush=abci_pb2.RequestFlush()))

    def recv(self) -> abci_pb2.Response:
        """Next Response; raises ConnectionClosedError at end of stream."""
        length = 0
        for shift in range(0, 70, 7):
            byte = self._reader.read(1)
            if not byte:
                raise ConnectionClosedError("server closed the connection")
            length |= (byte[0] & 0x7F) << shift
            if byte[0] < 0x80:
                break
        else:
            raise ABCIClientError("length prefix longer than 10 bytes")
        body = self._reader.read(length)
        if len(body) != length:
            raise ConnectionClosedError("server closed the connection inside a frame")
        response = abci_pb2.Response()
        response.ParseFromString(body)
        return response

    def is_closed_by_server(self) -> bool:
        try:
            return self._reader.read(1) == b""
        except ConnectionResetError:
            return True

    # ------------------------------------------------------------ typed calls

    def call(self, kind: str, request=None, **fields):
        """Send Request{kind} and a Flush, return the Response* of the same kind."""
        if request is None:
            request = REQUEST_TYPES[kind](**fields)
        self.send(abci_pb2.Request(**{kind: request}))
        self.send_flush()
        response = self._expect(self.recv(), kind)
        self._expect(self.recv(), "flush")
        return response

    @staticmethod
    def _expect(response: abci_pb2.Response, kind: str):
        got = response.WhichOneof("value")
        if got == "exception":
            raise ABCIExceptionResponse(response.exception.error)
        if got != kind:
            raise UnexpectedResponseError(f"expected {kind}, got {got}")
        return getattr(response, kind)

    def echo(self, request=None, **fields) -> abci_pb2.ResponseEcho:
        return self.call("echo", request, **fields)

    def flush(self) -> abci_pb2.ResponseFlush:
        self.send_flush()
        return self._expect(self.recv(), "flush")

    def info(self, request=None, **fields) -> abci_pb2.ResponseInfo:
        return self.call("info", request, **fields)

    def init_chain(self, request=None, **fields) -> abci_pb2.ResponseInitChain:
        return self.call("init_chain", request, **fields)

    def query(self, request=None, **fields) -> abci_pb2.ResponseQuery:
        return self.call("query", request, **fields)

    def check_tx(self, request=None, **fields) -> abci_pb2.ResponseCheckTx:
        return self.call("check_tx", request, **fields)

    def commit(self, request=None, **fields) -> abci_pb2.ResponseCommit:
        return self.call("commit", request, **fields)

    def list_snapshots(self, request=None, **fields) -> abci_pb2.ResponseListSnapshots:
        return self.call("list_snapshots", request, **fields)

    def offer_snapshot(self, request=None, **fields) -> abci_pb2.ResponseOfferSnapshot:
        return self.call("offer_snapshot", request, **fields)

    def load_snapshot_chunk(self, request=None, **fields) -> abci_pb2.ResponseLoadSnapshotChunk:
        return self.call("load_snapshot_chunk", request, **fields)

    def apply_snapshot_chunk(self, request=None, **fields) -> abci_pb2.ResponseApplySnapshotChunk:
        return self.call("apply_snapshot_chunk", request, **fields)

    def prepare_proposal(self, request=None, **fields) -> abci_pb2.ResponsePrepareProposal:
        return self.call("prepare_proposal", request, **fields)

    def process_proposal(self, request=None, **fields) -> abci_pb2.ResponseProcessProposal:
        return self.call("process_proposal", request, **fields)

    def extend_vote(self, request=None, **fields) -> abci_pb2.ResponseExtendVote:
        return self.call("extend_vote", request, **fields)

    def verify_vote_extension(self, request=None, **fields) -> abci_pb2.ResponseVerifyVoteExtension:
        return self.call("verify_vote_extension", request, **fields)

    def finalize_block(self, request=None, **fields) -> abci_pb2.ResponseFinalizeBlock:
        return self.call("finalize_block", request, **fields)
