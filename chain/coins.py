"""Amounts and denominations: Python ints bounded to uint256, SDK `Int` decimal strings on the wire."""

import re

from chain.errors import InvalidCoinsError

DENOM = "ujoule"
UINT256_MAX = 2**256 - 1
DENOM_PATTERN = re.compile(r"[a-zA-Z][a-zA-Z0-9/:._-]{2,127}")
AMOUNT_PATTERN = re.compile(r"[0-9]{1,78}")
COIN_PATTERN = re.compile(f"({AMOUNT_PATTERN.pattern})({DENOM_PATTERN.pattern})")


def parse_uint(text: str, what: str = "amount", error: type = InvalidCoinsError) -> int:
    """A non-negative SDK Int string -> int; rejects signs, decimals, spaces and > uint256 with `error`."""
    if not isinstance(text, str) or not AMOUNT_PATTERN.fullmatch(text):
        raise error(f"invalid {what} {text!r}: must be a non-negative integer")
    value = int(text)
    if value > UINT256_MAX:
        raise error(f"invalid {what} {text!r}: exceeds 256 bits")
    return value


def parse_denom(text: str) -> str:
    if not isinstance(text, str) or not DENOM_PATTERN.fullmatch(text):
        raise InvalidCoinsError(f"invalid denom {text!r}")
    return text


def parse_coins(coins) -> dict[str, int]:
    """Repeated Coin messages (or dicts) -> {denom: amount}; positive, sorted, no duplicates."""
    result: dict[str, int] = {}
    previous = ""
    for coin in coins:
        denom, amount = (coin["denom"], coin["amount"]) if isinstance(coin, dict) else (coin.denom, coin.amount)
        denom = parse_denom(denom)
        value = parse_uint(amount)
        if value == 0:
            raise InvalidCoinsError(f"invalid coins: zero amount of {denom}")
        if denom <= previous:
            raise InvalidCoinsError("invalid coins: denoms must be sorted and unique")
        previous = denom
        result[denom] = value
    return result


def parse_coin_string(text: str) -> tuple[int, str]:
    """'1000ujoule' -> (1000, 'ujoule'), as users type amounts on the command line."""
    match = COIN_PATTERN.fullmatch(text.strip()) if isinstance(text, str) else None
    if not match:
        raise InvalidCoinsError(f"invalid coin {text!r}: expected an integer amount and a denom, e.g. 1000{DENOM}")
    return parse_uint(match.group(1)), match.group(2)


def format_coins(coins: dict[str, int]) -> str:
    return ",".join(f"{amount}{denom}" for denom, amount in sorted(coins.items()))
