"""What a message handler sees: a gas-metered view of the block's state, and the events it emits.

Every read, write and delete costs gas. Erasing state pays the entropy tax: a delete, or an
overwrite that shrinks a value, costs `erase_cost_per_byte` for every byte that disappears — more
than writing the same bytes (a delete's flat cost equals a write's, its per-byte cost is higher) —
because forgetting is what costs energy (Landauer).
"""

from dataclasses import dataclass, field
from functools import lru_cache, wraps

from sys import _getframe

from chain._events import encode_event, encode_repeated
from chain.errors import OutOfGasError
from chain.store import Branch, compute_prefix_end

UINT64_MAX = 2**64 - 1
DEFAULT_PAGE_LIMIT = 100
MAX_PAGE_LIMIT = 1000
KEY_CACHE_SIZE = 1 << 18


@dataclass(frozen=True)
class GasParams:
    read_cost_flat: int = 1000
    read_cost_per_byte: int = 3
    write_cost_flat: int = 2000
    write_cost_per_byte: int = 30
    delete_cost: int = 2000
    erase_cost_per_byte: int = 60
    iter_next_cost_flat: int = 30


class GasMeter:
    __slots__ = ("limit", "consumed")

    def __init__(self, limit: int = UINT64_MAX):
        self.limit = limit
        self.consumed = 0

    def consume(self, amount: int, descriptor: str) -> None:
        self.consumed += amount
        if self.consumed > self.limit:
            raise OutOfGasError(f"out of gas in location: {descriptor}; gasWanted: {self.limit}, gasUsed: {self.consumed}")


@lru_cache(maxsize=KEY_CACHE_SIZE)
def encode_key(prefix: int, *parts: bytes | str | int) -> bytes:
    """The one layout of store keys: a kind byte, then length-prefixed parts.

    ints are 32-byte big-endian so keys sort numerically; a length byte keeps a part from running into
    the next, and the ordering within equal-length parts is the byte ordering.
    """
    out = bytearray((prefix,))
    for part in parts:
        if isinstance(part, int):
            out += part.to_bytes(32, "big")
            continue
        raw = part.encode() if isinstance(part, str) else part
        if len(raw) > 255:
            raise ValueError("key part longer than 255 bytes")
        out.append(len(raw))
        out += raw
    return bytes(out)


def decode_key(key: bytes, layouts: dict[int, tuple[type, ...]]) -> tuple:
    """The parts of a key made by `encode_key`, typed by `layouts[kind byte]` (int, bytes or str)."""
    parts, position = [], 1
    for kind in layouts[key[0]]:
        if kind is int:
            parts.append(int.from_bytes(key[position : position + 32], "big"))
            position += 32
            continue
        end = position + 1 + key[position]
        raw = key[position + 1 : end]
        parts.append(raw.decode() if kind is str else raw)
        position = end
    if position != len(key):
        raise ValueError(f"key {key.hex()} does not have the layout {layouts[key[0]]}")
    return tuple(parts)


def encode_number(value: int) -> bytes:
    """The one encoding of numbers in the store (counters, amounts): decimal ASCII, as SDK Ints."""
    return str(value).encode()


def decode_number(raw: bytes) -> int:
    return int(raw)


def write_events(message, events: list[bytes]) -> None:
    """Appends encoded events to `message.events` (an ExecTxResult, ResponseCheckTx, ResponseFinalizeBlock…)."""
    if events:
        message.MergeFromString(encode_repeated(message.DESCRIPTOR.fields_by_name["events"].number, events))


@dataclass
class Budget:
    """What a block (or the mempool, between commits) has spent of its per-block limits. Not state: it
    counts what txs spent whether they succeed or fail, which a rolled-back write would not."""

    in_block: bool = False
    proofs: int = 0


