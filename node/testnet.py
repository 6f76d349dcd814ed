"""`maxwell testnet init-files`: the homes of a local network of validators, as simd's testnet does.

Each home `<dir>/node<i>` holds the app's data and one CometBFT node's config: config.toml (its
ports, its peers, the proxy app address of its `maxwell start`), genesis.json (the same in every
home), node_key.json, priv_validator_key.json and data/priv_validator_state.json, and a test-backend
keyring with the node's funded key `validator<i>`. Node i listens on the base ports plus 100·i:
P2P 26656, RPC 26657, ABCI 26658 (loopback only).
"""

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import json_format
from nacl.signing import SigningKey

from chain import auth, crypto, validators
from chain.coins import DENOM
from chain.proto.cosmos.crypto.ed25519 import keys_pb2 as ed25519_keys
from chain.proto.cosmos.staking.v1beta1 import tx_pb2 as staking_tx
from chain.proto.cosmos.tx.v1beta1 import tx_pb2 as cosmos_tx
from chain.sdktypes import encode_sdk_json, format_dec, parse_dec_text
from chain.tx import compute_required_fee, pack_any, sign_tx
from node import devchain, keyring, privval
from node.application import compute_app_state

P2P_PORT, RPC_PORT, ABCI_PORT = 26656, 26657, 26658
PORT_STEP = 100
HOST = "127.0.0.1"
FUNDS = 10**15
BOND = 10**8  # each validator's self-bond: power 100
LOCALNET_STAKING = {"params": {"unbonding_time": "30s"}}  # short, so undelegations return within a test
LOCALNET_SLASHING = {"params": {"signed_blocks_window": "20", "min_signed_per_window": "0.5",
                                "downtime_jail_duration": "10s"}}
KEYRING_BACKEND = "test"
KEYS_FILE = "keys.json"
PRIV_VALIDATOR_STATE = {"height": "0", "round": 0, "step": 0}


class TestnetError(Exception):
    pass


@dataclass(frozen=True)
class NodeHome:
    index: int
    home: Path
    node_id: str
    validator: privval.PrivValidatorKey
    key_name: str
    address: str
    mnemonic: str

    @property
    def rpc(self) -> str:
        return f"http://{HOST}:{compute_port(RPC_PORT, self.index)}"

    @property
    def abci(self) -> str:
        return f"tcp://{HOST}:{compute_port(ABCI_PORT, self.index)}"


def compute_port(base: int, index: int) -> int:
    return base + PORT_STEP * index


def compute_node_key() -> tuple[dict, str]:
    """A node_key.json document and its node id (hex of the first 20 bytes of sha256(public key))."""
    signing = SigningKey.generate()
    public = bytes(signing.verify_key)
    document = {"priv_key": {"type": privval.PRIV_KEY_TYPE,
                             "value": base64.b64encode(bytes(signing) + public).decode()}}
    return document, hashlib.sha256(public).digest()[:20].hex()


def compute_config_toml(node: NodeHome, peers: list[str], timeout_commit: str, statesync: str = "") -> str:
    """What differs from CometBFT's defaults; it fills in the rest. `statesync` is a [statesync] section."""
    return f"""# A maxwell localnet node (maxwell testnet init-files); CometBFT's defaults fill the rest.
proxy_app = "{node.abci}"
moniker = "node{node.index}"

[rpc]
laddr = "tcp://{HOST}:{compute_port(RPC_PORT, node.index)}"
cors_allowed_origins = []

[p2p]
laddr = "tcp://{HOST}:{compute_port(P2P_PORT, node.index)}"
persistent_peers = "{','.join(peers)}"
addr_book_strict = false
allow_duplicate_ip = true

[consensus]
timeout_commit = "{timeout_commit}"

[tx_index]
indexer = "kv"
{statesync}"""


def process_init_files(output_dir: Path, validators: int, chain_id: str, timeout_commit: str = "500ms",
                       app_state: dict | None = None) -> list[NodeHome]:
    """Write the homes; refuses an output directory that is not empty."""
    if validators < 1:
        raise TestnetError("a network needs at least one validator")
    if output_dir.exists() and any(output_dir.iterdir()):
        raise TestnetError(f"{output_dir} is not empty: refusing to overwrite it")
    nodes, node_keys = [], []
    for index in range(validators):
        home = output_dir / f"node{index}"
        (home / "data").mkdir(parents=True)
        validator = privval.generate(home / "config" / "priv_validator_key.json")
        (home / "data" / "priv_validator_state.json").write_text(json.dumps(PRIV_VALIDATOR_STATE) + "\n")
        node_key, node_id = compute_node_key()
        node_keys.append(node_key)
        mnemonic = crypto.generate_mnemonic()
        info = keyring.add_key(home, KEYRING_BACKEND, f"validator{index}", mnemonic)
        nodes.append(NodeHome(index, home, node_id, validator, info.name, info.address, mnemonic))
    genesis = compute_genesis(chain_id, nodes, app_state)
    gentxs = []
    for node in nodes:
        private_key = keyring.get_private_key(node.home, KEYRING_BACKEND, node.key_name)
        gentx = compute_gentx(genesis, private_key, node.validator, BOND, f"node{node.index}")
        write_gentx(node.home, node.node_id, gentx)
        gentxs.append(gentx)
    genesis = process_collect_gentxs(genesis, gentxs)
    for node, node_key in zip(nodes, node_keys):
        config = node.home / "config"
        (config / "node_key.json").write_text(json.dumps(node_key, indent=2) + "\n")
        (config / "node_key.json").chmod(0o600)
        (node.home / devchain.GENESIS_FILE).write_text(json.dumps(genesis, indent=2) + "\n")
        peers = [f"{other.node_id}@{HOST}:{compute_port(P2P_PORT, other.index)}" for other in nodes if other is not node]
        (config / "config.toml").write_text(compute_config_toml(node, peers, timeout_commit))
    keys = [{"name": n.key_name, "address": n.address, "mnemonic": n.mnemonic, "home": str(n.home)} for n in nodes]
    (output_dir / KEYS_FILE).write_text(json.dumps(keys, indent=2) + "\n")
    return nodes


