"""Hermes, the Cosmos relayer, against maxwell chains: its config for a maxwell chain, its keys, and
running its commands (the binary `make tools-ibc` builds)."""

import json
import os
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import json_format

from ibc import ics23
from tests.helpers import MAXWELL, compute_free_port, init_funded_home, invoke, start_dev_chain, stop_dev_chain

REPO = Path(__file__).resolve().parents[2]
HERMES_VERSION = "1.11.0"
HERMES = REPO / ".tools" / f"hermes-{HERMES_VERSION}" / "bin" / "hermes"
COMMAND_TIMEOUT_S = 240
GAS_PRICE = "0.025"
RELAY_TIMEOUT_S = 240
RELAYER_FUNDS = 10**11


@dataclass
class Chain:
    """What Hermes needs to reach one chain."""
    chain_id: str
    rpc: str
    grpc: str
    home: Path
    kind: str = "maxwell"
    trusting_period: str = "1days"  # of clients of this chain; below its unbonding time


def get_balance(chain: Chain, address: str, denom: str) -> int:
    result = invoke("query", "balance", address, "--denom", denom, "--node", chain.rpc, "-o", "json")
    assert result.exit_code == 0, result.stderr
    return int(json.loads(result.stdout)["amount"])


def compute_proof_specs_json() -> str:
    """maxwell's proof specs as Hermes reads them (ics23 ProofSpecs in proto3 JSON): SMT inside the ibc
    store, Tendermint's simple Merkle tree over the stores."""
    return json.dumps([json_format.MessageToDict(spec) for spec in (ics23.SMT_SPEC, ics23.TENDERMINT_SPEC)])


def compute_chain_config(chain: Chain) -> str:
    common = f"""
[[chains]]
id = '{chain.chain_id}'
type = 'CosmosSdk'
rpc_addr = '{chain.rpc}'
grpc_addr = '{chain.grpc}'
event_source = {{ mode = 'pull', interval = '300ms' }}
rpc_timeout = '15s'
key_name = 'relayer'
key_store_type = 'Test'
default_gas = 400000
max_gas = 4000000
gas_multiplier = 1.5
max_msg_num = 30
max_tx_size = 1800000
clock_drift = '5s'
max_block_time = '30s'
trusting_period = '{chain.trusting_period}'
trust_threshold = '1/3'
address_type = {{ derivation = 'cosmos' }}
compat_mode = '0.38'
"""
    if chain.kind == "maxwell":
        return common + f"""account_prefix = 'mxw'
store_prefix = 'ibc'
gas_price = {{ price = {GAS_PRICE}, denom = 'ujoule' }}
proof_specs = '''{compute_proof_specs_json()}'''
"""
    prefix, denom, price = {"simd": ("cosmos", "stake", GAS_PRICE), "osmosis": ("osmo", "uosmo", "0.04")}[chain.kind]
    return common + f"""account_prefix = '{prefix}'
store_prefix = 'ibc'
gas_price = {{ price = {price}, denom = '{denom}' }}
"""


def write_config(directory: Path, chains: list[Chain]) -> Path:
    text = """[global]
log_level = 'info'

[mode.clients]
enabled = true
refresh = true
misbehaviour = false

[mode.connections]
enabled = false

[mode.channels]
enabled = false

[mode.packets]
enabled = true
clear_interval = 20
clear_on_start = true
tx_confirmation = true

[rest]
enabled = false
host = '127.0.0.1'
port = 3000

[telemetry]
enabled = false
host = '127.0.0.1'
port = 3001
""" + "".join(compute_chain_config(chain) for chain in chains)
    path = directory / "config.toml"
    path.write_text(text)
    return path


