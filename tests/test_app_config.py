"""app.toml and config.toml: what `init` writes, what `maxwell dev` reads from them (with flags winning), the
node's own minimum gas price, JSON logs, and one-line refusals of bad values."""

import json
import subprocess
import tempfile
import time
import tomllib
import urllib.request
from fractions import Fraction
from pathlib import Path

import pytest

from chain.app import App
from chain.proto.tendermint.abci import types_pb2 as abci
from node import app_config, client
from tests.helpers import (
    ALICE, MAXWELL, assert_one_line_error, compute_free_port, finalize, init_app, init_funded_home, invoke, make_account,
    read_log_tail, send, stop_dev_chain,
)


def set_values(path: Path, replacements: dict[str, str]) -> None:
    """Rewrites `name = value` lines of a TOML file as init writes it; keys are dotted (section.name)."""
    lines, section = [], ""
    for line in path.read_text().splitlines():
        if line.startswith("["):
            section = line.strip("[]") + "."
        key = section + line.split(" = ", 1)[0]
        lines.append(f"{line.split(' = ', 1)[0]} = {replacements.pop(key)}" if key in replacements else line)
    assert not replacements, replacements
    path.write_text("\n".join(lines) + "\n")


def test_init_writes_commented_app_and_config_files_at_the_defaults(tmp_path):
    assert invoke("init", "--chain-id", "cfg-1", "--home", tmp_path).exit_code == 0
    app_toml = (tmp_path / "config" / "app.toml").read_text()
    config_toml = (tmp_path / "config" / "config.toml").read_text()
    assert tomllib.loads(app_toml)["grpc"]["address"] == app_config.DEFAULT_GRPC_ADDRESS
    assert tomllib.loads(app_toml)["api"]["address"] == app_config.DEFAULT_REST_ADDRESS
    assert tomllib.loads(config_toml)["rpc"]["laddr"] == app_config.DEFAULT_RPC_ADDRESS
    assert tomllib.loads(config_toml)["log_level"] == "info"
    assert app_toml.count("\n# ") >= sum(1 for s in app_config.SETTINGS if s.file == app_config.APP_TOML)
    assert app_config.read(tmp_path) == {s.parameter: s.default for s in app_config.SETTINGS}


