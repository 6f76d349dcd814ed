"""The node's own settings, in the files a Cosmos node keeps them: `config/app.toml` (the SDK's names: gRPC
and REST addresses, pruning, the node's minimum gas price, state-sync snapshots; and maxwell's heat sensor and
dev faucet) and `config/config.toml` (CometBFT's names: log level and format, the ABCI and RPC listen
addresses, the dev chain's block time). `maxwell init` writes both with comments; `maxwell start` and
`maxwell dev` read them (flags > these files > built-in defaults), and a bad value stops the command with
one line naming the file and key. CometBFT reads the same config.toml and ignores what it does not know.

The defaults here are the ones every command and server uses.
"""

import tomllib
from dataclasses import dataclass
from pathlib import Path

DEFAULT_RPC_ADDRESS = "tcp://127.0.0.1:26657"
DEFAULT_ABCI_ADDRESS = "tcp://127.0.0.1:26658"
DEFAULT_GRPC_ADDRESS = "127.0.0.1:9090"
DEFAULT_REST_ADDRESS = "127.0.0.1:1317"
DEFAULT_MILLICELSIUS = 40_000
DEFAULT_MILLIWATTS = 65_000
DEFAULT_FAUCET_UJOULE = 10_000_000  # 10 JOULE
DEFAULT_KEEP_RECENT = 100
LOG_LEVELS = ("debug", "info", "error", "none")  # CometBFT's
LOG_FORMATS = ("plain", "json")
DEFAULT_CIRCUITS_DIR = Path(__file__).resolve().parents[1] / "circuits"  # the models, settings and keys shipped
APP_TOML = "app.toml"
CONFIG_TOML = "config.toml"
NODE_COMMANDS = frozenset({"start", "dev"})  # the commands (`dev` also under `worker`) these files configure


@dataclass(frozen=True)
class Setting:
    file: str
    key: str  # dotted: section.name
    parameter: str  # the command parameter it gives a default to
    default: object
    comment: str
    choices: tuple[str, ...] = ()
    minimum: int | None = None


SETTINGS = (
    Setting(APP_TOML, "minimum-gas-prices", "minimum_gas_prices", "",
            "This node's own floor for the fees it lets into its mempool, e.g. \"0.05ujoule\" (empty: the chain's "
            "min_gas_price, auth Params). Blocks are judged by the chain's, never by this."),
    Setting(APP_TOML, "pruning-keep-recent", "keep_recent", DEFAULT_KEEP_RECENT,
            "State heights kept for queries and proofs; older ones are pruned.", minimum=1),
    Setting(APP_TOML, "api.address", "rest_address", DEFAULT_REST_ADDRESS,
            "The REST gateway (grpc-gateway routes, /metrics, /dashboard, the dev faucet); \"off\" for none."),
    Setting(APP_TOML, "api.cors-origins", "rest_cors", "off",
            "Origins the REST gateway allows (CORS): \"*\", a comma-separated list, or \"off\"."),
    Setting(APP_TOML, "grpc.address", "grpc", DEFAULT_GRPC_ADDRESS, "The gRPC server; \"off\" for none."),
    Setting(APP_TOML, "state-sync.snapshot-interval", "snapshot_interval", 0,
            "Keep a state-sync snapshot every N heights (0: none; `maxwell start` only).", minimum=0),
    Setting(APP_TOML, "heat.millicelsius", "heat_millicelsius", DEFAULT_MILLICELSIUS,
            "Temperature this node reports when the host has no readable sensor.", minimum=0),
    Setting(APP_TOML, "heat.milliwatts", "power_milliwatts", DEFAULT_MILLIWATTS,
            "Power draw reported with every heat reading.", minimum=0),
    Setting(APP_TOML, "faucet.key", "faucet_key", "",
            "`maxwell dev` only: a key of the test keyring that answers POST /faucet (empty: no faucet)."),
    Setting(APP_TOML, "faucet.amount", "faucet_amount", f"{DEFAULT_FAUCET_UJOULE}ujoule", "What the faucet gives each time."),
    Setting(CONFIG_TOML, "log_level", "log_level", "info", "Log level.", choices=LOG_LEVELS),
    Setting(CONFIG_TOML, "log_format", "log_format", "plain", "Log format: plain or json (one object a line).",
            choices=LOG_FORMATS),
    Setting(CONFIG_TOML, "proxy_app", "abci", DEFAULT_ABCI_ADDRESS,
            "Where `maxwell start` serves ABCI to CometBFT (tcp:// or unix://)."),
    Setting(CONFIG_TOML, "rpc.laddr", "rpc", DEFAULT_RPC_ADDRESS, "`maxwell dev` only: the CometBFT RPC it serves."),
    Setting(CONFIG_TOML, "consensus.timeout_commit", "block_time", "1s",
            "`maxwell dev` only: time between blocks, e.g. 1s or 200ms."),
)


