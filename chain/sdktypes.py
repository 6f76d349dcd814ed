"""The SDK's scalar types that staking and slashing speak: LegacyDec, times, and their JSON spelling.

A LegacyDec is an 18-decimal fixed point number, here an int scaled by 10^18 ("atomics"). It has two
spellings. On the protobuf wire — messages, stored records, query answers — it is its atomics as
decimal text ("50000000000000000" is 0.05), as the SDK's gogoproto types encode it and cosmjs reads
it; in genesis JSON and in events it is the decimal with 18 places, "0.050000000000000000". Its
arithmetic rounds as the SDK's does: `compute_chop` is the SDK's banker's rounding of the digits
below the 18th place.

Times are nanoseconds since the Unix epoch (block time, `Context.time_ns`); on the wire they are
protobuf Timestamps and Durations, in events RFC 3339 as Go's time.RFC3339 writes them.
"""

import base64
import binascii
import re
from datetime import datetime, timedelta, timezone

from google.protobuf import descriptor_pool
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from chain.coins import UINT256_MAX, parse_uint
from chain.errors import GenesisError
from chain.genesis import decode_genesis, encode_json

PRECISION = 18
ONE = 10**PRECISION
MAX_ATOMICS = UINT256_MAX * ONE
NANOS_PER_SECOND = 10**9
ATOMICS_PATTERN = re.compile(r"-?[0-9]{1,96}")
TEXT_PATTERN = re.compile(r"(-?)([0-9]{1,78})(?:\.([0-9]{1,18}))?")
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

DEC = "dec"
DEC_BYTES = "dec_bytes"
INT_BYTES = "int_bytes"
SDK_JSON_FIELDS = {
    "cosmos.staking.v1beta1.Validator.delegator_shares": DEC,
    "cosmos.staking.v1beta1.CommissionRates.rate": DEC,
    "cosmos.staking.v1beta1.CommissionRates.max_rate": DEC,
    "cosmos.staking.v1beta1.CommissionRates.max_change_rate": DEC,
    "cosmos.staking.v1beta1.Params.min_commission_rate": DEC,
    "cosmos.staking.v1beta1.Delegation.shares": DEC,
    "cosmos.staking.v1beta1.RedelegationEntry.shares_dst": DEC,
    "cosmos.staking.v1beta1.MsgEditValidator.commission_rate": DEC,
    "cosmos.staking.v1beta1.GenesisState.last_total_power": INT_BYTES,
    "cosmos.slashing.v1beta1.Params.min_signed_per_window": DEC_BYTES,
    "cosmos.slashing.v1beta1.Params.slash_fraction_double_sign": DEC_BYTES,
    "cosmos.slashing.v1beta1.Params.slash_fraction_downtime": DEC_BYTES,
}


class DecimalError(ValueError):
    pass


# --- LegacyDec -------------------------------------------------------------------------------

def parse_dec(text: str, what: str, error: type) -> int:
    """A LegacyDec in its wire spelling (atomics) -> its atomics; raises `error` when malformed."""
    if not isinstance(text, str) or not ATOMICS_PATTERN.fullmatch(text) or abs(int(text)) > MAX_ATOMICS:
        raise error(f"invalid {what} {text!r}: expected a decimal's integer scaled by 10^{PRECISION}")
    return int(text)


def format_dec(atomics: int) -> str:
    return str(atomics)


def parse_dec_text(text: str, what: str, error: type) -> int:
    """A LegacyDec written as a decimal ("0.05") -> its atomics."""
    match = TEXT_PATTERN.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise error(f"invalid {what} {text!r}: expected a decimal with at most {PRECISION} places")
    sign, whole, fraction = match.group(1), match.group(2), match.group(3) or ""
    atomics = int(whole) * ONE + int(fraction.ljust(PRECISION, "0"))
    if atomics > MAX_ATOMICS:
        raise error(f"invalid {what} {text!r}: exceeds 256 bits")
    return -atomics if sign else atomics


