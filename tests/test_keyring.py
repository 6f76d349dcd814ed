import base64
import json
import stat

import pytest

from chain import crypto
from node import keyring

MNEMONIC = (
    "skirt section ritual hard volume electric grid diary crucial cage struggle kitten "
    "laundry thumb charge rude door select smoke know nice duck limb hand"
)
PASSPHRASE = "correct horse battery"


def expected_address(mnemonic: str) -> str:
    public_key = crypto.compute_public_key(crypto.derive_private_key(mnemonic))
    return crypto.encode_address(crypto.compute_address(public_key))


def test_file_backend_round_trip_keeps_the_mnemonic_encrypted(tmp_path):
    info = keyring.add_key(tmp_path, "file", "alice", MNEMONIC, PASSPHRASE)

    assert info.address == expected_address(MNEMONIC)
    assert keyring.get_mnemonic(tmp_path, "file", "alice", PASSPHRASE) == MNEMONIC
    assert keyring.get_private_key(tmp_path, "file", "alice", PASSPHRASE) == crypto.derive_private_key(MNEMONIC)
    stored = (tmp_path / "keyring-file" / "alice.json").read_text()
    assert not any(word in stored for word in ("skirt", "ritual", "laundry", "kitten"))
    assert json.loads(stored)["address"] == info.address


def test_wrong_passphrase_is_refused(tmp_path):
    keyring.add_key(tmp_path, "file", "alice", MNEMONIC, PASSPHRASE)
    with pytest.raises(keyring.WrongPassphrase, match="wrong passphrase for key 'alice'"):
        keyring.get_mnemonic(tmp_path, "file", "alice", "not the passphrase")
    with pytest.raises(keyring.PassphraseRequired):
        keyring.get_private_key(tmp_path, "file", "alice")


def test_key_files_are_private(tmp_path):
    keyring.add_key(tmp_path, "file", "alice", MNEMONIC, PASSPHRASE)
    keyring.add_key(tmp_path, "test", "bob", crypto.generate_mnemonic())

    for backend, name in (("file", "alice"), ("test", "bob")):
        directory = tmp_path / f"keyring-{backend}"
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        assert stat.S_IMODE((directory / f"{name}.json").stat().st_mode) == 0o600
        assert [p.name for p in directory.iterdir()] == [f"{name}.json"]


def test_test_backend_needs_no_passphrase(tmp_path):
    info = keyring.add_key(tmp_path, "test", "dev", MNEMONIC)
    assert keyring.get_mnemonic(tmp_path, "test", "dev") == MNEMONIC
    assert keyring.get_key(tmp_path, "test", "dev") == info
    assert keyring.get_keys(tmp_path, "file") == []


def test_listing_and_lookup_need_no_passphrase(tmp_path):
    keyring.add_key(tmp_path, "file", "zed", MNEMONIC, PASSPHRASE)
    other = keyring.add_key(tmp_path, "file", "amy", crypto.generate_mnemonic(), PASSPHRASE)

    assert [k.name for k in keyring.get_keys(tmp_path, "file")] == ["amy", "zed"]
    assert keyring.get_key(tmp_path, "file", "amy") == other


def test_existing_names_and_addresses_are_not_overwritten(tmp_path):
    keyring.add_key(tmp_path, "test", "alice", MNEMONIC)
    with pytest.raises(keyring.KeyExists, match="key 'alice' already exists"):
        keyring.add_key(tmp_path, "test", "alice", crypto.generate_mnemonic())
    with pytest.raises(keyring.KeyExists, match="already stored as key 'alice'"):
        keyring.add_key(tmp_path, "test", "alice2", MNEMONIC)
    assert keyring.get_mnemonic(tmp_path, "test", "alice") == MNEMONIC


def test_delete(tmp_path):
    keyring.add_key(tmp_path, "test", "alice", MNEMONIC)
    keyring.delete_key(tmp_path, "test", "alice")
    assert not keyring.is_key(tmp_path, "test", "alice")
    with pytest.raises(keyring.KeyNotFound, match="key 'alice' not found"):
        keyring.delete_key(tmp_path, "test", "alice")
    with pytest.raises(keyring.KeyNotFound):
        keyring.get_key(tmp_path, "test", "alice")


@pytest.mark.parametrize("name", ["", "../evil", "a/b", ".hidden", "x" * 65, "sp ace"])
def test_names_that_are_not_plain_file_names_are_rejected(tmp_path, name):
    with pytest.raises(keyring.InvalidKeyName):
        keyring.add_key(tmp_path, "test", name, MNEMONIC)
    assert not tmp_path.joinpath("keyring-test").exists() or not any(tmp_path.joinpath("keyring-test").iterdir())