class AppConfigError(Exception):
    pass


def get_path(home: Path, file: str) -> Path:
    return Path(home) / "config" / file


def lookup(document: dict, dotted: str):
    value = document
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def check_value(path: Path, setting: Setting, value) -> None:
    expected = type(setting.default)
    if type(value) is not expected:
        raise AppConfigError(f"{path}: {setting.key} = {value!r} is not a{'n integer' if expected is int else ' string'}")
    if setting.choices and value not in setting.choices:
        raise AppConfigError(f"{path}: {setting.key} = {value!r}: one of {', '.join(setting.choices)}")
    if setting.minimum is not None and value < setting.minimum:
        raise AppConfigError(f"{path}: {setting.key} = {value}: at least {setting.minimum}")


def read_file(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise AppConfigError(f"{path} is not valid TOML: {error}") from None


def read(home: Path) -> dict[str, object]:
    """The parameter defaults app.toml and config.toml set (only what they hold), checked."""
    documents = {file: read_file(get_path(home, file)) for file in (APP_TOML, CONFIG_TOML)}
    known = {}
    for setting in SETTINGS:
        known.setdefault(setting.file, set()).add(setting.key.split(".")[0])
    unknown = sorted(set(documents[APP_TOML]) - known[APP_TOML])
    if unknown:
        raise AppConfigError(f"{get_path(home, APP_TOML)}: unknown setting {unknown[0]!r}")
    values = {}
    for setting in SETTINGS:
        value = lookup(documents[setting.file], setting.key)
        if value is not None:
            check_value(get_path(home, setting.file), setting, value)
            values[setting.parameter] = value
    return values


def compute_toml(file: str, header: str, overrides: dict[str, object]) -> str:
    """The file's settings (at their defaults unless `overrides` gives a dotted key's value), each under its
    comment, grouped in their sections."""
    lines = [header, ""]
    section = None
    for setting in (s for s in SETTINGS if s.file == file):
        *parents, name = setting.key.split(".")
        if parents and parents[0] != section:
            section = parents[0]
            lines += [f"[{section}]", ""]
        value = overrides.get(setting.key, setting.default)
        value = f'"{value}"' if isinstance(value, str) else str(value)
        lines += [f"# {setting.comment}", f"{name} = {value}", ""]
    return "\n".join(lines)


def write(home: Path, overrides: dict[str, object] | None = None) -> list[Path]:
    """app.toml and config.toml (those not there yet) at their defaults but for `overrides` (dotted keys)."""
    written = []
    headers = {APP_TOML: "# maxwell app configuration: what `maxwell start` and `maxwell dev` read; flags override it.",
               CONFIG_TOML: "# maxwell node configuration, in CometBFT's config.toml names; flags override it."}
    for file, header in headers.items():
        path = get_path(home, file)
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(compute_toml(file, header, overrides or {}))
        written.append(path)
    return written
