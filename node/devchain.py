"""The embedded dev chain: the app in-process, one validator producing blocks, CometBFT's RPC.

Home layout (as CometBFT's): config/genesis.json, config/priv_validator_key.json, data/application.db
(the app's), data/blockstore.db, data/tx_index.db.

Each height follows CometBFT's proposer path: reap the mempool, PrepareProposal, ProcessProposal,
ExtendVote (when enabled), sign the precommit, store block + commit, FinalizeBlock, store the results,
Commit, index, publish, recheck the mempool. Start-up runs CometBFT's handshake (Info, InitChain at
height 0, replay of stored blocks the app has not committed), so a kill -9 at any point is repaired.
"""

import json
import logging
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import plyvel

from chain import bank, crypto, merkle
from chain.coins import DENOM
from chain.proto.tendermint.abci import types_pb2 as abci_pb2
from chain.proto.tendermint.crypto import keys_pb2
from chain.proto.tendermint.types import block_pb2, evidence_pb2, params_pb2, types_pb2, validator_pb2
from chain.proto.tendermint.version import types_pb2 as version_pb2
from ibc.tendermint import (
    compute_commit_hash,
    compute_consensus_params_hash,
    compute_data_hash,
    compute_header_hash,
    compute_part_set_header,
    compute_results_hash,
    compute_tx_hash,
    compute_validator_address,
    compute_validator_set_hash,
    compute_vote_extension_sign_bytes,
    compute_vote_sign_bytes,
)
from node import app_config, cometbft_json, grpc_server, keyring, metrics, privval, rest, rpc
from node.blockstore import BlockStore, GenesisState, compute_block_bytes, compute_commit
from node.faults import log_fault
from node.logs import LOG_FIELDS, PLAIN_FORMAT
from node.grpc_backend import DevBackend
from node.mempool import Mempool, compute_proto_tx_size
from node.txindex import TxIndex

log = logging.getLogger("maxwell.devchain")

DEFAULT_BLOCK_TIME_MS = 1000
DEFAULT_VOTING_POWER = 10
DEFAULT_MONIKER = "maxwell-dev"
GENESIS_FILE = "config/genesis.json"
PRIV_VALIDATOR_KEY_FILE = "config/priv_validator_key.json"
DATA_DIR = "data"
BLOCKSTORE_DB = "blockstore.db"
TX_INDEX_DB = "tx_index.db"
ABCI_VERSION = "2.0.0"
MAX_CHAIN_ID_LENGTH = 50

MAX_BLOCK_SIZE_BYTES = 104857600
MAX_HEADER_BYTES = 626
MAX_OVERHEAD_FOR_BLOCK = 11
MAX_COMMIT_OVERHEAD_BYTES = 94
MAX_COMMIT_SIG_BYTES = 109
MIN_VOTE_TIME_INCREMENT_NS = 1_000_000

REQUEST_INFO = abci_pb2.RequestInfo(version=rpc.CMT_VERSION, block_version=rpc.BLOCK_PROTOCOL,
                                    p2p_version=rpc.P2P_PROTOCOL, abci_version=ABCI_VERSION)


class DevChainError(Exception):
    pass


class InvalidGenesis(DevChainError):
    pass


class InvalidHome(DevChainError):
    pass


class InvalidConsensusParams(DevChainError):
    pass


class UnsupportedValidatorSet(DevChainError):
    """The dev chain signs with its one key, so the validator set must be exactly that key."""


class HandshakeError(DevChainError):
    pass


class AppStateMissing(DevChainError):
    """The block store is past the first block but the app has no state: it was lost, not started fresh
    (the genesis state is committed with the first block, so only a crash in it leaves the app empty)."""


class AppHashMismatch(DevChainError):
    pass


class InvalidAppResponse(DevChainError):
    pass


@dataclass(frozen=True)
class Genesis:
    genesis_time_ns: int
    chain_id: str
    initial_height: int
    params: params_pb2.ConsensusParams
    validators: tuple[validator_pb2.Validator, ...]
    app_hash: bytes
    app_state_bytes: bytes
    doc: dict


@dataclass(frozen=True)
class ChainState:
    """What the next height is built on."""
    last_block_height: int
    last_block_id: types_pb2.BlockID
    app_hash: bytes
    last_results_hash: bytes
    params: params_pb2.ConsensusParams
    app_version: int
    last_commit: types_pb2.ExtendedCommit | None


@dataclass(frozen=True)
class BlockEvent:
    block: block_pb2.Block
    block_id: types_pb2.BlockID
    response: abci_pb2.ResponseFinalizeBlock
    tx_hashes: list[bytes]


