"""`maxwell`: set up a node home, run the app, manage keys, send tokens and query the chain.

Every command takes `--home` and `--output text|json`. Expected failures (bad input, unknown key,
wrong passphrase, unreachable node, rejected tx, Ctrl-C while a tx waits for its block) are one line
on stderr and exit status 1.

Beyond typer and the config readers, modules are imported inside the functions that use them, so a command's
start-up pays for what it runs (test_cli checks what --help and queries load; make bench times them).
"""

import base64
import importlib
import json
import os
import re
import sys
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from google.protobuf.message import DecodeError
from typer.core import TyperGroup

from chain.coins import DENOM, format_coins, parse_coin_string, parse_denom
from node import app_config, client_config
from node.client_config import DEFAULT_NODE

DEFAULT_HOME = Path.home() / ".maxwell"
DEFAULT_MONIKER = "maxwell"
GENESIS_FILE = "genesis.json"
PRIV_VALIDATOR_KEY_FILE = "priv_validator_key.json"
CHAIN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,49}")
DURATION_PATTERN = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s)")
TX_HASH_PATTERN = re.compile(r"(?:0x)?([0-9A-Fa-f]{64})")
WAIT_TIMEOUT_SECONDS = 60.0
HeatOption = Annotated[int, typer.Option("--heat-millicelsius", help="Temperature reported when the host has no sensor.")]
PowerOption = Annotated[int, typer.Option("--power-milliwatts", help="Power draw reported with every heat reading.")]
KeepRecentOption = Annotated[int, typer.Option("--keep-recent", min=1, help="State heights kept for queries and proofs; older ones are pruned.")]
GrpcOption = Annotated[str, typer.Option("--grpc", help="Listen address (host:port) of the gRPC server; \"off\" for none.")]
RestOption = Annotated[str, typer.Option("--rest", help="Listen address (host:port) of the REST gateway; \"off\" for none.")]
RestCorsOption = Annotated[str, typer.Option("--rest-cors", help="Origins the REST gateway allows (CORS): \"*\", a comma-separated list, or \"off\".")]
FaucetOption = Annotated[Optional[str], typer.Option("--faucet", help="A key of the home's test keyring that answers POST /faucet on the REST port.")]
FaucetAmountOption = Annotated[str, typer.Option("--faucet-amount", help="What the faucet gives each time.")]


class CliError(Exception):
    pass


class OutputFormat(str, Enum):
    text = "text"
    json = "json"


class KeyringBackend(str, Enum):
    file = "file"
    test = "test"


# the failures a command reports in one line, by module: the node's servers are imported only by the commands
# that run them, and an error of a module never imported cannot have been raised
EXPECTED_ERRORS = {
    "node.cli": ("CliError",), "node.keyring": ("KeyringError",), "node.client": ("ClientError",),
    "node.client_config": ("ClientConfigError",), "node.app_config": ("AppConfigError",), "chain.crypto": ("CryptoError",),
    "chain.errors": ("InvalidCoinsError",), "node.privval": ("PrivValError",), "node.abci_server": ("ABCIServerError",),
    "node.devchain": ("DevChainError",), "node.grpc_server": ("ListenError",), "chain.store": ("StoreError",),
    "node.rest": ("InvalidCorsOrigins",), "node.logs": ("LogConfigError",), "node.chain_info": ("ChainInfoError",), "builtins": ("OSError",),
}


def is_expected_error(error: Exception) -> bool:
    return any(isinstance(error, getattr(sys.modules[module], name))
               for module, names in EXPECTED_ERRORS.items() if module in sys.modules for name in names)


ARGS_META = "maxwell.args"


# The command groups are built when first named, so a command's start-up pays for its own group alone:
# name -> (the modules whose mount() adds commands to it, its help). GROUPS maps a name to its typer app.
LAZY_GROUPS = {
    "keys": ((), "Manage the wallet's keys."),
    "genesis": ((), "Edit the genesis file."),
    "query": (("node.infer_cmd", "node.staking_cmd", "node.ibc_cmd"), "Query a running node."),
    "tx": (("node.infer_cmd", "node.staking_cmd", "node.ibc_cmd"), "Sign and broadcast transactions."),
    "testnet": ((), "Local networks of validators."),
    "circuits": (("node.circuits_cmd",), "Build zero-knowledge circuits for models (EZKL)."),
    "config": ((), "Read and change the home's client.toml."),
    "market": (("node.infer_cmd",), "Look at the compute market: providers, order books, clearings."),
    "infer": (("node.infer_cmd",), "Ask the network for a proven inference."),
    "worker": (("node.infer_cmd",), "Run a worker: a market provider that proves inferences."),
    "debug": (("node.debug_cmd",), "Look into a stopped node's data."),
}
GROUPS: dict[str, typer.Typer] = {}
GROUPS_OF_CLI = ("keys", "genesis", "query", "tx", "testnet", "config")  # the groups this module makes
MOUNTED: set[str] = set()


def process_mounts(name: str) -> None:
    for module in LAZY_GROUPS[name][0]:
        if module not in MOUNTED:
            importlib.import_module(module).mount()
            MOUNTED.add(module)


class ModuleGroup(TyperGroup):
    """A group (query, tx) some of whose commands other modules add: those modules load only when a command
    this group does not hold yet is named, or the group's commands are listed."""

    complete = False

    def process_complete(self) -> None:
        if not self.complete:
            process_mounts(self.name)
            self.commands.update(typer.main.get_group(GROUPS[self.name]).commands)
            self.complete = True

    def get_command(self, ctx, name):
        if name not in self.commands:
            self.process_complete()
        return super().get_command(ctx, name)

    def list_commands(self, ctx):
        self.process_complete()
        return super().list_commands(ctx)


def make_typer(description: str, cls=TyperGroup) -> typer.Typer:
    """A command group with click's plain help (rich's would be imported by every --help)."""
    return typer.Typer(rich_markup_mode=None, no_args_is_help=True, help=description, cls=cls)


def make_group(name: str) -> typer.Typer:
    return make_typer(LAZY_GROUPS[name][1], ModuleGroup if name in GROUPS_OF_CLI and LAZY_GROUPS[name][0] else TyperGroup)


def get_group(name: str):
    """The click group of a top-level name (the modules that make it loaded first, for a group they make)."""
    if name not in GROUPS:
        process_mounts(name)
    group = typer.main.get_group(GROUPS[name])
    group.name = name
    return group


class CliGroup(TyperGroup):
    """Turns every failure inside a command into one line on stderr and exit status 1; builds the groups of
    LAZY_GROUPS when named."""

    def list_commands(self, ctx):
        return [*super().list_commands(ctx), *(name for name in LAZY_GROUPS if name not in self.commands)]

    def get_command(self, ctx, name):
        if name not in self.commands and name in LAZY_GROUPS:
            self.commands[name] = get_group(name)
        return super().get_command(ctx, name)

    def format_commands(self, ctx, formatter):
        rows = [(name, self.commands[name].get_short_help_str(formatter.width - 16) if name in self.commands
                 else LAZY_GROUPS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx):
        ctx.meta[ARGS_META] = [*ctx._protected_args, *ctx.args]  # the group clears them before its callback
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException, BrokenPipeError):
            raise
        except Exception as error:
            fail(str(error) if is_expected_error(error) else f"unexpected {type(error).__name__}: {error}")


DEFAULT_GAS_ADJUSTMENT = 1.3
AUTO_GAS = "auto"
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Sign and broadcast without asking.")]
GasAdjustment = Annotated[float, typer.Option("--gas-adjustment", min=1.0, max=10.0,
                                              help="With --gas auto: the simulated gas times this.")]


def fail(message: str):
    typer.echo(f"Error: {' '.join(message.split())}", err=True)
    raise typer.Exit(1)


app = typer.Typer(
    rich_markup_mode=None, cls=CliGroup, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="maxwell: a compute market chain (token JOULE). Node setup, wallet, transfers and queries.",
)
keys_app, genesis_app, query_app, tx_app, testnet_app, config_app = (
    GROUPS.setdefault(name, make_group(name)) for name in GROUPS_OF_CLI)


