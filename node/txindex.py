"""Transaction and block-event index (CometBFT's kv indexer) and its query language.

Queries follow libs/pubsub/query: conditions joined by AND, each `tag op value` with op one of
`=`, `<`, `<=`, `>`, `>=`, `CONTAINS`, `EXISTS`; values are 'strings', numbers, `DATE 2006-01-02` or
`TIME 2006-01-02T15:04:05Z`. Only event attributes flagged `index` are searchable, as in CometBFT.
Conditions on the same event type must be met by one event (CometBFT >= 0.34.26 semantics); the
pseudo tags `tx.hash`, `tx.height` and `block.height` describe the transaction or block itself.
"""

import re
import struct
from dataclasses import dataclass
from datetime import date, datetime
from fractions import Fraction

import plyvel

from chain.proto.tendermint.abci import types_pb2 as abci_pb2

TX_HASH_TAG = "tx.hash"
TX_HEIGHT_TAG = "tx.height"
BLOCK_HEIGHT_TAG = "block.height"
EVENT_TYPE_TAG = "tm.event"

OPERATORS = ("=", "<", "<=", ">", ">=", "CONTAINS", "EXISTS")
ORDER_OPERATORS = ("<", "<=", ">", ">=")

TX_PREFIX = b"tx:"
TX_HEIGHT_PREFIX = b"th:"
TX_EVENT_PREFIX = b"te:"
BLOCK_PREFIX = b"bk:"
BLOCK_EVENT_PREFIX = b"be:"
INDEXED_HEIGHT_KEY = b"meta:indexed_height"
SEPARATOR = b"\x00"

_NUMBER_PREFIX = re.compile(r"[0-9]+(\.[0-9]+)?")
_TIME_VALUE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}([-+][0-9]{2}:[0-9]{2}|Z)")
_DATE_VALUE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class QueryError(ValueError):
    pass


class InvalidQuery(QueryError):
    pass


@dataclass(frozen=True)
class Condition:
    tag: str
    op: str
    arg: str | Fraction | datetime | date | None = None


@dataclass(frozen=True)
class IndexedTx:
    height: int
    index: int
    hash: bytes
    result: abci_pb2.TxResult


# ---------------------------------------------------------------------------------------------
# Query language


def _is_tag_char(ch: str) -> bool:
    return ch in "._-" or ch.isalpha() or ch.isdecimal()


def _parse_time(text: str) -> datetime:
    if not _TIME_VALUE.fullmatch(text):
        raise InvalidQuery(f"invalid TIME value {text!r}")
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidQuery(f"invalid TIME value {text!r}") from None
    if not 1900 <= value.year <= 2999:
        raise InvalidQuery(f"timestamp year {value.year} out of range")
    return value


def _parse_date(text: str) -> date:
    if not _DATE_VALUE.fullmatch(text):
        raise InvalidQuery(f"invalid DATE value {text!r}")
    try:
        value = date.fromisoformat(text)
    except ValueError:
        raise InvalidQuery(f"invalid DATE value {text!r}") from None
    if not 1900 <= value.year <= 2999:
        raise InvalidQuery(f"datestamp year {value.year} out of range")
    return value


def _scan(text: str) -> list[tuple[str, object]]:
    """Split a query into (kind, value) tokens: tag, op, and, string, number, time, date."""
    tokens = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "0123456789":
            m = _NUMBER_PREFIX.match(text, i)
            tokens.append(("number", Fraction(m.group())))
            i = m.end()
        elif ch == "'":
            end = text.find("'", i + 1)
            if end < 0:
                raise InvalidQuery(f"unterminated string at offset {i}")
            tokens.append(("string", text[i + 1:end]))
            i = end + 1
        elif ch in "<>=":
            op = text[i:i + 2] if text[i:i + 2] in ("<=", ">=") else ch
            tokens.append(("op", op))
            i += len(op)
        elif ch == "_" or ch.isalpha() or ch.isdecimal():
            j = i
            while j < n and _is_tag_char(text[j]):
                j += 1
            word = text[i:j]
            if word in ("TIME", "DATE") and j < n and text[j] == " ":
                k = j + 1
                while k < n and text[k] in "0123456789-T:+Z":
                    k += 1
                literal = text[j + 1:k]
                tokens.append(("time", _parse_time(literal)) if word == "TIME" else ("date", _parse_date(literal)))
                j = k
            elif word == "AND":
                tokens.append(("and", word))
            elif word in ("CONTAINS", "EXISTS"):
                tokens.append(("op", word))
            else:
                tokens.append(("tag", word))
            i = j
        else:
            raise InvalidQuery(f"invalid input {ch!r} at offset {i}")
    return tokens


