"""State sync: the node's snapshots of the app state, and restoring one from peers (ABCI 2.0).

Every `interval` heights, right after the commit, the latest state of every store is written as a
snapshot: chunks of records (store, key, value) under `<data>/snapshots/<height>/`, and a metadata
message listing each chunk's sha256. The snapshot's hash is the sha256 of that metadata, so a node
offered a snapshot knows every chunk's hash before it fetches any: a chunk that does not match is
refetched from another peer, and the restored state must hash to the app hash CometBFT's light
client trusts for that height, or the snapshot is rejected and the store left empty.

A chunk is a sequence of records, each three uvarint-length-prefixed byte strings: the store name, the
key and the value. The metadata is the chunks' sha256s, concatenated in order.
"""

import hashlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from chain.encoding import UvarintError, decode_uvarint, encode_uvarint
from chain.proto.tendermint.abci import types_pb2 as abci

FORMAT = 1
DEFAULT_INTERVAL = 0  # no snapshots
DEFAULT_KEEP = 2
CHUNK_BYTES = 4 << 20
METADATA_FILE = "metadata"
HASH_BYTES = 32
OFFER = abci.ResponseOfferSnapshot
APPLY = abci.ResponseApplySnapshotChunk


class SnapshotError(Exception):
    pass


class MalformedChunk(SnapshotError):
    pass


def encode_record(store: str, key: bytes, value: bytes) -> bytes:
    return b"".join(encode_uvarint(len(part)) + part for part in (store.encode(), key, value))


def decode_records(chunk: bytes):
    """The (store, key, value) records of a chunk; MalformedChunk if it does not parse."""
    position = 0
    while position < len(chunk):
        parts = []
        for _ in range(3):
            try:
                length, position = decode_uvarint(chunk, position)
            except UvarintError as error:
                raise MalformedChunk(f"chunk record at byte {position}: {error}") from None
            if position + length > len(chunk):
                raise MalformedChunk(f"chunk record at byte {position} runs past the chunk's end")
            parts.append(chunk[position : position + length])
            position += length
        try:
            yield parts[0].decode(), parts[1], parts[2]
        except UnicodeDecodeError:
            raise MalformedChunk("chunk record names no store") from None


def compute_chunks(store) -> list[bytes]:
    """The latest state of every store of `store`, as chunks of at most about CHUNK_BYTES."""
    chunks, current = [], bytearray()
    for name in store.store_names:
        for key, value in store.iterate(name):
            current += encode_record(name, key, value)
            if len(current) >= CHUNK_BYTES:
                chunks.append(bytes(current))
                current = bytearray()
    if current or not chunks:
        chunks.append(bytes(current))
    return chunks


def encode_metadata(chunks: list[bytes]) -> bytes:
    return b"".join(hashlib.sha256(chunk).digest() for chunk in chunks)


def decode_metadata(data: bytes) -> list[bytes]:
    if not data or len(data) % HASH_BYTES:
        raise SnapshotError(f"snapshot metadata of {len(data)} bytes is not a list of chunk sha256s")
    return [data[start : start + HASH_BYTES] for start in range(0, len(data), HASH_BYTES)]


@dataclass
class Restore:
    """A snapshot being applied: its chunk hashes, the app hash it must produce, the chunks so far."""

    snapshot: abci.Snapshot
    app_hash: bytes
    hashes: list[bytes]
    chunks: list[bytes] = field(default_factory=list)


