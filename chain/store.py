"""The chain's state: one sparse Merkle tree per module store, versioned by height, in LevelDB.

The app hash commits to every store as the Cosmos multistore does: an RFC 6962 simple Merkle tree
(ics23 TendermintSpec) over the (store name, store root) pairs sorted by name. A value is proven with
two ics23 proofs, the key in its store's tree (SmtSpec) and the store's root in the app hash.

Pruning without reference counts: a node is written once under a name that includes the height that
wrote it (see chain.smt) and is never rewritten. When a height replaces or removes nodes, their keys
are recorded under that height in a stale index. A node retired at height h is reachable only from
heights before h, so once h is at or below the oldest height kept, the nodes listed under h and the
list itself are deleted. Pruning thus costs one read per pruned height plus one delete per node
that became unreachable, and never walks a tree.

Beside the trees, a flat index holds one entry per live (store, key) with its latest value, so reads
of the current state never walk a tree and LevelDB's ordering serves ordered range scans.

Nothing is written before `commit`, which puts every staged height in a single synced WriteBatch:
after a crash the database holds either all of it or none of it.

Opening checks what it can without walking a tree (`check`): the directory is a LevelDB database
(a lost CURRENT file would make LevelDB start an empty one over the old files), the latest roots hash
to the latest app hash, and in each store the path to the first leaf hashes to the root, that leaf
has its flat entry and the first flat entry is in the tree. `verify` walks every tree in full.

LevelDB layout (every key is made by `state_key`):
    m/latest                       -> height (8 bytes) || app hash
    r/<height>                     -> the store roots of that height
    n<store>/<inner node id>       -> inner node          (its two refs, chain.smt.encode_ref)
    l<store>/<leaf node id>        -> key and value       (chain.smt.encode_leaf)
    s/<height>                     -> keys of the nodes that height retired (encode_retired)
    f<store>/<key>                 -> latest value
"""

import hashlib
import os
from collections import namedtuple
from collections.abc import Iterable, Iterator, Mapping, Sequence
from bisect import bisect_left, insort
from dataclasses import dataclass, field
from itertools import islice

import plyvel

from chain import merkle, smt
from chain._smt import decode_key_list, encode_key_list
from chain.encoding import encode_uvarint
from chain.proto.cosmos.ics23.v1 import proofs_pb2

META = b"m"
ROOTS = b"r"
INNER = b"n"
LEAF = b"l"
STALE = b"s"
FLAT = b"f"
LATEST = b"latest"

HEIGHT_BYTES = 8
MAX_STORE_NAME = 255
DEFAULT_KEEP_RECENT = 100
NODE_CACHE_SIZE = 400_000  # encoded inner nodes per store, about 100 MB when full
FLAT_CACHE_SIZE = 1 << 18  # latest values per store kept in memory (None for absent keys too)
CURRENT_FILE = "CURRENT"
_MISSING = object()

# what a Mismatch found
FLAT_DIFFERS = "the flat index holds another value than the tree"
FLAT_MISSING = "in the tree, missing from the flat index"
TREE_MISSING = "in the flat index, missing from the tree"
APP_HASH_DIFFERS = "the latest roots do not hash to the latest app hash"
METADATA_MISSING = "the database holds data but no latest height"
NODE_MISSING = "tree node missing"
NODE_UNREADABLE = "tree node does not decode"
NODE_DIFFERS = "tree node does not hash to the hash its parent holds"

OUTER_LEAF_OP = proofs_pb2.LeafOp(
    hash=proofs_pb2.SHA256,
    prehash_key=proofs_pb2.NO_HASH,
    prehash_value=proofs_pb2.SHA256,
    length=proofs_pb2.VAR_PROTO,
    prefix=merkle.LEAF_PREFIX,
)

Changes = Mapping[str, Mapping[bytes, bytes | None]]


class StoreError(Exception):
    pass


class UnknownStore(StoreError):
    pass


class InvalidStoreNames(StoreError):
    pass


class InvalidKeepRecent(StoreError):
    pass


class InvalidKey(StoreError):
    """Keys are non-empty bytes (an ics23 leaf cannot prove an empty key)."""


class InvalidValue(StoreError):
    """Values are non-empty bytes (an ics23 leaf cannot prove an empty value); delete instead."""


