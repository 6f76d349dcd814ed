"""Unsigned varints (LEB128) as protobuf and Go's encoding/binary write them."""

MAX_UVARINT_BYTES = 10


class UvarintError(ValueError):
    pass


class TruncatedUvarint(UvarintError):
    """The data ends before the varint's last byte."""


class UvarintOverflow(UvarintError):
    """The varint does not fit in 64 bits."""


def encode_uvarint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_uvarint(data: bytes, pos: int = 0) -> tuple[int, int]:
    """The varint at data[pos:] and the position after it, as Go's binary.Uvarint reads it."""
    value = 0
    for i in range(MAX_UVARINT_BYTES):
        if pos + i >= len(data):
            raise TruncatedUvarint("uvarint is truncated")
        byte = data[pos + i]
        if byte < 0x80:
            if i == MAX_UVARINT_BYTES - 1 and byte > 1:
                break
            return value | byte << (7 * i), pos + i + 1
        value |= (byte & 0x7F) << (7 * i)
    raise UvarintOverflow("uvarint overflows 64 bits")