def show_version(value: bool) -> None:
    if value:
        from node import grpc_server
        typer.echo(grpc_server.compute_version_info().version)
        raise typer.Exit()


@app.callback()
def main(ctx: typer.Context,
         version: Annotated[bool, typer.Option("--version", callback=show_version, is_eager=True,
                                               help="Print the version and exit.")] = False):
    """maxwell: a compute market chain (token JOULE). Node setup, wallet, transfers and queries."""
    home = client_config.find_home(ctx.meta.get(ARGS_META, []), get_default_home())
    ctx.default_map = client_config.DefaultMap(client_config.read(home), client_config.compute_command_names(ctx.command),
                                               node_settings=lambda: app_config.read(home))


def get_default_home() -> Path:
    return Path(os.environ[client_config.HOME_ENV]) if os.environ.get(client_config.HOME_ENV) else DEFAULT_HOME


@config_app.command("get")
def config_get(
    key: Annotated[str, typer.Argument(help=f"One of: {', '.join(client_config.SETTINGS)}.")],
    home: Annotated[Path, typer.Option("--home", envvar=client_config.HOME_ENV, help="Node and wallet directory.")]
    = DEFAULT_HOME,
):
    """Print a setting (its default when client.toml does not set it)."""
    client_config.check(key, client_config.DEFAULTS.get(key, ""))
    typer.echo(client_config.read(home).get(key, client_config.DEFAULTS[key]))


@config_app.command("set")
def config_set(
    key: Annotated[str, typer.Argument(help=f"One of: {', '.join(client_config.SETTINGS)}.")],
    value: Annotated[str, typer.Argument()],
    home: Annotated[Path, typer.Option("--home", envvar=client_config.HOME_ENV, help="Node and wallet directory.")]
    = DEFAULT_HOME,
):
    """Change a setting in client.toml (written with every setting and its comment)."""
    client_config.check(key, value)
    settings = client_config.read(home)
    settings[key] = value
    typer.echo(f"{key} = {value!r} in {client_config.write(home, settings)}")


Home = Annotated[Path, typer.Option("--home", envvar="MAXWELL_HOME", help="Node and wallet directory (MAXWELL_HOME).")]
Output = Annotated[OutputFormat, typer.Option("--output", "-o", help="text for people, json for programs.")]
Node = Annotated[str, typer.Option("--node", help="CometBFT RPC of a node (http:// or tcp://).")]
Backend = Annotated[KeyringBackend, typer.Option("--keyring-backend", help="file (encrypted) or test (unencrypted, dev only).")]
PassphraseFile = Annotated[
    Optional[Path], typer.Option("--keyring-passphrase-file", help="Read the keyring passphrase from this file.")
]


# --- output ----------------------------------------------------------------------------------------

def show(output: OutputFormat, record: dict, text_lines: list[str] | None = None) -> None:
    """JSON: the record. Text: `text_lines` if given, else `key: value` lines of the record."""
    if output == OutputFormat.json:
        typer.echo(json.dumps(record, indent=2))
        return
    for line in text_lines if text_lines is not None else [f"{k}: {compute_text(v)}" for k, v in record.items()]:
        typer.echo(line)


def compute_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return "" if value is None else str(value)


def show_accepted(output: OutputFormat, tx_hash: bytes, wait: bool) -> None:
    """The hash as soon as the node accepted the tx; in JSON on stderr, so stdout stays one document."""
    if output == OutputFormat.text:
        typer.echo(f"txhash: {tx_hash.hex().upper()}")
    elif wait:
        typer.echo(f"txhash: {tx_hash.hex().upper()} (accepted, waiting for a block)", err=True)


def show_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    """Columns padded to their widest cell, as `kubectl get` prints them: one line per row for grep and awk, and
    cells (zones, models, memos from the chain) printed as they are, never read as markup."""
    widths = [max(len(cell) for cell in column) for column in zip(columns, *rows)]
    typer.echo(title)
    for row in (columns, *rows):
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


# --- parsing ---------------------------------------------------------------------------------------

def parse_coins_text(text: str) -> dict[str, int]:
    """'1000ujoule' or '1000ujoule,5other' -> {denom: amount}, positive and without duplicates."""
    coins: dict[str, int] = {}
    for part in text.split(","):
        amount, denom = parse_coin_string(part)
        if amount == 0:
            raise CliError(f"invalid amount {text!r}: {denom} amount must be positive")
        if denom in coins:
            raise CliError(f"invalid amount {text!r}: {denom} appears twice")
        coins[denom] = amount
    return dict(sorted(coins.items()))


def compute_coin_list(coins: dict[str, int]) -> list[dict]:
    return [{"denom": denom, "amount": str(amount)} for denom, amount in coins.items()]


def compute_duration_ms(text: str) -> int:
    match = DURATION_PATTERN.fullmatch(text.strip())
    if not match:
        raise CliError(f"invalid duration {text!r}: use e.g. 1s, 1.5s or 200ms")
    value = Decimal(match.group(1)) * (1000 if match.group(2) == "s" else 1)
    if value < 1 or value != value.to_integral_value():
        raise CliError(f"invalid duration {text!r}: must be a whole number of milliseconds, at least 1ms")
    return int(value)


def parse_fee(fees: str | None, gas_prices: str | None = None) -> "int | Fraction | None":
    """--fees (an amount of ujoule) or --gas-prices (ujoule per gas, a Fraction), as simd takes one or the other;
    None for the chain's minimum."""
    if fees is not None and gas_prices is not None:
        raise CliError("give --fees or --gas-prices, not both")
    if gas_prices is not None:
        return parse_gas_price(gas_prices, "--gas-prices")
    if fees is None:
        return None
    fee, denom = parse_coin_string(fees)
    if denom != DENOM:
        raise CliError(f"invalid fees {fees!r}: fees are paid in {DENOM}")
    return fee


def compute_gas_fee(fee, gas: int) -> int | None:
    """parse_fee's answer for a gas limit: the fee, gas times the price, or None (the chain's minimum)."""
    from chain.tx import compute_gas_cost
    if fee is None or isinstance(fee, int):
        return fee
    return compute_gas_cost(gas, fee.numerator, fee.denominator)


GasPrices = Annotated[Optional[str], typer.Option("--gas-prices", help=(
    f"Pay gas x this price (e.g. 0.05{DENOM}) instead of --fees."))]


def parse_tx_hash(text: str) -> bytes:
    match = TX_HASH_PATTERN.fullmatch(text.strip())
    if not match:
        raise CliError(f"invalid tx hash {text!r}: expected 64 hex digits")
    return bytes.fromhex(match.group(1))


def resolve_address(home: Path, backend: KeyringBackend, text: str) -> str:
    """A bech32 address as given, or the address of a key of that name."""
    from chain import crypto
    try:
        crypto.decode_address(text)
        return text
    except crypto.InvalidAddress as error:
        from node import keyring
        if keyring.NAME_PATTERN.fullmatch(text) and keyring.is_key(home, backend.value, text):
            return keyring.get_key(home, backend.value, text).address
        raise CliError(f"{text!r} is neither a valid address ({error}) nor a key in the {backend.value} keyring") from None


def resolve_key(home: Path, backend: KeyringBackend, text: str) -> "keyring.KeyInfo":
    """A key by name, or by the address of one of the keyring's keys."""
    from node import keyring
    if keyring.NAME_PATTERN.fullmatch(text) and keyring.is_key(home, backend.value, text):
        return keyring.get_key(home, backend.value, text)
    for info in keyring.get_keys(home, backend.value):
        if info.address == text:
            return info
    raise CliError(f"no key {text!r} in the {backend.value} keyring at {home}")