class HeightNotNext(StoreError):
    pass


class HeightNotCommitted(StoreError):
    pass


class HeightPruned(StoreError):
    pass


class BranchOverStore(StoreError):
    """Only a branch of a branch can be written; a branch of the store is staged via changes()."""


class CorruptStore(StoreError):
    pass


class DatabaseMissing(StoreError):
    """The directory holds files but no CURRENT: LevelDB would start an empty database over them."""


class UnreadableDatabase(StoreError):
    """LevelDB refuses to open the directory (locked by another process, damaged files)."""


class MetadataMissing(CorruptStore):
    pass


class AppHashDiffers(CorruptStore):
    pass


class TreeNodeDiffers(CorruptStore):
    """A tree node is missing, unreadable or does not hash to the hash its parent holds for it."""

    def __init__(self, node_key: bytes, problem: str):
        super().__init__(f"{problem}: {node_key.hex()}")
        self.node_key = node_key
        self.problem = problem


class FlatIndexDiffers(CorruptStore):
    """A store's flat index and its tree disagree on a key."""


Mismatch = namedtuple("Mismatch", "store key side")  # key: the state key, or the node's LevelDB key
Verification = namedtuple("Verification", "keys mismatches")


def state_key(space: bytes, store: str = "", *parts: bytes) -> bytes:
    """The LevelDB key of an item in `space`; the store name is length-prefixed so no store's
    keys can run into another's."""
    name = store.encode()
    return b"".join((space, len(name).to_bytes(1, "big"), name, *parts))


def encode_height(height: int) -> bytes:
    return height.to_bytes(HEIGHT_BYTES, "big")


def compute_store_item(name: str, root: bytes) -> bytes:
    """A store's leaf item in the app hash tree: its name and the hash of its root, length-prefixed
    as OUTER_LEAF_OP hashes them."""
    key = name.encode()
    value = hashlib.sha256(root).digest()
    return encode_uvarint(len(key)) + key + encode_uvarint(len(value)) + value


def compute_inner_op(step: merkle.PathStep) -> proofs_pb2.InnerOp:
    if step.sibling_on_right:
        return proofs_pb2.InnerOp(hash=proofs_pb2.SHA256, prefix=merkle.INNER_PREFIX, suffix=step.sibling)
    return proofs_pb2.InnerOp(hash=proofs_pb2.SHA256, prefix=merkle.INNER_PREFIX + step.sibling)


def _sorted_roots(roots: Mapping[str, smt.Ref]) -> list[tuple[str, bytes]]:
    return sorted(((name, smt.compute_root_hash(ref)) for name, ref in roots.items()),
                  key=lambda item: item[0].encode())


def compute_app_hash(roots: Mapping[str, smt.Ref]) -> bytes:
    return merkle.compute_root([compute_store_item(n, r) for n, r in _sorted_roots(roots)])


def compute_store_proof(roots: Mapping[str, smt.Ref], store: str) -> proofs_pb2.CommitmentProof:
    pairs = _sorted_roots(roots)
    items = [compute_store_item(name, root) for name, root in pairs]
    index = [name for name, _ in pairs].index(store)
    proof = proofs_pb2.ExistenceProof(
        key=store.encode(),
        value=pairs[index][1],
        leaf=OUTER_LEAF_OP,
        path=[compute_inner_op(step) for step in merkle.compute_audit_path(items, index)],
    )
    return proofs_pb2.CommitmentProof(exist=proof)


def encode_roots(roots: Mapping[str, smt.Ref]) -> bytes:
    out = []
    for name in sorted(roots):
        raw = name.encode()
        out.append(len(raw).to_bytes(1, "big") + raw + smt.encode_ref(roots[name]))
    return b"".join(out)


def decode_roots(data: bytes) -> dict[str, smt.Ref]:
    roots = {}
    pos = 0
    try:
        while pos < len(data):
            size = data[pos]
            name = data[pos + 1 : pos + 1 + size].decode()
            roots[name], pos = smt.decode_ref_at(data, pos + 1 + size)
    except (IndexError, UnicodeDecodeError, smt.CorruptNode) as exc:
        raise CorruptStore("unreadable root record") from exc
    return roots