# ---------------------------------------------------------------------------------------------
# Consensus params and genesis


def compute_default_consensus_params() -> params_pb2.ConsensusParams:
    params = params_pb2.ConsensusParams()
    params.block.max_bytes = 22020096
    params.block.max_gas = -1
    params.evidence.max_age_num_blocks = 100000
    params.evidence.max_age_duration.seconds = 48 * 3600
    params.evidence.max_bytes = 1048576
    params.validator.pub_key_types.append("ed25519")
    params.version.SetInParent()
    params.abci.vote_extensions_enable_height = 1  # validators attach their heat readings to votes
    return params


def compute_max_data_bytes(max_bytes: int, validator_count: int) -> int:
    """Room left for txs in a block (types.MaxDataBytes, no evidence)."""
    if max_bytes == -1:
        max_bytes = MAX_BLOCK_SIZE_BYTES
    return (max_bytes - MAX_OVERHEAD_FOR_BLOCK - MAX_HEADER_BYTES
            - (MAX_COMMIT_OVERHEAD_BYTES + (MAX_COMMIT_SIG_BYTES + 2) * validator_count))


def validate_consensus_params(params: params_pb2.ConsensusParams) -> None:
    max_bytes = params.block.max_bytes
    if max_bytes != -1 and not 0 < max_bytes <= MAX_BLOCK_SIZE_BYTES:
        raise InvalidConsensusParams(f"block.max_bytes must be -1 or in (0, {MAX_BLOCK_SIZE_BYTES}], got {max_bytes}")
    if compute_max_data_bytes(max_bytes, 1) < 0:
        raise InvalidConsensusParams(f"block.max_bytes {max_bytes} leaves no room for a header and a commit")
    if params.block.max_gas < -1:
        raise InvalidConsensusParams(f"block.max_gas must be >= -1, got {params.block.max_gas}")
    if params.abci.vote_extensions_enable_height < 0:
        raise InvalidConsensusParams("abci.vote_extensions_enable_height must be >= 0")


def compute_updated_params(params: params_pb2.ConsensusParams,
                           updates: params_pb2.ConsensusParams) -> params_pb2.ConsensusParams:
    """ConsensusParams.Update: every section present in the updates replaces the current one."""
    result = params_pb2.ConsensusParams()
    result.CopyFrom(params)
    for section in ("block", "evidence", "validator", "version", "abci"):
        if updates.HasField(section):
            getattr(result, section).CopyFrom(getattr(updates, section))
    validate_consensus_params(result)
    return result


def is_vote_extensions_enabled(params: params_pb2.ConsensusParams, height: int) -> bool:
    enable_height = params.abci.vote_extensions_enable_height
    return enable_height != 0 and height >= enable_height


def compute_genesis_validator(pub_key: bytes, power: int) -> validator_pb2.Validator:
    key = keys_pb2.PublicKey(ed25519=pub_key)
    return validator_pb2.Validator(address=compute_validator_address(key), pub_key=key, voting_power=power)


def encode_genesis_doc(genesis_time_ns: int, chain_id: str, initial_height: int,
                       params: params_pb2.ConsensusParams, validators, app_hash: bytes,
                       app_state, names=None) -> dict:
    """GenesisDoc JSON as CometBFT writes it."""
    doc = {
        "genesis_time": cometbft_json.format_time_ns(genesis_time_ns),
        "chain_id": chain_id,
        "initial_height": str(initial_height),
        "consensus_params": cometbft_json.encode_consensus_params(params),
    }
    if validators:
        doc["validators"] = [
            {"address": cometbft_json.encode_hex(v.address), "pub_key": cometbft_json.encode_pub_key(v.pub_key),
             "power": str(v.voting_power), "name": (names or {}).get(i, "")}
            for i, v in enumerate(validators)
        ]
    doc["app_hash"] = cometbft_json.encode_hex(app_hash)
    if app_state is not None:
        doc["app_state"] = app_state
    return doc


def create_genesis_doc(chain_id: str, key: privval.PrivValidatorKey, app_state=None,
                       genesis_time_ns: int | None = None, power: int = DEFAULT_VOTING_POWER,
                       initial_height: int = 1, params: params_pb2.ConsensusParams | None = None,
                       moniker: str = "") -> dict:
    """A genesis.json document for a chain validated by `key` (for `maxwell init`)."""
    params = params if params is not None else compute_default_consensus_params()
    validate_consensus_params(params)
    validator = compute_genesis_validator(key.pub_key, power)
    return encode_genesis_doc(time.time_ns() if genesis_time_ns is None else genesis_time_ns, chain_id,
                              initial_height, params, [validator], b"", app_state, names={0: moniker})


