"""What the gRPC server asks of the node it runs in: the app, the mempool, the block store and the tx index.

`DevBackend` reads them in-process from the dev chain (`maxwell dev`); `CometBackend` asks the CometBFT
node that drives the app (`maxwell start`) over its RPC, and calls the app in-process through
`LockedApp`, which the ABCI server shares so that a query never runs inside a block.
Both answer in protobuf: tendermint.types blocks and headers, txindex.IndexedTx, abci responses.
"""

import base64
import threading

from chain.proto.tendermint.abci import types_pb2 as abci_pb2
from chain.proto.tendermint.p2p import types_pb2 as p2p_pb2
from chain.proto.tendermint.types import block_pb2, evidence_pb2, types_pb2, validator_pb2
from chain.proto.tendermint.version import types_pb2 as version_pb2
from node import cometbft_json, rpc, txindex
from node.client import Client, RpcError, compute_http_url, decode_base64, decode_hex, decode_int, decode_str
from node.mempool import MempoolError

MAX_VALIDATORS_PER_PAGE = 100
ORDER_DESC = "desc"


class BackendError(Exception):
    pass


class InvalidTxQuery(BackendError):
    """The events query does not parse, or its page is out of range."""


class BroadcastRefused(BackendError):
    """The mempool refused the tx before CheckTx (duplicate, full, too large, empty)."""


class MalformedNodeAnswer(BackendError):
    """CometBFT's RPC answered with JSON that is not what it should be."""