@pytest.mark.parametrize("file, replacements, fragments", [
    ("app.toml", {"pruning-keep-recent": '"many"'}, ["app.toml", "pruning-keep-recent", "not an integer"]),
    ("app.toml", {"pruning-keep-recent": "0"}, ["app.toml", "pruning-keep-recent", "at least 1"]),
    ("config.toml", {"log_level": '"loud"'}, ["config.toml", "log_level", "one of debug, info, error, none"]),
    ("config.toml", {"log_format": '"xml"'}, ["config.toml", "log_format", "plain, json"]),
    ("app.toml", {"minimum-gas-prices": '"cheap"'}, ["invalid minimum gas price", "cheap"]),
    ("app.toml", {"grpc.address": '"nowhere"'}, ["nowhere"]),
])
def test_a_bad_value_stops_dev_with_one_line_naming_it(tmp_path, file, replacements, fragments):
    assert invoke("init", "--chain-id", "cfg-1", "--home", tmp_path).exit_code == 0
    set_values(tmp_path / "config" / file, replacements)
    result = subprocess.run([str(MAXWELL), "dev", "--home", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert_one_line_error(result, *fragments)


def test_an_unknown_section_or_invalid_toml_is_refused(tmp_path):
    assert invoke("init", "--chain-id", "cfg-1", "--home", tmp_path).exit_code == 0
    path = tmp_path / "config" / "app.toml"
    path.write_text(path.read_text() + "\n[telemetry]\nenabled = true\n")
    assert_one_line_error(invoke("dev", "--home", tmp_path), "app.toml", "unknown setting 'telemetry'")
    path.write_text("grpc = [")
    assert_one_line_error(invoke("dev", "--home", tmp_path), "app.toml", "not valid TOML")


def test_the_node_floor_refuses_cheap_txs_in_check_tx_but_never_judges_blocks():
    alice, bob = make_account("alice", 0), make_account("bob", 1)
    with tempfile.TemporaryDirectory() as data:
        app = App(data, minimum_gas_price=Fraction("0.05"))
        try:
            init_app(app, [alice, bob])
            finalize(app, 1, [])
            app.commit()
            cheap = send(alice, bob.address, 10, fee=5000, gas=200_000)  # the chain's 0.025 asks 5000
            checked = app.check_tx(abci.RequestCheckTx(tx=cheap))
            assert (checked.code, checked.codespace) == (13, "sdk")
            assert "required: 10000ujoule" in checked.log and "this node's minimum gas price" in checked.log
            assert app.check_tx(abci.RequestCheckTx(tx=send(alice, bob.address, 10, fee=10_000))).code == 0
            block = finalize(app, 2, [cheap])  # another validator's mempool admitted it: the chain's rule holds
            assert block.tx_results[0].code == 0
        finally:
            app.close()


def test_dev_runs_from_its_files_and_flags_win(tmp_path):
    init_funded_home(tmp_path, chain_id="cfg-dev-1")
    rpc_port, rest_port = compute_free_port(), compute_free_port()
    set_values(tmp_path / "config" / "config.toml", {"rpc.laddr": f'"tcp://127.0.0.1:{rpc_port}"',
                                                      "log_format": '"json"', "consensus.timeout_commit": '"200ms"'})
    set_values(tmp_path / "config" / "app.toml", {"minimum-gas-prices": '"0.05ujoule"', "grpc.address": '"off"',
                                                   "api.address": f'"127.0.0.1:{rest_port}"'})
    log_path = tmp_path / "dev.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen([str(MAXWELL), "dev", "--home", str(tmp_path)], stdout=log, stderr=subprocess.STDOUT)
    try:
        rpc = client.Client(f"http://127.0.0.1:{rpc_port}", timeout=2)
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, read_log_tail(log_path)
            try:
                if rpc.status().latest_block_height >= 3:
                    break
            except client.ClientError:
                pass
            assert time.monotonic() < deadline, read_log_tail(log_path)
            time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{rest_port}/cosmos/base/node/v1beta1/config", timeout=5) as answer:
            assert json.loads(answer.read())["minimum_gas_price"] == "0.05ujoule"
        node = ["--node", f"http://127.0.0.1:{rpc_port}", "--keyring-backend", "test", "--home", str(tmp_path)]
        cheap = subprocess.run([str(MAXWELL), "tx", "send", "alice", ALICE, "5ujoule", "-y", "--fees", "5000ujoule", *node],
                               capture_output=True, text=True, timeout=60)
        assert_one_line_error(cheap, "insufficient fee", "this node's minimum gas price")
        paid = subprocess.run([str(MAXWELL), "tx", "send", "alice", ALICE, "5ujoule", "-y", "--fees", "10000ujoule", *node],
                              capture_output=True, text=True, timeout=60)
        assert paid.returncode == 0, paid.stderr
        time.sleep(0.5)
        records = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
        blocks = [r for r in records if r["msg"].startswith("block ")]
        assert blocks and all(isinstance(r["height"], int) and "gas" in r and "proofs_verified" in r for r in blocks)
        assert any(r["txs"] >= 1 and r["gas"] > 0 for r in blocks)
        rejected = [r for r in records if "rejected" in r["msg"]]
        assert rejected and rejected[0]["code"] == 13 and rejected[0]["codespace"] == "sdk"
        assert all(line.startswith("{") for line in log_path.read_text().splitlines() if line.strip())
    finally:
        stop_dev_chain(process)
    with open(log_path, "w") as log:  # a flag beats the file
        process = subprocess.Popen([str(MAXWELL), "dev", "--home", str(tmp_path), "--log-format", "plain"],
                                   stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "block " not in log_path.read_text():
            assert process.poll() is None and time.monotonic() < deadline, read_log_tail(log_path)
            time.sleep(0.2)
        assert not log_path.read_text().startswith("{")
    finally:
        stop_dev_chain(process)
