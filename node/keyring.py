"""The wallet's keys: one JSON file per key under `<home>/keyring-<backend>/`.

Backend `file` keeps the mnemonic encrypted with a key derived from the user's passphrase
(argon2id, then XSalsa20-Poly1305 from libsodium's SecretBox); name, address and public key stay
readable so listing keys and resolving names to addresses need no passphrase. Backend `test` keeps
the mnemonic in the clear and exists for tests and dev chains only.

    {"name": "alice", "address": "mxw1...", "pubkey": "<base64 33 bytes>",
     "crypto": {"kdf": "argon2id", "opslimit": 2, "memlimit": 67108864, "salt": "<base64>",
                "cipher": "xsalsa20-poly1305", "ciphertext": "<base64 nonce || box>"}}
"""

import base64
import binascii
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.utils

from chain import crypto

BACKENDS = ("file", "test")
DEFAULT_BACKEND = "file"
KEY_FILE_SUFFIX = ".json"
KEY_FILE_MODE = 0o600
KEYRING_DIR_MODE = 0o700
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MIN_PASSPHRASE_LENGTH = 8
KDF = "argon2id"
CIPHER = "xsalsa20-poly1305"
OPSLIMIT = nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE
MEMLIMIT = nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE
# Bounds for parameters read back from a key file, so a damaged file cannot ask for absurd work.
MAX_OPSLIMIT = nacl.pwhash.argon2id.OPSLIMIT_SENSITIVE
MAX_MEMLIMIT = nacl.pwhash.argon2id.MEMLIMIT_SENSITIVE


class KeyringError(Exception):
    pass


class UnknownBackend(KeyringError):
    pass


class InvalidKeyName(KeyringError):
    pass


class KeyExists(KeyringError):
    pass


class KeyNotFound(KeyringError):
    pass


class WeakPassphrase(KeyringError):
    pass


class PassphraseRequired(KeyringError):
    pass


class WrongPassphrase(KeyringError):
    pass


class CorruptKeyFile(KeyringError):
    pass


@dataclass(frozen=True)
class KeyInfo:
    name: str
    address: str
    public_key: bytes


def compute_keyring_dir(home: Path, backend: str) -> Path:
    if backend not in BACKENDS:
        raise UnknownBackend(f"unknown keyring backend {backend!r}: use one of {', '.join(BACKENDS)}")
    return Path(home) / f"keyring-{backend}"