def test_bad_inputs(tmp_path):
    with pytest.raises(keyring.WeakPassphrase):
        keyring.add_key(tmp_path, "file", "alice", MNEMONIC, "short")
    with pytest.raises(keyring.PassphraseRequired):
        keyring.add_key(tmp_path, "file", "alice", MNEMONIC)
    with pytest.raises(crypto.InvalidMnemonic):
        keyring.add_key(tmp_path, "test", "alice", "not a mnemonic at all")
    with pytest.raises(keyring.UnknownBackend, match="unknown keyring backend 'os'"):
        keyring.add_key(tmp_path, "os", "alice", MNEMONIC)
    assert keyring.get_keys(tmp_path, "file") == [] and keyring.get_keys(tmp_path, "test") == []


def test_tampered_key_files_are_detected(tmp_path):
    keyring.add_key(tmp_path, "test", "alice", MNEMONIC)
    path = tmp_path / "keyring-test" / "alice.json"
    document = json.loads(path.read_text())

    document["mnemonic"] = crypto.generate_mnemonic()
    path.write_text(json.dumps(document))
    with pytest.raises(keyring.CorruptKeyFile, match="does not derive address"):
        keyring.get_mnemonic(tmp_path, "test", "alice")

    path.write_text("{not json")
    with pytest.raises(keyring.CorruptKeyFile, match="cannot read"):
        keyring.get_key(tmp_path, "test", "alice")


def test_tampered_ciphertext_reads_as_a_wrong_passphrase(tmp_path):
    keyring.add_key(tmp_path, "file", "alice", MNEMONIC, PASSPHRASE)
    path = tmp_path / "keyring-file" / "alice.json"
    document = json.loads(path.read_text())
    sealed = bytearray(base64.b64decode(document["crypto"]["ciphertext"]))
    sealed[-1] ^= 1
    document["crypto"]["ciphertext"] = base64.b64encode(bytes(sealed)).decode()
    path.write_text(json.dumps(document))
    with pytest.raises(keyring.WrongPassphrase):
        keyring.get_mnemonic(tmp_path, "file", "alice", PASSPHRASE)


def test_absurd_kdf_parameters_are_refused(tmp_path):
    keyring.add_key(tmp_path, "file", "alice", MNEMONIC, PASSPHRASE)
    path = tmp_path / "keyring-file" / "alice.json"
    document = json.loads(path.read_text())
    document["crypto"]["memlimit"] = 2**40
    path.write_text(json.dumps(document))
    with pytest.raises(keyring.CorruptKeyFile, match="key derivation parameters"):
        keyring.get_mnemonic(tmp_path, "file", "alice", PASSPHRASE)


def test_an_exported_key_imports_elsewhere_and_nothing_else_does(tmp_path):
    from tests.helpers import ALICE, MNEMONIC, assert_one_line_error, invoke
    source, target = tmp_path / "a", tmp_path / "b"
    assert invoke("keys", "add", "alice", "--recover", "--keyring-backend", "test", "--home", source,
                  input=MNEMONIC + "\n").exit_code == 0
    (tmp_path / "seal").write_text("correct horse battery\n")
    (tmp_path / "wrong").write_text("wrong horse battery\n")
    exported = invoke("keys", "export", "alice", "--keyring-backend", "test", "--export-passphrase-file",
                      tmp_path / "seal", "--home", source)
    assert exported.exit_code == 0 and exported.stdout.startswith("-----BEGIN MAXWELL PRIVATE KEY-----")
    assert MNEMONIC.split()[0] not in exported.stdout  # sealed, not in the clear
    armor = tmp_path / "alice.armor"
    armor.write_text(exported.stdout)
    assert_one_line_error(invoke("keys", "import", "alice", armor, "--keyring-backend", "test",
                                 "--export-passphrase-file", tmp_path / "wrong", "--home", target), "wrong passphrase")
    (tmp_path / "garbage").write_text("hello\n")
    assert_one_line_error(invoke("keys", "import", "alice", tmp_path / "garbage", "--keyring-backend", "test",
                                 "--export-passphrase-file", tmp_path / "seal", "--home", target),
                          "not an exported maxwell key")
    imported = invoke("keys", "import", "alice", armor, "--keyring-backend", "test", "--export-passphrase-file",
                      tmp_path / "seal", "--home", target, "-o", "json")
    assert imported.exit_code == 0, imported.stderr
    assert json.loads(imported.stdout)["address"] == ALICE
