"""The CLI's client.toml, as simd's: the node to talk to, the chain id, the keyring backend and the output
format that commands take when no flag says otherwise (flags > client.toml > built-in defaults; the home
is --home, else MAXWELL_HOME, else ~/.maxwell).

`compute_default_map` turns the settings into click's default_map for every command at once.
"""

import tomllib
from pathlib import Path

from node.app_config import NODE_COMMANDS

CLIENT_TOML = Path("config") / "client.toml"
HOME_ENV = "MAXWELL_HOME"
DEFAULT_NODE = "tcp://127.0.0.1:26657"
DEFAULT_GAS = 200_000  # a tx's gas limit when neither --gas nor simulation says otherwise
SETTINGS = {  # client.toml key -> (the commands' parameter name, allowed values or None, comment)
    "chain-id": ("chain_id", None, "The network's chain id."),
    "keyring-backend": ("keyring_backend", ("file", "test"), "Where keys live: file (encrypted) or test (dev only)."),
    "output": ("output", ("text", "json"), "How commands answer: text for people, json for programs."),
    "node": ("node", None, "CometBFT RPC of the node to talk to (http:// or tcp://)."),
}
DEFAULTS = {"chain-id": "", "keyring-backend": "file", "output": "text", "node": DEFAULT_NODE}


class ClientConfigError(Exception):
    pass


def get_path(home: Path) -> Path:
    return Path(home) / CLIENT_TOML


def read(home: Path) -> dict[str, str]:
    """The settings client.toml holds (none if it does not exist)."""
    path = get_path(home)
    if not path.is_file():
        return {}
    try:
        document = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ClientConfigError(f"{path} is not valid TOML: {error}") from None
    unknown = sorted(set(document) - set(SETTINGS))
    if unknown:
        raise ClientConfigError(f"{path}: unknown setting {unknown[0]!r} (known: {', '.join(SETTINGS)})")
    for key, value in document.items():
        check(key, value)
    return document


def check(key: str, value) -> None:
    if key not in SETTINGS:
        raise ClientConfigError(f"unknown setting {key!r} (known: {', '.join(SETTINGS)})")
    allowed = SETTINGS[key][1]
    if not isinstance(value, str) or (allowed and value not in allowed):
        raise ClientConfigError(f"invalid {key} {value!r}" + (f": one of {', '.join(allowed)}" if allowed else ""))


def write(home: Path, settings: dict[str, str]) -> Path:
    """client.toml with every setting under its comment; one not set is shown commented out at its default,
    so that each command keeps its own default for it."""
    lines = ["# maxwell client configuration (`maxwell config get|set KEY [VALUE]`); flags override it.", ""]
    for key, (_, _, comment) in SETTINGS.items():
        line = f'{key} = "{settings.get(key, DEFAULTS[key])}"'
        lines += [f"# {comment}", line if key in settings else f"# {line}", ""]
    path = get_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path


def find_home(args: list[str], default: Path) -> Path:
    """The home a command line names (--home X or --home=X), before click has parsed it."""
    for index, arg in enumerate(args):
        if arg == "--home" and index + 1 < len(args):
            return Path(args[index + 1])
        if arg.startswith("--home="):
            return Path(arg.split("=", 1)[1])
    return default


class DefaultMap(dict):
    """click's default_map for a whole command tree: a setting for a parameter of that name, and itself for
    any subcommand, so every command of every group sees the same settings; the node commands (`start`,
    `dev`) see `node_settings()` too (node.app_config: app.toml and config.toml), read only when one runs."""

    def __init__(self, settings: dict[str, str], command_names: frozenset[str], node_settings=dict):
        super().__init__({SETTINGS[key][0]: value for key, value in settings.items()})
        self.command_names = command_names
        self.node_settings = node_settings

    def get(self, name, default=None):
        if name in self:
            return self[name]
        if name in NODE_COMMANDS:
            return {**self, **self.node_settings()}
        return self if name in self.command_names else default


def compute_command_names(command) -> frozenset[str]:
    """The names of every group and command below a click group."""
    names = set()
    for name in getattr(command, "commands", {}):
        names.add(name)
        names |= compute_command_names(command.commands[name])
    return frozenset(names)