def read_passphrase(passphrase_file: Path | None, confirm: bool) -> str:
    if passphrase_file is not None:
        try:
            lines = passphrase_file.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise CliError(f"cannot read passphrase file {passphrase_file}: {error}") from None
        if not lines or not lines[0]:
            raise CliError(f"passphrase file {passphrase_file} is empty")
        return lines[0]
    return typer.prompt("Keyring passphrase", hide_input=True, confirmation_prompt=confirm, err=True)


def load_private_key(home: Path, backend: KeyringBackend, passphrase_file: Path | None, name: str) -> bytes:
    """The private key of a key given by name or address; the file keyring asks for its passphrase."""
    from node import keyring
    info = resolve_key(home, backend, name)
    passphrase = read_passphrase(passphrase_file, confirm=False) if backend == KeyringBackend.file else None
    return keyring.get_private_key(home, backend.value, info.name, passphrase)


def read_mnemonic() -> str:
    typer.echo("Enter your bip39 mnemonic: ", err=True, nl=False)
    mnemonic = sys.stdin.readline().strip()
    if not mnemonic:
        raise CliError("no mnemonic on stdin")
    return mnemonic


def compute_pubkey_record(public_key: bytes) -> dict:
    from chain.tx import SECP256K1_PUBKEY_URL
    return {"@type": SECP256K1_PUBKEY_URL, "key": base64.b64encode(public_key).decode()}


def compute_key_record(info: "keyring.KeyInfo") -> dict:
    return {"name": info.name, "type": "local", "address": info.address, "pubkey": compute_pubkey_record(info.public_key)}


# --- node home and genesis -------------------------------------------------------------------------

def get_genesis_path(home: Path) -> Path:
    return home / "config" / GENESIS_FILE


def read_genesis(home: Path) -> dict:
    path = get_genesis_path(home)
    try:
        genesis = json.loads(path.read_text())
    except FileNotFoundError:
        raise CliError(f"no genesis file at {path}: run `maxwell init` first") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise CliError(f"genesis file {path} is not valid JSON: {error}") from None
    if not isinstance(genesis, dict) or not isinstance(genesis.get("app_state"), dict):
        raise CliError(f"genesis file {path} has no app_state object")
    return genesis


def write_file_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


@app.command()
def init(
    chain_id: Annotated[str, typer.Option("--chain-id", help="The new chain's id, e.g. maxwell-1.")],
    moniker: Annotated[str, typer.Option("--moniker", help="Name of this node's validator.")] = DEFAULT_MONIKER,
    home: Home = DEFAULT_HOME,
    output: Output = OutputFormat.text,
):
    """Create config/genesis.json, app.toml, config.toml, client.toml and a validator key in a new node home."""
    from node import devchain, privval
    from node.application import compute_app_state
    if not CHAIN_ID_PATTERN.fullmatch(chain_id):
        raise CliError(f"invalid chain id {chain_id!r}: use 1-50 letters, digits, '.', '_' or '-'")
    genesis_path = get_genesis_path(home)
    if genesis_path.exists():
        raise CliError(f"genesis file {genesis_path} already exists: refusing to overwrite it")
    key_path = home / "config" / PRIV_VALIDATOR_KEY_FILE
    validator = privval.load(key_path) if key_path.exists() else privval.generate(key_path)
    genesis = devchain.create_genesis_doc(chain_id, validator, compute_app_state(), moniker=moniker)
    (home / "data").mkdir(parents=True, exist_ok=True)
    if not client_config.get_path(home).exists():
        client_config.write(home, {"chain-id": chain_id})
    app_config.write(home)
    with open(genesis_path, "x") as f:
        f.write(json.dumps(genesis, indent=2) + "\n")
    record = {"chain_id": chain_id, "home": str(home), "genesis": str(genesis_path),
              "validator_address": validator.address.hex().upper()}
    show(output, record, [f"initialized chain {chain_id} in {home}", f"genesis: {genesis_path}",
                          f"validator: {record['validator_address']} (power {devchain.DEFAULT_VOTING_POWER})"])


@genesis_app.command("gentx")
def genesis_gentx(
    key: Annotated[str, typer.Argument(help="The key whose account bonds (it needs a genesis balance).")],
    amount: Annotated[str, typer.Argument(help=f"The self-bond, e.g. 100000000{DENOM}.")],
    moniker: Annotated[str, typer.Option("--moniker", help="The validator's name.")] = DEFAULT_MONIKER,
    chain_id: Annotated[Optional[str], typer.Option("--chain-id", help="Must match the genesis file's.")] = None,
    keyring_backend: Backend = KeyringBackend.file,
    keyring_passphrase_file: PassphraseFile = None,
    home: Home = DEFAULT_HOME,
    output: Output = OutputFormat.text,
):
    """Sign a MsgCreateValidator for this node's consensus key into config/gentx/, as simd's gentx does."""
    from node import privval, testnet
    genesis = read_genesis(home)
    if chain_id is not None and chain_id != genesis.get("chain_id"):
        raise CliError(f"--chain-id {chain_id} is not the genesis file's chain id {genesis.get('chain_id')!r}")
    coins = parse_coins_text(amount)
    if set(coins) != {DENOM}:
        raise CliError(f"validators bond {DENOM} alone, not {amount}")
    bond = coins[DENOM]
    validator = privval.load(home / "config" / PRIV_VALIDATOR_KEY_FILE)
    private_key = load_private_key(home, keyring_backend, keyring_passphrase_file, key)
    try:
        gentx = testnet.compute_gentx(genesis, private_key, validator, bond, moniker)
    except testnet.TestnetError as error:
        raise CliError(str(error)) from None
    path = testnet.write_gentx(home, validator.address.hex(), gentx)
    show(output, {"gentx": str(path)}, [f"wrote {path}: {moniker} bonds {bond}{DENOM}"])


@genesis_app.command("collect-gentxs")
def genesis_collect_gentxs(
    gentx_dir: Annotated[Optional[Path], typer.Option("--gentx-dir", help="Default: the home's config/gentx.")] = None,
    home: Home = DEFAULT_HOME,
    output: Output = OutputFormat.text,
):
    """Put every gentx of a folder into the genesis file's genutil section; its validators become the set."""
    from node import testnet
    directory = gentx_dir or home / testnet.GENTX_DIR
    paths = sorted(directory.glob("*.json")) if directory.is_dir() else []
    if not paths:
        raise CliError(f"no gentx files in {directory}")
    try:
        gentxs = [json.loads(path.read_text()) for path in paths]
    except (ValueError, UnicodeDecodeError) as error:
        raise CliError(f"a gentx in {directory} is not JSON: {error}") from None
    genesis = testnet.process_collect_gentxs(read_genesis(home), gentxs)
    write_file_atomically(get_genesis_path(home), json.dumps(genesis, indent=2) + "\n")
    show(output, {"gen_txs": len(gentxs)}, [f"collected {len(gentxs)} gentxs into {get_genesis_path(home)}"])


@genesis_app.command("validate")
def genesis_validate(
    path: Annotated[Optional[Path], typer.Argument(help="A genesis.json (default: the home's).")] = None,
    home: Home = DEFAULT_HOME,
    output: Output = OutputFormat.text,
):
    """Check a genesis file as a node would start from it: CometBFT's fields, then every module's section
    through the app's InitChain (on a scratch store)."""
    import tempfile
    from chain.app import App, GenesisError
    from node import devchain
    path = path or get_genesis_path(home)
    try:
        genesis = devchain.decode_genesis(json.loads(path.read_text()))
    except FileNotFoundError:
        raise CliError(f"no genesis file at {path}") from None
    except (ValueError, UnicodeDecodeError, devchain.InvalidGenesis) as error:
        raise CliError(f"genesis file {path} is invalid: {error}") from None
    with tempfile.TemporaryDirectory() as scratch:
        application = App(scratch)
        try:
            response = application.init_chain(devchain.compute_init_chain_request(genesis))
        except GenesisError as error:
            raise CliError(f"genesis file {path} is invalid: {error}") from None
        finally:
            application.close()
    validators = len(response.validators) or len(genesis.validators)  # the gentxs' set, else CometBFT's
    record = {"genesis": str(path), "chain_id": genesis.chain_id, "validators": validators,
              "app_hash": response.app_hash.hex().upper()}
    show(output, record, [f"{path} is a valid genesis for {genesis.chain_id}: {validators} validators, "
                          f"initial app hash {record['app_hash']}"])