class LockedApp:
    """The app with one lock around every call, for the ABCI server and the gRPC server to share."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __getattr__(self, name):
        method = getattr(self.app, name)

        def call(*args, **kwargs):
            with self.lock:
                return method(*args, **kwargs)

        return call


def compute_page(page: int, per_page: int, total: int) -> int:
    """The index of the page's first item, with CometBFT's check that the page exists."""
    pages = max((total - 1) // per_page + 1, 1)
    if not 1 <= page <= pages:
        raise InvalidTxQuery(f"page should be within [1, {pages}] range, given {page}")
    return (page - 1) * per_page


class DevBackend:
    def __init__(self, chain):
        self.chain = chain
        self.query = chain.get_query
        self.info = chain.get_info
        self.store = chain.app.store
        self.minimum_gas_price = chain.app.minimum_gas_price

    def get_latest_height(self) -> int:
        return self.chain.state.last_block_height

    def get_rpc_url(self) -> str:
        return self.chain.rpc_server.url

    def get_base_height(self) -> int:
        return self.chain.blockstore.get_base()

    def broadcast_tx(self, tx: bytes) -> abci_pb2.ResponseCheckTx:
        try:
            return self.chain.mempool.process_tx(tx)
        except MempoolError as error:
            raise BroadcastRefused(str(error)) from None

    def broadcast_tx_async(self, tx: bytes) -> None:
        """CheckTx runs here and its outcome is dropped: the caller gets the hash alone, as from CometBFT."""
        try:
            self.chain.mempool.process_tx(tx)
        except MempoolError:
            pass

    def get_tx(self, tx_hash: bytes) -> txindex.IndexedTx | None:
        return self.chain.txindex.get_tx(tx_hash)

    def search_txs(self, query: str, page: int, per_page: int, order: str) -> tuple[list[txindex.IndexedTx], int]:
        try:
            found = self.chain.txindex.search_txs(txindex.parse_query(query))
        except txindex.QueryError as error:
            raise InvalidTxQuery(str(error)) from None
        if order == ORDER_DESC:
            found.reverse()
        start = compute_page(page, per_page, len(found))
        return found[start:start + per_page], len(found)

    def get_block(self, height: int) -> tuple[types_pb2.BlockID, block_pb2.Block] | None:
        block, meta = self.chain.blockstore.get_block(height), self.chain.blockstore.get_block_meta(height)
        if block is None or meta is None:
            return None
        return meta.block_id, block

    def get_header(self, height: int) -> types_pb2.Header | None:
        meta = self.chain.blockstore.get_block_meta(height)
        return meta.header if meta else None

    def get_validators(self, height: int) -> list[validator_pb2.Validator]:
        return [self.chain.validator]

    def get_node_info(self) -> p2p_pb2.DefaultNodeInfo:
        chain = self.chain
        address = chain.rpc_server.laddr if chain.rpc_server else ""
        return p2p_pb2.DefaultNodeInfo(
            protocol_version=p2p_pb2.ProtocolVersion(p2p=rpc.P2P_PROTOCOL, block=rpc.BLOCK_PROTOCOL,
                                                     app=chain.state.app_version),
            default_node_id=chain.validator.address.hex(), listen_addr=address, network=chain.genesis.chain_id,
            version=rpc.CMT_VERSION, channels=bytes.fromhex(rpc.NODE_CHANNELS), moniker=chain.moniker,
            other=p2p_pb2.DefaultNodeInfoOther(tx_index="on", rpc_address=address))

    def is_syncing(self) -> bool:
        return False


# --- CometBFT's RPC JSON, decoded into protobuf --------------------------------------------------

def get_object(data: dict, name: str) -> dict:
    value = data.get(name) if isinstance(data, dict) else None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedNodeAnswer(f"{name!r} is not a JSON object")
    return value


def get_list(data: dict, name: str) -> list:
    value = data.get(name) if isinstance(data, dict) else None
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedNodeAnswer(f"{name!r} is not a JSON list")
    return value


def decode_time(data: dict, name: str):
    try:
        return cometbft_json.compute_timestamp(cometbft_json.parse_time_ns(data.get(name)))
    except cometbft_json.InvalidTime as error:
        raise MalformedNodeAnswer(f"{name!r}: {error}") from None


def decode_block_id(data: dict) -> types_pb2.BlockID:
    parts = get_object(data, "parts")
    return types_pb2.BlockID(hash=decode_hex(data, "hash"), part_set_header=types_pb2.PartSetHeader(
        total=decode_int(parts, "total"), hash=decode_hex(parts, "hash")))


def decode_header(data: dict) -> types_pb2.Header:
    version = get_object(data, "version")
    hashes = {name: decode_hex(data, name) for name in (
        "last_commit_hash", "data_hash", "validators_hash", "next_validators_hash", "consensus_hash", "app_hash",
        "last_results_hash", "evidence_hash", "proposer_address")}
    return types_pb2.Header(
        version=version_pb2.Consensus(block=decode_int(version, "block"), app=decode_int(version, "app")),
        chain_id=decode_str(data, "chain_id"), height=decode_int(data, "height"), time=decode_time(data, "time"),
        last_block_id=decode_block_id(get_object(data, "last_block_id")), **hashes)


def decode_commit(data: dict) -> types_pb2.Commit:
    return types_pb2.Commit(
        height=decode_int(data, "height"), round=decode_int(data, "round"),
        block_id=decode_block_id(get_object(data, "block_id")),
        signatures=[types_pb2.CommitSig(
            block_id_flag=decode_int(sig, "block_id_flag"), validator_address=decode_hex(sig, "validator_address"),
            timestamp=decode_time(sig, "timestamp"), signature=decode_base64(sig, "signature"))
            for sig in get_list(data, "signatures")])


def decode_block(data: dict) -> block_pb2.Block:
    """The block as CometBFT's RPC shows it (evidence, which that JSON gives in amino form, is left out)."""
    txs = get_list(get_object(data, "data"), "txs")
    return block_pb2.Block(header=decode_header(get_object(data, "header")),
                           data=types_pb2.Data(txs=[decode_base64({"tx": tx}, "tx") for tx in txs]),
                           evidence=evidence_pb2.EvidenceList(),
                           last_commit=decode_commit(get_object(data, "last_commit")))


def decode_exec_tx_result(data: dict) -> abci_pb2.ExecTxResult:
    return abci_pb2.ExecTxResult(
        code=decode_int(data, "code"), data=decode_base64(data, "data"), log=decode_str(data, "log"),
        info=decode_str(data, "info"), gas_wanted=decode_int(data, "gas_wanted"), gas_used=decode_int(data, "gas_used"),
        codespace=decode_str(data, "codespace"),
        events=[abci_pb2.Event(type=decode_str(event, "type"), attributes=[
            abci_pb2.EventAttribute(key=decode_str(a, "key"), value=decode_str(a, "value"), index=bool(a.get("index")))
            for a in get_list(event, "attributes")]) for event in get_list(data, "events")])


def decode_indexed_tx(data: dict) -> txindex.IndexedTx:
    height, index = decode_int(data, "height"), decode_int(data, "index")
    result = abci_pb2.TxResult(height=height, index=index, tx=decode_base64(data, "tx"),
                               result=decode_exec_tx_result(get_object(data, "tx_result")))
    return txindex.IndexedTx(height=height, index=index, hash=decode_hex(data, "hash"), result=result)