def parse_query(text: str) -> tuple[Condition, ...]:
    tokens = _scan(text)
    conditions = []
    i = 0
    while True:
        if i >= len(tokens) or tokens[i][0] != "tag":
            raise InvalidQuery("expected an event tag (like tx.height or transfer.sender)")
        tag = tokens[i][1]
        if i + 1 >= len(tokens) or tokens[i + 1][0] != "op":
            raise InvalidQuery(f"expected an operator after {tag!r}")
        op = tokens[i + 1][1]
        i += 2
        if op == "EXISTS":
            conditions.append(Condition(tag, op))
        else:
            if i >= len(tokens) or tokens[i][0] not in ("string", "number", "time", "date"):
                raise InvalidQuery(f"expected a value after {tag} {op}")
            kind, arg = tokens[i]
            if op == "CONTAINS" and kind != "string":
                raise InvalidQuery("CONTAINS needs a 'string' value")
            if op in ORDER_OPERATORS and kind == "string":
                raise InvalidQuery(f"{op} needs a number, DATE or TIME value")
            conditions.append(Condition(tag, op, arg))
            i += 1
        if i == len(tokens):
            return tuple(conditions)
        if tokens[i][0] != "and":
            raise InvalidQuery("expected AND between conditions")
        i += 1


def _compare(op: str, left, right) -> bool:
    if op == "=":
        return left == right
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    if op == ">":
        return left > right
    return left >= right


def is_value_matching(condition: Condition, value: str) -> bool:
    """Whether one attribute value satisfies the condition (libs/pubsub/query semantics)."""
    op, arg = condition.op, condition.arg
    if op == "EXISTS":
        return True
    if op == "CONTAINS":
        return arg in value
    if isinstance(arg, str):
        return value == arg
    if isinstance(arg, Fraction):
        m = _NUMBER_PREFIX.match(value)
        return m is not None and _compare(op, Fraction(m.group()), arg)
    try:
        if isinstance(arg, datetime):
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if parsed.tzinfo is None:
                return False
        else:
            parsed = date.fromisoformat(value)
    except ValueError:
        return False
    return _compare(op, parsed, arg)


def is_event_map_matching(conditions: tuple[Condition, ...], events: dict[str, list[str]]) -> bool:
    """Subscription matching: each condition holds for some value of its tag."""
    if not events:
        return False
    for condition in conditions:
        values = events.get(condition.tag)
        if values is None:
            if condition.op == "EXISTS" and any(k.startswith(condition.tag + ".") for k in events):
                continue
            return False
        if not any(is_value_matching(condition, v) for v in values):
            return False
    return True


def _split_tag(tag: str) -> tuple[str, str]:
    event_type, _, key = tag.rpartition(".")
    return event_type, key


def is_events_matching(
    conditions: tuple[Condition, ...], events, pseudo: dict[str, str]
) -> bool:
    """Index matching: pseudo tags by value, other conditions grouped by event type per event."""
    groups: dict[str, list[Condition]] = {}
    for condition in conditions:
        if condition.tag in pseudo:
            if not is_value_matching(condition, pseudo[condition.tag]):
                return False
        else:
            groups.setdefault(_split_tag(condition.tag)[0], []).append(condition)
    for event_type, group in groups.items():
        if not event_type:
            return False
        if not any(
            event.type == event_type and all(_is_event_satisfying(event, c) for c in group)
            for event in events
        ):
            return False
    return True