@genesis_app.command("add-account")
def genesis_add_account(
    account: Annotated[str, typer.Argument(help="A bech32 address or the name of a key.")],
    amount: Annotated[str, typer.Argument(help=f"Coins, e.g. 1000000{DENOM}.")],
    keyring_backend: Backend = KeyringBackend.file,
    home: Home = DEFAULT_HOME,
    output: Output = OutputFormat.text,
):
    """Give an account a balance in genesis."""
    coins = parse_coins_text(amount)
    address = resolve_address(home, keyring_backend, account)
    genesis = read_genesis(home)
    balances = genesis["app_state"].setdefault("bank", {}).setdefault("balances", [])
    if not isinstance(balances, list):
        raise CliError("genesis app_state.bank.balances is not a list")
    if any(isinstance(entry, dict) and entry.get("address") == address for entry in balances):
        raise CliError(f"{address} already has a genesis balance")
    balances.append({"address": address, "coins": compute_coin_list(coins)})
    write_file_atomically(get_genesis_path(home), json.dumps(genesis, indent=2) + "\n")
    record = {"address": address, "coins": compute_coin_list(coins)}
    show(output, record, [f"added {address} with {format_coins(coins)} to genesis"])


@testnet_app.command("init-files")
def testnet_init_files(
    validators: Annotated[int, typer.Option("--validators", min=1, help="Validator nodes.")] = 4,
    output_dir: Annotated[Path, typer.Option("--output-dir", help="Where the node homes go.")] = Path("localnet-homes"),
    chain_id: Annotated[str, typer.Option("--chain-id", help="The network's chain id.")] = "maxwell-local-1",
    timeout_commit: Annotated[str, typer.Option("--timeout-commit", help="CometBFT's pause after each block.")] = "500ms",
    output: Output = OutputFormat.text,
):
    """Write the homes of a local network: per node a CometBFT config, keys and the shared genesis."""
    from node import testnet
    if not CHAIN_ID_PATTERN.fullmatch(chain_id):
        raise CliError(f"invalid chain id {chain_id!r}: use 1-50 letters, digits, '.', '_' or '-'")
    try:
        nodes = testnet.process_init_files(output_dir, validators, chain_id, timeout_commit)
    except testnet.TestnetError as error:
        raise CliError(str(error)) from None
    records = [{"home": str(n.home), "node_id": n.node_id, "rpc": n.rpc, "abci": n.abci, "key": n.key_name,
                "address": n.address} for n in nodes]
    show(output, {"chain_id": chain_id, "nodes": records},
         [f"{r['home']}: node {r['node_id']}, RPC {r['rpc']}, ABCI {r['abci']}, key {r['key']} {r['address']}"
          for r in records] + [f"mnemonics (dev only): {output_dir / testnet.KEYS_FILE}"])


# --- processes -------------------------------------------------------------------------------------

def configure_logging(level: str, log_format: str) -> None:
    from node import logs
    logs.configure(level, log_format)


LogLevel = Annotated[str, typer.Option("--log-level", help="debug, info, error or none.")]
LogFormat = Annotated[str, typer.Option("--log-format", help="plain, or json (one object a line).")]
MinimumGasPrices = Annotated[str, typer.Option("--minimum-gas-prices", help=(
    f"This node's floor for the fees it lets into its mempool, e.g. 0.05{DENOM} (empty: the chain's min_gas_price)."))]


def parse_gas_price(text: str | None, flag: str):
    """A gas price (--gas-prices, app.toml's minimum-gas-prices) as a Fraction of ujoule per gas; None if empty."""
    from fractions import Fraction
    if not text:
        return None
    match = re.fullmatch(rf"([0-9]+(?:\.[0-9]+)?){DENOM}", text.strip())
    if not match:
        raise CliError(f"invalid {flag} {text!r}: a decimal amount of {DENOM} per gas, e.g. 0.05{DENOM}")
    return Fraction(match.group(1))


def check_listen_addresses(grpc: str, rest_address: str, rest_cors: str) -> None:
    from node import grpc_server, rest
    grpc_server.check_address(grpc)
    rest.check_address(rest_address)
    rest.parse_cors(rest_cors)


@app.command()
def start(
    abci: Annotated[str, typer.Option("--abci", help="Listen address for CometBFT (tcp:// or unix://).")] = app_config.DEFAULT_ABCI_ADDRESS,
    home: Home = DEFAULT_HOME,
    log_level: LogLevel = "info",
    log_format: LogFormat = "plain",
    heat_millicelsius: HeatOption = app_config.DEFAULT_MILLICELSIUS,
    power_milliwatts: PowerOption = app_config.DEFAULT_MILLIWATTS,
    keep_recent: KeepRecentOption = app_config.DEFAULT_KEEP_RECENT,
    snapshot_interval: Annotated[int, typer.Option(
        "--snapshot-interval", min=0, help="Keep a state-sync snapshot every N heights (0: none).")] = 0,
    grpc: GrpcOption = app_config.DEFAULT_GRPC_ADDRESS,
    rpc_node: Annotated[str, typer.Option("--rpc-node", help="CometBFT RPC of the node running this app, for the gRPC tx and block services.")] = DEFAULT_NODE,
    rest_address: RestOption = app_config.DEFAULT_REST_ADDRESS,
    rest_cors: RestCorsOption = "off",
    minimum_gas_prices: MinimumGasPrices = "",
):
    """Run the application as an ABCI server for CometBFT (and the gRPC server and REST gateway); the home's
    app.toml and config.toml give the defaults of these flags."""
    from node import abci_server, client, grpc_backend, grpc_server, metrics, rest, sensors
    from node.application import open_app
    configure_logging(log_level, log_format)
    check_listen_addresses(grpc, rest_address, rest_cors)
    client.compute_http_url(rpc_node)
    application = grpc_backend.LockedApp(metrics.InstrumentedApp(open_app(
        str(home / "data"), keep_recent=keep_recent, snapshot_interval=snapshot_interval,
        heat_sensor=sensors.make_heat_sensor(heat_millicelsius, power_milliwatts),
        minimum_gas_price=parse_gas_price(minimum_gas_prices, "minimum gas price"))))
    grpc_service = rest_service = None
    try:
        if grpc_server.is_enabled(grpc):
            grpc_service, _ = grpc_server.serve(grpc_backend.CometBackend(application, rpc_node), grpc)
        if grpc_server.is_enabled(rest_address):
            rest_service = rest.serve(grpc_backend.CometBackend(application, rpc_node), rest_address, rest_cors)
        abci_server.run(grpc_server.NodeQueries(application, grpc_backend.CometBackend(application, rpc_node)), abci)
    finally:
        if rest_service is not None:
            rest_service.stop()
        if grpc_service is not None:
            grpc_service.stop(grpc_server.SHUTDOWN_GRACE_S).wait()
        application.app.close()