class Snapshots:
    def __init__(self, directory: str, interval: int = DEFAULT_INTERVAL, keep: int = DEFAULT_KEEP):
        self.directory = Path(directory)
        self.interval = interval
        self.keep = keep
        self.restoring: Restore | None = None

    # --- serving: take, list, load -------------------------------------------------------

    def process_commit(self, store) -> None:
        """After the commit of a height the interval divides, snapshot it and drop the oldest ones."""
        if not self.interval or not store.height or store.height % self.interval:
            return
        chunks = compute_chunks(store)
        target = self.directory / str(store.height)
        scratch = self.directory / f".{store.height}.tmp"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        for index, chunk in enumerate(chunks):
            (scratch / str(index)).write_bytes(chunk)
        (scratch / METADATA_FILE).write_bytes(encode_metadata(chunks))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(scratch, target)
        for height in self.get_heights()[:-self.keep]:
            shutil.rmtree(self.directory / str(height), ignore_errors=True)

    def get_heights(self) -> list[int]:
        if not self.directory.is_dir():
            return []
        return sorted(int(path.name) for path in self.directory.iterdir() if path.name.isdigit())

    def list_snapshots(self, request: abci.RequestListSnapshots) -> abci.ResponseListSnapshots:
        response = abci.ResponseListSnapshots()
        for height in self.get_heights():
            metadata = (self.directory / str(height) / METADATA_FILE).read_bytes()
            response.snapshots.add(height=height, format=FORMAT, chunks=len(decode_metadata(metadata)),
                                   hash=hashlib.sha256(metadata).digest(), metadata=metadata)
        return response

    def load_snapshot_chunk(self, request: abci.RequestLoadSnapshotChunk) -> abci.ResponseLoadSnapshotChunk:
        path = self.directory / str(request.height) / str(request.chunk)
        if request.format != FORMAT or not path.is_file():
            return abci.ResponseLoadSnapshotChunk()
        return abci.ResponseLoadSnapshotChunk(chunk=path.read_bytes())

    # --- restoring: offer, apply ---------------------------------------------------------

    def offer_snapshot(self, store, request: abci.RequestOfferSnapshot) -> abci.ResponseOfferSnapshot:
        snapshot = request.snapshot
        if store.height:
            return OFFER(result=OFFER.ABORT)  # this node has state already: state sync is for new nodes
        if snapshot.format != FORMAT:
            return OFFER(result=OFFER.REJECT_FORMAT)
        try:
            hashes = decode_metadata(snapshot.metadata)
        except SnapshotError:
            return OFFER(result=OFFER.REJECT)
        if hashlib.sha256(snapshot.metadata).digest() != snapshot.hash or len(hashes) != snapshot.chunks:
            return OFFER(result=OFFER.REJECT)
        self.restoring = Restore(snapshot, bytes(request.app_hash), hashes)
        return OFFER(result=OFFER.ACCEPT)

    def apply_snapshot_chunk(self, store, request: abci.RequestApplySnapshotChunk) -> abci.ResponseApplySnapshotChunk:
        """Chunks arrive in order; a chunk whose hash differs is refetched from another peer. The last one
        restores the store, which must then hash to the trusted app hash."""
        restore = self.restoring
        if restore is None:
            return APPLY(result=APPLY.ABORT)
        index = request.index
        if index != len(restore.chunks) or index >= len(restore.hashes):
            return APPLY(result=APPLY.RETRY_SNAPSHOT)
        if hashlib.sha256(request.chunk).digest() != restore.hashes[index]:
            return APPLY(result=APPLY.RETRY, refetch_chunks=[index], reject_senders=[request.sender])
        restore.chunks.append(bytes(request.chunk))
        if len(restore.chunks) < len(restore.hashes):
            return APPLY(result=APPLY.ACCEPT)
        self.restoring = None
        try:
            changes = compute_changes(restore.chunks, store.store_names)
        except SnapshotError:
            return APPLY(result=APPLY.REJECT_SNAPSHOT)
        app_hash = store.stage(restore.snapshot.height, changes)
        if app_hash != restore.app_hash:
            store.discard()
            return APPLY(result=APPLY.REJECT_SNAPSHOT)
        store.commit()
        return APPLY(result=APPLY.ACCEPT)


def compute_changes(chunks: list[bytes], store_names) -> dict[str, dict[bytes, bytes]]:
    changes: dict[str, dict[bytes, bytes]] = {name: {} for name in store_names}
    for chunk in chunks:
        for name, key, value in decode_records(chunk):
            if name not in changes or not key or not value or key in changes[name]:
                raise MalformedChunk(f"chunk record for store {name!r} is not one of a store's entries")
            changes[name][key] = value
    return changes