@dataclass
class Context:
    """Block facts a handler may use (never the wall clock), and the events emitted so far, encoded.

    `txs` are the block's (for begin_block), `validators` InitChain's ed25519 keys (for init_chain);
    `verifier` is the node's proof verifier (chain.inference.ProofVerifier), None where it runs none;
    `budget` is shared by the txs of one block. For the block hooks: `votes` are the decided last
    commit's (abci.VoteInfo), `misbehavior` the evidence CometBFT reports (abci.Misbehavior),
    `proposer_address` and `next_validators_hash` the header's, `block_hash` the block's (b"" in CheckTx); end_block hooks put the validator set's
    changes (abci.ValidatorUpdate) in `validator_updates`, which FinalizeBlock returns.
    """

    chain_id: str
    height: int
    time_ns: int
    events: list[bytes] = field(default_factory=list)
    verifier: object = None
    budget: Budget = field(default_factory=Budget)
    txs: tuple = ()
    validators: tuple = ()
    votes: tuple = ()
    misbehavior: tuple = ()
    proposer_address: bytes = b""
    next_validators_hash: bytes = b""
    block_hash: bytes = b""
    validator_updates: list = field(default_factory=list)

    def emit(self, kind: str, *attributes: tuple[str, str]) -> None:
        self.events.append(encode_event(kind, attributes))  # native: twelve per transfer, a fifth of its cost


class StoreAccessError(Exception):
    """A module touched a store it does not own: a bug in the module, never a tx's fault."""


class State:
    """A gas-metered view over a store Branch that reads and writes one module's store.

    A module's handlers get a State of its own store; another module's data is reached only through
    that module's `public` functions, which run on a State of their own store (as an SDK keeper).
    Code of a module (one that defines `STORE`) that reads or writes a State of another store —
    a private function of one module called by another — raises StoreAccessError.
    """

    __slots__ = ("branch", "meter", "gas", "store")

    def __init__(self, branch, meter: GasMeter, gas: GasParams, store: str):
        self.branch = branch
        self.meter = meter
        self.gas = gas
        self.store = store

    def _enter(self, store: str) -> "State":
        return self if store == self.store else State(self.branch, self.meter, self.gas, store)

    def _refuse(self, frame) -> None:
        """Raises unless the code of `frame` (the record helpers below: the code that called them)
        belongs to no module or to this store's."""
        while frame.f_globals is _OWN_GLOBALS:
            frame = frame.f_back
        owner = frame.f_globals.get("STORE", self.store)
        if owner != self.store:
            raise StoreAccessError(f"{frame.f_globals['__name__']} touched the {self.store!r} store; "
                                   f"it owns {owner!r} and must call the owner's public functions")

    def get(self, key: bytes) -> bytes | None:
        frame = _getframe(1)
        if frame.f_globals is _OWN_GLOBALS or frame.f_globals.get("STORE", self.store) != self.store:
            self._refuse(frame)
        value = self.branch.get(self.store, key)
        size = 0 if value is None else len(key) + len(value)
        self.meter.consume(self.gas.read_cost_flat + self.gas.read_cost_per_byte * size, "Read")
        return value

    def set(self, key: bytes, value: bytes) -> None:
        frame = _getframe(1)
        if frame.f_globals is _OWN_GLOBALS or frame.f_globals.get("STORE", self.store) != self.store:
            self._refuse(frame)
        self.meter.consume(self.gas.write_cost_flat + self.gas.write_cost_per_byte * (len(key) + len(value)), "Write")
        old = self.branch.get(self.store, key)
        if old is not None and len(old) > len(value):
            self.meter.consume(self.gas.erase_cost_per_byte * (len(old) - len(value)), "EntropyTax")
        self.branch.set(self.store, key, value)

    def delete(self, key: bytes) -> None:
        frame = _getframe(1)
        if frame.f_globals is _OWN_GLOBALS or frame.f_globals.get("STORE", self.store) != self.store:
            self._refuse(frame)
        self.meter.consume(self.gas.delete_cost, "Delete")
        old = self.branch.get(self.store, key)
        if old is not None:
            self.meter.consume(self.gas.erase_cost_per_byte * (len(key) + len(old)), "EntropyTax")
            self.branch.delete(self.store, key)

    def iterate(self, start: bytes | None = None, end: bytes | None = None, reverse: bool = False):
        frame = _getframe(1)
        if frame.f_globals is _OWN_GLOBALS or frame.f_globals.get("STORE", self.store) != self.store:
            self._refuse(frame)
        return self._iterate(start, end, reverse)

    def _iterate(self, start, end, reverse):
        for key, value in self.branch.iterate(self.store, start, end, reverse):
            self.meter.consume(self.gas.iter_next_cost_flat, "IterNextFlat")
            self.meter.consume(self.gas.read_cost_per_byte * (len(key) + len(value)), "ValuePerByte")
            yield key, value

    @property
    def height(self) -> int:
        """The committed height this state reads from (a query's height, or the store's)."""
        return self.branch.height