def check_name(name: str) -> None:
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidKeyName(
            f"invalid key name {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )


def check_passphrase(passphrase: str) -> None:
    if len(passphrase) < MIN_PASSPHRASE_LENGTH:
        raise WeakPassphrase(f"passphrase must be at least {MIN_PASSPHRASE_LENGTH} characters")


def compute_secret_key(passphrase: str, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    return nacl.pwhash.argon2id.kdf(
        nacl.secret.SecretBox.KEY_SIZE, passphrase.encode(), salt, opslimit=opslimit, memlimit=memlimit
    )


def compute_encrypted_mnemonic(mnemonic: str, passphrase: str) -> dict:
    salt = nacl.utils.random(nacl.pwhash.argon2id.SALTBYTES)
    box = nacl.secret.SecretBox(compute_secret_key(passphrase, salt, OPSLIMIT, MEMLIMIT))
    return {
        "kdf": KDF,
        "opslimit": OPSLIMIT,
        "memlimit": MEMLIMIT,
        "salt": base64.b64encode(salt).decode(),
        "cipher": CIPHER,
        "ciphertext": base64.b64encode(bytes(box.encrypt(mnemonic.encode()))).decode(),
    }


def compute_decrypted_mnemonic(name: str, sealed: dict, passphrase: str) -> str:
    try:
        if sealed["kdf"] != KDF or sealed["cipher"] != CIPHER:
            raise CorruptKeyFile(f"key {name!r} uses an unsupported kdf or cipher")
        opslimit, memlimit = int(sealed["opslimit"]), int(sealed["memlimit"])
        salt = base64.b64decode(sealed["salt"], validate=True)
        ciphertext = base64.b64decode(sealed["ciphertext"], validate=True)
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise CorruptKeyFile(f"key {name!r}: unreadable encrypted mnemonic") from None
    if not (0 < opslimit <= MAX_OPSLIMIT and 0 < memlimit <= MAX_MEMLIMIT) or len(salt) != nacl.pwhash.argon2id.SALTBYTES:
        raise CorruptKeyFile(f"key {name!r}: invalid key derivation parameters")
    box = nacl.secret.SecretBox(compute_secret_key(passphrase, salt, opslimit, memlimit))
    try:
        return box.decrypt(ciphertext).decode()
    except nacl.exceptions.CryptoError:
        raise WrongPassphrase(f"wrong passphrase for key {name!r}") from None


def compute_key_info(mnemonic: str, name: str) -> KeyInfo:
    public_key = crypto.compute_public_key(crypto.derive_private_key(mnemonic))
    return KeyInfo(name, crypto.encode_address(crypto.compute_address(public_key)), public_key)


def read_key_file(path: Path, name: str) -> dict:
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise KeyNotFound(f"key {name!r} not found") from None
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise CorruptKeyFile(f"key {name!r}: cannot read {path}: {error}") from None
    if not isinstance(document, dict):
        raise CorruptKeyFile(f"key {name!r}: {path} does not hold a JSON object")
    return document


def decode_key_info(document: dict, name: str) -> KeyInfo:
    try:
        public_key = base64.b64decode(document["pubkey"], validate=True)
        info = KeyInfo(document["name"], document["address"], public_key)
    except (KeyError, TypeError, binascii.Error):
        raise CorruptKeyFile(f"key {name!r}: missing or malformed fields") from None
    if info.name != name or info.address != crypto.encode_address(crypto.compute_address(public_key)):
        raise CorruptKeyFile(f"key {name!r}: name, address and public key do not agree")
    return info


def write_key_file(directory: Path, name: str, document: dict) -> None:
    """Creates the file with mode 0600 and never replaces an existing key (link fails if it exists)."""
    directory.mkdir(mode=KEYRING_DIR_MODE, parents=True, exist_ok=True)
    target = directory / (name + KEY_FILE_SUFFIX)
    temporary = directory / f".{name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(document, indent=2) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.link(temporary, target)
    except FileExistsError:
        raise KeyExists(f"key {name!r} already exists") from None
    finally:
        temporary.unlink(missing_ok=True)


def add_key(home: Path, backend: str, name: str, mnemonic: str, passphrase: str | None = None) -> KeyInfo:
    """Stores a key derived from `mnemonic`; `passphrase` is required by the file backend."""
    directory = compute_keyring_dir(home, backend)
    check_name(name)
    info = compute_key_info(mnemonic, name)
    if is_key(home, backend, name):
        raise KeyExists(f"key {name!r} already exists")
    for other in get_keys(home, backend):
        if other.address == info.address:
            raise KeyExists(f"address {info.address} is already stored as key {other.name!r}")
    document = {
        "name": name,
        "address": info.address,
        "pubkey": base64.b64encode(info.public_key).decode(),
    }
    words = " ".join(mnemonic.split())
    if backend == "test":
        document["mnemonic"] = words
    else:
        if passphrase is None:
            raise PassphraseRequired("the file keyring needs a passphrase")
        check_passphrase(passphrase)
        document["crypto"] = compute_encrypted_mnemonic(words, passphrase)
    write_key_file(directory, name, document)
    return info


def is_key(home: Path, backend: str, name: str) -> bool:
    check_name(name)
    return (compute_keyring_dir(home, backend) / (name + KEY_FILE_SUFFIX)).is_file()


def get_key(home: Path, backend: str, name: str) -> KeyInfo:
    check_name(name)
    path = compute_keyring_dir(home, backend) / (name + KEY_FILE_SUFFIX)
    return decode_key_info(read_key_file(path, name), name)


def get_keys(home: Path, backend: str) -> list[KeyInfo]:
    directory = compute_keyring_dir(home, backend)
    if not directory.is_dir():
        return []
    names = sorted(path.name[: -len(KEY_FILE_SUFFIX)] for path in directory.glob("*" + KEY_FILE_SUFFIX))
    return [get_key(home, backend, name) for name in names if NAME_PATTERN.fullmatch(name)]


def get_mnemonic(home: Path, backend: str, name: str, passphrase: str | None = None) -> str:
    check_name(name)
    path = compute_keyring_dir(home, backend) / (name + KEY_FILE_SUFFIX)
    document = read_key_file(path, name)
    info = decode_key_info(document, name)
    if backend == "test":
        mnemonic = document.get("mnemonic")
        if not isinstance(mnemonic, str):
            raise CorruptKeyFile(f"key {name!r}: no mnemonic")
    else:
        if passphrase is None:
            raise PassphraseRequired(f"key {name!r} is encrypted: a passphrase is needed")
        if not isinstance(document.get("crypto"), dict):
            raise CorruptKeyFile(f"key {name!r}: no encrypted mnemonic")
        mnemonic = compute_decrypted_mnemonic(name, document["crypto"], passphrase)
    try:
        derived = compute_key_info(mnemonic, name)
    except crypto.InvalidMnemonic:
        raise CorruptKeyFile(f"key {name!r}: the stored mnemonic is invalid") from None
    if derived.address != info.address:
        raise CorruptKeyFile(f"key {name!r}: the stored mnemonic does not derive address {info.address}")
    return mnemonic


def get_private_key(home: Path, backend: str, name: str, passphrase: str | None = None) -> bytes:
    return crypto.derive_private_key(get_mnemonic(home, backend, name, passphrase))


def delete_key(home: Path, backend: str, name: str) -> None:
    check_name(name)
    path = compute_keyring_dir(home, backend) / (name + KEY_FILE_SUFFIX)
    try:
        path.unlink()
    except FileNotFoundError:
        raise KeyNotFound(f"key {name!r} not found") from None


# --- export and import: an armored, passphrase-encrypted key ---------------------------------------

ARMOR_BEGIN = "-----BEGIN MAXWELL PRIVATE KEY-----"
ARMOR_END = "-----END MAXWELL PRIVATE KEY-----"
ARMOR_HEADERS = ("kdf", "opslimit", "memlimit", "salt", "cipher")


class InvalidArmor(KeyringError):
    pass


def compute_armor(mnemonic: str, passphrase: str) -> str:
    """The key's mnemonic sealed with `passphrase` (argon2id, XSalsa20-Poly1305), in ASCII armor as
    `simd keys export` writes keys: headers, a blank line, the base64 body."""
    check_passphrase(passphrase)
    sealed = compute_encrypted_mnemonic(mnemonic, passphrase)
    headers = [f"{name}: {sealed[name]}" for name in ARMOR_HEADERS]
    return "\n".join([ARMOR_BEGIN, *headers, "", sealed["ciphertext"], ARMOR_END]) + "\n"


def parse_armor(text: str, passphrase: str) -> str:
    """The mnemonic an armor seals, or InvalidArmor / WrongPassphrase."""
    lines = [line.strip() for line in text.strip().splitlines()]
    if len(lines) < 4 or lines[0] != ARMOR_BEGIN or lines[-1] != ARMOR_END or "" not in lines:
        raise InvalidArmor(f"not an exported maxwell key: expected {ARMOR_BEGIN} … {ARMOR_END}")
    blank = lines.index("")
    sealed = dict(line.split(": ", 1) for line in lines[1:blank] if ": " in line)
    sealed["ciphertext"] = "".join(lines[blank + 1:-1])
    try:
        return compute_decrypted_mnemonic("in the armor", sealed, passphrase)
    except CorruptKeyFile as error:
        raise InvalidArmor(str(error)) from None
