"""client.toml as simd users know it: `init` writes it, `maxwell config get|set` edit it, its settings are
every command's defaults (flags still win), MAXWELL_HOME names the home, and bad settings are refused."""

import json

from node import client_config
from tests.helpers import ALICE, assert_one_line_error, init_funded_home, invoke, start_dev_chain, stop_dev_chain


def test_init_writes_client_toml_and_config_edits_it(tmp_path):
    assert invoke("init", "--chain-id", "cfg-1", "--home", tmp_path).exit_code == 0
    text = client_config.get_path(tmp_path).read_text()
    assert 'chain-id = "cfg-1"' in text and "# Where keys live" in text
    assert invoke("config", "get", "keyring-backend", "--home", tmp_path).stdout.strip() == "file"
    assert invoke("config", "set", "keyring-backend", "test", "--home", tmp_path).exit_code == 0
    assert invoke("config", "get", "keyring-backend", "--home", tmp_path).stdout.strip() == "test"
    assert 'chain-id = "cfg-1"' in client_config.get_path(tmp_path).read_text()  # the others kept
    assert_one_line_error(invoke("config", "set", "output", "yaml", "--home", tmp_path), "invalid output 'yaml'")
    assert_one_line_error(invoke("config", "get", "colour", "--home", tmp_path), "unknown setting 'colour'")


def test_settings_are_defaults_flags_win_and_maxwell_home_names_the_home(tmp_path, monkeypatch):
    init_funded_home(tmp_path)
    invoke("config", "set", "keyring-backend", "test", "--home", tmp_path)
    invoke("config", "set", "output", "json", "--home", tmp_path)
    monkeypatch.setenv("MAXWELL_HOME", str(tmp_path))
    listed = invoke("keys", "list")
    assert listed.exit_code == 0, listed.stderr
    assert [key["name"] for key in json.loads(listed.stdout)] == ["alice"]  # the test keyring, in JSON
    assert "alice" in invoke("keys", "list", "-o", "text").stdout and not invoke(
        "keys", "list", "-o", "text").stdout.lstrip().startswith("[")


def test_a_broken_client_toml_is_named_in_one_line(tmp_path):
    assert invoke("init", "--chain-id", "cfg-1", "--home", tmp_path).exit_code == 0
    client_config.get_path(tmp_path).write_text('output = "yaml"\n')
    assert_one_line_error(invoke("keys", "list", "--home", tmp_path), "invalid output 'yaml'")
    client_config.get_path(tmp_path).write_text("output = \n")
    assert_one_line_error(invoke("keys", "list", "--home", tmp_path), "client.toml is not valid TOML")


def test_a_dev_home_makes_the_plain_commands_work(tmp_path, monkeypatch):
    """What `make dev` sets up: the test keyring and the node in client.toml, the home in MAXWELL_HOME."""
    init_funded_home(tmp_path)
    invoke("config", "set", "keyring-backend", "test", "--home", tmp_path)
    process, url = start_dev_chain(tmp_path)
    try:
        invoke("config", "set", "node", url, "--home", tmp_path)
        monkeypatch.setenv("MAXWELL_HOME", str(tmp_path))
        sent = invoke("tx", "send", "alice", "mxw1qezq9q47lltfet0z0w3edl4ufg38j7xdn2f2hl", "7ujoule")
        assert sent.exit_code == 0 and "included in block" in sent.stdout, sent.stderr
        assert f"{ALICE}: " in invoke("query", "balance", "alice").stdout
    finally:
        stop_dev_chain(process)