def compute_prefix_end(prefix: bytes) -> bytes | None:
    """The first key after every key that starts with `prefix` (None: no upper bound)."""
    stripped = prefix.rstrip(b"\xff")
    return stripped[:-1] + bytes((stripped[-1] + 1,)) if stripped else None


def _remember(cache: dict, key: bytes, value: bytes | None) -> None:
    cache.pop(key, None)
    cache[key] = value
    if len(cache) > FLAT_CACHE_SIZE:
        del cache[next(iter(cache))]


def compare_entry(flat: bytes | None, tree: bytes | None) -> str | None:
    """How a key's flat entry and its value in the tree disagree, or None."""
    if flat == tree:
        return None
    return FLAT_MISSING if flat is None else TREE_MISSING if tree is None else FLAT_DIFFERS


def _check_key(key: object) -> None:
    if not isinstance(key, bytes) or not key:
        raise InvalidKey(f"key must be non-empty bytes, got {key!r:.80}")


def _check_value(value: object) -> None:
    if not isinstance(value, bytes) or not value:
        raise InvalidValue(f"value must be non-empty bytes, got {value!r:.80}")


def _check_inner(data: bytes) -> bytes:
    smt.decode_inner(data)  # CorruptNode if it does not decode
    return data


def _check_bound(bound: object) -> None:
    if bound is not None and not isinstance(bound, bytes):
        raise InvalidKey(f"iteration bound must be bytes or None, got {bound!r:.80}")


def _merge(
    overlay: Iterable[tuple[bytes, bytes | None]],
    base: Iterator[tuple[bytes, bytes]],
    reverse: bool,
) -> Iterator[tuple[bytes, bytes]]:
    """Merge an ordered overlay (None = deleted) over an ordered base; the overlay wins ties."""
    pending = next(base, None)
    for key, value in overlay:
        while pending is not None and (pending[0] > key if reverse else pending[0] < key):
            yield pending
            pending = next(base, None)
        if pending is not None and pending[0] == key:
            pending = next(base, None)
        if value is not None:
            yield key, value
    if pending is not None:
        yield pending
        yield from base


def _trim(cache: dict) -> None:
    excess = len(cache) - NODE_CACHE_SIZE
    if excess > 0:
        for key in list(islice(cache, excess)):
            del cache[key]


def iterate_retired(staged: "StagedHeight") -> Iterator[tuple[bytes, list[bytes]]]:
    """(key prefix, node ids) of the nodes `staged` retired, a pair per store and kind of node."""
    for store, batch in staged.batches.items():
        yield state_key(INNER, store), batch.stale_inner
        yield state_key(LEAF, store), batch.stale_leaves


def encode_retired(staged: "StagedHeight") -> bytes:
    """The keys of every node `staged` retired, as a key list (2-byte length, key; decode_key_list)."""
    return b"".join(encode_key_list(prefix, ids) for prefix, ids in iterate_retired(staged))


@dataclass
class StagedHeight:
    height: int
    roots: dict[str, smt.Ref]
    app_hash: bytes
    batches: dict[str, smt.Batch] = field(default_factory=dict)


def open_database(path: str) -> plyvel.DB:
    """The LevelDB database at `path`, created if the directory is missing or empty, never over files."""
    if os.path.isdir(path) and os.listdir(path) and not os.path.exists(os.path.join(path, CURRENT_FILE)):
        raise DatabaseMissing(f"{path} holds files but no {CURRENT_FILE}: the database is damaged, "
                              "and opening it would start an empty one over its files; restore it from a backup")
    try:
        # Tree nodes are mostly hashes and do not compress; snappy cost about a third of write CPU.
        return plyvel.DB(path, create_if_missing=True, compression=None, bloom_filter_bits=10)
    except plyvel.Error as error:
        raise UnreadableDatabase(f"cannot open {path}: {error}") from None