def compute_init_chain_request(genesis: Genesis) -> abci_pb2.RequestInitChain:
    """What CometBFT sends the app for this genesis."""
    return abci_pb2.RequestInitChain(
        time=cometbft_json.compute_timestamp(genesis.genesis_time_ns), chain_id=genesis.chain_id,
        consensus_params=genesis.params, app_state_bytes=genesis.app_state_bytes, initial_height=genesis.initial_height,
        validators=[abci_pb2.ValidatorUpdate(pub_key=v.pub_key, power=v.voting_power) for v in genesis.validators])


def decode_genesis(doc) -> Genesis:
    if not isinstance(doc, dict):
        raise InvalidGenesis("genesis must be a JSON object")
    chain_id = doc.get("chain_id")
    if not isinstance(chain_id, str) or not chain_id:
        raise InvalidGenesis("genesis doc must include non-empty chain_id")
    if len(chain_id) > MAX_CHAIN_ID_LENGTH:
        raise InvalidGenesis(f"chain_id in genesis doc is too long (max: {MAX_CHAIN_ID_LENGTH})")
    try:
        genesis_time_ns = cometbft_json.parse_time_ns(doc.get("genesis_time"))
        initial_height = cometbft_json.decode_int64_field(doc, "initial_height", 1) or 1
        params = cometbft_json.decode_consensus_params(doc.get("consensus_params"), compute_default_consensus_params())
        app_hash = bytes.fromhex(doc.get("app_hash") or "")
        validators, names = [], {}
        for i, entry in enumerate(doc.get("validators") or []):
            if not isinstance(entry, dict):
                raise ValueError(f"validator {i} must be an object")
            pub_key = cometbft_json.decode_pub_key(entry.get("pub_key"))
            power = cometbft_json.decode_int64_field(entry, "power", 0)
            if power <= 0:
                raise ValueError(f"validator {i} must have positive power")
            address = compute_validator_address(pub_key)
            if entry.get("address") and str(entry["address"]).upper() != address.hex().upper():
                raise ValueError(f"validator {i} address does not match its pub_key")
            validators.append(validator_pb2.Validator(address=address, pub_key=pub_key, voting_power=power))
            names[i] = str(entry.get("name") or "")
    except (ValueError, cometbft_json.InvalidTime) as e:
        raise InvalidGenesis(str(e)) from None
    if initial_height < 0:
        raise InvalidGenesis(f"initial_height cannot be negative, got {initial_height}")
    try:
        validate_consensus_params(params)
    except InvalidConsensusParams as e:
        raise InvalidGenesis(f"consensus_params: {e}") from None
    app_state = doc.get("app_state")
    app_state_bytes = b"" if app_state is None else json.dumps(app_state, separators=(",", ":")).encode()
    return Genesis(
        genesis_time_ns=genesis_time_ns, chain_id=chain_id, initial_height=initial_height, params=params,
        validators=tuple(validators), app_hash=app_hash, app_state_bytes=app_state_bytes,
        doc=encode_genesis_doc(genesis_time_ns, chain_id, initial_height, params, validators, app_hash,
                               app_state, names),
    )


def load_genesis(path: str | Path) -> Genesis:
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InvalidGenesis(f"{path} does not exist (run `maxwell init` first)") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidGenesis(f"{path} is not JSON: {e}") from None
    return decode_genesis(doc)


# ---------------------------------------------------------------------------------------------
# The chain


def _open_db(factory, path: Path):
    try:
        return factory(str(path))
    except plyvel.Error as e:
        raise InvalidHome(f"cannot open {path} (is another node running on this home?): {e}") from None


def compute_dev_accounts(home: Path, chain: "DevChain") -> list[str]:
    """The funded accounts of the home's test keyring — dev keys, unencrypted — with their mnemonics, as anvil
    lists its accounts at start."""
    lines = []
    for key in keyring.get_keys(home, "test"):
        with chain._app_lock:
            balance = bank.get_balance(chain.app.store, crypto.decode_address(key.address), DENOM)
        if balance:
            lines += [f"  {key.name}: {key.address} {balance}{DENOM}",
                      f"    mnemonic (dev only, never for real funds): {keyring.get_mnemonic(home, 'test', key.name)}"]
    return ["funded dev accounts (test keyring):", *lines] if lines else []


