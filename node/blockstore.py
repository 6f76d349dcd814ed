"""Blocks, commits, FinalizeBlock results and per-height consensus params of the dev chain (LevelDB).

A block and its seen commit are written in one batch before the app executes it; the
FinalizeBlock response and the params for the next height in one batch before the app commits.
That order lets a restart repair any crash (see node/devchain.py handshake).
"""

import struct
from dataclasses import dataclass

import plyvel

from chain.proto.tendermint.abci import types_pb2 as abci_pb2
from chain.proto.tendermint.types import block_pb2, params_pb2, types_pb2, validator_pb2

BLOCK_PREFIX = b"block:"
META_PREFIX = b"meta:"
HASH_PREFIX = b"hash:"
SEEN_COMMIT_PREFIX = b"seen:"
RESULTS_PREFIX = b"results:"
PARAMS_PREFIX = b"params:"
HEIGHT_KEY = b"state:height"
BASE_KEY = b"state:base"
GENESIS_VALIDATORS_KEY = b"genesis:validators"
GENESIS_PARAMS_KEY = b"genesis:params"
GENESIS_APP_HASH_KEY = b"genesis:app_hash"


class BlockStoreError(Exception):
    pass


class NonContiguousBlock(BlockStoreError):
    pass


@dataclass(frozen=True)
class GenesisState:
    """What InitChain settled: the validator set, the consensus params and the initial app hash."""
    validators: list[validator_pb2.Validator]
    params: params_pb2.ConsensusParams
    app_hash: bytes


def _key(prefix: bytes, height: int) -> bytes:
    return prefix + struct.pack(">Q", height)


def compute_block_bytes(block: block_pb2.Block) -> bytes:
    """The block as gogoproto marshals it: non-nullable sub-messages present even when empty."""
    message = block_pb2.Block()
    message.CopyFrom(block)
    header = message.header
    for sub in (header.version, header.time, header.last_block_id, header.last_block_id.part_set_header,
                message.data, message.evidence):
        sub.SetInParent()
    if block.HasField("last_commit"):
        message.last_commit.block_id.part_set_header.SetInParent()
        for sig in message.last_commit.signatures:
            sig.timestamp.SetInParent()
    return message.SerializeToString()


def compute_commit(extended: types_pb2.ExtendedCommit) -> types_pb2.Commit:
    """ExtendedCommit.ToCommit: the same votes without their extensions."""
    commit = types_pb2.Commit(height=extended.height, round=extended.round, block_id=extended.block_id)
    for sig in extended.extended_signatures:
        commit.signatures.add(block_id_flag=sig.block_id_flag, validator_address=sig.validator_address,
                              timestamp=sig.timestamp, signature=sig.signature)
    return commit


class BlockStore:
    def __init__(self, path: str):
        self.db = plyvel.DB(path, create_if_missing=True)

    def close(self) -> None:
        self.db.close()

    def _get_int(self, key: bytes) -> int:
        raw = self.db.get(key)
        return struct.unpack(">Q", raw)[0] if raw else 0

    def get_height(self) -> int:
        """Height of the last stored block, 0 when there is none."""
        return self._get_int(HEIGHT_KEY)

    def get_base(self) -> int:
        """Height of the first stored block, 0 when there is none."""
        return self._get_int(BASE_KEY)

    def get_genesis_state(self) -> GenesisState | None:
        raw_validators = self.db.get(GENESIS_VALIDATORS_KEY)
        if raw_validators is None:
            return None
        return GenesisState(
            validators=list(validator_pb2.ValidatorSet.FromString(raw_validators).validators),
            params=params_pb2.ConsensusParams.FromString(self.db.get(GENESIS_PARAMS_KEY)),
            app_hash=self.db.get(GENESIS_APP_HASH_KEY),
        )

    def process_genesis_state(self, state: GenesisState) -> None:
        with self.db.write_batch(transaction=True, sync=True) as batch:
            batch.put(GENESIS_VALIDATORS_KEY,
                      validator_pb2.ValidatorSet(validators=state.validators).SerializeToString())
            batch.put(GENESIS_PARAMS_KEY, state.params.SerializeToString())
            batch.put(GENESIS_APP_HASH_KEY, state.app_hash)

    def process_block(self, block: block_pb2.Block, block_id: types_pb2.BlockID, block_size: int,
                      seen_commit: types_pb2.ExtendedCommit) -> None:
        height = block.header.height
        last = self.get_height()
        if last and height != last + 1:
            raise NonContiguousBlock(f"cannot store block {height} after block {last}")
        meta = types_pb2.BlockMeta(block_id=block_id, block_size=block_size, header=block.header,
                                   num_txs=len(block.data.txs))
        with self.db.write_batch(transaction=True, sync=True) as batch:
            batch.put(_key(BLOCK_PREFIX, height), compute_block_bytes(block))
            batch.put(_key(META_PREFIX, height), meta.SerializeToString())
            batch.put(HASH_PREFIX + block_id.hash, struct.pack(">Q", height))
            batch.put(_key(SEEN_COMMIT_PREFIX, height), seen_commit.SerializeToString())
            if not last:
                batch.put(BASE_KEY, struct.pack(">Q", height))
            batch.put(HEIGHT_KEY, struct.pack(">Q", height))

    def process_results(self, height: int, response: abci_pb2.ResponseFinalizeBlock,
                        next_params: params_pb2.ConsensusParams) -> None:
        with self.db.write_batch(transaction=True, sync=True) as batch:
            batch.put(_key(RESULTS_PREFIX, height), response.SerializeToString())
            batch.put(_key(PARAMS_PREFIX, height + 1), next_params.SerializeToString())

    def process_params(self, height: int, params: params_pb2.ConsensusParams) -> None:
        self.db.put(_key(PARAMS_PREFIX, height), params.SerializeToString(), sync=True)

    def get_block(self, height: int) -> block_pb2.Block | None:
        raw = self.db.get(_key(BLOCK_PREFIX, height))
        return None if raw is None else block_pb2.Block.FromString(raw)

    def get_block_meta(self, height: int) -> types_pb2.BlockMeta | None:
        raw = self.db.get(_key(META_PREFIX, height))
        return None if raw is None else types_pb2.BlockMeta.FromString(raw)

    def get_height_by_hash(self, block_hash: bytes) -> int | None:
        raw = self.db.get(HASH_PREFIX + block_hash)
        return None if raw is None else struct.unpack(">Q", raw)[0]

    def get_seen_commit(self, height: int) -> types_pb2.ExtendedCommit | None:
        raw = self.db.get(_key(SEEN_COMMIT_PREFIX, height))
        return None if raw is None else types_pb2.ExtendedCommit.FromString(raw)

    def get_commit(self, height: int) -> tuple[types_pb2.Commit, bool] | None:
        """The commit for a height and whether it is canonical (included in the next block)."""
        following = self.get_block(height + 1)
        if following is not None:
            return following.last_commit, True
        seen = self.get_seen_commit(height)
        return None if seen is None else (compute_commit(seen), False)

    def get_results(self, height: int) -> abci_pb2.ResponseFinalizeBlock | None:
        raw = self.db.get(_key(RESULTS_PREFIX, height))
        return None if raw is None else abci_pb2.ResponseFinalizeBlock.FromString(raw)

    def get_params(self, height: int) -> params_pb2.ConsensusParams | None:
        raw = self.db.get(_key(PARAMS_PREFIX, height))
        return None if raw is None else params_pb2.ConsensusParams.FromString(raw)