def _is_event_satisfying(event: abci_pb2.Event, condition: Condition) -> bool:
    key = _split_tag(condition.tag)[1]
    return any(
        attr.index and attr.key == key and is_value_matching(condition, attr.value)
        for attr in event.attributes
    )


def compute_tx_event_map(tx_hash: bytes, height: int, events) -> dict[str, list[str]]:
    """The `events` map CometBFT publishes with a Tx event (every attribute, indexed or not)."""
    result = compute_event_map(events)
    result.setdefault(EVENT_TYPE_TAG, []).append("Tx")
    result.setdefault(TX_HASH_TAG, []).append(tx_hash.hex().upper())
    result.setdefault(TX_HEIGHT_TAG, []).append(str(height))
    return result


def compute_event_map(events) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for event in events:
        if not event.type:
            continue
        for attr in event.attributes:
            if attr.key:
                result.setdefault(f"{event.type}.{attr.key}", []).append(attr.value)
    return result


# ---------------------------------------------------------------------------------------------
# Storage


def _be64(value: int) -> bytes:
    return struct.pack(">Q", value)


def _be32(value: int) -> bytes:
    return struct.pack(">I", value)


def _height_bounds(conditions: tuple[Condition, ...], tag: str) -> tuple[int, int]:
    """Inclusive height range implied by numeric conditions on `tag` (a scan window only)."""
    low, high = 1, 2**63 - 1
    for c in conditions:
        if c.tag != tag or not isinstance(c.arg, Fraction):
            continue
        floor, ceil = c.arg.numerator // c.arg.denominator, -(-c.arg.numerator // c.arg.denominator)
        if c.op == "=":
            low, high = max(low, ceil), min(high, floor)
        elif c.op == ">":
            low = max(low, floor + 1)
        elif c.op == ">=":
            low = max(low, ceil)
        elif c.op == "<":
            high = min(high, ceil - 1)
        elif c.op == "<=":
            high = min(high, floor)
    return low, high


def _first_equality(conditions: tuple[Condition, ...], pseudo_tags: tuple[str, ...]) -> Condition | None:
    for c in conditions:
        if c.op == "=" and isinstance(c.arg, str) and c.tag not in pseudo_tags:
            return c
    return None


def _event_key(prefix: bytes, tag: str, value: str, position: bytes) -> bytes:
    return prefix + tag.encode() + SEPARATOR + value.encode() + SEPARATOR + position


def _event_prefix(prefix: bytes, tag: str, value: str) -> bytes:
    return prefix + tag.encode() + SEPARATOR + value.encode() + SEPARATOR