def compute_block_summary(height: int, response: abci_pb2.ResponseFinalizeBlock) -> tuple[str, dict]:
    """One log line a block: its txs (and how many failed), gas, the auctions it cleared, the proofs it verified;
    and the same as fields, for the JSON log format."""
    results = list(response.tx_results)
    events = [*response.events, *(e for result in results for e in result.events)]
    clearings = [dict((a.key, a.value) for a in e.attributes) for e in events if e.type == "auction_cleared"]
    cleared = ", ".join(f"{c['work']} {c['matched_slots']} slots at {c['price']}ujoule" for c in clearings) or "none"
    proofs = sum(1 for e in events if e.type == "inference_verified")
    failed = sum(1 for result in results if result.code)
    gas = sum(r.gas_used for r in results)
    fields = {"height": height, "txs": len(results), "failed": failed, "gas": gas, "proofs_verified": proofs,
              "cleared": [{"work": c["work"], "matched_slots": int(c["matched_slots"]), "price": int(c["price"])}
                          for c in clearings]}
    return (f"block {height}: {len(results)} txs ({failed} failed), gas {gas}, cleared {cleared}, "
            f"{proofs} proofs verified"), fields


class DevChain:
    def __init__(self, home: str | Path, app=None, block_time_ms: int = DEFAULT_BLOCK_TIME_MS,
                 moniker: str = DEFAULT_MONIKER, heat_sensor=None, keep_recent: int = 100, minimum_gas_price=None):
        if block_time_ms <= 0:
            raise DevChainError(f"block time must be positive, got {block_time_ms} ms")
        home = Path(home)
        self.genesis = load_genesis(home / GENESIS_FILE)
        try:
            self.key = privval.load(home / PRIV_VALIDATOR_KEY_FILE)
        except privval.PrivValError as e:
            raise InvalidHome(f"validator key: {e}") from None
        data_dir = home / DATA_DIR
        data_dir.mkdir(parents=True, exist_ok=True)
        self.block_time_ms = block_time_ms
        self.moniker = moniker
        self.blockstore = _open_db(BlockStore, data_dir / BLOCKSTORE_DB)
        try:
            self.txindex = _open_db(TxIndex, data_dir / TX_INDEX_DB)
        except InvalidHome:
            self.blockstore.close()
            raise
        self._owns_app = app is None
        if app is None:
            try:
                from node.application import open_app
                app = open_app(str(data_dir), keep_recent=keep_recent, heat_sensor=heat_sensor,
                               minimum_gas_price=minimum_gas_price)
            except BaseException:
                self.txindex.close()
                self.blockstore.close()
                raise
        self.app = metrics.InstrumentedApp(app)
        self.mempool = Mempool(self.check_tx)
        metrics.MEMPOOL_SIZE.set_function(self.mempool.size)
        self.validator: validator_pb2.Validator | None = None
        self.state: ChainState | None = None
        self.halt_error: BaseException | None = None
        self.rpc_server: rpc.RPCServer | None = None
        self._app_lock = threading.RLock()
        self._listeners = []
        self._stopping = threading.Event()
        self._producer: threading.Thread | None = None
        self._round = 0

    # -- app access (one lock, like CometBFT's local client) ---------------------------------------

    def get_info(self) -> abci_pb2.ResponseInfo:
        with self._app_lock:
            return self.app.info(REQUEST_INFO)

    def get_query(self, request: abci_pb2.RequestQuery) -> abci_pb2.ResponseQuery:
        if request.path in grpc_server.NODE_METHODS:  # answered outside the lock: they read the app themselves
            return grpc_server.NodeQueries(self.app, DevBackend(self)).query(request)
        with self._app_lock:
            return self.app.query(request)

    def check_tx(self, request: abci_pb2.RequestCheckTx) -> abci_pb2.ResponseCheckTx:
        with self._app_lock:
            response = self.app.check_tx(request)
        if response.code:
            tx_hash = compute_tx_hash(request.tx).hex().upper()
            log.info("tx %s rejected: code %d (%s): %s", tx_hash[:16], response.code, response.codespace, response.log,
                     extra={LOG_FIELDS: {"tx": tx_hash, "code": response.code, "codespace": response.codespace}})
        return response

    def subscribe(self, listener) -> None:
        """listener(BlockEvent) is called on the producer thread after every committed block."""
        self._listeners.append(listener)

    def unsubscribe(self, listener) -> None:
        self._listeners.remove(listener)

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self, rpc_laddr: str | None = None, rpc_config: rpc.RPCConfig = rpc.RPCConfig(),
              produce: bool = True) -> None:
        """Handshake with the app, serve RPC (when an address is given) and produce blocks (or, without
        `produce`, wait for `start_producing`)."""
        self.process_handshake()
        if rpc_laddr is not None:
            server = rpc.RPCServer(self, rpc_laddr, rpc_config)
            server.start()
            self.rpc_server = server
        if produce:
            self.start_producing()

    def start_producing(self) -> None:
        self._producer = threading.Thread(target=self._run_producer, name="block-producer", daemon=True)
        self._producer.start()

    def stop(self) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._producer is not None:
            self._producer.join()
        if self.rpc_server is not None:
            self.rpc_server.stop()
        with self._app_lock:
            if self._owns_app and hasattr(self.app, "close"):
                self.app.close()
            self.txindex.close()
            self.blockstore.close()

    def _run_producer(self) -> None:
        while not self._stopping.is_set():
            try:
                self.produce_block()
            except Exception as e:  # noqa: BLE001 - halt like CometBFT, but keep serving RPC
                log_fault(log, "block production halted (restart the node to replay and recover)", e)
                self.halt_error = e
                return
            self._stopping.wait(self.block_time_ms / 1000)

    # -- handshake ------------------------------------------------------------------------------

    def process_handshake(self) -> None:
        with self._app_lock:
            info = self.app.info(REQUEST_INFO)
            app_height = info.last_block_height
            store_height = self.blockstore.get_height()
            genesis_state = self.blockstore.get_genesis_state()
            if app_height == 0 and store_height > self.genesis.initial_height:
                raise AppStateMissing(f"the block store is at height {store_height} but the app's state "
                                      f"({DATA_DIR}/application.db) is empty or missing: restore it from a backup")
            if app_height == 0:
                genesis_state = self._process_init_chain(genesis_state)
                app_hash = genesis_state.app_hash
            elif genesis_state is None:
                raise HandshakeError(f"the app is at height {app_height} but the block store is empty")
            else:
                app_hash = info.last_block_app_hash
            if app_height > store_height:
                raise HandshakeError(f"the app is at height {app_height}, ahead of the block store ({store_height})")
            self.validator = self._get_validator(genesis_state)
            first = max(app_height + 1, self.genesis.initial_height)
            if first <= store_height:
                header = self.blockstore.get_block_meta(first).header
                if header.app_hash != app_hash:
                    raise AppHashMismatch(f"the app's hash {app_hash.hex().upper()} at height {first - 1} "
                                          f"differs from block {first}'s {header.app_hash.hex().upper()}")
            for height in range(first, store_height + 1):
                log.info("replaying block %d", height)
                self._replay_block(height)
            self.state = self._load_state(genesis_state, info.app_version)
            if app_height and app_height == store_height and app_hash != self.state.app_hash:
                raise AppHashMismatch(f"the app reports hash {app_hash.hex().upper()} at height {app_height}, "
                                      f"the chain has {self.state.app_hash.hex().upper()}")
        self._process_index_catch_up()

    def _process_init_chain(self, stored: GenesisState | None) -> GenesisState:
        g = self.genesis
        try:
            response = self.app.init_chain(compute_init_chain_request(g))
        except Exception as e:  # noqa: BLE001 - the app's own error type for a genesis it cannot use
            raise InvalidGenesis(f"the app refused the genesis: {e}") from e
        validators = [validator_pb2.Validator(address=compute_validator_address(u.pub_key), pub_key=u.pub_key,
                                              voting_power=u.power) for u in response.validators]
        params = g.params
        if response.HasField("consensus_params"):
            try:
                params = compute_updated_params(g.params, response.consensus_params)
            except InvalidConsensusParams as e:
                raise InvalidAppResponse(f"InitChain consensus params: {e}") from None
        state = GenesisState(validators=validators or list(g.validators), params=params,
                             app_hash=response.app_hash or g.app_hash)
        if stored is None:
            self.blockstore.process_genesis_state(state)
            self.blockstore.process_params(g.initial_height, params)
        elif stored != state:
            raise HandshakeError("InitChain returned other validators, params or app hash than the stored chain has")
        return state

    def _get_validator(self, genesis_state: GenesisState) -> validator_pb2.Validator:
        validators = genesis_state.validators
        if len(validators) != 1 or validators[0].address != self.key.address:
            found = ", ".join(v.address.hex().upper() for v in validators) or "none"
            raise UnsupportedValidatorSet(
                f"the dev chain runs exactly one validator, {self.key.address.hex().upper()} "
                f"(config/priv_validator_key.json); genesis/InitChain gave: {found}")
        return validators[0]

    def _replay_block(self, height: int) -> None:
        block, meta = self.blockstore.get_block(height), self.blockstore.get_block_meta(height)
        params = self.blockstore.get_params(height)
        if block is None or meta is None or params is None:
            raise HandshakeError(f"the block store is missing block {height} or its consensus params")
        stored = self.blockstore.get_results(height)
        following = self.blockstore.get_block_meta(height + 1)
        expected = stored.app_hash if stored is not None else following.header.app_hash if following else None
        self._execute_block(block, meta.block_id, params, expected)

    def _load_state(self, genesis_state: GenesisState, app_version: int) -> ChainState:
        height = self.blockstore.get_height()
        if height == 0:
            return ChainState(
                last_block_height=0, last_block_id=types_pb2.BlockID(),
                app_hash=genesis_state.app_hash, last_results_hash=compute_results_hash([]),
                params=self.blockstore.get_params(self.genesis.initial_height), app_version=app_version,
                last_commit=None)
        meta, results = self.blockstore.get_block_meta(height), self.blockstore.get_results(height)
        if results is None:
            raise HandshakeError(f"the block store has block {height} but not its FinalizeBlock results")
        return ChainState(
            last_block_height=height, last_block_id=meta.block_id,
            app_hash=results.app_hash,
            last_results_hash=compute_results_hash(list(results.tx_results)),
            params=self.blockstore.get_params(height + 1), app_version=app_version,
            last_commit=self.blockstore.get_seen_commit(height))

    def _process_index_catch_up(self) -> None:
        start = max(self.txindex.get_indexed_height() + 1, self.blockstore.get_base())
        for height in range(start, self.blockstore.get_height() + 1):
            block, results = self.blockstore.get_block(height), self.blockstore.get_results(height)
            txs = list(block.data.txs)
            self.txindex.process_block(height, txs, results, [compute_tx_hash(tx) for tx in txs])

    # -- one height -----------------------------------------------------------------------------

    def _compute_commit_info(self, commit: types_pb2.Commit) -> abci_pb2.CommitInfo:
        return abci_pb2.CommitInfo(round=commit.round, votes=[
            abci_pb2.VoteInfo(validator=abci_pb2.Validator(address=sig.validator_address,
                                                           power=self.validator.voting_power),
                              block_id_flag=sig.block_id_flag)
            for sig in commit.signatures
        ])

    def _compute_extended_commit_info(self, commit: types_pb2.ExtendedCommit | None) -> abci_pb2.ExtendedCommitInfo:
        if commit is None:
            return abci_pb2.ExtendedCommitInfo()
        return abci_pb2.ExtendedCommitInfo(round=commit.round, votes=[
            abci_pb2.ExtendedVoteInfo(
                validator=abci_pb2.Validator(address=sig.validator_address, power=self.validator.voting_power),
                vote_extension=sig.extension, extension_signature=sig.extension_signature,
                block_id_flag=sig.block_id_flag)
            for sig in commit.extended_signatures
        ])

    def _build_block(self, state: ChainState, height: int, time_ns: int, txs: list[bytes],
                     last_commit: types_pb2.Commit) -> tuple[block_pb2.Block, types_pb2.BlockID, int]:
        validators_hash = compute_validator_set_hash([self.validator])
        header = types_pb2.Header(
            version=version_pb2.Consensus(block=rpc.BLOCK_PROTOCOL, app=state.app_version),
            chain_id=self.genesis.chain_id, height=height, time=cometbft_json.compute_timestamp(time_ns),
            last_block_id=state.last_block_id, last_commit_hash=compute_commit_hash(last_commit),
            data_hash=compute_data_hash(txs), validators_hash=validators_hash,
            next_validators_hash=validators_hash, consensus_hash=compute_consensus_params_hash(state.params),
            app_hash=state.app_hash, last_results_hash=state.last_results_hash,
            evidence_hash=merkle.compute_root([]), proposer_address=self.key.address)
        block = block_pb2.Block(header=header, data=types_pb2.Data(txs=txs), evidence=evidence_pb2.EvidenceList(),
                                last_commit=last_commit)
        block_bytes = compute_block_bytes(block)
        block_id = types_pb2.BlockID(hash=compute_header_hash(header),
                                     part_set_header=compute_part_set_header(block_bytes))
        return block, block_id, len(block_bytes)

    def _sign_commit(self, block: block_pb2.Block, block_id: types_pb2.BlockID, round_: int,
                     commit_info: abci_pb2.CommitInfo, params: params_pb2.ConsensusParams) -> types_pb2.ExtendedCommit:
        header = block.header
        extensions = is_vote_extensions_enabled(params, header.height)
        extension = b""
        if extensions:
            extension = self.app.extend_vote(abci_pb2.RequestExtendVote(
                hash=block_id.hash, height=header.height, time=header.time, txs=block.data.txs,
                proposed_last_commit=commit_info, next_validators_hash=header.next_validators_hash,
                proposer_address=header.proposer_address)).vote_extension
        vote_time_ns = max(time.time_ns(), cometbft_json.compute_time_ns(header.time) + MIN_VOTE_TIME_INCREMENT_NS)
        vote = types_pb2.Vote(type=types_pb2.SIGNED_MSG_TYPE_PRECOMMIT, height=header.height, round=round_,
                              block_id=block_id, timestamp=cometbft_json.compute_timestamp(vote_time_ns),
                              validator_address=self.key.address, validator_index=0, extension=extension)
        signature = privval.sign(self.key, compute_vote_sign_bytes(self.genesis.chain_id, vote))
        extension_signature = (privval.sign(self.key, compute_vote_extension_sign_bytes(self.genesis.chain_id, vote))
                               if extensions else b"")
        return types_pb2.ExtendedCommit(height=header.height, round=round_, block_id=block_id, extended_signatures=[
            types_pb2.ExtendedCommitSig(block_id_flag=validator_pb2.BLOCK_ID_FLAG_COMMIT,
                                        validator_address=self.key.address, timestamp=vote.timestamp,
                                        signature=signature, extension=extension,
                                        extension_signature=extension_signature)])

    def _execute_block(self, block: block_pb2.Block, block_id: types_pb2.BlockID,
                       params: params_pb2.ConsensusParams, expected_app_hash: bytes | None = None,
                       ) -> tuple[abci_pb2.ResponseFinalizeBlock, params_pb2.ConsensusParams]:
        """FinalizeBlock, persist its results (before Commit, so a crash replays them), Commit."""
        header = block.header
        response = self.app.finalize_block(abci_pb2.RequestFinalizeBlock(
            txs=block.data.txs, decided_last_commit=self._compute_commit_info(block.last_commit),
            hash=block_id.hash, height=header.height, time=header.time,
            next_validators_hash=header.next_validators_hash, proposer_address=header.proposer_address))
        if len(response.tx_results) != len(block.data.txs):
            raise InvalidAppResponse(f"FinalizeBlock returned {len(response.tx_results)} tx results "
                                     f"for {len(block.data.txs)} txs at height {header.height}")
        if response.validator_updates:
            raise UnsupportedValidatorSet(f"FinalizeBlock at height {header.height} returned validator updates; "
                                          "the dev chain runs one fixed validator")
        if expected_app_hash is not None and response.app_hash != expected_app_hash:
            raise AppHashMismatch(f"replaying block {header.height} gave app hash {response.app_hash.hex().upper()}, "
                                  f"the chain has {expected_app_hash.hex().upper()}")
        next_params = params
        if response.HasField("consensus_param_updates"):
            try:
                next_params = compute_updated_params(params, response.consensus_param_updates)
            except InvalidConsensusParams as e:
                raise InvalidAppResponse(f"FinalizeBlock consensus param updates: {e}") from None
        self.blockstore.process_results(header.height, response, next_params)
        self.app.commit(abci_pb2.RequestCommit())
        return response, next_params

    def produce_block(self) -> int | None:
        """Propose, sign, execute and commit the next height; None if the app rejected the proposal."""
        with self._app_lock:
            state, genesis = self.state, self.genesis
            height = state.last_block_height + 1 if state.last_block_height else genesis.initial_height
            params = state.params
            if state.last_commit is None:
                time_ns, last_commit = genesis.genesis_time_ns, types_pb2.Commit()
            else:
                time_ns = cometbft_json.compute_time_ns(state.last_commit.extended_signatures[0].timestamp)
                last_commit = compute_commit(state.last_commit)
            max_data_bytes = compute_max_data_bytes(params.block.max_bytes, 1)
            reap_bytes = -1 if params.block.max_bytes == -1 else max_data_bytes
            round_ = self._round
            txs = self.mempool.reap(reap_bytes, params.block.max_gas) if round_ == 0 else []
            validators_hash = compute_validator_set_hash([self.validator])
            prepared = self.app.prepare_proposal(abci_pb2.RequestPrepareProposal(
                max_tx_bytes=max_data_bytes, txs=txs,
                local_last_commit=self._compute_extended_commit_info(state.last_commit), height=height,
                time=cometbft_json.compute_timestamp(time_ns), next_validators_hash=validators_hash,
                proposer_address=self.key.address))
            txs = list(prepared.txs)
            size = sum(compute_proto_tx_size(tx) for tx in txs)
            if size > max_data_bytes:
                raise InvalidAppResponse(f"PrepareProposal returned {size} bytes of txs, the limit is {max_data_bytes}")
            block, block_id, block_size = self._build_block(state, height, time_ns, txs, last_commit)
            commit_info = self._compute_commit_info(last_commit)
            processed = self.app.process_proposal(abci_pb2.RequestProcessProposal(
                txs=txs, proposed_last_commit=commit_info, hash=block_id.hash, height=height,
                time=block.header.time, next_validators_hash=validators_hash, proposer_address=self.key.address))
            if processed.status != abci_pb2.ResponseProcessProposal.ACCEPT:
                log.error("the app rejected its own proposal for height %d round %d (%d txs); "
                          "next round proposes without mempool txs", height, round_, len(txs))
                self._round += 1
                return None
            seen_commit = self._sign_commit(block, block_id, round_, commit_info, params)
            self.blockstore.process_block(block, block_id, block_size, seen_commit)
            response, next_params = self._execute_block(block, block_id, params)
            self._round = 0
            tx_hashes = [compute_tx_hash(tx) for tx in txs]
            self.txindex.process_block(height, txs, response, tx_hashes)
            app_version = state.app_version
            if response.consensus_param_updates.HasField("version"):
                app_version = next_params.version.app
            self.state = ChainState(
                last_block_height=height, last_block_id=block_id,
                app_hash=response.app_hash, last_results_hash=compute_results_hash(list(response.tx_results)),
                params=next_params, app_version=app_version, last_commit=seen_commit)
            self.mempool.process_committed(txs, list(response.tx_results))
            self.mempool.process_recheck()
        message, fields = compute_block_summary(height, response)
        log.info(message, extra={LOG_FIELDS: fields})
        event = BlockEvent(block=block, block_id=block_id, response=response, tx_hashes=tx_hashes)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # noqa: BLE001 - a subscriber must not stop the chain
                log.exception("block listener failed")
        return height