@app.command()
def dev(
    rpc: Annotated[str, typer.Option("--rpc", help="Listen address of the CometBFT RPC.")] = app_config.DEFAULT_RPC_ADDRESS,
    block_time: Annotated[str, typer.Option("--block-time", help="Time between blocks, e.g. 1s or 200ms.")] = "1s",
    home: Home = DEFAULT_HOME,
    log_level: LogLevel = "info",
    log_format: LogFormat = "plain",
    heat_millicelsius: HeatOption = app_config.DEFAULT_MILLICELSIUS,
    power_milliwatts: PowerOption = app_config.DEFAULT_MILLIWATTS,
    keep_recent: KeepRecentOption = app_config.DEFAULT_KEEP_RECENT,
    grpc: GrpcOption = app_config.DEFAULT_GRPC_ADDRESS,
    rest_address: RestOption = app_config.DEFAULT_REST_ADDRESS,
    rest_cors: RestCorsOption = "off",
    faucet_key: FaucetOption = None,
    faucet_amount: FaucetAmountOption = f"{app_config.DEFAULT_FAUCET_UJOULE}{DENOM}",
    minimum_gas_prices: MinimumGasPrices = "",
):
    """Run a single-node development chain with the CometBFT RPC, the gRPC server and the REST gateway (no
    CometBFT needed); the home's app.toml and config.toml give the defaults of these flags."""
    from node import devchain, sensors
    block_time_ms = compute_duration_ms(block_time)
    check_listen_addresses(grpc, rest_address, rest_cors)
    dev_faucet = make_faucet(home, faucet_key, faucet_amount, rpc, rest_address)
    configure_logging(log_level, log_format)
    devchain.run(str(home), rpc=rpc, block_time_ms=block_time_ms, grpc=grpc, rest_address=rest_address,
                 rest_cors=rest_cors, heat_sensor=sensors.make_heat_sensor(heat_millicelsius, power_milliwatts),
                 keep_recent=keep_recent, faucet=dev_faucet,
                 minimum_gas_price=parse_gas_price(minimum_gas_prices, "minimum gas price"))


def make_faucet(home: Path, key: str | None, amount: str, rpc: str, rest_address: str):
    """The dev chain's faucet (a node.faucet.Faucet, or None without a key), giving `amount` from `key` (a
    test-keyring key) through the chain's own RPC."""
    from node import faucet, grpc_server
    if not key:
        return None
    if not grpc_server.is_enabled(rest_address):
        raise CliError("the faucet answers on the REST port: give --rest an address, not off")
    coins = parse_coins_text(amount)
    if list(coins) != [DENOM]:
        raise CliError(f"invalid faucet amount {amount!r}: the faucet gives {DENOM}")
    return faucet.Faucet(load_private_key(home, KeyringBackend.test, None, key), "http://" + rpc.split("://", 1)[-1],
                         coins[DENOM])


