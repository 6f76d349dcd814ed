"""Cosmos SDK chains as counterparties, built by `make tools-ibc`: ibc-go's own `simd` (v8.8.0) and
Osmosis's `osmosisd`; each runs one validator on loopback, its relayer account funded in genesis."""

import json
import re
import subprocess
import time
import urllib.request
from pathlib import Path

from chain import crypto
from tests.helpers import compute_free_port

REPO = Path(__file__).resolve().parents[2]
IBC_GO_VERSION = "v8.8.0"
SIMD = REPO / ".tools" / f"simd-{IBC_GO_VERSION}" / "simd"
OSMOSIS_VERSION = "v26.0.2"
OSMOSISD = REPO / ".tools" / f"osmosisd-{OSMOSIS_VERSION}" / "osmosisd"
STAKE = "stake"
OSMO = "uosmo"
START_TIMEOUT_S = 90


def run(binary: Path, home: Path, *args: str, input: str | None = None) -> str:
    completed = subprocess.run([str(binary), *args, "--home", str(home)], capture_output=True, text=True, input=input,
                               timeout=120)
    if completed.returncode != 0:
        raise AssertionError(f"{binary.name} {' '.join(args)} failed: {completed.stderr[-2000:]}")
    return completed.stdout


def set_option(path: Path, section: str | None, key: str, value: str) -> None:
    """Sets `key = value` in a TOML file's `[section]` (or at its top)."""
    text, out, current = path.read_text(), [], None
    for line in text.splitlines():
        header = re.fullmatch(r"\[([^\]]+)\]\s*", line)
        if header:
            current = header.group(1)
        elif current == section and re.match(rf"{re.escape(key)}\s*=", line):
            line = f"{key} = {value}"
        out.append(line)
    path.write_text("\n".join(out) + "\n")


class Simd:
    binary, prefix, denom, gas_price = SIMD, "cosmos", STAKE, "0.0025"
    genesis_command = ("genesis",)  # where the binary keeps add-genesis-account, gentx, collect-gentxs

    def __init__(self, home: Path, chain_id: str, relayer_mnemonic: str):
        self.home, self.chain_id = home, chain_id
        self.rpc_port, self.grpc_port, self.p2p_port = compute_free_port(), compute_free_port(), compute_free_port()
        self.relayer = crypto.encode_address(crypto.compute_address(crypto.compute_public_key(
            crypto.derive_private_key(relayer_mnemonic))), self.prefix)
        self.run("init", "validator", "--chain-id", chain_id)
        self.edit_genesis()
        self.run("keys", "add", "validator", "--keyring-backend", "test")
        self.run("keys", "add", "relayer", "--recover", "--keyring-backend", "test", input=relayer_mnemonic + "\n")
        funds = f"10000000000000{self.denom}"
        self.run(*self.genesis_command, "add-genesis-account", "validator", funds, "--keyring-backend", "test")
        self.run(*self.genesis_command, "add-genesis-account", self.relayer, funds)
        self.run(*self.genesis_command, "gentx", "validator", f"1000000000{self.denom}", "--chain-id", chain_id,
                 "--keyring-backend", "test")
        self.run(*self.genesis_command, "collect-gentxs")
        config = home / "config" / "config.toml"
        for section, key, value in (("consensus", "timeout_commit", '"300ms"'), ("consensus", "timeout_propose", '"1s"'),
                                    ("rpc", "laddr", f'"tcp://127.0.0.1:{self.rpc_port}"'),
                                    ("p2p", "laddr", f'"tcp://127.0.0.1:{self.p2p_port}"'),
                                    ("rpc", "pprof_laddr", '""')):
            set_option(config, section, key, value)
        app = home / "config" / "app.toml"
        set_option(app, None, "minimum-gas-prices", f'"{self.gas_price}{self.denom}"')
        set_option(app, "grpc", "address", f'"127.0.0.1:{self.grpc_port}"')
        set_option(app, "api", "enable", "false")
        self.process = None

    def run(self, *args: str, input: str | None = None) -> str:
        return run(self.binary, self.home, *args, input=input)

    def edit_genesis(self) -> None:
        pass

    @property
    def rpc(self) -> str:
        return f"http://127.0.0.1:{self.rpc_port}"

    def start(self) -> None:
        log = open(self.home / "simd.log", "ab")
        self.process = subprocess.Popen([str(self.binary), "start", "--home", str(self.home), "--grpc-web.enable=false",
                                         "--pruning", "nothing"], stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.binary.name} exited: {(self.home / 'simd.log').read_text()[-3000:]}")
            try:
                if self.get_height() >= 2:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"{self.binary.name} made no blocks: {(self.home / 'simd.log').read_text()[-3000:]}")

    def get_height(self) -> int:
        with urllib.request.urlopen(f"{self.rpc}/status", timeout=5) as response:
            return int(json.loads(response.read())["result"]["sync_info"]["latest_block_height"])

    def get_balance(self, address: str, denom: str) -> int:
        answer = json.loads(self.run("query", "bank", "balance", address, denom, "--node", self.rpc, "-o", "json"))
        return int(answer["balance"]["amount"])

    def tx(self, *args: str) -> dict:
        """A tx from the relayer key, waited for: its result."""
        sent = json.loads(self.run("tx", *args, "--from", "relayer", "--keyring-backend", "test", "--chain-id",
                                   self.chain_id, "--node", self.rpc, "--gas", "auto", "--gas-adjustment", "1.5",
                                   "--fees", f"20000{self.denom}", "--yes", "-o", "json"))
        assert sent["code"] == 0, sent
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                found = json.loads(self.run("query", "tx", sent["txhash"], "--node", self.rpc, "-o", "json"))
                assert found["code"] == 0, found
                return found
            except AssertionError as error:
                if "not found" not in str(error):
                    raise
            time.sleep(0.5)
        raise AssertionError(f"tx {sent['txhash']} not included")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Osmosis(Simd):
    """osmosisd with its denom everywhere (`stake` becomes `uosmo`, as localosmosis does) and a small pool
    creation fee, so that a test can make a pool."""
    binary, prefix, denom, gas_price = OSMOSISD, "osmo", OSMO, "0.0025"
    genesis_command = ()
    POOL_CREATION_FEE = "1000"

    def edit_genesis(self) -> None:
        path = self.home / "config" / "genesis.json"
        genesis = json.loads(path.read_text().replace('"stake"', f'"{OSMO}"'))
        for module in ("poolmanager", "gamm"):
            genesis["app_state"][module]["params"]["pool_creation_fee"] = [
                {"denom": OSMO, "amount": self.POOL_CREATION_FEE}]
        path.write_text(json.dumps(genesis))