def run(home: str, rpc: str = app_config.DEFAULT_RPC_ADDRESS, block_time_ms: int = DEFAULT_BLOCK_TIME_MS, app=None,
        heat_sensor=None, keep_recent: int = 100, grpc: str = "off", rest_address: str = "off",
        rest_cors: str = "off", faucet=None, minimum_gas_price=None) -> None:
    """Run the dev chain until SIGINT/SIGTERM (blocking); `heat_sensor` feeds the app's vote extensions;
    `grpc` and `rest_address` are the gRPC server's and the REST gateway's host:port (for maxwell's App),
    or "off"; `rest_cors` the origins the gateway allows (node.rest.parse_cors); `faucet` (node.faucet.Faucet),
    when given, answers on the gateway; `minimum_gas_price` is the node's fee floor (chain.app.App)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format=PLAIN_FORMAT)
    chain = DevChain(home, app=app, block_time_ms=block_time_ms, heat_sensor=heat_sensor, keep_recent=keep_recent,
                     minimum_gas_price=minimum_gas_price)
    stopping = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stopping.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    grpc_service = rest_service = None
    try:  # blocks once every listener is up: a port in use is refused before any block is made
        chain.start(rpc, produce=False)
        if grpc_server.is_enabled(grpc):
            grpc_service, _ = grpc_server.serve(DevBackend(chain), grpc)
        if grpc_server.is_enabled(rest_address):
            rest_service = rest.serve(DevBackend(chain), rest_address, rest_cors, faucet)
        chain.start_producing()
        log.info("dev chain %s serving RPC on %s, a block every %d ms",
                 chain.genesis.chain_id, chain.rpc_server.url, block_time_ms)
        for line in compute_dev_accounts(Path(home), chain):
            log.info(line)
        while not stopping.wait(0.5):
            pass
        log.info("shutting down")
    finally:
        if rest_service is not None:
            rest_service.stop()
        if grpc_service is not None:
            grpc_service.stop(grpc_server.SHUTDOWN_GRACE_S).wait()
        chain.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
