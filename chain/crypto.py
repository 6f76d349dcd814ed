"""Keys, addresses and signatures as Cosmos wallets (Keplr, cosmjs) make them.

secp256k1 over sha256 with 64-byte r||s low-S signatures, 33-byte compressed public keys, addresses
ripemd160(sha256(pubkey)) in bech32 with the chain prefix, keys derived from BIP39 mnemonics along
BIP44 coin type 118.

libsecp256k1 (coincurve), bip32 and mnemonic are imported by the functions that use them: reading an address
(every CLI query does) needs bech32 alone.
"""

import hashlib
from functools import lru_cache

import bech32

BECH32_PREFIX = "mxw"
HD_PATH = "m/44'/118'/0'/0/0"
ADDRESS_LENGTH = 20
PUBKEY_LENGTH = 33
SIGNATURE_LENGTH = 64
MNEMONIC_STRENGTH_BITS = 256
ADDRESS_CACHE_SIZE = 1 << 18


class CryptoError(ValueError):
    pass


class InvalidAddress(CryptoError):
    pass


class InvalidMnemonic(CryptoError):
    pass


def generate_mnemonic() -> str:
    from mnemonic import Mnemonic
    return Mnemonic("english").generate(strength=MNEMONIC_STRENGTH_BITS)


def derive_private_key(mnemonic: str, path: str = HD_PATH) -> bytes:
    from bip32 import BIP32
    from mnemonic import Mnemonic
    words = " ".join(mnemonic.split())
    if not Mnemonic("english").check(words):
        raise InvalidMnemonic("invalid mnemonic: wrong words or checksum")
    seed = Mnemonic.to_seed(words, passphrase="")
    return BIP32.from_seed(seed).get_privkey_from_path(path)


def compute_public_key(private_key: bytes) -> bytes:
    import coincurve
    return coincurve.PrivateKey(private_key).public_key.format(compressed=True)


_RIPEMD160 = hashlib.new("ripemd160")  # copied per use: hashlib.new looks the name up, twice as slow


def compute_address(public_key: bytes) -> bytes:
    ripemd160 = _RIPEMD160.copy()
    ripemd160.update(hashlib.sha256(public_key).digest())
    return ripemd160.digest()


# bech32 of the addresses with the chain's prefix that were encoded or decoded (bech32 takes 30-40 µs):
# a tx's messages name its addresses in bech32, and its events name them again
_address_texts: dict[bytes, str] = {}


def _remember_text(address: bytes, text: str) -> None:
    if len(_address_texts) >= ADDRESS_CACHE_SIZE:
        del _address_texts[next(iter(_address_texts))]
    _address_texts[address] = text


def encode_address(address: bytes, prefix: str = BECH32_PREFIX) -> str:
    text = _address_texts.get(address) if prefix == BECH32_PREFIX else None
    if text is None:
        text = bech32.bech32_encode(prefix, bech32.convertbits(address, 8, 5))
        if prefix == BECH32_PREFIX:
            _remember_text(address, text)
    return text


@lru_cache(maxsize=ADDRESS_CACHE_SIZE)
def decode_address(text: str, prefix: str = BECH32_PREFIX) -> bytes:
    """Bech32 address -> 20 bytes; raises InvalidAddress naming what is wrong. Cached: bech32 is slow."""
    if not isinstance(text, str) or not text:
        raise InvalidAddress("empty address")
    hrp, data = bech32.bech32_decode(text)
    if hrp is None or data is None:
        raise InvalidAddress(f"invalid bech32 address {text!r}")
    if hrp != prefix:
        raise InvalidAddress(f"address {text!r} has prefix {hrp!r}, expected {prefix!r}")
    raw = bech32.convertbits(data, 5, 8, False)
    if raw is None or len(raw) != ADDRESS_LENGTH:
        raise InvalidAddress(f"address {text!r} is not {ADDRESS_LENGTH} bytes")
    address = bytes(raw)
    if prefix == BECH32_PREFIX:
        _remember_text(address, text.lower())  # bech32 is valid in one case; its encoding is the lower
    return address


def sign(private_key: bytes, message: bytes) -> bytes:
    """64-byte r||s over sha256(message); libsecp256k1 always produces low-S."""
    import coincurve
    return coincurve.PrivateKey(private_key).sign_recoverable(message)[:SIGNATURE_LENGTH]


def is_valid_signature(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """Verifies r||s over sha256(message); high-S signatures are rejected as in the Cosmos SDK."""
    import coincurve
    from coincurve.ecdsa import cdata_to_der, deserialize_compact
    if len(public_key) != PUBKEY_LENGTH or len(signature) != SIGNATURE_LENGTH:
        return False
    try:
        der = cdata_to_der(deserialize_compact(signature))
        return coincurve.PublicKey(public_key).verify(der, message)
    except (ValueError, TypeError):
        return False
