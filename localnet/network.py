"""A local network of maxwell validators under real CometBFT: per node one `cometbft node` and one
`maxwell start`, on loopback, from the homes `maxwell testnet init-files` writes.

Used by `localnet/run` (which runs one until Ctrl-C) and by the network tests (which also kill and
restart its processes).
"""

import base64
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from node.testnet import process_full_node_home

REPO = Path(__file__).resolve().parents[1]
MAXWELL = Path(sys.executable).with_name("maxwell")
COMETBFT_VERSION = "v0.38.26"
COMETBFT = REPO / ".tools" / f"cometbft-{COMETBFT_VERSION}" / "cometbft"
P2P_PORT, RPC_PORT, ABCI_PORT, GRPC_PORT, REST_PORT, PORT_STEP = 26656, 26657, 26658, 9090, 1317, 100
START_TIMEOUT_SECONDS = 60.0
STOP_SECONDS = 10.0


class LocalnetError(Exception):
    pass


@dataclass
class Node:
    index: int
    home: Path
    app: subprocess.Popen | None = None
    cometbft: subprocess.Popen | None = None
    app_args: list[str] = field(default_factory=list)

    @property
    def rpc(self) -> str:
        return f"http://127.0.0.1:{RPC_PORT + PORT_STEP * self.index}"

    @property
    def abci_port(self) -> int:
        return ABCI_PORT + PORT_STEP * self.index

    @property
    def grpc_port(self) -> int:
        return GRPC_PORT + PORT_STEP * self.index

    @property
    def rest(self) -> str:
        return f"http://127.0.0.1:{REST_PORT + PORT_STEP * self.index}"

    def get(self, path: str, timeout: float = 5.0) -> dict:
        with urllib.request.urlopen(self.rpc + path, timeout=timeout) as response:
            return json.loads(response.read())["result"]

    def get_height(self) -> int:
        return int(self.get("/status")["sync_info"]["latest_block_height"])


def get_node_id(home: Path) -> str:
    """CometBFT's id of a node: hex of the first 20 bytes of sha256 of its node key's public half."""
    key = json.loads((home / "config" / "node_key.json").read_text())["priv_key"]["value"]
    return hashlib.sha256(base64.b64decode(key)[32:]).digest()[:20].hex()


def is_listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def wait_until(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
            if value:
                return value
        except (OSError, ValueError, KeyError):
            pass
        if time.monotonic() > deadline:
            raise LocalnetError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class Localnet:
    def __init__(self, directory: Path, validators: int = 4, chain_id: str = "maxwell-local-1",
                 timeout_commit: str = "500ms", app_args: tuple[str, ...] = ()):
        """`app_args` go to every node's `maxwell start` (e.g. --snapshot-interval 10)."""
        self.directory = Path(directory)
        self.chain_id = chain_id
        self.timeout_commit = timeout_commit
        if not COMETBFT.is_file():
            raise LocalnetError(f"{COMETBFT} is missing: run `make tools`")
        subprocess.run([str(MAXWELL), "testnet", "init-files", "--validators", str(validators), "--output-dir",
                        str(self.directory), "--chain-id", chain_id, "--timeout-commit", timeout_commit],
                       check=True, capture_output=True, text=True)
        self.nodes = [Node(i, self.directory / f"node{i}", app_args=list(app_args)) for i in range(validators)]
        self.keys = json.loads((self.directory / "keys.json").read_text())

    def start(self) -> None:
        for node in self.nodes:
            self.start_app(node)
        for node in self.nodes:
            self.start_cometbft(node)
        for node in self.nodes:
            wait_until(lambda node=node: node.get_height() >= 1, START_TIMEOUT_SECONDS, f"node {node.index}'s first block")

    def add_full_node(self, statesync: bool = False) -> Node:
        """A new node that follows the network without validating; with `statesync` it starts from a
        snapshot the validators serve (trusting the latest block of node 0) instead of replaying the chain."""
        index = len(self.nodes)
        peers = [f"{get_node_id(n.home)}@127.0.0.1:{P2P_PORT + PORT_STEP * n.index}" for n in self.nodes]
        trust = None
        if statesync:
            block = self.nodes[0].get("/block")
            trust = {"rpc_servers": f"{self.nodes[0].rpc},{self.nodes[1].rpc}",
                     "trust_height": block["block"]["header"]["height"], "trust_hash": block["block_id"]["hash"]}
        process_full_node_home(self.directory, index, self.nodes[0].home / "config" / "genesis.json", peers,
                               self.timeout_commit, trust)
        node = Node(index, self.directory / f"node{index}")
        self.nodes.append(node)
        return node

    def start_app(self, node: Node) -> None:
        log = open(node.home / "app.log", "ab")
        node.app = subprocess.Popen([str(MAXWELL), "start", "--home", str(node.home), "--abci",
                                     f"tcp://127.0.0.1:{node.abci_port}", "--grpc", f"127.0.0.1:{node.grpc_port}",
                                     "--rest", node.rest.removeprefix("http://"), "--rpc-node", node.rpc,
                                     *node.app_args],
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(lambda: node.app.poll() is None and is_listening(node.abci_port), START_TIMEOUT_SECONDS,
                   f"node {node.index}'s app on port {node.abci_port}")

    def start_cometbft(self, node: Node, *flags: str) -> None:
        log = open(node.home / "cometbft.log", "ab")
        node.cometbft = subprocess.Popen([str(COMETBFT), "node", "--home", str(node.home), *flags],
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self, node: Node) -> None:
        """kill -9 both of the node's processes, as a crash would."""
        for process in (node.cometbft, node.app):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
        node.cometbft = node.app = None

    def restart(self, node: Node) -> None:
        self.start_app(node)
        self.start_cometbft(node)

    def stop(self) -> None:
        """SIGTERM every process this network started (by pid), the CometBFT nodes first so that their
        apps see their connections close; SIGKILL what outlives STOP_SECONDS."""
        for processes in ([n.cometbft for n in self.nodes], [n.app for n in self.nodes]):
            processes = [p for p in processes if p is not None and p.poll() is None]
            for process in processes:
                process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + STOP_SECONDS
            for process in processes:
                try:
                    process.wait(max(deadline - time.monotonic(), 0.1))
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
        for node in self.nodes:
            node.cometbft = node.app = None