class TxIndex:
    def __init__(self, path: str):
        self.db = plyvel.DB(path, create_if_missing=True)

    def close(self) -> None:
        self.db.close()

    def get_indexed_height(self) -> int:
        raw = self.db.get(INDEXED_HEIGHT_KEY)
        return struct.unpack(">Q", raw)[0] if raw else 0

    def process_block(self, height: int, txs: list[bytes], response: abci_pb2.ResponseFinalizeBlock,
                      tx_hashes: list[bytes]) -> None:
        """Index one committed block atomically (re-indexing a height is harmless)."""
        with self.db.write_batch(transaction=True) as batch:
            for index, (tx, tx_hash) in enumerate(zip(txs, tx_hashes)):
                position = _be64(height) + _be32(index)
                result = abci_pb2.TxResult(height=height, index=index, tx=tx, result=response.tx_results[index])
                batch.put(TX_PREFIX + tx_hash, result.SerializeToString())
                batch.put(TX_HEIGHT_PREFIX + position, tx_hash)
                for event in response.tx_results[index].events:
                    for attr in event.attributes:
                        if event.type and attr.key and attr.index:
                            batch.put(_event_key(TX_EVENT_PREFIX, f"{event.type}.{attr.key}", attr.value, position),
                                      tx_hash)
            block_events = abci_pb2.ResponseFinalizeBlock(events=response.events)
            batch.put(BLOCK_PREFIX + _be64(height), block_events.SerializeToString())
            for event in response.events:
                for attr in event.attributes:
                    if event.type and attr.key and attr.index:
                        batch.put(_event_key(BLOCK_EVENT_PREFIX, f"{event.type}.{attr.key}", attr.value,
                                             _be64(height)), b"")
            batch.put(INDEXED_HEIGHT_KEY, _be64(max(height, self.get_indexed_height())))

    def get_tx(self, tx_hash: bytes) -> IndexedTx | None:
        raw = self.db.get(TX_PREFIX + tx_hash)
        if raw is None:
            return None
        result = abci_pb2.TxResult.FromString(raw)
        return IndexedTx(height=result.height, index=result.index, hash=tx_hash, result=result)

    def _scan_tx_hashes(self, conditions: tuple[Condition, ...]) -> list[bytes]:
        equality = _first_equality(conditions, (TX_HASH_TAG, TX_HEIGHT_TAG))
        if equality is not None:
            prefix = _event_prefix(TX_EVENT_PREFIX, equality.tag, equality.arg)
            return list(dict.fromkeys(v for _, v in self.db.iterator(prefix=prefix)))
        low, high = _height_bounds(conditions, TX_HEIGHT_TAG)
        if low > high:
            return []
        return [v for _, v in self.db.iterator(start=TX_HEIGHT_PREFIX + _be64(low),
                                               stop=TX_HEIGHT_PREFIX + _be64(high) + b"\xff" * 5)]

    def search_txs(self, conditions: tuple[Condition, ...]) -> list[IndexedTx]:
        """Matching transactions in (height, index) order."""
        hash_conditions = [c for c in conditions if c.tag == TX_HASH_TAG]
        if hash_conditions:
            if not isinstance(hash_conditions[0].arg, str):
                raise InvalidQuery("tx.hash must be a 'hex string'")
            try:
                candidates = [bytes.fromhex(hash_conditions[0].arg)]
            except ValueError:
                raise InvalidQuery(f"tx.hash {hash_conditions[0].arg!r} is not hex") from None
        else:
            candidates = self._scan_tx_hashes(conditions)
        found = []
        for tx_hash in candidates:
            tx = self.get_tx(tx_hash)
            if tx is None:
                continue
            pseudo = {TX_HASH_TAG: tx_hash.hex().upper(), TX_HEIGHT_TAG: str(tx.height)}
            if is_events_matching(conditions, tx.result.result.events, pseudo):
                found.append(tx)
        found.sort(key=lambda t: (t.height, t.index))
        return found

    def search_blocks(self, conditions: tuple[Condition, ...]) -> list[int]:
        """Heights of matching blocks, ascending."""
        equality = _first_equality(conditions, (BLOCK_HEIGHT_TAG,))
        if equality is not None:
            prefix = _event_prefix(BLOCK_EVENT_PREFIX, equality.tag, equality.arg)
            heights = sorted({struct.unpack(">Q", k[-8:])[0] for k in self.db.iterator(prefix=prefix,
                                                                                          include_value=False)})
        else:
            low, high = _height_bounds(conditions, BLOCK_HEIGHT_TAG)
            if low > high:
                return []
            heights = [struct.unpack(">Q", k[len(BLOCK_PREFIX):])[0] for k in self.db.iterator(
                start=BLOCK_PREFIX + _be64(low), stop=BLOCK_PREFIX + _be64(high) + b"\xff", include_value=False)]
        matching = []
        for height in heights:
            raw = self.db.get(BLOCK_PREFIX + _be64(height))
            if raw is None:
                continue
            events = abci_pb2.ResponseFinalizeBlock.FromString(raw).events
            if is_events_matching(conditions, events, {BLOCK_HEIGHT_TAG: str(height)}):
                matching.append(height)
        return matching