class Hermes:
    def __init__(self, directory: Path, chains: list[Chain]):
        self.directory = directory
        self.config = write_config(directory, chains)
        self.env = {**os.environ, "HOME": str(directory)}

    def run(self, *args: str, timeout: float = COMMAND_TIMEOUT_S, check: bool = True) -> dict:
        """A Hermes command with --json: its last JSON line (the result)."""
        completed = subprocess.run([str(HERMES), "--config", str(self.config), "--json", *args], capture_output=True,
                                   text=True, timeout=timeout, env=self.env)
        lines = [json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")]
        result = lines[-1] if lines else {}
        if check and (completed.returncode != 0 or result.get("status") != "success"):
            raise AssertionError(f"hermes {' '.join(args)} failed ({completed.returncode}):\n"
                                 f"{completed.stdout[-4000:]}\n{completed.stderr[-4000:]}")
        return result

    def add_key(self, chain_id: str, mnemonic: str) -> None:
        path = self.directory / f"{chain_id}.mnemonic"
        path.write_text(mnemonic + "\n")
        self.run("keys", "add", "--chain", chain_id, "--mnemonic-file", str(path), "--key-name", "relayer")

    def start(self) -> subprocess.Popen:
        log = open(self.directory / "hermes.log", "ab")
        return subprocess.Popen([str(HERMES), "--config", str(self.config), "start"], stdout=log,
                                stderr=subprocess.STDOUT, env=self.env, start_new_session=True)


def measure_relaying(hermes: Hermes, transfers: list[tuple[str, ...]], is_relayed) -> float:
    """The seconds from sending `transfers` (each the arguments of a `hermes tx ft-transfer`) until
    `is_relayed()`, with `hermes start` relaying (or RELAY_TIMEOUT_S if it never is)."""
    process = hermes.start()
    try:
        began = time.monotonic()
        for arguments in transfers:
            hermes.run("tx", "ft-transfer", *arguments)
        while not is_relayed() and time.monotonic() < began + RELAY_TIMEOUT_S:
            time.sleep(1)
        return time.monotonic() - began
    finally:
        process.terminate()
        process.wait(timeout=30)


def create_relayer_key(home: Path) -> tuple[str, str]:
    """A fresh key in the home's test keyring: (address, mnemonic)."""
    made = subprocess.run([str(MAXWELL), "keys", "add", "relayer", "--keyring-backend", "test", "--home", str(home),
                           "-o", "json"], capture_output=True, text=True, check=True)
    record = json.loads(made.stdout)
    return record["address"], record["mnemonic"]


@contextmanager
def relay_dev_chain_and(directory: Path, maxwell_id: str, make_peer, peer_id: str, kind: str):
    """A maxwell dev chain (alice and a relayer key funded in genesis) and a Cosmos SDK chain made by
    `make_peer(home, chain_id, relayer_mnemonic)` (tests.ibc.simd), running, with Hermes holding the
    relayer's key on both: (hermes, the maxwell Chain, the peer, the relayer's maxwell address)."""
    home = directory / maxwell_id
    home.mkdir()
    init_funded_home(home, chain_id=maxwell_id)
    relayer, mnemonic = create_relayer_key(home)
    assert invoke("genesis", "add-account", "relayer", f"{RELAYER_FUNDS}ujoule", "--keyring-backend", "test",
                  "--home", home).exit_code == 0
    (directory / peer_id).mkdir()
    peer = make_peer(directory / peer_id, peer_id, mnemonic)
    grpc = f"127.0.0.1:{compute_free_port()}"
    process, url = start_dev_chain(home, "300ms", grpc)
    try:
        peer.start()
        maxwell = Chain(maxwell_id, url, f"http://{grpc}", home)
        counterparty = Chain(peer_id, peer.rpc, f"http://127.0.0.1:{peer.grpc_port}", peer.home, kind=kind)
        hermes = Hermes(directory, [maxwell, counterparty])
        hermes.add_key(maxwell_id, mnemonic)
        hermes.add_key(peer_id, mnemonic)
        yield hermes, maxwell, peer, relayer
    finally:
        peer.stop()
        stop_dev_chain(process)