def decode_validator(data: dict) -> validator_pb2.Validator:
    try:
        pub_key = cometbft_json.decode_pub_key(data.get("pub_key"))
    except ValueError as error:
        raise MalformedNodeAnswer(f"validator pub_key: {error}") from None
    return validator_pb2.Validator(address=decode_hex(data, "address"), pub_key=pub_key,
                                   voting_power=decode_int(data, "voting_power"),
                                   proposer_priority=decode_int(data, "proposer_priority"))


def decode_node_info(data: dict) -> p2p_pb2.DefaultNodeInfo:
    protocol, other = get_object(data, "protocol_version"), get_object(data, "other")
    return p2p_pb2.DefaultNodeInfo(
        protocol_version=p2p_pb2.ProtocolVersion(p2p=decode_int(protocol, "p2p"), block=decode_int(protocol, "block"),
                                                 app=decode_int(protocol, "app")),
        default_node_id=decode_str(data, "id"), listen_addr=decode_str(data, "listen_addr"),
        network=decode_str(data, "network"), version=decode_str(data, "version"),
        channels=decode_hex(data, "channels"), moniker=decode_str(data, "moniker"),
        other=p2p_pb2.DefaultNodeInfoOther(tx_index=decode_str(other, "tx_index"),
                                           rpc_address=decode_str(other, "rpc_address")))


class CometBackend:
    def __init__(self, app: LockedApp, node: str):
        self.client = Client(node)
        self.query = app.query
        self.store = app.app.store
        self.minimum_gas_price = app.app.minimum_gas_price
        self.app = app

    def get_rpc_url(self) -> str:
        return compute_http_url(self.client.node)

    def info(self) -> abci_pb2.ResponseInfo:
        return self.app.info(abci_pb2.RequestInfo())

    def call(self, method: str, **params) -> dict:
        return self.client.call(method, params)

    def get_sync_info(self) -> dict:
        return get_object(self.call("status"), "sync_info")

    def get_latest_height(self) -> int:
        return decode_int(self.get_sync_info(), "latest_block_height")

    def get_base_height(self) -> int:
        return decode_int(self.get_sync_info(), "earliest_block_height")

    def broadcast_tx(self, tx: bytes) -> abci_pb2.ResponseCheckTx:
        try:
            result = self.call("broadcast_tx_sync", tx=base64.b64encode(tx).decode())
        except RpcError as error:
            raise BroadcastRefused(str(error)) from None
        return abci_pb2.ResponseCheckTx(code=decode_int(result, "code"), data=decode_hex(result, "data"),
                                        log=decode_str(result, "log"), codespace=decode_str(result, "codespace"))

    def broadcast_tx_async(self, tx: bytes) -> None:
        self.call("broadcast_tx_async", tx=base64.b64encode(tx).decode())

    def get_tx(self, tx_hash: bytes) -> txindex.IndexedTx | None:
        try:
            return decode_indexed_tx(self.call("tx", hash=base64.b64encode(tx_hash).decode(), prove=False))
        except RpcError as error:
            if "not found" in str(error):
                return None
            raise

    def search_txs(self, query: str, page: int, per_page: int, order: str) -> tuple[list[txindex.IndexedTx], int]:
        try:
            result = self.call("tx_search", query=query, prove=False, page=str(page), per_page=str(per_page),
                               order_by=order)
        except RpcError as error:
            raise InvalidTxQuery(str(error)) from None
        return [decode_indexed_tx(tx) for tx in get_list(result, "txs")], decode_int(result, "total_count")

    def get_block(self, height: int) -> tuple[types_pb2.BlockID, block_pb2.Block] | None:
        result = self.call("block", height=str(height))
        if result.get("block") is None:
            return None
        return decode_block_id(get_object(result, "block_id")), decode_block(get_object(result, "block"))

    def get_header(self, height: int) -> types_pb2.Header | None:
        header = self.call("header", height=str(height)).get("header")
        return decode_header(header) if header else None

    def get_validators(self, height: int) -> list[validator_pb2.Validator]:
        validators, page = [], 1
        while True:
            result = self.call("validators", height=str(height), page=str(page), per_page=str(MAX_VALIDATORS_PER_PAGE))
            validators += [decode_validator(v) for v in get_list(result, "validators")]
            if len(validators) >= decode_int(result, "total") or not get_list(result, "validators"):
                return validators
            page += 1

    def get_node_info(self) -> p2p_pb2.DefaultNodeInfo:
        return decode_node_info(get_object(self.call("status"), "node_info"))

    def is_syncing(self) -> bool:
        return bool(self.get_sync_info().get("catching_up"))
