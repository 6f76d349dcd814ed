"""FIFO mempool with CometBFT's CheckTx cache, size limits and post-commit RECHECK (mempool/clist_mempool.go)."""

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from chain.encoding import encode_uvarint
from chain.proto.tendermint.abci import types_pb2 as abci_pb2
from ibc.tendermint import compute_tx_hash

log = logging.getLogger("maxwell.mempool")

DEFAULT_MAX_TXS = 5000
DEFAULT_MAX_TXS_BYTES = 1 << 30
DEFAULT_MAX_TX_BYTES = 1 << 20
DEFAULT_CACHE_SIZE = 10000
CODE_OK = 0


class MempoolError(Exception):
    pass


class TxInCache(MempoolError):
    def __init__(self):
        super().__init__("tx already exists in cache")


class TxTooLarge(MempoolError):
    pass


class MempoolFull(MempoolError):
    pass


class EmptyTx(MempoolError):
    def __init__(self):
        super().__init__("tx is empty")


@dataclass
class MempoolTx:
    tx: bytes
    hash: bytes
    gas_wanted: int


def compute_proto_tx_size(tx: bytes) -> int:
    """Bytes one tx adds to a marshalled tendermint.types.Data (tag, length varint, payload)."""
    return 1 + len(encode_uvarint(len(tx))) + len(tx)


class Mempool:
    def __init__(
        self,
        check_tx: Callable[[abci_pb2.RequestCheckTx], abci_pb2.ResponseCheckTx],
        max_txs: int = DEFAULT_MAX_TXS,
        max_txs_bytes: int = DEFAULT_MAX_TXS_BYTES,
        max_tx_bytes: int = DEFAULT_MAX_TX_BYTES,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ):
        self.check_tx = check_tx
        self.max_txs = max_txs
        self.max_txs_bytes = max_txs_bytes
        self.max_tx_bytes = max_tx_bytes
        self.cache_size = cache_size
        self._txs: OrderedDict[bytes, MempoolTx] = OrderedDict()
        self._cache: OrderedDict[bytes, None] = OrderedDict()
        self._bytes = 0
        self._lock = threading.RLock()

    def size(self) -> int:
        with self._lock:
            return len(self._txs)

    def size_bytes(self) -> int:
        with self._lock:
            return self._bytes

    def get_txs(self, limit: int | None = None) -> list[bytes]:
        with self._lock:
            txs = [m.tx for m in self._txs.values()]
        return txs if limit is None else txs[:limit]

    def _push_cache(self, tx_hash: bytes) -> bool:
        if tx_hash in self._cache:
            self._cache.move_to_end(tx_hash)
            return False
        self._cache[tx_hash] = None
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return True

    def process_tx(self, tx: bytes) -> abci_pb2.ResponseCheckTx:
        """CheckTx(NEW) a broadcast tx; keep it if the app accepts it.

        Raises for what CometBFT reports as an RPC error (duplicate, too large, full); an app
        rejection is a normal response with a non-zero code.
        """
        if not tx:
            raise EmptyTx()
        if len(tx) > self.max_tx_bytes:
            raise TxTooLarge(f"tx too large. Max size is {self.max_tx_bytes}, but got {len(tx)}")
        tx_hash = compute_tx_hash(tx)
        with self._lock:
            if len(self._txs) >= self.max_txs or self._bytes + len(tx) > self.max_txs_bytes:
                raise MempoolFull(
                    f"mempool is full: number of txs {len(self._txs)} (max: {self.max_txs}), "
                    f"total txs bytes {self._bytes} (max: {self.max_txs_bytes})")
            if not self._push_cache(tx_hash):
                raise TxInCache()
        try:
            response = self.check_tx(abci_pb2.RequestCheckTx(tx=tx, type=abci_pb2.NEW))
        except BaseException:
            with self._lock:
                self._cache.pop(tx_hash, None)
            raise
        with self._lock:
            if response.code != CODE_OK:
                self._cache.pop(tx_hash, None)
            elif tx_hash not in self._txs:
                self._txs[tx_hash] = MempoolTx(tx=tx, hash=tx_hash, gas_wanted=response.gas_wanted)
                self._bytes += len(tx)
        return response

    def reap(self, max_bytes: int, max_gas: int) -> list[bytes]:
        """Oldest txs first while their Data encoding fits max_bytes and gas fits max_gas (-1: no limit)."""
        reaped, total_bytes, total_gas = [], 0, 0
        with self._lock:
            for m in self._txs.values():
                total_bytes += compute_proto_tx_size(m.tx)
                if max_bytes > -1 and total_bytes > max_bytes:
                    break
                total_gas += m.gas_wanted
                if max_gas > -1 and total_gas > max_gas:
                    break
                reaped.append(m.tx)
        return reaped

    def _remove(self, tx_hash: bytes) -> None:
        removed = self._txs.pop(tx_hash, None)
        if removed is not None:
            self._bytes -= len(removed.tx)

    def process_committed(self, txs: list[bytes], results: list[abci_pb2.ExecTxResult]) -> None:
        """Drop committed txs; failed ones leave the cache so they may be sent again."""
        with self._lock:
            for tx, result in zip(txs, results):
                tx_hash = compute_tx_hash(tx)
                if result.code == CODE_OK:
                    self._push_cache(tx_hash)
                else:
                    self._cache.pop(tx_hash, None)
                self._remove(tx_hash)

    def process_recheck(self) -> None:
        """CheckTx(RECHECK) every remaining tx against the new state, dropping the ones now failing."""
        with self._lock:
            pending = list(self._txs.values())
        for m in pending:
            try:
                response = self.check_tx(abci_pb2.RequestCheckTx(tx=m.tx, type=abci_pb2.RECHECK))
            except Exception:  # noqa: BLE001 - an app failing on one tx must not stop the chain
                log.exception("RECHECK of tx %s failed; dropping it", m.hash.hex().upper())
                response = abci_pb2.ResponseCheckTx(code=1)
            if response.code != CODE_OK:
                with self._lock:
                    self._remove(m.hash)
                    self._cache.pop(m.hash, None)