class Store:
    def __init__(self, path: str, store_names: Sequence[str], keep_recent: int = DEFAULT_KEEP_RECENT,
                 check: bool = True):
        """`check`: run `check()` on the latest height, refusing a damaged database (CorruptStore)."""
        names = tuple(store_names)
        if not names or len(set(names)) != len(names):
            raise InvalidStoreNames(f"store names must be a non-empty list without repeats: {names!r}")
        for name in names:
            if not isinstance(name, str) or not 0 < len(name.encode()) <= MAX_STORE_NAME:
                raise InvalidStoreNames(f"bad store name {name!r}")
        if not isinstance(keep_recent, int) or keep_recent < 1:
            raise InvalidKeepRecent(f"keep_recent must be a positive integer, got {keep_recent!r}")
        self.store_names = names
        self.keep_recent = keep_recent
        self._known = frozenset(names)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.path = path
        self._db = open_database(path)
        self._cache: dict[str, dict[bytes, bytes]] = {name: {} for name in names}
        self._pending_inner: dict[str, dict[bytes, bytes]] = {name: {} for name in names}
        self._pending_leaves: dict[str, dict[bytes, tuple[bytes, bytes]]] = {name: {} for name in names}
        self._staged: list[StagedHeight] = []
        self._staged_flat: dict[str, dict[bytes, bytes | None]] = {}
        self._flat_cache: dict[str, dict[bytes, bytes | None]] = {name: {} for name in names}
        try:
            self._load_latest()
            if check:
                self.check()
        except StoreError:
            self._db.close()
            raise

    def _load_latest(self) -> None:
        meta = self._db.get(state_key(META, "", LATEST))
        if meta is None:
            self.height, self.app_hash, self._oldest = 0, b"", 0
            self._roots = {name: None for name in self.store_names}
            return
        self.height = int.from_bytes(meta[:HEIGHT_BYTES], "big")
        self.app_hash = meta[HEIGHT_BYTES:]
        first = next(self._db.iterator(prefix=state_key(ROOTS), include_value=False), None)
        if first is None:
            raise CorruptStore("metadata present but no root records")
        self._oldest = int.from_bytes(first[-HEIGHT_BYTES:], "big")
        latest = self._read_roots(self.height)
        self._roots = {name: latest.get(name) for name in self.store_names}

    def close(self) -> None:
        self._db.close()

    # Integrity of the latest height.

    def check(self) -> None:
        """The checks opening can afford (see the module docstring); raises CorruptStore."""
        if not self.app_hash:
            if next(self._db.iterator(include_value=False), None) is not None:
                raise MetadataMissing(f"{self.path}: {METADATA_MISSING}")
            return
        roots = self._read_roots(self.height)
        if compute_app_hash(roots) != self.app_hash:
            raise AppHashDiffers(f"{self.path}: {APP_HASH_DIFFERS} {self.app_hash.hex().upper()} (height {self.height})")
        for store, root in roots.items():
            try:
                self._check_first_entries(store, root)
            except TreeNodeDiffers as error:
                raise TreeNodeDiffers(error.node_key, f"{self.path}: store {store}: {error.problem}") from None

    def _check_first_entries(self, store: str, root: smt.Ref) -> None:
        """The tree's first leaf has its flat entry, and the first flat entry is in the tree."""
        prefix = state_key(FLAT, store)
        leaf = next(self._iterate_leaves(store, root), None)
        first = next(self._db.iterator(prefix=prefix), None)
        entries = [] if leaf is None else [(leaf[0], self._db.get(prefix + leaf[0]), leaf[1])]
        if first is not None:
            key = first[0][len(prefix):]
            entries.append((key, first[1], self._get_tree_value(store, root, key)))
        for key, flat, tree in entries:
            if side := compare_entry(flat, tree):
                raise FlatIndexDiffers(f"{self.path}: store {store} key {key.hex()}: {side}")

    def verify(self) -> Verification:
        """Walks every store's tree at the latest height: each node against the hash its parent holds,
        each leaf against its flat entry, each flat entry against the tree, the roots against the app hash.

        A store whose tree is damaged (TreeNodeDiffers) is reported once, for the node, and then each
        of its flat entries the tree cannot give.
        """
        if not self.app_hash:
            empty = next(self._db.iterator(include_value=False), None) is None
            return Verification(0, [] if empty else [Mismatch("", b"", METADATA_MISSING)])
        roots = self._read_roots(self.height)
        mismatches = [] if compute_app_hash(roots) == self.app_hash else [Mismatch("", b"", APP_HASH_DIFFERS)]
        keys = 0
        for store in sorted(roots):
            prefix = state_key(FLAT, store)
            found = 0
            try:
                for key, value in self._iterate_leaves(store, roots[store]):
                    keys += 1
                    flat = self._db.get(prefix + key)
                    found += flat is not None
                    if side := compare_entry(flat, value):
                        mismatches.append(Mismatch(store, key, side))
                whole = True
            except TreeNodeDiffers as error:
                mismatches.append(Mismatch(store, error.node_key, error.problem))
                whole = False
            if whole and found == sum(1 for _ in self._db.iterator(prefix=prefix, include_value=False)):
                continue
            for key, _ in self._iterate(store, None, None, False):
                try:
                    tree = self._get_tree_value(store, roots[store], key)
                except CorruptStore:
                    tree = None
                if tree is None:
                    mismatches.append(Mismatch(store, key, TREE_MISSING))
        return Verification(keys, mismatches)

    def _iterate_leaves(self, store: str, root: smt.Ref) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) of every leaf under `root`, leftmost first, each node read from LevelDB and
        checked against the hash its parent holds for it (TreeNodeDiffers)."""
        inner_prefix, leaf_prefix = state_key(INNER, store), state_key(LEAF, store)
        stack = [] if root is None else [(root, 0, 0)]
        while stack:
            ref, depth, bits = stack.pop()
            if smt.is_leaf(ref):
                node_key = leaf_prefix + smt.leaf_node_id(ref[2], ref[1])
                key, value = self._load(node_key, smt.decode_leaf)
                if smt.compute_key_hash(key) != ref[2] or smt.compute_leaf_hash(ref[2], value) != ref[0]:
                    raise TreeNodeDiffers(node_key, NODE_DIFFERS)
                yield key, value
                continue
            node_key = inner_prefix + smt.inner_node_id(depth, bits, ref[1])
            left, right = self._load(node_key, smt.decode_inner)
            if smt.compute_inner_hash(left, right) != ref[0]:
                raise TreeNodeDiffers(node_key, NODE_DIFFERS)
            for bit, child in ((1, right), (0, left)):
                if child is not None:
                    stack.append((child, depth + 1, bits << 1 | bit))

    def _get_tree_value(self, store: str, root: smt.Ref, key: bytes) -> bytes | None:
        """The value under `key` in the tree `root` of `store` (known or not), read from LevelDB."""
        inner_prefix, leaf_prefix = state_key(INNER, store), state_key(LEAF, store)
        return smt.get_value(root, key, lambda node_id: self._load(inner_prefix + node_id, _check_inner),
                             lambda node_id: self._load(leaf_prefix + node_id, smt.decode_leaf))

    # Reads of the latest state.

    def _check_store(self, store: str) -> None:
        if store not in self._known:
            raise UnknownStore(f"unknown store {store!r}; stores are {', '.join(self.store_names)}")

    def get(self, store: str, key: bytes) -> bytes | None:
        """The value as of the last commit (staged heights are not visible).

        Recent values are served from memory: every tx reads its signer's account and balances,
        and a LevelDB read is the largest part of a transfer's cost after the tree itself.
        """
        cache = self._flat_cache.get(store)
        if cache is None:
            self._check_store(store)
        value = cache.get(key, _MISSING)
        if value is not _MISSING:
            return value
        _check_key(key)
        value = self._db.get(state_key(FLAT, store, key))
        _remember(cache, key, value)
        return value

    def iterate(
        self, store: str, start: bytes | None = None, end: bytes | None = None, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        """Committed (key, value) pairs with start <= key < end, in key order (or reversed)."""
        self._check_store(store)
        _check_bound(start)
        _check_bound(end)
        return self._iterate(store, start, end, reverse)

    def _iterate(
        self, store: str, start: bytes | None, end: bytes | None, reverse: bool
    ) -> Iterator[tuple[bytes, bytes]]:
        if start is not None and end is not None and start >= end:
            return
        prefix = state_key(FLAT, store)
        lower = prefix + start if start is not None else prefix
        upper = prefix + end if end is not None else compute_prefix_end(prefix)
        skip = len(prefix)
        if not reverse:
            with self._db.iterator(start=lower, stop=upper) as rows:
                for key, value in rows:
                    yield key[skip:], value
            return
        # plyvel 1.5.1 yields nothing in reverse when `start` is the last key of the range: bound it here
        with self._db.iterator(stop=upper, reverse=True) as rows:
            for key, value in rows:
                if key < lower:
                    return
                yield key[skip:], value

    # Reads of committed heights.

    @property
    def oldest_height(self) -> int:
        """The oldest committed height still kept for reads and proofs."""
        return self._oldest

    def _check_height(self, height: int) -> None:
        if not self.app_hash or height > self.height:
            raise HeightNotCommitted(f"height {height} is not committed (last committed: {self.height})")
        if height < self._oldest:
            raise HeightPruned(f"height {height} is pruned (oldest kept: {self._oldest})")

    def _read_roots(self, height: int) -> dict[str, smt.Ref]:
        data = self._db.get(state_key(ROOTS, "", encode_height(height)))
        if data is None:
            raise CorruptStore(f"no root record for committed height {height}")
        return decode_roots(data)

    def _committed_roots(self, store: str, height: int) -> dict[str, smt.Ref]:
        self._check_store(store)
        self._check_height(height)
        roots = self._read_roots(height)
        if store not in roots:
            raise UnknownStore(f"store {store!r} did not exist at height {height}")
        return roots

    def store_root(self, store: str, height: int) -> bytes:
        return smt.compute_root_hash(self._committed_roots(store, height)[store])

    def get_at(self, store: str, key: bytes, height: int) -> bytes | None:
        roots = self._committed_roots(store, height)
        _check_key(key)
        return smt.get_value(roots[store], key, self._inner_reader(store), self._leaf_reader(store))

    def prove(self, store: str, key: bytes, height: int) -> tuple[bytes | None, list]:
        """The value at `height` and [proof in the store, proof of the store in the app hash]."""
        roots = self._committed_roots(store, height)
        _check_key(key)
        value, inner = smt.prove(roots[store], key, self._inner_reader(store), self._leaf_reader(store))
        return value, [inner, compute_store_proof(roots, store)]

    # Node access. Inner nodes come from a per-store cache of encoded nodes, then the staged
    # nodes, then LevelDB. A staged height drops the nodes it retires from the cache, and the
    # oldest entries go when a cache is full, so each cache holds mostly its latest tree.

    def _inner_reader(self, store: str) -> smt.GetInner:
        cache = self._cache[store]
        read = self._uncached_inner_reader(store)

        def get_inner(node_id: bytes) -> bytes:
            return cache.get(node_id) or read(node_id)

        return get_inner

    def _uncached_inner_reader(self, store: str) -> smt.GetInner:
        """Reads a node that is not in the cache (from the staged nodes or LevelDB) and caches it."""
        prefix = state_key(INNER, store)
        cache = self._cache[store]
        pending = self._pending_inner[store]

        def read(node_id: bytes) -> bytes:
            node = pending.get(node_id)
            if node is None:
                node = self._load(prefix + node_id, _check_inner)
            cache[node_id] = node
            _trim(cache)
            return node

        return read

    def _leaf_reader(self, store: str) -> smt.GetLeaf:
        prefix = state_key(LEAF, store)
        pending = self._pending_leaves[store]

        def get_leaf(node_id: bytes) -> tuple[bytes, bytes]:
            return pending.get(node_id) or self._load(prefix + node_id, smt.decode_leaf)

        return get_leaf

    def _load(self, key: bytes, decode) -> object:
        data = self._db.get(key)
        if data is None:
            raise TreeNodeDiffers(key, NODE_MISSING)
        try:
            return decode(data)
        except smt.CorruptNode:
            raise TreeNodeDiffers(key, NODE_UNREADABLE) from None

    # Writing.

    def stage(self, height: int, changes: Changes) -> bytes:
        """Apply `changes` (None deletes) as `height` on top of the last staged state, in memory.

        Returns the app hash of `height`. Nothing is written until commit(); invalid input raises
        before anything changes.
        """
        self._check_next_height(height)
        for store, writes in changes.items():
            self._check_store(store)
            for key, value in writes.items():
                _check_key(key)
                if value is not None:
                    _check_value(value)
        previous = self._staged[-1].roots if self._staged else self._roots
        roots = dict(previous)
        staged = StagedHeight(height, roots, b"")
        batches = {}
        for store in sorted(changes):
            if changes[store]:
                reader = self._uncached_inner_reader(store)
                batches[store] = smt.apply_batch(previous[store], changes[store], height, reader, self._cache[store])
                roots[store] = batches[store].root
        for store, batch in batches.items():
            cache = self._cache[store]
            cache.update(batch.inner_nodes)
            _trim(cache)
            self._pending_inner[store].update(batch.inner_nodes)
            self._pending_leaves[store].update(batch.leaves)
            self._staged_flat.setdefault(store, {}).update(changes[store])
            staged.batches[store] = batch
        staged.app_hash = compute_app_hash(roots)
        self._staged.append(staged)
        return staged.app_hash

    def _check_next_height(self, height: int) -> None:
        if not isinstance(height, int) or height < 0:
            raise HeightNotNext(f"height must be a non-negative integer, got {height!r}")
        if self._staged:
            expected = self._staged[-1].height + 1
        elif self.app_hash:
            expected = self.height + 1
        else:
            return
        if height != expected:
            raise HeightNotNext(f"cannot stage height {height}; the next height is {expected}")

    def discard(self) -> None:
        for store, nodes in self._pending_inner.items():
            for node_id in nodes:
                self._cache[store].pop(node_id, None)
        self._clear_staged()

    def _clear_staged(self) -> None:
        for pending in (self._pending_inner, self._pending_leaves):
            for nodes in pending.values():
                nodes.clear()
        self._staged.clear()
        self._staged_flat.clear()

    def commit(self) -> None:
        """Write every staged height, the flat index and the pruning in one synced batch."""
        if not self._staged:
            return
        last = self._staged[-1]
        oldest = max(self._oldest if self.app_hash else self._staged[0].height,
                     last.height - self.keep_recent + 1)
        with self._db.write_batch(sync=True, transaction=True) as batch:
            put = batch.put
            for store, nodes in self._pending_inner.items():
                prefix = state_key(INNER, store)
                for node_id, node in nodes.items():
                    put(prefix + node_id, node)
            for store, leaves in self._pending_leaves.items():
                prefix = state_key(LEAF, store)
                for node_id, (key, value) in leaves.items():
                    put(prefix + node_id, smt.encode_leaf(key, value))
            for staged in self._staged:
                height = encode_height(staged.height)
                put(state_key(ROOTS, "", height), encode_roots(staged.roots))
                if staged.height <= oldest:  # pruned at once: its retired nodes go now
                    for prefix, ids in iterate_retired(staged):
                        for node_id in ids:
                            batch.delete(prefix + node_id)
                elif retired := encode_retired(staged):
                    put(state_key(STALE, "", height), retired)
            for store, writes in self._staged_flat.items():
                flat_prefix = state_key(FLAT, store)
                for key, value in writes.items():
                    if value is None:
                        batch.delete(flat_prefix + key)
                    else:
                        batch.put(flat_prefix + key, value)
            self._write_pruning(batch, oldest)
            batch.put(state_key(META, "", LATEST), encode_height(last.height) + last.app_hash)
        for store, writes in self._staged_flat.items():
            cache = self._flat_cache[store]
            for key, value in writes.items():
                _remember(cache, key, value)
        self.height, self.app_hash, self._oldest = last.height, last.app_hash, oldest
        self._roots = last.roots
        self._clear_staged()

    def _write_pruning(self, batch, oldest: int) -> None:
        """Delete root records below `oldest` and every committed node retired at or below it."""
        roots_prefix = state_key(ROOTS)
        for key in self._db.iterator(
            start=roots_prefix, stop=roots_prefix + encode_height(oldest), include_value=False
        ):
            batch.delete(key)
        for staged in self._staged:
            if staged.height < oldest:
                batch.delete(state_key(ROOTS, "", encode_height(staged.height)))
        stale_prefix = state_key(STALE)
        stop = stale_prefix + encode_height(oldest + 1)
        for key, retired in self._db.iterator(start=stale_prefix, stop=stop):
            try:
                node_keys = decode_key_list(retired)
            except ValueError as exc:
                raise CorruptStore(f"unreadable stale-node list {key.hex()}") from exc
            for node_key in node_keys:
                batch.delete(node_key)
            batch.delete(key)


class Branch:
    """A write cache over the store or another branch: reads fall through, writes stay here.

    A savepoint marks the branch's writes so far; `rollback` undoes every write after it. A tx runs
    in its block's branch between savepoints instead of in branches of its own, so its reads do not
    walk through extra layers and its writes are not copied down when it succeeds.
    """

    def __init__(self, parent: "Store | Branch"):
        self.parent = parent
        self.store_names = parent.store_names
        self._known = frozenset(self.store_names)
        self._writes: dict[str, dict[bytes, bytes | None]] = {}
        self._sorted: dict[str, list[bytes]] = {}
        self._journal: list[tuple[str, bytes, object]] = []  # (store, key, value before), while a savepoint is open
        self._marks: list[int] = []

    def _check_store(self, store: str) -> None:
        if store not in self._known:
            raise UnknownStore(f"unknown store {store!r}; stores are {', '.join(self.store_names)}")

    def get(self, store: str, key: bytes) -> bytes | None:
        """Walks up the branches (a loop, not recursion: a tx reads through three of them)."""
        _check_key(key)
        branch = self
        while isinstance(branch, Branch):
            writes = branch._writes.get(store)
            if writes is not None and key in writes:
                return writes[key]
            branch = branch.parent
        return branch.get(store, key)

    def set(self, store: str, key: bytes, value: bytes) -> None:
        self._check_store(store)
        _check_key(key)
        _check_value(value)
        self._put(store, key, value)

    def delete(self, store: str, key: bytes) -> None:
        self._check_store(store)
        _check_key(key)
        self._put(store, key, None)

    def _put(self, store: str, key: bytes, value: bytes | None) -> None:
        writes = self._writes.setdefault(store, {})
        previous = writes.get(key, _MISSING)
        if previous is _MISSING:
            order = self._sorted.get(store)
            if order is not None:
                insort(order, key)
        if self._marks:
            self._journal.append((store, key, previous))
        writes[key] = value

    def savepoint(self) -> int:
        """A handle to the writes so far; savepoints nest."""
        self._marks.append(len(self._journal))
        return len(self._marks) - 1

    def rollback(self, savepoint: int) -> None:
        """Undo every write made since `savepoint`, which stays open; later savepoints are dropped."""
        journal, start = self._journal, self._marks[savepoint]
        del self._marks[savepoint + 1 :]
        while len(journal) > start:
            store, key, previous = journal.pop()
            writes = self._writes[store]
            if previous is not _MISSING:
                writes[key] = previous
                continue
            del writes[key]
            order = self._sorted.get(store)
            if order is not None:
                del order[bisect_left(order, key)]

    def release(self, savepoint: int) -> None:
        """Keep the writes made since `savepoint`; it and later savepoints are closed."""
        del self._marks[savepoint:]
        if not self._marks:
            self._journal.clear()

    def _sorted_keys(self, store: str) -> list[bytes]:
        """The store's written keys in order, kept sorted once a store has been iterated."""
        order = self._sorted.get(store)
        if order is None:
            order = self._sorted[store] = sorted(self._writes.get(store, ()))
        return order

    def iterate(
        self, store: str, start: bytes | None = None, end: bytes | None = None, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        """Pairs with start <= key < end in key order, this branch's writes over its parent's state.

        The branch's own writes are read when iteration starts; write freely while iterating.
        """
        base = self.parent.iterate(store, start, end, reverse)
        keys = self._sorted_keys(store)
        lo = 0 if start is None else bisect_left(keys, start)
        hi = len(keys) if end is None else bisect_left(keys, end)
        chosen = keys[lo:hi]
        if reverse:
            chosen.reverse()
        writes = self._writes.get(store, {})
        return _merge([(key, writes[key]) for key in chosen], base, reverse)

    def write(self) -> None:
        """Merge this branch's writes into its parent branch and start empty."""
        if not isinstance(self.parent, Branch):
            raise BranchOverStore("stage a branch of the store with store.stage(height, branch.changes())")
        for store, writes in self._writes.items():
            for key, value in writes.items():
                self.parent._put(store, key, value)
        self._writes = {}
        self._sorted = {}

    def changes(self) -> dict[str, dict[bytes, bytes | None]]:
        return {store: dict(writes) for store, writes in self._writes.items() if writes}