@app.command("faucet")
def faucet_command(
    address: Annotated[str, typer.Argument(help="The address to fund (or the name of a key).")],
    url: Annotated[str, typer.Option("--url", help="REST gateway of a dev chain run with --faucet.")] = f"http://{app_config.DEFAULT_REST_ADDRESS}",
    keyring_backend: Backend = KeyringBackend.test,
    home: Home = DEFAULT_HOME,
    output: Output = OutputFormat.text,
):
    """Ask a dev chain's faucet for JOULE."""
    import urllib.error
    import urllib.request
    from node import rest
    recipient = resolve_address(home, keyring_backend, address)
    request = urllib.request.Request(url.rstrip("/") + rest.FAUCET_PATH, data=json.dumps({"address": recipient}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            grant = json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            message = json.loads(error.read()).get("message", "")
        except ValueError:
            message = error.reason
        raise CliError(f"the faucet at {url} refused: {message or error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        raise CliError(f"cannot reach the faucet at {url}: {getattr(error, 'reason', error)}") from None
    show(output, grant, [f"sent {grant['amount']} to {grant['address']}: txhash {grant['txhash']}"])


@app.command("chain-info")
def chain_info_command(
    rpc: Annotated[str, typer.Option("--rpc", help="CometBFT RPC URL wallets should use (http:// or https://).")],
    rest_url: Annotated[str, typer.Option("--rest", help="REST gateway URL wallets should use.")],
    grpc: Annotated[Optional[str], typer.Option("--grpc", help="gRPC address (host:port) to list in chain.json.")] = None,
    network_type: Annotated[str, typer.Option("--network-type", help="mainnet, testnet or devnet.")] = "testnet",
    output_dir: Annotated[Optional[Path], typer.Option("--output-dir", help="Write chain.json, assetlist.json and keplr.json here.")] = None,
):
    """The chain-registry chain.json and assetlist.json and Keplr's suggestChain object, read from a running node."""
    from node import chain_info
    documents = chain_info.compute_documents(rpc, rest_url, grpc, network_type)
    if output_dir is None:
        typer.echo(json.dumps(documents, indent=2))
        return
    for path in chain_info.write_documents(documents, output_dir):
        typer.echo(str(path))


# --- keys ------------------------------------------------------------------------------------------

@keys_app.command("add")
def keys_add(
    name: str,
    recover: Annotated[bool, typer.Option("--recover", help="Read an existing mnemonic from stdin.")] = False,
    keyring_backend: Backend = KeyringBackend.file,
    keyring_passphrase_file: PassphraseFile = None,
    home: Home = DEFAULT_HOME,
    output: Output = OutputFormat.text,
):
    """Create a key (shows its new mnemonic once) or recover one from a mnemonic."""
    from chain import crypto
    from node import keyring
    if keyring.is_key(home, keyring_backend.value, name):
        raise CliError(f"key {name!r} already exists")
    if recover:
        mnemonic = read_mnemonic()
        crypto.derive_private_key(mnemonic)
    else:
        mnemonic = crypto.generate_mnemonic()
    passphrase = None
    if keyring_backend == KeyringBackend.file:
        passphrase = read_passphrase(keyring_passphrase_file, confirm=True)
        keyring.check_passphrase(passphrase)
    info = keyring.add_key(home, keyring_backend.value, name, mnemonic, passphrase)
    record = compute_key_record(info)
    lines = [f"name: {info.name}", f"address: {info.address}", f"pubkey: {compute_text(record['pubkey'])}"]
    if not recover:
        record["mnemonic"] = mnemonic
        lines += ["", "**Important** write this mnemonic phrase down and keep it safe.",
                  "It is the only way to recover this account. It will not be shown again.", "", mnemonic]
    show(output, record, lines)


@keys_app.command("show")
def keys_show(
    name: str,
    address_only: Annotated[bool, typer.Option("--address", "-a", help="Print only the address.")] = False,
    keyring_backend: Backend = KeyringBackend.file,
    home: Home = DEFAULT_HOME,
    output: Output = OutputFormat.text,
):
    """Show a key's address and public key."""
    from node import keyring
    record = compute_key_record(keyring.get_key(home, keyring_backend.value, name))
    if address_only:
        show(output, {"address": record["address"]}, [record["address"]])
        return
    show(output, record)


@keys_app.command("list")
def keys_list(
    keyring_backend: Backend = KeyringBackend.file,
    home: Home = DEFAULT_HOME,
    output: Output = OutputFormat.text,
):
    """List the keyring's keys."""
    from node import keyring
    records = [compute_key_record(info) for info in keyring.get_keys(home, keyring_backend.value)]
    if output == OutputFormat.json:
        typer.echo(json.dumps(records, indent=2))
    elif not records:
        typer.echo(f"no keys in the {keyring_backend.value} keyring at {home}")
    else:
        show_table(f"{keyring_backend.value} keyring", ["name", "address"], [[r["name"], r["address"]] for r in records])


@keys_app.command("export")
def keys_export(
    name: str,
    keyring_backend: Backend = KeyringBackend.file,
    keyring_passphrase_file: PassphraseFile = None,
    export_passphrase_file: Annotated[Optional[Path], typer.Option(
        "--export-passphrase-file", help="Read the passphrase that seals the export from this file.")] = None,
    home: Home = DEFAULT_HOME,
):
    """Print a key, sealed with a passphrase of its own, as ASCII armor (`keys import` reads it)."""
    from node import keyring
    passphrase = None
    if keyring_backend == KeyringBackend.file:
        passphrase = read_passphrase(keyring_passphrase_file, confirm=False)
    mnemonic = keyring.get_mnemonic(home, keyring_backend.value, name, passphrase)
    if export_passphrase_file is None:
        typer.echo("Passphrase to seal the exported key:", err=True)
    typer.echo(keyring.compute_armor(mnemonic, read_passphrase(export_passphrase_file, confirm=True)), nl=False)


@keys_app.command("import")
def keys_import(
    name: str,
    armor_file: Annotated[Path, typer.Argument(metavar="FILE", help="An armored key, from `keys export`.")],
    keyring_backend: Backend = KeyringBackend.file,
    keyring_passphrase_file: PassphraseFile = None,
    export_passphrase_file: Annotated[Optional[Path], typer.Option(
        "--export-passphrase-file", help="Read the passphrase that seals the export from this file.")] = None,
    home: Home = DEFAULT_HOME,
    output: Output = OutputFormat.text,
):
    """Add a key from an armored export."""
    from node import keyring
    if keyring.is_key(home, keyring_backend.value, name):
        raise CliError(f"key {name!r} already exists")
    try:
        text = armor_file.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise CliError(f"cannot read {armor_file}: {error}") from None
    mnemonic = keyring.parse_armor(text, read_passphrase(export_passphrase_file, confirm=False))
    passphrase = None
    if keyring_backend == KeyringBackend.file:
        passphrase = read_passphrase(keyring_passphrase_file, confirm=True)
        keyring.check_passphrase(passphrase)
    info = keyring.add_key(home, keyring_backend.value, name, mnemonic, passphrase)
    show(output, compute_key_record(info), [f"imported key {name!r} ({info.address})"])


@keys_app.command("delete")
def keys_delete(
    name: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    keyring_backend: Backend = KeyringBackend.file,
    home: Home = DEFAULT_HOME,
    output: Output = OutputFormat.text,
):
    """Delete a key; without its mnemonic the account cannot be recovered."""
    from node import keyring
    info = keyring.get_key(home, keyring_backend.value, name)
    if not yes and not typer.confirm(f"Delete key {name!r} ({info.address})?", err=True):
        raise CliError("aborted: key not deleted")
    keyring.delete_key(home, keyring_backend.value, name)
    show(output, {"deleted": name, "address": info.address}, [f"deleted key {name!r} ({info.address})"])


# --- queries ---------------------------------------------------------------------------------------

def get_proven_balance(node: "Client", address: str, denom: str) -> dict:
    """The balance read with a proof at height h, checked against the app hash in block h+1."""
    from chain import bank, crypto
    from node import client
    key = bank.state_key(bank.BALANCE, crypto.decode_address(address), denom)
    response = node.abci_query(f"store/{bank.STORE}/key", key, prove=True)
    if response.code:
        raise CliError(f"proof query failed: code {response.code} ({response.codespace}): {response.log}")
    if response.height < 1:
        raise CliError("the node did not say at which height it answered")
    try:
        amount = int(response.value.decode()) if response.value else 0
    except (UnicodeDecodeError, ValueError):
        raise CliError(f"the node returned a malformed balance {response.value!r}") from None
    node.wait_for_height(response.height + 1, WAIT_TIMEOUT_SECONDS)
    block = node.block(response.height + 1)
    client.verify_store_proof(bank.STORE, key, response.value, response.proof_ops, block.app_hash)
    return {"amount": amount, "height": response.height, "app_hash": block.app_hash.hex().upper(), "block": block.height}


@query_app.command("balance")
def query_balance(
    address: Annotated[str, typer.Argument(help="A bech32 address or the name of a key.")],
    denom: Annotated[str, typer.Option("--denom")] = DENOM,
    prove: Annotated[bool, typer.Option("--prove", help="Verify an ics23 proof against the next block's app hash.")] = False,
    node: Node = DEFAULT_NODE,
    keyring_backend: Backend = KeyringBackend.file,
    home: Home = DEFAULT_HOME,
    output: Output = OutputFormat.text,
):
    """Show an account's balance of one denom."""
    from chain.proto.cosmos.bank.v1beta1 import query_pb2 as bank_query_pb2
    from node.client import Client
    parse_denom(denom)
    address = resolve_address(home, keyring_backend, address)
    rpc = Client(node)
    if prove:
        proven = get_proven_balance(rpc, address, denom)
        record = {"address": address, "denom": denom, "amount": str(proven["amount"]), "height": str(proven["height"]),
                  "proof": {"verified": True, "app_hash": proven["app_hash"], "block_height": str(proven["block"])}}
        show(output, record, [f"{address}: {proven['amount']}{denom} at height {proven['height']}",
                              f"proof verified against app hash {proven['app_hash']} of block {proven['block']}"])
        return
    request = bank_query_pb2.QueryBalanceRequest(address=address, denom=denom)
    reply, height = rpc.query_grpc(request, bank_query_pb2.QueryBalanceResponse)
    record = {"address": address, "denom": denom, "amount": reply.balance.amount or "0", "height": str(height)}
    show(output, record, [f"{address}: {record['amount']}{denom} at height {height}"])


@query_app.command("balances")
def query_balances(
    address: Annotated[str, typer.Argument(help="A bech32 address or the name of a key.")],
    node: Node = DEFAULT_NODE,
    keyring_backend: Backend = KeyringBackend.file,
    home: Home = DEFAULT_HOME,
    output: Output = OutputFormat.text,
):
    """Show every denom an account holds (JOULE and IBC vouchers alike)."""
    from chain.proto.cosmos.bank.v1beta1 import query_pb2 as bank_query_pb2
    from node.client import Client
    address = resolve_address(home, keyring_backend, address)
    rpc, balances, key, height = Client(node), [], b"", 0
    while True:
        reply, height = rpc.query_grpc(bank_query_pb2.QueryAllBalancesRequest(
            address=address, pagination={"key": key, "limit": 1000}), bank_query_pb2.QueryAllBalancesResponse)
        balances.extend({"denom": coin.denom, "amount": coin.amount} for coin in reply.balances)
        key = reply.pagination.next_key
        if not key:
            break
    record = {"address": address, "balances": balances, "height": str(height)}
    show(output, record, [f"{address} at height {height}:"] +
         [f"  {b['amount']}{b['denom']}" for b in balances] + ([] if balances else ["  nothing"]))


@query_app.command("account")
def query_account(
    address: Annotated[str, typer.Argument(help="A bech32 address or the name of a key.")],
    node: Node = DEFAULT_NODE,
    keyring_backend: Backend = KeyringBackend.file,
    home: Home = DEFAULT_HOME,
    output: Output = OutputFormat.text,
):
    """Show an account's number, sequence and public key."""
    from chain import auth
    from node.client import Client
    address = resolve_address(home, keyring_backend, address)
    account = Client(node).get_account(address)
    if account is None:
        raise CliError(f"account {address} not found: it has never received tokens")
    public_key = auth.get_public_key(account)
    show(output, {"address": account.address, "account_number": str(account.account_number),
                  "sequence": str(account.sequence),
                  "pub_key": compute_pubkey_record(public_key) if public_key else None})


def compute_message_types(tx_bytes: bytes) -> list[str]:
    """The type URLs of a tx's messages; none for what is no cosmos tx (the heat tx a block opens with)."""
    try:
        return [message["@type"] for message in compute_messages(tx_bytes)]
    except DecodeError:
        return []


def compute_messages(tx_bytes: bytes) -> list[dict]:
    from google.protobuf import json_format
    from chain.app import HANDLERS
    from chain.proto.cosmos.tx.v1beta1 import tx_pb2
    raw = tx_pb2.TxRaw.FromString(tx_bytes)
    messages = []
    for any_message in tx_pb2.TxBody.FromString(raw.body_bytes).messages:
        record = {"@type": any_message.type_url}
        handler = HANDLERS.get(any_message.type_url)
        if handler is not None:
            record.update(json_format.MessageToDict(handler.proto.FromString(any_message.value), preserving_proto_field_name=True))
        messages.append(record)
    return messages


@query_app.command("tx")
def query_tx(
    tx_hash: Annotated[str, typer.Argument(metavar="HASH", help="The tx hash, 64 hex digits.")],
    node: Node = DEFAULT_NODE,
    home: Home = DEFAULT_HOME,
    output: Output = OutputFormat.text,
):
    """Show an included transaction and its result."""
    from node.client import Client
    digest = parse_tx_hash(tx_hash)
    result = Client(node).tx(digest)
    if result is None:
        raise CliError(f"tx {digest.hex().upper()} not found")
    try:
        messages = compute_messages(result.tx)
    except DecodeError:
        messages = []
    record = {
        "hash": result.hash.hex().upper(), "height": str(result.height), "index": result.index,
        "code": result.code, "codespace": result.codespace, "log": result.log,
        "gas_wanted": str(result.gas_wanted), "gas_used": str(result.gas_used), "messages": messages,
        "events": [{"type": e.type, "attributes": [{"key": k, "value": v} for k, v in e.attributes]} for e in result.events],
    }
    if output == OutputFormat.json:
        show(output, record)
        return
    show(output, {k: v for k, v in record.items() if k != "events"})
    show_table("events", ["type", "attributes"],
               [[e.type, ", ".join(f"{k}={v}" for k, v in e.attributes)] for e in result.events])


@query_app.command("txs")
def query_txs(
    events: Annotated[str, typer.Option("--events", help="An events query, e.g. \"message.sender='mxw1…'\" "
                                        "(AND-joined conditions, as CometBFT's tx_search takes).")],
    page: Annotated[int, typer.Option("--page", min=1)] = 1,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100)] = 30,
    order: Annotated[str, typer.Option("--order", help="asc or desc by height.")] = "asc",
    node: Node = DEFAULT_NODE,
    output: Output = OutputFormat.text,
):
    """List the included txs an events query finds."""
    from node.client import Client
    if order not in ("asc", "desc"):
        raise CliError(f"invalid --order {order!r}: asc or desc")
    results, total = Client(node).search_txs(events, page, limit, order)
    records = [{"hash": r.hash.hex().upper(), "height": str(r.height), "code": r.code, "gas_used": str(r.gas_used),
                "messages": compute_message_types(r.tx)} for r in results]
    if output == OutputFormat.json:
        show(output, {"total_count": str(total), "page": str(page), "txs": records})
        return
    show_table(f"{total} txs (page {page})", ["hash", "height", "code", "messages"],
               [[r["hash"], r["height"], str(r["code"]), ", ".join(r["messages"])] for r in records])


@query_app.command("block")
def query_block(
    height: Annotated[Optional[int], typer.Argument(min=1, help="Block height; the latest if omitted.")] = None,
    node: Node = DEFAULT_NODE,
    home: Home = DEFAULT_HOME,
    output: Output = OutputFormat.text,
):
    """Show a block header and its transactions' hashes."""
    from chain.tx import compute_tx_hash
    from node.client import Client
    block = Client(node).block(height)
    show(output, {
        "height": str(block.height), "hash": block.hash.hex().upper(), "chain_id": block.chain_id, "time": block.time,
        "app_hash": block.app_hash.hex().upper(), "proposer_address": block.proposer_address.hex().upper(),
        "txs": [compute_tx_hash(tx).hex().upper() for tx in block.txs],
    })


@app.command()
def status(
    node: Node = DEFAULT_NODE,
    home: Home = DEFAULT_HOME,
    output: Output = OutputFormat.text,
):
    """Show the node's chain id, version and latest block."""
    from node.client import Client
    info = Client(node).status()
    show(output, {
        "chain_id": info.chain_id, "version": info.version, "moniker": info.moniker,
        "latest_block_height": str(info.latest_block_height), "latest_block_hash": info.latest_block_hash.hex().upper(),
        "latest_app_hash": info.latest_app_hash.hex().upper(), "latest_block_time": info.latest_block_time,
        "catching_up": info.catching_up,
    })


@app.command()
def version(
    long: Annotated[bool, typer.Option("--long", help="Also the commit, Python and the pinned dependencies.")] = False,
    output: Output = OutputFormat.text,
):
    """Print maxwell's version (as simd's `version [--long]`)."""
    from node import grpc_server
    info = grpc_server.compute_version_info()
    if not long:
        show(output, {"version": info.version}, [info.version])
        return
    record = {"name": info.name, "server_name": info.app_name, "version": info.version, "commit": info.git_commit,
              "python": info.go_version.removeprefix("python "),
              "build_deps": [f"{dep.path}@{dep.version}" for dep in info.build_deps]}
    show(output, record, [f"{k}: {v}" for k, v in record.items() if k != "build_deps"] +
         ["build_deps:"] + [f"- {dep}" for dep in record["build_deps"]])


# --- transactions ----------------------------------------------------------------------------------

def parse_gas(text: str) -> int | None:
    """A gas limit, or None for auto."""
    from chain.tx import MAX_GAS_LIMIT
    if text == AUTO_GAS:
        return None
    if not text.isdigit() or not 1 <= int(text) <= MAX_GAS_LIMIT:
        raise CliError(f"invalid --gas {text!r}: a limit from 1 to {MAX_GAS_LIMIT}, or {AUTO_GAS}")
    return int(text)


def confirm_tx(messages: list, gas: int, fee: int, yes: bool) -> None:
    """Shows the tx and asks, as simd does, unless -y or there is no one at a terminal to ask."""
    from google.protobuf import json_format
    if yes or not sys.stdin.isatty():
        return
    body = [json_format.MessageToDict(m, preserving_proto_field_name=True) for m in messages]
    typer.echo(json.dumps({"messages": body, "fee": f"{fee}{DENOM}", "gas": str(gas)}, indent=2), err=True)
    if not typer.confirm("confirm transaction before signing and broadcasting", err=True):
        raise CliError("aborted: the transaction was not signed")


def execute_tx(signer: "txclient.Signer", messages: list, spend: dict[str, int], gas: str | int, fee,
               wait: bool, output: OutputFormat, memo: str = "", extra: dict | None = None, describe=None,
               yes: bool = False, gas_adjustment: float = DEFAULT_GAS_ADJUSTMENT) -> None:
    """Check the funds (`spend` is what the messages move out of the account), confirm, sign, broadcast and
    report: the hash once the node accepts the tx, then its block; `describe(result)` adds fields read from its
    events. `gas` "auto" simulates the tx and takes its gas times --gas-adjustment; `fee` is parse_fee's."""
    from node import txclient
    gas = parse_gas(str(gas))
    if gas is None:
        gas = txclient.estimate_gas(signer, messages, memo, gas_adjustment)
    fee = txclient.compute_fee(signer, gas, compute_gas_fee(fee, gas))
    txclient.check_funds(signer, spend, fee)
    confirm_tx(messages, gas, fee, yes)
    tx_hash, result = txclient.execute_messages(signer, messages, gas, fee, memo, wait,
                                                on_accepted=lambda accepted: show_accepted(output, accepted, wait))
    show_outcome(output, tx_hash, result, extra, describe)


def show_outcome(output: OutputFormat, tx_hash: bytes, result, extra: dict | None = None, describe=None) -> None:
    record = {"hash": tx_hash.hex().upper(), **(extra or {})}
    lines = []
    if result is not None:
        record.update(height=str(result.height), code=result.code, gas_wanted=str(result.gas_wanted),
                      gas_used=str(result.gas_used))
        lines.append(f"included in block {result.height}: code 0, gas used {result.gas_used} of {result.gas_wanted}")
        for key, value in (describe(result) if describe else {}).items():
            record[key] = value
            lines.append(f"{key}: {value}")
    show(output, record, lines)


@tx_app.command("send")
def tx_send(
    sender: Annotated[str, typer.Argument(metavar="FROM", help="Name (or address) of a key in the keyring.")],
    recipient: Annotated[str, typer.Argument(metavar="TO", help="A bech32 address or the name of a key.")],
    amount: Annotated[str, typer.Argument(help=f"Coins, e.g. 1000{DENOM}.")],
    fees: Annotated[Optional[str], typer.Option("--fees", help=f"Fee in {DENOM}; default: gas x minimum gas price.")] = None,
    gas_prices: GasPrices = None,
    gas: Annotated[str, typer.Option("--gas", help="Gas limit, or auto to simulate the tx first.")] = str(client_config.DEFAULT_GAS),
    memo: Annotated[str, typer.Option("--memo")] = "",
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until the tx is in a block.")] = True,
    yes: Yes = False,
    gas_adjustment: GasAdjustment = DEFAULT_GAS_ADJUSTMENT,
    generate_only: Annotated[bool, typer.Option("--generate-only", help=(
        "Print the unsigned tx as JSON (for `tx sign` on an offline machine) instead of signing it; FROM may be "
        "an address."))] = False,
    node: Node = DEFAULT_NODE,
    keyring_backend: Backend = KeyringBackend.file,
    keyring_passphrase_file: PassphraseFile = None,
    home: Home = DEFAULT_HOME,
    output: Output = OutputFormat.text,
):
    """Send tokens from one of your keys."""
    from chain.proto.cosmos.bank.v1beta1 import tx_pb2 as bank_tx_pb2
    from node import txclient
    from node.client import Client
    coins = parse_coins_text(amount)
    fee = parse_fee(fees, gas_prices)
    to_address = resolve_address(home, keyring_backend, recipient)
    if generate_only:
        from_address = resolve_address(home, keyring_backend, sender)
        message = bank_tx_pb2.MsgSend(from_address=from_address, to_address=to_address, amount=compute_coin_list(coins))
        typer.echo(compute_tx_json(compute_unsigned_tx([message], gas, fee, memo, node)))
        return
    private_key = load_private_key(home, keyring_backend, keyring_passphrase_file, sender)
    signer = txclient.load_signer(Client(node), private_key)
    message = bank_tx_pb2.MsgSend(from_address=signer.address, to_address=to_address, amount=compute_coin_list(coins))
    execute_tx(signer, [message], coins, gas, fee, wait, output, memo, yes=yes, gas_adjustment=gas_adjustment)


# --- offline signing: --generate-only, tx sign, tx broadcast ---------------------------------------

def compute_unsigned_tx(messages: list, gas: str, fee: int | None, memo: str, node: str) -> "tx_pb2.Tx":
    """A tx with no signer yet; without --fees it pays the chain's minimum for its gas (asked of the node)."""
    from chain.proto.cosmos.tx.v1beta1 import tx_pb2
    from chain.tx import compute_fee_message, compute_required_fee, compute_tx_body
    from node import txclient
    from node.client import Client
    gas_limit = parse_gas(gas)
    if gas_limit is None:
        raise CliError("--gas auto simulates a signed tx: give --generate-only a gas limit")
    fee = compute_gas_fee(fee, gas_limit)
    if fee is None:
        fee = compute_required_fee(gas_limit, txclient.get_fee_params(Client(node)))
    return tx_pb2.Tx(body=compute_tx_body(messages, memo), auth_info=tx_pb2.AuthInfo(fee=compute_fee_message(fee, gas_limit)))


def compute_tx_json(tx: "tx_pb2.Tx") -> str:
    from google.protobuf import json_format
    return json_format.MessageToJson(tx, preserving_proto_field_name=True, always_print_fields_with_no_presence=True,
                                     indent=2)


def read_tx_json(path: Path) -> "tx_pb2.Tx":
    """A tx as `--generate-only` or `tx sign` wrote it (the SDK's JSON of cosmos.tx.v1beta1.Tx)."""
    from google.protobuf import json_format
    import chain.app  # noqa: F401  (registers every message type the tx's Anys may name)
    from chain.proto.cosmos.tx.v1beta1 import tx_pb2
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise CliError(f"cannot read {path}: {error}") from None
    try:
        return json_format.Parse(text, tx_pb2.Tx())
    except json_format.ParseError as error:
        raise CliError(f"{path} is not a tx in JSON: {error}") from None


@tx_app.command("sign")
def tx_sign(
    path: Annotated[Path, typer.Argument(metavar="FILE", help="An unsigned tx (JSON), e.g. from --generate-only.")],
    sender: Annotated[str, typer.Option("--from", help="The key that signs.")],
    offline: Annotated[bool, typer.Option("--offline", help="Ask no node: give --chain-id, --account-number, --sequence.")] = False,
    chain_id: Annotated[Optional[str], typer.Option("--chain-id", help="The chain the signature is for.")] = None,
    account_number: Annotated[Optional[int], typer.Option("--account-number", min=0)] = None,
    sequence: Annotated[Optional[int], typer.Option("--sequence", min=0)] = None,
    output_document: Annotated[Optional[Path], typer.Option("--output-document", help="Write the signed tx here.")] = None,
    node: Node = DEFAULT_NODE,
    keyring_backend: Backend = KeyringBackend.file,
    keyring_passphrase_file: PassphraseFile = None,
    home: Home = DEFAULT_HOME,
):
    """Sign a tx file with one of your keys (SIGN_MODE_DIRECT), as simd's `tx sign`; prints the signed tx."""
    from chain import crypto
    from chain.app import HANDLERS
    from chain.errors import TxError
    from chain.proto.cosmos.tx.v1beta1 import tx_pb2
    from chain.tx import TxParams, decode_tx, sign_body
    from node import txclient
    from node.client import Client
    tx = read_tx_json(path)
    if tx.signatures or tx.auth_info.signer_infos:
        raise CliError(f"{path} is already signed: maxwell txs have exactly one signer")
    private_key = load_private_key(home, keyring_backend, keyring_passphrase_file, sender)
    address = crypto.encode_address(crypto.compute_address(crypto.compute_public_key(private_key)))
    draft = sign_body(private_key, tx.body, tx.auth_info.fee, chain_id="", account_number=0, sequence=0)
    try:  # the chain's stateless checks, and whose tx it is, before any node is asked
        signer = decode_tx(draft.SerializeToString(), HANDLERS, TxParams(), simulate=True).signer
    except TxError as error:
        raise CliError(f"the signed tx would be refused: {error}") from None
    if crypto.encode_address(signer) != address:
        raise CliError(f"{sender} ({address}) cannot sign for {crypto.encode_address(signer)}, the tx's signer")
    if offline:
        if chain_id is None or account_number is None or sequence is None:
            raise CliError("--offline signs with what you give: --chain-id, --account-number and --sequence")
    else:
        signer = txclient.load_signer(Client(node), private_key)
        if chain_id is not None and chain_id != signer.chain_id:
            raise CliError(f"--chain-id {chain_id} is not the node's chain {signer.chain_id}")
        chain_id = signer.chain_id
        account_number = signer.account_number if account_number is None else account_number
        sequence = signer.sequence if sequence is None else sequence
    raw = sign_body(private_key, tx.body, tx.auth_info.fee, chain_id=chain_id, account_number=account_number,
                    sequence=sequence)
    signed = tx_pb2.Tx(body=tx.body, auth_info=tx_pb2.AuthInfo.FromString(raw.auth_info_bytes), signatures=raw.signatures)
    if output_document is None:
        typer.echo(compute_tx_json(signed))
    else:
        write_file_atomically(output_document, compute_tx_json(signed) + "\n")


@tx_app.command("broadcast")
def tx_broadcast(
    path: Annotated[Path, typer.Argument(metavar="FILE", help="A signed tx (JSON), e.g. from `tx sign`.")],
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until the tx is in a block.")] = True,
    node: Node = DEFAULT_NODE,
    output: Output = OutputFormat.text,
):
    """Broadcast a signed tx file, as simd's `tx broadcast`."""
    from chain.proto.cosmos.tx.v1beta1 import tx_pb2
    from node import txclient
    from node.client import Client
    tx = read_tx_json(path)
    if len(tx.signatures) != 1:
        raise CliError(f"{path} is not signed: sign it with `maxwell tx sign`")
    raw = tx_pb2.TxRaw(body_bytes=tx.body.SerializeToString(), auth_info_bytes=tx.auth_info.SerializeToString(),
                       signatures=tx.signatures).SerializeToString()
    tx_hash, result = txclient.execute_broadcast(Client(node), raw, wait,
                                                 on_accepted=lambda accepted: show_accepted(output, accepted, wait))
    show_outcome(output, tx_hash, result)
