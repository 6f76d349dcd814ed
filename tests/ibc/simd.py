"""ibc-go's own `simd` (v8.8.0, built by `make tools-ibc`) as the counterparty chain: one validator on
loopback, its relayer account funded in genesis."""

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
STAKE = "stake"
START_TIMEOUT_S = 90


def run(home: Path, *args: str, input: str | None = None) -> str:
    completed = subprocess.run([str(SIMD), *args, "--home", str(home)], capture_output=True, text=True, input=input,
                               timeout=60)
    if completed.returncode != 0:
        raise AssertionError(f"simd {' '.join(args)} failed: {completed.stderr[-2000:]}")
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
    def __init__(self, home: Path, chain_id: str, relayer_mnemonic: str):
        self.home, self.chain_id = home, chain_id
        self.rpc_port, self.grpc_port, self.p2p_port = compute_free_port(), compute_free_port(), compute_free_port()
        self.relayer = crypto.encode_address(crypto.compute_address(crypto.compute_public_key(
            crypto.derive_private_key(relayer_mnemonic))), "cosmos")
        run(home, "init", "validator", "--chain-id", chain_id)
        run(home, "keys", "add", "validator", "--keyring-backend", "test")
        run(home, "genesis", "add-genesis-account", "validator", f"10000000000000{STAKE}", "--keyring-backend", "test")
        run(home, "genesis", "add-genesis-account", self.relayer, f"10000000000000{STAKE}")
        run(home, "genesis", "gentx", "validator", f"1000000000{STAKE}", "--chain-id", chain_id,
            "--keyring-backend", "test")
        run(home, "genesis", "collect-gentxs")
        config = home / "config" / "config.toml"
        for section, key, value in (("consensus", "timeout_commit", '"300ms"'), ("consensus", "timeout_propose", '"1s"'),
                                    ("rpc", "laddr", f'"tcp://127.0.0.1:{self.rpc_port}"'),
                                    ("p2p", "laddr", f'"tcp://127.0.0.1:{self.p2p_port}"'),
                                    ("rpc", "pprof_laddr", '""')):
            set_option(config, section, key, value)
        app = home / "config" / "app.toml"
        set_option(app, None, "minimum-gas-prices", f'"0.0025{STAKE}"')
        set_option(app, "grpc", "address", f'"127.0.0.1:{self.grpc_port}"')
        set_option(app, "api", "enable", "false")
        self.process = None

    @property
    def rpc(self) -> str:
        return f"http://127.0.0.1:{self.rpc_port}"

    def start(self) -> None:
        log = open(self.home / "simd.log", "ab")
        self.process = subprocess.Popen([str(SIMD), "start", "--home", str(self.home), "--grpc-web.enable=false",
                                         "--pruning", "nothing"], stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"simd exited: {(self.home / 'simd.log').read_text()[-3000:]}")
            try:
                if self.get_height() >= 2:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"simd made no blocks: {(self.home / 'simd.log').read_text()[-3000:]}")

    def get_height(self) -> int:
        with urllib.request.urlopen(f"{self.rpc}/status", timeout=5) as response:
            return int(json.loads(response.read())["result"]["sync_info"]["latest_block_height"])

    def get_balance(self, address: str, denom: str) -> int:
        answer = json.loads(run(self.home, "query", "bank", "balance", address, denom, "--node", self.rpc,
                                "-o", "json"))
        return int(answer["balance"]["amount"])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