def format_dec_text(atomics: int) -> str:
    """The decimal with 18 places, as the SDK's LegacyDec.String writes it."""
    whole, fraction = divmod(abs(atomics), ONE)
    return f"{'-' if atomics < 0 else ''}{whole}.{str(fraction).rjust(PRECISION, '0')}"


def compute_chop(value: int) -> int:
    """value / 10^18 rounded half to even (the SDK's chopPrecisionAndRound)."""
    quotient, remainder = divmod(abs(value), ONE)
    if remainder * 2 > ONE or (remainder * 2 == ONE and quotient % 2):
        quotient += 1
    return -quotient if value < 0 else quotient


def compute_quo(numerator: int, denominator: int) -> int:
    """numerator / denominator of two LegacyDecs (atomics), rounded as LegacyDec.Quo."""
    return compute_chop(numerator * ONE * ONE // denominator)


# --- times -----------------------------------------------------------------------------------

def compute_timestamp(time_ns: int) -> Timestamp:
    return Timestamp(seconds=time_ns // NANOS_PER_SECOND, nanos=time_ns % NANOS_PER_SECOND)


def compute_nanoseconds(value: Timestamp | Duration) -> int:
    return value.seconds * NANOS_PER_SECOND + value.nanos


def compute_rfc3339(time_ns: int) -> str:
    return (EPOCH + timedelta(seconds=time_ns // NANOS_PER_SECOND)).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the SDK's JSON spelling -----------------------------------------------------------------

def decode_sdk_genesis(section, genesis_class, default_params, module: str):
    """A module's genesis section in SDK JSON -> its GenesisState, params over their defaults."""
    try:
        document = decode_sdk_json(section, genesis_class.DESCRIPTOR)
    except DecimalError as error:
        raise GenesisError(f"{module} genesis: {error}") from None
    return decode_genesis(document, genesis_class, default_params, module)


def encode_sdk_genesis(genesis) -> dict:
    return encode_sdk_json(encode_json(genesis), genesis.DESCRIPTOR)


def decode_sdk_json(document, message_descriptor):
    """SDK JSON (decimals as "0.05", Ints in bytes fields as "12") -> the proto3 JSON of our protos."""
    return _convert(document, message_descriptor, _to_wire)


def encode_sdk_json(document, message_descriptor):
    """The proto3 JSON of our protos -> SDK JSON, as `decode_sdk_json` reads it back."""
    return _convert(document, message_descriptor, _to_text)


def _convert(document, message_descriptor, convert):
    if not isinstance(document, dict):
        return document
    if message_descriptor.full_name == "google.protobuf.Any":
        type_name = str(document.get("@type", "")).rpartition("/")[2]
        try:
            message_descriptor = descriptor_pool.Default().FindMessageTypeByName(type_name)
        except KeyError:
            return document
    converted = {}
    for name, value in document.items():
        field = message_descriptor.fields_by_name.get(name)
        kind = field and SDK_JSON_FIELDS.get(field.full_name)
        if kind:
            converted[name] = convert(value, kind, field.full_name)
        elif field is not None and field.message_type is not None and isinstance(value, list):
            converted[name] = [_convert(item, field.message_type, convert) for item in value]
        elif field is not None and field.message_type is not None:
            converted[name] = _convert(value, field.message_type, convert)
        else:
            converted[name] = value
    return converted


def _to_wire(value, kind: str, what: str) -> str:
    if kind == INT_BYTES:
        return base64.b64encode(str(parse_uint(value, what, DecimalError)).encode()).decode()
    atomics = format_dec(parse_dec_text(value, what, DecimalError))
    return base64.b64encode(atomics.encode()).decode() if kind == DEC_BYTES else atomics


def _to_text(value, kind: str, what: str) -> str:
    if kind == DEC:
        return format_dec_text(parse_dec(value, what, DecimalError))
    try:
        text = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, TypeError):
        raise DecimalError(f"invalid {what} {value!r}: not base64 text") from None
    return text if kind == INT_BYTES else format_dec_text(parse_dec(text, what, DecimalError))
