"""ibc-go's core errors (codespace `ibc`), which its applications return too."""

from chain.errors import TxError

CODESPACE = "ibc"


class IbcError(TxError):
    codespace = CODESPACE


class InvalidTypeError(IbcError):
    code = 12


class InvalidIbcAddressError(IbcError):
    code = 5


class UnknownIbcRequestError(IbcError):
    code = 4


class InvalidIbcRequestError(IbcError):
    code = 8
