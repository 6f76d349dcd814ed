"""Errors a transaction can fail with: ABCI code, codespace and log, as the Cosmos SDK reports them.

Codes in codespace `sdk` are the SDK's own numbers, so wallets and explorers recognise them.
"""

SDK = "sdk"


class TxError(Exception):
    code = 1
    codespace = SDK


class TxDecodeError(TxError):
    code = 2


class UnauthorizedError(TxError):
    code = 4


class InsufficientFundsError(TxError):
    code = 5


class UnknownRequestError(TxError):
    code = 6


class InvalidAddressError(TxError):
    code = 7


class InvalidPubKeyError(TxError):
    code = 8


class UnknownAddressError(TxError):
    code = 9


class InvalidCoinsError(TxError):
    code = 10


class OutOfGasError(TxError):
    code = 11


class MemoTooLargeError(TxError):
    code = 12


class InsufficientFeeError(TxError):
    code = 13


class TooManySignaturesError(TxError):
    code = 14


class NoSignaturesError(TxError):
    code = 15


class InvalidRequestError(TxError):
    code = 18


class TxTooLargeError(TxError):
    code = 21


class InvalidSequenceError(TxError):
    code = 32


class NotFoundError(TxError):
    code = 38


class GenesisError(ValueError):
    """A genesis document the chain cannot start from; InitChain fails with it."""