def public(store: str):
    """Marks a module function that other modules call: it runs on a State of `store`, its owner's.

    Called with a bare view (the Store, a Branch: the node's and tests' reads) it runs unmetered.
    """

    def mark(function):
        @wraps(function)
        def call(state, *args, **kwargs):
            if type(state) is not State:
                state = State(state, GasMeter(), GasParams(), store)
            return function(state._enter(store), *args, **kwargs)

        return call

    return mark


def compute_sub_state(state: State) -> tuple[State, object]:
    """A State over a new branch of `state`'s (same store, same meter), and that branch: an attempt
    whose writes are kept by `branch.write()` and dropped otherwise."""
    branch = Branch(state.branch)
    return State(branch, state.meter, state.gas, state.store), branch


@dataclass(frozen=True)
class MessageHandler:
    """One message type: its protobuf class, who must sign it, and its two checks."""

    proto: type
    signer: object
    check_stateless: object
    check_and_execute: object


def iterate_prefix(state: State, prefix: bytes):
    """The (key, value) pairs of the state's store whose keys start with `prefix`, in key order."""
    return state.iterate(prefix, compute_prefix_end(prefix))


def get_page(state: State, prefix: bytes, pagination, keep=lambda value: True,
             keep_key=lambda key: True) -> tuple[list, bytes]:
    """A page of a gRPC listing (a PageRequest): up to its limit of the (key, value) pairs under
    `prefix`, from its key on, whose key `keep_key` and value `keep` accept; and the next page's key
    (empty after the last)."""
    count = min(pagination.limit or DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT)
    start = pagination.key if pagination.key.startswith(prefix) else prefix
    rows = []
    for key, value in state.iterate(start, compute_prefix_end(prefix)):
        if not (keep_key(key) and keep(value)):
            continue
        if len(rows) == count:
            return rows, key
        rows.append((key, value))
    return rows, b""


def get_message(state: State, message_class, key: bytes):
    """The protobuf message stored under `key`, or None."""
    raw = state.get(key)
    return None if raw is None else message_class.FromString(raw)


@lru_cache(maxsize=64)
def _decode_shared(message_class, raw: bytes):
    return message_class.FromString(raw)


def get_shared_message(state: State, message_class, key: bytes):
    """The message under `key`, decoded once per distinct value and shared: callers must not change it
    (params, read by every tx)."""
    return _decode_shared(message_class, state.get(key))


def get_messages(state: State, message_class, prefix: bytes) -> list:
    """Every protobuf message stored under `prefix`, in key order."""
    return [message_class.FromString(raw) for _, raw in iterate_prefix(state, prefix)]


def set_message(state: State, key: bytes, message) -> None:
    state.set(key, message.SerializeToString())


def get_number(state: State, key: bytes, default: int = 0) -> int:
    raw = state.get(key)
    return default if raw is None else decode_number(raw)


def set_number(state: State, key: bytes, value: int) -> None:
    state.set(key, encode_number(value))


def process_next_number(state: State, key: bytes, first: int = 1) -> int:
    """Takes the counter under `key` (starting at `first`) and moves it on by one."""
    number = get_number(state, key, first)
    set_number(state, key, number + 1)
    return number


_OWN_GLOBALS = globals()
