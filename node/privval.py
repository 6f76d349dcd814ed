"""The validator's ed25519 key in CometBFT's `priv_validator_key.json` format.

    {"address": "<upper hex sha256(pub)[:20]>",
     "pub_key": {"type": "tendermint/PubKeyEd25519", "value": "<base64 32 bytes>"},
     "priv_key": {"type": "tendermint/PrivKeyEd25519", "value": "<base64 seed || pub, 64 bytes>"}}
"""

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from ibc.tendermint import compute_consensus_address

PUB_KEY_TYPE = "tendermint/PubKeyEd25519"
PRIV_KEY_TYPE = "tendermint/PrivKeyEd25519"
PUB_KEY_LENGTH = 32
PRIV_KEY_LENGTH = 64
KEY_FILE_MODE = 0o600


class PrivValError(Exception):
    pass


class KeyFileExists(PrivValError):
    pass


class InvalidKeyFile(PrivValError):
    pass


@dataclass(frozen=True)
class PrivValidatorKey:
    address: bytes
    pub_key: bytes
    priv_key: bytes


def compute_key_from_seed(seed: bytes) -> PrivValidatorKey:
    signing_key = SigningKey(seed)
    pub_key = bytes(signing_key.verify_key)
    return PrivValidatorKey(address=compute_consensus_address(pub_key), pub_key=pub_key, priv_key=seed + pub_key)


def encode_key_file(key: PrivValidatorKey) -> str:
    return json.dumps({
        "address": key.address.hex().upper(),
        "pub_key": {"type": PUB_KEY_TYPE, "value": base64.b64encode(key.pub_key).decode()},
        "priv_key": {"type": PRIV_KEY_TYPE, "value": base64.b64encode(key.priv_key).decode()},
    }, indent=2) + "\n"


def generate(path: str | os.PathLike) -> PrivValidatorKey:
    """Create a new key file; an existing one is never overwritten."""
    key = compute_key_from_seed(os.urandom(32))
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
    except FileExistsError:
        raise KeyFileExists(f"{target} already exists") from None
    with os.fdopen(fd, "w") as f:
        f.write(encode_key_file(key))
        f.flush()
        os.fsync(f.fileno())
    return key


def _decode_typed_bytes(obj: object, field: str, key_type: str, length: int) -> bytes:
    if not isinstance(obj, dict) or obj.get("type") != key_type or not isinstance(obj.get("value"), str):
        raise InvalidKeyFile(f"{field} must be {{\"type\": \"{key_type}\", \"value\": <base64>}}")
    try:
        raw = base64.b64decode(obj["value"], validate=True)
    except ValueError:
        raise InvalidKeyFile(f"{field} value is not base64") from None
    if len(raw) != length:
        raise InvalidKeyFile(f"{field} must be {length} bytes, got {len(raw)}")
    return raw


def load(path: str | os.PathLike) -> PrivValidatorKey:
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InvalidKeyFile(f"{path} does not exist") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidKeyFile(f"{path} is not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise InvalidKeyFile(f"{path} must hold a JSON object")
    pub_key = _decode_typed_bytes(doc.get("pub_key"), "pub_key", PUB_KEY_TYPE, PUB_KEY_LENGTH)
    priv_key = _decode_typed_bytes(doc.get("priv_key"), "priv_key", PRIV_KEY_TYPE, PRIV_KEY_LENGTH)
    key = compute_key_from_seed(priv_key[:32])
    if key.pub_key != pub_key or key.priv_key != priv_key:
        raise InvalidKeyFile("pub_key does not belong to priv_key")
    if doc.get("address") != key.address.hex().upper():
        raise InvalidKeyFile("address does not match pub_key")
    return key


def sign(key: PrivValidatorKey, message: bytes) -> bytes:
    return SigningKey(key.priv_key[:32]).sign(message).signature


def is_valid_signature(pub_key: bytes, message: bytes, signature: bytes) -> bool:
    try:
        VerifyKey(pub_key).verify(message, signature)
    except (BadSignatureError, ValueError):
        return False
    return True