def compute_genesis(chain_id: str, nodes: list[NodeHome], app_state: dict | None) -> dict:
    """The shared genesis before its gentxs: every validator key funded, localnet staking windows."""
    state = app_state or compute_app_state()
    balances = state.setdefault("bank", {}).setdefault("balances", [])
    balances.extend({"address": n.address, "coins": [{"denom": DENOM, "amount": str(FUNDS)}]} for n in nodes)
    for module, section in (("staking", LOCALNET_STAKING), ("slashing", LOCALNET_SLASHING)):
        state[module] = {**section, **state.get(module, {})}
    return devchain.create_genesis_doc(chain_id, nodes[0].validator, state, moniker="node0")


def write_gentx(home: Path, node_id: str, gentx: dict) -> Path:
    path = home / GENTX_DIR / f"gentx-{node_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(gentx, indent=2) + "\n")
    return path


def process_full_node_home(output_dir: Path, index: int, genesis: Path, peers: list[str], timeout_commit: str = "500ms",
                           statesync: dict | None = None) -> NodeHome:
    """The home of node `index`, not a validator, that joins the network of `genesis` through `peers`;
    with `statesync` ({"rpc_servers", "trust_height", "trust_hash"}) it starts from a snapshot."""
    home = output_dir / f"node{index}"
    (home / "data").mkdir(parents=True)
    validator = privval.generate(home / "config" / "priv_validator_key.json")
    (home / "data" / "priv_validator_state.json").write_text(json.dumps(PRIV_VALIDATOR_STATE) + "\n")
    node_key, node_id = compute_node_key()
    (home / "config" / "node_key.json").write_text(json.dumps(node_key, indent=2) + "\n")
    (home / devchain.GENESIS_FILE).write_text(genesis.read_text())
    node = NodeHome(index, home, node_id, validator, "", "", "")
    section = ""
    if statesync:
        section = (f'\n[statesync]\nenable = true\nrpc_servers = "{statesync["rpc_servers"]}"\n'
                   f'trust_height = {statesync["trust_height"]}\ntrust_hash = "{statesync["trust_hash"]}"\n'
                   f'trust_period = "168h0m0s"\ndiscovery_time = "5s"\n')
    (home / "config" / "config.toml").write_text(compute_config_toml(node, peers, timeout_commit, section))
    return node


# --- gentxs: a validator's MsgCreateValidator, signed, for the genesis ------------------------------

GENTX_DIR = "config/gentx"
GENTX_GAS = 400_000
COMMISSION = {"rate": "0.1", "max_rate": "0.2", "max_change_rate": "0.01"}


def compute_account_number(genesis: dict, address: str) -> int:
    """The number InitChain gives `address`'s account: auth's accounts first, then new bank balances."""
    addresses = [entry["address"] for entry in genesis["app_state"].get("auth", {}).get("accounts", [])]
    addresses += [entry["address"] for entry in genesis["app_state"].get("bank", {}).get("balances", [])
                  if entry["address"] not in addresses]
    if address not in addresses:
        raise TestnetError(f"{address} has no account in genesis: add it with `maxwell genesis add-account` first")
    return addresses.index(address)


def compute_gentx(genesis: dict, private_key: bytes, validator: privval.PrivValidatorKey, amount: int,
                  moniker: str) -> dict:
    """The JSON Tx (as SDK gentx files hold it) creating the validator of `validator`'s consensus key,
    self-bonded with `amount` ujoule from the key's account, which pays the minimum fee."""
    address = crypto.compute_address(crypto.compute_public_key(private_key))
    params, _ = auth.compute_params(genesis["app_state"].get("auth", {}).get("params", {}))
    message = staking_tx.MsgCreateValidator(
        description={"moniker": moniker}, min_self_delegation="1",
        commission={name: format_dec(parse_dec_text(value, name, TestnetError)) for name, value in COMMISSION.items()},
        validator_address=validators.format_operator(address), value={"denom": DENOM, "amount": str(amount)},
        pubkey=pack_any(ed25519_keys.PubKey(key=validator.pub_key), validators.ED25519_PUBKEY_URL))
    raw = cosmos_tx.TxRaw.FromString(sign_tx(
        private_key, [message], chain_id=genesis["chain_id"],
        account_number=compute_account_number(genesis, crypto.encode_address(address)), sequence=0,
        fee=compute_required_fee(GENTX_GAS, params), gas_limit=GENTX_GAS))
    tx = cosmos_tx.Tx(body=cosmos_tx.TxBody.FromString(raw.body_bytes), signatures=raw.signatures,
                      auth_info=cosmos_tx.AuthInfo.FromString(raw.auth_info_bytes))
    return encode_sdk_json(json_format.MessageToDict(tx, preserving_proto_field_name=True), cosmos_tx.Tx.DESCRIPTOR)


def process_collect_gentxs(genesis: dict, gentxs: list[dict]) -> dict:
    """The genesis with these gentxs in genutil: the validators they create are the set InitChain returns,
    so CometBFT's own validators list is emptied."""
    genesis["app_state"].setdefault("genutil", {})["gen_txs"] = gentxs
    genesis["validators"] = []
    return genesis
