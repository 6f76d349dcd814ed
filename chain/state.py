"""What a message handler sees: a gas-metered view of the block's state, and the events it emits.

Every read, write and delete costs gas. Erasing state pays the entropy tax: a delete, or an
overwrite that shrinks a value, costs `erase_cost_per_byte` for every byte that disappears — more
than writing the same bytes (a delete's flat cost equals a write's, its per-byte cost is higher) —
because forgetting is what costs energy (Landauer).
"""

from dataclasses import dataclass, field
from functools import lru_cache

from chain._events import encode_event, encode_repeated
from chain.errors import OutOfGasError

UINT64_MAX = 2**64 - 1
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


def write_events(message, events: list[bytes]) -> None:
    """Appends encoded events to `message.events` (an ExecTxResult, ResponseCheckTx, ResponseFinalizeBlock…)."""
    if events:
        message.MergeFromString(encode_repeated(message.DESCRIPTOR.fields_by_name["events"].number, events))


@dataclass
class Context:
    """Block facts a handler may use (never the wall clock), and the events emitted so far, encoded."""

    chain_id: str
    height: int
    time_ns: int
    events: list[bytes] = field(default_factory=list)

    def emit(self, kind: str, *attributes: tuple[str, str]) -> None:
        self.events.append(encode_event(kind, attributes))  # native: twelve per transfer, a fifth of its cost


class State:
    """A gas-metered view over a store Branch; `store` names the module store."""

    __slots__ = ("branch", "meter", "gas")

    def __init__(self, branch, meter: GasMeter, gas: GasParams):
        self.branch = branch
        self.meter = meter
        self.gas = gas

    def get(self, store: str, key: bytes) -> bytes | None:
        value = self.branch.get(store, key)
        size = 0 if value is None else len(key) + len(value)
        self.meter.consume(self.gas.read_cost_flat + self.gas.read_cost_per_byte * size, "Read")
        return value

    def set(self, store: str, key: bytes, value: bytes) -> None:
        self.meter.consume(self.gas.write_cost_flat + self.gas.write_cost_per_byte * (len(key) + len(value)), "Write")
        old = self.branch.get(store, key)
        if old is not None and len(old) > len(value):
            self.meter.consume(self.gas.erase_cost_per_byte * (len(old) - len(value)), "EntropyTax")
        self.branch.set(store, key, value)

    def delete(self, store: str, key: bytes) -> None:
        self.meter.consume(self.gas.delete_cost, "Delete")
        old = self.branch.get(store, key)
        if old is not None:
            self.meter.consume(self.gas.erase_cost_per_byte * (len(key) + len(old)), "EntropyTax")
            self.branch.delete(store, key)

    def iterate(self, store: str, start: bytes | None = None, end: bytes | None = None, reverse: bool = False):
        for key, value in self.branch.iterate(store, start, end, reverse):
            self.meter.consume(self.gas.iter_next_cost_flat, "IterNextFlat")
            self.meter.consume(self.gas.read_cost_per_byte * (len(key) + len(value)), "ValuePerByte")
            yield key, value


@dataclass(frozen=True)
class MessageHandler:
    """One message type: its protobuf class, who must sign it, and its two checks."""

    proto: type
    signer: object
    check_stateless: object
    check_and_execute: object


def compute_prefix_end(prefix: bytes) -> bytes | None:
    """The first key after every key that starts with `prefix` (None: no upper bound)."""
    raw = bytearray(prefix)
    while raw and raw[-1] == 0xFF:
        raw.pop()
    if not raw:
        return None
    raw[-1] += 1
    return bytes(raw)


def iterate_prefix(state, store: str, prefix: bytes):
    """The (key, value) pairs of `store` whose keys start with `prefix`, in key order."""
    return state.iterate(store, prefix, compute_prefix_end(prefix))


def get_message(state, store: str, message_class, key: bytes):
    """The protobuf message stored under `key`, or None."""
    raw = state.get(store, key)
    return None if raw is None else message_class.FromString(raw)


def get_messages(state, store: str, message_class, prefix: bytes) -> list:
    """Every protobuf message stored under `prefix`, in key order."""
    return [message_class.FromString(raw) for _, raw in iterate_prefix(state, store, prefix)]
